//! The retrieval evaluation on the project's set: indexes the guide, the evaluation documents and the man page,
//! asks every question of `eval/questions.tsv`, prints Recall@5, section Recall@5, nDCG@10 and the "nothing found"
//! rates per language, and fails when Recall@5 (BM25 alone) is below 0.9 overall or for either language.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use cacheos_core::kb::KnowledgeBase;
use cacheos_kb::eval::{corpus, kb_rank, line, questions, score};
use cacheos_kb::{KbConfig, TantivyKb};

#[test]
fn recall_at_5_is_at_least_0_9_in_german_and_english() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let t = tempfile::tempdir().unwrap();
    let kb = TantivyKb::open(t.path(), KbConfig::default()).unwrap();
    let stop = AtomicBool::new(false);
    let mut docs = 0;
    for (name, root) in corpus(&repo) {
        let r = kb.index(&name, &root, None, &mut |_| {}, &stop).unwrap();
        docs += r.indexed;
    }
    assert!(docs >= 50, "the set has {docs} documents; at least 50 are needed");
    let qs = questions(&repo.join("crates/kb/eval/questions.tsv")).unwrap();
    assert!(qs.len() >= 150, "{} questions", qs.len());
    let verbose = std::env::var_os("KB_EVAL_VERBOSE").is_some();
    let mut rank = |q: &cacheos_kb::eval::Question| {
        let (hits, found) = kb_rank(&kb, q);
        if verbose {
            let docs: Vec<&str> = hits.iter().map(|h| h.doc.as_str()).take(3).collect();
            let ok = q.expected.is_empty() || docs.iter().any(|d| q.expected.iter().any(|e| e == d));
            println!(
                "{} {} {:?} -> {:?} found={found}",
                if ok { "ok  " } else { "MISS" },
                q.lang,
                q.text,
                docs
            );
        }
        (hits, found)
    };
    let all: Vec<_> = qs.iter().collect();
    let de: Vec<_> = qs.iter().filter(|q| q.lang == "de").collect();
    let en: Vec<_> = qs.iter().filter(|q| q.lang == "en").collect();
    let (s_all, s_de, s_en) = (score(&all, &mut rank), score(&de, &mut rank), score(&en, &mut rank));
    println!("kb eval over {docs} documents, {} questions (BM25 only):", qs.len());
    println!("{}", line("all", &s_all));
    println!("{}", line("de", &s_de));
    println!("{}", line("en", &s_en));
    // How the "nothing found" threshold of kb.ask trades off (the best passage's IDF-weighted coverage).
    let best: Vec<(bool, String, f32)> = qs
        .iter()
        .map(|q| {
            let c = kb
                .search(&q.text, 8)
                .unwrap()
                .first()
                .map(|p| p.coverage)
                .unwrap_or(0.0);
            (q.expected.is_empty(), q.lang.clone(), c)
        })
        .collect();
    for th in [0.3f32, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6] {
        let rate = |none: bool, lang: &str| {
            let sel: Vec<_> = best
                .iter()
                .filter(|(n, l, _)| *n == none && (lang.is_empty() || l == lang))
                .collect();
            let ok = sel
                .iter()
                .filter(|(_, _, c)| if none { *c < th } else { *c >= th })
                .count();
            ok as f64 / sel.len().max(1) as f64
        };
        println!(
            "threshold {th:.2}: found when answerable {:.3} (de {:.3}, en {:.3}), \"nothing found\" correct {:.3}",
            rate(false, ""),
            rate(false, "de"),
            rate(false, "en"),
            rate(true, "")
        );
    }
    assert!(s_all.recall_at_5 >= 0.9, "{s_all:?}");
    assert!(s_de.recall_at_5 >= 0.9, "{s_de:?}");
    assert!(s_en.recall_at_5 >= 0.9, "{s_en:?}");
}
