//! Exchangeable language models (issue 14) and the privacy channels: the arguments and results of `model.list`,
//! `model.use`, `model.status`, `model.unload`, `model.test` and `privacy.channels`, and the narrow [`ModelHost`]
//! trait behind which the backends live (the OpenAI-compatible HTTP client and the in-process GGUF runtime are in
//! `crates/model`; the core knows no HTTP). No backend is active on a fresh appliance; the active choice is kept as
//! store record kind [`MODEL_KIND`], key [`MODEL_KEY`], without the API key (the host keeps that in a file of mode
//! 0600 and only ever says whether one is set).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Store record kind of the active model choice.
pub const MODEL_KIND: &str = "model";
/// Store record key of the active model choice.
pub const MODEL_KEY: &str = "active";

/// Arguments of `model.use`: exactly one of `path` (a GGUF file), `drive` (a GGUF file on an attached drive,
/// `file` below its first mounted file system, or the only GGUF file on it) or `url` (an OpenAI-compatible
/// endpoint, with `model` naming the served model).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelUseArgs {
    /// Absolute path of a GGUF file (below `/var/lib/cacheos/models` or an attached drive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// An attached drive holding the GGUF file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drive: Option<String>,
    /// With `drive`: the file's path relative to the drive's file system (default: the only `.gguf` file on it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Base URL of an OpenAI-compatible server (`http://192.168.1.5:8080`, `https://api.example.com/v1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// With `url`: the served model's name (default: the first one `GET /v1/models` lists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// With `url`: an API key sent as `Authorization: Bearer`; kept in a file of mode 0600, never shown again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// With a GGUF file: CPU threads for generation (default: the number of cores).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<u32>,
}

impl ModelUseArgs {
    /// The arguments as the audit log keeps them: the API key replaced by `"(set)"`.
    pub fn redacted(&self) -> Self {
        Self {
            api_key: self.api_key.as_ref().map(|_| "(set)".into()),
            ..self.clone()
        }
    }
}

/// Which backend a model choice uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum BackendKind {
    /// An OpenAI-compatible HTTP server (llama-server, Ollama, vLLM, LocalAI, hosted services).
    Openai,
    /// A GGUF file run in-process by llama.cpp.
    Gguf,
}

impl BackendKind {
    /// The serde name.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Openai => "openai",
            BackendKind::Gguf => "gguf",
        }
    }
}

/// The resolved choice `model.use` hands to the host and keeps in the store (never with the API key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ModelChoice {
    /// The backend.
    pub backend: BackendKind,
    /// The endpoint's base URL (openai) or the GGUF file's absolute path (gguf).
    pub target: String,
    /// The model's name: as the server names it, or the GGUF file name.
    #[serde(default)]
    pub model: Option<String>,
    /// Generation threads (gguf).
    #[serde(default)]
    pub threads: Option<u32>,
    /// The drive the file is on, if any.
    #[serde(default)]
    pub drive: Option<String>,
}

/// A GGUF file `model.list` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GgufFile {
    /// Absolute path.
    pub path: String,
    /// The drive it is on (none: the models directory).
    pub drive: Option<String>,
    /// Size in bytes.
    pub size: u64,
    /// Model name from the GGUF metadata (`general.name`), if readable.
    pub name: Option<String>,
    /// Architecture (`general.architecture`), if readable.
    pub architecture: Option<String>,
    /// Quantisation (from `general.file_type`, e.g. `Q4_1`), if readable.
    pub quantisation: Option<String>,
    /// Training context length (`<arch>.context_length`), if readable.
    pub context_length: Option<u64>,
    /// Whether this file is the active model.
    pub active: bool,
    /// Why the file cannot be used, if it cannot (not GGUF, truncated, …).
    pub problem: Option<String>,
}

/// A backend this build offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BackendInfo {
    /// The backend.
    pub kind: BackendKind,
    /// Whether this build can run it (the GGUF runtime is a build feature).
    pub available: bool,
    /// Whether it is the active one.
    pub active: bool,
    /// One line about it.
    pub detail: String,
}

/// The result of `model.list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ModelList {
    /// The backends.
    pub backends: Vec<BackendInfo>,
    /// GGUF files in the models directory and on attached drives.
    pub files: Vec<GgufFile>,
    /// The active choice, if any.
    pub active: Option<ModelChoice>,
}

/// The result of `model.status`, `model.use` and `model.unload`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ModelStatus {
    /// The active choice (none: no model; the chat uses its own understanding only).
    pub active: Option<ModelChoice>,
    /// Whether the model is loaded (a GGUF in memory) or the endpoint answered.
    pub loaded: bool,
    /// Memory the loaded model uses, in bytes.
    pub memory_bytes: Option<u64>,
    /// Tokens per second of the last generation.
    pub last_tokens_per_s: Option<f64>,
    /// Whether an API key is set for the endpoint (the key itself is never shown).
    pub api_key_set: bool,
    /// Whether questions leave the appliance (a non-loopback endpoint).
    pub remote: bool,
    /// The last error, if the last request failed.
    pub last_error: Option<String>,
}

