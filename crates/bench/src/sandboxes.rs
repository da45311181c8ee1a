//! cacheos-bench-sandboxes (root): the cost of CacheOS's sandbox layer over plain systemd-nspawn, on a busybox-static
//! tree it builds itself. (1) A new ephemeral sandbox that runs `/bin/true` and is gone again (SandboxManager
//! create, start, exec and stop over the real overlay roots, nspawn runner and a redb store) against one
//! `systemd-nspawn` running `/bin/true` with the same isolation options, on the same overlay root and on nspawn's own
//! `--volatile=overlay`. (2) exec latency into a running sandbox against `nsenter` run directly. Prints medians, p90
//! and ratios against the baselines measured in the same run, alternating the contenders; no timed assertions.
//! Everything lives in a temporary directory under /tmp and is removed (containers, mounts, cgroups) on exit, on
//! error and on Ctrl-C.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use cacheos_core::sandbox::{
    ExecSpec, Limits, ManagerConfig, Network, PreparedRoot, RootPreparer, RootSource, SandboxErrorKind, SandboxManager,
    SandboxSpec, StartRequest, Template, TemplateKind, Volatile,
};
use cacheos_core::SystemClock;
use cacheos_sys::drive::mount::parse_mountinfo;
use cacheos_sys::sandbox::runner::{nspawn_args, unit_name};
use cacheos_sys::sandbox::{Mode, NspawnRunner, OverlayRoots};
use clap::Parser;

/// Sandbox lifecycle and exec latency against plain systemd-nspawn and nsenter.
#[derive(Debug, Parser)]
struct Args {
    /// Rounds of the ephemeral-sandbox measurement (each runs every contender once).
    #[arg(long, default_value_t = 9)]
    runs: usize,
    /// Rounds of the exec measurement.
    #[arg(long, default_value_t = 50)]
    execs: usize,
}

const APPLETS: &[&str] = &["sh", "true", "false", "sleep", "cat", "echo", "ls", "id"];
const NSPAWN: &str = "systemd-nspawn";

/// Set by SIGINT/SIGTERM; the measurement loops then stop and the [`Lab`] guard cleans up.
static STOP: AtomicBool = AtomicBool::new(false);

fn check_interrupted() -> anyhow::Result<()> {
    if STOP.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    Ok(())
}

/// Turns SIGINT and SIGTERM into [`STOP`] instead of an exit that would skip the cleanup.
fn watch_signals() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let mut term = rt.block_on(async { tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) })?;
    std::thread::spawn(move || {
        rt.block_on(async {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        });
        STOP.store(true, Ordering::SeqCst);
        eprintln!("interrupted; cleaning up");
    });
    Ok(())
}

