//! cacheos-bench-license: licence detection accuracy and speed on real code, in one run, against Debian's
//! `licensecheck` and ScanCode on the same files.
//!
//! The crates are a fixed list (`data/license-crates.txt`) of directories below `~/.cargo/registry/src/*/`. Each
//! declares a licence expression in its Cargo.toml; the licence FILES at its top level (LICENSE*, COPYING* …) are
//! copied into one temporary tree, and each tool is asked which licences those files hold, ignoring the manifest.
//! A crate agrees when the set of licence families found equals the set the declared expression names (a licence
//! text cannot tell `-only` from `-or-later`, so `GPL-3.0-only` and `GPL-3.0-or-later` are one family). Speed is
//! files per second over the same files, wall clock, one process per tool, single-threaded where the tool allows.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use cacheos_license::{manifest, scan};
use clap::Parser;

/// Licence detection accuracy and speed.
#[derive(Debug, Parser)]
struct Args {
    /// The cargo registry's source directory (default: the first `~/.cargo/registry/src/*`).
    #[arg(long)]
    registry: Option<PathBuf>,
    /// The ScanCode executable (e.g. a venv's `bin/scancode`); skipped when absent.
    #[arg(long)]
    scancode: Option<PathBuf>,
    /// Skip licensecheck.
    #[arg(long)]
    no_licensecheck: bool,
    /// At most this many crates of the list.
    #[arg(long)]
    limit: Option<usize>,
    /// Print each disagreement.
    #[arg(long)]
    verbose: bool,
}

const LIST: &str = include_str!("../data/license-crates.txt");

struct Crate {
    dir: String,
    declared: BTreeSet<String>,
    files: Vec<String>,
}

fn families(ids: impl IntoIterator<Item = String>) -> BTreeSet<String> {
    ids.into_iter().map(|i| manifest::text_family(&i).to_owned()).collect()
}

fn registry(args: &Args) -> Result<PathBuf> {
    if let Some(r) = &args.registry {
        return Ok(r.clone());
    }
    let home = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cargo"));
    let src = home.join("registry/src");
    let mut dirs: Vec<_> = std::fs::read_dir(&src)
        .with_context(|| format!("reading {}", src.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    dirs.sort();
    dirs.into_iter().next().context("no registry source directory")
}

fn load(reg: &Path, limit: Option<usize>) -> (Vec<Crate>, usize, usize) {
    let (mut missing, mut no_files) = (0, 0);
    let mut out = Vec::new();
    for dir in LIST.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        if limit.is_some_and(|l| out.len() >= l) {
            break;
        }
        let base = reg.join(dir);
        let Ok(toml) = std::fs::read_to_string(base.join("Cargo.toml")) else {
            missing += 1;
            continue;
        };
        let Some(d) = manifest::parse("Cargo.toml", &toml).into_iter().next() else {
            missing += 1;
            continue;
        };
        let mut files: Vec<String> = std::fs::read_dir(&base)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| scan::is_license_file(n))
            .collect();
        files.sort();
        if files.is_empty() {
            no_files += 1;
            continue;
        }
        out.push(Crate {
            dir: dir.to_owned(),
            declared: families(manifest::ids(&d.expression)),
            files,
        });
    }
    (out, missing, no_files)
}

struct Outcome {
    tool: &'static str,
    /// crate dir → families found.
    found: BTreeMap<String, BTreeSet<String>>,
    elapsed: Duration,
}

fn ours(root: &Path, crates: &[Crate]) -> Outcome {
    let started = Instant::now();
    let _ = scan::store(); // loading the licence store is part of the cost
    let mut found = BTreeMap::new();
    for c in crates {
        let mut ids = BTreeSet::new();
        for f in &c.files {
            let bytes = std::fs::read(root.join(&c.dir).join(f)).unwrap_or_default();
            let text = String::from_utf8_lossy(&bytes);
            ids.extend(scan::detect_text(&text).into_iter().map(|(id, _)| id));
        }
        found.insert(c.dir.clone(), families(ids));
    }
    Outcome {
        tool: "cacheos (spdx crate)",
        found,
        elapsed: started.elapsed(),
    }
}

/// licensecheck names → SPDX identifiers (its `spdx` scheme still uses a few Debian names).
fn licensecheck_ids(name: &str) -> Vec<String> {
    name.split([' ', ','])
        .filter(|w| !w.is_empty() && !matches!(*w, "and/or" | "or" | "and" | "AND" | "OR" | "UNKNOWN"))
        .map(|w| match w {
            "Expat" => "MIT".to_owned(),
            "Apache-2.0" | "Apache-2" => "Apache-2.0".to_owned(),
            "BSL-1.0" | "BSL" => "BSL-1.0".to_owned(),
            "Unlicense" | "The-Unlicense" => "Unlicense".to_owned(),
            w => manifest::normalise(w),
        })
        .collect()
}

