//! The real [`ContainerRunner`]: systemd-nspawn, either as a transient systemd unit (systemd is PID 1: the appliance)
//! or spawned directly with `--register=no --keep-unit` and cgroup v1 limits applied through `cgexec` (the
//! development hosts). Every command is a fixed argv; nothing passes through a shell.
//!
//! What is enforced where:
//! - [`Mode::Systemd`]: `systemd-run --unit=cacheos-sandbox-NAME -p Type=notify -p Delegate=yes -p KillMode=mixed`
//!   with `CPUQuota=`, `MemoryMax=`, `TasksMax=` on the unit's cgroup v2; machined registers the container
//!   (`machinectl list`); output goes to the journal (`journalctl -u`).
//! - [`Mode::Direct`]: for each of the v1 controllers `memory`, `pids`, `cpu`, `cpuacct` mounted under
//!   `/sys/fs/cgroup/<controller>`, a child cgroup `cacheos-sandbox-NAME` of the runner's own cgroup gets
//!   `memory.limit_in_bytes`, `pids.max`, `cpu.cfs_quota_us`/`cpu.cfs_period_us`, and nspawn starts inside them
//!   through `cgexec` (no race: cgexec joins before it execs nspawn). A controller that is not mounted as v1 (for
//!   example on a pure cgroup v2 host without systemd) is not enforced and a warning is logged; this host's v2
//!   `unified` mount has no controllers enabled, so v1 is what works here. Output goes to `<runner_dir>/NAME.log`.
//! - Both: `--private-users=pick` (idmapped on plain directories; nspawn chowns overlay roots instead),
//!   `--private-network` unless nat (`--network-veth`), `--settings=false`, no device options (no host devices),
//!   the default system-call filter, only the binds asked for (writable ones idmapped), `--console=pipe`.
//! - exec: `nsenter --target LEADER --all --root --wdns=DIR -- argv`, inside the container's cgroup and so under
//!   its limits: in direct mode wrapped in the container's v1 cgroups by `cgexec`; in systemd mode the child joins
//!   the leader's cgroup v2 (below the unit's) between fork and exec.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cacheos_core::sandbox::{
    ContainerHandle, ContainerRunner, ContainerStats, ExecOutcome, ExecSpec, Network, OutputChunk, RootSource,
    RunnerError, RunningContainer, StartRequest, StopOutcome, Volatile,
};
use rustix::fs::{Mode as FileMode, OFlags, ResolveFlags};
use rustix::process::{Pid, Signal};

/// Default directory of the direct runner's console logs.
pub const RUNNER_DIR: &str = "/run/cacheos/sandbox-runner";
const NSPAWN: &str = "systemd-nspawn";
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const V1_CONTROLLERS: [&str; 4] = ["memory", "pids", "cpu", "cpuacct"];

/// How containers are run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// As transient systemd units, registered with machined (systemd is PID 1).
    Systemd,
    /// nspawn spawned directly, limits through cgroup v1 (no systemd as PID 1).
    Direct,
}

/// The unit name of a sandbox.
pub fn unit_name(name: &str) -> String {
    format!("cacheos-sandbox-{name}.service")
}

/// The argument that marks an nspawn process as running sandbox `name` (also visible inside as an environment
/// variable).
pub fn marker(name: &str) -> String {
    format!("--setenv=CACHEOS_SANDBOX={name}")
}

/// systemd-nspawn's arguments for a request (without the program name). `owner` is a label of the runner instance
/// (its directory), passed as `CACHEOS_RUNNER`, so that a runner only ever lists and stops its own containers.
pub fn nspawn_args(request: &StartRequest, mode: Mode, owner: &str) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "--quiet".into(),
        "--settings=false".into(),
        "--private-users=pick".into(),
        "--keep-unit".into(),
    ];
    if mode == Mode::Direct {
        a.push("--register=no".into());
    }
    a.push(format!("--machine={}", request.name));
    a.push(marker(&request.name));
    a.push(format!("--setenv=CACHEOS_RUNNER={owner}"));
    a.push("--console=pipe".into());
    match request.network {
        Network::None => a.push("--private-network".into()),
        Network::Nat => {
            a.push("--network-veth".into());
            // The appliance's own resolv.conf names its local stub resolver, which the sandbox cannot reach; the
            // uplink's name servers (systemd-resolved's list) are reachable through the NAT.
            a.push("--resolv-conf=copy-uplink".into());
        }
    }
    match &request.root.source {
        RootSource::Directory(p) => a.push(format!("--directory={}", p.display())),
        RootSource::Image(p) => a.push(format!("--image={}", p.display())),
    }
    match request.root.volatile {
        Volatile::No => {}
        Volatile::Yes => a.push("--volatile=yes".into()),
        Volatile::Overlay => a.push("--volatile=overlay".into()),
    }
    for b in &request.binds {
        // Writable binds are idmapped so that the container's root writes as the appliance's root (files stay
        // usable after the sandbox is gone); read-only ones are not, which also works on file systems without
        // idmapped-mount support (iso9660): files are then seen as owned by nobody, readable by their mode.
        if b.read_write {
            a.push(format!("--bind={}:{}:idmap", b.source.display(), b.target.display()));
        } else {
            a.push(format!("--bind-ro={}:{}", b.source.display(), b.target.display()));
        }
    }
    for (k, v) in &request.env {
        a.push(format!("--setenv={k}={v}"));
    }
    match &request.command {
        None => a.push("--boot".into()),
        Some(argv) => {
            a.push("--as-pid2".into());
            a.push("--".into());
            a.extend(argv.iter().cloned());
        }
    }
    a
}

