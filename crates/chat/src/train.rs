//! Training of the intent model from the repository's data: the utterance table (`tests/utterances.tsv`, in its
//! own context), every `data/*.tsv` (operation families, the tuning sets, out-of-scope examples; written for the
//! appliance context) and the generator's variations (`data/templates.tsv`). Rows whose operation the core does
//! not know are skipped with a note, so a family's data may land before its operations.

use std::path::Path;

use crate::classifier::{features, train, Model, TrainConfig};
use crate::dataset::{appliance_known, fingerprint, generate, label, parse_tsv, table_known, Source};
use crate::pipeline::classifier_tokens;

/// Bump when the trainer or the features change in a way that changes the model.
pub const TRAINER_VERSION: u32 = 4;

/// Weight of a generated variation relative to a written request.
pub const GENERATED_WEIGHT: f32 = 0.5;

/// The training data as read from the crate directory.
#[derive(Debug, Clone, Default)]
pub struct Corpus {
    /// The sources.
    pub sources: Vec<Source>,
    /// (relative path, content) of every file that went in, for the fingerprint.
    pub files: Vec<(String, String)>,
}

impl Corpus {
    /// Reads the training data below `crate_dir` (`crates/chat`).
    pub fn load(crate_dir: &Path) -> std::io::Result<Corpus> {
        let mut c = Corpus::default();
        let table = std::fs::read_to_string(crate_dir.join("tests/utterances.tsv"))?;
        c.sources.push(Source {
            name: "tests/utterances.tsv".into(),
            examples: parse_tsv(&table),
            table_context: true,
        });
        c.files.push(("tests/utterances.tsv".into(), table));
        let mut names: Vec<String> = std::fs::read_dir(crate_dir.join("data"))?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tsv"))
            .collect();
        names.sort();
        for n in names {
            let content = std::fs::read_to_string(crate_dir.join("data").join(&n))?;
            let path = format!("data/{n}");
            if n == "templates.tsv" {
                c.sources.push(Source {
                    name: "generated".into(),
                    examples: generate(&content),
                    table_context: false,
                });
            } else {
                c.sources.push(Source {
                    name: path.clone(),
                    examples: parse_tsv(&content),
                    table_context: false,
                });
            }
            c.files.push((path, content));
        }
        Ok(c)
    }

    /// The fingerprint of this data (stored in the model; a different one means the model is stale).
    pub fn fingerprint(&self) -> u64 {
        fingerprint(&self.files, TRAINER_VERSION)
    }

    /// Trains a model on every row except those `skip(source index, row index)` leaves out. Returns it with the
    /// notes about skipped rows.
    pub fn train(&self, skip: &dyn Fn(usize, usize) -> bool) -> (Model, Vec<String>) {
        self.train_with(TrainConfig::default(), skip)
    }

    /// [`Corpus::train`] with other training settings (for experiments; the committed model uses the defaults).
    pub fn train_with(&self, cfg: TrainConfig, skip: &dyn Fn(usize, usize) -> bool) -> (Model, Vec<String>) {
        let (table, appliance) = (table_known(), appliance_known());
        let rules = crate::Engine::rules_only();
        let mut notes = Vec::new();
        let mut rows: Vec<(Vec<String>, String, f32)> = Vec::new();
        for (si, s) in self.sources.iter().enumerate() {
            let known = if s.table_context { &table } else { &appliance };
            let weight = if s.name == "generated" { GENERATED_WEIGHT } else { 1.0 };
            let mut unknown = std::collections::BTreeMap::<String, usize>::new();
            for (ri, ex) in s.examples.iter().enumerate() {
                if skip(si, ri) {
                    continue;
                }
                let Some(l) = label(&ex.expected) else { continue };
                if l.contains('.') && cacheos_core::Operation::lookup(l).is_none() {
                    *unknown.entry(l.to_string()).or_default() += 1;
                    continue;
                }
                let ents = crate::entities::Entities::find(&ex.text, known, &crate::Session::default());
                let mut toks = ents.placeholders();
                // The parser was written from the table, so it is always right there: its reading would teach
                // blind trust. Elsewhere the classifier learns how far the parser can be trusted.
                if !s.table_context || std::env::var("CHAT_RULE_TABLE").is_ok() {
                    toks = classifier_tokens(&rules, &ents, known);
                }
                rows.push((toks, l.to_string(), weight));
            }
            for (op, n) in unknown {
                notes.push(format!(
                    "{}: {n} rows of {op} skipped (the core has no such operation yet)",
                    s.name
                ));
            }
        }
        let mut classes: Vec<String> = rows.iter().map(|r| r.1.clone()).collect();
        classes.sort();
        classes.dedup();
        let examples: Vec<(Vec<u32>, usize, f32)> = rows
            .iter()
            .map(|(toks, l, w)| (features(toks), classes.binary_search(l).unwrap_or(0), *w))
            .collect();
        (train(&examples, classes, cfg, self.fingerprint()), notes)
    }
}
