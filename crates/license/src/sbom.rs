//! `sbom.create`: the components a tree holds (dpkg status, Cargo.lock, package-lock.json, requirements.txt,
//! pyproject.toml, installed Python distributions) with their licences, as SPDX 2.3 JSON and CycloneDX 1.5 JSON.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::manifest;
use crate::tree::{Entry, SourceTree, TreeError};
use crate::util::{pct, rfc3339, uuid4};

/// One software component.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
pub struct Component {
    /// Package ecosystem: `deb`, `cargo`, `npm`, `pypi`.
    pub ecosystem: String,
    /// Package name.
    pub name: String,
    /// Version, when the source says.
    pub version: Option<String>,
    /// Licence expression, when known.
    pub license: Option<String>,
    /// The file it was read from.
    pub found_in: String,
}

impl Component {
    /// Its package URL.
    pub fn purl(&self) -> String {
        let ty = match self.ecosystem.as_str() {
            "deb" => "deb/debian",
            e => e,
        };
        let name = if self.ecosystem == "npm" {
            self.name.split('/').map(pct).collect::<Vec<_>>().join("/")
        } else {
            pct(&self.name)
        };
        match &self.version {
            Some(v) => format!("pkg:{ty}/{name}@{}", pct(v)),
            None => format!("pkg:{ty}/{name}"),
        }
    }
}

/// The result of `sbom.create`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SbomDocuments {
    /// What it describes.
    pub source: String,
    /// Components by ecosystem.
    pub counts: BTreeMap<String, u64>,
    /// Components without a known licence.
    pub without_license: u64,
    /// Every component.
    pub components: Vec<Component>,
    /// The SPDX 2.3 JSON document.
    #[schema(value_type = Object)]
    pub spdx: Value,
    /// The CycloneDX 1.5 JSON document.
    #[schema(value_type = Object)]
    pub cyclonedx: Value,
}

/// Directories an SBOM walk never enters (virtual file systems, build output, VCS data, vendored trees whose
/// lockfile is read instead).
pub fn prune(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    matches!(path, "proc" | "sys" | "dev" | "run" | "tmp")
        || matches!(name, ".git" | "node_modules" | "target" | "__pycache__" | ".cache")
        || (path.starts_with("usr/share/") && !path.starts_with("usr/share/doc"))
        || path.starts_with("usr/share/doc/") && path.matches('/').count() > 3
}

/// Parses a dpkg status file: installed packages (name, version, architecture).
pub fn parse_dpkg_status(text: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for para in text.split("\n\n") {
        let (mut name, mut ver, mut arch, mut installed) = (None, None, None, false);
        for line in para.lines() {
            if let Some(v) = line.strip_prefix("Package: ") {
                name = Some(v.trim().to_owned());
            } else if let Some(v) = line.strip_prefix("Version: ") {
                ver = Some(v.trim().to_owned());
            } else if let Some(v) = line.strip_prefix("Architecture: ") {
                arch = Some(v.trim().to_owned());
            } else if let Some(v) = line.strip_prefix("Status: ") {
                installed = v.trim().ends_with(" installed");
            }
        }
        if let (Some(n), Some(v), true) = (name, ver, installed) {
            out.push((n, v, arch.unwrap_or_default()));
        }
    }
    out
}

fn combine(exprs: Vec<String>) -> Option<String> {
    let mut e: Vec<String> = exprs.into_iter().filter(|x| valid(x)).collect();
    e.sort();
    e.dedup();
    match e.len() {
        0 => None,
        1 => e.pop(),
        _ => Some(manifest::normalise(
            &e.iter().map(|x| format!("({x})")).collect::<Vec<_>>().join(" AND "),
        )),
    }
}

fn valid(e: &str) -> bool {
    spdx::Expression::parse_mode(e, spdx::ParseMode::LAX).is_ok()
}

