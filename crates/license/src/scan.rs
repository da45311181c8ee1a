//! `license.scan`: per file the SPDX identifiers and where each came from, a summary and compatibility notes.
//!
//! Sources, in the order they are trusted: an `SPDX-License-Identifier:` tag in the file (first 16 KiB), a
//! licence text (files named LICENSE*, LICENCE*, COPYING*, UNLICENSE …) matched against the SPDX licence list by
//! the `spdx` crate's detector with its confidence, and manifest declarations ([`crate::manifest`]). Memory is
//! bounded by the number of findings and directories, not files: files without information are counted per
//! directory with at most a few examples kept.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::AtomicBool;
use std::sync::OnceLock;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::manifest::{self, Declared};
use crate::tree::{error_chain, Entry, SourceTree, TreeError};

/// Bytes of each file searched for an SPDX tag.
pub const TAG_WINDOW: usize = 16 * 1024;
/// Largest licence file matched as text.
pub const LICENSE_FILE_LIMIT: usize = 512 * 1024;
/// Lowest detector score reported as a match.
pub const MIN_CONFIDENCE: f32 = 0.8;
/// Example paths kept per list in a report.
pub const EXAMPLES: usize = 20;

/// Where a finding came from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    /// An `SPDX-License-Identifier:` tag.
    Tag,
    /// A licence text matched against the SPDX list.
    Text,
    /// A manifest declaration; the kind says which (`Cargo.toml`, `package.json`, …).
    Manifest(String),
}

/// One licence finding in one file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = LicenseFinding)]
pub struct Finding {
    /// SPDX expression (canonical when it parses).
    pub expression: String,
    /// Where it came from.
    pub origin: Origin,
    /// The detector's score for text matches (0..1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f32>,
    /// 1-based line of a tag.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// Whether the expression parses as SPDX.
    pub valid: bool,
    /// For manifest declarations: the paths it covers (globs relative to the manifest's directory).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub covers: Vec<String>,
}

/// The findings of one file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FileLicenses {
    /// Path relative to the scanned directory.
    pub path: String,
    /// What was found.
    pub findings: Vec<Finding>,
}

/// A licence and the files that carry it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LicenseFiles {
    /// SPDX identifier.
    pub id: String,
    /// Its full name from the SPDX list, when known.
    pub name: Option<String>,
    /// How many files carry it.
    pub count: u64,
    /// Up to [`EXAMPLES`] of them.
    pub files: Vec<String>,
}

/// A directory whose manifest says something else than its licence files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Disagreement {
    /// The directory (empty = the scanned directory).
    pub directory: String,
    /// The manifest and its expression.
    pub manifest: String,
    /// Declared expression.
    pub declared: String,
    /// Identifiers found in the licence files there.
    pub detected: Vec<String>,
}

/// A compatibility note from the rule table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CompatWarning {
    /// Rule id: `copyleft-in-permissive`, `gpl2-apache2`, `agpl-network`.
    pub rule: String,
    /// What was seen and why it may matter, as information.
    pub message: String,
    /// Files or directories involved (examples).
    pub files: Vec<String>,
}

/// Totals of a scan.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ScanSummary {
    /// Licences and their files, most files first.
    pub licenses: Vec<LicenseFiles>,
    /// Files with no tag, no licence text and no covering declaration (binaries and skipped entries not counted).
    pub without_info_count: u64,
    /// Up to [`EXAMPLES`] of them.
    pub without_info: Vec<String>,
    /// Declared vs detected.
    pub disagreements: Vec<Disagreement>,
}

/// The result of `license.scan`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ScanReport {
    /// What was scanned (`drive data:/src`, `sandbox web:/srv`).
    pub source: String,
    /// Regular files visited.
    pub files: u64,
    /// Bytes read.
    pub bytes_read: u64,
    /// Files skipped as binary (a NUL byte in the first 16 KiB).
    pub binary: u64,
    /// Entries not read (symbolic links, unreadable, devices), how many.
    pub skipped_count: u64,
    /// Up to [`EXAMPLES`] of them with the reason.
    pub skipped: Vec<String>,
    /// Files with findings.
    pub findings: Vec<FileLicenses>,
    /// The summary.
    pub summary: ScanSummary,
    /// Compatibility notes.
    pub warnings: Vec<CompatWarning>,
    /// Duration in milliseconds.
    pub duration_ms: u64,
    /// Always: what these findings are and are not.
    pub note: String,
}

