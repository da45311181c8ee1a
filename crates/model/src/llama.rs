//! The in-process GGUF backend (cargo feature `gguf`): llama.cpp through the `llama-cpp-2` crate, which builds its
//! vendored llama.cpp with cmake. One worker thread per loaded model owns the model and its context; it is the only
//! place that touches llama.cpp. Requests reach it over a channel, which is the queue: one generation at a time, in
//! arrival order. The worker applies the chat template the GGUF carries, constrains decoding by a grammar generated
//! (by llama.cpp's own converter) from the request's JSON schema, streams each piece back over a per-request channel
//! (the caller hands it to the same `on_token` callback the OpenAI backend feeds), stops between two tokens when the
//! request is cancelled, the manager's stop counter changes or the model is unloaded, and unloads the model itself
//! after an idle time. Loading refuses a model whose file plus key/value cache exceeds the memory it may use, before
//! llama.cpp reads a byte of it. A panic in the worker is caught and reported; the next request loads again.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cacheos_chat::model::ModelRequest;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;
use llama_cpp_2::token::LlamaToken;

use crate::gguf;
use crate::openai::Timing;

/// Memory llama.cpp needs beside weights and cache (compute buffers, the batch), for the estimate.
pub const COMPUTE_RESERVE: u64 = 64 << 20;
/// Memory left to the rest of the appliance when no limit is configured.
pub const SYSTEM_RESERVE: u64 = 256 << 20;
/// Tokens evaluated per `decode` call while reading the prompt.
const N_BATCH: u32 = 512;

/// How to load a GGUF file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadOptions {
    /// The file.
    pub path: PathBuf,
    /// CPU threads for prompt and generation.
    pub threads: u32,
    /// Context length wanted (clipped to the model's training context).
    pub n_ctx: u32,
    /// Bytes the model may use (none: what the machine has available, less [`SYSTEM_RESERVE`]).
    pub memory_limit: Option<u64>,
    /// Unload after this long without a request.
    pub idle: Duration,
}

/// Why the in-process backend could not do what was asked. Each message names the file or the step.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GgufError {
    /// The file is not a usable GGUF file (not GGUF, truncated, absurd header).
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// File and cache need more than the model may use.
    #[error(
        "{path} needs about {} MiB (file {} MiB, context cache and buffers {} MiB) but may use only {} MiB; \
         free memory, raise the limit or choose a smaller model",
        .needed >> 20, .file >> 20, (.needed - .file) >> 20, .allowed >> 20
    )]
    TooLarge {
        /// The file.
        path: String,
        /// Bytes needed.
        needed: u64,
        /// Bytes of the file.
        file: u64,
        /// Bytes allowed.
        allowed: u64,
    },
    /// llama.cpp refused the file.
    #[error(
        "llama.cpp could not load {path} (architecture {arch:?}): an architecture this llama.cpp does not know, or \
         tensors that do not fit it"
    )]
    Load {
        /// The file.
        path: String,
        /// `general.architecture`.
        arch: String,
    },
    /// The file carries no usable chat template.
    #[error("{0}")]
    Template(String),
    /// The context could not be created or a step of the generation failed.
    #[error("{0}")]
    Generate(String),
    /// The request was stopped (cancel, Stop button, unload).
    #[error("stopped")]
    Stopped,
    /// The worker ended (idle unload, unload or a panic) before it answered.
    #[error("the GGUF runtime ended before answering: {0}")]
    Ended(String),
}

/// What a loaded model reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// `general.name`, or the file name.
    pub name: String,
    /// Bytes of the weights plus the key/value cache.
    pub memory_bytes: u64,
    /// The context length in use.
    pub n_ctx: u32,
    /// Threads in use.
    pub threads: u32,
}

/// One streamed event of a generation.
#[derive(Debug)]
pub enum Event {
    /// A piece of text (one or more tokens, whole UTF-8 characters).
    Piece(String),
    /// The end, with the timing.
    Done(Timing),
    /// A failure.
    Failed(GgufError),
}

struct Job {
    req: ModelRequest,
    cancel: Arc<AtomicBool>,
    epoch: u64,
    events: mpsc::Sender<Event>,
}

#[derive(Default)]
struct Shared {
    /// The worker runs and holds the model.
    alive: AtomicBool,
    /// Unload asked for: the running generation stops, the worker ends.
    quit: AtomicBool,
    /// Requests waiting in the queue.
    queued: AtomicUsize,
    /// Why the worker ended, if it did.
    ended: Mutex<Option<String>>,
}

