//! CacheOS knowledge base: [`TantivyKb`], the tantivy index behind the core's [`KnowledgeBase`] trait.
//!
//! One index holds every source's passages. Each passage is analysed twice (German: compound parts + German
//! stems; English: English stems) into a body and a heading field per language, and searched with BM25 over all
//! four, headings boosted. A manifest (`sources.json`) remembers, per source, every file's size, mtime and SHA-256,
//! so a new run reads only what changed and removes what is gone. Files are opened below the root with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` and symbolic links are never followed (see [`walk`]).

pub mod analysis;
pub mod chunk;
pub mod eval;
pub mod read;
pub mod walk;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use cacheos_core::kb::{
    Citation, IndexProgress, IndexReport, KbError, KbSource, KbSourceState, KnowledgeBase, Passage,
};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, BoostQuery, Occur, Query, TermQuery};
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, Value, FAST, INDEXED, STORED, STRING,
};
use tantivy::{doc, Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

use analysis::Analyzers;

/// Settings of the index.
#[derive(Debug, Clone)]
pub struct KbConfig {
    /// Files larger than this are read only up to it (the rest is not indexed).
    pub max_file_bytes: u64,
    /// Memory for the index writer.
    pub writer_memory: usize,
}

impl Default for KbConfig {
    fn default() -> Self {
        Self {
            max_file_bytes: 64 << 20,
            writer_memory: 48 << 20,
        }
    }
}

#[derive(Clone, Copy)]
struct Fields {
    key: Field,
    source: Field,
    path: Field,
    heading: Field,
    page: Field,
    line_start: Field,
    line_end: Field,
    text: Field,
    body_de: Field,
    body_en: Field,
    head_de: Field,
    head_en: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let analysed = |name: &str| {
        TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(name)
                .set_index_option(IndexRecordOption::WithFreqs),
        )
    };
    let f = Fields {
        key: b.add_text_field("key", STRING),
        source: b.add_text_field("source", STRING | STORED),
        path: b.add_text_field("path", STORED),
        heading: b.add_text_field("heading", STORED),
        page: b.add_u64_field("page", STORED),
        line_start: b.add_u64_field("line_start", STORED | INDEXED | FAST),
        line_end: b.add_u64_field("line_end", STORED),
        text: b.add_text_field("text", STORED),
        body_de: b.add_text_field("body_de", analysed(analysis::DE)),
        body_en: b.add_text_field("body_en", analysed(analysis::EN)),
        head_de: b.add_text_field("head_de", analysed(analysis::DE)),
        head_en: b.add_text_field("head_en", analysed(analysis::EN)),
    };
    (b.build(), f)
}

/// What the manifest keeps per file.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct FileEntry {
    size: u64,
    mtime_ns: i128,
    sha256: String,
    chunks: u64,
    bytes: u64,
}

/// What the manifest keeps per source.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SourceEntry {
    root: String,
    #[serde(default)]
    path: Option<String>,
    state: KbSourceState,
    #[serde(default)]
    error: Option<String>,
    updated_ms: u64,
    skipped: u64,
    files: BTreeMap<String, FileEntry>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Manifest {
    sources: BTreeMap<String, SourceEntry>,
}

/// The tantivy knowledge base in a directory (the appliance: `/var/lib/cacheos/kb`).
pub struct TantivyKb {
    dir: PathBuf,
    config: KbConfig,
    fields: Fields,
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    manifest: Mutex<Manifest>,
    analyzers: Analyzers,
}

