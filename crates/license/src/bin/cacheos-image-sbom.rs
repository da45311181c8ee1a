//! cacheos-image-sbom: the image's own SBOM of CacheOS's crates, made at image build time (image/build).
//!
//! usage: cacheos-image-sbom LOCKFILE METADATA_JSON OUT_DIR
//! Reads Cargo.lock and `cargo metadata --format-version 1 --locked` output (for the licences) and writes
//! OUT_DIR/crates.json (the components, read by `sbom.create {appliance}` together with the running image's dpkg
//! status), OUT_DIR/cacheos-crates.spdx.json and OUT_DIR/cacheos-crates.cdx.json.

use std::path::PathBuf;
use std::process::ExitCode;

use cacheos_license::{sbom, MemoryTree};

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [lock, meta, out] = args.as_slice() else {
        return Err("usage: cacheos-image-sbom LOCKFILE METADATA_JSON OUT_DIR".into());
    };
    let lock_text = std::fs::read_to_string(lock).map_err(|e| format!("cannot read {lock}: {e}"))?;
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(meta).map_err(|e| format!("cannot read {meta}: {e}"))?)
            .map_err(|e| format!("{meta} is not cargo metadata JSON: {e}"))?;
    let mut c = sbom::components_of(&MemoryTree::default(), "Cargo.lock", &lock_text);
    sbom::add_cargo_metadata(&mut c, &meta);
    for x in &mut c {
        x.found_in = "CacheOS build (Cargo.lock)".into();
    }
    let out = PathBuf::from(out);
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let docs = sbom::documents("CacheOS crates", c.clone(), now, env!("CARGO_PKG_VERSION"));
    let write = |name: &str, v: &serde_json::Value| {
        std::fs::write(out.join(name), serde_json::to_vec_pretty(v).unwrap_or_default())
            .map_err(|e| format!("cannot write {name}: {e}"))
    };
    write("crates.json", &serde_json::to_value(&c).map_err(|e| e.to_string())?)?;
    write("cacheos-crates.spdx.json", &docs.spdx)?;
    write("cacheos-crates.cdx.json", &docs.cyclonedx)?;
    eprintln!(
        "cacheos-image-sbom: {} crates ({} without a licence) -> {}",
        c.len(),
        docs.without_license,
        out.display()
    );
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cacheos-image-sbom: {e}");
            ExitCode::FAILURE
        }
    }
}