/// `systemd-run`'s arguments that start the nspawn of `request` as a transient unit (followed by the nspawn argv).
pub fn systemd_run_args(request: &StartRequest, owner: &str) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "--quiet".into(),
        format!("--unit={}", unit_name(&request.name)),
        format!("--description=CacheOS sandbox {}", request.name),
        "--collect".into(),
        "--property=Type=notify".into(),
        "--property=Delegate=yes".into(),
        "--property=KillMode=mixed".into(),
    ];
    if let Some(cpu) = request.limits.cpu {
        a.push(format!(
            "--property=CPUQuota={}%",
            (cpu * 100.0).round().max(1.0) as u64
        ));
    }
    if let Some(m) = request.limits.memory_max {
        a.push(format!("--property=MemoryMax={m}"));
    }
    if let Some(t) = request.limits.tasks_max {
        a.push(format!("--property=TasksMax={t}"));
    }
    a.push("--".into());
    a.push(NSPAWN.into());
    a.extend(nspawn_args(request, Mode::Systemd, owner));
    a
}

/// One v1 cgroup of a sandbox: the controllers of one hierarchy and the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
struct V1Group {
    /// `memory`, or `cpu,cpuacct` when co-mounted.
    controllers: String,
    /// Path relative to the hierarchy's root (what cgexec takes).
    rel: String,
    /// `/sys/fs/cgroup/<controller>/<rel>`.
    dir: PathBuf,
}

/// Parses `/proc/PID/cgroup` into (controllers, path) for v1 lines.
fn v1_lines(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let (_, ctrls, path) = (it.next()?, it.next()?, it.next()?);
            (!ctrls.is_empty()).then(|| (ctrls.to_owned(), path.to_owned()))
        })
        .collect()
}

/// The v1 cgroups of the process `pid` for the controllers CacheOS limits, optionally with `child` appended.
fn v1_groups(pid: &str, child: Option<&str>) -> Vec<V1Group> {
    let Ok(text) = fs::read_to_string(format!("/proc/{pid}/cgroup")) else {
        return Vec::new();
    };
    let mut out: Vec<V1Group> = Vec::new();
    for (ctrls, path) in v1_lines(&text) {
        let wanted: Vec<&str> = ctrls.split(',').filter(|c| V1_CONTROLLERS.contains(c)).collect();
        let Some(first) = wanted.first() else { continue };
        let mount = Path::new("/sys/fs/cgroup").join(first);
        if !mount.join("cgroup.procs").exists() || mount.join("cgroup.controllers").exists() {
            continue;
        }
        let mut rel = path.trim_end_matches('/').to_owned();
        if let Some(c) = child {
            rel = format!("{rel}/{c}");
        }
        let dir = mount.join(rel.trim_start_matches('/'));
        if !out.iter().any(|g| g.dir == dir) {
            out.push(V1Group {
                controllers: wanted.join(","),
                rel: if rel.is_empty() { "/".into() } else { rel },
                dir,
            });
        }
    }
    out
}

fn cgexec_args(groups: &[V1Group]) -> Vec<String> {
    let mut a = Vec::new();
    for g in groups {
        a.push("-g".into());
        a.push(format!("{}:{}", g.controllers, g.rel));
    }
    a
}

/// `cgroup.procs` of the cgroup v2 that process `pid` is in, open for writing (writing `0` moves the writer there).
fn v2_procs(pid: u32) -> io::Result<File> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup"))?;
    let rel = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("process {pid} has no cgroup v2")))?;
    let dir = Path::new("/sys/fs/cgroup").join(rel.trim_start_matches('/'));
    OpenOptions::new().write(true).open(dir.join("cgroup.procs"))
}

fn read_u64(path: &Path) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn proc_args(pid: u32) -> Vec<String> {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|c| *c == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(text) = fs::read_to_string(t.path().join("children")) {
                out.extend(text.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
            }
        }
    }
    out
}

fn descendants(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut stack = children_of(pid);
    while let Some(p) = stack.pop() {
        out.push(p);
        stack.extend(children_of(p));
    }
    out
}

fn comm(pid: u32) -> String {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

fn alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, r)| !r.starts_with('Z')))
        .unwrap_or(false)
}

fn signal(pid: u32, sig: Signal) {
    if let Some(p) = Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(p, sig);
    }
}

/// Every directly spawned nspawn with a sandbox marker of runner `owner`: (name, nspawn pid).
fn scan_nspawns(owner: &str) -> io::Result<Vec<(String, u32)>> {
    let owner_arg = format!("--setenv=CACHEOS_RUNNER={owner}");
    let mut out = Vec::new();
    for entry in fs::read_dir("/proc")?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let args = proc_args(pid);
        let is_nspawn = args
            .first()
            .and_then(|a| Path::new(a).file_name())
            .is_some_and(|n| n == NSPAWN);
        if !is_nspawn || !args.iter().any(|a| a == "--register=no") || !args.contains(&owner_arg) {
            continue;
        }
        if let Some(name) = args.iter().find_map(|a| a.strip_prefix("--setenv=CACHEOS_SANDBOX=")) {
            out.push((name.to_owned(), pid));
        }
    }
    Ok(out)
}

fn run_quiet(program: &str, args: &[String]) -> io::Result<std::process::Output> {
    Command::new(program).args(args).stdin(Stdio::null()).output()
}

/// Real [`ContainerRunner`].
#[derive(Debug)]
pub struct NspawnRunner {
    mode: Mode,
    runner_dir: PathBuf,
    start_timeout: Duration,
    /// Direct mode: the nspawn processes this runner spawned, reaped on stop.
    children: Mutex<HashMap<String, Child>>,
}

impl NspawnRunner {
    pub fn new(mode: Mode, runner_dir: impl Into<PathBuf>) -> Self {
        Self {
            mode,
            runner_dir: runner_dir.into(),
            start_timeout: Duration::from_secs(30),
            children: Mutex::new(HashMap::new()),
        }
    }