/// The result of `model.test`: a fixed prompt's timing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ModelTestResult {
    /// The backend.
    pub backend: BackendKind,
    /// The model's name.
    pub model: String,
    /// Milliseconds until the first token.
    pub first_token_ms: u64,
    /// Tokens per second after the first.
    pub tokens_per_s: f64,
    /// Tokens generated.
    pub tokens: u32,
    /// The generated text (for a look).
    pub text: String,
}

/// Why a backend could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum ModelHostError {
    /// The argument named is wrong (a URL without http/https, a file that is not GGUF, …).
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// Which argument.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// No model is active.
    #[error("no model is in use; choose one with model.use")]
    NoModel,
    /// The model needs more memory than it may use.
    #[error(
        "the model needs about {} MiB (file, context cache and buffers) but may use only {} MiB; free memory or \
         choose a smaller model",
        .needed >> 20, .allowed >> 20
    )]
    TooLarge {
        /// Bytes needed (file size plus context).
        needed: u64,
        /// Bytes allowed.
        allowed: u64,
    },
    /// This build lacks the backend.
    #[error("{0}")]
    Unavailable(String),
    /// The backend failed (the message says how: HTTP status, time-out, load error).
    #[error("{0}")]
    Failed(String),
}

/// The backends, behind one narrow door (real: `cacheos_model::ModelManager`; fake: [`FakeModels`]).
pub trait ModelHost: Send + Sync {
    /// The backends this build offers (`active` is filled by the core).
    fn backends(&self) -> Vec<BackendInfo>;
    /// GGUF files in the models directory and in the given `(drive, root)` directories.
    fn files(&self, drive_roots: &[(String, std::path::PathBuf)]) -> Vec<GgufFile>;
    /// Makes `choice` the active model (checks the endpoint or the file; loads lazily). `api_key`: `Some` replaces
    /// the stored key (an empty one removes it), `None` keeps it for the same endpoint and drops it otherwise.
    fn activate(&self, choice: &ModelChoice, api_key: Option<&str>) -> Result<ModelChoice, ModelHostError>;
    /// Status of the active model.
    fn status(&self) -> ModelStatus;
    /// Unloads and deactivates the model, forgetting the API key.
    fn unload(&self) -> Result<(), ModelHostError>;
    /// Runs the fixed test prompt.
    fn test(&self) -> Result<ModelTestResult, ModelHostError>;
}

/// A part of CacheOS that can send data off the appliance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PrivacyChannel {
    /// What it is: `model-endpoint`, `sandbox-nat`, `web-port`, `timestamp-authority`.
    pub kind: String,
    /// Its name (the endpoint URL, the sandbox's name, the listen address).
    pub name: String,
    /// `open` (data can leave now), `closed` or `local` (configured, but only to this machine).
    pub state: String,
    /// One line: what goes out and where.
    pub detail: String,
    /// The operation that switches it (with its arguments as REST takes them).
    pub switch: String,
}

/// The result of `privacy.channels`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PrivacyReport {
    /// Every channel, open ones first.
    pub channels: Vec<PrivacyChannel>,
    /// How many are open.
    pub open: usize,
}

