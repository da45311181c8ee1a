//! cacheosctl: the command-line front end. Parses arguments, calls cacheosd over D-Bus, prints text or JSON.
//! It holds no logic of its own beyond presentation.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cacheos_dbus::client::ManagerProxy;
use cacheos_dbus::Bus;
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use serde_json::Value;

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  the operation failed (the message says why)
  2  usage error (bad arguments)
  3  cacheosd is not reachable on the bus
  4  permission denied (needs root or group cacheos)
  5  not found (unknown task, drive, sandbox, ...)
  6  invalid argument rejected by cacheosd";

/// Control the CacheOS appliance.
#[derive(Debug, Parser)]
#[command(name = "cacheosctl", version, about, after_help = EXIT_CODES)]
struct Cli {
    /// Bus to reach cacheosd on; development mode uses `session`.
    #[arg(long, global = true, value_enum, env = "CACHEOS_BUS", default_value = "system")]
    bus: BusArg,
    /// Print machine-readable JSON (the same documents as the REST API).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum BusArg {
    System,
    Session,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show system status (system.status).
    Status,
    /// Show CPU, memory, disk and load samples of the last hour (system.history), oldest first.
    History {
        /// Only samples at or after this time: a duration ago (`10m`, `2h`) or an RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
    },
    /// Show the supervisor and its tasks (supervisor.status), or act on a task.
    Supervisor {
        #[command(subcommand)]
        action: Option<SupervisorCmd>,
    },
    /// Show the audit log (audit.query), newest first.
    Audit {
        /// Only entries at or after this time: a duration ago (`10m`, `2h`, `1d`) or an RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        /// Only entries before this time (same forms as --since).
        #[arg(long)]
        until: Option<String>,
        /// Only this front end.
        #[arg(long, value_parser = ["dbus", "rest", "cli", "chat", "internal"])]
        frontend: Option<String>,
        /// Only this operation (dotted name), or a prefix ending in `.`.
        #[arg(long)]
        operation: Option<String>,
        /// Only this outcome.
        #[arg(long, value_parser = ["ok", "error", "denied"])]
        outcome: Option<String>,
        /// At most this many entries.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Web port access.
    Web {
        #[command(subcommand)]
        action: WebCmd,
    },
    /// Talk to CacheOS in German or English: one message, or an interactive conversation without TEXT
    /// (leave with "exit", "quit" or Ctrl-D).
    Chat {
        /// Only show what the message would do (operation, arguments, risk); execute nothing.
        #[arg(long)]
        explain: bool,
        /// Session id; one-shot calls share `cli-<uid>` by default, so a later "ja" confirms an earlier plan.
        #[arg(long)]
        session: Option<String>,
        /// The message.
        text: Vec<String>,
    },
    /// Print a shell completion script.
    Completions {
        /// Shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff).
    Manpage,
}

#[derive(Debug, Subcommand)]
enum SupervisorCmd {
    /// Abort an internal task so the supervisor restarts it (supervisor.kill-task; fault injection only).
    KillTask {
        /// Task name as shown by `cacheosctl supervisor`.
        task: String,
    },
}

#[derive(Debug, Subcommand)]
enum WebCmd {
    /// Print the bearer token for web clients other than loopback (web.token).
    Token,
}

/// A failure with its exit code.
struct Failure {
    code: u8,
    message: String,
}

fn failure(e: zbus::Error) -> Failure {
    if let zbus::Error::MethodError(name, msg, _) = &e {
        let short = name.as_str().rsplit('.').next().unwrap_or("");
        let code = match short {
            "PermissionDenied" | "AccessDenied" => 4,
            "NotFound" => 5,
            "InvalidArgument" => 6,
            "ServiceUnknown" | "NameHasNoOwner" => 3,
            _ => 1,
        };
        let message = msg.clone().unwrap_or_else(|| name.to_string());
        let message = if code == 3 {
            format!("cacheosd is not running on this bus ({message})")
        } else {
            message
        };
        return Failure { code, message };
    }
    let code = match e {
        zbus::Error::InputOutput(_) | zbus::Error::Address(_) | zbus::Error::Handshake(_) => 3,
        _ => 1,
    };
    Failure {
        code,
        message: if code == 3 {
            format!("cannot reach the D-Bus bus: {e}")
        } else {
            e.to_string()
        },
    }
}

fn parse_time(s: &str, what: &str) -> Result<u64, Failure> {
    let bad = |m: String| Failure {
        code: 2,
        message: format!("invalid {what} {s:?}: {m}"),
    };
    let t = if let Ok(d) = humantime::parse_duration(s) {
        SystemTime::now()
            .checked_sub(d)
            .ok_or_else(|| bad("too far back".into()))?
    } else {
        humantime::parse_rfc3339_weak(s).map_err(|e| bad(format!("{e} (use 10m, 2h, 1d or 2026-11-22T10:00:00Z)")))?
    };
    Ok(t.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0))
}

fn fmt_time(ms: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

fn bytes(v: &Value) -> String {
    let b = v.as_u64().unwrap_or(0) as f64;
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut x = b;
    let mut i = 0;
    while x >= 1024.0 && i < units.len() - 1 {
        x /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{x:.1} {}", units[i])
    }
}

fn print_status(s: &Value) {
    println!("Host:      {}", s["hostname"].as_str().unwrap_or("?"));
    println!("OS:        {}", s["os_release"]["pretty_name"].as_str().unwrap_or("?"));
    println!("Kernel:    {}", s["kernel"].as_str().unwrap_or("?"));
    let up = s["uptime_seconds"].as_f64().unwrap_or(0.0) as u64;
    println!("Uptime:    {}", humantime::format_duration(Duration::from_secs(up)));
    println!(
        "Load:      {:.2} {:.2} {:.2}",
        s["load"]["one"].as_f64().unwrap_or(0.0),
        s["load"]["five"].as_f64().unwrap_or(0.0),
        s["load"]["fifteen"].as_f64().unwrap_or(0.0)
    );
    match s["cpu_percent"].as_f64() {
        Some(c) => println!("CPU:       {c:.1} % of {} CPUs", s["cpu_count"]),
        None => println!("CPU:       (sampling) {} CPUs", s["cpu_count"]),
    }
    let m = &s["memory"];
    println!(
        "Memory:    {} used of {}, {} available",
        bytes(&m["used_bytes"]),
        bytes(&m["total_bytes"]),
        bytes(&m["available_bytes"])
    );
    match s["failed_units"].as_u64() {
        Some(n) => println!("Failed:    {n} systemd unit(s)"),
        None => println!("Failed:    n/a (systemd is not PID 1)"),
    }
    println!("Disks:");
    for d in s["disks"].as_array().into_iter().flatten() {
        println!(
            "  {:<28} {:<8} {:>10} used of {:>10}{}",
            d["mount_point"].as_str().unwrap_or("?"),
            d["fs_type"].as_str().unwrap_or("?"),
            bytes(&d["used_bytes"]),
            bytes(&d["total_bytes"]),
            if d["read_only"].as_bool() == Some(true) {
                "  (read-only)"
            } else {
                ""
            }
        );
    }
}

fn print_history(h: &Value) {
    println!(
        "{:<20} {:>6} {:>6} {:>6} {:>16}",
        "TIME", "CPU%", "MEM%", "DISK%", "LOAD 1/5/15"
    );
    let pct = |used: &Value, total: &Value| match (used.as_f64(), total.as_f64()) {
        (Some(u), Some(t)) if t > 0.0 => format!("{:.1}", 100.0 * u / t),
        _ => "-".into(),
    };
    for s in h.as_array().into_iter().flatten() {
        println!(
            "{:<20} {:>6} {:>6} {:>6} {:>16}",
            fmt_time(s["time_ms"].as_u64().unwrap_or(0)),
            s["cpu_percent"].as_f64().map_or("-".into(), |c| format!("{c:.1}")),
            pct(&s["memory_used_bytes"], &s["memory_total_bytes"]),
            pct(&s["disk_used_bytes"], &s["disk_total_bytes"]),
            format!(
                "{:.2}/{:.2}/{:.2}",
                s["load_one"].as_f64().unwrap_or(0.0),
                s["load_five"].as_f64().unwrap_or(0.0),
                s["load_fifteen"].as_f64().unwrap_or(0.0)
            ),
        );
    }
}

fn print_supervisor(s: &Value) {
    println!(
        "cacheosd {}  state {}  up {}{}",
        s["version"].as_str().unwrap_or("?"),
        s["state"].as_str().unwrap_or("?"),
        humantime::format_duration(Duration::from_secs(s["uptime_seconds"].as_f64().unwrap_or(0.0) as u64)),
        if s["dev_mode"].as_bool() == Some(true) {
            "  (development mode)"
        } else {
            ""
        }
    );
    println!("{:<10} {:<9} {:>8}  LAST ERROR", "TASK", "STATE", "RESTARTS");
    for t in s["tasks"].as_array().into_iter().flatten() {
        println!(
            "{:<10} {:<9} {:>8}  {}",
            t["name"].as_str().unwrap_or("?"),
            t["state"].as_str().unwrap_or("?"),
            t["restarts"].to_string(),
            t["last_error"].as_str().unwrap_or("-")
        );
    }
}

fn print_audit(a: &Value) {
    println!(
        "{:<6} {:<20} {:<9} {:<10} {:<22} {:<7} MESSAGE",
        "ID", "TIME", "FRONTEND", "WHO", "OPERATION", "OUTCOME"
    );
    for r in a.as_array().into_iter().flatten() {
        let who = match r["principal"]["kind"].as_str() {
            Some("uid") => format!("uid {}", r["principal"]["uid"]),
            Some(k) => k.to_string(),
            None => "?".into(),
        };
        println!(
            "{:<6} {:<20} {:<9} {:<10} {:<22} {:<7} {}",
            r["id"].to_string(),
            fmt_time(r["time_ms"].as_u64().unwrap_or(0)),
            r["frontend"].as_str().unwrap_or("?"),
            who,
            r["operation"].as_str().unwrap_or("?"),
            r["outcome"].as_str().unwrap_or("?"),
            r["error"].as_str().or(r["utterance"].as_str()).unwrap_or("")
        );
    }
}

fn default_session() -> String {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(0);
    format!("cli-{uid}")
}

async fn chat_once(
    proxy: &ManagerProxy<'_>,
    explain: bool,
    session: &str,
    text: &str,
    json: bool,
) -> Result<(), Failure> {
    let out = if explain {
        proxy.interpret(text, session).await.map_err(failure)?
    } else {
        proxy.chat(text, session).await.map_err(failure)?
    };
    let v = parse_json(&out)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else if explain {
        let i = &v["interpretation"];
        match i["kind"].as_str() {
            Some("operation") => println!(
                "{} {}  (risk: {}{})\n{}",
                i["operation"].as_str().unwrap_or("?"),
                i["args"],
                i["risk"].as_str().unwrap_or("?"),
                if i["needs_confirmation"].as_bool() == Some(true) {
                    ", needs confirmation"
                } else {
                    ""
                },
                i["explanation"].as_str().unwrap_or("")
            ),
            _ => println!("{}", serde_json::to_string_pretty(i).unwrap_or_default()),
        }
    } else {
        println!("{}", v["reply"].as_str().unwrap_or(""));
    }
    Ok(())
}

async fn interactive(proxy: &ManagerProxy<'_>, explain: bool, session: &str, json: bool) -> Result<(), Failure> {
    use std::io::IsTerminal;
    println!("CacheOS chat. Schreib, was du möchtest / say what you want (\"hilfe\", \"help\"); \"exit\" leaves.");
    let mut editor = if std::io::stdin().is_terminal() {
        rustyline::DefaultEditor::new().ok()
    } else {
        None
    };
    let mut stdin = std::io::stdin().lines();
    loop {
        let line = match editor.as_mut() {
            Some(ed) => match ed.readline("> ") {
                Ok(l) => {
                    let _ = ed.add_history_entry(l.as_str());
                    l
                }
                Err(rustyline::error::ReadlineError::Interrupted) => continue,
                Err(_) => break,
            },
            None => match stdin.next() {
                Some(Ok(l)) => l,
                _ => break,
            },
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if matches!(
            line.to_lowercase().as_str(),
            "exit" | "quit" | "ende" | "beenden" | "tschüss" | "bye" | "logout"
        ) {
            break;
        }
        if let Err(f) = chat_once(proxy, explain, session, line, json).await {
            eprintln!("cacheosctl: {}", f.message);
            if f.code == 3 {
                return Err(f);
            }
        }
    }
    Ok(())
}

fn parse_json(s: &str) -> Result<Value, Failure> {
    serde_json::from_str(s).map_err(|e| Failure {
        code: 1,
        message: format!("cacheosd sent invalid JSON: {e}"),
    })
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let bus = match cli.bus {
        BusArg::System => Bus::System,
        BusArg::Session => Bus::Session,
    };
    let unreachable = |e: zbus::Error| Failure {
        code: 3,
        message: format!("cannot reach the D-Bus {:?} bus: {e}", cli.bus).to_lowercase(),
    };
    let conn = bus.builder().map_err(unreachable)?.build().await.map_err(unreachable)?;
    let proxy = ManagerProxy::new(&conn).await.map_err(failure)?;
    proxy.register_client("cli").await.map_err(failure)?;
    let json = cli.json;
    let emit = |v: &Value, human: fn(&Value)| {
        if json {
            println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
        } else {
            human(v);
        }
    };
    match cli.command {
        Command::Status => emit(
            &parse_json(&proxy.get_system_status().await.map_err(failure)?)?,
            print_status,
        ),
        Command::History { since } => {
            let since = since.map(|s| parse_time(&s, "--since")).transpose()?.unwrap_or(0);
            emit(
                &parse_json(&proxy.get_system_history(since).await.map_err(failure)?)?,
                print_history,
            )
        }
        Command::Supervisor { action: None } => emit(
            &parse_json(&proxy.get_supervisor_status().await.map_err(failure)?)?,
            print_supervisor,
        ),
        Command::Supervisor {
            action: Some(SupervisorCmd::KillTask { task }),
        } => {
            let msg = proxy.kill_task(&task).await.map_err(failure)?;
            emit(&serde_json::json!({ "message": msg }), |v| {
                println!("{}", v["message"].as_str().unwrap_or(""))
            });
        }
        Command::Audit {
            since,
            until,
            frontend,
            operation,
            outcome,
            limit,
        } => {
            let since = since.map(|s| parse_time(&s, "--since")).transpose()?.unwrap_or(0);
            let until = until.map(|s| parse_time(&s, "--until")).transpose()?.unwrap_or(0);
            let out = proxy
                .query_audit(
                    since,
                    until,
                    frontend.as_deref().unwrap_or(""),
                    operation.as_deref().unwrap_or(""),
                    outcome.as_deref().unwrap_or(""),
                    limit,
                )
                .await
                .map_err(failure)?;
            emit(&parse_json(&out)?, print_audit);
        }
        Command::Web { action: WebCmd::Token } => {
            let t = proxy.get_web_token().await.map_err(failure)?;
            emit(&serde_json::json!({ "token": t }), |v| {
                println!("{}", v["token"].as_str().unwrap_or(""))
            });
        }
        Command::Chat { explain, session, text } => {
            let session = session.unwrap_or_else(default_session);
            if text.is_empty() {
                return interactive(&proxy, explain, &session, json).await;
            }
            chat_once(&proxy, explain, &session, &text.join(" "), json).await?;
        }
        Command::Completions { .. } | Command::Manpage => unreachable!("handled before connecting"),
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(*shell, &mut Cli::command(), "cacheosctl", &mut std::io::stdout());
            return ExitCode::SUCCESS;
        }
        Command::Manpage => {
            let mut out = Vec::new();
            if clap_mangen::Man::new(Cli::command()).render(&mut out).is_err()
                || std::io::stdout().write_all(&out).is_err()
            {
                return ExitCode::FAILURE;
            }
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cacheosctl: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("cacheosctl: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn times_parse_relative_and_absolute() {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        let t = parse_time("10m", "--since").ok().unwrap();
        assert!(now - t >= 600_000 && now - t < 610_000);
        assert_eq!(
            parse_time("2026-11-22T10:00:00Z", "--since").ok().unwrap(),
            1_795_341_600_000
        );
        let e = parse_time("yesterday-ish", "--since").err().unwrap();
        assert_eq!(e.code, 2);
        assert!(e.message.contains("--since"));
    }
}
