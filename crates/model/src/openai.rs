//! A small typed client of the OpenAI-compatible surface that llama.cpp's `llama-server`, Ollama, vLLM, LocalAI and
//! hosted services share: `GET /v1/models` and `POST /v1/chat/completions` with `response_format` `json_schema` and
//! `stream: true` (server-sent events, `data: {choices:[{delta:{content}}]}` lines up to `data: [DONE]`). No
//! `tool_choice`, no parallel tool calls. Built on `ureq` (blocking, like `Core::execute` and the chat service that
//! call it; already a dependency of the daemon, so only rustls is new): the request runs on a worker thread that
//! hands each event over a channel, so the caller can apply three time-outs (connect, first token, stall between
//! chunks) plus an overall limit, and stop a generation at once.

use std::io::{BufRead, BufReader};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cacheos_chat::model::{ModelError, ModelRequest};
use serde::Deserialize;
use serde_json::{json, Value};

/// Time-outs of the client.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Connecting (TCP and TLS).
    pub connect: Duration,
    /// From sending the request to the first piece of content (the server reads the prompt meanwhile).
    pub first_token: Duration,
    /// Between two pieces of a stream once it runs.
    pub stall: Duration,
    /// The whole generation.
    pub total: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            first_token: Duration::from_secs(120),
            stall: Duration::from_secs(30),
            total: Duration::from_secs(300),
        }
    }
}

/// Why a request to an endpoint failed. Each variant names the URL.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OpenAiError {
    /// No connection (refused, DNS, TLS, connect time-out).
    #[error("{url} could not be reached: {reason}")]
    Unreachable {
        /// The URL.
        url: String,
        /// What the transport said.
        reason: String,
    },
    /// An HTTP error status.
    #[error("{url} answered HTTP {status}: {body}")]
    Status {
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
        /// The start of the body.
        body: String,
    },
    /// A plain request (`GET /v1/models`) got no answer in time.
    #[error("{url} did not answer within {secs} s")]
    NoAnswer {
        /// The URL.
        url: String,
        /// The time-out.
        secs: f64,
    },
    /// Nothing came within the first-token time-out.
    #[error("{url} did not answer in time (no first token within {secs} s)")]
    FirstToken {
        /// The URL.
        url: String,
        /// The time-out.
        secs: f64,
    },
    /// A running stream went quiet.
    #[error("the stream from {url} stalled (nothing for {secs} s); stopped")]
    Stalled {
        /// The URL.
        url: String,
        /// The time-out.
        secs: f64,
    },
    /// The whole generation took too long.
    #[error("{url} took longer than {secs} s; stopped")]
    TooLong {
        /// The URL.
        url: String,
        /// The limit.
        secs: f64,
    },
    /// The answer (or one event of it) is not JSON.
    #[error("{url} answered something that is not JSON: {reason}")]
    NotJson {
        /// The URL.
        url: String,
        /// The parser's message.
        reason: String,
    },
    /// JSON, but not of the expected shape.
    #[error("{url} answered without {what}")]
    Shape {
        /// The URL.
        url: String,
        /// What was missing.
        what: &'static str,
    },
    /// The server reported an error inside the stream.
    #[error("{url} reported an error: {message}")]
    Server {
        /// The URL.
        url: String,
        /// Its error object.
        message: String,
    },
    /// The connection broke, or the stream ended before `[DONE]`.
    #[error("the stream from {url} broke: {reason}")]
    Broken {
        /// The URL.
        url: String,
        /// How.
        reason: String,
    },
    /// Stopped by the caller.
    #[error("stopped")]
    Stopped,
}

impl From<OpenAiError> for ModelError {
    fn from(e: OpenAiError) -> Self {
        ModelError(e.to_string())
    }
}

/// The client of one endpoint.
pub struct OpenAiClient {
    base: String,
    key: Option<String>,
    agent: ureq::Agent,
    timeouts: Timeouts,
    stop: Arc<AtomicU64>,
}