fn ix(e: tantivy::TantivyError) -> KbError {
    KbError::Index(e.to_string())
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl TantivyKb {
    /// Opens (or creates) the knowledge base in `dir`.
    pub fn open(dir: &Path, config: KbConfig) -> Result<Self, KbError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| KbError::Io { path, source }
        };
        let index_dir = dir.join("index");
        std::fs::create_dir_all(&index_dir).map_err(io(&index_dir))?;
        let (schema, fields) = schema();
        let mmap = tantivy::directory::MmapDirectory::open(&index_dir).map_err(|e| KbError::Index(e.to_string()))?;
        let index = Index::open_or_create(mmap, schema).map_err(ix)?;
        index.tokenizers().register(analysis::DE, analysis::german());
        index.tokenizers().register(analysis::EN, analysis::english());
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(ix)?;
        let writer = index
            .writer_with_num_threads(1, config.writer_memory.max(15 << 20))
            .map_err(ix)?;
        let mpath = dir.join("sources.json");
        let manifest = match std::fs::read(&mpath) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| KbError::Io {
                path: mpath.clone(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Manifest::default(),
            Err(e) => return Err(KbError::Io { path: mpath, source: e }),
        };
        Ok(Self {
            dir: dir.to_owned(),
            config,
            fields,
            reader,
            writer: Mutex::new(writer),
            manifest: Mutex::new(manifest),
            analyzers: Analyzers::default(),
        })
    }

    /// The analyzers (for coverage and evaluation).
    pub fn analyzers(&self) -> &Analyzers {
        &self.analyzers
    }

    /// Bytes the index and manifest take on disk.
    pub fn disk_bytes(&self) -> u64 {
        fn size(p: &Path) -> u64 {
            match std::fs::symlink_metadata(p) {
                Ok(m) if m.is_dir() => std::fs::read_dir(p)
                    .map(|rd| rd.flatten().map(|e| size(&e.path())).sum())
                    .unwrap_or(0),
                Ok(m) => m.len(),
                Err(_) => 0,
            }
        }
        size(&self.dir)
    }

    fn save_manifest(&self, m: &Manifest) -> Result<(), KbError> {
        let path = self.dir.join("sources.json");
        let tmp = self.dir.join(".sources.json.tmp");
        let bytes = serde_json::to_vec_pretty(m).map_err(|e| KbError::Index(e.to_string()))?;
        std::fs::write(&tmp, bytes).map_err(|source| KbError::Io {
            path: tmp.clone(),
            source,
        })?;
        std::fs::rename(&tmp, &path).map_err(|source| KbError::Io { path, source })
    }

    fn key(source: &str, path: &str) -> String {
        format!("{source}\u{1f}{path}")
    }

    fn commit(&self, writer: &mut IndexWriter) -> Result<(), KbError> {
        writer.commit().map_err(ix)?;
        self.reader.reload().map_err(ix)
    }

    /// Adds one file's passages (after deleting its old ones). Returns (chunks, bytes).
    fn add_file(
        &self,
        writer: &IndexWriter,
        source: &str,
        rel: &str,
        sections: &[read::Section],
    ) -> Result<u64, KbError> {
        let f = self.fields;
        writer.delete_term(Term::from_field_text(f.key, &Self::key(source, rel)));
        let title = rel.rsplit('/').next().unwrap_or(rel).replace(['-', '_', '.'], " ");
        let mut n = 0;
        for c in chunk::chunks(sections) {
            let head = format!("{title} {}", c.heading.as_deref().unwrap_or(""));
            let mut d = doc!(
                f.key => Self::key(source, rel),
                f.source => source,
                f.path => rel,
                f.line_start => u64::from(c.line_start),
                f.line_end => u64::from(c.line_end),
                f.text => c.text.as_str(),
                f.body_de => c.text.as_str(),
                f.body_en => c.text.as_str(),
                f.head_de => head.as_str(),
                f.head_en => head.as_str(),
            );
            if let Some(h) = &c.heading {
                d.add_text(f.heading, h);
            }
            if let Some(p) = c.page {
                d.add_u64(f.page, u64::from(p));
            }
            writer.add_document(d).map_err(ix)?;
            n += 1;
        }
        Ok(n)
    }

    fn build_query(&self, query: &str) -> Option<Box<dyn Query>> {
        let f = self.fields;
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        let mut seen = HashSet::new();
        let mut add = |field: Field, term: &str, boost: f32| {
            if seen.insert((field, term.to_string())) {
                let q = TermQuery::new(Term::from_field_text(field, term), IndexRecordOption::WithFreqs);
                clauses.push((Occur::Should, Box::new(BoostQuery::new(Box::new(q), boost))));
            }
        };
        for t in self.analyzers.de(query) {
            add(f.body_de, &t, 1.0);
            add(f.head_de, &t, 1.5);
        }
        for t in self.analyzers.en(query) {
            add(f.body_en, &t, 1.0);
            add(f.head_en, &t, 1.5);
        }
        if clauses.is_empty() {
            return None;
        }
        Some(Box::new(BooleanQuery::new(clauses)))
    }

    fn passage_of(&self, d: &TantivyDocument, score: f32) -> Passage {
        let f = self.fields;
        let s = |field| d.get_first(field).and_then(|v| v.as_str()).map(str::to_string);
        let u = |field| d.get_first(field).and_then(|v| v.as_u64());
        Passage {
            citation: Citation {
                source: s(f.source).unwrap_or_default(),
                path: s(f.path).unwrap_or_default(),
                heading: s(f.heading),
                page: u(f.page).map(|p| p as u32),
                line_start: u(f.line_start).unwrap_or(0) as u32,
                line_end: u(f.line_end).unwrap_or(0) as u32,
            },
            text: s(f.text).unwrap_or_default(),
            score,
            coverage: 0.0,
            offline: false,
        }
    }
}

