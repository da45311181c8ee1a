//! cacheos-bench-chat: the chat's understanding, measured against baselines in the same run. Accuracy of the
//! pipeline (parser + classifier) against the parser alone (the old rule engine) on the utterance table and on the
//! held-out sets (`crates/chat/tests/heldout{,2}/{de,en}.tsv`, aggregates only: right, wrong operation, asked), the
//! committed model's size and load time, and interpretation latency p50/p99 over the whole utterance table (German
//! and English, with session context where the table continues a conversation) against plain lowercasing and
//! whitespace tokenising of the same texts, the least any text front end does. No daemon.

use std::hint::black_box;
use std::time::{Duration, Instant};

#[path = "../../chat/tests/fixture/mod.rs"]
mod fixture;
use cacheos_chat::dataset::{appliance_known, parse_tsv};
use cacheos_chat::eval::{evaluate, Report};
use cacheos_chat::{Engine, Session};
use clap::Parser;
use fixture::known;

/// Interpretation latency of the chat engine.
#[derive(Debug, Parser)]
struct Args {
    /// Passes over the whole table (each pass interprets every utterance once).
    #[arg(long, default_value_t = 30)]
    rounds: usize,
}

const TABLE: &str = include_str!("../../chat/tests/utterances.tsv");

/// (continues the previous line's session, text)
fn utterances() -> Vec<(bool, &'static str)> {
    TABLE
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (expected, text) = l.split_once('\t')?;
            Some((expected.starts_with('+'), text))
        })
        .collect()
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Accuracy figures: the table (strict, in its own context) and the held-out sets (in the appliance's context).
fn accuracy(engine: &Engine, baseline: &Engine) {
    let table = parse_tsv(TABLE);
    let row = |what: &str, a: &Report, b: &Report| {
        println!(
            "{what:<22} {:>6.1} %  {:>6.1} %  {:>6.1} %   {:>6.1} %  {:>6.1} %",
            a.pct(a.correct),
            a.pct(a.wrong_op),
            a.pct(a.asked),
            b.pct(b.correct),
            b.pct(b.wrong_op)
        );
    };
    println!("                        pipeline: right  wrong-op  asked   parser alone: right  wrong-op");
    row(
        &format!("table ({})", table.len()),
        &evaluate(engine, &table, &known(), true),
        &evaluate(baseline, &table, &known(), true),
    );
    let tests = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../chat/tests");
    for (set, lang) in [
        ("heldout", "de"),
        ("heldout", "en"),
        ("heldout2", "de"),
        ("heldout2", "en"),
    ] {
        // Only aggregate figures: the held-out lines are never printed.
        let Ok(content) = std::fs::read_to_string(tests.join(set).join(format!("{lang}.tsv"))) else {
            println!("{set} {lang}: not present");
            continue;
        };
        let ex = parse_tsv(&content);
        row(
            &format!("{set} {lang} ({})", ex.len()),
            &evaluate(engine, &ex, &appliance_known(), false),
            &evaluate(baseline, &ex, &appliance_known(), false),
        );
    }
}

/// The committed model's size and the time to read it (best of many), as on the first message after start.
fn model_load() {
    let bytes = cacheos_chat::pipeline::MODEL_BYTES;
    let mut best = Duration::MAX;
    let mut classes = 0;
    for _ in 0..20 {
        let t = Instant::now();
        let m = cacheos_chat::classifier::Model::from_bytes(black_box(bytes));
        best = best.min(t.elapsed());
        classes = m.map(|m| m.classes.len()).unwrap_or(0);
    }
    println!(
        "model: {} bytes ({:.0} KiB), {classes} classes, load {:.2} ms (best of 20)",
        bytes.len(),
        bytes.len() as f64 / 1024.0,
        best.as_secs_f64() * 1e3
    );
}

fn main() {
    let args = Args::parse();
    let engine = Engine::new();
    let known = known();
    accuracy(&engine, &Engine::rules_only());
    model_load();
    let table = utterances();
    let (mut engine_t, mut base_t) = (Vec::new(), Vec::new());
    // Per utterance, its fastest time: the slowest of those are the texts that cost the engine most.
    let mut best = vec![Duration::MAX; table.len()];
    // A warm-up pass, then the measured ones; engine and baseline alternate per utterance so both see the same
    // machine state.
    for round in 0..=args.rounds {
        let mut session = Session::default();
        for (i, (continues, text)) in table.iter().enumerate() {
            if !continues {
                session = Session::default();
            }
            let t = Instant::now();
            black_box(engine.interpret(black_box(text), &mut session, &known));
            let e = t.elapsed();
            let t = Instant::now();
            let lower = black_box(text).to_lowercase();
            black_box(lower.split_whitespace().collect::<Vec<_>>());
            let b = t.elapsed();
            if round > 0 {
                best[i] = best[i].min(e);
                engine_t.push(e);
                base_t.push(b);
            }
        }
    }
    engine_t.sort();
    base_t.sort();
    let (e50, e99) = (pct(&engine_t, 0.5), pct(&engine_t, 0.99));
    let (b50, b99) = (pct(&base_t, 0.5), pct(&base_t, 0.99));
    println!(
        "chat interpretation over {} utterances x {} rounds ({} samples each)",
        table.len(),
        args.rounds,
        engine_t.len()
    );
    println!("                                     p50 (us)   p99 (us)    max (us)");
    println!(
        "Engine::interpret                  {:>9.1}  {:>9.1}  {:>10.1}",
        us(e50),
        us(e99),
        us(*engine_t.last().unwrap_or(&Duration::ZERO))
    );
    println!(
        "baseline: lowercase + tokenise     {:>9.2}  {:>9.2}  {:>10.1}",
        us(b50),
        us(b99),
        us(*base_t.last().unwrap_or(&Duration::ZERO))
    );
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-9);
    println!(
        "ratio engine/baseline              {:>9.0}x {:>9.0}x",
        ratio(e50, b50),
        ratio(e99, b99)
    );
    let mut slow: Vec<(Duration, &str)> = best.iter().copied().zip(table.iter().map(|(_, t)| *t)).collect();
    slow.sort_by_key(|s| std::cmp::Reverse(s.0));
    for (d, t) in slow.iter().take(3) {
        println!("  slowest (best of {} rounds): {:>7.1} us  {t:?}", args.rounds, us(*d));
    }
}
