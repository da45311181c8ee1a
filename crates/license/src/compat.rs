//! The small compatibility rule table. Each rule looks at which licences an expression *requires* (an `OR`
//! alternative that avoids the licence means it is not required) and says what it saw, as information.

use std::collections::BTreeMap;

use crate::scan::{CompatWarning, FileLicenses, EXAMPLES};

/// Strong copyleft licences (the whole work must be under the same licence when distributed).
pub fn is_strong_copyleft(id: &str) -> bool {
    id.starts_with("GPL-") || id.starts_with("AGPL-") || id == "OSL-3.0" || id == "SSPL-1.0" || id.starts_with("EUPL-")
}

/// Permissive licences (attribution and notice only).
pub fn is_permissive(id: &str) -> bool {
    matches!(
        id,
        "MIT"
            | "MIT-0"
            | "Apache-2.0"
            | "BSD-2-Clause"
            | "BSD-3-Clause"
            | "BSD-1-Clause"
            | "0BSD"
            | "ISC"
            | "Zlib"
            | "Unlicense"
            | "CC0-1.0"
            | "BSL-1.0"
            | "Unicode-3.0"
            | "Unicode-DFS-2016"
            | "X11"
            | "PSF-2.0"
            | "Python-2.0"
    )
}

fn id_of(r: &spdx::LicenseReq) -> Option<&'static str> {
    match &r.license {
        spdx::LicenseItem::Spdx { id, .. } => Some(id.name),
        spdx::LicenseItem::Other(_) => None,
    }
}

/// Whether `expr` can only be satisfied by accepting a licence for which `pred` is true.
pub fn requires(expr: &str, pred: impl Fn(&str) -> bool) -> bool {
    let Ok(x) = spdx::Expression::parse_mode(expr, spdx::ParseMode::LAX) else {
        return false;
    };
    !x.evaluate(|r| id_of(r).is_none_or(|id| !pred(id)))
}

/// Whether `expr` can be satisfied with permissive licences alone.
pub fn permissive_whole(expr: &str) -> bool {
    let Ok(x) = spdx::Expression::parse_mode(expr, spdx::ParseMode::LAX) else {
        return false;
    };
    x.evaluate(|r| id_of(r).is_some_and(is_permissive))
}

/// Applies the rules to a scan's findings. `declared` maps directories to manifest declarations;
/// `network_service` lists manifests that depend on a web framework.
pub fn check(
    findings: &[FileLicenses],
    declared: &BTreeMap<String, Vec<(String, String)>>,
    network_service: &[String],
) -> Vec<CompatWarning> {
    let mut out = Vec::new();
    let exprs = || {
        findings
            .iter()
            .flat_map(|f| f.findings.iter().map(move |x| (f.path.as_str(), x)))
    };
    let with = |pred: &dyn Fn(&str) -> bool| -> Vec<String> {
        let mut v: Vec<String> = exprs()
            .filter(|(_, x)| requires(&x.expression, pred))
            .map(|(p, _)| p.to_owned())
            .collect();
        v.dedup();
        v
    };

    // 1. Strong copyleft inside a permissively licensed whole (the shallowest declaration is the whole).
    if let Some((dir, decls)) = declared
        .iter()
        .min_by_key(|(d, _)| d.matches('/').count() + usize::from(!d.is_empty()))
    {
        if let Some((kind, whole)) = decls.iter().find(|(_, e)| permissive_whole(e)) {
            let files = with(&is_strong_copyleft);
            if !files.is_empty() {
                let at = if dir.is_empty() {
                    kind.clone()
                } else {
                    format!("{dir}/{kind}")
                };
                out.push(CompatWarning {
                    rule: "copyleft-in-permissive".into(),
                    message: format!(
                        "{} file(s) require a strong copyleft licence while {at} declares the whole as {whole}; \
                         distributing them together usually means the whole falls under the copyleft terms",
                        files.len()
                    ),
                    files: files.into_iter().take(EXAMPLES).collect(),
                });
            }
        }
    }

    // 2. GPL-2.0-only together with Apache-2.0 (the FSF considers them incompatible).
    let gpl2 = with(&|id| id == "GPL-2.0-only");
    let apache = with(&|id| id == "Apache-2.0");
    if !gpl2.is_empty() && !apache.is_empty() {
        let mut files: Vec<String> = gpl2.iter().take(EXAMPLES / 2).cloned().collect();
        files.extend(apache.iter().take(EXAMPLES / 2).cloned());
        out.push(CompatWarning {
            rule: "gpl2-apache2".into(),
            message: format!(
                "{} file(s) require GPL-2.0-only and {} require Apache-2.0; the FSF regards these two as \
                 incompatible when combined into one program",
                gpl2.len(),
                apache.len()
            ),
            files,
        });
    }

    // 3. AGPL in a network service: section 13 asks to offer the source to users interacting over a network.
    let agpl = with(&|id| id.starts_with("AGPL-"));
    if !agpl.is_empty() && !network_service.is_empty() {
        let mut files: Vec<String> = agpl.iter().take(EXAMPLES / 2).cloned().collect();
        files.extend(network_service.iter().take(EXAMPLES / 2).cloned());
        out.push(CompatWarning {
            rule: "agpl-network".into(),
            message: format!(
                "{} file(s) are under the AGPL and the code looks like a network service ({}); AGPL section 13 \
                 asks that users interacting with it over a network be offered its source",
                agpl.len(),
                network_service.join(", ")
            ),
            files,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requirement_respects_alternatives() {
        assert!(requires("GPL-2.0-only", |i| i == "GPL-2.0-only"));
        assert!(!requires("GPL-2.0-only OR Apache-2.0", |i| i == "GPL-2.0-only"));
        assert!(requires("MIT AND GPL-3.0-or-later", is_strong_copyleft));
        assert!(permissive_whole("MIT OR Apache-2.0"));
        assert!(!permissive_whole("GPL-3.0-only"));
        assert!(!requires("not an expression", |_| true));
    }
}
