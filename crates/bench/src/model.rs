//! cacheos-bench-model (feature `gguf`, issue 14): the in-process GGUF backend against llama.cpp itself, in one run,
//! same GGUF, same threads, same prompt and greedy decoding. The baseline is `llama-baseline`
//! (`crates/bench/baseline/llama-baseline.cpp`, built by `scripts/build-llama-baseline` against the static
//! libraries of the very llama-cpp-sys-2 build this binary links): time to first token and tokens/s, with ratios
//! (in-process / baseline for tokens/s, baseline / in-process for the time to first token; 1.0 = no overhead).
//! Then the chat's added latency over the backend (`consult` with the proposal schema, minus the time spent inside
//! the backend) and the process's RSS with the model loaded. Prints the machine load, since the figures depend on it.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use cacheos_chat::engine::Lang;
use cacheos_chat::model::{consult, Message, ModelBackend, ModelError, ModelIdentity, ModelRequest};
use cacheos_core::model::{BackendKind, ModelChoice, ModelHost};
use cacheos_model::{GgufSettings, ModelManager};
use clap::Parser;

/// In-process GGUF backend against llama.cpp's C API.
#[derive(Debug, Parser)]
struct Args {
    /// The GGUF file (scripts/fetch-test-model prints the test model's path).
    #[arg(long, env = "CACHEOS_TEST_GGUF")]
    model: PathBuf,
    /// The baseline program (scripts/build-llama-baseline prints its path).
    #[arg(long, env = "CACHEOS_LLAMA_BASELINE")]
    baseline: PathBuf,
    /// CPU threads, for both.
    #[arg(long, default_value_t = 2)]
    threads: u32,
    /// Generations per side (the first one of each warms caches and is not counted).
    #[arg(long, default_value_t = 4)]
    rounds: usize,
    /// Most tokens per generation.
    #[arg(long, default_value_t = 128)]
    max_tokens: u32,
}

/// One question that makes the model write at length.
const MESSAGE: &str = "Write a long story about a lighthouse keeper and a storm.";

#[derive(Debug, Clone, Copy)]
struct Round {
    first_token_ms: f64,
    tokens: u32,
    tokens_per_s: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        0.0
    } else {
        v[v.len() / 2]
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn baseline(a: &Args) -> anyhow::Result<Vec<Round>> {
    let out = std::process::Command::new(&a.baseline)
        .arg(&a.model)
        .arg(a.threads.to_string())
        .arg(a.rounds.to_string())
        .arg(a.max_tokens.to_string())
        .arg(MESSAGE)
        .output()
        .with_context(|| format!("running {}", a.baseline.display()))?;
    if !out.status.success() {
        bail!(
            "{} failed: {}",
            a.baseline.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).context("a baseline line")?;
            Ok(Round {
                first_token_ms: v["first_token_ms"].as_f64().unwrap_or(0.0),
                tokens: v["tokens"].as_u64().unwrap_or(0) as u32,
                tokens_per_s: v["tokens_per_s"].as_f64().unwrap_or(0.0),
            })
        })
        .collect()
}

fn in_process(m: &ModelManager, a: &Args) -> anyhow::Result<Vec<Round>> {
    let req = ModelRequest {
        messages: vec![Message {
            role: "user",
            content: MESSAGE.into(),
        }],
        schema: serde_json::Value::Null,
        max_tokens: a.max_tokens,
    };
    let mut rounds = Vec::new();
    for _ in 0..a.rounds {
        let t0 = Instant::now();
        let mut first = None;
        let mut pieces = 0u32;
        m.complete(&req, &mut |_| {
            pieces += 1;
            first.get_or_insert_with(|| t0.elapsed());
        })?;
        let s = m.status();
        rounds.push(Round {
            first_token_ms: first.unwrap_or_default().as_secs_f64() * 1e3,
            tokens: pieces,
            tokens_per_s: s.last_tokens_per_s.unwrap_or(0.0),
        });
    }
    Ok(rounds)
}

/// The backend, timing what happens inside it.
struct Timed<'a> {
    inner: &'a ModelManager,
    spent: Mutex<Duration>,
}

impl ModelBackend for Timed<'_> {
    fn identity(&self) -> Option<ModelIdentity> {
        self.inner.identity()
    }
    fn complete(&self, req: &ModelRequest, on_token: &mut dyn FnMut(&str)) -> Result<String, ModelError> {
        let t = Instant::now();
        let r = self.inner.complete(req, on_token);
        *self.spent.lock().unwrap() += t.elapsed();
        r
    }
}

