//! Host tests of the real sandbox implementations (overlay roots, directly spawned systemd-nspawn with cgroup v1
//! limits) driven through the core's `SandboxManager`, on a busybox root file system each test builds itself. They
//! need root, systemd-nspawn, cgexec and busybox-static (scripts/host-deps) and run only with CACHEOS_INTEGRATION=1;
//! with it set and no root they fail instead of skipping.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cacheos_core::clock::SystemClock;
use cacheos_core::sandbox::{
    Bind, ContainerRunner, ExecSpec, Limits, ManagerConfig, OutputChunk, SandboxError, SandboxErrorKind,
    SandboxManager, SandboxSpec, SandboxState, Template, TemplateKind,
};
use cacheos_core::store::MemoryStore;
use cacheos_sys::drive::mount::parse_mountinfo;
use cacheos_sys::sandbox::{Mode, NspawnRunner, OverlayRoots};

/// Whether host tests are enabled; they fail rather than skip when enabled without root.
fn enabled(name: &str) -> bool {
    if std::env::var_os("CACHEOS_INTEGRATION").is_none() {
        eprintln!("{name}: skipped; set CACHEOS_INTEGRATION=1 (scripts/test does) to run host sandbox tests");
        return false;
    }
    assert!(
        rustix::process::geteuid().is_root(),
        "{name}: host sandbox tests need root (CACHEOS_INTEGRATION is set)"
    );
    true
}

const APPLETS: &[&str] = &[
    "sh", "ls", "cat", "echo", "sleep", "id", "ip", "touch", "true", "false", "ps", "grep", "mkdir", "rm", "env",
    "stat", "seq", "ln", "tar",
];

/// A scratch directory with a busybox tree as template, and a manager over the real implementations in it.
struct Lab {
    dir: tempfile::TempDir,
    runner: Arc<NspawnRunner>,
    manager: SandboxManager,
}

impl Lab {
    fn new(tag: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix(&format!("cacheos-sandbox-{tag}-"))
            .tempdir()
            .unwrap();
        let base = dir.path().canonicalize().unwrap();
        let tree = base.join("busybox");
        for d in [
            "bin", "etc", "proc", "sys", "dev", "tmp", "root", "run", "var", "usr/bin", "mnt",
        ] {
            fs::create_dir_all(tree.join(d)).unwrap();
        }
        let busybox = Path::new("/bin/busybox");
        assert!(
            busybox.exists(),
            "/bin/busybox is missing; install busybox-static (scripts/host-deps)"
        );
        fs::copy(busybox, tree.join("bin/busybox")).unwrap();
        for a in APPLETS {
            symlink("busybox", tree.join("bin").join(a)).unwrap();
        }
        fs::write(tree.join("etc/os-release"), "ID=busybox\nNAME=\"busybox test tree\"\n").unwrap();
        fs::write(tree.join("etc/hello.txt"), "hello from the template\n").unwrap();
        let template = Template {
            name: "busybox".into(),
            kind: TemplateKind::Directory,
            path: tree,
            description: "busybox test tree".into(),
            command: Some(vec!["/bin/sleep".into(), "1000000".into()]),
        };
        let host = Template {
            name: "host".into(),
            kind: TemplateKind::Host,
            path: "/".into(),
            description: "this host's /usr".into(),
            command: Some(vec!["/usr/bin/sleep".into(), "2147483647".into()]),
        };
        let mut broken = template.clone();
        broken.name = "broken".into();
        broken.command = Some(vec!["/bin/no-such-init".into()]);
        let runner = Arc::new(NspawnRunner::new(Mode::Direct, base.join("runner")));
        let manager = SandboxManager::new(
            Arc::new(MemoryStore::new()),
            Arc::new(OverlayRoots::new(base.join("run"), base.join("state"))),
            runner.clone(),
            Arc::new(SystemClock),
            vec![template, broken, host],
            ManagerConfig {
                stop_timeout: Duration::from_secs(5),
                ..ManagerConfig::default()
            },
        );
        Self { dir, runner, manager }
    }

    fn base(&self) -> PathBuf {
        self.dir.path().canonicalize().unwrap()
    }

    fn exec(&self, name: &str, argv: &[&str]) -> (i32, String, String) {
        self.exec_spec(
            name,
            ExecSpec {
                argv: argv.iter().map(|s| s.to_string()).collect(),
                env: Vec::new(),
                cwd: None,
                time_limit: Some(Duration::from_secs(30)),
            },
        )
    }

