//! CacheOS language-model backends (issue 14). [`ModelManager`] is both the core's [`ModelHost`] (what `model.*`
//! operations switch) and the chat's [`ModelBackend`] (what the chat asks when it is not confident). Backends: an
//! OpenAI-compatible HTTP server ([`openai`]) and, with the cargo feature `gguf`, llama.cpp in-process ([`llama`]:
//! loaded by `model.use` on its own worker thread, unloaded after an idle time and loaded again by the next request).
//! Both stream through the same `on_token` callback and stop on [`ModelManager::stop`]. Nothing is
//! active until `model.use`; CacheOS never downloads weights. The API key of an endpoint is kept in
//! `<state_dir>/model-api-key` (mode 0600, replaced atomically, removed by `model.unload`) and never returned.

pub mod gguf;
#[cfg(feature = "gguf")]
pub mod llama;
pub mod openai;

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cacheos_chat::model::{Message, ModelBackend, ModelError, ModelIdentity, ModelRequest};
use cacheos_core::model::{
    is_loopback_url, BackendInfo, BackendKind, GgufFile, ModelChoice, ModelHost, ModelHostError, ModelStatus,
    ModelTestResult,
};

pub use openai::{OpenAiClient, OpenAiError, Timeouts};

/// The fixed prompt of `model.test`.
pub const TEST_PROMPT: &str = "Answer in one short sentence: what is a virtual drive?";

/// File name of the endpoint's API key below the state directory.
pub const KEY_FILE: &str = "model-api-key";

/// Settings of the in-process GGUF backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GgufSettings {
    /// Context length (clipped to the model's training context).
    pub n_ctx: u32,
    /// Bytes a model may use (none: what the machine has available, less 256 MiB).
    pub memory_limit: Option<u64>,
    /// Unload after this long without a request.
    pub idle: Duration,
}

impl Default for GgufSettings {
    fn default() -> Self {
        Self {
            n_ctx: 4096,
            memory_limit: None,
            idle: Duration::from_secs(600),
        }
    }
}

/// Threads when `model.use` names none: the cores this process may run on.
pub fn default_threads() -> u32 {
    std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1)
}

struct Active {
    choice: ModelChoice,
    /// The endpoint answered `GET /v1/models` (a GGUF: the file is in memory).
    loaded: bool,
    key_set: bool,
}

#[derive(Default)]
struct Stats {
    last_tokens_per_s: Option<f64>,
    last_error: Option<String>,
}

/// The backends and the active choice.
pub struct ModelManager {
    models_dir: PathBuf,
    state_dir: PathBuf,
    timeouts: Timeouts,
    active: Mutex<Option<Active>>,
    stats: Mutex<Stats>,
    /// Changed by [`ModelManager::stop`]: running generations end.
    stop: Arc<AtomicU64>,
    gguf: GgufSettings,
    /// The loaded GGUF model (none: no GGUF active, or unloaded after the idle time).
    #[cfg(feature = "gguf")]
    runtime: Mutex<Option<Arc<llama::Runtime>>>,
    /// Held while a GGUF model loads, so that two requests after an idle unload load it once.
    #[cfg(feature = "gguf")]
    loading: Mutex<()>,
}

impl ModelManager {
    /// A manager looking for GGUF files in `models_dir` and keeping the API key below `state_dir`.
    pub fn new(models_dir: &Path, state_dir: &Path) -> Self {
        Self {
            models_dir: models_dir.to_path_buf(),
            state_dir: state_dir.to_path_buf(),
            timeouts: Timeouts::default(),
            active: Mutex::new(None),
            stats: Mutex::default(),
            stop: Arc::default(),
            gguf: GgufSettings::default(),
            #[cfg(feature = "gguf")]
            runtime: Mutex::default(),
            #[cfg(feature = "gguf")]
            loading: Mutex::default(),
        }
    }

    /// Other settings of the in-process GGUF backend.
    pub fn with_gguf(mut self, g: GgufSettings) -> Self {
        self.gguf = g;
        self
    }

    /// Other time-outs (tests).
    pub fn with_timeouts(mut self, t: Timeouts) -> Self {
        self.timeouts = t;
        self
    }

    /// Stops every generation running now (they end with "stopped"); later ones run normally.
    pub fn stop(&self) {
        self.stop.fetch_add(1, Ordering::SeqCst);
    }