impl KnowledgeBase for TantivyKb {
    fn index(
        &self,
        name: &str,
        root: &Path,
        path: Option<&str>,
        progress: &mut dyn FnMut(IndexProgress),
        cancel: &AtomicBool,
    ) -> Result<IndexReport, KbError> {
        let tree = walk::Tree::open(root, path).map_err(|source| KbError::Root {
            path: path.map(|p| root.join(p)).unwrap_or_else(|| root.to_owned()),
            source,
        })?;
        let listing = tree.list(cancel);
        let old = self
            .manifest
            .lock()
            .unwrap()
            .sources
            .get(name)
            .map(|s| s.files.clone())
            .unwrap_or_default();
        let mut report = IndexReport {
            skipped: listing.skipped,
            ..Default::default()
        };
        let mut files = BTreeMap::new();
        let total = listing.files.len() as u64;
        let mut writer = self.writer.lock().unwrap();
        for (i, entry) in listing.files.iter().enumerate() {
            progress(IndexProgress {
                files_done: i as u64,
                files_total: total,
                bytes_done: report.bytes,
            });
            if cancel.load(Ordering::Relaxed) {
                report.cancelled = true;
                break;
            }
            if let Some(prev) = old.get(&entry.rel) {
                if prev.size == entry.size && prev.mtime_ns == entry.mtime_ns {
                    files.insert(entry.rel.clone(), prev.clone());
                    report.unchanged += 1;
                    continue;
                }
            }
            let bytes = match tree.read(&entry.rel, self.config.max_file_bytes) {
                Ok(b) => b,
                Err(e) => {
                    // Vanished, replaced by something else, or unreadable: skipped; old passages go.
                    tracing::debug!(file = %entry.rel, error = %e, "skipped");
                    report.skipped += 1;
                    continue;
                }
            };
            let sha256 = format!("{:x}", sha2::Sha256::digest(&bytes));
            if let Some(prev) = old.get(&entry.rel) {
                if prev.sha256 == sha256 {
                    let mut e = prev.clone();
                    e.size = entry.size;
                    e.mtime_ns = entry.mtime_ns;
                    files.insert(entry.rel.clone(), e);
                    report.unchanged += 1;
                    continue;
                }
            }
            let name_only = entry.rel.rsplit('/').next().unwrap_or(&entry.rel);
            match read::read(name_only, &bytes, self.config.max_file_bytes) {
                Ok(sections) => {
                    let chunks = self.add_file(&writer, name, &entry.rel, &sections)?;
                    let text_bytes: u64 = sections
                        .iter()
                        .flat_map(|s| &s.lines)
                        .map(|(_, l)| l.len() as u64 + 1)
                        .sum();
                    report.bytes += text_bytes;
                    report.indexed += 1;
                    files.insert(
                        entry.rel.clone(),
                        FileEntry {
                            size: entry.size,
                            mtime_ns: entry.mtime_ns,
                            sha256,
                            chunks,
                            bytes: text_bytes,
                        },
                    );
                }
                Err(skip) => {
                    tracing::debug!(file = %entry.rel, reason = ?skip, "not indexed");
                    writer.delete_term(Term::from_field_text(self.fields.key, &Self::key(name, &entry.rel)));
                    report.skipped += 1;
                }
            }
        }
        // Files gone since the last run lose their passages; after a cancel, files not reached keep theirs.
        for (rel, prev) in &old {
            if files.contains_key(rel) {
                continue;
            }
            let listed = listing.files.iter().any(|e| &e.rel == rel);
            if report.cancelled && listed {
                files.insert(rel.clone(), prev.clone());
                continue;
            }
            writer.delete_term(Term::from_field_text(self.fields.key, &Self::key(name, rel)));
            if !listed {
                report.removed += 1;
            }
        }
        self.commit(&mut writer)?;
        drop(writer);
        let mut m = self.manifest.lock().unwrap();
        m.sources.insert(
            name.to_string(),
            SourceEntry {
                root: root.display().to_string(),
                path: path.map(str::to_string),
                state: if report.cancelled {
                    KbSourceState::Cancelled
                } else {
                    KbSourceState::Ready
                },
                error: None,
                updated_ms: now_ms(),
                skipped: report.skipped,
                files,
            },
        );
        self.save_manifest(&m)?;
        progress(IndexProgress {
            files_done: total,
            files_total: total,
            bytes_done: report.bytes,
        });
        Ok(report)
    }

