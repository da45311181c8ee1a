//! cacheos-chat-train: trains the chat's intent model from the repository's data and writes
//! `crates/chat/model/intent.bin` (deterministic: the same data gives the same bytes). `--cv K` instead reports a
//! K-fold cross-validation on the tuning sets (`data/tuning-*.tsv`): each fold is scored by a model trained
//! without it, so the figure is honest. `--eval` also scores the table and the tuning sets with the full model.

use std::path::Path;

use cacheos_chat::dataset::{appliance_known, table_known};
use cacheos_chat::eval::{evaluate, Report};
use cacheos_chat::train::Corpus;
use cacheos_chat::Engine;

/// How much worse a wrong operation is than a question back, in the threshold search.
const WRONG_OP_COST: f64 = 4.0;

fn wrong_op_cost() -> f64 {
    std::env::var("CHAT_WRONG_OP_COST")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(WRONG_OP_COST)
}

/// The training settings: the defaults, or `CHAT_EPOCHS` / `CHAT_RATE` / `CHAT_L2` for experiments.
fn config() -> cacheos_chat::classifier::TrainConfig {
    let mut c = cacheos_chat::classifier::TrainConfig::default();
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<f32>().ok());
    if let Some(e) = env("CHAT_EPOCHS") {
        c.epochs = e as usize;
    }
    if let Some(r) = env("CHAT_RATE") {
        c.rate = r;
    }
    if let Some(l) = env("CHAT_L2") {
        c.l2 = l;
    }
    c
}

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
    if let Some(text) = args.iter().position(|a| a == "--explain").and_then(|i| args.get(i + 1)) {
        let engine = Engine::new();
        let known = appliance_known();
        print!("{}", engine.explain(text, &cacheos_chat::Session::default(), &known));
        let i = engine.interpret(text, &mut cacheos_chat::Session::default(), &known);
        println!("final: {:?}", cacheos_chat::eval::label(&i));
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--score") {
        // Scores the committed model on other files (data it has not seen), in the appliance's context.
        let engine = Engine::new();
        for path in args[i + 1..].iter().filter(|a| !a.starts_with('-')) {
            let content = std::fs::read_to_string(path).expect("reading the file to score");
            let r = evaluate(
                &engine,
                &cacheos_chat::dataset::parse_tsv(&content),
                &appliance_known(),
                false,
            );
            println!("unseen {path}: {}", r.summary());
            if verbose {
                for f in &r.failures {
                    println!("  MISS {f}");
                }
            }
        }
        return;
    }
    let grid: Vec<cacheos_chat::pipeline::Thresholds> = if args.iter().any(|a| a == "--grid") {
        let mut g = Vec::new();
        for sure in [0.4f32, 0.5, 0.6, 0.7, 0.8, 0.9] {
            for none in [0.35f32, 0.5, 0.65] {
                for keep in [0.02f32, 0.1, 0.3, 1.1] {
                    for margin in [0.0f32, 0.2, 0.4, 0.6] {
                        for agree in [0.0f32, 0.1, 0.2, 0.3] {
                            g.push(cacheos_chat::pipeline::Thresholds {
                                sure,
                                none,
                                keep,
                                offer: 0.1,
                                margin,
                                agree,
                            });
                        }
                    }
                }
            }
        }
        g
    } else {
        vec![cacheos_chat::pipeline::THRESHOLDS]
    };
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
        let mut per: Vec<Vec<Report>> = vec![vec![Report::default(); corpus.sources.len()]; grid.len()];
        for fold in 0..k {
            let skip = |si: usize, ri: usize| tuning.contains(&si) && group[si][ri] % k == fold;
            let (model, _) = corpus.train_with(config(), &skip);
            let mut engine = Engine::with_model(model);
            for (gi, th) in grid.iter().enumerate() {
                engine.thresholds = *th;
                for &si in &tuning {
                    let ex: Vec<_> = corpus.sources[si]
                        .examples
                        .iter()
                        .enumerate()
                        .filter(|(ri, _)| skip(si, *ri))
                        .map(|(_, e)| e.clone())
                        .collect();
                    let r = evaluate(&engine, &ex, &appliance_known(), false);
                    if verbose && grid.len() == 1 {
                        for e in &ex {
                            if r.failures.iter().any(|f| f.starts_with(&format!("{:?}:", e.text))) {
                                let x = engine.explain(&e.text, &cacheos_chat::Session::default(), &appliance_known());
                                let x: Vec<&str> = x.lines().filter(|l| !l.contains(" [")).collect();
                                println!("  EXPLAIN {:?} want {}: {}", e.text, e.expected, x.join(" | "));
                            }
                        }
                    }
                    per[gi][si].add(&r);
                }
            }
        }
        if grid.len() > 1 {
            let mut rows: Vec<(f64, String)> = grid
                .iter()
                .zip(&per)
                .map(|(th, p)| {
                    let mut all = Report::default();
                    for &si in &tuning {
                        all.add(&p[si]);
                    }
                    // Right minus the weighted wrong operations: a wrong action costs more than a question.
                    (
                        all.pct(all.correct) - wrong_op_cost() * all.pct(all.wrong_op),
                        format!("{th:?}: {}", all.summary()),
                    )
                })
                .collect();
            rows.sort_by(|a, b| b.0.total_cmp(&a.0));
            for (score, r) in rows.iter().take(12) {
                println!("{score:.1} {r}");
            }
            return;
        }
        let per = &per[0];
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
