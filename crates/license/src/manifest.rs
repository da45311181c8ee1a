//! Licence declarations in package manifests: Cargo.toml, package.json, pyproject.toml, PKG-INFO / METADATA,
//! debian/copyright (DEP-5) and REUSE.toml. Each parser returns what the file declares, never guesses.

/// One declaration found in a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declared {
    /// The licence expression as written (normalised where the SPDX parser accepts it).
    pub expression: String,
    /// Which files it covers, as glob patterns relative to the manifest's directory (`*` = everything).
    pub covers: Vec<String>,
}

/// The kind of manifest a file name denotes, if any.
pub fn manifest_kind(path: &str) -> Option<&'static str> {
    let name = path.rsplit('/').next().unwrap_or(path);
    match name {
        "Cargo.toml" => Some("Cargo.toml"),
        "package.json" if !path.contains("node_modules/") || path.matches("node_modules/").count() == 1 => {
            Some("package.json")
        }
        "pyproject.toml" => Some("pyproject.toml"),
        "PKG-INFO" | "METADATA" => Some("PKG-INFO/METADATA"),
        "copyright" if path.ends_with("debian/copyright") || path.starts_with("usr/share/doc/") => {
            Some("debian/copyright")
        }
        "REUSE.toml" => Some("REUSE.toml"),
        _ => None,
    }
}

/// Parses a manifest of `kind`; unreadable or licence-less manifests give nothing.
pub fn parse(kind: &str, text: &str) -> Vec<Declared> {
    let all = |e: String| {
        vec![Declared {
            expression: e,
            covers: vec!["*".into()],
        }]
    };
    match kind {
        "Cargo.toml" => {
            let Ok(v) = text.parse::<toml::Table>() else {
                return vec![];
            };
            v.get("package")
                .and_then(|p| p.get("license"))
                .and_then(|l| l.as_str())
                .map(|l| all(normalise(l)))
                .unwrap_or_default()
        }
        "package.json" => {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(text) else {
                return vec![];
            };
            match v.get("license") {
                Some(serde_json::Value::String(s)) => all(normalise(s)),
                Some(serde_json::Value::Object(o)) => o
                    .get("type")
                    .and_then(|t| t.as_str())
                    .map(|t| all(normalise(t)))
                    .unwrap_or_default(),
                _ => vec![],
            }
        }
        "pyproject.toml" => {
            let Ok(v) = text.parse::<toml::Table>() else {
                return vec![];
            };
            let Some(p) = v.get("project") else { return vec![] };
            match p.get("license") {
                Some(toml::Value::String(s)) => all(normalise(s)),
                Some(toml::Value::Table(t)) => t
                    .get("text")
                    .and_then(|s| s.as_str())
                    .filter(|s| s.len() < 200)
                    .map(|s| all(normalise(s)))
                    .unwrap_or_default(),
                _ => vec![],
            }
        }
        "PKG-INFO/METADATA" => {
            let mut expr = None;
            let mut lic = None;
            for line in text.lines() {
                if line.is_empty() {
                    break; // the body (description) starts
                }
                if let Some(v) = line.strip_prefix("License-Expression:") {
                    expr = Some(v.trim().to_owned());
                } else if let Some(v) = line.strip_prefix("License:") {
                    let v = v.trim();
                    if !v.is_empty() && v.len() < 100 && !v.eq_ignore_ascii_case("UNKNOWN") {
                        lic = Some(v.to_owned());
                    }
                }
            }
            expr.or(lic).map(|e| all(normalise(&e))).unwrap_or_default()
        }
        "debian/copyright" => parse_dep5(text),
        "REUSE.toml" => {
            let Ok(v) = text.parse::<toml::Table>() else {
                return vec![];
            };
            let Some(toml::Value::Array(anns)) = v.get("annotations") else {
                return vec![];
            };
            anns.iter()
                .filter_map(|a| {
                    let lic = a.get("SPDX-License-Identifier")?.as_str()?;
                    let covers = match a.get("path")? {
                        toml::Value::String(s) => vec![s.clone()],
                        toml::Value::Array(a) => a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect(),
                        _ => return None,
                    };
                    Some(Declared {
                        expression: normalise(lic),
                        covers,
                    })
                })
                .collect()
        }
        _ => vec![],
    }
}

/// DEP-5: `Files:` paragraphs with a `License:` short name. Only machine-readable files (with `Format:`) count.
fn parse_dep5(text: &str) -> Vec<Declared> {
    if !text.lines().next().is_some_and(|l| l.starts_with("Format:")) {
        return vec![];
    }
    let mut out = Vec::new();
    for para in text.split("\n\n") {
        let mut files: Option<Vec<String>> = None;
        let mut license = None;
        let mut in_files = false;
        for line in para.lines() {
            if let Some(v) = line.strip_prefix("Files:") {
                files = Some(v.split_whitespace().map(str::to_owned).collect());
                in_files = true;
            } else if in_files && line.starts_with([' ', '\t']) {
                if let Some(f) = files.as_mut() {
                    f.extend(line.split_whitespace().map(str::to_owned));
                }
            } else {
                in_files = false;
                if let Some(v) = line.strip_prefix("License:") {
                    license = Some(v.trim().to_owned());
                }
            }
        }
        if let (Some(files), Some(l)) = (files, license) {
            if !l.is_empty() {
                out.push(Declared {
                    expression: normalise(&dep5_to_spdx(&l)),
                    covers: files,
                });
            }
        }
    }
    out
}