/// Progress of a running scan, reported every few hundred files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Progress {
    /// Files visited so far.
    pub files: u64,
    /// Bytes read so far.
    pub bytes: u64,
}

/// The note every report carries.
pub const NOTE: &str = "information from automatic detection, not legal advice; check the licence texts themselves";

/// The SPDX licence text store, loaded once (the `spdx` crate's inlined cache).
pub fn store() -> &'static spdx::detection::Store {
    static STORE: OnceLock<spdx::detection::Store> = OnceLock::new();
    STORE.get_or_init(|| spdx::detection::Store::load_inline().unwrap_or_default())
}

/// Whether a file name looks like a licence text.
pub fn is_license_file(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path).to_ascii_uppercase();
    ["LICENSE", "LICENCE", "COPYING", "UNLICENSE", "COPYRIGHT"]
        .iter()
        .any(|p| name.starts_with(p))
        && !name.ends_with(".RS")
        && !name.ends_with(".PY")
        && !name.ends_with(".JS")
        && !name.ends_with(".GO")
        && !name.ends_with(".C")
        && !name.ends_with(".H")
}

/// The licences a text contains, each with the detector's score, best first. One whole-text comparison first;
/// only when that is not a clear match (below 0.9) the slower search for several licences inside the text runs.
pub fn detect_text(text: &str) -> Vec<(String, f32)> {
    let data = spdx::detection::TextData::new(text);
    let whole = store().analyze(&data);
    if whole.score >= 0.9 {
        return vec![(disambiguate(whole.name, text).to_owned(), whole.score)];
    }
    let scanner = spdx::detection::scan::Scanner::new(store())
        .confidence_threshold(MIN_CONFIDENCE)
        .optimize(true)
        .max_passes(4);
    let r = scanner.scan(&data);
    let mut out: Vec<(String, f32)> = Vec::new();
    if let Some(l) = r.license {
        out.push((disambiguate(l.name, text).to_owned(), r.score));
    }
    for c in r.containing {
        let name = disambiguate(c.license.name, text);
        if !out.iter().any(|(n, _)| n == name) {
            out.push((name.to_owned(), c.score));
        }
    }
    out
}

/// Licences that are another licence's text with a few words changed: the detector may prefer the variant when
/// a file carries only the common part. The Pixar licence is Apache-2.0 with a modified section 6 and names Pixar;
/// Apache-2.0 files without the appendix match it slightly better.
fn disambiguate<'a>(name: &'a str, text: &str) -> &'a str {
    match name {
        "Pixar" if !text.contains("Pixar") => "Apache-2.0",
        n => n,
    }
}

/// `SPDX-License-Identifier:` tags in a text: (line, expression as written).
pub fn find_tags(text: &str) -> Vec<(u32, String)> {
    const TAG: &str = "SPDX-License-Identifier:";
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if let Some(pos) = line.find(TAG) {
            let rest = line[pos + TAG.len()..].trim();
            let rest = rest
                .trim_end_matches("*/")
                .trim_end_matches("-->")
                .trim_end_matches("#}")
                .trim_end_matches("*)")
                .trim()
                .trim_end_matches(['"', '\'', ';', ',', '\\'])
                .trim();
            if !rest.is_empty() && rest.len() < 300 {
                out.push((i as u32 + 1, rest.to_owned()));
            }
        }
    }
    out
}

fn valid(expr: &str) -> bool {
    spdx::Expression::parse_mode(expr, spdx::ParseMode::LAX).is_ok()
}

fn dir_of(path: &str) -> &str {
    path.rsplit_once('/').map(|(d, _)| d).unwrap_or("")
}

/// Web frameworks whose presence makes a tree a network service for the AGPL rule.
const NETWORK_MARKERS: &[&str] = &[
    "axum",
    "actix-web",
    "hyper",
    "warp",
    "rocket",
    "tide",
    "express",
    "fastify",
    "koa",
    "@nestjs/core",
    "flask",
    "django",
    "fastapi",
    "aiohttp",
    "tornado",
];