    fn client(&self, base: &str, key: Option<String>) -> OpenAiClient {
        OpenAiClient::new(base, key, self.timeouts, self.stop.clone())
    }

    fn key_path(&self) -> PathBuf {
        self.state_dir.join(KEY_FILE)
    }

    fn read_key(&self) -> Option<String> {
        std::fs::read_to_string(self.key_path())
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    }

    /// Writes the key to a new file of mode 0600 and renames it over the old one.
    fn write_key(&self, key: &str) -> Result<(), ModelHostError> {
        let tmp = self.state_dir.join(format!(".{KEY_FILE}.tmp"));
        let _ = std::fs::remove_file(&tmp);
        let fail = |e: std::io::Error| ModelHostError::Failed(format!("cannot keep the API key: {e}"));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(fail)?;
        f.write_all(key.as_bytes()).and_then(|()| f.sync_all()).map_err(fail)?;
        std::fs::rename(&tmp, self.key_path()).map_err(fail)
    }

    fn remove_key(&self) {
        let _ = std::fs::remove_file(self.key_path());
    }

    fn gguf_file(&self, path: &Path, drive: Option<&str>) -> GgufFile {
        let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let (h, problem) = match gguf::read_header(path) {
            Ok(h) => (h, None),
            Err(e) => (Default::default(), Some(e)),
        };
        GgufFile {
            path: path.to_string_lossy().into_owned(),
            drive: drive.map(String::from),
            size,
            name: h.name,
            architecture: h.architecture,
            quantisation: h.quantisation,
            context_length: h.context_length,
            active: false,
            problem,
        }
    }

    /// `.gguf` files in `dir` and one level below (not following symbolic links).
    fn scan(&self, dir: &Path, drive: Option<&str>, out: &mut Vec<GgufFile>) {
        let Ok(rd) = std::fs::read_dir(dir) else { return };
        let mut entries: Vec<_> = rd.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let Ok(t) = e.file_type() else { continue };
            let p = e.path();
            if t.is_file() && p.extension().is_some_and(|x| x.eq_ignore_ascii_case("gguf")) {
                out.push(self.gguf_file(&p, drive));
            } else if t.is_dir() && !e.file_name().to_string_lossy().starts_with('.') {
                let Ok(rd2) = std::fs::read_dir(&p) else { continue };
                let mut sub: Vec<_> = rd2.flatten().collect();
                sub.sort_by_key(|e| e.file_name());
                for e2 in sub {
                    let p2 = e2.path();
                    if e2.file_type().is_ok_and(|t| t.is_file())
                        && p2.extension().is_some_and(|x| x.eq_ignore_ascii_case("gguf"))
                    {
                        out.push(self.gguf_file(&p2, drive));
                    }
                }
            }
        }
    }

    fn record<E: std::fmt::Display>(&self, r: &Result<(String, openai::Timing), E>) {
        let mut s = self.stats.lock().unwrap();
        match r {
            Ok((_, t)) => {
                s.last_tokens_per_s = Some(t.tokens_per_s());
                s.last_error = None;
            }
            Err(e) => s.last_error = Some(e.to_string()),
        }
    }
}

impl ModelHost for ModelManager {
    fn backends(&self) -> Vec<BackendInfo> {
        vec![
            BackendInfo {
                kind: BackendKind::Openai,
                available: true,
                active: false,
                detail: "an OpenAI-compatible server: llama-server, Ollama, vLLM, LocalAI or a hosted service".into(),
            },
            BackendInfo {
                kind: BackendKind::Gguf,
                available: cfg!(feature = "gguf"),
                active: false,
                detail: if cfg!(feature = "gguf") {
                    "GGUF files run in-process by llama.cpp".into()
                } else {
                    "GGUF files in-process by llama.cpp: this build was made without the gguf feature".into()
                },
            },
        ]
    }

    fn files(&self, drive_roots: &[(String, PathBuf)]) -> Vec<GgufFile> {
        let mut out = Vec::new();
        self.scan(&self.models_dir, None, &mut out);
        for (name, root) in drive_roots {
            self.scan(root, Some(name), &mut out);
        }
        out
    }

