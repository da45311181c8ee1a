//! cacheos-chat-train: trains the chat's intent model from the repository's data and writes
//! `crates/chat/model/intent.bin` (deterministic: the same data gives the same bytes). `--cv K` instead reports a
//! K-fold cross-validation on the tuning sets (`data/tuning-*.tsv`): each fold is scored by a model trained
//! without it, so the figure is honest. `--eval` also scores the table and the tuning sets with the full model.

use std::path::Path;

use cacheos_chat::dataset::{appliance_known, table_known};
use cacheos_chat::eval::{evaluate, Report};
use cacheos_chat::train::Corpus;
use cacheos_chat::Engine;

fn groups(examples: &[cacheos_chat::dataset::Example]) -> Vec<usize> {
    let mut g = 0usize;
    examples
        .iter()
        .enumerate()
        .map(|(i, e)| {
            if i > 0 && !e.cont {
                g += 1;
            }
            g
        })
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let corpus = Corpus::load(dir).expect("reading crates/chat/data and tests/utterances.tsv");
    let verbose = args.iter().any(|a| a == "-v" || a == "--verbose");
    if let Some(k) = args
        .iter()
        .position(|a| a == "--cv")
        .and_then(|i| args.get(i + 1))
        .and_then(|k| k.parse::<usize>().ok())
    {
        let tuning: Vec<usize> = (0..corpus.sources.len())
            .filter(|&i| corpus.sources[i].name.starts_with("data/tuning"))
            .collect();
        let group: Vec<Vec<usize>> = corpus.sources.iter().map(|s| groups(&s.examples)).collect();
        let mut per: Vec<Report> = vec![Report::default(); corpus.sources.len()];
        for fold in 0..k {
            let skip = |si: usize, ri: usize| tuning.contains(&si) && group[si][ri] % k == fold;
            let (model, _) = corpus.train(&skip);
            let engine = Engine::with_model(model);
            for &si in &tuning {
                let ex: Vec<_> = corpus.sources[si]
                    .examples
                    .iter()
                    .enumerate()
                    .filter(|(ri, _)| skip(si, *ri))
                    .map(|(_, e)| e.clone())
                    .collect();
                per[si].add(&evaluate(&engine, &ex, &appliance_known(), false));
            }
        }
        let mut all = Report::default();
        for &si in &tuning {
            println!("cv{k} {}: {}", corpus.sources[si].name, per[si].summary());
            if verbose {
                for f in &per[si].failures {
                    println!("  MISS {f}");
                }
            }
            all.add(&per[si]);
        }
        println!("cv{k} tuning total: {}", all.summary());
        return;
    }
    if args.iter().any(|a| a == "--baseline") {
        let engine = Engine::rules_only();
        for s in &corpus.sources {
            if s.name == "generated" {
                continue;
            }
            let known = if s.table_context {
                table_known()
            } else {
                appliance_known()
            };
            let r = evaluate(&engine, &s.examples, &known, s.table_context);
            println!("rules only {}: {}", s.name, r.summary());
            if verbose {
                for f in &r.failures {
                    println!("  MISS {f}");
                }
            }
        }
        return;
    }
    let t = std::time::Instant::now();
    let (model, notes) = corpus.train(&|_, _| false);
    for n in &notes {
        println!("note: {n}");
    }
    let bytes = model.to_bytes();
    let out = dir.join("model/intent.bin");
    std::fs::write(&out, &bytes).expect("writing the model");
    println!(
        "trained {} classes, {} features from {} sources in {:.1} s: {} ({} bytes, data {:016x})",
        model.classes.len(),
        model.buckets.len(),
        corpus.sources.len(),
        t.elapsed().as_secs_f64(),
        out.display(),
        bytes.len(),
        model.data_hash
    );
    if args.iter().any(|a| a == "--eval") {
        let engine = Engine::with_model(model);
        for s in &corpus.sources {
            if s.name == "generated" {
                continue;
            }
            let known = if s.table_context {
                table_known()
            } else {
                appliance_known()
            };
            let r = evaluate(&engine, &s.examples, &known, s.table_context);
            println!("in-sample {}: {}", s.name, r.summary());
            if verbose {
                for f in &r.failures {
                    println!("  MISS {f}");
                }
            }
        }
    }
}