/// Components from the files of a tree. Reads `var/lib/dpkg/status` (licences from the packages' DEP-5
/// `usr/share/doc/*/copyright`) and every lockfile and manifest the walk finds.
pub fn collect(tree: &dyn SourceTree, cancel: &AtomicBool) -> Result<Vec<Component>, TreeError> {
    let mut out = Vec::new();
    let mut files = Vec::new();
    tree.walk(cancel, &prune, &mut |e| {
        if let Entry::File { path, .. } = e {
            let name = path.rsplit('/').next().unwrap_or(&path);
            let wanted = path == "var/lib/dpkg/status"
                || matches!(name, "Cargo.lock" | "package-lock.json" | "pyproject.toml")
                || (name.starts_with("requirements") && name.ends_with(".txt"))
                || (name == "METADATA" && path.contains(".dist-info/"));
            if wanted {
                files.push(path);
            }
        }
    })?;
    for path in files {
        let Ok(bytes) = tree.read(&path, 64 * 1024 * 1024) else {
            continue;
        };
        let text = String::from_utf8_lossy(&bytes);
        out.extend(components_of(tree, &path, &text));
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// The components one file lists.
pub fn components_of(tree: &dyn SourceTree, path: &str, text: &str) -> Vec<Component> {
    let name = path.rsplit('/').next().unwrap_or(path);
    let c = |eco: &str, n: &str, v: Option<String>, l: Option<String>| Component {
        ecosystem: eco.into(),
        name: n.into(),
        version: v,
        license: l,
        found_in: path.into(),
    };
    let mut out = Vec::new();
    if path.ends_with("var/lib/dpkg/status") {
        let root = path.trim_end_matches("var/lib/dpkg/status");
        for (n, v, _arch) in parse_dpkg_status(text) {
            let copyright = format!("{root}usr/share/doc/{n}/copyright");
            let lic = tree.read(&copyright, 1024 * 1024).ok().and_then(|b| {
                let d = manifest::parse("debian/copyright", &String::from_utf8_lossy(&b));
                combine(d.into_iter().map(|d| d.expression).collect())
            });
            out.push(c("deb", &n, Some(v), lic));
        }
    } else if name == "Cargo.lock" {
        if let Ok(t) = text.parse::<toml::Table>() {
            for p in t.get("package").and_then(|p| p.as_array()).into_iter().flatten() {
                if let Some(n) = p.get("name").and_then(|n| n.as_str()) {
                    let v = p.get("version").and_then(|v| v.as_str()).map(str::to_owned);
                    out.push(c("cargo", n, v, None));
                }
            }
        }
    } else if name == "package-lock.json" {
        if let Ok(v) = serde_json::from_str::<Value>(text) {
            if let Some(pk) = v.get("packages").and_then(|p| p.as_object()) {
                for (k, p) in pk {
                    let Some(n) = k.rsplit_once("node_modules/").map(|(_, n)| n) else {
                        continue;
                    };
                    let ver = p.get("version").and_then(|v| v.as_str()).map(str::to_owned);
                    let lic = p.get("license").and_then(|l| l.as_str()).map(manifest::normalise);
                    out.push(c("npm", n, ver, lic));
                }
            } else if let Some(deps) = v.get("dependencies").and_then(|p| p.as_object()) {
                for (n, p) in deps {
                    let ver = p.get("version").and_then(|v| v.as_str()).map(str::to_owned);
                    out.push(c("npm", n, ver, None));
                }
            }
        }
    } else if name.starts_with("requirements") {
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() || line.starts_with('-') {
                continue;
            }
            let (n, v) = match line.split_once("==") {
                Some((n, v)) => (n, Some(v.split(';').next().unwrap_or(v).trim().to_owned())),
                None => (
                    line.split(|ch: char| "<>=!~;[ ".contains(ch)).next().unwrap_or(line),
                    None,
                ),
            };
            let n = n.split('[').next().unwrap_or(n).trim();
            if !n.is_empty() {
                out.push(c("pypi", &n.to_ascii_lowercase(), v, None));
            }
        }
    } else if name == "pyproject.toml" {
        if let Ok(t) = text.parse::<toml::Table>() {
            let deps = t
                .get("project")
                .and_then(|p| p.get("dependencies"))
                .and_then(|d| d.as_array());
            for d in deps.into_iter().flatten().filter_map(|d| d.as_str()) {
                let n = d.split(|ch: char| "<>=!~;[ (".contains(ch)).next().unwrap_or(d).trim();
                if !n.is_empty() {
                    out.push(c("pypi", &n.to_ascii_lowercase(), None, None));
                }
            }
        }
    } else if name == "METADATA" {
        let get = |k: &str| {
            text.lines()
                .take_while(|l| !l.is_empty())
                .find_map(|l| l.strip_prefix(k))
                .map(|v| v.trim().to_owned())
        };
        if let Some(n) = get("Name:") {
            let lic = manifest::parse("PKG-INFO/METADATA", text)
                .into_iter()
                .next()
                .map(|d| d.expression);
            out.push(c("pypi", &n.to_ascii_lowercase(), get("Version:"), lic));
        }
    }
    out
}

/// Adds licences from `cargo metadata --format-version 1` output to cargo components without one.
pub fn add_cargo_metadata(components: &mut [Component], metadata: &Value) {
    let mut lic = BTreeMap::new();
    for p in metadata
        .get("packages")
        .and_then(|p| p.as_array())
        .into_iter()
        .flatten()
    {
        if let (Some(n), Some(v), Some(l)) = (
            p.get("name").and_then(|x| x.as_str()),
            p.get("version").and_then(|x| x.as_str()),
            p.get("license").and_then(|x| x.as_str()),
        ) {
            lic.insert((n.to_owned(), v.to_owned()), manifest::normalise(l));
        }
    }
    for c in components
        .iter_mut()
        .filter(|c| c.ecosystem == "cargo" && c.license.is_none())
    {
        if let Some(v) = &c.version {
            c.license = lic.get(&(c.name.clone(), v.clone())).cloned();
        }
    }
}

fn spdx_id(i: usize) -> String {
    format!("SPDXRef-Package-{i}")
}

/// Builds both documents for `components` describing `source` at `now_ms`.
pub fn documents(source: &str, components: Vec<Component>, now_ms: u64, tool_version: &str) -> SbomDocuments {
    let created = rfc3339(now_ms);
    let uuid = uuid4();
    let doc_name = format!("cacheos-sbom-{}", source.replace([' ', ':', '/'], "-"));
    let mut packages = vec![json!({
        "name": source,
        "SPDXID": "SPDXRef-Source",
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": "NOASSERTION",
        "copyrightText": "NOASSERTION",
        "primaryPackagePurpose": "SOURCE",
    })];
    let mut relationships = vec![json!({
        "spdxElementId": "SPDXRef-DOCUMENT",
        "relationshipType": "DESCRIBES",
        "relatedSpdxElement": "SPDXRef-Source",
    })];
    let mut cdx = Vec::new();
    for (i, c) in components.iter().enumerate() {
        let lic = c.license.clone().filter(|l| valid(l));
        let mut p = json!({
            "name": c.name,
            "SPDXID": spdx_id(i),
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": lic.clone().unwrap_or_else(|| "NOASSERTION".into()),
            "copyrightText": "NOASSERTION",
            "externalRefs": [{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": c.purl(),
            }],
            "comment": format!("found in {}", c.found_in),
        });
        if let Some(v) = &c.version {
            p["versionInfo"] = json!(v);
        }
        packages.push(p);
        relationships.push(json!({
            "spdxElementId": "SPDXRef-Source",
            "relationshipType": "CONTAINS",
            "relatedSpdxElement": spdx_id(i),
        }));
        let mut comp = json!({
            "type": "library",
            "bom-ref": format!("{}#{i}", c.purl()),
            "name": c.name,
            "purl": c.purl(),
            "properties": [{"name": "cacheos:found-in", "value": c.found_in}],
        });
        if let Some(v) = &c.version {
            comp["version"] = json!(v);
        }
        match (&lic, &c.license) {
            (Some(l), _) => comp["licenses"] = json!([{ "expression": l }]),
            (None, Some(raw)) => comp["licenses"] = json!([{ "license": { "name": raw } }]),
            _ => {}
        }
        cdx.push(comp);
    }
    let spdx = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": doc_name,
        "documentNamespace": format!("https://cacheos.invalid/spdx/{doc_name}-{uuid}"),
        "creationInfo": {
            "created": created,
            "creators": [format!("Tool: cacheos-{tool_version}")],
            "licenseListVersion": spdx::identifiers::VERSION,
        },
        "packages": packages,
        "relationships": relationships,
    });
    let cyclonedx = json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": format!("urn:uuid:{uuid}"),
        "version": 1,
        "metadata": {
            "timestamp": created,
            "tools": {"components": [{"type": "application", "name": "cacheos", "version": tool_version}]},
            "component": {"type": "application", "bom-ref": "source", "name": source},
        },
        "components": cdx,
    });
    let mut counts = BTreeMap::new();
    for c in &components {
        *counts.entry(c.ecosystem.clone()).or_insert(0) += 1;
    }
    SbomDocuments {
        source: source.to_owned(),
        counts,
        without_license: components.iter().filter(|c| c.license.is_none()).count() as u64,
        components,
        spdx,
        cyclonedx,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::tree::MemoryTree;

    pub(crate) fn fixture() -> MemoryTree {
        MemoryTree::new([
            (
                "var/lib/dpkg/status",
                b"Package: bash\nStatus: install ok installed\nArchitecture: amd64\nVersion: 5.2.15-2+b2\n\nPackage: gone\nStatus: deinstall ok config-files\nVersion: 1\n\nPackage: libc6\nStatus: install ok installed\nVersion: 2.36-9\n".as_slice(),
            ),
            (
                "usr/share/doc/bash/copyright",
                b"Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nLicense: GPL-3+\n".as_slice(),
            ),
            ("srv/app/Cargo.lock", b"version = 3\n[[package]]\nname = \"serde\"\nversion = \"1.0.200\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\n".as_slice()),
            ("srv/web/package-lock.json", br#"{"lockfileVersion":3,"packages":{"":{"name":"w"},"node_modules/@scope/x":{"version":"1.2.3","license":"MIT"},"node_modules/left-pad":{"version":"1.3.0","license":"WTFPL"}}}"#.as_slice()),
            ("srv/py/requirements.txt", b"# deps\nrequests==2.31.0\nflask>=2\n-r other.txt\n".as_slice()),
            ("usr/lib/python3/dist-packages/idna-3.3.dist-info/METADATA", b"Metadata-Version: 2.1\nName: idna\nVersion: 3.3\nLicense: BSD-3-Clause\n\nbody".as_slice()),
            ("srv/web/node_modules/x/package.json", b"{}".as_slice()),
        ])
    }

    #[test]
    fn components_come_from_every_source_with_licences() {
        let t = fixture();
        let c = collect(&t, &AtomicBool::new(false)).unwrap();
        let find = |n: &str| c.iter().find(|x| x.name == n).unwrap_or_else(|| panic!("{n} in {c:?}"));
        assert_eq!(find("bash").license.as_deref(), Some("GPL-3.0-or-later"));
        assert_eq!(find("bash").purl(), "pkg:deb/debian/bash@5.2.15-2%2Bb2");
        assert!(c.iter().all(|x| x.name != "gone"));
        assert_eq!(find("serde").version.as_deref(), Some("1.0.200"));
        assert_eq!(find("@scope/x").purl(), "pkg:npm/%40scope/x@1.2.3");
        assert_eq!(find("requests").version.as_deref(), Some("2.31.0"));
        assert_eq!(find("flask").version, None);
        assert_eq!(find("idna").license.as_deref(), Some("BSD-3-Clause"));
        assert_eq!(c.len(), 8, "{c:?}");
        let d = documents("sandbox web", c, 1_796_219_314_000, "0.1.0");
        assert_eq!(d.spdx["packages"].as_array().unwrap().len(), 9);
        assert_eq!(d.cyclonedx["components"].as_array().unwrap().len(), 8);
        assert_eq!(d.counts["deb"], 2);
    }
}
