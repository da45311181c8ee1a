//! cacheosctl: the command-line front end. Parses arguments, calls cacheosd over D-Bus, prints text or JSON.
//! It holds no logic of its own beyond presentation.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

mod kb;

use cacheos_dbus::client::ManagerProxy;
use cacheos_dbus::Bus;
use cacheosctl::{chat, connect, default_session, failure, parse_json, Failure};
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use serde_json::Value;

mod license_cmd;
mod model_cmd;
mod software_cmd;

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
    /// Show CPU, memory, disk and load samples (system.history), oldest first: every sample of the last hour, minute
    /// means of the last day, hour means of the last 30 days, by how far back --since reaches.
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
    /// Virtual drives: attach, mount, inspect, snapshot, create and detach disk images.
    Drive {
        #[command(subcommand)]
        action: DriveCmd,
    },
    /// Sandboxes (systemd-nspawn containers): create, start, exec, stop, remove.
    Sandbox {
        #[command(subcommand)]
        action: SandboxCmd,
    },
    /// Sandbox templates.
    Template {
        #[command(subcommand)]
        action: TemplateCmd,
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
    /// Software in sandboxes: search Debian, PyPI and npm, plan, install (with a progress bar), list, remove.
    Software {
        #[command(subcommand)]
        action: software_cmd::SoftwareCmd,
    },
    /// Knowledge base: index drives and the documentation, search, and ask with cited answers.
    Kb {
        #[command(subcommand)]
        action: kb::KbCmd,
    },
    // issue 14 (models)
    /// Language models: list backends and GGUF files, use one (a file, a drive's file or an OpenAI-compatible
    /// endpoint), status, unload, test, stop a generation.
    Model {
        #[command(subcommand)]
        action: model_cmd::ModelCmd,
    },
    /// What can send data off the appliance (model endpoints, sandboxes with NAT, the web port) (privacy.channels).
    Privacy,
    // issue 18 (licences)
    /// Licences of the code on a drive or in a sandbox.
    License {
        #[command(subcommand)]
        action: license_cmd::LicenseCmd,
    },
    /// Software bills of materials (SPDX 2.3, CycloneDX 1.5).
    Sbom {
        #[command(subcommand)]
        action: license_cmd::SbomCmd,
    },
    /// Third-party notices.
    Notice {
        #[command(subcommand)]
        action: license_cmd::NoticeCmd,
    },
    /// Signed proofs of existence of files.
    Proof {
        #[command(subcommand)]
        action: license_cmd::ProofCmd,
    },
    /// Invention-disclosure drafts (CacheOS files nothing).
    Disclosure {
        #[command(subcommand)]
        action: license_cmd::DisclosureCmd,
    },
    // issue 16 (diagnose)
    /// Why a unit, sandbox or drive failed, or (without a target) everything that is wrong (system.diagnose):
    /// cause, evidence from the journal and a fix.
    Diagnose {
        /// A systemd unit (`nginx` means `nginx.service`).
        unit: Option<String>,
        /// A sandbox instead of a unit.
        #[arg(long, conflicts_with = "unit")]
        sandbox: Option<String>,
        /// A virtual drive instead of a unit.
        #[arg(long, conflicts_with_all = ["unit", "sandbox"])]
        drive: Option<String>,
    },
    /// Journal entries of this boot (journal.query), repeats folded.
    Journal {
        /// Only entries about this unit.
        #[arg(short, long)]
        unit: Option<String>,
        /// Only entries about this sandbox.
        #[arg(long, conflicts_with = "unit")]
        sandbox: Option<String>,
        /// This priority or more urgent: 0..7 or emerg, alert, crit, err, warning, notice, info, debug.
        #[arg(short, long)]
        priority: Option<String>,
        /// Since: a duration ago (`10m`, `2h`) or an RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        /// Only messages containing this text (case-insensitive).
        #[arg(short, long)]
        grep: Option<String>,
        /// At most this many, the newest.
        #[arg(short = 'n', long, default_value_t = 50)]
        lines: u32,
    },
    /// The appliance's services and mounts, failed first (service.list), or restart one (service.restart).
    Service {
        #[command(subcommand)]
        action: Option<ServiceCmd>,
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
enum ServiceCmd {
    /// Clear a unit's failed state and restart it (service.restart).
    Restart {
        /// Unit name (`nginx` means `nginx.service`).
        unit: String,
    },
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
enum DriveCmd {
    /// Attach an image (iso, raw, qcow2, vmdk, vdi, vhdx, vhd; detected by content) and mount its file systems
    /// read-only with nosuid,nodev,noexec (drive.attach).
    Attach {
        /// Absolute path, or a file name in the images directory.
        image: String,
        /// Drive name (default derived from the file name).
        #[arg(long)]
        name: Option<String>,
        /// Attach read-write (read-only is the default).
        #[arg(long)]
        read_write: bool,
        /// Do not mount anything; just attach the loop devices.
        #[arg(long)]
        no_mount: bool,
        /// Allow running programs from the mounts.
        #[arg(long)]
        exec: bool,
        /// Also let the kernel scan the partition table.
        #[arg(long)]
        partscan: bool,
        /// Bytes to skip at the start of a raw image (K, M, G suffixes allowed).
        #[arg(long, value_parser = parse_size)]
        offset: Option<u64>,
        /// Bytes to use from the offset of a raw image.
        #[arg(long, value_parser = parse_size)]
        size: Option<u64>,
    },
    /// Unmount a drive and release its loop devices (drive.detach).
    Detach {
        name: String,
        /// Detach lazily even when busy; discards an uncommitted snapshot.
        #[arg(long)]
        force: bool,
    },
    /// List drives (drive.list).
    List,
    /// Show one drive (drive.info).
    Info { name: String },
    /// List the image files in the images directory (drive.images).
    Images,
    /// List a directory of a mounted drive (drive.files).
    Files {
        name: String,
        /// Directory relative to the mount point.
        #[arg(default_value = "")]
        path: String,
        /// Which mounted file system (its directory name).
        #[arg(long)]
        volume: Option<String>,
    },
    /// Create a blank image, optionally with a file system, optionally attached (drive.create).
    Create {
        /// Absolute path, or a file name in the images directory; never overwritten.
        path: String,
        /// Virtual size (e.g. 1G, 512M, 1.5GiB).
        #[arg(long, value_parser = parse_size)]
        size: u64,
        /// Container format.
        #[arg(long, value_parser = ["raw", "qcow2"], default_value = "raw")]
        format: String,
        /// File system to create.
        #[arg(long, value_parser = ["ext4", "xfs", "btrfs", "vfat"])]
        fs: Option<String>,
        /// File system label.
        #[arg(long)]
        label: Option<String>,
        /// Attach it read-write afterwards.
        #[arg(long)]
        attach: bool,
        /// Drive name when attaching.
        #[arg(long)]
        name: Option<String>,
    },
    /// Put a writable layer over a drive; the image stays untouched (drive.snapshot).
    Snapshot { name: String },
    /// Throw a drive's snapshot away (drive.discard).
    Discard {
        name: String,
        /// Do not ask.
        #[arg(long)]
        yes: bool,
    },
    /// Write a drive's snapshot into its image (drive.commit; read-write drives only).
    Commit {
        name: String,
        /// Do not ask.
        #[arg(long)]
        yes: bool,
    },
    /// Attach the drive again at every boot, or stop doing so with --off (drive.persist).
    Persist {
        name: String,
        #[arg(long)]
        off: bool,
    },
    /// Compare drive records with the kernel and repair either side (drive.reconcile).
    Reconcile,
}

/// What `sandbox create` and `sandbox run` share: the template and the sandbox's limits, network, binds and
/// environment, as the REST body's fields.
#[derive(Debug, clap::Args)]
struct SandboxOpts {
    /// Template name (see `cacheosctl template list`).
    #[arg(long, short = 't')]
    template: String,
    /// Memory limit (e.g. 512M, 1G).
    #[arg(long, value_parser = parse_size)]
    memory: Option<u64>,
    /// CPU quota in cores (0.5 = half a core).
    #[arg(long)]
    cpus: Option<f64>,
    /// Maximum number of processes and threads.
    #[arg(long)]
    tasks: Option<u64>,
    /// Network: none (loopback only) or nat.
    #[arg(long, value_parser = ["none", "nat"], default_value = "none")]
    network: String,
    /// Bind an attached drive's mount at /mnt/DRIVE: DRIVE, DRIVE:ro or DRIVE:rw (read-only by default).
    #[arg(long = "bind", value_name = "DRIVE[:ro|rw]", value_parser = parse_bind)]
    binds: Vec<Value>,
    /// Environment variable NAME=VALUE (repeatable).
    #[arg(long = "env", value_name = "K=V", value_parser = parse_env)]
    env: Vec<(String, String)>,
}

impl SandboxOpts {
    /// The REST body's fields for these options.
    fn body(&self) -> serde_json::Map<String, Value> {
        let v = serde_json::json!({
            "template": self.template, "memory_max": self.memory, "cpu": self.cpus, "tasks_max": self.tasks,
            "network": self.network, "binds": self.binds, "env": self.env,
        });
        match v {
            Value::Object(m) => m,
            _ => unreachable!("a JSON object literal"),
        }
    }
}

#[derive(Debug, Subcommand)]
enum SandboxCmd {
    /// Create a sandbox from a template (sandbox.create).
    Create {
        /// Lowercase letters, digits and dashes, starting with a letter.
        name: String,
        #[command(flatten)]
        spec: SandboxOpts,
        /// Remove the sandbox and its data when it stops.
        #[arg(long)]
        ephemeral: bool,
    },
    /// Start a sandbox (sandbox.start).
    Start { name: String },
    /// Stop a sandbox (sandbox.stop).
    Stop { name: String },
    /// Stop a running sandbox and start it again (sandbox.restart).
    Restart { name: String },
    /// Show one sandbox (sandbox.info).
    Info { name: String },
    /// List sandboxes (sandbox.list).
    List,
    /// Show the last lines of a sandbox's console output (sandbox.logs).
    Logs {
        name: String,
        /// How many lines.
        #[arg(long, short = 'n', default_value_t = 200)]
        lines: u32,
    },
    /// Run a command in a running sandbox (sandbox.exec); exits with the command's exit code.
    Exec {
        name: String,
        /// Kill the command after this many seconds.
        #[arg(long, value_name = "SECS")]
        timeout: Option<u64>,
        /// The command and its arguments (after `--`).
        #[arg(last = true, required = true)]
        argv: Vec<String>,
    },
    /// Run a command in a new ephemeral sandbox that is removed when it ends (sandbox.run); exits with the
    /// command's exit code.
    Run {
        /// The sandbox's name (default: the first free run-N).
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        spec: SandboxOpts,
        /// Kill the command after this many seconds.
        #[arg(long, value_name = "SECS")]
        timeout: Option<u64>,
        /// The command and its arguments (after `--`).
        #[arg(last = true, required = true)]
        argv: Vec<String>,
    },
    /// Open an interactive login shell as root in a running sandbox (sandbox.shell); `exit` or Ctrl-D ends it.
    Shell { name: String },
    /// Copy a file or directory of this machine into a running sandbox (sandbox.copy-in). A directory is sent as a
    /// tar stream and unpacked by the sandbox's own tar into DEST (created if missing).
    CopyIn {
        name: String,
        /// A file or directory here.
        source: std::path::PathBuf,
        /// The absolute path inside the sandbox.
        dest: String,
    },
    /// Copy a file (or with -r a directory) out of a running sandbox (sandbox.copy-out).
    CopyOut {
        name: String,
        /// The absolute path inside the sandbox.
        source: String,
        /// The file (or with -r the directory, created if missing) to write here; refuses to overwrite.
        dest: std::path::PathBuf,
        /// SOURCE is a directory: copy it whole.
        #[arg(short = 'r', long)]
        recursive: bool,
    },
    /// Stop a sandbox and delete it with its writable data (sandbox.remove).
    Remove {
        name: String,
        /// Do not ask.
        #[arg(long)]
        yes: bool,
    },
    /// Compare sandbox records with the running containers and repair either side (sandbox.reconcile).
    Reconcile,
    /// Make PORT of a NAT sandbox reachable on the appliance's address (sandbox.expose).
    Expose {
        name: String,
        port: u16,
        /// The port on the appliance; the same port by default.
        #[arg(long)]
        host_port: Option<u16>,
    },
    /// Stop forwarding PORT of a sandbox (sandbox.unexpose).
    Unexpose { name: String, port: u16 },
    /// Keep a command running in a sandbox, restarted on failure and started with it (sandbox.service); no
    /// command removes the service.
    Service {
        name: String,
        /// The service's name.
        #[arg(long, default_value = "main")]
        service: String,
        /// The command and its arguments (after `--`).
        #[arg(last = true)]
        argv: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
enum TemplateCmd {
    /// List the templates sandboxes can be created from (sandbox.templates).
    List,
}

/// `DRIVE`, `DRIVE:ro` or `DRIVE:rw` as a bind of the create body.
fn parse_bind(s: &str) -> Result<Value, String> {
    let (drive, rw) = match s.rsplit_once(':') {
        Some((d, "rw")) => (d, true),
        Some((d, "ro")) => (d, false),
        Some((_, m)) => return Err(format!("unknown mode {m:?} in {s:?} (use ro or rw)")),
        None => (s, false),
    };
    if drive.is_empty() {
        return Err(format!("{s:?} names no drive"));
    }
    Ok(serde_json::json!({ "drive": drive, "read_write": rw }))
}

/// `NAME=VALUE`.
fn parse_env(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{s:?} is not NAME=VALUE"))
}

/// A size such as `512M`, `1G`, `1.5GiB`, `1,5 GB` or plain bytes; units are powers of 1024.
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim().replace(',', ".").replace(' ', "");
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 512M, 1G)"))?;
    let mult: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        u => return Err(format!("unknown unit {u:?} in {s:?} (use K, M, G or T)")),
    };
    Ok((n * mult as f64).round() as u64)
}

fn confirm(question: &str, yes: bool) -> Result<bool, Failure> {
    if yes {
        return Ok(true);
    }
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        return Err(Failure {
            code: 2,
            message: format!("{question} needs confirmation: add --yes"),
        });
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    Ok(matches!(line.trim(), "y" | "Y" | "yes" | "j" | "ja"))
}

fn print_drive(d: &Value) {
    let mode = if !d["snapshot"].is_null() {
        "snapshot (writable)"
    } else if d["read_write"].as_bool() == Some(true) {
        "read-write"
    } else {
        "read-only"
    };
    println!(
        "{}  {}  {}  {}  {}  {}{}",
        d["name"].as_str().unwrap_or("?"),
        d["state"].as_str().unwrap_or("?"),
        d["format"].as_str().unwrap_or("?"),
        bytes(&d["virtual_size"]),
        mode,
        d["image"].as_str().unwrap_or("?"),
        if d["persistent"].as_bool() == Some(true) {
            "  persistent"
        } else {
            ""
        }
    );
    for p in d["partitions"].as_array().into_iter().flatten() {
        let what = p["fs_type"].as_str().unwrap_or("unknown");
        let dev = p["device"].as_str().unwrap_or("?");
        match p["mount_point"].as_str() {
            Some(mp) => println!(
                "  {dev}  {what}  {mp}  {} used, {} free",
                bytes(&p["used"]),
                bytes(&p["free"])
            ),
            None => println!("  {dev}  {what}  not mounted: {}", p["note"].as_str().unwrap_or("-")),
        }
    }
    if let Some(users) = d["used_by"].as_array().filter(|u| !u.is_empty()) {
        let names: Vec<&str> = users.iter().filter_map(|u| u.as_str()).collect();
        println!("  used by: {}", names.join(", "));
    }
    for n in d["notes"].as_array().into_iter().flatten() {
        println!("  note: {}", n.as_str().unwrap_or(""));
    }
}

fn print_drives(v: &Value) {
    let list = v.as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        println!("no drives");
    }
    for d in &list {
        print_drive(d);
    }
}

fn print_images(v: &Value) {
    for i in v.as_array().into_iter().flatten() {
        println!(
            "{}  {}  {}{}",
            i["name"].as_str().unwrap_or("?"),
            i["format"].as_str().unwrap_or("not an image"),
            bytes(&i["size"]),
            i["attached_as"]
                .as_str()
                .map(|n| format!("  attached as {n}"))
                .unwrap_or_default()
        );
    }
}

fn print_files(v: &Value) {
    for e in v["entries"].as_array().into_iter().flatten() {
        let kind = match e["kind"].as_str() {
            Some("dir") => "/",
            Some("symlink") => "@",
            _ => "",
        };
        println!("{}{kind}  {}", e["name"].as_str().unwrap_or("?"), bytes(&e["size"]));
    }
}

fn print_created(v: &Value) {
    println!(
        "created {} ({})",
        v["image"]["path"].as_str().unwrap_or("?"),
        bytes(&v["image"]["size"])
    );
    if !v["drive"].is_null() {
        print_drive(&v["drive"]);
    }
}

fn print_message(v: &Value) {
    println!("{}", v["message"].as_str().unwrap_or(""));
}

async fn drive_cmd(
    proxy: &ManagerProxy<'_>,
    action: DriveCmd,
    emit: impl Fn(&Value, fn(&Value)),
) -> Result<(), Failure> {
    let j = |s: String| parse_json(&s);
    match action {
        DriveCmd::Attach {
            image,
            name,
            read_write,
            no_mount,
            exec,
            partscan,
            offset,
            size,
        } => {
            let args = serde_json::json!({
                "path": image, "name": name, "read_write": read_write, "mount": !no_mount, "exec": exec,
                "partscan": partscan, "offset": offset.unwrap_or(0), "size": size,
            });
            emit(
                &j(proxy.attach_drive(&args.to_string()).await.map_err(failure)?)?,
                print_drive,
            );
        }
        DriveCmd::Detach { name, force } => {
            let m = proxy.detach_drive(&name, force).await.map_err(failure)?;
            emit(&serde_json::json!({ "message": m }), print_message);
        }
        DriveCmd::List => emit(&j(proxy.list_drives().await.map_err(failure)?)?, print_drives),
        DriveCmd::Info { name } => emit(&j(proxy.get_drive(&name).await.map_err(failure)?)?, print_drive),
        DriveCmd::Images => emit(&j(proxy.list_images().await.map_err(failure)?)?, print_images),
        DriveCmd::Files { name, path, volume } => emit(
            &j(proxy
                .list_drive_files(&name, &path, volume.as_deref().unwrap_or(""))
                .await
                .map_err(failure)?)?,
            print_files,
        ),
        DriveCmd::Create {
            path,
            size,
            format,
            fs,
            label,
            attach,
            name,
        } => {
            let args = serde_json::json!({
                "path": path, "size": size, "format": format, "fs": fs, "label": label, "attach": attach, "name": name,
            });
            emit(
                &j(proxy.create_drive(&args.to_string()).await.map_err(failure)?)?,
                print_created,
            );
        }
        DriveCmd::Snapshot { name } => emit(&j(proxy.snapshot_drive(&name).await.map_err(failure)?)?, print_drive),
        DriveCmd::Discard { name, yes } => {
            if !confirm(&format!("discard every change in the snapshot of {name}?"), yes)? {
                return Err(Failure {
                    code: 1,
                    message: "not discarded".into(),
                });
            }
            emit(&j(proxy.discard_snapshot(&name).await.map_err(failure)?)?, print_drive);
        }
        DriveCmd::Commit { name, yes } => {
            if !confirm(
                &format!("write the snapshot of {name} into its image (overwrites it)?"),
                yes,
            )? {
                return Err(Failure {
                    code: 1,
                    message: "not committed".into(),
                });
            }
            emit(
                &j(proxy.commit_snapshot(&name, true).await.map_err(failure)?)?,
                print_drive,
            );
        }
        DriveCmd::Persist { name, off } => emit(
            &j(proxy.set_drive_persistent(&name, !off).await.map_err(failure)?)?,
            print_drive,
        ),
        DriveCmd::Reconcile => emit(&j(proxy.reconcile_drives().await.map_err(failure)?)?, |v| {
            println!("{}", serde_json::to_string_pretty(v).unwrap_or_default())
        }),
    }
    Ok(())
}

fn print_sandbox(b: &Value) {
    println!(
        "{}  {}  {}{}{}",
        b["name"].as_str().unwrap_or("?"),
        b["state"].as_str().unwrap_or("?"),
        b["template"].as_str().unwrap_or("?"),
        b["main_pid"].as_u64().map(|p| format!("  pid {p}")).unwrap_or_default(),
        if b["ephemeral"].as_bool() == Some(true) {
            "  ephemeral"
        } else {
            ""
        }
    );
    for bind in b["binds"].as_array().into_iter().flatten() {
        println!(
            "  {} -> {} ({})",
            bind["drive"].as_str().unwrap_or("?"),
            bind["target"].as_str().unwrap_or("?"),
            if bind["read_write"].as_bool() == Some(true) {
                "rw"
            } else {
                "ro"
            }
        );
    }
    if let Some(e) = b["last_error"].as_str() {
        println!("  last error: {e}");
    }
}

fn print_sandboxes(v: &Value) {
    let list = v.as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        println!("no sandboxes");
    }
    for b in &list {
        print_sandbox(b);
    }
}