/// Timing of one generation.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timing {
    /// Until the first piece of content.
    pub first_token: Option<Duration>,
    /// Content pieces received (servers send about one token per event).
    pub tokens: u32,
    /// The whole generation.
    pub total: Duration,
}

impl Timing {
    /// Tokens per second after the first.
    pub fn tokens_per_s(&self) -> f64 {
        let after = self
            .total
            .saturating_sub(self.first_token.unwrap_or_default())
            .as_secs_f64();
        if self.tokens > 1 && after > 0.0 {
            (self.tokens - 1) as f64 / after
        } else {
            0.0
        }
    }
}

/// `GET /v1/models` (OpenAI, llama-server, vLLM) or Ollama's `models` list.
#[derive(Deserialize)]
struct ModelsDoc {
    #[serde(alias = "models")]
    data: Vec<ModelEntry>,
}

#[derive(Deserialize)]
struct ModelEntry {
    #[serde(alias = "name")]
    id: String,
}

/// One streamed event: `{"choices":[{"delta":{"content":"…"},"finish_reason":null}]}` or `{"error":…}`.
#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<ChunkChoice>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct ChunkChoice {
    #[serde(default)]
    delta: Option<Delta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
}

/// A whole (non-streamed) completion, for servers that ignore `stream`.
#[derive(Deserialize)]
struct Completion {
    choices: Vec<CompletionChoice>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct CompletionChoice {
    message: CompletionMessage,
}

#[derive(Deserialize)]
struct CompletionMessage {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    completion_tokens: Option<u32>,
}

/// What the worker thread hands over.
enum Event {
    /// A piece of content.
    Piece(String),
    /// Something arrived that is not content (a role delta, a keep-alive comment): the stream lives.
    Alive,
    /// The end (`[DONE]`, a finish reason followed by the end, or a whole completion).
    Done { tokens: Option<u32> },
    /// A failure.
    Failed(OpenAiError),
}

fn transport(e: ureq::Error, url: &str, secs: f64) -> OpenAiError {
    match e {
        ureq::Error::Status(status, r) => {
            let body: String = r.into_string().unwrap_or_default().chars().take(300).collect();
            OpenAiError::Status {
                url: url.into(),
                status,
                body: body.trim().to_string(),
            }
        }
        ureq::Error::Transport(t) => {
            let reason = t.to_string();
            if reason.contains("timed out") || reason.contains("WouldBlock") || reason.contains("temporarily") {
                // The socket's own read time-out: the request was sent, no answer came.
                OpenAiError::NoAnswer { url: url.into(), secs }
            } else {
                OpenAiError::Unreachable {
                    url: url.into(),
                    reason,
                }
            }
        }
    }
}

/// Reads the SSE stream (or a whole completion) and sends events until the end; stops when the receiver is gone.
fn pump(resp: ureq::Response, url: &str, tx: &mpsc::Sender<Event>) {
    let is_sse = resp.content_type() == "text/event-stream";
    let reader = resp.into_reader();
    if !is_sse {
        let ev = match serde_json::from_reader::<_, Value>(reader) {
            Err(e) => Event::Failed(OpenAiError::NotJson {
                url: url.into(),
                reason: e.to_string(),
            }),
            Ok(v) => match serde_json::from_value::<Completion>(v) {
                Ok(c) => match c.choices.into_iter().next().and_then(|c| c.message.content) {
                    Some(text) => {
                        let _ = tx.send(Event::Piece(text));
                        Event::Done {
                            tokens: c.usage.and_then(|u| u.completion_tokens),
                        }
                    }
                    None => Event::Failed(OpenAiError::Shape {
                        url: url.into(),
                        what: "choices[0].message.content",
                    }),
                },
                Err(_) => Event::Failed(OpenAiError::Shape {
                    url: url.into(),
                    what: "choices[0].message.content",
                }),
            },
        };
        let _ = tx.send(ev);
        return;
    }
    let mut lines = BufReader::new(reader);
    let mut line = String::new();
    let mut finished = false;
    loop {
        line.clear();
        let n = match lines.read_line(&mut line) {
            Ok(n) => n,
            Err(e) => {
                // A socket time-out is reported by the caller's own clock (first token or stall).
                if !matches!(e.kind(), std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock) {
                    let _ = tx.send(Event::Failed(OpenAiError::Broken {
                        url: url.into(),
                        reason: e.to_string(),
                    }));
                }
                return;
            }
        };
        if n == 0 {
            let _ = tx.send(if finished {
                Event::Done { tokens: None }
            } else {
                Event::Failed(OpenAiError::Broken {
                    url: url.into(),
                    reason: "it ended before [DONE]".into(),
                })
            });
            return;
        }
        let Some(data) = line.trim_end().strip_prefix("data:") else {
            if tx.send(Event::Alive).is_err() {
                return;
            }
            continue;
        };
        let data = data.trim();
        if data == "[DONE]" {
            let _ = tx.send(Event::Done { tokens: None });
            return;
        }
        let chunk: Chunk = match serde_json::from_str(data) {
            Ok(c) => c,
            Err(e) => {
                let _ = tx.send(Event::Failed(OpenAiError::NotJson {
                    url: url.into(),
                    reason: format!("an event: {e}"),
                }));
                return;
            }
        };
        if let Some(err) = chunk.error {
            let message = err
                .get("message")
                .and_then(Value::as_str)
                .map(String::from)
                .unwrap_or_else(|| err.to_string());
            let _ = tx.send(Event::Failed(OpenAiError::Server {
                url: url.into(),
                message,
            }));
            return;
        }
        let mut sent = false;
        for c in chunk.choices {
            if c.finish_reason.is_some() {
                finished = true;
            }
            if let Some(piece) = c.delta.and_then(|d| d.content).filter(|p| !p.is_empty()) {
                sent = true;
                if tx.send(Event::Piece(piece)).is_err() {
                    return;
                }
            }
        }
        if !sent && tx.send(Event::Alive).is_err() {
            return;
        }
    }
}

impl OpenAiClient {
    /// A client of the server at `base` (`http://host:port` or a URL ending in `/v1`). `stop`: a generation stops
    /// when this counter changes while it runs.
    pub fn new(base: &str, key: Option<String>, timeouts: Timeouts, stop: Arc<AtomicU64>) -> Self {
        // The socket's read time-out is only a backstop that ends the worker thread; the caller's clock applies
        // the first-token and stall time-outs.
        let backstop = timeouts.first_token.max(timeouts.stall) + Duration::from_secs(1);
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(timeouts.connect)
            .timeout_read(backstop)
            .timeout_write(backstop)
            .build();
        Self {
            base: base.trim_end_matches('/').to_string(),
            key,
            agent,
            timeouts,
            stop,
        }
    }

