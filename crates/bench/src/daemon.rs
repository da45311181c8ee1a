//! A private session bus and a `cacheosd --dev` on a free loopback port for the benchmarks that measure the real
//! daemon (`cacheos-bench`, `cacheos-bench-load`, `cacheos-bench-diagnose`); both are killed when dropped.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// A child process that is killed and reaped when dropped.
pub struct Kill(pub Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The running pair (fields drop in order: the daemon before its bus).
pub struct DevDaemon {
    /// `cacheosd --dev`.
    pub daemon: Kill,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The bus address (`unix:path=…`) for D-Bus clients.
    #[allow(dead_code)] // each benchmark binary compiles this module; not all of them talk D-Bus
    pub bus_address: String,
    /// The session bus, kept alive while the daemon runs.
    _bus: Kill,
}

/// Starts a session bus in `dir` and `cacheosd --dev` with its state in `dir/state`, and waits (up to a minute) until
/// `/healthz` answers.
pub fn start_dev_daemon(cacheosd: &Path, dir: &Path) -> anyhow::Result<DevDaemon> {
    let sock = dir.join("bus");
    let address = format!("unix:path={}", sock.display());
    let bus = Kill(
        Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--nopidfile", &format!("--address={address}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("dbus-daemon")?,
    );
    for _ in 0..200 {
        if sock.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let daemon = Kill(
        Command::new(cacheosd)
            .args(["--dev", "--state-dir"])
            .arg(dir.join("state"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("DBUS_SESSION_BUS_ADDRESS", &address)
            .env("CACHEOS_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {}", cacheosd.display()))?,
    );
    let base = format!("http://127.0.0.1:{port}");
    let t0 = Instant::now();
    while ureq::get(&format!("{base}/healthz")).call().is_err() {
        if t0.elapsed() > Duration::from_secs(60) {
            bail!("cacheosd did not come up");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    println!(
        "cacheosd {} (pid {}), ready after {:.0} ms",
        cacheosd.display(),
        daemon.0.id(),
        t0.elapsed().as_secs_f64() * 1e3
    );
    Ok(DevDaemon {
        _bus: bus,
        daemon,
        base,
        bus_address: address,
    })
}