fn print_templates(v: &Value) {
    for t in v.as_array().into_iter().flatten() {
        println!(
            "{}  {}  {}",
            t["name"].as_str().unwrap_or("?"),
            t["kind"].as_str().unwrap_or("?"),
            t["description"].as_str().unwrap_or("")
        );
    }
}

fn print_logs(v: &Value) {
    for l in v["lines"].as_array().into_iter().flatten() {
        println!("{}", l.as_str().unwrap_or(""));
    }
}

async fn sandbox_cmd(
    proxy: &ManagerProxy<'_>,
    action: SandboxCmd,
    json: bool,
    emit: impl Fn(&Value, fn(&Value)),
) -> Result<(), Failure> {
    let j = |s: String| parse_json(&s);
    match action {
        SandboxCmd::Create { name, spec, ephemeral } => {
            let mut args = spec.body();
            args.insert("name".into(), name.into());
            args.insert("ephemeral".into(), ephemeral.into());
            let args = Value::Object(args);
            emit(
                &j(proxy.create_sandbox(&args.to_string()).await.map_err(failure)?)?,
                print_sandbox,
            );
        }
        SandboxCmd::Start { name } => emit(&j(proxy.start_sandbox(&name).await.map_err(failure)?)?, print_sandbox),
        SandboxCmd::Stop { name } => emit(&j(proxy.stop_sandbox(&name).await.map_err(failure)?)?, print_sandbox),
        SandboxCmd::Restart { name } => emit(&j(proxy.restart_sandbox(&name).await.map_err(failure)?)?, print_sandbox),
        SandboxCmd::Info { name } => emit(&j(proxy.get_sandbox(&name).await.map_err(failure)?)?, print_sandbox),
        SandboxCmd::List => emit(&j(proxy.list_sandboxes().await.map_err(failure)?)?, print_sandboxes),
        SandboxCmd::Logs { name, lines } => emit(
            &j(proxy.get_sandbox_logs(&name, lines).await.map_err(failure)?)?,
            print_logs,
        ),
        SandboxCmd::Exec { .. } | SandboxCmd::Run { .. } => {
            let v = match action {
                SandboxCmd::Exec { name, timeout, argv } => {
                    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
                    j(proxy
                        .exec_sandbox(&name, &argv, timeout.unwrap_or(0))
                        .await
                        .map_err(failure)?)?
                }
                SandboxCmd::Run {
                    name,
                    spec,
                    timeout,
                    argv,
                } => {
                    let mut args = spec.body();
                    args.insert("name".into(), name.into());
                    args.insert("timeout_secs".into(), timeout.into());
                    args.insert("argv".into(), argv.into());
                    let args = Value::Object(args);
                    j(proxy.run_in_sandbox(&args.to_string()).await.map_err(failure)?)?
                }
                _ => unreachable!("matched above"),
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                print!("{}", v["stdout"].as_str().unwrap_or(""));
                eprint!("{}", v["stderr"].as_str().unwrap_or(""));
                if v["timed_out"].as_bool() == Some(true) {
                    eprintln!("cacheosctl: the command timed out and was killed");
                }
            }
            let _ = std::io::stdout().flush();
            let code = v["exit_code"].as_i64().unwrap_or(1);
            if code != 0 {
                return Err(Failure {
                    code: u8::try_from(code).unwrap_or(1),
                    message: String::new(),
                });
            }
        }
        SandboxCmd::Remove { name, yes } => {
            if !confirm(&format!("remove sandbox {name} and delete its data?"), yes)? {
                return Err(Failure {
                    code: 1,
                    message: "not removed".into(),
                });
            }
            let m = proxy.remove_sandbox(&name, true).await.map_err(failure)?;
            emit(&serde_json::json!({ "message": m }), print_message);
        }
        SandboxCmd::Shell { name } => cacheosctl::shell::sandbox_shell(proxy, &name).await?,
        SandboxCmd::CopyIn { name, source, dest } => {
            emit(&j(copy_in(proxy, &name, &source, &dest).await?)?, print_copied)
        }
        SandboxCmd::CopyOut {
            name,
            source,
            dest,
            recursive,
        } => emit(
            &j(copy_out(proxy, &name, &source, &dest, recursive).await?)?,
            print_copied,
        ),
        SandboxCmd::Reconcile => emit(&j(proxy.reconcile_sandboxes().await.map_err(failure)?)?, |v| {
            println!("{}", serde_json::to_string_pretty(v).unwrap_or_default())
        }),
        // issue 15 (software)
        SandboxCmd::Expose { name, port, host_port } => emit(
            &j(proxy
                .expose_sandbox_port(&name, port, host_port.unwrap_or(0))
                .await
                .map_err(failure)?)?,
            software_cmd::print_network,
        ),
        SandboxCmd::Unexpose { name, port } => emit(
            &j(proxy.unexpose_sandbox_port(&name, port).await.map_err(failure)?)?,
            software_cmd::print_network,
        ),
        SandboxCmd::Service { name, service, argv } => {
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            emit(
                &j(proxy
                    .set_sandbox_service(&name, &service, &argv)
                    .await
                    .map_err(failure)?)?,
                software_cmd::print_network,
            )
        }
    }
    Ok(())
}