fn summary(name: &str, r: &[Round]) -> (f64, f64) {
    let counted = if r.len() > 1 { &r[1..] } else { r };
    let ttft = median(counted.iter().map(|x| x.first_token_ms).collect());
    let tps = median(counted.iter().map(|x| x.tokens_per_s).collect());
    let tokens = counted.first().map(|x| x.tokens).unwrap_or(0);
    println!(
        "{name:<28} {ttft:>10.1} ms {tps:>10.1} tok/s   ({tokens} tokens, median of {})",
        counted.len()
    );
    (ttft, tps)
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    println!(
        "cacheos-bench-model: {} threads, {} rounds, up to {} tokens; load average before: {}",
        a.threads,
        a.rounds,
        a.max_tokens,
        load()
    );
    let dir = tempfile::tempdir()?;
    let m = ModelManager::new(&dir.path().join("models"), dir.path()).with_gguf(GgufSettings::default());
    let rss0 = rss_kib();
    let t = Instant::now();
    m.activate(
        &ModelChoice {
            backend: BackendKind::Gguf,
            target: a.model.to_string_lossy().into_owned(),
            model: a.model.file_name().map(|f| f.to_string_lossy().into_owned()),
            threads: Some(a.threads),
            drive: None,
        },
        None,
    )?;
    let load_ms = t.elapsed().as_secs_f64() * 1e3;
    let ours = in_process(&m, &a)?;
    let rss1 = rss_kib();
    let theirs = baseline(&a)?;
    println!("{:<28} {:>13} {:>16}", "", "first token", "generation");
    let (b_ttft, b_tps) = summary("llama.cpp C API (baseline)", &theirs);
    let (o_ttft, o_tps) = summary("in-process backend", &ours);
    let ratio = |x: f64, y: f64| if y > 0.0 { x / y } else { 0.0 };
    println!(
        "ratio (1.0 = as fast as llama.cpp; goal >= 0.9): tokens/s {:.2}, time to first token {:.2}",
        ratio(o_tps, b_tps),
        ratio(b_ttft, o_ttft)
    );
    if ours.first().map(|r| r.tokens) != theirs.first().map(|r| r.tokens) {
        println!("note: the two generated a different number of pieces/tokens (pieces can join tokens)");
    }

    // The chat's added latency: consult with the proposal schema and the system prompt, minus the backend's time.
    let timed = Timed {
        inner: &m,
        spent: Mutex::default(),
    };
    let mut added = Vec::new();
    let mut inside = Vec::new();
    for q in ["show me the system status"] {
        *timed.spent.lock().unwrap() = Duration::ZERO;
        let t = Instant::now();
        let c = consult(
            &timed,
            q,
            Lang::En,
            cacheos_core::OPERATIONS,
            cacheos_chat::model::is_free_form(q),
            &mut |_, _| {},
        );
        let total = t.elapsed();
        let spent = *timed.spent.lock().unwrap();
        added.push((total - spent).as_secs_f64() * 1e3);
        inside.push(spent.as_secs_f64() * 1e3);
        println!(
            "  consult {q:?}: {:.0} ms in the backend -> {c:?}",
            spent.as_secs_f64() * 1e3
        );
    }
    println!(
        "chat added latency over the backend: median {:.2} ms (backend median {:.0} ms, ratio {:.4})",
        median(added.clone()),
        median(inside.clone()),
        ratio(median(added), median(inside))
    );
    let loaded = m.gguf_loaded();
    println!(
        "RSS: {:.0} MiB before loading, {:.0} MiB with the model loaded and used ({:.0} MiB more; the backend \
         reports {:.0} MiB of weights and cache); load {load_ms:.0} ms",
        rss0 as f64 / 1024.0,
        rss1 as f64 / 1024.0,
        (rss1.saturating_sub(rss0)) as f64 / 1024.0,
        loaded.map(|l| l.memory_bytes as f64 / 1048576.0).unwrap_or(0.0)
    );
    m.unload()?;
    println!(
        "RSS after model.unload: {:.0} MiB; load average after: {}",
        rss_kib() as f64 / 1024.0,
        load()
    );
    Ok(())
}