    fn activate(&self, choice: &ModelChoice, api_key: Option<&str>) -> Result<ModelChoice, ModelHostError> {
        match choice.backend {
            BackendKind::Openai => {
                let same = self
                    .active
                    .lock()
                    .unwrap()
                    .as_ref()
                    .is_some_and(|a| a.choice.target == choice.target);
                let key = match api_key {
                    Some("") => None,
                    Some(k) => Some(k.to_string()),
                    // A restart re-activates the stored choice with the kept key.
                    None if same || self.active.lock().unwrap().is_none() => self.read_key(),
                    None => None,
                };
                let client = self.client(&choice.target, key.clone());
                let served = client.models().map_err(|e| ModelHostError::Failed(e.to_string()))?;
                let model = match &choice.model {
                    Some(m) if served.is_empty() || served.contains(m) => m.clone(),
                    Some(m) => {
                        return Err(ModelHostError::Invalid {
                            field: "model",
                            reason: format!(
                                "{} does not serve {m:?}; it serves: {}",
                                choice.target,
                                served.join(", ")
                            ),
                        })
                    }
                    None => served
                        .first()
                        .cloned()
                        .ok_or_else(|| ModelHostError::Failed(format!("{} serves no model", choice.target)))?,
                };
                match &key {
                    Some(k) => self.write_key(k)?,
                    None => self.remove_key(),
                }
                // A GGUF model in use leaves memory.
                #[cfg(feature = "gguf")]
                {
                    let _loading = self.loading.lock().unwrap();
                    let old = self.runtime.lock().unwrap().take();
                    if let Some(old) = old {
                        old.shutdown();
                    }
                }
                let mut c = choice.clone();
                c.model = Some(model);
                *self.active.lock().unwrap() = Some(Active {
                    choice: c.clone(),
                    loaded: true,
                    key_set: key.is_some(),
                });
                *self.stats.lock().unwrap() = Stats::default();
                Ok(c)
            }
            BackendKind::Gguf => {
                let h = gguf::read_header(Path::new(&choice.target)).map_err(|reason| ModelHostError::Invalid {
                    field: "path",
                    reason: format!("{}: {reason}", choice.target),
                })?;
                if !cfg!(feature = "gguf") {
                    return Err(ModelHostError::Unavailable(format!(
                        "{} is a valid GGUF file ({}), but this build has no in-process runtime (feature gguf)",
                        choice.target,
                        h.architecture.as_deref().unwrap_or("?")
                    )));
                }
                #[cfg(feature = "gguf")]
                return self.activate_gguf(choice);
                #[cfg(not(feature = "gguf"))]
                unreachable!("checked above")
            }
        }
    }

    fn status(&self) -> ModelStatus {
        let a = self.active.lock().unwrap();
        let s = self.stats.lock().unwrap();
        #[cfg(feature = "gguf")]
        let (gguf_loaded, memory_bytes, ended) = match self.runtime.lock().unwrap().as_ref() {
            Some(rt) if rt.alive() => (true, Some(rt.info.memory_bytes), None),
            Some(rt) => (false, None, rt.ended()),
            None => (false, None, None),
        };
        #[cfg(not(feature = "gguf"))]
        let (gguf_loaded, memory_bytes, ended) = (false, None, None::<String>);
        match a.as_ref() {
            None => ModelStatus {
                last_error: s.last_error.clone(),
                ..Default::default()
            },
            Some(a) if a.choice.backend == BackendKind::Gguf => ModelStatus {
                active: Some(a.choice.clone()),
                loaded: gguf_loaded,
                memory_bytes,
                last_tokens_per_s: s.last_tokens_per_s,
                api_key_set: false,
                remote: false,
                // Why the model is out of memory (the idle time, a panic), unless a request failed since.
                last_error: s.last_error.clone().or(ended),
            },
            Some(a) => ModelStatus {
                active: Some(a.choice.clone()),
                loaded: a.loaded,
                memory_bytes: None,
                last_tokens_per_s: s.last_tokens_per_s,
                api_key_set: a.key_set,
                remote: a.choice.backend == BackendKind::Openai && !is_loopback_url(&a.choice.target),
                last_error: s.last_error.clone(),
            },
        }
    }

    fn unload(&self) -> Result<(), ModelHostError> {
        #[cfg(feature = "gguf")]
        {
            // Waits for a load in progress; the model is out of memory when this returns.
            let _loading = self.loading.lock().unwrap();
            let rt = self.runtime.lock().unwrap().take();
            if let Some(rt) = rt {
                rt.shutdown();
            }
            *self.active.lock().unwrap() = None;
        }
        *self.active.lock().unwrap() = None;
        *self.stats.lock().unwrap() = Stats::default();
        self.remove_key();
        Ok(())
    }