fn local(message: String) -> Failure {
    Failure { code: 1, message }
}

fn print_copied(v: &Value) {
    println!(
        "{} {} ({} bytes{})",
        v["name"].as_str().unwrap_or(""),
        v["path"].as_str().unwrap_or(""),
        v["bytes"].as_u64().unwrap_or(0),
        if v["archive"].as_bool() == Some(true) {
            ", tar stream"
        } else {
            ""
        }
    );
}

/// `sandbox copy-in`: a file is passed to the daemon as an open descriptor; a directory as the read end of a pipe
/// that a thread fills with a tar stream of it.
async fn copy_in(
    proxy: &ManagerProxy<'_>,
    name: &str,
    source: &std::path::Path,
    dest: &str,
) -> Result<String, Failure> {
    use std::os::fd::AsFd;
    let meta = std::fs::metadata(source).map_err(|e| local(format!("{}: {e}", source.display())))?;
    if meta.is_dir() {
        let (reader, writer) = std::io::pipe().map_err(|e| local(format!("cannot make a pipe: {e}")))?;
        let dir = source.to_owned();
        let packer = std::thread::spawn(move || -> std::io::Result<()> {
            let mut b = tar::Builder::new(writer);
            b.follow_symlinks(false);
            b.append_dir_all(".", &dir)?;
            b.into_inner()?;
            Ok(())
        });
        let r = proxy
            .copy_into_sandbox(name, dest, true, reader.as_fd().into())
            .await
            .map_err(failure);
        drop(reader);
        match packer.join() {
            Ok(Ok(())) => r,
            Ok(Err(e)) => Err(local(format!("cannot pack {}: {e}", source.display()))),
            Err(_) => Err(local("the packing thread failed".into())),
        }
    } else {
        let file = std::fs::File::open(source).map_err(|e| local(format!("{}: {e}", source.display())))?;
        proxy
            .copy_into_sandbox(name, dest, false, file.as_fd().into())
            .await
            .map_err(failure)
    }
}