/// A loaded model: the handle of its worker thread.
pub struct Runtime {
    tx: Mutex<Option<mpsc::Sender<Job>>>,
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
    stop: Arc<AtomicU64>,
    /// What was loaded.
    pub info: Loaded,
    /// How it was loaded (a reload after an idle unload uses the same).
    pub options: LoadOptions,
}

/// A request in the queue or running; dropping it cancels it.
pub struct Pending {
    /// The events, up to [`Event::Done`] or [`Event::Failed`].
    pub events: mpsc::Receiver<Event>,
    cancel: Arc<AtomicBool>,
}

impl Pending {
    /// Stops this request (queued: it never starts; running: it ends after the current token).
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::SeqCst);
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.cancel();
    }
}

/// The process-wide llama.cpp backend (llama.cpp allows one initialisation); its logs go to `tracing`.
fn backend() -> Result<&'static LlamaBackend, GgufError> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| GgufError::Generate(format!("llama.cpp did not initialise: {e}")))
}

/// Bytes this process may still use: `MemAvailable`, and the cgroup's `memory.max` headroom when that is lower.
pub fn available_memory() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let avail = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(u64::MAX);
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let headroom = cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .and_then(|p| {
            let dir = Path::new("/sys/fs/cgroup").join(p.trim_start_matches('/'));
            let max = std::fs::read_to_string(dir.join("memory.max")).ok()?;
            let cur = std::fs::read_to_string(dir.join("memory.current")).ok()?;
            Some(max.trim().parse::<u64>().ok()?.saturating_sub(cur.trim().parse().ok()?))
        })
        .unwrap_or(u64::MAX);
    avail.min(headroom)
}

/// Bytes an f16 key/value cache of `n_ctx` positions takes for `model`.
fn kv_bytes(model: &LlamaModel, n_ctx: u32) -> u64 {
    let heads = model.n_head().max(1) as u64;
    let kv_embd = model.n_embd() as u64 / heads * model.n_head_kv() as u64;
    n_ctx as u64 * model.n_layer() as u64 * kv_embd * 2 * 2
}

/// Takes the longest prefix of `pending` that is whole UTF-8 (a character can span two tokens).
fn take_utf8(pending: &mut Vec<u8>) -> String {
    match std::str::from_utf8(&pending[..]) {
        Ok(s) => {
            let s = s.to_string();
            pending.clear();
            s
        }
        Err(e) if e.error_len().is_none() => {
            let n = e.valid_up_to();
            let s = String::from_utf8_lossy(&pending[..n]).into_owned();
            pending.drain(..n);
            s
        }
        Err(_) => {
            let s = String::from_utf8_lossy(pending).into_owned();
            pending.clear();
            s
        }
    }
}

