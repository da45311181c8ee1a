//! `cacheosctl software search|plan|install|list|remove|job|cancel` and `cacheosctl sandbox
//! expose|unexpose|service` (issue 15). `install` shows the plan, asks (unless `--yes`), starts the job and draws its
//! progress from the daemon's `software-job` events (a bar on a terminal, the step lines otherwise).

use cacheos_dbus::client::ManagerProxy;
use cacheosctl::{failure, parse_json, Failure};
use clap::Subcommand;
use futures_util::StreamExt;
use serde_json::{json, Value};

/// `cacheosctl software` subcommands.
#[derive(Debug, Subcommand)]
pub enum SoftwareCmd {
    /// Packages for a name or a wish from Debian, PyPI and npm (software.search).
    Search {
        /// Only apt, pip or npm.
        #[arg(long)]
        ecosystem: Option<String>,
        /// A package name or a wish in words.
        query: Vec<String>,
    },
    /// Show what an install would do, changing nothing (software.plan).
    Plan {
        #[command(flatten)]
        what: What,
    },
    /// Install into a sandbox (a new debian sandbox with NAT when none is given) after showing the plan
    /// (software.install); follows the job until it ends.
    Install {
        #[command(flatten)]
        what: What,
        /// Do not ask.
        #[arg(long)]
        yes: bool,
        /// Return as soon as the job started.
        #[arg(long)]
        no_wait: bool,
    },
    /// What CacheOS installed in a sandbox (software.list).
    List { sandbox: String },
    /// Remove packages CacheOS installed (software.remove), given as ECOSYSTEM:NAME (apt:htop, pip:flask).
    Remove {
        sandbox: String,
        packages: Vec<String>,
        /// Do not ask.
        #[arg(long)]
        yes: bool,
    },
    /// An install job's state (software.job).
    Job { job: String },
    /// Stop an install job after its current command (software.cancel).
    Cancel { job: String },
}

/// What to install.
#[derive(Debug, clap::Args)]
pub struct What {
    /// The sandbox; a new one when absent.
    #[arg(long)]
    sandbox: Option<String>,
    /// A profile (python, node, c, cpp, rust, go, java, php, ruby, web).
    #[arg(long)]
    profile: Option<String>,
    /// Packages as ECOSYSTEM:NAME[=VERSION] (apt:htop, pip:flask=3.1.0, npm:express), or a wish in words.
    items: Vec<String>,
}

/// The install arguments: ECOSYSTEM:NAME[=VERSION] items are packages, other words make up the wish.
fn body(w: &What) -> Result<Value, Failure> {
    let mut packages = Vec::new();
    let mut words = Vec::new();
    for it in &w.items {
        match it.split_once(':') {
            Some((eco @ ("apt" | "pip" | "npm"), rest)) => {
                let (name, version) = match rest.split_once('=') {
                    Some((n, v)) => (n, Some(v)),
                    None => (rest, None),
                };
                packages.push(json!({"ecosystem": eco, "name": name, "version": version}));
            }
            _ => words.push(it.as_str()),
        }
    }
    let mut b = json!({ "packages": packages });
    if !words.is_empty() {
        b["request"] = words.join(" ").into();
    }
    if let Some(s) = &w.sandbox {
        b["sandbox"] = s.clone().into();
    }
    if let Some(p) = &w.profile {
        b["profile"] = p.clone().into();
    }
    if packages_empty(&b) && words.is_empty() && w.profile.is_none() {
        return Err(Failure {
            code: 2,
            message: "name packages (apt:NAME, pip:NAME, npm:NAME), a wish in words or --profile".into(),
        });
    }
    Ok(b)
}

fn packages_empty(b: &Value) -> bool {
    b["packages"].as_array().is_none_or(|a| a.is_empty())
}

/// "12.3 MB" (as the chat says it).
fn human_size(bytes: u64) -> String {
    if bytes >= 1_000_000 {
        format!("{:.1} MB", bytes as f64 / 1e6)
    } else if bytes >= 1000 {
        format!("{} kB", bytes.div_ceil(1000))
    } else {
        format!("{bytes} B")
    }
}

fn size(v: &Value) -> String {
    match v.as_u64() {
        Some(b) => human_size(b),
        None => "?".into(),
    }
}