    fn exec_spec(&self, name: &str, spec: ExecSpec) -> (i32, String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let outcome = self
            .manager
            .exec(name, &spec, &mut |c| match c {
                OutputChunk::Stdout(b) => out.extend(b),
                OutputChunk::Stderr(b) => err.extend(b),
            })
            .unwrap();
        (
            outcome.exit_code,
            String::from_utf8_lossy(&out).into_owned(),
            String::from_utf8_lossy(&err).into_owned(),
        )
    }

    /// What of sandbox `name` the system still holds: nspawn processes, mounts, directories, cgroups.
    fn leftovers(&self, name: &str) -> Vec<String> {
        let mut out = Vec::new();
        let marker = format!("CACHEOS_SANDBOX={name}");
        for entry in fs::read_dir("/proc").unwrap().flatten() {
            if let Ok(cmdline) = fs::read(entry.path().join("cmdline")) {
                if String::from_utf8_lossy(&cmdline)
                    .split('\0')
                    .any(|a| a.ends_with(&marker))
                {
                    out.push(format!("process {}", entry.file_name().to_string_lossy()));
                }
            }
        }
        let base = self.base();
        for m in parse_mountinfo(&fs::read_to_string("/proc/self/mountinfo").unwrap()) {
            if m.target.starts_with(&base) {
                out.push(format!("mount {}", m.target.display()));
            }
        }
        for d in [base.join("run").join(name), base.join("state").join(name)] {
            if d.exists() {
                out.push(format!("dir {}", d.display()));
            }
        }
        let cgroups = fs::read_to_string("/proc/self/cgroup").unwrap();
        for line in cgroups.lines() {
            let mut it = line.splitn(3, ':');
            let (_, ctrls, path) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
            for c in ["memory", "pids", "cpu", "cpuacct"] {
                if ctrls.split(',').any(|x| x == c) {
                    let d = Path::new("/sys/fs/cgroup")
                        .join(c)
                        .join(path.trim_start_matches('/'))
                        .join(format!("cacheos-sandbox-{name}"));
                    if d.exists() {
                        out.push(format!("cgroup {}", d.display()));
                    }
                }
            }
        }
        out
    }
}

impl Drop for Lab {
    /// Removes whatever a failed test left running, so the next run starts clean.
    fn drop(&mut self) {
        for info in self.manager.list().unwrap_or_default() {
            let _ = self.manager.remove(&info.name);
        }
    }
}

/// A name unique to this test process (tests of other runs may be running too).
fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", std::process::id() % 100_000)
}

