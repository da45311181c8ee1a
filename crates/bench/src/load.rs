//! cacheos-bench-load: REST load against `cacheosd --dev` on loopback from this second process. Measures
//! `system.status` (a core operation with its audit record) against `/healthz` (no core work) at each client count in
//! one run (req/s, p50, p99, errors, throughput ratio), the daemon's RSS at start and end, and optionally a soak:
//! many REST clients plus chat sessions for a given time, RSS sampled along the way, failing on any error.
//!
//! `scripts/load-soak` runs the soak (1,000 clients, 100 chat sessions, 10 minutes); without `--soak-secs`
//! only the 1- and 64-client measurement runs (a few seconds per endpoint).

mod daemon;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;

/// REST load benchmark and soak of cacheosd.
#[derive(Debug, Parser)]
struct Args {
    /// The cacheosd binary (default: next to this program).
    #[arg(long)]
    cacheosd: Option<PathBuf>,
    /// Client counts to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,64")]
    clients: Vec<usize>,
    /// Seconds per endpoint and client count.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Soak duration in seconds (0: no soak).
    #[arg(long, default_value_t = 0)]
    soak_secs: u64,
    /// REST clients (system.status) during the soak.
    #[arg(long, default_value_t = 1000)]
    soak_clients: usize,
    /// Chat sessions during the soak, each sending messages one after the other.
    #[arg(long, default_value_t = 100)]
    chat_sessions: usize,
    /// Seconds between RSS samples during the soak.
    #[arg(long, default_value_t = 10)]
    sample_secs: u64,
    /// Fail when the daemon's RSS grows by more than this many MiB from the soak's start to its end.
    #[arg(long)]
    max_rss_growth_mib: Option<f64>,
    /// Fail when the status/healthz throughput ratio at the highest client count is below this.
    #[arg(long)]
    min_ratio: Option<f64>,
}

/// A latency histogram with 2 % wide buckets from 1 us to about 1 hour.
#[derive(Clone)]
struct Hist {
    buckets: Vec<u64>,
    count: u64,
}

const GROWTH: f64 = 1.02;

impl Hist {
    fn new() -> Self {
        Self {
            buckets: vec![0; 1200],
            count: 0,
        }
    }
    fn record(&mut self, d: Duration) {
        let us = (d.as_secs_f64() * 1e6).max(1.0);
        let i = ((us.ln() / GROWTH.ln()) as usize).min(self.buckets.len() - 1);
        self.buckets[i] += 1;
        self.count += 1;
    }
    fn merge(&mut self, o: &Hist) {
        for (a, b) in self.buckets.iter_mut().zip(&o.buckets) {
            *a += b;
        }
        self.count += o.count;
    }
    /// The upper edge of the bucket holding quantile `q`, in microseconds.
    fn quantile_us(&self, q: f64) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let rank = ((self.count as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return GROWTH.powi(i as i32 + 1);
            }
        }
        GROWTH.powi(self.buckets.len() as i32)
    }
}

/// What a group of clients saw.
#[derive(Default)]
struct Errors {
    count: AtomicU64,
    first: Mutex<Vec<String>>,
}

impl Errors {
    fn add(&self, what: String) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let mut f = self.first.lock().unwrap();
        if f.len() < 5 {
            f.push(what);
        }
    }
    fn report(&self, label: &str) -> u64 {
        let n = self.count.load(Ordering::Relaxed);
        if n > 0 {
            println!("  {label}: {n} errors, first: {:?}", self.first.lock().unwrap());
        }
        n
    }
}

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("no VmRSS")
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .max_idle_connections_per_host(1)
        .timeout(Duration::from_secs(30))
        .build()
}

