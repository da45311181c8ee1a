//! cacheos-bench-diagnose: monitoring and diagnosis figures (issue 16), each against a baseline measured in the same
//! run on the same machine.
//!
//! 1. `system.diagnose` latency p50/p99 on a real journal of at least 100,000 entries (400 noisy units plus the
//!    recorded restart-loop fault), written for the bench into a temporary directory by `systemd-journal-remote`
//!    (nothing reaches the host's journal) and read through the real source (`journalctl --directory=… -o json`),
//!    against `journalctl --directory=… -u X -b -p warning` on the same journal.
//! 2. `/metrics` scrape time and RSS of a running `cacheosd --dev` against Debian's `prometheus-node-exporter`.
//! 3. Bytes of metrics history per day (written, and kept in the redb store), and the size at the bound.

mod daemon;

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use cacheos_core::diagnose::fake::{fixtures_dir, Fixture};
use cacheos_core::diagnose::Diagnostics;
use cacheos_core::metrics_history::Resolution;
use cacheos_core::store::Store;
use clap::Parser;
use daemon::Kill;

/// Monitoring and diagnosis benchmarks.
#[derive(Debug, Parser)]
struct Args {
    /// Journal entries to generate (at least the fault's own).
    #[arg(long, default_value_t = 100_000)]
    entries: usize,
    /// Diagnoses (and journalctl runs) to time.
    #[arg(long, default_value_t = 20)]
    rounds: usize,
    /// Scrapes of each exporter to time.
    #[arg(long, default_value_t = 200)]
    scrapes: usize,
    /// The cacheosd binary (default: next to this program).
    #[arg(long)]
    cacheosd: Option<PathBuf>,
    /// Only the journal part (no daemons).
    #[arg(long)]
    journal_only: bool,
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn stats(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    (pct(&v, 0.5), pct(&v, 0.99))
}

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("no VmRSS")
}

/// One journal entry in the journal export format (`KEY=value` lines, a blank line after each entry).
fn export_entry(out: &mut String, fields: &serde_json::Map<String, serde_json::Value>) {
    for (k, v) in fields {
        // journal-remote assigns its own cursor; the remaining address fields are kept.
        if k == "__CURSOR" {
            continue;
        }
        if let Some(s) = v.as_str() {
            if !s.contains('\n') {
                out.push_str(k);
                out.push('=');
                out.push_str(s);
                out.push('\n');
            }
        }
    }
    out.push('\n');
}

fn journal_remote() -> anyhow::Result<PathBuf> {
    for p in [
        "/lib/systemd/systemd-journal-remote",
        "/usr/lib/systemd/systemd-journal-remote",
    ] {
        if Path::new(p).exists() {
            return Ok(p.into());
        }
    }
    bail!("systemd-journal-remote is missing (Debian package systemd-journal-remote; scripts/host-deps installs it)")
}