/// `sandbox copy-out`: the daemon writes into a new local file, or into a pipe whose tar stream a thread unpacks.
async fn copy_out(
    proxy: &ManagerProxy<'_>,
    name: &str,
    source: &str,
    dest: &std::path::Path,
    recursive: bool,
) -> Result<String, Failure> {
    use std::os::fd::AsFd;
    if recursive {
        std::fs::create_dir_all(dest).map_err(|e| local(format!("{}: {e}", dest.display())))?;
        let (reader, writer) = std::io::pipe().map_err(|e| local(format!("cannot make a pipe: {e}")))?;
        let dir = dest.to_owned();
        let unpacker = std::thread::spawn(move || -> std::io::Result<()> {
            let mut a = tar::Archive::new(reader);
            a.set_preserve_permissions(true);
            a.set_overwrite(false);
            a.unpack(&dir)
        });
        let r = proxy
            .copy_from_sandbox(name, source, true, writer.as_fd().into())
            .await
            .map_err(failure);
        drop(writer);
        match (r, unpacker.join()) {
            (Err(e), _) => Err(e),
            (Ok(r), Ok(Ok(()))) => Ok(r),
            (Ok(_), Ok(Err(e))) => Err(local(format!("cannot unpack into {}: {e}", dest.display()))),
            (Ok(_), Err(_)) => Err(local("the unpacking thread failed".into())),
        }
    } else {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(dest)
            .map_err(|e| local(format!("{}: {e}", dest.display())))?;
        let r = proxy
            .copy_from_sandbox(name, source, false, file.as_fd().into())
            .await
            .map_err(failure);
        if r.is_err() {
            // Nothing half-written is left behind.
            let _ = std::fs::remove_file(dest);
        }
        r
    }
}