    fn test(&self) -> Result<ModelTestResult, ModelHostError> {
        let (choice, key) = {
            let a = self.active.lock().unwrap();
            let a = a.as_ref().filter(|a| a.loaded).ok_or(ModelHostError::NoModel)?;
            (a.choice.clone(), a.key_set)
        };
        let key = if key { self.read_key() } else { None };
        let model = choice.model.clone().unwrap_or_default();
        let req = ModelRequest {
            messages: vec![Message {
                role: "user",
                content: TEST_PROMPT.into(),
            }],
            schema: serde_json::Value::Null,
            max_tokens: 64,
        };
        #[cfg(feature = "gguf")]
        if choice.backend == BackendKind::Gguf {
            let r = self.gguf_generate(&choice, &req, &mut |_| {});
            self.record(&r);
            let (text, t) = r.map_err(|e| ModelHostError::Failed(e.to_string()))?;
            return Ok(ModelTestResult {
                backend: choice.backend,
                model,
                first_token_ms: t.first_token.unwrap_or(t.total).as_millis() as u64,
                tokens_per_s: t.tokens_per_s(),
                tokens: t.tokens,
                text,
            });
        }
        // The lock is not held while the server answers.
        let r = self.client(&choice.target, key).chat(&model, &req, false, &mut |_| {});
        self.record(&r);
        let (text, t) = r.map_err(|e| ModelHostError::Failed(e.to_string()))?;
        Ok(ModelTestResult {
            backend: choice.backend,
            model,
            first_token_ms: t.first_token.unwrap_or(t.total).as_millis() as u64,
            tokens_per_s: t.tokens_per_s(),
            tokens: t.tokens,
            text,
        })
    }
}

impl ModelBackend for ModelManager {
    fn identity(&self) -> Option<ModelIdentity> {
        let a = self.active.lock().unwrap();
        let a = a.as_ref()?;
        Some(ModelIdentity {
            backend: a.choice.backend.as_str().into(),
            model: a.choice.model.clone().unwrap_or_default(),
            remote: a.choice.backend == BackendKind::Openai && !is_loopback_url(&a.choice.target),
            target: a.choice.target.clone(),
        })
    }

    fn stop(&self) {
        ModelManager::stop(self);
    }

    fn complete(&self, req: &ModelRequest, on_token: &mut dyn FnMut(&str)) -> Result<String, ModelError> {
        #[cfg(feature = "gguf")]
        {
            let gguf = self
                .active
                .lock()
                .unwrap()
                .as_ref()
                .filter(|a| a.choice.backend == BackendKind::Gguf)
                .map(|a| a.choice.clone());
            if let Some(choice) = gguf {
                let r = self.gguf_generate(&choice, req, on_token);
                self.record(&r);
                return r.map(|x| x.0).map_err(|e| ModelError(e.to_string()));
            }
        }
        // The client is cheap to rebuild; the lock is not held while the server answers.
        let (base, key, model) = {
            let a = self.active.lock().unwrap();
            let a = a.as_ref().ok_or_else(|| ModelError("no model is in use".into()))?;
            (
                a.choice.target.clone(),
                a.key_set,
                a.choice.model.clone().unwrap_or_default(),
            )
        };
        let key = if key { self.read_key() } else { None };
        let client = self.client(&base, key);
        let r = client.chat(&model, req, true, on_token);
        self.record(&r);
        r.map(|x| x.0).map_err(ModelError::from)
    }
}

#[cfg(feature = "gguf")]
impl ModelManager {
    fn load_options(&self, choice: &ModelChoice) -> llama::LoadOptions {
        llama::LoadOptions {
            path: PathBuf::from(&choice.target),
            threads: choice.threads.filter(|t| *t > 0).unwrap_or_else(default_threads),
            n_ctx: self.gguf.n_ctx,
            memory_limit: self.gguf.memory_limit,
            idle: self.gguf.idle,
        }
    }