#[test]
fn exec_limits_network_copies_and_clean_removal() {
    if !enabled("exec_limits_network_copies_and_clean_removal") {
        return;
    }
    let lab = Lab::new("exec");
    let name = unique("exec");
    let mut spec = SandboxSpec::new(&name, "busybox");
    spec.limits = Limits {
        cpu: Some(0.5),
        memory_max: Some(64 << 20),
        tasks_max: Some(64),
    };
    spec.env = vec![("GREETING".into(), "hi there".into())];
    lab.manager.create(spec, "test").unwrap();
    let info = lab.manager.start(&name).unwrap();
    assert_eq!(info.state, SandboxState::Running);
    let leader = info.main_pid.unwrap();
    assert!(Path::new(&format!("/proc/{leader}")).exists());

    // Output and exit codes; the template is seen through the overlay; environment reaches exec.
    assert_eq!(
        lab.exec(&name, &["echo", "hello"]),
        (0, "hello\n".into(), String::new())
    );
    assert_eq!(
        lab.exec(&name, &["cat", "/etc/hello.txt"]).1,
        "hello from the template\n"
    );
    assert_eq!(
        lab.exec(&name, &["sh", "-c", "echo out; echo err >&2; exit 3"]),
        (3, "out\n".into(), "err\n".into())
    );
    assert_eq!(lab.exec(&name, &["sh", "-c", "echo $GREETING"]).1, "hi there\n");
    let (code, _, err) = lab.exec(&name, &["no-such-command"]);
    assert_eq!(code, 127, "command not found inside: {err}");
    assert!(err.contains("no-such-command"), "{err}");
    assert_eq!(lab.exec(&name, &["id", "-u"]).1, "0\n");

    // network none: only the loopback interface.
    let (code, links, _) = lab.exec(&name, &["ip", "-o", "link"]);
    assert_eq!(code, 0);
    let names: Vec<&str> = links.lines().filter_map(|l| l.split(": ").nth(1)).collect();
    assert_eq!(names, ["lo"], "{links}");

    // Limits, as the container sees its own cgroups (cgroup v1 here) and as stats read them.
    let inside = |path: &str| {
        let (code, out, err) = lab.exec(&name, &["cat", path]);
        assert_eq!(code, 0, "cat {path}: {err}");
        out.trim().to_owned()
    };
    assert_eq!(
        inside("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
        (64u64 << 20).to_string()
    );
    assert_eq!(inside("/sys/fs/cgroup/pids/pids.max"), "64");
    assert_eq!(inside("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"), "50000");
    assert_eq!(inside("/sys/fs/cgroup/cpu/cpu.cfs_period_us"), "100000");
    let stats = lab.runner.stats(&name).unwrap();
    assert_eq!(stats.memory_max, Some(64 << 20));
    assert_eq!(stats.tasks_max, Some(64));
    assert!(stats.tasks_current.unwrap() >= 1);
    let info = lab.manager.info(&name).unwrap();
    assert!(info.memory_current.unwrap() > 0);
    assert!(info.cpu_time_ns.is_some());
    // The task limit holds inside: a fork bomb of sleeps stops at 64.
    let baseline = lab.runner.stats(&name).unwrap().tasks_current.unwrap();
    let (_, _, err) = lab.exec(&name, &["sh", "-c", "for i in $(seq 100); do sleep 1 & done; wait"]);
    assert!(err.contains("fork") || err.contains("Resource"), "{err}");
    // Until those sleeps are gone, nothing else can fork in there.
    let end = Instant::now() + Duration::from_secs(10);
    while lab.runner.stats(&name).unwrap().tasks_current.unwrap() > baseline {
        assert!(Instant::now() < end, "the sleeps did not end");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Time limit: killed, reported, and nothing of it keeps running.
    let started = Instant::now();
    let (mut out, mut errs) = (Vec::new(), Vec::new());
    let outcome = lab
        .manager
        .exec(
            &name,
            &ExecSpec {
                argv: vec!["sleep".into(), "30".into()],
                env: Vec::new(),
                cwd: None,
                time_limit: Some(Duration::from_millis(500)),
            },
            &mut |c| match c {
                OutputChunk::Stdout(b) => out.extend(b),
                OutputChunk::Stderr(b) => errs.extend(b),
            },
        )
        .unwrap();
    assert!(outcome.timed_out);
    assert_eq!(outcome.exit_code, 128 + 9);
    assert!(started.elapsed() < Duration::from_secs(10));

    // Copies in and out, confined to the container's root.
    let n = lab
        .manager
        .copy_in(&name, &mut &b"copied in\n"[..], Path::new("/root/in.txt"))
        .unwrap();
    assert_eq!(n, 10);
    assert_eq!(
        lab.exec(&name, &["cat", "/root/in.txt"]),
        (0, "copied in\n".into(), String::new())
    );
    assert_eq!(
        lab.exec(&name, &["stat", "-c", "%u", "/root/in.txt"]).1,
        "0\n",
        "owned by the container's root"
    );
    lab.exec(
        &name,
        &[
            "sh",
            "-c",
            "echo from inside > /tmp/out.txt; ln -s /etc/../../../../etc/shadow /tmp/escape",
        ],
    );
    let mut out = Vec::new();
    lab.manager
        .copy_out(&name, Path::new("/tmp/out.txt"), &mut out)
        .unwrap();
    assert_eq!(out, b"from inside\n");
    let err = lab
        .manager
        .copy_out(&name, Path::new("/tmp/escape"), &mut Vec::new())
        .unwrap_err();
    assert!(matches!(err, SandboxError::Runner { .. }), "{err}");
    // Directories travel as tar streams, packed and unpacked by the sandbox's own tar.
    lab.exec(
        &name,
        &[
            "sh",
            "-c",
            "mkdir -p /srv/tree/sub && echo a > /srv/tree/a && echo b > /srv/tree/sub/b",
        ],
    );
    let mut archive = Vec::new();
    let size = lab
        .manager
        .copy_out_archive(&name, Path::new("/srv/tree"), &mut archive)
        .unwrap();
    assert_eq!(size as usize, archive.len());
    assert!(archive.len() >= 1024, "a tar archive: {} bytes", archive.len());
    lab.manager
        .copy_in_archive(&name, &mut &archive[..], Path::new("/root/copy"))
        .unwrap();
    assert_eq!(lab.exec(&name, &["cat", "/root/copy/sub/b"]).1, "b\n");
    let err = lab
        .manager
        .copy_in_archive(&name, &mut &b"not a tar archive at all"[..], Path::new("/root/bad"))
        .unwrap_err();
    assert!(
        err.to_string().contains("copy into") || format!("{err:?}").contains("tar"),
        "{err:?}"
    );

    // An interactive shell on a pseudo-terminal: what is typed runs inside, the output comes back.
    let controller = lab.manager.shell(&name, "vt100").unwrap();
    let mut term = fs::File::from(controller);
    use std::io::{Read, Write};
    term.write_all(b"echo shell-$((6*7)) in $CACHEOS_SANDBOX; exit\n")
        .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    // The terminal reports EIO once the shell has exited and closed its side.
    while let Ok(n) = term.read(&mut buf) {
        if n == 0 {
            break;
        }
        seen.extend_from_slice(&buf[..n]);
    }
    let seen = String::from_utf8_lossy(&seen);
    assert!(seen.contains(&format!("shell-42 in {name}")), "{seen}");

    // Stop: nothing of the container is left, persistent data stays; remove: nothing at all.
    let info = lab.manager.stop(&name).unwrap();
    assert_eq!(info.state, SandboxState::Stopped);
    assert!(!Path::new(&format!("/proc/{leader}")).exists());
    let left = lab.leftovers(&name);
    assert_eq!(
        left,
        [format!("dir {}", lab.base().join("state").join(&name).display())]
    );
    let err = lab.exec_err(&name);
    assert_eq!(err.kind(), SandboxErrorKind::FailedPrecondition);
    // Data written to the overlay survives a restart of a persistent sandbox.
    lab.manager.start(&name).unwrap();
    assert_eq!(lab.exec(&name, &["cat", "/root/in.txt"]).1, "copied in\n");
    lab.manager.remove(&name).unwrap();
    assert!(lab.leftovers(&name).is_empty(), "{:?}", lab.leftovers(&name));
    assert!(
        lab.base().join("busybox/bin/busybox").exists(),
        "the template is untouched"
    );
    assert!(
        !lab.base().join("busybox/root/in.txt").exists(),
        "the template is untouched"
    );
}

impl Lab {
    fn exec_err(&self, name: &str) -> SandboxError {
        self.manager
            .exec(
                name,
                &ExecSpec {
                    argv: vec!["true".into()],
                    env: Vec::new(),
                    cwd: None,
                    time_limit: None,
                },
                &mut |_| {},
            )
            .unwrap_err()
    }
}

#[test]
fn host_template_has_its_own_etc_and_a_read_only_usr() {
    if !enabled("host_template_has_its_own_etc_and_a_read_only_usr") {
        return;
    }
    let lab = Lab::new("host");
    let name = unique("host");
    lab.manager.create(SandboxSpec::new(&name, "host"), "test").unwrap();
    lab.manager.start(&name).unwrap();
    let (code, out, err) = lab.exec(&name, &["cat", "/etc/os-release"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ID=debian"), "{out}");
    assert_eq!(lab.exec(&name, &["id", "-un"]).1.trim(), "root");
    assert_eq!(lab.exec(&name, &["hostname"]).1.trim(), name);
    // Nothing of the appliance's own /etc and /var: its accounts, state and secrets stay outside.
    let (_, out, _) = lab.exec(&name, &["ls", "-A", "/var/lib"]);
    assert_eq!(out.trim(), "");
    let (code, _, _) = lab.exec(&name, &["test", "-e", "/etc/shadow"]);
    assert_ne!(code, 0);
    let (code, _, err) = lab.exec(&name, &["touch", "/usr/x"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("Read-only file system") || err.contains("Permission denied"),
        "{err}"
    );
    // The writable root persists across a restart; /usr does not need to.
    assert_eq!(lab.exec(&name, &["sh", "-c", "echo kept > /root/note"]).0, 0);
    lab.manager.restart(&name).unwrap();
    assert_eq!(lab.exec(&name, &["cat", "/root/note"]).1, "kept\n");
    lab.manager.stop(&name).unwrap();
    lab.manager.remove(&name).unwrap();
    assert!(lab.leftovers(&name).is_empty(), "{:?}", lab.leftovers(&name));
}

#[test]
fn binds_read_only_refuses_writes_and_ephemeral_is_gone_at_stop() {
    if !enabled("binds_read_only_refuses_writes_and_ephemeral_is_gone_at_stop") {
        return;
    }
    let lab = Lab::new("bind");
    let name = unique("bind");
    let (ro, rw) = (lab.base().join("drive-ro"), lab.base().join("drive-rw"));
    fs::create_dir_all(&ro).unwrap();
    fs::create_dir_all(&rw).unwrap();
    fs::write(ro.join("data.txt"), "read me\n").unwrap();
    let mut spec = SandboxSpec::new(&name, "busybox");
    spec.ephemeral = true;
    spec.binds = vec![
        Bind {
            drive: "ro-drive".into(),
            source: ro.clone(),
            target: "/mnt/ro".into(),
            read_write: false,
        },
        Bind {
            drive: "rw-drive".into(),
            source: rw.clone(),
            target: "/mnt/rw".into(),
            read_write: true,
        },
    ];
    lab.manager.create(spec, "test").unwrap();
    lab.manager.start(&name).unwrap();
    assert_eq!(lab.exec(&name, &["cat", "/mnt/ro/data.txt"]).1, "read me\n");
    let (code, _, err) = lab.exec(&name, &["touch", "/mnt/ro/new"]);
    assert_ne!(code, 0);
    assert!(err.contains("Read-only file system"), "{err}");
    assert!(!ro.join("new").exists());
    assert_eq!(lab.exec(&name, &["sh", "-c", "echo written > /mnt/rw/out.txt"]).0, 0);
    assert_eq!(fs::read_to_string(rw.join("out.txt")).unwrap(), "written\n");
    // idmapped: the container's root wrote as the appliance's root.
    use std::os::unix::fs::MetadataExt;
    assert_eq!(fs::metadata(rw.join("out.txt")).unwrap().uid(), 0);

    lab.manager.stop(&name).unwrap();
    assert!(lab.manager.info(&name).unwrap_err().kind() == SandboxErrorKind::NotFound);
    assert!(lab.leftovers(&name).is_empty(), "{:?}", lab.leftovers(&name));
}

#[test]
fn reconcile_after_a_kill_behind_the_managers_back() {
    if !enabled("reconcile_after_a_kill_behind_the_managers_back") {
        return;
    }
    let lab = Lab::new("kill");
    let name = unique("kill");
    lab.manager.create(SandboxSpec::new(&name, "busybox"), "test").unwrap();
    let leader = lab.manager.start(&name).unwrap().main_pid.unwrap();
    // Someone kills the container: its PID 1 dies, nspawn notices and exits.
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(leader as i32).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    while lab.runner.status(&name).unwrap().is_some() {
        assert!(Instant::now() < end, "container did not go away");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        lab.manager.info(&name).unwrap().state,
        SandboxState::Running,
        "the record does not know yet"
    );
    let report = lab.manager.reconcile().unwrap();
    assert_eq!(report.marked_stopped, std::slice::from_ref(&name));
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let info = lab.manager.info(&name).unwrap();
    assert_eq!(info.state, SandboxState::Stopped);
    assert_eq!(
        info.last_error.as_deref(),
        Some("the container stopped outside cacheos")
    );
    // Only the persistent data remains; the overlay mount and runtime directory were released.
    assert_eq!(
        lab.leftovers(&name),
        [format!("dir {}", lab.base().join("state").join(&name).display())]
    );
    lab.manager.remove(&name).unwrap();
    assert!(lab.leftovers(&name).is_empty(), "{:?}", lab.leftovers(&name));
}

#[test]
fn a_failing_start_leaves_nothing_behind() {
    if !enabled("a_failing_start_leaves_nothing_behind") {
        return;
    }
    let lab = Lab::new("fail");
    let name = unique("fail");
    let mut spec = SandboxSpec::new(&name, "broken");
    spec.limits.memory_max = Some(64 << 20);
    lab.manager.create(spec, "test").unwrap();
    let err = lab.manager.start(&name).unwrap_err();
    assert!(matches!(err, SandboxError::Runner { .. }), "{err}");
    let info = lab.manager.info(&name).unwrap();
    assert_eq!(info.state, SandboxState::Failed);
    assert!(
        info.last_error.as_deref().unwrap().contains("no-such-init"),
        "{:?}",
        info.last_error
    );
    assert_eq!(
        lab.leftovers(&name),
        [format!("dir {}", lab.base().join("state").join(&name).display())],
        "only the (empty) persistent layer"
    );
    lab.manager.remove(&name).unwrap();
    assert!(lab.leftovers(&name).is_empty(), "{:?}", lab.leftovers(&name));
}