/// Writes the bench journal into `dir` and returns the number of entries.
fn write_journal(dir: &Path, entries: usize) -> anyhow::Result<usize> {
    // Entries of the current boot, so that `-b` selects them like it selects the appliance's own.
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")?
        .trim()
        .replace('-', "");
    let raw = std::fs::read_to_string(fixtures_dir().join("start-limit-hit/journal.json"))?;
    let fault: Vec<serde_json::Map<String, serde_json::Value>> = raw
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let noise = entries.saturating_sub(fault.len());
    let t0: u64 = 1_764_670_000_000_000;
    let mut text = String::with_capacity(entries * 400);
    for i in 0..noise {
        let e = serde_json::json!({
            "__REALTIME_TIMESTAMP": (t0 + i as u64 * 100).to_string(),
            "__MONOTONIC_TIMESTAMP": (1_000_000 + i as u64 * 100).to_string(),
            "_BOOT_ID": boot,
            "PRIORITY": if i % 50 == 0 { "4" } else { "6" },
            "SYSLOG_IDENTIFIER": "noise",
            "_PID": (1000 + i % 400).to_string(),
            "_COMM": "noise",
            "_SYSTEMD_UNIT": format!("noise-{}.service", i % 400),
            "_TRANSPORT": "stdout",
            "MESSAGE": format!("request {i} served in {} ms from 10.0.{}.{}", i % 97, i % 250, i % 200),
        });
        export_entry(&mut text, e.as_object().expect("an object"));
    }
    for mut f in fault.iter().cloned() {
        f.insert("_BOOT_ID".into(), boot.clone().into());
        export_entry(&mut text, &f);
    }
    let file = dir.join("bench.journal");
    let mut child = Command::new(journal_remote()?)
        .arg(format!("--output={}", file.display()))
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("systemd-journal-remote")?;
    std::io::Write::write_all(&mut child.stdin.take().expect("piped"), text.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "systemd-journal-remote failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(noise + fault.len())
}

fn journal_bench(args: &Args) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let t = Instant::now();
    let n = write_journal(dir.path(), args.entries)?;
    let bytes: u64 = std::fs::read_dir(dir.path())?
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    println!(
        "journal: {n} entries in {} ({:.1} MB of journal files, written in {:.1} s by systemd-journal-remote)",
        dir.path().display(),
        bytes as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    let fx = Fixture::load(&fixtures_dir().join("start-limit-hit"))?;
    let (units, _) = fx.fakes();
    let d = Diagnostics::new(
        Arc::new(units),
        Arc::new(cacheos_sys::journal::Journalctl::in_directory(dir.path())),
    );
    let unit = "cacheos-fault-loop.service";
    let f = d.unit(unit)?;
    anyhow::ensure!(
        f.cause.as_str() == "restart-loop",
        "diagnosed {} instead of restart-loop",
        f.cause.as_str()
    );
    let directory = format!("--directory={}", dir.path().display());
    let jctl = || -> anyhow::Result<usize> {
        let out = Command::new("journalctl")
            .args([directory.as_str(), "-u", unit, "-b", "-p", "warning", "--no-pager"])
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "journalctl: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(out.stdout.iter().filter(|b| **b == b'\n').count())
    };
    let lines = jctl()?;
    anyhow::ensure!(lines > 0, "journalctl -u {unit} -b -p warning printed nothing");
    let (mut diag, mut base) = (Vec::new(), Vec::new());
    for _ in 0..args.rounds {
        let t = Instant::now();
        black_box(d.unit(unit)?);
        diag.push(t.elapsed());
        let t = Instant::now();
        black_box(jctl()?);
        base.push(t.elapsed());
    }
    let (d50, d99) = stats(diag);
    let (b50, b99) = stats(base);
    println!("system.diagnose {unit} (restart-loop)      p50 {d50:>10.2?}  p99 {d99:>10.2?}");
    println!("baseline: journalctl -u {unit} -b -p warning ({lines} lines) p50 {b50:>10.2?}  p99 {b99:>10.2?}");
    println!(
        "ratio diagnose/journalctl                         p50 {:.2}  p99 {:.2}",
        d50.as_secs_f64() / b50.as_secs_f64(),
        d99.as_secs_f64() / b99.as_secs_f64()
    );
    Ok(())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_up(url: &str, what: &str) -> anyhow::Result<()> {
    let t0 = Instant::now();
    while ureq::get(url).call().is_err() {
        if t0.elapsed() > Duration::from_secs(30) {
            bail!("{what} did not come up at {url}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

fn scrape(url: &str) -> anyhow::Result<usize> {
    Ok(ureq::get(url).call()?.into_string()?.len())
}

fn scrape_bench(args: &Args) -> anyhow::Result<()> {
    let cacheosd = match &args.cacheosd {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("cacheosd"),
    };
    anyhow::ensure!(
        cacheosd.exists(),
        "{} not found; build it with `cargo build --release -p cacheosd`",
        cacheosd.display()
    );
    let exporter = "prometheus-node-exporter";
    anyhow::ensure!(
        Command::new(exporter).arg("--version").output().is_ok(),
        "{exporter} is missing (Debian package prometheus-node-exporter; scripts/host-deps installs it)"
    );
    let dir = tempfile::tempdir()?;
    let dev = daemon::start_dev_daemon(&cacheosd, dir.path())?;
    let (daemon, base) = (&dev.daemon, dev.base.clone());
    let ne_port = free_port()?;
    let ne = Kill(
        Command::new(exporter)
            .arg(format!("--web.listen-address=127.0.0.1:{ne_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    let ours = format!("{base}/metrics");
    let theirs = format!("http://127.0.0.1:{ne_port}/metrics");
    wait_up(&theirs, exporter)?;
    // Both warmed up and settled: their idle RSS.
    for _ in 0..10 {
        scrape(&ours)?;
        scrape(&theirs)?;
    }
    std::thread::sleep(Duration::from_secs(2));
    let (idle_ours, idle_theirs) = (rss_kib(daemon.0.id())?, rss_kib(ne.0.id())?);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let (mut size_a, mut size_b) = (0, 0);
    for _ in 0..args.scrapes {
        let t = Instant::now();
        size_a = scrape(&ours)?;
        a.push(t.elapsed());
        let t = Instant::now();
        size_b = scrape(&theirs)?;
        b.push(t.elapsed());
    }
    let (a50, a99) = stats(a);
    let (b50, b99) = stats(b);
    println!("/metrics scrape cacheosd             p50 {a50:>10.2?}  p99 {a99:>10.2?}  ({size_a} bytes)");
    println!("baseline: prometheus-node-exporter   p50 {b50:>10.2?}  p99 {b99:>10.2?}  ({size_b} bytes)");
    println!(
        "ratio cacheosd/node-exporter         p50 {:.2}  p99 {:.2}",
        a50.as_secs_f64() / b50.as_secs_f64(),
        a99.as_secs_f64() / b99.as_secs_f64()
    );
    let (ours_kib, theirs_kib) = (rss_kib(daemon.0.id())?, rss_kib(ne.0.id())?);
    println!(
        "RSS idle: cacheosd {:.1} MiB, node-exporter {:.1} MiB; after {} scrapes: cacheosd {:.1} MiB, node-exporter {:.1} MiB (ratio {:.2})",
        idle_ours as f64 / 1024.0,
        idle_theirs as f64 / 1024.0,
        args.scrapes,
        ours_kib as f64 / 1024.0,
        theirs_kib as f64 / 1024.0,
        ours_kib as f64 / theirs_kib as f64
    );
    Ok(())
}

/// A plausible sample: figures with many digits, as a real machine gives.
fn sample(i: u64, t: u64) -> cacheos_core::MetricSample {
    let x = (i * 7919 % 10_007) as f64;
    cacheos_core::MetricSample {
        time_ms: t,
        cpu_percent: Some(x / 133.7),
        memory_used_bytes: 1_234_567_890 + i * 4096 % 99_999_999,
        memory_total_bytes: 8_252_366_848,
        load_one: x / 3333.3,
        load_five: x / 4444.4,
        load_fifteen: x / 5555.5,
        disk_used_bytes: 12_345_678_901 + i * 512,
        disk_total_bytes: 62_725_623_808,
    }
}

fn stored_bytes(store: &dyn Store) -> anyhow::Result<(usize, usize)> {
    let (mut n, mut bytes) = (0, 0);
    for r in Resolution::ALL {
        for (k, v) in store.list_records(r.kind())? {
            n += 1;
            bytes += k.len() + r.kind().len() + serde_json::to_vec(&v)?.len();
        }
    }
    Ok((n, bytes))
}

fn history_bench() -> anyhow::Result<()> {
    let interval = 5u64;
    let per_day = 86_400 / interval;
    let t0 = 1_764_670_000_000u64;
    // One day into the durable store, as the daemon writes it.
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("cacheos.redb");
    let store = Arc::new(cacheos_store::RedbStore::open(&path, 1000)?);
    let empty = std::fs::metadata(&path)?.len();
    let h = cacheos_core::MetricsHistory::persistent(store.clone(), interval)?;
    let t = Instant::now();
    let mut written = 0usize;
    for i in 0..per_day {
        let s = sample(i, t0 + i * interval * 1000);
        written += serde_json::to_vec(&s)?.len() + 20;
        h.try_push(s)?;
    }
    let took = t.elapsed();
    store.flush()?;
    let (n, kept) = stored_bytes(store.as_ref())?;
    let file = std::fs::metadata(&path)?.len() - empty;
    println!(
        "metrics history, one day at {interval} s: {per_day} samples, {:.0} KiB of samples written ({:.1} KiB/day with the minute and hour means), {n} points / {:.0} KiB kept, redb file +{:.0} KiB ({:.1} s, {:.0} us per sample)",
        written as f64 / 1024.0,
        (written as f64 * (1.0 + 1.0 / 12.0 + 1.0 / 720.0)) / 1024.0,
        kept as f64 / 1024.0,
        file as f64 / 1024.0,
        took.as_secs_f64(),
        took.as_secs_f64() * 1e6 / per_day as f64
    );
    // The bound: 40 days in memory (the same code, a fake store) until every ring is full.
    let mem = Arc::new(cacheos_core::store::MemoryStore::new());
    let h = cacheos_core::MetricsHistory::persistent(mem.clone(), interval)?;
    for i in 0..40 * per_day {
        h.try_push(sample(i, t0 + i * interval * 1000))?;
    }
    let (n, kept) = stored_bytes(mem.as_ref())?;
    println!(
        "metrics history at its bound (after 40 days): {n} points, {:.0} KiB of records ({:?})",
        kept as f64 / 1024.0,
        h.lens()
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    journal_bench(&args)?;
    if !args.journal_only {
        scrape_bench(&args)?;
        history_bench()?;
    }
    Ok(())
}