    fn sources(&self) -> Result<Vec<KbSource>, KbError> {
        let m = self.manifest.lock().unwrap();
        Ok(m.sources
            .iter()
            .map(|(name, s)| KbSource {
                name: name.clone(),
                root: s.root.clone(),
                path: s.path.clone(),
                documents: s.files.len() as u64,
                chunks: s.files.values().map(|f| f.chunks).sum(),
                bytes: s.files.values().map(|f| f.bytes).sum(),
                skipped: s.skipped,
                updated_ms: s.updated_ms,
                state: s.state,
                error: s.error.clone(),
            })
            .collect())
    }

    fn mark(&self, name: &str, root: &Path, state: KbSourceState, error: Option<String>) -> Result<(), KbError> {
        let mut m = self.manifest.lock().unwrap();
        let e = m.sources.entry(name.to_string()).or_insert_with(|| SourceEntry {
            root: root.display().to_string(),
            path: None,
            state,
            error: None,
            updated_ms: 0,
            skipped: 0,
            files: BTreeMap::new(),
        });
        e.state = state;
        e.error = error;
        e.updated_ms = now_ms();
        self.save_manifest(&m)
    }

    fn search(&self, query: &str, limit: usize) -> Result<Vec<Passage>, KbError> {
        let Some(q) = self.build_query(query) else {
            return Ok(Vec::new());
        };
        let searcher = self.reader.searcher();
        let top = searcher
            .search(&q, &TopDocs::with_limit(limit.max(1)).order_by_score())
            .map_err(ix)?;
        let words = self.analyzers.query_words(query);
        // Rarer words weigh more in the coverage: a question whose rare word occurs nowhere is not answered by
        // a passage that only shares its common words.
        let n = searcher.num_docs().max(1) as f32;
        let f = self.fields;
        let df = |field: Field, t: &str| searcher.doc_freq(&Term::from_field_text(field, t)).unwrap_or(0);
        let weights: Vec<f32> = words
            .words
            .iter()
            .map(|(de, en)| {
                let d = de.first().map(|t| df(f.body_de, t)).unwrap_or(0);
                let e = en.iter().map(|t| df(f.body_en, t)).max().unwrap_or(0);
                (1.0 + n / (d.max(e) as f32 + 1.0)).ln()
            })
            .collect();
        let mut out = Vec::with_capacity(top.len());
        for (score, addr) in top {
            let d: TantivyDocument = searcher.doc(addr).map_err(ix)?;
            let mut p = self.passage_of(&d, score);
            let head = format!(
                "{} {} {}",
                p.citation.path.replace(['-', '_', '.', '/'], " "),
                p.citation.heading.as_deref().unwrap_or(""),
                p.text
            );
            p.coverage = self.analyzers.weighted_coverage(&words, &weights, &head);
            out.push(p);
        }
        Ok(out)
    }

    fn remove(&self, name: &str) -> Result<bool, KbError> {
        let mut m = self.manifest.lock().unwrap();
        if m.sources.remove(name).is_none() {
            return Ok(false);
        }
        let mut writer = self.writer.lock().unwrap();
        writer.delete_term(Term::from_field_text(self.fields.source, name));
        self.commit(&mut writer)?;
        self.save_manifest(&m)?;
        Ok(true)
    }
}