/// DEP-5 short names that differ from SPDX identifiers.
fn dep5_to_spdx(l: &str) -> String {
    l.split_whitespace()
        .map(|w| match w {
            "or" => "OR",
            "and" => "AND",
            "with" => "WITH",
            "GPL-2" => "GPL-2.0-only",
            "GPL-2+" => "GPL-2.0-or-later",
            "GPL-3" => "GPL-3.0-only",
            "GPL-3+" => "GPL-3.0-or-later",
            "LGPL-2.1" => "LGPL-2.1-only",
            "LGPL-2.1+" => "LGPL-2.1-or-later",
            "LGPL-2" => "LGPL-2.0-only",
            "LGPL-2+" => "LGPL-2.0-or-later",
            "LGPL-3" => "LGPL-3.0-only",
            "LGPL-3+" => "LGPL-3.0-or-later",
            "Apache-2" => "Apache-2.0",
            "Expat" => "MIT",
            "BSD-3-clause" => "BSD-3-Clause",
            "BSD-2-clause" => "BSD-2-Clause",
            "public-domain" => "LicenseRef-public-domain",
            w => w,
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The expression in canonical form when the SPDX parser (lax mode: `/` for OR, GPL-2.0 for GPL-2.0-only …)
/// accepts it, otherwise as written.
pub fn normalise(expr: &str) -> String {
    let e = expr.trim();
    match spdx::Expression::canonicalize(e) {
        Ok(Some(c)) if spdx::Expression::parse(&c).is_ok() => c,
        Ok(None) if spdx::Expression::parse(e).is_ok() => e.to_owned(),
        _ => e.to_owned(),
    }
}

/// The licence identifiers an expression names (sorted, without exceptions); empty when it does not parse.
pub fn ids(expr: &str) -> Vec<String> {
    let Ok(x) = spdx::Expression::parse_mode(expr, spdx::ParseMode::LAX) else {
        return vec![];
    };
    let mut v: Vec<String> = x
        .requirements()
        .map(|r| match &r.req.license {
            spdx::LicenseItem::Spdx { id, .. } => id.name.to_owned(),
            spdx::LicenseItem::Other(o) => o.to_string(),
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

/// The licence family an identifier belongs to when only its text is known: a licence text cannot tell
/// `GPL-3.0-only` from `GPL-3.0-or-later`, so both become `GPL-3.0`.
pub fn text_family(id: &str) -> &str {
    id.strip_suffix("-only")
        .or_else(|| id.strip_suffix("-or-later"))
        .unwrap_or(id)
}

/// Whether `path` (relative to the manifest's directory) matches a REUSE/DEP-5 glob (`*` any run, `?` one
/// character; `*` alone or `**` covers everything).
pub fn glob_match(pattern: &str, path: &str) -> bool {
    if pattern == "*" || pattern == "**" {
        return true;
    }
    fn m(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => m(&p[1..], s) || (!s.is_empty() && m(p, &s[1..])),
            (Some(b'?'), Some(_)) => m(&p[1..], &s[1..]),
            (Some(a), Some(b)) if a == b => m(&p[1..], &s[1..]),
            _ => false,
        }
    }
    m(pattern.as_bytes(), path.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_declare_what_they_say() {
        assert_eq!(
            parse("Cargo.toml", "[package]\nname='x'\nlicense = \"MIT/Apache-2.0\"\n")[0].expression,
            "MIT OR Apache-2.0"
        );
        assert_eq!(parse("package.json", r#"{"license":"ISC"}"#)[0].expression, "ISC");
        assert_eq!(
            parse("pyproject.toml", "[project]\nlicense = \"BSD-3-Clause\"\n")[0].expression,
            "BSD-3-Clause"
        );
        assert_eq!(
            parse(
                "PKG-INFO/METADATA",
                "Metadata-Version: 2.4\nLicense-Expression: MIT\n\nLicense: nonsense"
            )[0]
            .expression,
            "MIT"
        );
        let dep5 = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nCopyright: x\nLicense: GPL-2+\n\nFiles: lib/*\n src/x.c\nLicense: Expat\n";
        let d = parse("debian/copyright", dep5);
        assert_eq!(d[0].expression, "GPL-2.0-or-later");
        assert_eq!(d[1].covers, ["lib/*", "src/x.c"]);
        assert_eq!(d[1].expression, "MIT");
        let reuse = "version = 1\n[[annotations]]\npath = [\"docs/**\"]\nSPDX-License-Identifier = \"CC-BY-4.0\"\n";
        assert_eq!(parse("REUSE.toml", reuse)[0].covers, ["docs/**"]);
        assert!(parse("Cargo.toml", "not toml [").is_empty());
        assert_eq!(ids("MIT OR Apache-2.0 WITH LLVM-exception"), ["Apache-2.0", "MIT"]);
        assert!(glob_match("docs/**", "docs/a/b.md"));
        assert!(!glob_match("lib/*.c", "src/a.c"));
    }
}
