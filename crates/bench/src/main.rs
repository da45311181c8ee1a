//! cacheos-bench: starts a private bus and `cacheosd --dev`, then prints idle RSS, D-Bus status round-trip
//! p50/p99 (against D-Bus Peer.Ping to the same daemon as baseline) and REST status throughput and p99 at 1 and
//! 64 concurrent clients (against `/healthz`, which does no core work, as baseline). Load comes from this
//! process, a second process beside the daemon.

mod daemon;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;

/// Benchmarks of cacheosd.
#[derive(Debug, Parser)]
struct Args {
    /// The cacheosd binary (default: next to this program).
    #[arg(long)]
    cacheosd: Option<PathBuf>,
    /// D-Bus round trips per measurement.
    #[arg(long, default_value_t = 2000)]
    dbus_calls: usize,
    /// Seconds per REST measurement.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("no VmRSS")
}

fn rest_load(url: &str, clients: usize, secs: u64) -> (f64, Duration, Duration) {
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let (url, stop) = (url.to_string(), stop.clone());
            std::thread::spawn(move || {
                let agent = ureq::AgentBuilder::new().max_idle_connections_per_host(1).build();
                let mut lat = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    let r = agent.get(&url).call();
                    if let Ok(r) = r {
                        let _ = r.into_string();
                        lat.push(t.elapsed());
                    }
                }
                lat
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    let mut all: Vec<Duration> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
    let elapsed = start.elapsed().as_secs_f64();
    all.sort();
    (all.len() as f64 / elapsed, pct(&all, 0.5), pct(&all, 0.99))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let cacheosd = match args.cacheosd {
        Some(p) => p,
        None => std::env::current_exe()?.with_file_name("cacheosd"),
    };
    if !cacheosd.exists() {
        bail!(
            "{} not found; build it with `cargo build --release -p cacheosd`",
            cacheosd.display()
        );
    }
    let dir = tempfile::tempdir()?;
    let dev = daemon::start_dev_daemon(&cacheosd, dir.path())?;
    let (daemon, base) = (&dev.daemon, dev.base.clone());
    let address = dev.bus_address.clone();
    std::thread::sleep(Duration::from_secs(2));
    let idle = rss_kib(daemon.0.id())?;
    println!("idle RSS after start:            {:>8.1} MiB", idle as f64 / 1024.0);

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let _in_rt = rt.enter();
    let (status, ping) = rt.block_on(async {
        let conn = zbus::connection::Builder::address(address.as_str())?.build().await?;
        let proxy = cacheos_dbus::client::ManagerProxy::new(&conn).await?;
        let peer = zbus::fdo::PeerProxy::builder(&conn)
            .destination(cacheos_dbus::BUS_NAME)?
            .path(cacheos_dbus::OBJECT_PATH)?
            .build()
            .await?;
        for _ in 0..50 {
            proxy.get_system_status().await?;
            peer.ping().await?;
        }
        let mut s = Vec::with_capacity(args.dbus_calls);
        let mut p = Vec::with_capacity(args.dbus_calls);
        for _ in 0..args.dbus_calls {
            let t = Instant::now();
            proxy.get_system_status().await?;
            s.push(t.elapsed());
            let t = Instant::now();
            peer.ping().await?;
            p.push(t.elapsed());
        }
        s.sort();
        p.sort();
        anyhow::Ok((s, p))
    })?;
    println!(
        "D-Bus GetSystemStatus round trip: p50 {:>7.0} us  p99 {:>7.0} us   (baseline Peer.Ping p50 {:.0} us p99 {:.0} us; p50 ratio {:.1}x)",
        us(pct(&status, 0.5)),
        us(pct(&status, 0.99)),
        us(pct(&ping, 0.5)),
        us(pct(&ping, 0.99)),
        us(pct(&status, 0.5)) / us(pct(&ping, 0.5)).max(1.0)
    );

    for clients in [1usize, 64] {
        let (h_rps, _, h_p99) = rest_load(&format!("{base}/healthz"), clients, args.seconds);
        let (s_rps, s_p50, s_p99) = rest_load(&format!("{base}/api/v1/system/status"), clients, args.seconds);
        println!(
            "REST system.status, {clients:>2} client(s): {:>8.0} req/s  p50 {:>7.0} us  p99 {:>7.0} us   (baseline /healthz {:.0} req/s p99 {:.0} us; throughput ratio {:.2})",
            s_rps,
            us(s_p50),
            us(s_p99),
            h_rps,
            us(h_p99),
            s_rps / h_rps.max(1.0)
        );
    }
    let after = rss_kib(daemon.0.id())?;
    println!("RSS after load:                  {:>8.1} MiB", after as f64 / 1024.0);
    Ok(())
}