    fn url(&self, path: &str) -> String {
        if self.base.ends_with("/v1") {
            format!("{}{path}", self.base)
        } else {
            format!("{}/v1{path}", self.base)
        }
    }

    fn req(&self, method: &str, url: &str) -> ureq::Request {
        let r = self.agent.request(method, url);
        match &self.key {
            Some(k) => r.set("Authorization", &format!("Bearer {k}")),
            None => r,
        }
    }

    /// The models the server serves (`GET /v1/models`).
    pub fn models(&self) -> Result<Vec<String>, OpenAiError> {
        let url = self.url("/models");
        let limit = self.timeouts.connect + self.timeouts.stall;
        let r = self
            .req("GET", &url)
            .timeout(limit)
            .call()
            .map_err(|e| transport(e, &url, limit.as_secs_f64()))?;
        let v: Value = r.into_json().map_err(|e| OpenAiError::NotJson {
            url: url.clone(),
            reason: e.to_string(),
        })?;
        let doc: ModelsDoc = serde_json::from_value(v).map_err(|_| OpenAiError::Shape {
            url: url.clone(),
            what: "a \"data\" list of models with \"id\"",
        })?;
        Ok(doc.data.into_iter().map(|m| m.id).collect())
    }

    /// `POST /v1/chat/completions` for `model`, streaming; `constrained`: the reply must follow `req.schema` by
    /// `response_format` `json_schema`. Returns the whole content and the timing; `on_token` gets each piece.
    pub fn chat(
        &self,
        model: &str,
        req: &ModelRequest,
        constrained: bool,
        on_token: &mut dyn FnMut(&str),
    ) -> Result<(String, Timing), OpenAiError> {
        let url = self.url("/chat/completions");
        let mut body = json!({
            "model": model,
            "messages": req.messages,
            "stream": true,
            "max_tokens": req.max_tokens,
            "temperature": 0,
        });
        if constrained {
            body["response_format"] = json!({
                "type": "json_schema",
                "json_schema": {"name": "cacheos_proposal", "strict": true, "schema": req.schema},
            });
        }
        let epoch = self.stop.load(Ordering::SeqCst);
        let started = Instant::now();
        let (tx, rx) = mpsc::channel();
        let request = self.req("POST", &url).set("Accept", "text/event-stream");
        let worker_url = url.clone();
        let backstop = self.timeouts.first_token.max(self.timeouts.stall).as_secs_f64();
        std::thread::Builder::new()
            .name("model-http".into())
            .spawn(move || match request.send_json(body) {
                Ok(resp) => pump(resp, &worker_url, &tx),
                Err(e) => {
                    let _ = tx.send(Event::Failed(transport(e, &worker_url, backstop)));
                }
            })
            .map_err(|e| OpenAiError::Broken {
                url: url.clone(),
                reason: format!("cannot start a thread: {e}"),
            })?;
        let mut timing = Timing::default();
        let mut out = String::new();
        let mut last = started;
        // Waits in short slices so a stop is seen at once.
        let slice = Duration::from_millis(50);
        loop {
            if self.stop.load(Ordering::SeqCst) != epoch {
                return Err(OpenAiError::Stopped);
            }
            let now = Instant::now();
            if now - started > self.timeouts.total {
                return Err(OpenAiError::TooLong {
                    url,
                    secs: self.timeouts.total.as_secs_f64(),
                });
            }
            if timing.first_token.is_none() && now - started > self.timeouts.first_token {
                return Err(OpenAiError::FirstToken {
                    url,
                    secs: self.timeouts.first_token.as_secs_f64(),
                });
            }
            if timing.first_token.is_some() && now - last > self.timeouts.stall {
                return Err(OpenAiError::Stalled {
                    url,
                    secs: self.timeouts.stall.as_secs_f64(),
                });
            }
            match rx.recv_timeout(slice) {
                Ok(Event::Piece(p)) => {
                    last = Instant::now();
                    timing.first_token.get_or_insert_with(|| started.elapsed());
                    timing.tokens += 1;
                    on_token(&p);
                    out.push_str(&p);
                }
                Ok(Event::Alive) => last = Instant::now(),
                Ok(Event::Done { tokens }) => {
                    if let Some(t) = tokens {
                        timing.tokens = t;
                    }
                    timing.total = started.elapsed();
                    return Ok((out, timing));
                }
                // The socket gave up waiting for the answer's head: that is the first-token time-out.
                Ok(Event::Failed(OpenAiError::NoAnswer { .. })) => {
                    return Err(OpenAiError::FirstToken {
                        url,
                        secs: self.timeouts.first_token.as_secs_f64(),
                    })
                }
                Ok(Event::Failed(e)) => return Err(e),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                // The worker ended without a word (its socket timed out): the clocks above decide next round.
                Err(mpsc::RecvTimeoutError::Disconnected) => std::thread::sleep(slice),
            }
        }
    }
}
