//! Harness for end-to-end tests: a private D-Bus daemon, a `cacheosd --dev` process and helpers to call it.
//! These tests run only with CACHEOS_INTEGRATION=1 (the README's test command sets it); plain `cargo test`
//! stays hermetic.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Whether end-to-end tests are enabled; prints why not otherwise.
pub fn enabled(name: &str) -> bool {
    if std::env::var_os("CACHEOS_INTEGRATION").is_some() {
        return true;
    }
    eprintln!("{name}: skipped; set CACHEOS_INTEGRATION=1 (scripts/test does) to run end-to-end tests");
    false
}

/// Polls `f` until it returns `Some` or `timeout` passes.
pub fn wait_until<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A private dbus-daemon.
pub struct TestBus {
    pub address: String,
    child: Child,
    pub dir: tempfile::TempDir,
}

impl TestBus {
    /// A session-like bus.
    pub fn session() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("bus");
        let address = format!("unix:path={}", sock.display());
        let child = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--nopidfile", &format!("--address={address}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-daemon must be installed (package dbus)");
        wait_until("the test bus socket", Duration::from_secs(10), || {
            sock.exists().then_some(())
        });
        Self { address, child, dir }
    }

    /// A system-like bus: deny by default, with `policy_dir` included (the shipped policy).
    pub fn system_like(policy_dir: &Path) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let sock = dir.path().join("system_bus_socket");
        let address = format!("unix:path={}", sock.display());
        let conf = dir.path().join("system.conf");
        std::fs::write(
            &conf,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>{address}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
  </policy>
  <includedir>{}</includedir>
</busconfig>
"#,
                policy_dir.display()
            ),
        )
        .unwrap();
        let child = Command::new("dbus-daemon")
            .args(["--nofork", "--nopidfile", &format!("--config-file={}", conf.display())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-daemon must be installed (package dbus)");
        wait_until("the system-like bus socket", Duration::from_secs(10), || {
            sock.exists().then_some(())
        });
        Self { address, child, dir }
    }
}

impl Drop for TestBus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Path of a workspace binary next to cacheosd.
pub fn bin(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_BIN_EXE_cacheosd")).with_file_name(name);
    assert!(
        p.exists(),
        "{} not built; run `cargo build --workspace` first",
        p.display()
    );
    p
}

/// A running `cacheosd --dev`.
pub struct Daemon {
    pub child: Option<Child>,
    pub port: u16,
    pub state_dir: PathBuf,
    pub bus: String,
    log: PathBuf,
}

impl Daemon {
    /// Starts cacheosd in dev mode on `bus` (as the session bus) and waits until D-Bus and the web port answer.
    pub fn start(bus: &str, state_dir: &Path) -> Self {
        Self::start_with(bus, state_dir, &[])
    }

    /// Same, with extra arguments.
    pub fn start_with(bus: &str, state_dir: &Path, extra: &[&str]) -> Self {
        Self::start_env(bus, state_dir, extra, &[])
    }

    /// Same, with extra environment variables.
    pub fn start_env(bus: &str, state_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let log = state_dir.with_extension("log");
        let child = Command::new(env!("CARGO_BIN_EXE_cacheosd"))
            .args(["--dev", "--state-dir"])
            .arg(state_dir)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(extra)
            .env("DBUS_SESSION_BUS_ADDRESS", bus)
            .env("CACHEOS_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut d = Self {
            child: Some(child),
            port,
            state_dir: state_dir.into(),
            bus: bus.into(),
            log,
        };
        d.wait_ready();
        d
    }

    fn wait_ready(&mut self) {
        let url = self.url("/healthz");
        let log = self.log.clone();
        let child = self.child.as_mut().unwrap();
        wait_until("cacheosd to answer /healthz", Duration::from_secs(30), || {
            if let Ok(Some(st)) = child.try_wait() {
                panic!(
                    "cacheosd exited with {st}: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            ureq::get(&url).call().ok().map(|_| ())
        });
        let bus = self.bus.clone();
        wait_until("cacheosd's D-Bus name", Duration::from_secs(30), || {
            let o = Command::new("busctl")
                .args(["--address", &bus, "status", "org.cacheos.CacheOS1"])
                .output()
                .ok()?;
            o.status.success().then_some(())
        });
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn get(&self, path: &str) -> serde_json::Value {
        ureq::get(&self.url(path)).call().unwrap().into_json().unwrap()
    }

    /// Runs cacheosctl against this daemon.
    pub fn ctl(&self, args: &[&str]) -> Output {
        Command::new(bin("cacheosctl"))
            .args(["--bus", "session"])
            .args(args)
            .env("DBUS_SESSION_BUS_ADDRESS", &self.bus)
            .output()
            .unwrap()
    }

    /// SIGTERM and wait; returns the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        wait_until("cacheosd to exit after SIGTERM", Duration::from_secs(20), || {
            child.try_wait().unwrap()
        })
    }