fn dependency_names(kind: &str, text: &str) -> Vec<String> {
    match kind {
        "Cargo.toml" => text
            .parse::<toml::Table>()
            .ok()
            .and_then(|t| {
                t.get("dependencies")
                    .and_then(|d| d.as_table())
                    .map(|d| d.keys().cloned().collect())
            })
            .unwrap_or_default(),
        "package.json" => serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .and_then(|v| {
                v.get("dependencies")
                    .and_then(|d| d.as_object())
                    .map(|d| d.keys().cloned().collect())
            })
            .unwrap_or_default(),
        "pyproject.toml" => text
            .parse::<toml::Table>()
            .ok()
            .and_then(|t| {
                t.get("project")?.get("dependencies")?.as_array().map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str())
                        .map(|s| {
                            s.split(|c: char| !(c.is_alphanumeric() || c == '-' || c == '_'))
                                .next()
                                .unwrap_or("")
                                .to_ascii_lowercase()
                        })
                        .collect()
                })
            })
            .unwrap_or_default(),
        _ => vec![],
    }
}

#[derive(Default)]
struct Acc {
    findings: Vec<FileLicenses>,
    /// Directories with a declaration covering everything below (manifest `*` or licence file).
    covered_dirs: BTreeSet<String>,
    /// Specific-glob declarations: (directory, pattern).
    globs: Vec<(String, String)>,
    /// Per directory: files without information (count, examples).
    untagged: HashMap<String, (u64, Vec<String>)>,
    /// Per directory: manifest declarations (kind, expression).
    declared: BTreeMap<String, Vec<(String, String)>>,
    /// Per directory: ids found in licence files.
    detected: BTreeMap<String, BTreeSet<String>>,
    network_service: Vec<String>,
    skipped: Vec<String>,
    skipped_count: u64,
    files: u64,
    bytes: u64,
    binary: u64,
}

/// Scans a tree. `progress` is called every 256 files; `cancel` stops the walk with [`TreeError::Cancelled`].
pub fn scan(
    tree: &dyn SourceTree,
    source: &str,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(Progress),
) -> Result<ScanReport, TreeError> {
    let started = Instant::now();
    let mut acc = Acc::default();
    tree.walk(cancel, &crate::tree::no_prune, &mut |e| match e {
        Entry::Skipped { path, reason } => {
            acc.skipped_count += 1;
            if acc.skipped.len() < EXAMPLES {
                acc.skipped.push(format!("{path}: {reason}"));
            }
        }
        Entry::File { path, size } => {
            acc.files += 1;
            scan_file(tree, &path, size, &mut acc);
            if acc.files % 256 == 0 {
                progress(Progress {
                    files: acc.files,
                    bytes: acc.bytes,
                });
            }
        }
    })?;
    progress(Progress {
        files: acc.files,
        bytes: acc.bytes,
    });
    Ok(finish(acc, source, started))
}

fn scan_file(tree: &dyn SourceTree, path: &str, size: u64, acc: &mut Acc) {
    let dir = dir_of(path).to_owned();
    let kind = manifest::manifest_kind(path);
    let lic_file = is_license_file(path);
    let limit = if kind.is_some() {
        1024 * 1024
    } else if lic_file {
        LICENSE_FILE_LIMIT
    } else {
        TAG_WINDOW
    };
    let bytes = match tree.read(path, limit.min(size as usize)) {
        Ok(b) => b,
        Err(e) => {
            acc.skipped_count += 1;
            if acc.skipped.len() < EXAMPLES {
                acc.skipped.push(format!("{path}: {}", error_chain(&e)));
            }
            return;
        }
    };
    acc.bytes += bytes.len() as u64;
    if bytes[..bytes.len().min(TAG_WINDOW)].contains(&0) {
        acc.binary += 1;
        return;
    }
    let text = String::from_utf8_lossy(&bytes);
    let mut findings = Vec::new();
    let mut end = text.len().min(TAG_WINDOW);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    for (line, expr) in find_tags(&text[..end]) {
        findings.push(Finding {
            valid: valid(&expr),
            expression: manifest::normalise(&expr),
            origin: Origin::Tag,
            confidence: None,
            line: Some(line),
            covers: vec![],
        });
    }
    if let Some(kind) = kind {
        for Declared { expression, covers } in manifest::parse(kind, &text) {
            let base = if kind == "debian/copyright" && path.ends_with("debian/copyright") {
                dir_of(&dir).to_owned()
            } else {
                dir.clone()
            };
            if covers.iter().any(|c| c == "*" || c == "**") {
                acc.covered_dirs.insert(base.clone());
            } else {
                acc.globs.extend(covers.iter().map(|c| (base.clone(), c.clone())));
            }
            acc.declared
                .entry(base)
                .or_default()
                .push((kind.to_owned(), expression.clone()));
            findings.push(Finding {
                valid: valid(&expression),
                expression,
                origin: Origin::Manifest(kind.to_owned()),
                confidence: None,
                line: None,
                covers,
            });
        }
        let deps = dependency_names(kind, &text);
        if deps.iter().any(|d| NETWORK_MARKERS.contains(&d.as_str())) {
            acc.network_service.push(path.to_owned());
        }
    } else if lic_file && findings.is_empty() {
        for (id, score) in detect_text(&text) {
            acc.detected.entry(dir.clone()).or_default().insert(id.clone());
            findings.push(Finding {
                valid: true,
                expression: id,
                origin: Origin::Text,
                confidence: Some((score * 1000.0).round() / 1000.0),
                line: None,
                covers: vec![],
            });
        }
        if !findings.is_empty() {
            acc.covered_dirs.insert(dir.clone());
        }
    }
    if findings.is_empty() {
        let e = acc.untagged.entry(dir).or_default();
        e.0 += 1;
        if e.1.len() < 3 {
            e.1.push(path.to_owned());
        }
    } else {
        acc.findings.push(FileLicenses {
            path: path.to_owned(),
            findings,
        });
    }
}