fn licensecheck(root: &Path, crates: &[Crate]) -> Result<Outcome> {
    let started = Instant::now();
    let out = Command::new("licensecheck")
        .args([
            "--machine",
            "--shortname-scheme=spdx",
            "--recursive",
            "--check=.",
            "--lines=0",
        ])
        .arg(root)
        .output()
        .context("running licensecheck (scripts/host-deps installs it)")?;
    let elapsed = started.elapsed();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut by_file: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text.lines() {
        let mut parts = line.split('\t');
        let (Some(path), Some(lic)) = (parts.next(), parts.next()) else {
            continue;
        };
        let rel = Path::new(path)
            .strip_prefix(root)
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        by_file.insert(rel, licensecheck_ids(lic));
    }
    Ok(Outcome {
        tool: "licensecheck",
        found: collect(crates, &by_file),
        elapsed,
    })
}

fn collect(crates: &[Crate], by_file: &BTreeMap<String, Vec<String>>) -> BTreeMap<String, BTreeSet<String>> {
    crates
        .iter()
        .map(|c| {
            let ids = c
                .files
                .iter()
                .flat_map(|f| by_file.get(&format!("{}/{f}", c.dir)).cloned().unwrap_or_default());
            (c.dir.clone(), families(ids))
        })
        .collect()
}

fn scancode(exe: &Path, root: &Path, crates: &[Crate]) -> Result<Outcome> {
    let json = root.with_extension("scancode.json");
    let started = Instant::now();
    let st = Command::new(exe)
        .args(["--license", "--quiet", "-n", "1", "--timeout", "120", "--json"])
        .arg(&json)
        .arg(root)
        .status()
        .context("running scancode")?;
    let elapsed = started.elapsed();
    if !st.success() {
        bail!("scancode exited with {st}");
    }
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json)?)?;
    let name = root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut by_file = BTreeMap::new();
    for f in v["files"].as_array().into_iter().flatten() {
        let Some(path) = f["path"].as_str() else { continue };
        let rel = path.strip_prefix(&format!("{name}/")).unwrap_or(path).to_owned();
        let expr = f["detected_license_expression_spdx"].as_str().unwrap_or("");
        by_file.insert(rel, manifest::ids(expr));
    }
    Ok(Outcome {
        tool: "ScanCode",
        found: collect(crates, &by_file),
        elapsed,
    })
}

fn main() -> Result<()> {
    let args = Args::parse();
    let reg = registry(&args)?;
    let (crates, missing, no_files) = load(&reg, args.limit);
    let tmp = tempfile::tempdir()?;
    let root = tmp.path().join("licences");
    let mut nfiles = 0usize;
    let mut bytes = 0u64;
    for c in &crates {
        std::fs::create_dir_all(root.join(&c.dir))?;
        for f in &c.files {
            bytes += std::fs::copy(reg.join(&c.dir).join(f), root.join(&c.dir).join(f))?;
            nfiles += 1;
        }
    }
    println!(
        "cacheos-bench-license: {} crates with licence files from {} ({} files, {} KiB); {missing} of the list missing, {no_files} without licence files",
        crates.len(),
        reg.display(),
        nfiles,
        bytes / 1024
    );
    let mut outcomes = vec![ours(&root, &crates)];
    if !args.no_licensecheck {
        match licensecheck(&root, &crates) {
            Ok(o) => outcomes.push(o),
            Err(e) => println!("licensecheck: not run ({e:#})"),
        }
    }
    if let Some(exe) = &args.scancode {
        match scancode(exe, &root, &crates) {
            Ok(o) => outcomes.push(o),
            Err(e) => println!("ScanCode: not run ({e:#})"),
        }
    }
    let base_rate = outcomes
        .iter()
        .find(|o| o.tool == "licensecheck")
        .map(|o| nfiles as f64 / o.elapsed.as_secs_f64());
    println!(
        "{:<22} {:>9} {:>10} {:>10} {:>11} {:>14}",
        "tool", "agree", "accuracy", "wall s", "files/s", "vs licensecheck"
    );
    for o in &outcomes {
        let agree = crates
            .iter()
            .filter(|c| o.found.get(&c.dir) == Some(&c.declared))
            .count();
        let rate = nfiles as f64 / o.elapsed.as_secs_f64();
        println!(
            "{:<22} {:>5}/{:<3} {:>9.1}% {:>10.2} {:>11.1} {:>14}",
            o.tool,
            agree,
            crates.len(),
            100.0 * agree as f64 / crates.len().max(1) as f64,
            o.elapsed.as_secs_f64(),
            rate,
            base_rate
                .map(|b| format!("{:.2}x", rate / b))
                .unwrap_or_else(|| "-".into())
        );
        if args.verbose {
            for c in &crates {
                let got = o.found.get(&c.dir).cloned().unwrap_or_default();
                if got != c.declared {
                    println!("    {}: declared {:?}, found {:?}", c.dir, c.declared, got);
                }
            }
        }
    }
    Ok(())
}