impl Runtime {
    /// Checks `options.path`, the memory it needs, and loads it on a new worker thread; returns once the model is
    /// in memory and ready, or with the reason it is not (then nothing stays loaded). `stop`: generations running
    /// when it changes end with [`GgufError::Stopped`].
    pub fn start(options: LoadOptions, stop: Arc<AtomicU64>) -> Result<Runtime, GgufError> {
        let path = options.path.to_string_lossy().into_owned();
        let header = gguf::read_header(&options.path).map_err(|reason| GgufError::Invalid {
            path: path.clone(),
            reason,
        })?;
        let file = std::fs::metadata(&options.path).map(|m| m.len()).unwrap_or(0);
        let n_ctx = options
            .n_ctx
            .min(
                header
                    .context_length
                    .unwrap_or(options.n_ctx as u64)
                    .min(u32::MAX as u64) as u32,
            )
            .max(64);
        let needed = file + header.kv_cache_bytes(n_ctx as u64, file) + COMPUTE_RESERVE;
        let allowed = options
            .memory_limit
            .unwrap_or_else(|| available_memory().saturating_sub(SYSTEM_RESERVE));
        if needed > allowed {
            return Err(GgufError::TooLarge {
                path,
                needed,
                file,
                allowed,
            });
        }
        let backend = backend()?;
        let shared = Arc::new(Shared::default());
        let (tx, rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<Loaded, GgufError>>();
        let arch = header.architecture.clone().unwrap_or_default();
        let fallback_name = header.name.clone().unwrap_or_else(|| {
            options
                .path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
        let thread = {
            let (shared, stop, opts) = (shared.clone(), stop.clone(), options.clone());
            std::thread::Builder::new()
                .name("cacheos-gguf".into())
                .spawn(move || {
                    shared.alive.store(true, Ordering::SeqCst);
                    let w = Worker {
                        backend,
                        opts: &opts,
                        n_ctx,
                        arch,
                        name: fallback_name,
                        shared: &shared,
                        stop: &stop,
                    };
                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| w.run(rx, &ready_tx)));
                    let why = match r {
                        Ok(why) => why,
                        Err(p) => {
                            let msg = p
                                .downcast_ref::<&str>()
                                .map(|s| s.to_string())
                                .or_else(|| p.downcast_ref::<String>().cloned())
                                .unwrap_or_else(|| "a panic".into());
                            tracing::error!(error = %msg, "the GGUF runtime panicked");
                            let _ = ready_tx.send(Err(GgufError::Ended(format!("it panicked: {msg}"))));
                            format!("it panicked: {msg}")
                        }
                    };
                    *shared.ended.lock().unwrap() = Some(why);
                    shared.alive.store(false, Ordering::SeqCst);
                })
                .map_err(|e| GgufError::Generate(format!("cannot start the GGUF worker thread: {e}")))?
        };
        let info = match ready_rx.recv() {
            Ok(Ok(info)) => info,
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => {
                let _ = thread.join();
                let why = shared.ended.lock().unwrap().clone().unwrap_or_default();
                return Err(GgufError::Ended(why));
            }
        };
        tracing::info!(path = %path, memory = info.memory_bytes, n_ctx = info.n_ctx, threads = info.threads, "GGUF model loaded");
        Ok(Runtime {
            tx: Mutex::new(Some(tx)),
            shared,
            thread: Mutex::new(Some(thread)),
            stop,
            info,
            options,
        })
    }

    /// Whether the worker still holds the model (false after an idle unload, [`Runtime::shutdown`] or a panic).
    pub fn alive(&self) -> bool {
        self.shared.alive.load(Ordering::SeqCst)
    }

    /// Why the worker ended, if it did.
    pub fn ended(&self) -> Option<String> {
        self.shared.ended.lock().unwrap().clone()
    }

    /// Requests waiting behind the running one.
    pub fn queued(&self) -> usize {
        self.shared.queued.load(Ordering::SeqCst)
    }

    /// Queues a generation. `None`: the worker has ended (load again).
    pub fn submit(&self, req: ModelRequest) -> Option<Pending> {
        let tx = self.tx.lock().unwrap().clone()?;
        let (etx, erx) = mpsc::channel();
        let cancel = Arc::new(AtomicBool::new(false));
        self.shared.queued.fetch_add(1, Ordering::SeqCst);
        let job = Job {
            req,
            cancel: cancel.clone(),
            epoch: self.stop.load(Ordering::SeqCst),
            events: etx,
        };
        if tx.send(job).is_err() {
            self.shared.queued.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(Pending { events: erx, cancel })
    }

    /// Stops the running generation, drops the queue and waits until the model is out of memory.
    pub fn shutdown(&self) {
        self.shared.quit.store(true, Ordering::SeqCst);
        self.tx.lock().unwrap().take();
        if let Some(t) = self.thread.lock().unwrap().take() {
            let _ = t.join();
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.shutdown();
    }
}

struct Worker<'a> {
    backend: &'static LlamaBackend,
    opts: &'a LoadOptions,
    n_ctx: u32,
    arch: String,
    name: String,
    shared: &'a Shared,
    stop: &'a AtomicU64,
}

impl Worker<'_> {
    /// Loads, reports readiness, serves the queue; returns why it ended.
    fn run(&self, rx: mpsc::Receiver<Job>, ready: &mpsc::Sender<Result<Loaded, GgufError>>) -> String {
        let path = self.opts.path.to_string_lossy().into_owned();
        let model = match LlamaModel::load_from_file(self.backend, &self.opts.path, &LlamaModelParams::default()) {
            Ok(m) => m,
            Err(_) => {
                let _ = ready.send(Err(GgufError::Load {
                    path,
                    arch: self.arch.clone(),
                }));
                return "the model did not load".into();
            }
        };
        let template = match model.chat_template(None) {
            Ok(t) => t,
            Err(e) => {
                let _ = ready.send(Err(GgufError::Template(format!(
                    "{path} carries no usable chat template (tokenizer.chat_template): {e}"
                ))));
                return "no chat template".into();
            }
        };
        let threads = self.opts.threads.max(1) as i32;
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(self.n_ctx))
            .with_n_batch(N_BATCH)
            .with_n_threads(threads)
            .with_n_threads_batch(threads);
        let mut ctx = match model.new_context(self.backend, params) {
            Ok(c) => c,
            Err(e) => {
                let _ = ready.send(Err(GgufError::Generate(format!(
                    "llama.cpp could not create a context of {} tokens for {path}: {e}",
                    self.n_ctx
                ))));
                return "no context".into();
            }
        };
        let n_ctx = ctx.n_ctx();
        let name = model
            .meta_val_str("general.name")
            .ok()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| self.name.clone());
        let info = Loaded {
            name,
            memory_bytes: model.size() + kv_bytes(&model, n_ctx),
            n_ctx,
            threads: threads as u32,
        };
        if ready.send(Ok(info)).is_err() {
            return "nobody waited for the model".into();
        }
        loop {
            if self.shared.quit.load(Ordering::SeqCst) {
                return "unloaded".into();
            }
            match rx.recv_timeout(self.opts.idle) {
                Ok(job) => {
                    self.shared.queued.fetch_sub(1, Ordering::SeqCst);
                    let stopped = || {
                        job.cancel.load(Ordering::SeqCst)
                            || self.stop.load(Ordering::SeqCst) != job.epoch
                            || self.shared.quit.load(Ordering::SeqCst)
                    };
                    let ev = match generate(&model, &template, &mut ctx, &job, &stopped) {
                        Ok(t) => Event::Done(t),
                        Err(e) => Event::Failed(e),
                    };
                    let _ = job.events.send(ev);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    // Leave the loop first so that a request sent meanwhile finds the channel closed.
                    tracing::info!(idle_s = self.opts.idle.as_secs(), "GGUF model idle: unloading");
                    self.shared.alive.store(false, Ordering::SeqCst);
                    drop(rx);
                    return format!("unloaded after {} s without a request", self.opts.idle.as_secs());
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return "unloaded".into(),
            }
        }
    }
}