fn covered(dir: &str, covered_dirs: &BTreeSet<String>) -> bool {
    let mut d = dir;
    loop {
        if covered_dirs.contains(d) {
            return true;
        }
        if d.is_empty() {
            return false;
        }
        d = dir_of(d);
    }
}

fn finish(acc: Acc, source: &str, started: Instant) -> ScanReport {
    // Licences and their files.
    let mut by_id: BTreeMap<String, (u64, Vec<String>)> = BTreeMap::new();
    for f in &acc.findings {
        let mut ids: BTreeSet<String> = BTreeSet::new();
        for x in &f.findings {
            ids.extend(manifest::ids(&x.expression));
        }
        for id in ids {
            let e = by_id.entry(id).or_default();
            e.0 += 1;
            if e.1.len() < EXAMPLES {
                e.1.push(f.path.clone());
            }
        }
    }
    let mut licenses: Vec<LicenseFiles> = by_id
        .into_iter()
        .map(|(id, (count, files))| LicenseFiles {
            name: spdx::license_id(&id).map(|l| l.full_name.to_owned()),
            id,
            count,
            files,
        })
        .collect();
    licenses.sort_by(|a, b| b.count.cmp(&a.count).then(a.id.cmp(&b.id)));

    // Files without information: untagged files in directories no declaration covers.
    let mut without_info_count = 0;
    let mut without_info = Vec::new();
    let mut dirs: Vec<_> = acc.untagged.iter().collect();
    dirs.sort_by(|a, b| a.0.cmp(b.0));
    for (dir, (count, examples)) in dirs {
        if covered(dir, &acc.covered_dirs) {
            continue;
        }
        let globbed: Vec<&String> = examples
            .iter()
            .filter(|p| {
                acc.globs.iter().any(|(base, g)| {
                    let rel = if base.is_empty() {
                        p.as_str()
                    } else {
                        p.strip_prefix(&format!("{base}/")).unwrap_or("")
                    };
                    !rel.is_empty() && manifest::glob_match(g, rel)
                })
            })
            .collect();
        if globbed.len() == examples.len() && !examples.is_empty() {
            continue;
        }
        without_info_count += count;
        for e in examples {
            if without_info.len() < EXAMPLES {
                without_info.push(e.clone());
            }
        }
    }

    // Declared vs detected, per directory with both.
    let mut disagreements = Vec::new();
    for (dir, decls) in &acc.declared {
        let Some(found) = acc.detected.get(dir) else { continue };
        for (kind, expr) in decls {
            let fam = |v: &mut dyn Iterator<Item = String>| -> BTreeSet<String> {
                v.map(|i| manifest::text_family(&i).to_owned()).collect()
            };
            let declared = fam(&mut manifest::ids(expr).into_iter());
            if declared.is_empty() || declared != fam(&mut found.iter().cloned()) {
                disagreements.push(Disagreement {
                    directory: dir.clone(),
                    manifest: kind.clone(),
                    declared: expr.clone(),
                    detected: found.iter().cloned().collect(),
                });
            }
        }
    }

    let warnings = crate::compat::check(&acc.findings, &acc.declared, &acc.network_service);
    ScanReport {
        source: source.to_owned(),
        files: acc.files,
        bytes_read: acc.bytes,
        binary: acc.binary,
        skipped_count: acc.skipped_count,
        skipped: acc.skipped,
        findings: acc.findings,
        summary: ScanSummary {
            licenses,
            without_info_count,
            without_info,
            disagreements,
        },
        warnings,
        duration_ms: started.elapsed().as_millis() as u64,
        note: NOTE.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::MemoryTree;

    fn run(t: &MemoryTree) -> ScanReport {
        scan(t, "test", &AtomicBool::new(false), &mut |_| {}).unwrap()
    }

    #[test]
    fn tags_texts_and_manifests_are_found_with_their_origin() {
        let mit = spdx::license_id("MIT").unwrap().text();
        let apache = spdx::license_id("Apache-2.0").unwrap().text();
        let t = MemoryTree::new([
            (
                "Cargo.toml",
                b"[package]\nname = \"x\"\nlicense = \"MIT OR Apache-2.0\"\n".as_slice(),
            ),
            ("LICENSE-MIT", mit.as_bytes()),
            ("LICENSE-APACHE", apache.as_bytes()),
            (
                "src/a.rs",
                b"// SPDX-License-Identifier: GPL-2.0-only\nfn main() {}\n".as_slice(),
            ),
            ("src/b.c", b"/* SPDX-License-Identifier: MIT */\n".as_slice()),
            ("src/c.rs", b"fn nothing() {}\n".as_slice()),
            ("img.png", b"\x89PNG\0\0\0".as_slice()),
            ("other/x.py", b"print(1)\n".as_slice()),
        ]);
        let r = run(&t);
        let get = |p: &str| r.findings.iter().find(|f| f.path == p).unwrap().findings.clone();
        assert_eq!(get("src/a.rs")[0].expression, "GPL-2.0-only");
        assert_eq!(get("src/a.rs")[0].origin, Origin::Tag);
        assert_eq!(get("src/a.rs")[0].line, Some(1));
        assert_eq!(get("src/b.c")[0].expression, "MIT");
        let m = &get("LICENSE-MIT")[0];
        assert_eq!((m.expression.as_str(), &m.origin), ("MIT", &Origin::Text));
        assert!(m.confidence.unwrap() > 0.9);
        assert_eq!(get("LICENSE-APACHE")[0].expression, "Apache-2.0");
        assert_eq!(get("Cargo.toml")[0].origin, Origin::Manifest("Cargo.toml".into()));
        assert_eq!(r.binary, 1);
        // src/c.rs is covered by the root's declaration; other/x.py is too (the root covers everything below).
        assert_eq!(r.summary.without_info_count, 0);
        assert!(r.summary.disagreements.is_empty(), "{:?}", r.summary.disagreements);
        // GPL-2.0-only inside an MIT/Apache whole: both rules fire.
        let rules: Vec<_> = r.warnings.iter().map(|w| w.rule.as_str()).collect();
        assert!(rules.contains(&"copyleft-in-permissive"), "{rules:?}");
        assert!(rules.contains(&"gpl2-apache2"), "{rules:?}");
        assert!(!rules.contains(&"agpl-network"));
        assert_eq!(r.summary.licenses.iter().find(|l| l.id == "MIT").unwrap().count, 3);
    }

    #[test]
    fn disagreement_and_missing_information_are_reported() {
        let gpl = spdx::license_id("GPL-3.0-only").unwrap().text();
        let t = MemoryTree::new([
            (
                "lib/package.json",
                br#"{"name":"l","license":"MIT","dependencies":{"express":"4"}}"#.as_slice(),
            ),
            ("lib/LICENSE", gpl.as_bytes()),
            ("tool/main.go", b"package main\n".as_slice()),
            (
                "agpl/x.js",
                b"// SPDX-License-Identifier: AGPL-3.0-or-later\n".as_slice(),
            ),
        ]);
        let r = run(&t);
        assert_eq!(r.summary.disagreements.len(), 1);
        assert_eq!(r.summary.disagreements[0].declared, "MIT");
        let d = &r.summary.disagreements[0].detected;
        assert!(d == &["GPL-3.0-only"] || d == &["GPL-3.0-or-later"], "{d:?}");
        assert_eq!(r.summary.without_info, ["tool/main.go"]);
        assert!(r.warnings.iter().any(|w| w.rule == "agpl-network"), "{:?}", r.warnings);
    }

    #[test]
    fn cancel_stops_the_scan() {
        let t = MemoryTree::new([("a", b"x".as_slice())]);
        let c = AtomicBool::new(true);
        assert!(matches!(scan(&t, "t", &c, &mut |_| {}), Err(TreeError::Cancelled)));
    }
}
