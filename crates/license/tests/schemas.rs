//! The SBOMs validate against the official SPDX 2.3 and CycloneDX 1.5 JSON schemas kept in `schemas/`
//! (from PyPI lib4sbom 0.10.4, which ships the upstream files), checked by Python's jsonschema (`validate.py`;
//! `python3-jsonschema` is in scripts/host-deps). A broken document must fail, so the check itself is tested.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::AtomicBool;

use cacheos_license::{sbom, MemoryTree};

fn validate(schema: &str, doc: &serde_json::Value) -> (bool, String) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tmp = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(tmp.path(), serde_json::to_vec(doc).unwrap()).unwrap();
    let out = Command::new("python3")
        .arg(dir.join("tests/validate.py"))
        .arg(dir.join("schemas").join(schema))
        .arg(tmp.path())
        .output()
        .expect("python3 runs (scripts/host-deps installs python3-jsonschema)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        !text.contains("ModuleNotFoundError"),
        "python3-jsonschema missing: {text}"
    );
    (out.status.success(), text)
}

fn documents() -> sbom::SbomDocuments {
    let t = MemoryTree::new([
        (
            "var/lib/dpkg/status",
            b"Package: bash\nStatus: install ok installed\nVersion: 1:5.2.15-2+b2\nArchitecture: amd64\n".as_slice(),
        ),
        (
            "usr/share/doc/bash/copyright",
            b"Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nLicense: GPL-3+\n\nFiles: x\nLicense: weird-thing\n"
                .as_slice(),
        ),
        ("app/Cargo.lock", b"version = 3\n[[package]]\nname = \"serde\"\nversion = \"1.0.200\"\n".as_slice()),
        (
            "web/package-lock.json",
            br#"{"lockfileVersion":3,"packages":{"node_modules/@a/b":{"version":"1.0.0","license":"(MIT OR ISC)"},"node_modules/c":{"version":"2.0.0","license":"Custom licence"}}}"#
                .as_slice(),
        ),
        ("py/requirements.txt", b"requests==2.31.0\nflask\n".as_slice()),
    ]);
    let c = sbom::collect(&t, &AtomicBool::new(false)).unwrap();
    assert_eq!(c.len(), 6);
    sbom::documents("sandbox web", c, 1_796_219_314_000, "0.1.0")
}

#[test]
fn spdx_2_3_document_is_valid() {
    let d = documents();
    let (ok, why) = validate("spdx-2.3.schema.json", &d.spdx);
    assert!(ok, "{why}\n{}", serde_json::to_string_pretty(&d.spdx).unwrap());
    let mut broken = d.spdx.clone();
    broken["packages"][1]["filesAnalyzed"] = serde_json::json!("no");
    assert!(!validate("spdx-2.3.schema.json", &broken).0);
}

#[test]
fn cyclonedx_1_5_document_is_valid() {
    let d = documents();
    let (ok, why) = validate("bom-1.5.schema.json", &d.cyclonedx);
    assert!(ok, "{why}\n{}", serde_json::to_string_pretty(&d.cyclonedx).unwrap());
    let mut broken = d.cyclonedx.clone();
    broken["components"][0]["type"] = serde_json::json!("spaceship");
    assert!(!validate("bom-1.5.schema.json", &broken).0);
}