fn pct(mut v: Vec<Duration>, p: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn median(v: &[Duration]) -> Duration {
    pct(v.to_vec(), 0.5)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(1e-9)
}

fn rss_kib(pid: u32) -> Option<u64> {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.split_whitespace().nth(1)?.parse().ok()
}

fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for t in fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
    {
        if let Ok(text) = fs::read_to_string(t.path().join("children")) {
            out.extend(text.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
        }
    }
    out
}

fn kill(pid: u32) {
    let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
}

fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:")?.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

fn mounts_under(prefix: &Path) -> Vec<PathBuf> {
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    parse_mountinfo(&text)
        .into_iter()
        .map(|m| m.target)
        .filter(|t| t.starts_with(prefix))
        .collect()
}

/// The v1 cgroup arguments of `cgexec` that put a process where the runner's exec puts it in direct mode: the
/// `memory`, `pids`, `cpu` and `cpuacct` cgroups of `pid` (skipping controllers not mounted as v1).
fn cgexec_groups(pid: u32) -> Vec<String> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    let mut out = Vec::new();
    for line in text.lines() {
        let mut it = line.splitn(3, ':');
        let (Some(_), Some(ctrls), Some(path)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        let wanted: Vec<&str> = ctrls
            .split(',')
            .filter(|c| ["memory", "pids", "cpu", "cpuacct"].contains(c))
            .collect();
        let Some(first) = wanted.first() else { continue };
        let mount = Path::new("/sys/fs/cgroup").join(first);
        if mount.join("cgroup.procs").exists() && !mount.join("cgroup.controllers").exists() {
            out.push("-g".into());
            out.push(format!("{}:{}", wanted.join(","), path));
        }
    }
    out
}

/// Runs a command with output captured; an error carries its stderr.
fn run_ok(command: &mut Command, what: &str) -> anyhow::Result<()> {
    let out = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The scratch directory, a busybox template tree, a manager over the real implementations, and the guard that
/// removes everything they created.
struct Lab {
    base: PathBuf,
    tree: PathBuf,
    mode: Mode,
    manager: SandboxManager,
    template: Template,
    /// The baseline's roots: the same implementation, in a directory of their own.
    baseline_roots: OverlayRoots,
    /// Sandbox names handed to the manager, removed on drop.
    names: Mutex<Vec<String>>,
    dir: Option<tempfile::TempDir>,
}

impl Lab {
    fn new() -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("cacheos-bench-sandboxes-")
            .tempdir_in("/tmp")?;
        let base = dir.path().canonicalize()?;
        let tree = base.join("busybox");
        for d in [
            "bin", "etc", "proc", "sys", "dev", "tmp", "root", "run", "var", "usr/bin", "mnt",
        ] {
            fs::create_dir_all(tree.join(d))?;
        }
        fs::copy("/bin/busybox", tree.join("bin/busybox")).context("copying /bin/busybox (install busybox-static)")?;
        for a in APPLETS {
            symlink("busybox", tree.join("bin").join(a))?;
        }
        fs::write(tree.join("etc/os-release"), "ID=busybox\nNAME=\"busybox bench tree\"\n")?;
        let template = Template {
            name: "busybox".into(),
            kind: TemplateKind::Directory,
            path: tree.clone(),
            description: "busybox bench tree".into(),
            command: Some(vec!["/bin/sleep".into(), "1000000".into()]),
        };
        // As cacheosd builds it: the mode detected, runtime directories of its own (here in the scratch directory).
        let mode = NspawnRunner::detect().mode();
        let store = Arc::new(cacheos_store::RedbStore::open(&base.join("cacheos.redb"), 10_000)?);
        let manager = SandboxManager::new(
            store,
            Arc::new(OverlayRoots::new(base.join("roots"), base.join("data"))),
            Arc::new(NspawnRunner::new(mode, base.join("runner"))),
            Arc::new(SystemClock),
            vec![template.clone()],
            ManagerConfig::default(),
        );
        Ok(Self {
            baseline_roots: OverlayRoots::new(base.join("baseline-roots"), base.join("baseline-data")),
            base,
            tree,
            mode,
            manager,
            template,
            names: Mutex::new(Vec::new()),
            dir: Some(dir),
        })
    }

    /// A sandbox name unique to this process, remembered for the cleanup.
    fn name(&self, tag: &str, i: usize) -> String {
        let name = format!("bench-{}-{tag}{i}", std::process::id() % 100_000);
        self.names.lock().unwrap_or_else(|e| e.into_inner()).push(name.clone());
        name
    }

    /// The `CACHEOS_RUNNER` label of the baseline nspawns (the runner's is its directory under `base`).
    fn baseline_owner(&self) -> String {
        self.base.join("baseline").display().to_string()
    }

    fn exec_true(&self, name: &str) -> anyhow::Result<Duration> {
        let spec = ExecSpec {
            argv: vec!["/bin/true".into()],
            env: Vec::new(),
            cwd: None,
            time_limit: Some(Duration::from_secs(30)),
        };
        let t = Instant::now();
        let outcome = self.manager.exec(name, &spec, &mut |_| {})?;
        let d = t.elapsed();
        ensure!(
            outcome.exit_code == 0,
            "/bin/true in {name} exited with {}",
            outcome.exit_code
        );
        Ok(d)
    }

    /// One ephemeral sandbox through CacheOS: (total, start, exec, stop).
    fn cacheos_round(&self, i: usize) -> anyhow::Result<[Duration; 4]> {
        let name = self.name("eph", i);
        let mut spec = SandboxSpec::new(&name, "busybox");
        spec.ephemeral = true;
        let t0 = Instant::now();
        self.manager.create(spec, "bench")?;
        let t1 = Instant::now();
        self.manager.start(&name)?;
        let t2 = Instant::now();
        self.exec_true(&name)?;
        let t3 = Instant::now();
        self.manager.stop(&name)?;
        let t4 = Instant::now();
        ensure!(
            self.manager.info(&name).map_err(|e| e.kind()).err() == Some(SandboxErrorKind::NotFound),
            "ephemeral sandbox {name} still exists after stop"
        );
        Ok([t4 - t0, t2 - t1, t3 - t2, t4 - t3])
    }

    /// One `systemd-nspawn ... -- /bin/true` with the runner's isolation options (`nspawn_args` of an equivalent
    /// request, no limits, `--private-network`, `--register=no --keep-unit`). `same_root`: on the ephemeral overlay
    /// root OverlayRoots prepares for the template (the same code and mount the manager uses), released and removed
    /// afterwards within the timing; otherwise on the template tree itself with nspawn's `--volatile=overlay`.
    fn baseline_round(&self, same_root: bool) -> anyhow::Result<Duration> {
        let machine = format!("bench-{}-base", std::process::id() % 100_000);
        let t = Instant::now();
        let root = if same_root {
            self.baseline_roots.prepare(&machine, &self.template, true)?
        } else {
            PreparedRoot {
                source: RootSource::Directory(self.tree.clone()),
                volatile: Volatile::Overlay,
                binds: Vec::new(),
            }
        };
        let request = StartRequest {
            name: machine.clone(),
            root,
            limits: Limits::default(),
            network: Network::None,
            binds: Vec::new(),
            env: Vec::new(),
            command: Some(vec!["/bin/true".into()]),
        };
        let result = run_ok(
            Command::new(NSPAWN)
                .args(nspawn_args(&request, Mode::Direct, &self.baseline_owner()))
                .stdout(Stdio::null()),
            NSPAWN,
        );
        if same_root {
            self.baseline_roots.release(&machine)?;
            self.baseline_roots.remove_data(&machine)?;
        }
        result?;
        Ok(t.elapsed())
    }
}

impl Drop for Lab {
    /// Removes every sandbox, container, cgroup and mount this run created, then the scratch directory (kept, with a
    /// warning, when something is still mounted in it).
    fn drop(&mut self) {
        let names = std::mem::take(&mut *self.names.lock().unwrap_or_else(|e| e.into_inner()));
        for name in &names {
            match self.manager.remove(name) {
                Ok(()) => {}
                Err(e) if e.kind() == SandboxErrorKind::NotFound => {}
                Err(e) => eprintln!("cleanup: removing sandbox {name}: {e}"),
            }
        }
        // Whatever the manager could not take down: nspawns of this run's runner or baselines (their containers'
        // init first: its death ends the whole pid namespace), units, cgroups, mounts.
        let label = format!("--setenv=CACHEOS_RUNNER={}", self.base.display());
        for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let cmdline = fs::read(entry.path().join("cmdline")).unwrap_or_default();
            if cmdline.split(|b| *b == 0).any(|a| a.starts_with(label.as_bytes())) {
                for child in children_of(pid) {
                    kill(child);
                }
                kill(pid);
            }
        }
        if self.mode == Mode::Systemd {
            for name in &names {
                let unit = unit_name(name);
                let active = Command::new("systemctl")
                    .args(["is-active", "--quiet", &unit])
                    .status()
                    .is_ok_and(|s| s.success());
                if active {
                    let _ = Command::new("systemctl")
                        .args(["kill", "--signal=SIGKILL", &unit])
                        .status();
                    let _ = Command::new("systemctl").args(["stop", &unit]).status();
                }
                let _ = Command::new("systemctl")
                    .args(["reset-failed", &unit])
                    .stderr(Stdio::null())
                    .status();
            }
        }
        let cgroups = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        for line in cgroups.lines() {
            let mut it = line.splitn(3, ':');
            let (Some(_), Some(ctrls), Some(path)) = (it.next(), it.next(), it.next()) else {
                continue;
            };
            for c in ctrls.split(',').filter(|c| !c.is_empty()) {
                for name in &names {
                    let d = Path::new("/sys/fs/cgroup")
                        .join(c)
                        .join(path.trim_start_matches('/'))
                        .join(format!("cacheos-sandbox-{name}"));
                    for _ in 0..50 {
                        match fs::remove_dir(&d) {
                            Err(e) if e.raw_os_error() == Some(16) => std::thread::sleep(Duration::from_millis(20)),
                            _ => break,
                        }
                    }
                }
            }
        }
        for target in mounts_under(&self.base).into_iter().rev() {
            let ok = Command::new("umount").arg(&target).status().is_ok_and(|s| s.success());
            if !ok {
                let _ = Command::new("umount").arg("-l").arg(&target).status();
            }
        }
        if let Some(dir) = self.dir.take() {
            if mounts_under(&self.base).is_empty() {
                if let Err(e) = dir.close() {
                    eprintln!("cleanup: removing {}: {e}", self.base.display());
                }
            } else {
                eprintln!(
                    "cleanup: something is still mounted below {}; leaving it",
                    self.base.display()
                );
                let _ = dir.keep();
            }
        }
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(args.runs > 0 && args.execs > 0, "--runs and --execs must be at least 1");
    ensure!(
        is_root(),
        "cacheos-bench-sandboxes needs root (it mounts overlays and starts containers)"
    );
    for tool in [NSPAWN, "nsenter"] {
        ensure!(
            Command::new(tool)
                .arg("--version")
                .stdout(Stdio::null())
                .status()
                .is_ok(),
            "{tool} is missing"
        );
    }
    ensure!(
        Path::new("/bin/busybox").exists(),
        "/bin/busybox is missing; install busybox-static"
    );
    watch_signals()?;
    let lab = Lab::new()?;
    let mode = match lab.mode {
        Mode::Direct => "direct (nspawn spawned by the runner, cgroup v1 limits through cgexec)",
        Mode::Systemd => "systemd (nspawn as a transient unit, registered with machined)",
    };
    println!("runner mode: {mode}; scratch: {}", lab.base.display());

    // 1. A new ephemeral sandbox that runs /bin/true and is gone again.
    let (mut total, mut start, mut exec, mut stop) = (vec![], vec![], vec![], vec![]);
    let (mut own, mut volatile) = (vec![], vec![]);
    // One unmeasured round each: page cache, first cgroup and redb writes.
    lab.cacheos_round(0)?;
    lab.baseline_round(true)?;
    lab.baseline_round(false)?;
    for i in 1..=args.runs {
        check_interrupted()?;
        // Alternate who goes first so that neither always runs on a cache the other warmed.
        let mut contenders = [0, 1, 2];
        contenders.rotate_left(i % 3);
        for c in contenders {
            match c {
                0 => {
                    let [t, s, e, p] = lab.cacheos_round(i)?;
                    total.push(t);
                    start.push(s);
                    exec.push(e);
                    stop.push(p);
                }
                1 => own.push(lab.baseline_round(true)?),
                _ => volatile.push(lab.baseline_round(false)?),
            }
        }
    }
    let (total, own, volatile) = (median(&total), median(&own), median(&volatile));
    println!();
    println!(
        "new ephemeral sandbox runs /bin/true and exits, median of {} runs (ms)",
        args.runs
    );
    println!(
        "  cacheos  create+start+exec+stop (SandboxManager, ephemeral)  {:>8.1}",
        ms(total)
    );
    println!(
        "           of which start {:.1}, exec {:.1}, stop+remove {:.1}",
        ms(median(&start)),
        ms(median(&exec)),
        ms(median(&stop))
    );
    println!(
        "  nspawn   -- /bin/true on the root OverlayRoots prepares         {:>8.1}   ratio {:.2}",
        ms(own),
        ratio(total, own)
    );
    println!(
        "  nspawn   -- /bin/true --volatile=overlay on the tree            {:>8.1}   ratio {:.2}",
        ms(volatile),
        ratio(total, volatile)
    );
    println!(
        "  (both nspawns: nspawn_args of the same request: --quiet --settings=false --private-users=pick --keep-unit\n   \
         --register=no --console=pipe --private-network --as-pid2, no limits; the first one prepares, releases and\n   \
         removes the same overlay root in the timing and is the like-for-like one. cacheos additionally records each\n   \
         step in redb, {},\n   \
         waits until the payload runs, execs into it and stops it with SIGTERM)",
        if lab.mode == Mode::Direct {
            "creates and removes v1 cgroups and starts nspawn through cgexec"
        } else {
            "starts nspawn as a transient unit via systemd-run, registered with machined"
        }
    );

    // 2. exec into a running sandbox.
    let name = lab.name("exec", 0);
    let mut spec = SandboxSpec::new(&name, "busybox");
    spec.ephemeral = true;
    lab.manager.create(spec, "bench")?;
    let info = lab.manager.start(&name)?;
    let leader = info.main_pid.context("a running sandbox has a main pid")?;
    let nsenter_args = [
        format!("--target={leader}"),
        "--all".into(),
        "--root".into(),
        "--".into(),
        "/bin/true".into(),
    ];
    let cg = if lab.mode == Mode::Direct {
        cgexec_groups(leader)
    } else {
        Vec::new()
    };
    let with_cgexec = !cg.is_empty() && Command::new("cgexec").arg("-h").output().is_ok();
    let nsenter = || -> anyhow::Result<Duration> {
        let t = Instant::now();
        run_ok(Command::new("nsenter").args(&nsenter_args), "nsenter")?;
        Ok(t.elapsed())
    };
    let cgexec = || -> anyhow::Result<Duration> {
        let t = Instant::now();
        run_ok(
            Command::new("cgexec").args(&cg).arg("nsenter").args(&nsenter_args),
            "cgexec nsenter",
        )?;
        Ok(t.elapsed())
    };
    for _ in 0..3 {
        lab.exec_true(&name)?;
        nsenter()?;
        if with_cgexec {
            cgexec()?;
        }
    }
    let (mut ce, mut ne, mut ge) = (vec![], vec![], vec![]);
    for i in 0..args.execs {
        check_interrupted()?;
        let mut contenders = [0, 1, 2];
        contenders.rotate_left(i % 3);
        for c in contenders {
            match c {
                0 => ce.push(lab.exec_true(&name)?),
                1 => ne.push(nsenter()?),
                _ if with_cgexec => ge.push(cgexec()?),
                _ => {}
            }
        }
    }
    let (c50, c90, n50, n90) = (median(&ce), pct(ce, 0.9), median(&ne), pct(ne, 0.9));
    println!();
    println!("exec /bin/true into a running sandbox, {} runs (ms)", args.execs);
    println!("  {:<64} {:>7} {:>7} {:>10}", "", "p50", "p90", "p50 ratio");
    println!(
        "  {:<64} {:>7.2} {:>7.2}",
        "cacheos SandboxManager::exec",
        ms(c50),
        ms(c90)
    );
    println!(
        "  {:<64} {:>7.2} {:>7.2} {:>10.2}",
        "nsenter --target LEADER --all --root -- /bin/true",
        ms(n50),
        ms(n90),
        ratio(c50, n50)
    );
    if with_cgexec {
        let (g50, g90) = (median(&ge), pct(ge, 0.9));
        println!(
            "  {:<64} {:>7.2} {:>7.2} {:>10.2}",
            "cgexec -g <its v1 cgroups> nsenter ... (what the runner runs)",
            ms(g50),
            ms(g90),
            ratio(c50, g50)
        );
    }
    println!(
        "  (cacheos: validation, a redb record read, the runner's nsenter{},\n   output piped and read by two threads)",
        if with_cgexec {
            " wrapped in cgexec"
        } else {
            " joining the unit's cgroup"
        }
    );

    // Memory of the running sandbox.
    let info = lab.manager.info(&name)?;
    let kib = |b: Option<u64>| b.map_or("n/a".to_owned(), |b| format!("{} KiB", b >> 10));
    let nspawn_pid = parent_of(leader);
    println!();
    println!(
        "memory of the idle sandbox (sleep as payload): cgroup current {}, peak {}\n  RSS: container init {}, nspawn {}, \
         this benchmark process {}",
        kib(info.memory_current),
        kib(info.memory_peak),
        kib(rss_kib(leader).map(|k| k << 10)),
        kib(nspawn_pid.and_then(rss_kib).map(|k| k << 10)),
        kib(rss_kib(std::process::id()).map(|k| k << 10)),
    );
    lab.manager.stop(&name)?;
    drop(lab);
    Ok(())
}