/// Whether `url`'s host is a loopback address (`localhost`, 127.0.0.0/8, `::1`).
pub fn is_loopback_url(url: &str) -> bool {
    let rest = url.split_once("://").map(|x| x.1).unwrap_or(url);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map(|x| x.1).unwrap_or(authority);
    let host = if let Some(h) = host_port.strip_prefix('[') {
        h.split(']').next().unwrap_or("")
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

/// Checks an endpoint URL: `http` or `https`, a host, no credentials, no spaces. Returns it without a trailing `/`.
pub fn check_endpoint_url(url: &str) -> Result<String, String> {
    let u = url.trim();
    let Some((scheme, rest)) = u.split_once("://") else {
        return Err(format!("{u:?} is not a URL; write it as http://HOST:PORT"));
    };
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(format!("scheme {scheme:?} is not supported; use http or https"));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() {
        return Err(format!("{u:?} names no host"));
    }
    if authority.contains('@') {
        return Err("credentials in the URL are not accepted; give the key as api_key".into());
    }
    if u.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("the URL must not contain spaces".into());
    }
    if u.len() > 2048 {
        return Err("the URL is longer than 2048 bytes".into());
    }
    Ok(u.trim_end_matches('/').to_string())
}

/// A recording fake host for tests of the core and the front ends.
#[derive(Default)]
pub struct FakeModels {
    state: std::sync::Mutex<FakeState>,
}

#[derive(Default)]
struct FakeState {
    active: Option<ModelChoice>,
    key: Option<String>,
    /// Every call, for assertions.
    calls: Vec<String>,
    files: Vec<GgufFile>,
}

impl FakeModels {
    /// A fake offering these files.
    pub fn with_files(files: Vec<GgufFile>) -> Self {
        let f = Self::default();
        f.state.lock().unwrap().files = files;
        f
    }

    /// The calls so far (`activate openai http://…`, `unload`, …).
    pub fn calls(&self) -> Vec<String> {
        self.state.lock().unwrap().calls.clone()
    }

    /// The stored API key (tests check it is kept and never echoed).
    pub fn key(&self) -> Option<String> {
        self.state.lock().unwrap().key.clone()
    }
}

impl ModelHost for FakeModels {
    fn backends(&self) -> Vec<BackendInfo> {
        vec![
            BackendInfo {
                kind: BackendKind::Openai,
                available: true,
                active: false,
                detail: "fake".into(),
            },
            BackendInfo {
                kind: BackendKind::Gguf,
                available: true,
                active: false,
                detail: "fake".into(),
            },
        ]
    }

    fn files(&self, _drive_roots: &[(String, std::path::PathBuf)]) -> Vec<GgufFile> {
        self.state.lock().unwrap().files.clone()
    }

    fn activate(&self, choice: &ModelChoice, api_key: Option<&str>) -> Result<ModelChoice, ModelHostError> {
        let mut s = self.state.lock().unwrap();
        s.calls
            .push(format!("activate {} {}", choice.backend.as_str(), choice.target));
        if choice.target.contains("unreachable") {
            return Err(ModelHostError::Failed(format!("{} did not answer", choice.target)));
        }
        let same = s.active.as_ref().is_some_and(|a| a.target == choice.target);
        match api_key {
            Some("") => s.key = None,
            Some(k) => s.key = Some(k.into()),
            None if !same => s.key = None,
            None => {}
        }
        let mut c = choice.clone();
        if c.model.is_none() {
            c.model = Some("fake-model".into());
        }
        s.active = Some(c.clone());
        Ok(c)
    }

    fn status(&self) -> ModelStatus {
        let s = self.state.lock().unwrap();
        ModelStatus {
            active: s.active.clone(),
            loaded: s.active.is_some(),
            api_key_set: s.key.is_some(),
            remote: s
                .active
                .as_ref()
                .is_some_and(|a| a.backend == BackendKind::Openai && !is_loopback_url(&a.target)),
            ..Default::default()
        }
    }

    fn unload(&self) -> Result<(), ModelHostError> {
        let mut s = self.state.lock().unwrap();
        s.calls.push("unload".into());
        s.active = None;
        s.key = None;
        Ok(())
    }

    fn test(&self) -> Result<ModelTestResult, ModelHostError> {
        let s = self.state.lock().unwrap();
        let a = s.active.as_ref().ok_or(ModelHostError::NoModel)?;
        Ok(ModelTestResult {
            backend: a.backend,
            model: a.model.clone().unwrap_or_default(),
            first_token_ms: 1,
            tokens_per_s: 100.0,
            tokens: 3,
            text: "ok".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_urls_are_recognised() {
        assert!(is_loopback_url("http://127.0.0.1:8080"));
        assert!(is_loopback_url("http://localhost/v1"));
        assert!(is_loopback_url("http://[::1]:8080/v1"));
        assert!(!is_loopback_url("http://192.168.1.5:8080"));
        assert!(!is_loopback_url("https://api.example.com/v1"));
        assert!(!is_loopback_url("http://127.0.0.1.evil.example/"));
    }

    #[test]
    fn endpoint_urls_are_checked() {
        assert_eq!(check_endpoint_url("http://h:8080/").unwrap(), "http://h:8080");
        assert!(check_endpoint_url("ftp://h").unwrap_err().contains("scheme"));
        assert!(check_endpoint_url("h:8080").unwrap_err().contains("not a URL"));
        assert!(check_endpoint_url("http://u:p@h").unwrap_err().contains("credentials"));
        assert!(check_endpoint_url("http:///x").unwrap_err().contains("no host"));
    }

    #[test]
    fn redaction_hides_the_key() {
        let a = ModelUseArgs {
            url: Some("http://h".into()),
            api_key: Some("sk-secret".into()),
            ..Default::default()
        };
        let v = serde_json::to_string(&a.redacted()).unwrap();
        assert!(!v.contains("sk-secret"), "{v}");
        assert!(v.contains("(set)"));
    }
}
