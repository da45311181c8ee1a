//! `cacheosctl license|sbom|notice|proof|disclosure` (issue 18): clap definitions mapped one-to-one onto the
//! Manager's licence methods, with short human output and the REST documents under `--json`.

use cacheos_dbus::client::ManagerProxy;
use cacheosctl::{failure, parse_json, Failure};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

/// A drive or a sandbox and a path below it.
#[derive(Debug, Args)]
pub struct Source {
    /// An attached drive (its first mounted file system).
    #[arg(long, conflicts_with = "sandbox")]
    drive: Option<String>,
    /// A running sandbox (its root file system).
    #[arg(long)]
    sandbox: Option<String>,
    /// A relative path below the drive or sandbox root.
    #[arg(default_value = "")]
    path: String,
}

impl Source {
    fn body(&self) -> Value {
        let mut v = json!({ "path": self.path });
        if let Some(d) = &self.drive {
            v["drive"] = json!(d);
        }
        if let Some(s) = &self.sandbox {
            v["sandbox"] = json!(s);
        }
        v
    }
}

#[derive(Debug, Subcommand)]
pub enum LicenseCmd {
    /// Licences per file below a drive's or sandbox's path, a summary and compatibility notes (license.scan).
    Scan {
        #[command(flatten)]
        source: Source,
        /// A name for the job (for `license cancel`).
        #[arg(long)]
        job: Option<String>,
    },
    /// Stop a running licence job (license.cancel).
    Cancel {
        /// The job's name.
        job: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum SbomCmd {
    /// SPDX 2.3 and CycloneDX 1.5 of a sandbox, a drive path or the appliance (sbom.create).
    Create {
        #[command(flatten)]
        source: Source,
        /// Describe the appliance itself.
        #[arg(long, conflicts_with_all = ["drive", "sandbox"])]
        appliance: bool,
        /// Print only this document.
        #[arg(long, value_parser = ["spdx", "cyclonedx"])]
        format: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum NoticeCmd {
    /// A third-party notice with licence texts grouped by licence (notice.create).
    Create {
        #[command(flatten)]
        source: Source,
        /// Describe the appliance itself.
        #[arg(long, conflicts_with_all = ["drive", "sandbox"])]
        appliance: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProofCmd {
    /// A signed proof of existence of the files below a path (proof.create); prints the manifest with --json.
    Create {
        #[command(flatten)]
        source: Source,
    },
    /// Check a proof: a manifest file, the root of a kept proof, or the newest (proof.verify).
    Verify {
        /// A manifest as printed by `proof create --json`.
        #[arg(long, conflicts_with = "root")]
        manifest: Option<std::path::PathBuf>,
        /// The root (or its first 8+ hex digits) of a proof this appliance made.
        #[arg(long)]
        root: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum DisclosureCmd {
    /// Draft an invention disclosure citing the newest proof (disclosure.draft); nothing is filed.
    Draft {
        /// Title.
        title: String,
        /// What it is about.
        #[arg(long, default_value = "")]
        text: String,
        /// Language of the draft.
        #[arg(long, value_parser = ["de", "en"])]
        language: Option<String>,
        /// Root of the proof to cite.
        #[arg(long)]
        proof: Option<String>,
    },
}

fn print_scan(v: &Value) {
    println!(
        "{}: {} files, {} with licence information",
        v["source"].as_str().unwrap_or(""),
        v["files"],
        v["findings"].as_array().map_or(0, |a| a.len())
    );
    for l in v["summary"]["licenses"].as_array().into_iter().flatten() {
        println!("  {:<24} {} files", l["id"].as_str().unwrap_or(""), l["count"]);
    }
    println!("without licence information: {}", v["summary"]["without_info_count"]);
    for d in v["summary"]["disagreements"].as_array().into_iter().flatten() {
        println!(
            "disagreement in {}/: {} declares {}, licence files say {}",
            d["directory"].as_str().unwrap_or(""),
            d["manifest"].as_str().unwrap_or(""),
            d["declared"].as_str().unwrap_or(""),
            d["detected"]
        );
    }
    for w in v["warnings"].as_array().into_iter().flatten() {
        println!(
            "note ({}): {}",
            w["rule"].as_str().unwrap_or(""),
            w["message"].as_str().unwrap_or("")
        );
    }
    println!("{}", v["note"].as_str().unwrap_or(""));
}

fn print_proof(v: &Value) {
    println!(
        "proof of {} at {}: {} files",
        v["source"].as_str().unwrap_or(""),
        v["created"].as_str().unwrap_or(""),
        v["files"].as_array().map_or(0, |a| a.len())
    );
    println!("root       {}", v["root"].as_str().unwrap_or(""));
    println!("public key {}", v["public_key"].as_str().unwrap_or(""));
}

fn print_verify(v: &Value) {
    let ok = v["intact"].as_bool().unwrap_or(false);
    println!(
        "{}: {}",
        v["source"].as_str().unwrap_or(""),
        if ok { "intact" } else { "NOT intact" }
    );
    println!(
        "root {}, signature {}, our key {}, time stamp {}",
        v["root_matches"],
        v["signature_valid"],
        v["key_is_ours"],
        v["timestamp"].as_str().unwrap_or("")
    );
    for c in v["changes"].as_array().into_iter().flatten() {
        println!(
            "  {} {}",
            c["change"].as_str().unwrap_or(""),
            c["path"].as_str().unwrap_or("")
        );
    }
}

fn usage(message: String) -> Failure {
    Failure { code: 2, message }
}

/// Runs one of the licence commands.
pub async fn license_cmd(
    proxy: &ManagerProxy<'_>,
    action: LicenseCmd,
    emit: impl Fn(&Value, fn(&Value)),
) -> Result<(), Failure> {
    match action {
        LicenseCmd::Scan { source, job } => {
            let mut b = source.body();
            if let Some(j) = job {
                b["job"] = json!(j);
            }
            emit(
                &parse_json(&proxy.scan_licenses(&b.to_string()).await.map_err(failure)?)?,
                print_scan,
            );
        }
        LicenseCmd::Cancel { job } => emit(
            &parse_json(&proxy.cancel_license_job(&job).await.map_err(failure)?)?,
            |v| println!("{}", v["message"].as_str().unwrap_or("")),
        ),
    }
    Ok(())
}

/// `sbom create`.
pub async fn sbom_cmd(proxy: &ManagerProxy<'_>, action: SbomCmd, json_out: bool) -> Result<(), Failure> {
    let SbomCmd::Create {
        source,
        appliance,
        format,
    } = action;
    let b = if appliance {
        json!({ "appliance": true })
    } else {
        source.body()
    };
    let v = parse_json(&proxy.create_sbom(&b.to_string()).await.map_err(failure)?)?;
    let doc = match format.as_deref() {
        Some("spdx") => &v["spdx"],
        Some("cyclonedx") => &v["cyclonedx"],
        _ if json_out => &v,
        _ => {
            println!(
                "{}: {} components {}, {} without a known licence",
                v["source"].as_str().unwrap_or(""),
                v["components"].as_array().map_or(0, |a| a.len()),
                v["counts"],
                v["without_license"]
            );
            println!("(--format spdx or --format cyclonedx prints a document)");
            return Ok(());
        }
    };
    println!("{}", serde_json::to_string_pretty(doc).unwrap_or_default());
    Ok(())
}

/// `notice create`.
pub async fn notice_cmd(
    proxy: &ManagerProxy<'_>,
    action: NoticeCmd,
    emit: impl Fn(&Value, fn(&Value)),
) -> Result<(), Failure> {
    let NoticeCmd::Create { source, appliance } = action;
    let b = if appliance {
        json!({ "appliance": true })
    } else {
        source.body()
    };
    emit(
        &parse_json(&proxy.create_notice(&b.to_string()).await.map_err(failure)?)?,
        |v| print!("{}", v["text"].as_str().unwrap_or("")),
    );
    Ok(())
}

/// `proof create|verify`.
pub async fn proof_cmd(
    proxy: &ManagerProxy<'_>,
    action: ProofCmd,
    emit: impl Fn(&Value, fn(&Value)),
) -> Result<(), Failure> {
    match action {
        ProofCmd::Create { source } => emit(
            &parse_json(&proxy.create_proof(&source.body().to_string()).await.map_err(failure)?)?,
            print_proof,
        ),
        ProofCmd::Verify { manifest, root } => {
            let b = match (manifest, root) {
                (Some(p), _) => {
                    let text =
                        std::fs::read_to_string(&p).map_err(|e| usage(format!("cannot read {}: {e}", p.display())))?;
                    let m: Value =
                        serde_json::from_str(&text).map_err(|e| usage(format!("{} is not JSON: {e}", p.display())))?;
                    json!({ "manifest": m })
                }
                (None, Some(r)) => json!({ "root": r }),
                (None, None) => json!({}),
            };
            emit(
                &parse_json(&proxy.verify_proof(&b.to_string()).await.map_err(failure)?)?,
                print_verify,
            );
        }
    }
    Ok(())
}

/// `disclosure draft`.
pub async fn disclosure_cmd(
    proxy: &ManagerProxy<'_>,
    action: DisclosureCmd,
    emit: impl Fn(&Value, fn(&Value)),
) -> Result<(), Failure> {
    let DisclosureCmd::Draft {
        title,
        text,
        language,
        proof,
    } = action;
    let mut b = json!({ "title": title, "text": text });
    if let Some(l) = language {
        b["language"] = json!(l);
    }
    if let Some(p) = proof {
        b["proof"] = json!(p);
    }
    emit(
        &parse_json(&proxy.draft_disclosure(&b.to_string()).await.map_err(failure)?)?,
        |v| print!("{}", v["markdown"].as_str().unwrap_or("")),
    );
    Ok(())
}