    fn host_error(e: llama::GgufError) -> ModelHostError {
        match e {
            llama::GgufError::Invalid { path, reason } => ModelHostError::Invalid {
                field: "path",
                reason: format!("{path}: {reason}"),
            },
            llama::GgufError::TooLarge { needed, allowed, .. } => ModelHostError::TooLarge { needed, allowed },
            e => ModelHostError::Failed(e.to_string()),
        }
    }

    /// Loads the GGUF file of `choice` (the previous model leaves memory first) and makes it the active model.
    /// On failure nothing is loaded and the previous choice stays (it loads again on its next request).
    fn activate_gguf(&self, choice: &ModelChoice) -> Result<ModelChoice, ModelHostError> {
        let _loading = self.loading.lock().unwrap();
        let old = self.runtime.lock().unwrap().take();
        if let Some(old) = old {
            old.shutdown();
        }
        let rt = llama::Runtime::start(self.load_options(choice), self.stop.clone()).map_err(Self::host_error)?;
        let mut c = choice.clone();
        c.threads = Some(rt.info.threads);
        *self.runtime.lock().unwrap() = Some(Arc::new(rt));
        self.remove_key();
        *self.active.lock().unwrap() = Some(Active {
            choice: c.clone(),
            loaded: true,
            key_set: false,
        });
        *self.stats.lock().unwrap() = Stats::default();
        Ok(c)
    }

    /// The runtime of the active GGUF `choice`, loading the model again after an idle unload.
    fn gguf_runtime(&self, choice: &ModelChoice) -> Result<Arc<llama::Runtime>, llama::GgufError> {
        let live = || self.runtime.lock().unwrap().as_ref().filter(|r| r.alive()).cloned();
        if let Some(rt) = live() {
            return Ok(rt);
        }
        let _loading = self.loading.lock().unwrap();
        if let Some(rt) = live() {
            return Ok(rt);
        }
        // An unload or another model.use came first.
        let still = self
            .active
            .lock()
            .unwrap()
            .as_ref()
            .is_some_and(|a| a.choice == *choice);
        if !still {
            return Err(llama::GgufError::Ended("the model was unloaded".into()));
        }
        tracing::info!(path = %choice.target, "loading the GGUF model again");
        let rt = Arc::new(llama::Runtime::start(self.load_options(choice), self.stop.clone())?);
        *self.runtime.lock().unwrap() = Some(rt.clone());
        Ok(rt)
    }

    /// Runs `req` on the GGUF model (queued behind the running request), handing each piece to `on_token`.
    pub(crate) fn gguf_generate(
        &self,
        choice: &ModelChoice,
        req: &ModelRequest,
        on_token: &mut dyn FnMut(&str),
    ) -> Result<(String, openai::Timing), llama::GgufError> {
        use std::sync::mpsc::RecvTimeoutError;
        for _attempt in 0..2 {
            let rt = self.gguf_runtime(choice)?;
            // None: the worker unloaded (idle) just now; load again once.
            let Some(pending) = rt.submit(req.clone()) else {
                continue;
            };
            let deadline = std::time::Instant::now() + self.timeouts.total;
            let mut text = String::new();
            loop {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                match pending.events.recv_timeout(left) {
                    Ok(llama::Event::Piece(p)) => {
                        on_token(&p);
                        text.push_str(&p);
                    }
                    Ok(llama::Event::Done(t)) => return Ok((text, t)),
                    Ok(llama::Event::Failed(e)) => return Err(e),
                    Err(RecvTimeoutError::Timeout) => {
                        pending.cancel();
                        return Err(llama::GgufError::Generate(format!(
                            "the generation took longer than {} s; stopped",
                            self.timeouts.total.as_secs()
                        )));
                    }
                    // The worker ended with the request still queued: load again once.
                    Err(RecvTimeoutError::Disconnected) if text.is_empty() => break,
                    Err(RecvTimeoutError::Disconnected) => {
                        return Err(llama::GgufError::Ended(rt.ended().unwrap_or_default()))
                    }
                }
            }
        }
        Err(llama::GgufError::Ended(
            "the model was unloaded while the request waited".into(),
        ))
    }

    /// The loaded GGUF runtime, if any (benchmarks read its load figures).
    pub fn gguf_loaded(&self) -> Option<llama::Loaded> {
        self.runtime
            .lock()
            .unwrap()
            .as_ref()
            .filter(|r| r.alive())
            .map(|r| r.info.clone())
    }
}
