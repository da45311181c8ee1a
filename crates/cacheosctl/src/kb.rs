//! `cacheosctl kb …` (issue 17): index a source with a progress bar drawn from the daemon's `kb-index` events,
//! list sources, search, ask (answers quoted with numbered citations), remove and cancel.

use cacheos_dbus::client::ManagerProxy;
use cacheosctl::{failure, parse_json, Failure};
use clap::Subcommand;
use futures_util::StreamExt;
use serde_json::Value;

/// `cacheosctl kb` subcommands.
#[derive(Debug, Subcommand)]
pub enum KbCmd {
    /// Index `docs` or an attached drive, optionally only PATH below it (kb.index); shows a progress bar until the
    /// job ends (Ctrl-C leaves it running; `kb cancel` stops it).
    Index {
        /// `docs` or a drive name.
        source: String,
        /// A relative path below the drive's file system.
        path: Option<String>,
        /// Return as soon as the job started.
        #[arg(long)]
        no_wait: bool,
    },
    /// The indexed sources (kb.sources).
    Sources,
    /// Ranked passages with their citations (kb.search).
    Search {
        /// At most this many passages.
        #[arg(long, default_value_t = 5)]
        limit: u32,
        /// Words to look for.
        query: Vec<String>,
    },
    /// Answer a question from the indexed documents with numbered citations (kb.ask).
    Ask {
        /// The question.
        question: Vec<String>,
    },
    /// Forget a source and its passages; the files stay (kb.remove).
    Remove {
        /// Source name.
        source: String,
    },
    /// Stop a running indexing job (kb.cancel).
    Cancel {
        /// Source name.
        source: String,
    },
}

fn cite(c: &Value) -> String {
    let mut s = format!(
        "{}:{}",
        c["source"].as_str().unwrap_or(""),
        c["path"].as_str().unwrap_or("")
    );
    if let Some(p) = c["page"].as_u64() {
        s += &format!(" page {p}");
    }
    if let Some(h) = c["heading"].as_str() {
        s += &format!(" \"{h}\"");
    }
    s + &format!(" lines {}-{}", c["line_start"], c["line_end"])
}

fn flat(t: &str, max: usize) -> String {
    let f: String = t.split_whitespace().collect::<Vec<_>>().join(" ");
    if f.chars().count() > max {
        format!("{} …", f.chars().take(max).collect::<String>())
    } else {
        f
    }
}

fn print_sources(v: &Value) {
    let list = v.as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        println!("nothing indexed");
    }
    for s in list {
        println!(
            "{:<12} {:<10} {:>6} docs {:>7} passages {:>8} KiB  {}",
            s["name"].as_str().unwrap_or(""),
            s["state"].as_str().unwrap_or(""),
            s["documents"],
            s["chunks"],
            s["bytes"].as_u64().unwrap_or(0) / 1024,
            s["root"].as_str().unwrap_or("")
        );
    }
}

fn print_search(v: &Value) {
    let list = v["passages"].as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        println!("no matches");
    }
    for (i, p) in list.iter().enumerate() {
        println!("[{}] {}", i + 1, cite(&p["citation"]));
        println!("    {}", flat(p["text"].as_str().unwrap_or(""), 200));
    }
}

fn print_answer(v: &Value) {
    if v["found"] != Value::Bool(true) {
        println!("Nothing relevant was found in the indexed documents.");
        return;
    }
    let list = v["passages"].as_array().cloned().unwrap_or_default();
    for (i, p) in list.iter().enumerate() {
        println!("[{}] \"{}\"", i + 1, flat(p["text"].as_str().unwrap_or(""), 400));
    }
    println!();
    for (i, p) in list.iter().enumerate() {
        println!("[{}] {}", i + 1, cite(&p["citation"]));
    }
}

fn bar(done: u64, total: u64, bytes: u64) -> String {
    let width = 30usize;
    let filled = if total == 0 {
        0
    } else {
        (done.min(total) as usize * width) / total as usize
    };
    format!(
        "\r[{}{}] {done}/{total} files, {:.1} MiB",
        "#".repeat(filled),
        "-".repeat(width - filled),
        bytes as f64 / (1u64 << 20) as f64
    )
}

/// Runs one `kb` subcommand.
pub async fn run(proxy: &ManagerProxy<'_>, action: KbCmd, emit: impl Fn(&Value, fn(&Value))) -> Result<(), Failure> {
    let j = |s: String| parse_json(&s);
    match action {
        KbCmd::Index { source, path, no_wait } => {
            // Subscribe before starting, so no event of this job is missed.
            let mut events = proxy.receive_event().await.map_err(failure)?;
            let started = j(proxy
                .kb_index(&source, path.as_deref().unwrap_or(""))
                .await
                .map_err(failure)?)?;
            if no_wait {
                emit(&started, |v| {
                    println!("indexing {} started", v["root"].as_str().unwrap_or(""))
                });
                return Ok(());
            }
            let tty = rustix::termios::isatty(std::io::stderr());
            while let Some(sig) = events.next().await {
                let Ok(args) = sig.args() else { continue };
                if args.kind() != "kb-index" {
                    continue;
                }
                let Ok(ev) = serde_json::from_str::<Value>(args.json()) else {
                    continue;
                };
                if ev["source"].as_str() != Some(source.as_str()) {
                    continue;
                }
                let p = &ev["progress"];
                let (done, total, bytes) = (
                    p["files_done"].as_u64().unwrap_or(0),
                    p["files_total"].as_u64().unwrap_or(0),
                    p["bytes_done"].as_u64().unwrap_or(0),
                );
                let phase = ev["phase"].as_str().unwrap_or("");
                if tty {
                    eprint!("{}", bar(done, total, bytes));
                }
                match phase {
                    "finished" | "cancelled" | "failed" => {
                        if tty {
                            eprintln!();
                        }
                        let detail = ev["detail"].as_str().unwrap_or("");
                        let out = serde_json::json!({"source": source, "phase": phase, "detail": detail});
                        emit(&out, |v| {
                            println!(
                                "{} {}: {}",
                                v["source"].as_str().unwrap_or(""),
                                v["phase"].as_str().unwrap_or(""),
                                v["detail"].as_str().unwrap_or("")
                            )
                        });
                        return if phase == "failed" {
                            Err(Failure {
                                code: 1,
                                message: String::new(),
                            })
                        } else {
                            Ok(())
                        };
                    }
                    _ => {}
                }
            }
        }
        KbCmd::Sources => emit(&j(proxy.kb_sources().await.map_err(failure)?)?, print_sources),
        KbCmd::Search { limit, query } => emit(
            &j(proxy.kb_search(&query.join(" "), limit).await.map_err(failure)?)?,
            print_search,
        ),
        KbCmd::Ask { question } => emit(
            &j(proxy.kb_ask(&question.join(" ")).await.map_err(failure)?)?,
            print_answer,
        ),
        KbCmd::Remove { source } => emit(&j(proxy.kb_remove(&source).await.map_err(failure)?)?, |v| {
            println!("{}", v["message"].as_str().unwrap_or(""))
        }),
        KbCmd::Cancel { source } => emit(&j(proxy.kb_cancel(&source).await.map_err(failure)?)?, |v| {
            println!("{}", v["message"].as_str().unwrap_or(""))
        }),
    }
    Ok(())
}