fn print_plan(p: &Value) {
    match p["create"].as_object() {
        Some(c) => println!(
            "new sandbox {} from template {} with network {}",
            c["name"].as_str().unwrap_or(""),
            c["template"].as_str().unwrap_or(""),
            c["network"].as_str().unwrap_or("")
        ),
        None => println!("sandbox {}", p["sandbox"].as_str().unwrap_or("")),
    }
    for c in p["packages"].as_array().into_iter().flatten() {
        let v = c["version"].as_str().filter(|v| !v.is_empty()).unwrap_or("newest");
        println!(
            "  {:<4} {:<28} {:<28} {:>9}  {}",
            c["ecosystem"].as_str().unwrap_or(""),
            c["name"].as_str().unwrap_or(""),
            v,
            size(&c["size"]),
            c["description"].as_str().unwrap_or("")
        );
    }
    for s in p["starters"].as_array().into_iter().flatten() {
        println!(
            "  starter {}: port {}  {}",
            s["key"].as_str().unwrap_or(""),
            s["port"],
            s["command"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    let deps = p["dependencies"].as_array().map(|a| a.len()).unwrap_or(0);
    if deps > 0 {
        println!("  + about {deps} dependencies");
    }
    println!("download: {}", size(&p["download_bytes"]));
    for n in p["notes"].as_array().into_iter().flatten() {
        println!("note: {}", n.as_str().unwrap_or(""));
    }
    for n in p["unresolved"].as_array().into_iter().flatten() {
        println!("not found: {}", n.as_str().unwrap_or(""));
    }
    println!("steps:");
    for (i, s) in p["steps"].as_array().into_iter().flatten().enumerate() {
        println!("  {}. {}", i + 1, s.as_str().unwrap_or(""));
    }
}

fn print_job(j: &Value) {
    let steps = j["plan"]["steps"].as_array().map(|a| a.len()).unwrap_or(0) as u64;
    println!(
        "{} {} in {} (step {}/{steps})",
        j["job"].as_str().unwrap_or(""),
        j["state"].as_str().unwrap_or(""),
        j["sandbox"].as_str().unwrap_or(""),
        (j["step"].as_u64().unwrap_or(0) + 1).min(steps)
    );
    if let Some(e) = j["error"].as_str() {
        println!("error: {e}");
    }
    for u in j["urls"].as_array().into_iter().flatten() {
        println!("reachable at {}", u.as_str().unwrap_or(""));
    }
}

fn print_lock(l: &Value) {
    let list = l["packages"].as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        println!("CacheOS installed nothing in {}", l["sandbox"].as_str().unwrap_or(""));
    }
    for p in list {
        println!(
            "{:<4} {:<32} {:<28} {}",
            p["ecosystem"].as_str().unwrap_or(""),
            p["name"].as_str().unwrap_or(""),
            p["version"].as_str().unwrap_or(""),
            if p["requested"] == Value::Bool(true) {
                ""
            } else {
                "(dependency)"
            }
        );
    }
}

fn print_search(r: &Value) {
    let list = r["candidates"].as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        println!("nothing found");
    }
    for c in list {
        println!(
            "{:<4} {:<32} {:<24} {:>9}  {}",
            c["ecosystem"].as_str().unwrap_or(""),
            c["name"].as_str().unwrap_or(""),
            c["version"].as_str().filter(|v| !v.is_empty()).unwrap_or("?"),
            size(&c["size"]),
            c["description"].as_str().unwrap_or("")
        );
    }
    for u in r["unavailable"].as_array().into_iter().flatten() {
        eprintln!("note: {}", u.as_str().unwrap_or(""));
    }
}

/// Prints what sandbox.expose/unexpose/service answer.
pub fn print_network(n: &Value) {
    let ports = n["exposed"].as_array().cloned().unwrap_or_default();
    let urls = n["urls"].as_array().cloned().unwrap_or_default();
    for (p, u) in ports.iter().zip(urls.iter()) {
        println!("port {} -> {}", p["port"], u.as_str().unwrap_or(""));
    }
    for s in n["services"].as_array().into_iter().flatten() {
        println!(
            "service {} ({}): {}",
            s["service"].as_str().unwrap_or(""),
            s["unit"].as_str().unwrap_or(""),
            s["command"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    if ports.is_empty() && n["services"].as_array().is_none_or(|a| a.is_empty()) {
        println!("no exposed ports or services");
    }
}

fn ask(question: &str) -> bool {
    use std::io::{BufRead, Write};
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    matches!(line.trim(), "y" | "Y" | "yes" | "j" | "ja")
}

fn bar(step: u64, steps: u64, line: &str) -> String {
    let width = 24usize;
    let filled = if steps == 0 {
        0
    } else {
        (step.min(steps) as usize * width) / steps as usize
    };
    let l: String = line.chars().take(60).collect();
    format!(
        "\r\x1b[2K[{}{}] {step}/{steps} {l}",
        "#".repeat(filled),
        "-".repeat(width - filled)
    )
}

/// Runs one `software` subcommand.
pub async fn run(
    proxy: &ManagerProxy<'_>,
    action: SoftwareCmd,
    emit: impl Fn(&Value, fn(&Value)),
) -> Result<(), Failure> {
    let j = |s: String| parse_json(&s);
    match action {
        SoftwareCmd::Search { ecosystem, query } => emit(
            &j(proxy
                .search_software(&query.join(" "), ecosystem.as_deref().unwrap_or(""))
                .await
                .map_err(failure)?)?,
            print_search,
        ),
        SoftwareCmd::Plan { what } => {
            let b = body(&what)?;
            emit(
                &j(proxy.plan_software(&b.to_string()).await.map_err(failure)?)?,
                print_plan,
            )
        }
        SoftwareCmd::Install { what, yes, no_wait } => {
            let b = body(&what)?;
            let plan = j(proxy.plan_software(&b.to_string()).await.map_err(failure)?)?;
            if !yes {
                print_plan(&plan);
                if !ask("Install?") {
                    return Err(Failure {
                        code: 1,
                        message: "not installed".into(),
                    });
                }
            }
            // Exactly the plan shown: its packages with their versions, its sandbox and starters.
            let mut exact = json!({
                "sandbox": plan["sandbox"],
                "packages": plan["packages"].as_array().into_iter().flatten().map(|c| {
                    let v = c["version"].as_str().filter(|v| !v.is_empty());
                    json!({"ecosystem": c["ecosystem"], "name": c["name"], "version": v})
                }).collect::<Vec<_>>(),
            });
            exact["starters"] = plan["starters"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| s["key"].clone())
                .collect::<Vec<_>>()
                .into();
            let mut events = proxy.receive_event().await.map_err(failure)?;
            let job = j(proxy.install_software(&exact.to_string()).await.map_err(failure)?)?;
            let id = job["job"].as_str().unwrap_or("").to_string();
            if no_wait {
                emit(&job, print_job);
                return Ok(());
            }
            let tty = rustix::termios::isatty(std::io::stderr());
            while let Some(sig) = events.next().await {
                let Ok(args) = sig.args() else { continue };
                if args.kind() != "software-job" {
                    continue;
                }
                let Ok(ev) = serde_json::from_str::<Value>(args.json()) else {
                    continue;
                };
                if ev["job"].as_str() != Some(id.as_str()) {
                    continue;
                }
                let (step, steps) = (ev["step"].as_u64().unwrap_or(0), ev["steps"].as_u64().unwrap_or(0));
                let line = ev["line"].as_str().unwrap_or("");
                if tty {
                    eprint!("{}", bar(step, steps, line));
                } else if !line.is_empty() {
                    eprintln!("{line}");
                }
                if ev["state"].as_str() != Some("running") {
                    if tty {
                        eprintln!();
                    }
                    break;
                }
            }
            let done = j(proxy.get_software_job(&id).await.map_err(failure)?)?;
            emit(&done, print_job);
            if done["state"].as_str() != Some("done") {
                return Err(Failure {
                    code: 1,
                    message: String::new(),
                });
            }
        }
        SoftwareCmd::List { sandbox } => emit(&j(proxy.list_software(&sandbox).await.map_err(failure)?)?, print_lock),
        SoftwareCmd::Remove { sandbox, packages, yes } => {
            let mut list = Vec::new();
            for p in &packages {
                let Some((eco, name)) = p.split_once(':') else {
                    return Err(Failure {
                        code: 2,
                        message: format!("{p}: give packages as ECOSYSTEM:NAME (apt:htop, pip:flask, npm:express)"),
                    });
                };
                list.push(json!({"ecosystem": eco, "name": name}));
            }
            if !yes && !ask(&format!("Remove {} from {sandbox}?", packages.join(", "))) {
                return Err(Failure {
                    code: 1,
                    message: "nothing removed".into(),
                });
            }
            let b = json!({"sandbox": sandbox, "packages": list});
            emit(
                &j(proxy.remove_software(&b.to_string()).await.map_err(failure)?)?,
                print_lock,
            )
        }
        SoftwareCmd::Job { job } => emit(&j(proxy.get_software_job(&job).await.map_err(failure)?)?, print_job),
        SoftwareCmd::Cancel { job } => emit(&j(proxy.cancel_software_job(&job).await.map_err(failure)?)?, |v| {
            println!("{}", v["message"].as_str().unwrap_or(""))
        }),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_become_packages_or_the_wish() {
        let w = What {
            sandbox: Some("web".into()),
            profile: None,
            items: vec![
                "apt:htop".into(),
                "pip:flask=3.1.0".into(),
                "und".into(),
                "redis".into(),
            ],
        };
        let b = body(&w).unwrap();
        assert_eq!(
            b["packages"][1],
            json!({"ecosystem": "pip", "name": "flask", "version": "3.1.0"})
        );
        assert_eq!(b["request"], "und redis");
        assert_eq!(b["sandbox"], "web");
        assert!(body(&What {
            sandbox: None,
            profile: None,
            items: vec![]
        })
        .is_err());
    }
}