    /// Systemd mode when systemd is PID 1, direct mode otherwise.
    pub fn detect() -> Self {
        let mode = if crate::systemd_booted() {
            Mode::Systemd
        } else {
            Mode::Direct
        };
        Self::new(mode, RUNNER_DIR)
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    fn owner(&self) -> String {
        self.runner_dir.display().to_string()
    }

    /// Where direct mode writes a container's console output.
    pub fn log_path(&self, name: &str) -> PathBuf {
        self.runner_dir.join(format!("{name}.log"))
    }

    fn reap(&self) {
        let mut children = self.children.lock().unwrap_or_else(|e| e.into_inner());
        children.retain(|_, c| matches!(c.try_wait(), Ok(None)));
    }

    fn nspawn_pid(&self, name: &str) -> Result<Option<u32>, RunnerError> {
        self.reap();
        let all = scan_nspawns(&self.owner()).map_err(|source| RunnerError::Status {
            name: name.to_owned(),
            source,
        })?;
        Ok(all.into_iter().find(|(n, _)| n == name).map(|(_, p)| p))
    }

    /// The container's PID 1: nspawn's child (direct) or machined's leader (systemd).
    fn leader(&self, name: &str) -> Result<Option<u32>, RunnerError> {
        match self.mode {
            Mode::Direct => Ok(self.nspawn_pid(name)?.and_then(|p| children_of(p).into_iter().next())),
            Mode::Systemd => {
                let out = run_quiet(
                    "machinectl",
                    &["show".into(), name.into(), "--property=Leader".into(), "--value".into()],
                )
                .map_err(|source| RunnerError::Status {
                    name: name.to_owned(),
                    source,
                })?;
                Ok(String::from_utf8_lossy(&out.stdout)
                    .trim()
                    .parse()
                    .ok()
                    .filter(|_| out.status.success()))
            }
        }
    }

    fn running_leader(&self, name: &str) -> Result<u32, RunnerError> {
        self.leader(name)?
            .ok_or_else(|| RunnerError::NotRunning { name: name.to_owned() })
    }

    fn start_direct(&self, request: &StartRequest) -> Result<ContainerHandle, RunnerError> {
        let name = &request.name;
        let cg_name = format!("cacheos-sandbox-{name}");
        let groups = v1_groups("self", Some(&cg_name));
        let cg_err = |path: &Path, source: io::Error| RunnerError::Cgroup {
            name: name.clone(),
            path: path.to_owned(),
            source,
        };
        let cleanup_groups = |groups: &[V1Group]| {
            for g in groups {
                let _ = fs::remove_dir(&g.dir);
            }
        };
        let write_limits = || -> Result<(), RunnerError> {
            for g in &groups {
                fs::create_dir_all(&g.dir).map_err(|e| cg_err(&g.dir, e))?;
                let mut files: Vec<(&str, String)> = Vec::new();
                let has = |c: &str| g.controllers.split(',').any(|x| x == c);
                if has("memory") {
                    if let Some(m) = request.limits.memory_max {
                        files.push(("memory.limit_in_bytes", m.to_string()));
                    }
                }
                if has("pids") {
                    if let Some(t) = request.limits.tasks_max {
                        files.push(("pids.max", t.to_string()));
                    }
                }
                if has("cpu") {
                    if let Some(cpu) = request.limits.cpu {
                        files.push(("cpu.cfs_period_us", "100000".into()));
                        files.push((
                            "cpu.cfs_quota_us",
                            ((cpu * 100_000.0).round() as u64).max(1000).to_string(),
                        ));
                    }
                }
                for (file, value) in files {
                    let path = g.dir.join(file);
                    fs::write(&path, value).map_err(|e| cg_err(&path, e))?;
                }
            }
            Ok(())
        };
        for c in ["memory", "pids", "cpu"] {
            if !groups.iter().any(|g| g.controllers.split(',').any(|x| x == c)) {
                tracing::warn!(sandbox = %name, controller = c, "no cgroup v1 controller; limit not enforced");
            }
        }
        if let Err(e) = write_limits() {
            cleanup_groups(&groups);
            return Err(e);
        }
        fs::create_dir_all(&self.runner_dir).map_err(|source| RunnerError::Spawn {
            name: name.clone(),
            program: NSPAWN.into(),
            source,
        })?;
        let log_path = self.log_path(name);
        let open_log = || OpenOptions::new().create(true).append(true).open(&log_path);
        let (log, log2) = match open_log().and_then(|l| Ok((l.try_clone()?, l))) {
            Ok(l) => l,
            Err(source) => {
                cleanup_groups(&groups);
                return Err(RunnerError::Spawn {
                    name: name.clone(),
                    program: NSPAWN.into(),
                    source,
                });
            }
        };
        let log_len = log.metadata().map(|m| m.len()).unwrap_or(0);
        let mut command = if groups.is_empty() {
            Command::new(NSPAWN)
        } else {
            let mut c = Command::new("cgexec");
            c.args(cgexec_args(&groups)).arg(NSPAWN);
            c
        };
        command
            .args(nspawn_args(request, Mode::Direct, &self.owner()))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        let program = if groups.is_empty() { NSPAWN } else { "cgexec" };
        let mut child = command.spawn().map_err(|source| {
            cleanup_groups(&groups);
            RunnerError::Spawn {
                name: name.clone(),
                program: program.into(),
                source,
            }
        })?;
        let pid = child.id();
        let end = Instant::now() + self.start_timeout;
        let fail = |child: &mut Child, message: String| {
            signal(pid, Signal::KILL);
            for d in descendants(pid) {
                signal(d, Signal::KILL);
            }
            let _ = child.wait();
            std::thread::sleep(Duration::from_millis(50));
            cleanup_groups(&groups);
            RunnerError::Start {
                name: name.clone(),
                message,
            }
        };
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let text = fs::read(&log_path).unwrap_or_default();
                let tail = String::from_utf8_lossy(&text[(log_len as usize).min(text.len())..])
                    .trim()
                    .to_owned();
                let _ = child.wait();
                cleanup_groups(&groups);
                return Err(RunnerError::Start {
                    name: name.clone(),
                    message: format!("{NSPAWN} exited with {status}: {tail}"),
                });
            }
            // Up once a process below nspawn has exec'd the payload or init: its name is neither nspawn's nor one
            // of nspawn's helpers' (`(sd-stubinit)`, `(sd-...)`), so an init that cannot be executed is a failed
            // start, not a container.
            let ready = descendants(pid).into_iter().any(|d| {
                let c = comm(d);
                !c.is_empty() && c != NSPAWN && c != "cgexec" && !c.starts_with('(')
            });
            if ready {
                break;
            }
            if Instant::now() >= end {
                return Err(fail(
                    &mut child,
                    format!("not up after {} s", self.start_timeout.as_secs()),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let leader = children_of(pid).into_iter().next().unwrap_or(pid);
        self.children
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.clone(), child);
        Ok(ContainerHandle {
            name: name.clone(),
            unit: format!("nspawn:{pid}"),
            leader,
        })
    }

    fn start_systemd(&self, request: &StartRequest) -> Result<ContainerHandle, RunnerError> {
        let name = &request.name;
        let unit = unit_name(name);
        let out = run_quiet("systemd-run", &systemd_run_args(request, &self.owner())).map_err(|source| {
            RunnerError::Spawn {
                name: name.clone(),
                program: "systemd-run".into(),
                source,
            }
        })?;
        let cleanup = || {
            let _ = run_quiet("systemctl", &["stop".into(), unit.clone()]);
            let _ = run_quiet("systemctl", &["reset-failed".into(), unit.clone()]);
        };
        if !out.status.success() {
            let journal = run_quiet(
                "journalctl",
                &[
                    "-u".into(),
                    unit.clone(),
                    "-n".into(),
                    "20".into(),
                    "-o".into(),
                    "cat".into(),
                    "--no-pager".into(),
                ],
            )
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
            cleanup();
            return Err(RunnerError::Start {
                name: name.clone(),
                message: format!(
                    "systemd-run exited with {}: {} {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim(),
                    journal.trim()
                ),
            });
        }
        match self.leader(name) {
            Ok(Some(leader)) => Ok(ContainerHandle {
                name: name.clone(),
                unit,
                leader,
            }),
            other => {
                cleanup();
                Err(RunnerError::Start {
                    name: name.clone(),
                    message: format!("machined does not know the container: {other:?}"),
                })
            }
        }
    }

    fn wait_gone(&self, name: &str, pid: u32, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        loop {
            {
                let mut children = self.children.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(c) = children.get_mut(name) {
                    if matches!(c.try_wait(), Ok(Some(_))) {
                        children.remove(name);
                        return true;
                    }
                } else if !alive(pid) {
                    return true;
                }
            }
            if Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop_direct(&self, name: &str, timeout: Duration) -> Result<StopOutcome, RunnerError> {
        let Some(pid) = self.nspawn_pid(name)? else {
            self.remove_groups(name);
            return Ok(StopOutcome::NotRunning);
        };
        let leader = children_of(pid).into_iter().next();
        // nspawn passes SIGTERM on as a shutdown request (boot) or kills its payload.
        signal(pid, Signal::TERM);
        let outcome = if self.wait_gone(name, pid, timeout) {
            StopOutcome::Graceful
        } else {
            if let Some(l) = leader {
                // PID 1 of the container: its death takes the whole pid namespace with it.
                signal(l, Signal::KILL);
            }
            signal(pid, Signal::KILL);
            if !self.wait_gone(name, pid, Duration::from_secs(10)) {
                return Err(RunnerError::Stop {
                    name: name.to_owned(),
                    source: io::Error::new(io::ErrorKind::TimedOut, "nspawn did not exit after SIGKILL"),
                });
            }
            StopOutcome::Killed
        };
        self.remove_groups(name);
        Ok(outcome)
    }

    fn remove_groups(&self, name: &str) {
        let groups = v1_groups("self", Some(&format!("cacheos-sandbox-{name}")));
        for g in groups {
            // The last tasks may need a moment to leave the cgroup after their nspawn exited.
            for _ in 0..50 {
                match fs::remove_dir(&g.dir) {
                    Err(e) if e.raw_os_error() == Some(16) => std::thread::sleep(Duration::from_millis(20)),
                    _ => break,
                }
            }
        }
    }

    fn unit_active(unit: &str) -> bool {
        run_quiet("systemctl", &["is-active".into(), "--quiet".into(), unit.into()])
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    fn stop_systemd(&self, name: &str, timeout: Duration) -> Result<StopOutcome, RunnerError> {
        let unit = unit_name(name);
        if !Self::unit_active(&unit) {
            return Ok(StopOutcome::NotRunning);
        }
        let err = |source| RunnerError::Stop {
            name: name.to_owned(),
            source,
        };
        run_quiet("systemctl", &["stop".into(), "--no-block".into(), unit.clone()]).map_err(err)?;
        let wait = |t: Duration| {
            let end = Instant::now() + t;
            while Instant::now() < end {
                if !Self::unit_active(&unit) {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            false
        };
        if wait(timeout) {
            return Ok(StopOutcome::Graceful);
        }
        run_quiet("systemctl", &["kill".into(), "--signal=SIGKILL".into(), unit.clone()]).map_err(err)?;
        if !wait(Duration::from_secs(10)) {
            return Err(err(io::Error::new(
                io::ErrorKind::TimedOut,
                "unit still active after SIGKILL",
            )));
        }
        Ok(StopOutcome::Killed)
    }

    fn stats_v1(&self, leader: u32) -> ContainerStats {
        let mut s = ContainerStats::default();
        for g in v1_groups(&leader.to_string(), None) {
            for c in g.controllers.split(',') {
                match c {
                    "memory" => {
                        s.memory_current = read_u64(&g.dir.join("memory.usage_in_bytes"));
                        s.memory_peak = read_u64(&g.dir.join("memory.max_usage_in_bytes"));
                        s.memory_max = read_u64(&g.dir.join("memory.limit_in_bytes")).filter(|m| *m < (1 << 62));
                    }
                    "pids" => {
                        s.tasks_current = read_u64(&g.dir.join("pids.current"));
                        s.tasks_max = read_u64(&g.dir.join("pids.max"));
                    }
                    "cpuacct" => s.cpu_time_ns = read_u64(&g.dir.join("cpuacct.usage")),
                    _ => {}
                }
            }
        }
        s
    }

    fn stats_systemd(&self, name: &str, leader: u32) -> ContainerStats {
        let mut s = ContainerStats::default();
        let cg = run_quiet(
            "systemctl",
            &[
                "show".into(),
                unit_name(name),
                "--property=ControlGroup".into(),
                "--value".into(),
            ],
        )
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
        if !cg.is_empty() {
            let dir = Path::new("/sys/fs/cgroup").join(cg.trim_start_matches('/'));
            s.memory_current = read_u64(&dir.join("memory.current"));
            s.memory_peak = read_u64(&dir.join("memory.peak"));
            s.memory_max = read_u64(&dir.join("memory.max"));
            s.tasks_current = read_u64(&dir.join("pids.current"));
            s.tasks_max = read_u64(&dir.join("pids.max"));
            s.cpu_time_ns = fs::read_to_string(dir.join("cpu.stat")).ok().and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("usage_usec "))
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(|us| us * 1000)
            });
        }
        let ip = run_quiet(
            "nsenter",
            &[
                format!("--target={leader}"),
                "--net".into(),
                "ip".into(),
                "-4".into(),
                "-o".into(),
                "addr".into(),
                "show".into(),
                "dev".into(),
                "host0".into(),
            ],
        );
        s.ip = ip
            .ok()
            .and_then(|o| first_inet(&String::from_utf8_lossy(&o.stdout)))
            .map(|(a, _)| a.to_string());
        s
    }

    /// A command that enters every namespace of the container of `leader` (root and working directory `cwd`
    /// inside) and joins its cgroup, ready for the argv to run inside to be appended. `prefix` goes before it all
    /// (for example `setsid --ctty`).
    fn entering(&self, leader: u32, prefix: &[&str], cwd: &Path) -> io::Result<Command> {
        let groups = match self.mode {
            Mode::Direct => v1_groups(&leader.to_string(), None),
            Mode::Systemd => Vec::new(),
        };
        let mut argv: Vec<String> = prefix.iter().map(|s| s.to_string()).collect();
        if !groups.is_empty() {
            argv.push("cgexec".into());
            argv.extend(cgexec_args(&groups));
        }
        argv.push("nsenter".into());
        let mut c = Command::new(&argv[0]);
        c.args(&argv[1..]);
        if self.mode == Mode::Systemd {
            let procs = v2_procs(leader)?;
            use std::os::unix::process::CommandExt;
            // The workspace denies unsafe code; this is its one use in the sandbox runner, because joining the
            // cgroup after the spawn would race with nsenter's own fork.
            // SAFETY: between fork and exec the closure only issues write(2) on a descriptor opened before the
            // fork; it allocates nothing and takes no lock.
            #[allow(unsafe_code)]
            unsafe {
                c.pre_exec(move || {
                    rustix::io::write(&procs, b"0").map_err(io::Error::from)?;
                    Ok(())
                });
            }
        }
        c.arg(format!("--target={leader}"))
            .args(["--all", "--root"])
            .arg(format!("--wdns={}", cwd.display()))
            .arg("--");
        Ok(c)
    }

    /// Opens `inside` below the container's root, resolving every component inside it (symlinks cannot escape).
    fn open_inside(&self, leader: u32, inside: &Path, flags: OFlags, mode: u32) -> io::Result<File> {
        let root = File::open(format!("/proc/{leader}/root"))?;
        let rel = inside.strip_prefix("/").unwrap_or(inside);
        let fd = rustix::fs::openat2(
            &root,
            rel,
            flags | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            FileMode::from_raw_mode(mode),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        )?;
        Ok(File::from(fd))
    }
}

/// Output of a fixed command, or an error naming it and its stderr.
fn checked(program: &str, args: &[String]) -> io::Result<String> {
    let out = run_quiet(program, args)?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{program} {} exited with {}: {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The first IPv4 address and prefix length in `ip -4 -o addr show` output.
fn first_inet(text: &str) -> Option<(std::net::Ipv4Addr, u8)> {
    let cidr = text.split_whitespace().skip_while(|w| *w != "inet").nth(1)?;
    let (addr, len) = cidr.split_once('/')?;
    Some((addr.parse().ok()?, len.parse().ok()?))
}

/// The address the container side of a veth gets: the host side's address plus one, when that is still a host
/// address of the subnet.
pub fn container_address(host: std::net::Ipv4Addr, prefix: u8) -> Option<std::net::Ipv4Addr> {
    if !(1..=30).contains(&prefix) {
        return None;
    }
    let mask = u32::MAX << (32 - prefix);
    let h = u32::from(host);
    let c = h.checked_add(1)?;
    let broadcast = (h & mask) | !mask;
    (c & mask == h & mask && c < broadcast).then(|| c.into())
}

/// Configures the container side (`host0`) of a `--network-veth` sandbox that runs no network manager of its own:
/// brings it up, waits for the host side to be given an address (systemd-networkd's `79-cacheos-sandbox.network`
/// assigns a /28 from its pool and serves DHCP; the appliance's `cacheos-nat.service` masquerades), then gives
/// `host0` the next address and a default route through the host side. Every command is a fixed argv run in the container's network namespace only.
fn configure_nat(leader: u32, wait: Duration) -> io::Result<()> {
    let in_net = |args: &[&str]| -> io::Result<String> {
        let mut a = vec![format!("--target={leader}"), "--net".into(), "ip".into()];
        a.extend(args.iter().map(|s| s.to_string()));
        checked("nsenter", &a)
    };
    let link = in_net(&["-o", "link", "show", "dev", "host0"])?;
    let peer: u32 = link
        .split_whitespace()
        .nth(1)
        .and_then(|w| w.trim_end_matches(':').split_once("@if"))
        .and_then(|(_, i)| i.parse().ok())
        .ok_or_else(|| io::Error::other(format!("cannot read the peer of host0 from {link:?}")))?;
    let host_if = fs::read_dir("/sys/class/net")?
        .filter_map(Result::ok)
        .find(|e| {
            fs::read_to_string(e.path().join("ifindex")).is_ok_and(|i| i.trim().parse::<u32>().ok() == Some(peer))
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .ok_or_else(|| io::Error::other(format!("no host interface with index {peer}")))?;
    // The host side has no carrier (and networkd gives it no address) until the container side is up.
    in_net(&["link", "set", "host0", "up"])?;
    let end = Instant::now() + wait;
    let (host, prefix) = loop {
        let text = checked(
            "ip",
            &[
                "-4".into(),
                "-o".into(),
                "addr".into(),
                "show".into(),
                "dev".into(),
                host_if.clone(),
            ],
        )?;
        if let Some(a) = first_inet(&text) {
            break a;
        }
        if Instant::now() >= end {
            return Err(io::Error::other(format!(
                "{host_if} got no IPv4 address (is systemd-networkd running with 79-cacheos-sandbox.network?)"
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mine = container_address(host, prefix)
        .ok_or_else(|| io::Error::other(format!("no free address next to {host}/{prefix}")))?;
    in_net(&["addr", "replace", &format!("{mine}/{prefix}"), "dev", "host0"])?;
    in_net(&["route", "replace", "default", "via", &host.to_string(), "dev", "host0"])?;
    Ok(())
}

/// The host uid and gid that are root inside the container of `leader`.
fn container_root_ids(leader: u32) -> io::Result<(u32, u32)> {
    let first = |file: &str| -> io::Result<u32> {
        let text = fs::read_to_string(format!("/proc/{leader}/{file}"))?;
        text.lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.first() == Some(&"0")).then(|| f.get(1)?.parse().ok())?
            })
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("no root in {file}")))
    };
    Ok((first("uid_map")?, first("gid_map")?))
}

/// Streams a spawned command's stdout and stderr to `sink` until it exits (killing it and its descendants at
/// the time limit) and returns how it ended.
fn collect(
    child: &mut Child,
    time_limit: Option<Duration>,
    sink: &mut dyn FnMut(OutputChunk),
) -> io::Result<ExecOutcome> {
    let (tx, rx) = mpsc::channel::<Option<OutputChunk>>();
    let mut readers = Vec::new();
    let pipes: [(Option<Box<dyn Read + Send>>, bool); 2] = [
        (child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>), true),
        (child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>), false),
    ];
    for (pipe, is_out) in pipes {
        let Some(mut pipe) = pipe else { continue };
        let tx = tx.clone();
        readers.push(std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                match pipe.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let data = buf[..n].to_vec();
                        let chunk = if is_out {
                            OutputChunk::Stdout(data)
                        } else {
                            OutputChunk::Stderr(data)
                        };
                        if tx.send(Some(chunk)).is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = tx.send(None);
        }));
    }
    drop(tx);
    let deadline = time_limit.map(|t| Instant::now() + t);
    let mut open = readers.len();
    let mut status = None;
    let mut timed_out = false;
    let mut drain_until: Option<Instant> = None;
    loop {
        match rx.recv_timeout(Duration::from_millis(20)) {
            Ok(Some(chunk)) => sink(chunk),
            Ok(None) => open -= 1,
            Err(mpsc::RecvTimeoutError::Disconnected) => open = 0,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if status.is_none() {
            status = child.try_wait()?;
            if status.is_some() {
                // Output still buffered arrives within a moment; a background process keeping the pipe open
                // does not hold the exec up for longer.
                drain_until = Some(Instant::now() + Duration::from_secs(1));
            }
        }
        if status.is_some() && (open == 0 || drain_until.is_some_and(|d| Instant::now() >= d)) {
            break;
        }
        if status.is_none() && deadline.is_some_and(|d| Instant::now() >= d) {
            timed_out = true;
            for d in descendants(child.id()) {
                signal(d, Signal::KILL);
            }
            let _ = child.kill();
            status = Some(child.wait()?);
            drain_until = Some(Instant::now() + Duration::from_secs(1));
        }
    }
    let status = status.expect("loop ends with a status");
    let exit_code = status.code().or_else(|| status.signal().map(|s| 128 + s)).unwrap_or(-1);
    Ok(ExecOutcome { exit_code, timed_out })
}

impl ContainerRunner for NspawnRunner {
    fn start(&self, request: &StartRequest) -> Result<ContainerHandle, RunnerError> {
        if self.leader(&request.name)?.is_some() {
            return Err(RunnerError::AlreadyRunning {
                name: request.name.clone(),
            });
        }
        let handle = match self.mode {
            Mode::Direct => self.start_direct(request),
            Mode::Systemd => self.start_systemd(request),
        }?;
        if request.network == Network::Nat {
            if let Err(e) = configure_nat(handle.leader, Duration::from_secs(5)) {
                // The sandbox runs; only its network is not configured (for example no systemd-networkd on the
                // host side). `info` then shows no IP.
                tracing::warn!(sandbox = %request.name, error = %e, "NAT network not configured");
            }
        }
        Ok(handle)
    }

    fn stop(&self, name: &str, timeout: Duration) -> Result<StopOutcome, RunnerError> {
        match self.mode {
            Mode::Direct => self.stop_direct(name, timeout),
            Mode::Systemd => self.stop_systemd(name, timeout),
        }
    }

    fn status(&self, name: &str) -> Result<Option<RunningContainer>, RunnerError> {
        Ok(self.leader(name)?.map(|leader| RunningContainer {
            name: name.to_owned(),
            leader,
            started_ms: None,
        }))
    }

    fn running(&self) -> Result<Vec<RunningContainer>, RunnerError> {
        let names: Vec<String> = match self.mode {
            Mode::Direct => {
                self.reap();
                scan_nspawns(&self.owner())
                    .map_err(|source| RunnerError::List { source })?
                    .into_iter()
                    .map(|(n, _)| n)
                    .collect()
            }
            Mode::Systemd => {
                let out = run_quiet(
                    "systemctl",
                    &[
                        "list-units".into(),
                        "--plain".into(),
                        "--no-legend".into(),
                        "--state=active".into(),
                        "cacheos-sandbox-*.service".into(),
                    ],
                )
                .map_err(|source| RunnerError::List { source })?;
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .filter_map(|l| l.split_whitespace().next())
                    .filter_map(|u| u.strip_prefix("cacheos-sandbox-")?.strip_suffix(".service"))
                    .map(str::to_owned)
                    .collect()
            }
        };
        let mut out = Vec::new();
        for name in names {
            if let Some(leader) = self.leader(&name)? {
                out.push(RunningContainer {
                    name,
                    leader,
                    started_ms: None,
                });
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn exec(
        &self,
        name: &str,
        env: &[(String, String)],
        spec: &ExecSpec,
        stdin: Option<&mut (dyn Read + Send)>,
        sink: &mut dyn FnMut(OutputChunk),
    ) -> Result<ExecOutcome, RunnerError> {
        let leader = self.running_leader(name)?;
        let err = |source| RunnerError::Exec {
            name: name.to_owned(),
            source,
        };
        let cwd = spec.cwd.clone().unwrap_or_else(|| PathBuf::from("/"));
        let mut command = self.entering(leader, &[], &cwd).map_err(err)?;
        command
            .args(&spec.argv)
            .env_clear()
            .env("PATH", DEFAULT_PATH)
            .env("HOME", "/root")
            .env("container", "systemd-nspawn")
            .env("CACHEOS_SANDBOX", name)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().map_err(err)?;
        let stdin_pipe = child.stdin.take();
        std::thread::scope(|scope| {
            if let (Some(input), Some(mut pipe)) = (stdin, stdin_pipe) {
                scope.spawn(move || {
                    // A command that exits without reading all of its input closes the pipe: not an error here.
                    let _ = io::copy(input, &mut pipe);
                });
            }
            collect(&mut child, spec.time_limit, sink).map_err(err)
        })
    }

    fn stats(&self, name: &str) -> Result<ContainerStats, RunnerError> {
        let leader = self.running_leader(name)?;
        Ok(match self.mode {
            Mode::Direct => self.stats_v1(leader),
            Mode::Systemd => self.stats_systemd(name, leader),
        })
    }

    fn logs(&self, name: &str, lines: usize) -> Result<Vec<String>, RunnerError> {
        let text = match self.mode {
            Mode::Direct => match fs::read(self.log_path(name)) {
                Ok(b) => String::from_utf8_lossy(&b).into_owned(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
                Err(source) => {
                    return Err(RunnerError::Status {
                        name: name.to_owned(),
                        source,
                    })
                }
            },
            Mode::Systemd => {
                let out = run_quiet(
                    "journalctl",
                    &[
                        "-u".into(),
                        unit_name(name),
                        "-n".into(),
                        lines.to_string(),
                        "-o".into(),
                        "cat".into(),
                        "--no-pager".into(),
                    ],
                )
                .map_err(|source| RunnerError::Status {
                    name: name.to_owned(),
                    source,
                })?;
                String::from_utf8_lossy(&out.stdout).into_owned()
            }
        };
        let all: Vec<String> = text.lines().map(str::to_owned).collect();
        Ok(all[all.len().saturating_sub(lines)..].to_vec())
    }

    fn copy_in(&self, name: &str, source: &mut dyn Read, inside_target: &Path) -> Result<u64, RunnerError> {
        let leader = self.running_leader(name)?;
        let err = |source| RunnerError::Copy {
            name: name.to_owned(),
            from: "the input stream".into(),
            to: inside_target.to_owned(),
            source,
        };
        let (uid, gid) = container_root_ids(leader).map_err(err)?;
        let mut dst = self
            .open_inside(
                leader,
                inside_target,
                OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC,
                0o644,
            )
            .map_err(err)?;
        if !dst.metadata().map_err(err)?.is_file() {
            return Err(err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file")));
        }
        std::os::unix::fs::fchown(&dst, Some(uid), Some(gid)).map_err(err)?;
        let n = io::copy(source, &mut dst).map_err(err)?;
        dst.flush().map_err(err)?;
        Ok(n)
    }

    fn copy_out(&self, name: &str, inside_source: &Path, sink: &mut dyn Write) -> Result<u64, RunnerError> {
        let leader = self.running_leader(name)?;
        let err = |source| RunnerError::Copy {
            name: name.to_owned(),
            from: inside_source.to_owned(),
            to: "the output stream".into(),
            source,
        };
        let mut src = self
            .open_inside(leader, inside_source, OFlags::RDONLY, 0)
            .map_err(err)?;
        if !src.metadata().map_err(err)?.is_file() {
            return Err(err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file (copy a directory as an archive)",
            )));
        }
        io::copy(&mut src, sink).map_err(err)
    }

    fn shell(&self, name: &str, env: &[(String, String)], term: &str) -> Result<OwnedFd, RunnerError> {
        use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
        let leader = self.running_leader(name)?;
        let err = |source| RunnerError::Shell {
            name: name.to_owned(),
            source,
        };
        let controller =
            openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC).map_err(|e| err(e.into()))?;
        grantpt(&controller).map_err(|e| err(e.into()))?;
        unlockpt(&controller).map_err(|e| err(e.into()))?;
        let path = ptsname(&controller, Vec::new()).map_err(|e| err(e.into()))?;
        let terminal = {
            use std::os::unix::fs::OpenOptionsExt;
            OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(OFlags::NOCTTY.bits() as i32)
                .open(std::ffi::OsStr::from_bytes(path.as_bytes()))
                .map_err(err)?
        };
        // bash where the sandbox has it, else the POSIX shell; both as login shells.
        let argv: &[&str] = match ["/bin/bash", "/usr/bin/bash"]
            .into_iter()
            .find(|b| self.open_inside(leader, Path::new(b), OFlags::PATH, 0).is_ok())
        {
            Some("/usr/bin/bash") => &["/usr/bin/bash", "--login"],
            Some(_) => &["/bin/bash", "--login"],
            None => &["/bin/sh", "-l"],
        };
        let home = Path::new("/root");
        let cwd = if self
            .open_inside(leader, home, OFlags::PATH | OFlags::DIRECTORY, 0)
            .is_ok()
        {
            home
        } else {
            Path::new("/")
        };
        let mut command = self.entering(leader, &["setsid", "--ctty"], cwd).map_err(err)?;
        command
            .args(argv)
            .env_clear()
            .env("PATH", DEFAULT_PATH)
            .env("HOME", "/root")
            .env("TERM", term)
            .env("container", "systemd-nspawn")
            .env("CACHEOS_SANDBOX", name)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(terminal.try_clone().map_err(err)?)
            .stdout(terminal.try_clone().map_err(err)?)
            .stderr(terminal);
        let mut child = command.spawn().map_err(err)?;
        let sandbox = name.to_owned();
        std::thread::spawn(move || match child.wait() {
            Ok(status) => tracing::info!(sandbox = %sandbox, %status, "interactive shell ended"),
            Err(e) => tracing::warn!(sandbox = %sandbox, error = %e, "cannot wait for the interactive shell"),
        });
        Ok(controller)
    }

    fn forget(&self, name: &str) -> Result<(), RunnerError> {
        match self.mode {
            Mode::Direct => {
                self.remove_groups(name);
                match fs::remove_file(self.log_path(name)) {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                    Err(source) => Err(RunnerError::Status {
                        name: name.to_owned(),
                        source,
                    }),
                }
            }
            Mode::Systemd => {
                let _ = run_quiet("systemctl", &["reset-failed".into(), unit_name(name)]);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cacheos_core::sandbox::{Bind, Limits, PreparedRoot};

    fn request() -> StartRequest {
        StartRequest {
            name: "box".into(),
            root: PreparedRoot {
                source: RootSource::Directory("/run/cacheos/sandboxes/box/root".into()),
                volatile: Volatile::No,
                binds: Vec::new(),
            },
            limits: Limits {
                cpu: Some(0.5),
                memory_max: Some(64 << 20),
                tasks_max: Some(64),
            },
            network: Network::None,
            binds: vec![
                Bind {
                    drive: "data".into(),
                    source: "/run/cacheos/drives/data/p1".into(),
                    target: "/mnt/data".into(),
                    read_write: false,
                },
                Bind {
                    drive: "out".into(),
                    source: "/run/cacheos/drives/out".into(),
                    target: "/mnt/out".into(),
                    read_write: true,
                },
            ],
            env: vec![("LANG".into(), "C.UTF-8".into())],
            command: Some(vec!["/bin/sleep".into(), "1000".into()]),
        }
    }

    #[test]
    fn direct_argv_is_fixed_and_isolating() {
        assert_eq!(
            nspawn_args(&request(), Mode::Direct, "/run/cacheos/sandbox-runner"),
            [
                "--quiet",
                "--settings=false",
                "--private-users=pick",
                "--keep-unit",
                "--register=no",
                "--machine=box",
                "--setenv=CACHEOS_SANDBOX=box",
                "--setenv=CACHEOS_RUNNER=/run/cacheos/sandbox-runner",
                "--console=pipe",
                "--private-network",
                "--directory=/run/cacheos/sandboxes/box/root",
                "--bind-ro=/run/cacheos/drives/data/p1:/mnt/data",
                "--bind=/run/cacheos/drives/out:/mnt/out:idmap",
                "--setenv=LANG=C.UTF-8",
                "--as-pid2",
                "--",
                "/bin/sleep",
                "1000",
            ]
        );
    }

    #[test]
    fn systemd_argv_puts_limits_on_the_unit() {
        let mut r = request();
        r.network = Network::Nat;
        r.root = PreparedRoot {
            source: RootSource::Directory("/".into()),
            volatile: Volatile::Yes,
            binds: Vec::new(),
        };
        r.command = None;
        r.binds.clear();
        r.env.clear();
        let a = systemd_run_args(&r, "/run/cacheos/sandbox-runner");
        assert_eq!(
            a,
            [
                "--quiet",
                "--unit=cacheos-sandbox-box.service",
                "--description=CacheOS sandbox box",
                "--collect",
                "--property=Type=notify",
                "--property=Delegate=yes",
                "--property=KillMode=mixed",
                "--property=CPUQuota=50%",
                "--property=MemoryMax=67108864",
                "--property=TasksMax=64",
                "--",
                "systemd-nspawn",
                "--quiet",
                "--settings=false",
                "--private-users=pick",
                "--keep-unit",
                "--machine=box",
                "--setenv=CACHEOS_SANDBOX=box",
                "--setenv=CACHEOS_RUNNER=/run/cacheos/sandbox-runner",
                "--console=pipe",
                "--network-veth",
                "--resolv-conf=copy-uplink",
                "--directory=/",
                "--volatile=yes",
                "--boot",
            ]
        );
    }

    #[test]
    fn nat_addresses_follow_the_host_side() {
        use std::net::Ipv4Addr;
        assert_eq!(
            container_address(Ipv4Addr::new(192, 168, 81, 1), 28),
            Some(Ipv4Addr::new(192, 168, 81, 2))
        );
        // The next address would be the broadcast address, or outside the subnet.
        assert_eq!(container_address(Ipv4Addr::new(192, 168, 81, 14), 28), None);
        assert_eq!(container_address(Ipv4Addr::new(10, 0, 0, 1), 31), None);
        assert_eq!(
            first_inet("5: ve-x    inet 192.168.81.1/28 brd 192.168.81.15 scope global ve-x"),
            Some((Ipv4Addr::new(192, 168, 81, 1), 28))
        );
        assert_eq!(first_inet(""), None);
    }

    #[test]
    fn cgroup_lines_are_parsed() {
        let text = "9:name=systemd:/\n8:pids:/\n4:memory:/a/b\n1:cpu,cpuacct:/\n0::/\n";
        assert_eq!(
            v1_lines(text),
            [
                ("name=systemd".to_owned(), "/".to_owned()),
                ("pids".into(), "/".into()),
                ("memory".into(), "/a/b".into()),
                ("cpu,cpuacct".into(), "/".into())
            ]
        );
    }
}