    /// SIGKILL, no cleanup.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Reads server-sent events from `url` until `pred` accepts one (returns its data) or `timeout` passes.
pub fn sse_until(
    url: &str,
    timeout: Duration,
    start: impl FnOnce(),
    pred: impl Fn(&str, &serde_json::Value) -> bool,
) -> serde_json::Value {
    let agent = ureq::AgentBuilder::new().timeout_read(timeout).build();
    let resp = agent.get(url).call().unwrap();
    start();
    let mut reader = BufReader::new(resp.into_reader().take(10_000_000));
    let mut event = String::new();
    let end = Instant::now() + timeout;
    let mut line = String::new();
    while Instant::now() < end {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        let l = line.trim_end();
        if let Some(e) = l.strip_prefix("event: ").or_else(|| l.strip_prefix("event:")) {
            event = e.trim().to_string();
        } else if let Some(d) = l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:")) {
            let v: serde_json::Value = serde_json::from_str(d.trim()).unwrap();
            if pred(&event, &v) {
                return v;
            }
        }
    }
    panic!("no matching server-sent event within {timeout:?}");
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

/// A busybox tree at `tree`: a sandbox template without init (cacheosd runs `sleep` in it). Needs busybox-static.
pub fn busybox_template(tree: &Path) {
    for d in [
        "bin", "etc", "proc", "sys", "dev", "tmp", "root", "run", "var", "usr/bin", "mnt",
    ] {
        std::fs::create_dir_all(tree.join(d)).unwrap();
    }
    let busybox = Path::new("/bin/busybox");
    assert!(busybox.exists(), "/bin/busybox is missing; install busybox-static");
    std::fs::copy(busybox, tree.join("bin/busybox")).unwrap();
    for a in [
        "sh", "ls", "cat", "echo", "sleep", "id", "true", "false", "env", "mkdir", "tar",
    ] {
        std::os::unix::fs::symlink("busybox", tree.join("bin").join(a)).unwrap();
    }
    std::fs::write(tree.join("etc/os-release"), "ID=busybox\nNAME=\"busybox test tree\"\n").unwrap();
}

/// After a SIGKILL and a restart: the operation that was cut off has exactly one audit record (outcome error, code
/// `interrupted`, its arguments), every record acknowledged before the kill is still there, ids only grew, and the
/// restart's own reconcile came after it.
pub fn assert_interrupted_recorded(d: &Daemon, before: &serde_json::Value, op: &str, what: &str) {
    let after = d.get("/api/v1/audit?limit=1000");
    let ids = |v: &serde_json::Value| -> Vec<u64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_u64().unwrap())
            .collect()
    };
    let (old, new) = (ids(before), ids(&after));
    for id in &old {
        assert!(new.contains(id), "{what}: acknowledged audit record {id} lost: {after}");
    }
    let max_old = old.iter().copied().max().unwrap_or(0);
    let added: Vec<&serde_json::Value> = after
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["id"].as_u64().unwrap() > max_old)
        .collect();
    let interrupted: Vec<_> = added.iter().filter(|r| r["error_code"] == "interrupted").collect();
    assert_eq!(interrupted.len(), 1, "{what}: one interrupted record: {added:?}");
    let r = interrupted[0];
    assert_eq!(
        (r["operation"].as_str(), r["outcome"].as_str()),
        (Some(op), Some("error")),
        "{what}: {r}"
    );
    assert_eq!(r["args"]["name"], "victim", "{what}: {r}");
    // Newest first: the reconcile at start has a higher id than the interrupted record.
    let first_reconcile = added
        .iter()
        .filter(|r| r["operation"].as_str().unwrap_or("").ends_with(".reconcile"));
    for rec in first_reconcile {
        assert!(
            rec["id"].as_u64() > r["id"].as_u64(),
            "{what}: reconcile before the interrupted record"
        );
    }
    for w in new.windows(2) {
        assert!(w[0] > w[1], "{what}: ids not strictly ordered: {new:?}");
    }
}

/// One chat exchange over `POST /api/v1/chat`: the streamed NDJSON reply folded into its parts.
pub struct Said {
    pub interpretation: serde_json::Value,
    pub executed: Option<serde_json::Value>,
    pub reply: String,
    /// Types of any other lines (a test that expects none asserts this is empty).
    pub other: Vec<String>,
}

/// Sends `text` in chat session `session` and folds the reply; panics (with the daemon's log) when the request fails.
pub fn chat_say(d: &Daemon, session: &str, text: &str) -> Said {
    let resp = ureq::post(&d.url("/api/v1/chat"))
        .send_json(serde_json::json!({"text": text, "session": session}))
        .unwrap_or_else(|e| panic!("POST /api/v1/chat {text:?}: {e}\n{}", d.log()));
    let body = resp.into_string().unwrap();
    let mut said = Said {
        interpretation: serde_json::Value::Null,
        executed: None,
        reply: String::new(),
        other: Vec::new(),
    };
    for line in body.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        match v["type"].as_str() {
            Some("interpretation") => said.interpretation = v["interpretation"].clone(),
            Some("result") => said.executed = Some(v["executed"].clone()),
            Some("reply") => said.reply = v["text"].as_str().unwrap().to_string(),
            other => said.other.push(format!("{other:?}: {v}")),
        }
    }
    eprintln!("> {text}\n  = {}\n{}\n", said.interpretation, said.reply);
    said
}