#[derive(Debug, Subcommand)]
enum WebCmd {
    /// Print the bearer token for web clients other than loopback (web.token).
    Token,
    /// Print the SHA-256 fingerprint of the web port's TLS certificate, to compare with the browser's (web.cert).
    Cert,
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

// issue 16 (diagnose)
/// A syslog priority by number or name.
fn parse_priority(p: &str) -> Result<u8, Failure> {
    const NAMES: [&str; 8] = ["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"];
    p.parse::<u8>()
        .ok()
        .filter(|n| *n <= 7)
        .or_else(|| NAMES.iter().position(|n| *n == p).map(|i| i as u8))
        .ok_or_else(|| Failure {
            code: 2,
            message: format!("invalid --priority {p:?}: not 0..7 or a priority name"),
        })
}

fn print_finding(f: &Value, depth: usize) {
    let ind = "  ".repeat(depth);
    println!(
        "{ind}{} {}: {}",
        f["cause"].as_str().unwrap_or("?"),
        f["target"].as_str().unwrap_or(""),
        f["summary"].as_str().unwrap_or("")
    );
    if let Some(st) = f["state"].as_str() {
        println!("{ind}  state: {st}");
    }
    for e in f["evidence"].as_array().into_iter().flatten() {
        let count = e["count"].as_u64().unwrap_or(1);
        let msg = e["message"].as_str().unwrap_or("").lines().next().unwrap_or("");
        let times = if count > 1 {
            format!(" ({count}x)")
        } else {
            String::new()
        };
        println!("{ind}  {} {msg}{times}", fmt_time(e["time_ms"].as_u64().unwrap_or(0)));
    }
    if f["because"].is_object() {
        print_finding(&f["because"], depth + 1);
    }
    if let Some(i) = f["fix"]["instruction"]
        .as_str()
        .filter(|i| !i.is_empty() && *i != "nothing to do")
    {
        println!("{ind}  fix: {i}");
    }
    if let Some(op) = f["fix"]["plan"]["op"].as_str() {
        println!("{ind}  plan: {op} {}", f["fix"]["plan"]["args"]);
    }
}

fn print_diagnosis(d: &Value) {
    let findings = d["findings"].as_array().cloned().unwrap_or_default();
    if findings.is_empty() {
        let checked: Vec<&str> = d["checked"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c.as_str())
            .collect();
        println!("no problems found (checked {})", checked.join(", "));
    }
    for f in &findings {
        print_finding(f, 0);
    }
}

fn print_journal(p: &Value) {
    for e in p["folded"].as_array().into_iter().flatten() {
        let count = e["count"].as_u64().unwrap_or(1);
        let times = if count > 1 {
            format!(" ({count}x)")
        } else {
            String::new()
        };
        println!(
            "{} {} {}{times}",
            fmt_time(e["time_ms"].as_u64().unwrap_or(0)),
            e["unit"].as_str().unwrap_or("-"),
            e["message"].as_str().unwrap_or("").lines().next().unwrap_or("")
        );
    }
}

fn print_services(v: &Value) {
    println!("{:<44} {:<12} SUB", "UNIT", "ACTIVE");
    for s in v.as_array().into_iter().flatten() {
        println!(
            "{:<44} {:<12} {}",
            s["name"].as_str().unwrap_or(""),
            s["active_state"].as_str().unwrap_or(""),
            s["sub_state"].as_str().unwrap_or("")
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

async fn run(cli: Cli) -> Result<(), Failure> {
    let bus = match cli.bus {
        BusArg::System => Bus::System,
        BusArg::Session => Bus::Session,
    };
    let proxy = connect(&bus).await?;
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
        Command::Web { action: WebCmd::Cert } => {
            emit(&parse_json(&proxy.get_web_cert().await.map_err(failure)?)?, |v| {
                println!("SHA-256 {}", v["fingerprint_sha256"].as_str().unwrap_or(""));
                println!("file    {}", v["path"].as_str().unwrap_or(""));
            })
        }
        Command::Drive { action } => drive_cmd(&proxy, action, emit).await?,
        Command::Sandbox { action } => sandbox_cmd(&proxy, action, json, emit).await?,
        Command::Template {
            action: TemplateCmd::List,
        } => emit(
            &parse_json(&proxy.list_templates().await.map_err(failure)?)?,
            print_templates,
        ),
        Command::Chat { explain, session, text } => {
            let opts = chat::Options {
                explain,
                json,
                session: session.unwrap_or_else(default_session),
                console: false,
            };
            if text.is_empty() {
                chat::converse(&bus, Ok(proxy), &opts).await?;
                return Ok(());
            }
            chat::chat_once(&proxy, &opts, &chat::Style::detect(), &text.join(" ")).await?;
        }
        Command::Kb { action } => kb::run(&proxy, action, emit).await?,
        Command::Software { action } => software_cmd::run(&proxy, action, emit).await?,
        Command::Model { action } => model_cmd::run(&proxy, action, emit).await?,
        Command::Privacy => emit(
            &parse_json(&proxy.get_privacy_channels().await.map_err(failure)?)?,
            model_cmd::print_privacy,
        ),
        // issue 18 (licences)
        Command::License { action } => license_cmd::license_cmd(&proxy, action, emit).await?,
        Command::Sbom { action } => license_cmd::sbom_cmd(&proxy, action, json).await?,
        Command::Notice { action } => license_cmd::notice_cmd(&proxy, action, emit).await?,
        Command::Proof { action } => license_cmd::proof_cmd(&proxy, action, emit).await?,
        Command::Disclosure { action } => license_cmd::disclosure_cmd(&proxy, action, emit).await?,
        // issue 16 (diagnose)
        Command::Diagnose { unit, sandbox, drive } => {
            let d = |o: &Option<String>| o.clone().unwrap_or_default();
            emit(
                &parse_json(
                    &proxy
                        .diagnose(&d(&unit), &d(&sandbox), &d(&drive))
                        .await
                        .map_err(failure)?,
                )?,
                print_diagnosis,
            )
        }
        Command::Journal {
            unit,
            sandbox,
            priority,
            since,
            grep,
            lines,
        } => {
            let priority = priority.map(|p| parse_priority(&p)).transpose()?;
            let since_ms = since.map(|s| parse_time(&s, "--since")).transpose()?;
            let q = serde_json::json!({
                "unit": unit, "sandbox": sandbox, "priority": priority, "since_ms": since_ms, "grep": grep,
                "limit": lines,
            });
            emit(
                &parse_json(&proxy.query_journal(&q.to_string()).await.map_err(failure)?)?,
                print_journal,
            )
        }
        Command::Service { action: None } => emit(
            &parse_json(&proxy.list_services().await.map_err(failure)?)?,
            print_services,
        ),
        Command::Service {
            action: Some(ServiceCmd::Restart { unit }),
        } => emit(
            &parse_json(&proxy.restart_service(&unit).await.map_err(failure)?)?,
            |v| {
                println!(
                    "{}: {} ({})",
                    v["name"].as_str().unwrap_or(""),
                    v["active_state"].as_str().unwrap_or(""),
                    v["sub_state"].as_str().unwrap_or("")
                )
            },
        ),
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
            // An empty message: the exit code is a sandboxed command's own, which printed what it had to say.
            if !f.message.is_empty() {
                eprintln!("cacheosctl: {}", f.message);
            }
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

    /// The man page in the repository (shipped in the image's documentation and indexed by the knowledge base as
    /// source `docs`) is the one `cacheosctl manpage` renders; regenerate it with
    /// `cacheosctl manpage > docs/man/cacheosctl.1`.
    #[test]
    fn committed_man_page_is_current() {
        let mut out = Vec::new();
        clap_mangen::Man::new(Cli::command()).render(&mut out).unwrap();
        let committed = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/man/cacheosctl.1")).unwrap();
        assert!(
            committed == out,
            "docs/man/cacheosctl.1 is stale: cacheosctl manpage > docs/man/cacheosctl.1"
        );
    }

    #[test]
    fn sandbox_arguments_parse() {
        let cli = Cli::try_parse_from([
            "cacheosctl",
            "sandbox",
            "create",
            "web",
            "--template",
            "bb",
            "--memory",
            "1G",
            "--cpus",
            "0.5",
            "--bind",
            "data:rw",
            "--bind",
            "iso",
            "--env",
            "A=b=c",
            "--ephemeral",
        ])
        .unwrap();
        let Command::Sandbox {
            action: SandboxCmd::Create { spec, .. },
        } = cli.command
        else {
            panic!("not sandbox create")
        };
        assert_eq!(spec.memory, Some(1 << 30));
        assert_eq!(spec.binds[0], serde_json::json!({"drive": "data", "read_write": true}));
        assert_eq!(spec.binds[1], serde_json::json!({"drive": "iso", "read_write": false}));
        assert_eq!(spec.env, [("A".to_string(), "b=c".to_string())]);
        let body = spec.body();
        assert_eq!(body["memory_max"], 1u64 << 30);
        assert_eq!(body["cpu"], 0.5);
        assert!(parse_bind("data:xx").is_err());
        let cli = Cli::try_parse_from([
            "cacheosctl",
            "sandbox",
            "exec",
            "web",
            "--timeout",
            "5",
            "--",
            "sh",
            "-c",
            "exit 3",
        ])
        .unwrap();
        let Command::Sandbox {
            action: SandboxCmd::Exec { timeout, argv, .. },
        } = cli.command
        else {
            panic!("not sandbox exec")
        };
        assert_eq!((timeout, argv.len()), (Some(5), 3));
    }

    #[test]
    fn model_use_maps_onto_the_rest_body_and_reads_the_key_from_a_file() {
        let key = std::env::temp_dir().join(format!("cacheosctl-key-{}", std::process::id()));
        std::fs::write(&key, "sk-abc\n").unwrap();
        let cli = Cli::try_parse_from([
            "cacheosctl",
            "model",
            "use",
            "--url",
            "http://192.168.1.5:8080",
            "--model",
            "qwen",
            "--api-key-file",
            key.to_str().unwrap(),
        ])
        .unwrap();
        let Command::Model { action } = cli.command else {
            panic!("not model")
        };
        let b = model_cmd::use_body(&action).unwrap();
        assert_eq!(
            b,
            serde_json::json!({"url": "http://192.168.1.5:8080", "model": "qwen", "api_key": "sk-abc"})
        );
        let _ = std::fs::remove_file(&key);
        let cli = Cli::try_parse_from(["cacheosctl", "model", "use", "--drive", "models", "--threads", "2"]).unwrap();
        let Command::Model { action } = cli.command else {
            panic!("not model")
        };
        assert_eq!(
            model_cmd::use_body(&action).unwrap(),
            serde_json::json!({"drive": "models", "threads": 2})
        );
        // Two sources, or a model name without a URL, are refused by clap.
        assert!(Cli::try_parse_from(["cacheosctl", "model", "use", "--path", "/a.gguf", "--url", "http://h"]).is_err());
        // (With --path, clap lets a conflict override the requirement; the core refuses model without url.)
        assert!(Cli::try_parse_from(["cacheosctl", "model", "use", "--model", "m"]).is_err());
        let e = model_cmd::use_body(&model_cmd::ModelCmd::Use {
            path: None,
            drive: None,
            file: None,
            url: Some("http://h".into()),
            model: None,
            api_key_file: Some("/nonexistent/key".into()),
            threads: None,
        })
        .unwrap_err();
        assert!(e.message.contains("cannot read the API key"), "{}", e.message);
    }

    #[test]
    fn times_parse_relative_and_absolute() {
        let t = parse_time("10m", "--since").ok().unwrap();
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
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
