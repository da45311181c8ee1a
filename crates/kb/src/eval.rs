//! The evaluation of retrieval quality on the project's set (`crates/kb/eval/questions.tsv` over the user guide,
//! `crates/kb/eval/docs` and the cacheosctl man page): Recall@5 (document and section), nDCG@10, and how often
//! `kb.ask` correctly says that nothing was found. Used by the test in `tests/eval.rs` and by
//! `cacheos-bench-kb`, which scores its baselines with the same functions.

use std::path::{Path, PathBuf};

use cacheos_core::kb::{extractive_answer, KnowledgeBase};

/// One question of the set.
#[derive(Debug, Clone)]
pub struct Question {
    /// `de` or `en`.
    pub lang: String,
    /// The question.
    pub text: String,
    /// Relevant documents as `source:path`; empty when the answer is in no document.
    pub expected: Vec<String>,
    /// A substring of the heading the answer is under, when it matters.
    pub section: Option<String>,
}

/// The sources of the evaluation corpus below the repository root: (source name, directory).
pub fn corpus(repo: &Path) -> Vec<(String, PathBuf)> {
    vec![
        ("guide".into(), repo.join("docs/guide")),
        ("eval".into(), repo.join("crates/kb/eval/docs")),
        ("man".into(), repo.join("docs/man")),
    ]
}

/// Reads `questions.tsv`.
pub fn questions(path: &Path) -> std::io::Result<Vec<Question>> {
    let text = std::fs::read_to_string(path)?;
    Ok(text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f.len() == 4).then(|| Question {
                lang: f[0].into(),
                text: f[1].into(),
                expected: if f[2] == "-" {
                    vec![]
                } else {
                    f[2].split('|').map(str::to_string).collect()
                },
                section: (f[3] != "-").then(|| f[3].to_string()),
            })
        })
        .collect())
}

/// A ranked hit: the document (`source:path`) and, when known, the heading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// `source:path`.
    pub doc: String,
    /// Heading of the passage.
    pub heading: Option<String>,
}

/// Figures for one group of questions.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Scores {
    /// Answerable questions.
    pub answerable: usize,
    /// Questions without an answer in the corpus.
    pub unanswerable: usize,
    /// Share of answerable questions with a relevant document among the first five documents.
    pub recall_at_5: f64,
    /// Like `recall_at_5`, but the hit must also be in the expected section (when one is given).
    pub section_recall_at_5: f64,
    /// Mean nDCG@10 over answerable questions (binary relevance by document).
    pub ndcg_at_10: f64,
    /// Share of unanswerable questions where the answer said nothing was found.
    pub none_correct: f64,
    /// Share of answerable questions where the answer did not say nothing was found.
    pub found_correct: f64,
}

/// Scores `rank` (hits best first, passages of one document may repeat) and `found` (whether an answer would be
/// given) over `qs`.
pub fn score(qs: &[&Question], rank: &mut dyn FnMut(&Question) -> (Vec<Hit>, bool)) -> Scores {
    let mut s = Scores::default();
    let (mut r5, mut sr5, mut ndcg, mut none_ok, mut found_ok) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for q in qs {
        let (hits, found) = rank(q);
        if q.expected.is_empty() {
            s.unanswerable += 1;
            if !found {
                none_ok += 1.0;
            }
            continue;
        }
        s.answerable += 1;
        if found {
            found_ok += 1.0;
        }
        // Documents in order of their first passage.
        let mut docs: Vec<&str> = Vec::new();
        for h in &hits {
            if !docs.contains(&h.doc.as_str()) {
                docs.push(&h.doc);
            }
        }
        let relevant = |d: &str| q.expected.iter().any(|e| e == d);
        if docs.iter().take(5).any(|d| relevant(d)) {
            r5 += 1.0;
        }
        let top5: Vec<&str> = docs.iter().take(5).copied().collect();
        let in_section = hits.iter().any(|h| {
            relevant(&h.doc)
                && top5.contains(&h.doc.as_str())
                && match &q.section {
                    None => true,
                    Some(sec) => h
                        .heading
                        .as_deref()
                        .is_some_and(|hd| hd.to_lowercase().contains(&sec.to_lowercase())),
                }
        });
        if in_section {
            sr5 += 1.0;
        }
        let dcg: f64 = docs
            .iter()
            .take(10)
            .enumerate()
            .filter(|(_, d)| relevant(d))
            .map(|(i, _)| 1.0 / ((i + 2) as f64).log2())
            .sum();
        let ideal: f64 = (0..q.expected.len().min(10))
            .map(|i| 1.0 / ((i + 2) as f64).log2())
            .sum();
        ndcg += dcg / ideal;
    }
    let a = s.answerable.max(1) as f64;
    s.recall_at_5 = r5 / a;
    s.section_recall_at_5 = sr5 / a;
    s.ndcg_at_10 = ndcg / a;
    s.found_correct = found_ok / a;
    s.none_correct = none_ok / s.unanswerable.max(1) as f64;
    s
}

/// Ranks a question with the knowledge base (20 passages) and decides like `kb.ask`.
pub fn kb_rank(kb: &dyn KnowledgeBase, q: &Question) -> (Vec<Hit>, bool) {
    let passages = kb.search(&q.text, 20).unwrap_or_default();
    let hits = passages
        .iter()
        .map(|p| Hit {
            doc: format!("{}:{}", p.citation.source, p.citation.path),
            heading: p.citation.heading.clone(),
        })
        .collect();
    let found = extractive_answer(&q.text, passages.into_iter().take(8).collect()).found;
    (hits, found)
}

/// Prints one line of figures.
pub fn line(label: &str, s: &Scores) -> String {
    format!(
        "{label:<8} answerable {:>3}  Recall@5 {:.3}  section Recall@5 {:.3}  nDCG@10 {:.3}  \
         found when answerable {:.3}  | unanswerable {:>2}  \"nothing found\" correct {:.3}",
        s.answerable,
        s.recall_at_5,
        s.section_recall_at_5,
        s.ndcg_at_10,
        s.found_correct,
        s.unanswerable,
        s.none_correct
    )
}
