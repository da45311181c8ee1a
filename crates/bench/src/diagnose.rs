//! cacheos-bench-diagnose: `system.diagnose` latency (p50/p99) on a generated journal of at least 100,000
//! entries — `journalctl -o json` lines of 400 noisy units plus the recorded restart-loop fault — read through the
//! same parser the real source uses, against a baseline measured in the same run: a plain full JSON parse of the
//! same lines (what any reader of that output must do at least; journalctl itself cannot be pointed at JSON, so
//! `journalctl -u X -b -p warning` on the same journal is the VM's figure). Also `/metrics` encoding time against
//! reading the procfs files a scrape needs. No daemon.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cacheos_core::diagnose::fake::{fixtures_dir, Fixture};
use cacheos_core::diagnose::{DiagnoseError, Diagnostics, JournalEntry, JournalQuery, JournalSource};
use clap::Parser;

/// Diagnosis latency on a large journal.
#[derive(Debug, Parser)]
struct Args {
    /// Journal entries to generate (at least the fault's own).
    #[arg(long, default_value_t = 100_000)]
    entries: usize,
    /// Diagnoses to time.
    #[arg(long, default_value_t = 20)]
    rounds: usize,
}

/// A journal file of `journalctl -o json` lines, parsed on every query like the real source parses journalctl's
/// output.
struct FileJournal(String);

impl JournalSource for FileJournal {
    fn entries(&self, unit: Option<&str>, q: &JournalQuery) -> Result<Vec<JournalEntry>, DiagnoseError> {
        let (all, _) = JournalEntry::parse_all(&self.0);
        let mut v: Vec<JournalEntry> = all
            .into_iter()
            .filter(|e| unit.is_none_or(|u| e.unit.as_deref() == Some(u)))
            .filter(|e| q.matches(e))
            .collect();
        let limit = q.limit();
        if v.len() > limit {
            v.drain(..v.len() - limit);
        }
        Ok(v)
    }
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn stats(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    (pct(&v, 0.5), pct(&v, 0.99))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let fx = Fixture::load(&fixtures_dir().join("start-limit-hit"))?;
    let raw = std::fs::read_to_string(fixtures_dir().join("start-limit-hit/journal.json"))?;
    let fault: Vec<&str> = raw.lines().collect();
    let mut text = String::with_capacity(args.entries * 700);
    let noise = args.entries.saturating_sub(fault.len());
    let t0: u64 = 1_764_670_000_000_000;
    for i in 0..noise {
        let unit = format!("noise-{}.service", i % 400);
        let line = serde_json::json!({
            "__CURSOR": format!("s=bench;i={i:x};b=boot;m={i:x};t={:x};x={i:x}", t0 + i as u64),
            "__REALTIME_TIMESTAMP": (t0 + i as u64 * 1000).to_string(),
            "__MONOTONIC_TIMESTAMP": (i as u64 * 1000).to_string(),
            "_BOOT_ID": "3f1c2e8a9b7d4c60a1e5f2b3c4d5e6f7",
            "PRIORITY": if i % 50 == 0 { "4" } else { "6" },
            "SYSLOG_IDENTIFIER": "noise",
            "_PID": (1000 + i % 400).to_string(),
            "_COMM": "noise",
            "_SYSTEMD_UNIT": unit,
            "_TRANSPORT": "stdout",
            "MESSAGE": format!("request {i} served in {} ms from 10.0.{}.{}", i % 97, i % 250, i % 200),
        });
        text.push_str(&line.to_string());
        text.push('\n');
    }
    for l in &fault {
        text.push_str(l);
        text.push('\n');
    }
    let lines = noise + fault.len();
    let (units, _) = fx.fakes();
    let d = Diagnostics::new(Arc::new(units), Arc::new(FileJournal(text.clone())));
    let f = d.unit("cacheos-fault-loop.service")?;
    assert_eq!(f.cause.as_str(), "restart-loop");

    let mut diag = Vec::new();
    let mut base = Vec::new();
    for _ in 0..args.rounds {
        let t = Instant::now();
        black_box(d.unit("cacheos-fault-loop.service")?);
        diag.push(t.elapsed());
        let t = Instant::now();
        let n = text
            .lines()
            .filter(|l| serde_json::from_str::<serde_json::Value>(l).is_ok())
            .count();
        black_box(n);
        base.push(t.elapsed());
    }
    let (d50, d99) = stats(diag);
    let (b50, b99) = stats(base);
    println!(
        "journal: {lines} entries, {} MB of journalctl -o json",
        text.len() / 1_000_000
    );
    println!("system.diagnose (unit, restart loop)   p50 {d50:>10.2?}  p99 {d99:>10.2?}");
    println!("baseline: full JSON parse of the lines p50 {b50:>10.2?}  p99 {b99:>10.2?}");
    println!(
        "ratio diagnose/baseline                p50 {:.2}  p99 {:.2}",
        d50.as_secs_f64() / b50.as_secs_f64(),
        d99.as_secs_f64() / b99.as_secs_f64()
    );

    // /metrics: encoding a scrape of a core (real procfs probe) against reading the procfs files it needs.
    let (core, _) = cacheos_core::testing::core();
    let probe = cacheos_sys::probe::HostProbe::new();
    let mut enc = Vec::new();
    let mut raw = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        let mut s = core.scrape();
        s.status = cacheos_core::system::SystemProbe::status(&probe).ok();
        s.cpus = cacheos_core::system::SystemProbe::cpu_times(&probe);
        black_box(cacheos_web::metrics::to_prometheus_text(&cacheos_web::metrics::encode(
            s,
        )));
        enc.push(t.elapsed());
        let t = Instant::now();
        for f in ["/proc/stat", "/proc/meminfo", "/proc/loadavg", "/proc/self/mountinfo"] {
            black_box(std::fs::read_to_string(f).ok());
        }
        raw.push(t.elapsed());
    }
    let (e50, e99) = stats(enc);
    let (r50, r99) = stats(raw);
    println!("/metrics scrape (probe + encode)       p50 {e50:>10.2?}  p99 {e99:>10.2?}");
    println!("baseline: read the procfs files        p50 {r50:>10.2?}  p99 {r99:>10.2?}");
    println!(
        "ratio scrape/baseline                  p50 {:.2}",
        e50.as_secs_f64() / r50.as_secs_f64()
    );
    Ok(())
}