/// One REST client: GETs `url` until `stop`, one request at a time on one kept-alive connection.
fn get_loop(url: String, stop: Arc<AtomicBool>, errors: Arc<Errors>, done: Arc<AtomicU64>) -> Hist {
    let agent = agent();
    let mut h = Hist::new();
    while !stop.load(Ordering::Relaxed) {
        let t = Instant::now();
        match agent.get(&url).call() {
            Ok(r) => match r.into_string() {
                Ok(_) => {
                    h.record(t.elapsed());
                    done.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => errors.add(format!("reading body: {e}")),
            },
            Err(e) => {
                errors.add(e.to_string());
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
    h
}

/// One chat session: sends messages one after the other and reads each streamed reply to its end.
fn chat_loop(base: String, n: usize, stop: Arc<AtomicBool>, errors: Arc<Errors>, done: Arc<AtomicU64>) -> Hist {
    const TEXTS: [&str; 4] = [
        "wie geht es dem system?",
        "show the system status",
        "welche sandboxen gibt es?",
        "list the drives",
    ];
    let agent = agent();
    let mut h = Hist::new();
    let session = format!("load-{n}");
    let mut i = n;
    while !stop.load(Ordering::Relaxed) {
        let body = serde_json::json!({"text": TEXTS[i % TEXTS.len()], "session": session}).to_string();
        i += 1;
        let t = Instant::now();
        let r = agent
            .post(&format!("{base}/api/v1/chat"))
            .set("content-type", "application/json")
            .send_string(&body);
        match r
            .map_err(|e| e.to_string())
            .and_then(|r| r.into_string().map_err(|e| e.to_string()))
        {
            Ok(text) => {
                if text.lines().any(|l| l.contains("\"type\":\"reply\"")) {
                    h.record(t.elapsed());
                    done.fetch_add(1, Ordering::Relaxed);
                } else {
                    errors.add(format!("no reply line: {}", text.chars().take(200).collect::<String>()));
                }
            }
            Err(e) => {
                errors.add(e);
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
    h
}

fn spawn<F: FnOnce() -> Hist + Send + 'static>(f: F) -> std::thread::JoinHandle<Hist> {
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(f)
        .expect("spawn client thread")
}

fn join_all(handles: Vec<std::thread::JoinHandle<Hist>>) -> Hist {
    let mut all = Hist::new();
    for h in handles {
        all.merge(&h.join().expect("client thread"));
    }
    all
}

struct Measured {
    rps: f64,
    p50_us: f64,
    p99_us: f64,
    errors: u64,
}

fn measure(url: &str, clients: usize, secs: f64) -> Measured {
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(Errors::default());
    let done = Arc::new(AtomicU64::new(0));
    // A short warm-up opens the connections before the clock starts.
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let (url, stop, errors, done) = (url.to_string(), stop.clone(), errors.clone(), done.clone());
            spawn(move || get_loop(url, stop, errors, done))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let start_n = done.load(Ordering::Relaxed);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(secs));
    let n = done.load(Ordering::Relaxed) - start_n;
    let elapsed = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let h = join_all(handles);
    Measured {
        rps: n as f64 / elapsed,
        p50_us: h.quantile_us(0.5),
        p99_us: h.quantile_us(0.99),
        errors: errors.report(url),
    }
}

fn soak(args: &Args, base: &str, pid: u32) -> anyhow::Result<u64> {
    println!(
        "soak: {} REST clients (system.status) and {} chat sessions for {} s",
        args.soak_clients, args.chat_sessions, args.soak_secs
    );
    let stop = Arc::new(AtomicBool::new(false));
    let (rest_err, chat_err) = (Arc::new(Errors::default()), Arc::new(Errors::default()));
    let (rest_n, chat_n) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let rss_start = rss_kib(pid)?;
    let url = format!("{base}/api/v1/system/status");
    let rest: Vec<_> = (0..args.soak_clients)
        .map(|_| {
            let (url, stop, e, n) = (url.clone(), stop.clone(), rest_err.clone(), rest_n.clone());
            spawn(move || get_loop(url, stop, e, n))
        })
        .collect();
    let chats: Vec<_> = (0..args.chat_sessions)
        .map(|i| {
            let (base, stop, e, n) = (base.to_string(), stop.clone(), chat_err.clone(), chat_n.clone());
            spawn(move || chat_loop(base, i, stop, e, n))
        })
        .collect();
    let t0 = Instant::now();
    let total = Duration::from_secs(args.soak_secs);
    let mut rss_max = rss_start;
    let mut first_sample = None;
    let (mut last_r, mut last_c, mut last_t) = (0u64, 0u64, Instant::now());
    while t0.elapsed() < total {
        let left = total.saturating_sub(t0.elapsed());
        std::thread::sleep(left.min(Duration::from_secs(args.sample_secs.max(1))));
        let rss = rss_kib(pid)?;
        rss_max = rss_max.max(rss);
        first_sample.get_or_insert(rss);
        let (r, c) = (rest_n.load(Ordering::Relaxed), chat_n.load(Ordering::Relaxed));
        let dt = last_t.elapsed().as_secs_f64();
        println!(
            "  t={:>5.0} s  RSS {:>7.1} MiB  status {:>7.0} req/s  chat {:>5.1} msg/s  errors {} + {}",
            t0.elapsed().as_secs_f64(),
            mib(rss),
            (r - last_r) as f64 / dt,
            (c - last_c) as f64 / dt,
            rest_err.count.load(Ordering::Relaxed),
            chat_err.count.load(Ordering::Relaxed),
        );
        (last_r, last_c, last_t) = (r, c, Instant::now());
    }
    stop.store(true, Ordering::Relaxed);
    let elapsed = t0.elapsed().as_secs_f64();
    let (rh, ch) = (join_all(rest), join_all(chats));
    let rss_end = rss_kib(pid)?;
    let errors = rest_err.report("REST") + chat_err.report("chat");
    println!(
        "soak result: status {:.0} req/s p50 {:.0} us p99 {:.0} us; chat {:.1} msg/s p50 {:.0} us p99 {:.0} us; errors {}",
        rh.count as f64 / elapsed,
        rh.quantile_us(0.5),
        rh.quantile_us(0.99),
        ch.count as f64 / elapsed,
        ch.quantile_us(0.5),
        ch.quantile_us(0.99),
        errors
    );
    let first = first_sample.unwrap_or(rss_start);
    println!(
        "soak RSS: before {:.1} MiB, first sample {:.1} MiB, end {:.1} MiB, max {:.1} MiB (growth from first sample {:+.1} MiB)",
        mib(rss_start),
        mib(first),
        mib(rss_end),
        mib(rss_max),
        mib(rss_end) - mib(first)
    );
    if let Some(max) = args.max_rss_growth_mib {
        if mib(rss_end) - mib(first) > max {
            bail!("RSS grew by more than {max} MiB during the soak");
        }
    }
    Ok(errors)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let cacheosd = match &args.cacheosd {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("cacheosd"),
    };
    if !cacheosd.exists() {
        bail!(
            "{} not found; build it with `cargo build -p cacheosd`",
            cacheosd.display()
        );
    }
    let dir = tempfile::tempdir()?;
    let dev = daemon::start_dev_daemon(&cacheosd, dir.path())?;
    let (daemon, base) = (&dev.daemon, dev.base.clone());
    let pid = daemon.0.id();
    std::thread::sleep(Duration::from_secs(1));
    let rss_start = rss_kib(pid)?;
    println!("RSS at start: {:.1} MiB", mib(rss_start));
    println!(
        "{:>7}  {:<14} {:>9} {:>9} {:>9} {:>7}",
        "clients", "endpoint", "req/s", "p50 us", "p99 us", "errors"
    );
    let mut errors = 0;
    let mut last_ratio = None;
    for &c in &args.clients {
        let h = measure(&format!("{base}/healthz"), c, args.seconds);
        let s = measure(&format!("{base}/api/v1/system/status"), c, args.seconds);
        for (name, m) in [("/healthz", &h), ("system.status", &s)] {
            println!(
                "{c:>7}  {name:<14} {:>9.0} {:>9.0} {:>9.0} {:>7}",
                m.rps, m.p50_us, m.p99_us, m.errors
            );
        }
        let ratio = s.rps / h.rps.max(1.0);
        println!(
            "{c:>7}  status//healthz: throughput ratio {ratio:.2}, p99 ratio {:.2}",
            s.p99_us / h.p99_us.max(1.0)
        );
        errors += h.errors + s.errors;
        last_ratio = Some(ratio);
    }
    if args.soak_secs > 0 {
        errors += soak(&args, &base, pid)?;
    }
    let rss_end = rss_kib(pid)?;
    println!(
        "RSS at end: {:.1} MiB ({:+.1} MiB from start)",
        mib(rss_end),
        mib(rss_end) - mib(rss_start)
    );
    if errors > 0 {
        bail!("{errors} requests failed");
    }
    if let (Some(min), Some(r)) = (args.min_ratio, last_ratio) {
        if r < min {
            bail!("status//healthz throughput ratio {r:.2} is below {min}");
        }
    }
    Ok(())
}
