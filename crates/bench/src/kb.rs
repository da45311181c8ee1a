//! `cacheos-bench-kb`: the knowledge base against what a user would do instead, on the evaluation set
//! (`crates/kb/eval`): ripgrep over the same files with the question's words (files ranked by matching lines) and a
//! `man -k`-style keyword lookup over document names and titles. Prints Recall@5, nDCG@10 and the ratios, index
//! throughput (MB/s of files read), index size and query latency p50/p99. Pure: no daemon.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::Context;
use cacheos_core::kb::KnowledgeBase;
use cacheos_kb::analysis::split_words;
use cacheos_kb::eval::{corpus, kb_rank, questions, score, Hit, Question, Scores};
use cacheos_kb::{KbConfig, TantivyKb};

/// Every regular file below `root` (no links), relative paths.
fn files(root: &Path) -> Vec<String> {
    fn go(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                go(base, &e.path(), out);
            } else if ft.is_file() {
                out.push(e.path().strip_prefix(base).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    go(root, root, &mut out);
    out.sort();
    out
}

/// The words a user would type from the question: every word of three letters or more.
fn words(q: &str) -> Vec<String> {
    split_words(q)
        .into_iter()
        .map(|(_, _, w)| w)
        .filter(|w| w.chars().count() >= 3)
        .collect()
}

/// ripgrep with the question's words: files ranked by the number of matching lines (case-insensitive, fixed
/// strings, any word); gzip files searched with `-z` as a user would.
fn ripgrep(sources: &[(String, PathBuf)], q: &Question) -> (Vec<Hit>, bool) {
    let mut scored: Vec<(u64, String)> = Vec::new();
    for (name, root) in sources {
        let mut cmd = Command::new("rg");
        cmd.args(["--count", "-i", "-F", "-z", "--no-messages"]);
        for w in words(&q.text) {
            cmd.arg("-e").arg(w);
        }
        cmd.arg(".").current_dir(root);
        let Ok(out) = cmd.output() else { continue };
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some((path, n)) = line.rsplit_once(':') {
                let path = path.trim_start_matches("./");
                scored.push((n.parse().unwrap_or(0), format!("{name}:{path}")));
            }
        }
    }
    scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let found = !scored.is_empty();
    (
        scored.into_iter().map(|(_, doc)| Hit { doc, heading: None }).collect(),
        found,
    )
}

/// The whatis line of a document: its file name and its title (first Markdown/HTML heading, man NAME line, or
/// first line).
fn whatis(root: &Path, rel: &str) -> String {
    let raw = std::fs::read(root.join(rel)).unwrap_or_default();
    let text = if rel.ends_with(".gz") {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&raw[..]), &mut s);
        s
    } else {
        String::from_utf8_lossy(&raw).into_owned()
    };
    let mut lines = text.lines();
    let title = if text.starts_with(".TH") {
        text.lines()
            .skip_while(|l| !l.starts_with(".SH NAME"))
            .nth(1)
            .unwrap_or("")
            .to_string()
    } else {
        lines
            .find(|l| l.starts_with('#') || l.contains("<h1>") || !l.trim().is_empty())
            .unwrap_or("")
            .to_string()
    };
    format!("{} {}", rel.replace(['/', '-', '_', '.'], " "), title).to_lowercase()
}

/// `man -k`: documents whose name or title contains a question word, ranked by how many.
fn apropos(index: &[(String, String)], q: &Question) -> (Vec<Hit>, bool) {
    let ws = words(&q.text);
    let mut scored: Vec<(usize, &str)> = index
        .iter()
        .map(|(doc, line)| (ws.iter().filter(|w| line.contains(w.as_str())).count(), doc.as_str()))
        .filter(|(n, _)| *n > 0)
        .collect();
    scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    let found = !scored.is_empty();
    (
        scored
            .into_iter()
            .map(|(_, d)| Hit {
                doc: d.to_string(),
                heading: None,
            })
            .collect(),
        found,
    )
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn row(label: &str, s: &Scores, base: Option<&Scores>) {
    let ratio = |a: f64, b: f64| {
        if b > 0.0 {
            format!("{:.2}x", a / b)
        } else {
            "inf".into()
        }
    };
    let extra = base
        .map(|b| {
            format!(
                "  (kb/this: Recall@5 {}, nDCG@10 {})",
                ratio(b.recall_at_5, s.recall_at_5),
                ratio(b.ndcg_at_10, s.ndcg_at_10)
            )
        })
        .unwrap_or_default();
    println!(
        "  {label:<22} Recall@5 {:.3}  nDCG@10 {:.3}  \"nothing found\" correct {:.3}{extra}",
        s.recall_at_5, s.ndcg_at_10, s.none_correct
    );
}

fn main() -> anyhow::Result<()> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize()?;
    let sources = corpus(&repo);
    let qs = questions(&repo.join("crates/kb/eval/questions.tsv")).context("questions.tsv")?;
    let tmp = tempfile::tempdir()?;
    let kb = TantivyKb::open(tmp.path(), KbConfig::default())?;
    let stop = AtomicBool::new(false);
    let file_bytes: u64 = sources
        .iter()
        .flat_map(|(_, root)| files(root).into_iter().map(move |f| root.join(f)))
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let started = Instant::now();
    let mut docs = 0;
    for (name, root) in &sources {
        docs += kb.index(name, root, None, &mut |_| {}, &stop)?.indexed;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "cacheos-bench-kb: {docs} documents, {} questions (2-core machine, shared with other builds)",
        qs.len()
    );
    println!(
        "  index: {:.2} MB of files in {:.3} s = {:.2} MB/s; index size {:.2} MB",
        file_bytes as f64 / 1e6,
        secs,
        file_bytes as f64 / 1e6 / secs,
        kb.disk_bytes() as f64 / 1e6
    );

    // Latency: every question once as a warm-up, then five rounds.
    for q in &qs {
        kb.search(&q.text, 20)?;
    }
    let mut lat = Vec::new();
    for _ in 0..5 {
        for q in &qs {
            let t = Instant::now();
            kb.search(&q.text, 20)?;
            lat.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    println!(
        "  query (kb.search, 20 passages): p50 {:.3} ms, p99 {:.3} ms",
        pct(&mut lat, 0.5),
        pct(&mut lat, 0.99)
    );

    let whatis_index: Vec<(String, String)> = sources
        .iter()
        .flat_map(|(name, root)| {
            files(root)
                .into_iter()
                .map(move |f| (format!("{name}:{f}"), whatis(root, &f)))
        })
        .collect();
    for (label, filter) in [("all", None), ("de", Some("de")), ("en", Some("en"))] {
        let sel: Vec<&Question> = qs.iter().filter(|q| filter.is_none_or(|l| q.lang == l)).collect();
        let k = score(&sel, &mut |q| kb_rank(&kb, q));
        let r = score(&sel, &mut |q| ripgrep(&sources, q));
        let a = score(&sel, &mut |q| apropos(&whatis_index, q));
        println!("{label}:");
        row("kb (BM25)", &k, None);
        row("ripgrep, question words", &r, Some(&k));
        row("man -k style lookup", &a, Some(&k));
    }
    let mut rg_lat = Vec::new();
    for q in qs.iter().take(40) {
        let t = Instant::now();
        ripgrep(&sources, q);
        rg_lat.push(t.elapsed().as_secs_f64() * 1e3);
    }
    println!(
        "  ripgrep per question (both sources): p50 {:.2} ms, p99 {:.2} ms",
        pct(&mut rg_lat, 0.5),
        pct(&mut rg_lat, 0.99)
    );
    Ok(())
}