/// Tokens kept for the JSON around a bounded string (keys, quotes, braces).
const JSON_RESERVE: u32 = 64;

/// `schema` narrowed so that the reply is whole JSON within `max_tokens`: a `maxLength` on every free string that
/// has none (a token is at least one character), and a free object (`{"type":"object"}` without properties, the
/// proposal's `args`) flat: values are scalars or short arrays of scalars, no nested objects. Without this a small
/// model that repeats itself inside a string or nests `{"a":{"a":…` is cut off by the token limit and the reply is
/// not JSON at all. The narrowing keeps every reply valid under the original schema. (llama.cpp's converter knows no
/// `maxProperties`, so the number of keys of a free object stays unbounded.)
pub fn bound_strings(schema: &serde_json::Value, max_tokens: u32) -> serde_json::Value {
    fn walk(v: &mut serde_json::Value, max: u64) {
        match v {
            serde_json::Value::Object(o) => {
                let free_object = o.get("type").and_then(|t| t.as_str()) == Some("object")
                    && ["properties", "additionalProperties", "oneOf", "anyOf", "allOf"]
                        .iter()
                        .all(|k| !o.contains_key(*k));
                if free_object {
                    let scalar = serde_json::json!({"anyOf": [
                        {"type": "string", "maxLength": max.min(256)},
                        {"type": "number"},
                        {"type": "boolean"},
                        {"type": "null"}
                    ]});
                    o.insert(
                        "additionalProperties".into(),
                        serde_json::json!({"anyOf": [scalar, {"type": "array", "items": scalar, "maxItems": 16}]}),
                    );
                    return;
                }
                let free_string = o.get("type").and_then(|t| t.as_str()) == Some("string")
                    && !o.contains_key("enum")
                    && !o.contains_key("const");
                if free_string {
                    let cur = o.get("maxLength").and_then(|m| m.as_u64()).unwrap_or(u64::MAX);
                    o.insert("maxLength".into(), cur.min(max).into());
                }
                for (_, x) in o.iter_mut() {
                    walk(x, max);
                }
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(|x| walk(x, max)),
            _ => {}
        }
    }
    let mut s = schema.clone();
    walk(&mut s, max_tokens.saturating_sub(JSON_RESERVE).max(8) as u64);
    s
}

/// Greedy decoding (temperature 0, like the OpenAI client asks of a server), constrained by the grammar of a schema.
/// The most likely token is checked against the grammar alone first and the whole vocabulary is filtered only when
/// the grammar refuses it (what llama.cpp's own sampler does): filtering ~50,000 candidates through a large grammar
/// at every step would cost more than the model itself.
struct Picker {
    grammar: Option<LlamaSampler>,
}

impl Picker {
    /// The grammar of `schema` (none: free text), its strings bounded to fit `max_tokens`.
    fn new(model: &LlamaModel, schema: &serde_json::Value, max_tokens: u32) -> Result<Picker, GgufError> {
        if schema.is_null() {
            return Ok(Picker { grammar: None });
        }
        let schema = bound_strings(schema, max_tokens);
        let grammar = llama_cpp_2::json_schema_to_grammar(&schema.to_string())
            .map_err(|e| GgufError::Generate(format!("llama.cpp cannot turn the reply schema into a grammar: {e}")))?;
        let g = LlamaSampler::grammar(model, &grammar, "root")
            .map_err(|e| GgufError::Generate(format!("llama.cpp refused the grammar of the reply schema: {e}")))?;
        Ok(Picker { grammar: Some(g) })
    }

    /// The next token from the logits at batch index `idx`; the grammar advances by it.
    fn pick(&mut self, ctx: &LlamaContext<'_>, idx: i32) -> LlamaToken {
        let (best, logit) =
            ctx.get_logits_ith(idx)
                .iter()
                .enumerate()
                .fold(
                    (0usize, f32::NEG_INFINITY),
                    |m, (i, l)| if *l > m.1 { (i, *l) } else { m },
                );
        let best = LlamaToken::new(best as i32);
        let Some(g) = self.grammar.as_mut() else { return best };
        let mut one = LlamaTokenDataArray::new(vec![LlamaTokenData::new(best, logit, 0.0)], false);
        one.apply_sampler(g);
        let token = if one.data[0].logit().is_finite() {
            best
        } else {
            let mut all = ctx.token_data_array_ith(idx);
            all.apply_sampler(g);
            all.sample_token_greedy()
        };
        g.accept(token);
        token
    }
}

/// The prompt: the request's messages through the GGUF's own chat template, ending with the assistant's turn.
pub(crate) fn prompt(
    model: &LlamaModel,
    template: &LlamaChatTemplate,
    req: &ModelRequest,
) -> Result<String, GgufError> {
    let msgs = req
        .messages
        .iter()
        .map(|m| LlamaChatMessage::new(m.role.to_string(), m.content.clone()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| GgufError::Generate(format!("a message cannot be passed to llama.cpp: {e}")))?;
    model
        .apply_chat_template(template, &msgs, true)
        .map_err(|e| GgufError::Template(format!("the GGUF's chat template could not be applied: {e}")))
}

fn generate(
    model: &LlamaModel,
    template: &LlamaChatTemplate,
    ctx: &mut LlamaContext<'_>,
    job: &Job,
    stopped: &dyn Fn() -> bool,
) -> Result<Timing, GgufError> {
    if stopped() {
        return Err(GgufError::Stopped);
    }
    let started = Instant::now();
    let text = prompt(model, template, &job.req)?;
    let vocab = model.vocab();
    let tokens = vocab.tokenize(text.as_bytes(), true, true);
    let n_ctx = ctx.n_ctx() as usize;
    if tokens.len() + 1 >= n_ctx {
        return Err(GgufError::Generate(format!(
            "the conversation has {} tokens but the context holds {n_ctx}",
            tokens.len()
        )));
    }
    let max_new = (job.req.max_tokens as usize).min(n_ctx - tokens.len());
    let mut picker = Picker::new(model, &job.req.schema, max_new as u32)?;
    ctx.clear_kv_cache();
    let n_batch = (ctx.n_batch() as usize).max(1);
    let mut batch = LlamaBatch::new(n_batch, 1);
    let decode_failed = |e: &dyn std::fmt::Display| GgufError::Generate(format!("llama.cpp could not evaluate: {e}"));
    for (ci, chunk) in tokens.chunks(n_batch).enumerate() {
        if stopped() {
            return Err(GgufError::Stopped);
        }
        batch.clear();
        for (i, t) in chunk.iter().enumerate() {
            let pos = ci * n_batch + i;
            batch
                .add(*t, pos as i32, &[0], pos + 1 == tokens.len())
                .map_err(|e| decode_failed(&e))?;
        }
        ctx.decode(&mut batch).map_err(|e| decode_failed(&e))?;
    }
    let mut timing = Timing::default();
    let mut pending = Vec::new();
    let mut pos = tokens.len() as i32;
    for _ in 0..max_new {
        if stopped() {
            return Err(GgufError::Stopped);
        }
        let token = picker.pick(ctx, batch.n_tokens() - 1);
        if timing.first_token.is_none() {
            timing.first_token = Some(started.elapsed());
        }
        if vocab.is_eog(token) {
            break;
        }
        timing.tokens += 1;
        vocab.token_to_piece_into(token, &mut pending, false, None);
        let piece = take_utf8(&mut pending);
        if !piece.is_empty() && job.events.send(Event::Piece(piece)).is_err() {
            return Err(GgufError::Stopped);
        }
        batch.clear();
        batch.add(token, pos, &[0], true).map_err(|e| decode_failed(&e))?;
        pos += 1;
        ctx.decode(&mut batch).map_err(|e| decode_failed(&e))?;
    }
    if !pending.is_empty() {
        let _ = job
            .events
            .send(Event::Piece(String::from_utf8_lossy(&pending).into_owned()));
    }
    timing.total = started.elapsed();
    Ok(timing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_strings_are_bounded_to_the_token_budget() {
        let s = serde_json::json!({"oneOf": [
            {"properties": {"kind": {"const": "answer"}, "text": {"type": "string"}}},
            {"properties": {"op": {"type": "string", "enum": ["a"]}, "t": {"type": "string", "maxLength": 10}}}
        ]});
        let b = bound_strings(&s, 512);
        let p = bound_strings(&cacheos_chat::model::proposal_schema(cacheos_core::OPERATIONS), 512);
        assert!(
            p.get("additionalProperties").is_none(),
            "the union is not a free object"
        );
        assert_eq!(p["oneOf"][2]["properties"]["text"]["maxLength"], 448);
        assert!(p["oneOf"][0]["properties"]["args"]["additionalProperties"].is_object());
        let args = bound_strings(&serde_json::json!({"type": "object"}), 512);
        assert_eq!(args["additionalProperties"]["anyOf"][1]["maxItems"], 16);
        assert_eq!(b["oneOf"][0]["properties"]["text"]["maxLength"], 448);
        assert!(b["oneOf"][0]["properties"]["kind"].get("maxLength").is_none());
        assert!(b["oneOf"][1]["properties"]["op"].get("maxLength").is_none());
        assert_eq!(b["oneOf"][1]["properties"]["t"]["maxLength"], 10);
        let g = llama_cpp_2::json_schema_to_grammar(&b.to_string()).unwrap();
        assert!(g.contains("448"), "{g}");
    }

    #[test]
    fn utf8_split_across_tokens_is_held_back() {
        let mut p = "grü".as_bytes().to_vec();
        p.pop();
        assert_eq!(take_utf8(&mut p), "gr");
        assert_eq!(p.len(), 1);
        p.push("ü".as_bytes()[1]);
        assert_eq!(take_utf8(&mut p), "ü");
        assert!(p.is_empty());
    }

    /// With the real test model (CACHEOS_TEST_GGUF): the prompt is the GGUF's own template (SmolLM2: ChatML).
    #[test]
    fn the_gguf_chat_template_is_applied() {
        let Some(f) = std::env::var_os("CACHEOS_TEST_GGUF") else {
            eprintln!("skipped: CACHEOS_TEST_GGUF is not set (scripts/fetch-test-model prints the test model's path)");
            return;
        };
        let b = backend().unwrap();
        let model = LlamaModel::load_from_file(b, f, &LlamaModelParams::default()).unwrap();
        let t = model.chat_template(None).unwrap();
        assert!(t.to_str().unwrap().contains("<|im_start|>"), "{:?}", t.to_str());
        let req = ModelRequest {
            messages: vec![
                cacheos_chat::model::Message {
                    role: "system",
                    content: "Be brief.".into(),
                },
                cacheos_chat::model::Message {
                    role: "user",
                    content: "Hallo?".into(),
                },
            ],
            schema: serde_json::Value::Null,
            max_tokens: 8,
        };
        let p = prompt(&model, &t, &req).unwrap();
        assert_eq!(
            p,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHallo?<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn the_limit_is_checked_before_loading() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("t.gguf");
        std::fs::write(&p, crate::gguf::tests::tiny_gguf(1 << 20)).unwrap();
        let e = Runtime::start(
            LoadOptions {
                path: p,
                threads: 1,
                n_ctx: 512,
                memory_limit: Some(1 << 20),
                idle: Duration::from_secs(1),
            },
            Arc::default(),
        )
        .err()
        .unwrap();
        assert!(matches!(e, GgufError::TooLarge { .. }), "{e}");
        assert!(e.to_string().contains("may use only 1 MiB"), "{e}");
    }
}
