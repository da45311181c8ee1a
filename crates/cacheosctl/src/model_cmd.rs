//! `cacheosctl model list|use|status|unload|test|stop` and `cacheosctl privacy` (issue 14): clap definitions mapped
//! one-to-one onto the Manager's model methods. An endpoint's API key is read from a file or standard input (never
//! from the command line, where `ps` would show it) and is never printed back.

use std::io::Read;

use cacheos_dbus::client::ManagerProxy;
use cacheosctl::{failure, parse_json, Failure};
use clap::Subcommand;
use serde_json::{json, Value};

/// `cacheosctl model` subcommands.
#[derive(Debug, Subcommand)]
pub enum ModelCmd {
    /// Backends, GGUF files found (size, quantisation, context length) and the active model (model.list).
    List,
    /// Use a GGUF file, a drive's GGUF file or an OpenAI-compatible endpoint (model.use).
    Use {
        /// A GGUF file (below /var/lib/cacheos/models or on an attached drive).
        #[arg(long, conflicts_with_all = ["drive", "url"])]
        path: Option<String>,
        /// An attached drive holding the GGUF file.
        #[arg(long, conflicts_with = "url")]
        drive: Option<String>,
        /// With --drive: the file below the drive's file system (default: its only .gguf file).
        #[arg(long, requires = "drive")]
        file: Option<String>,
        /// An OpenAI-compatible server (llama-server, Ollama, vLLM, LocalAI, a hosted service): http://HOST:PORT.
        #[arg(long)]
        url: Option<String>,
        /// With --url: the served model (default: the first one the server lists).
        #[arg(long, requires = "url")]
        model: Option<String>,
        /// With --url: read the API key from this file ("-": standard input); kept with mode 0600, never shown.
        #[arg(long, requires = "url")]
        api_key_file: Option<String>,
        /// With a GGUF file: CPU threads for generation.
        #[arg(long)]
        threads: Option<u32>,
    },
    /// The active model, whether it is loaded, its memory and last tokens/s (model.status).
    Status,
    /// Switch the model off and forget the API key (model.unload).
    Unload,
    /// A fixed prompt: time to first token and tokens/s (model.test).
    Test,
    /// Stop the generations running now (a chat waiting for one answers that it was stopped).
    Stop,
}

fn read_key(src: &str) -> Result<String, Failure> {
    let mut s = String::new();
    let r = if src == "-" {
        std::io::stdin().read_to_string(&mut s).map(|_| ())
    } else {
        std::fs::read_to_string(src).map(|x| s = x)
    };
    r.map_err(|e| Failure {
        code: 6,
        message: format!("cannot read the API key from {src}: {e}"),
    })?;
    Ok(s.trim().to_string())
}

/// The body of `model.use` from the command line.
pub fn use_body(cmd: &ModelCmd) -> Result<Value, Failure> {
    let ModelCmd::Use {
        path,
        drive,
        file,
        url,
        model,
        api_key_file,
        threads,
    } = cmd
    else {
        return Ok(Value::Null);
    };
    let mut b = serde_json::Map::new();
    let mut put = |k: &str, v: &Option<String>| {
        if let Some(v) = v {
            b.insert(k.into(), json!(v));
        }
    };
    put("path", path);
    put("drive", drive);
    put("file", file);
    put("url", url);
    put("model", model);
    if let Some(src) = api_key_file {
        b.insert("api_key".into(), json!(read_key(src)?));
    }
    if let Some(t) = threads {
        b.insert("threads".into(), json!(t));
    }
    Ok(Value::Object(b))
}

fn mib(v: &Value) -> String {
    v.as_u64()
        .map(|b| format!("{:.0} MiB", b as f64 / 1048576.0))
        .unwrap_or_else(|| "-".into())
}

fn choice(c: &Value) -> String {
    match c["backend"].as_str() {
        Some("openai") => format!(
            "openai: model {} at {}",
            c["model"].as_str().unwrap_or("?"),
            c["target"].as_str().unwrap_or("?")
        ),
        _ => format!(
            "gguf: {}{}",
            c["target"].as_str().unwrap_or("?"),
            c["drive"].as_str().map(|d| format!(" (drive {d})")).unwrap_or_default()
        ),
    }
}

/// Prints `model.list`.
pub fn print_list(v: &Value) {
    for b in v["backends"].as_array().into_iter().flatten() {
        println!(
            "{:<7} {:<12} {}",
            b["kind"].as_str().unwrap_or("?"),
            if b["available"] == true {
                "available"
            } else {
                "unavailable"
            },
            b["detail"].as_str().unwrap_or("")
        );
    }
    let files = v["files"].as_array().cloned().unwrap_or_default();
    if files.is_empty() {
        println!("no GGUF files found");
    }
    for f in &files {
        println!(
            "{} {}  {}  {}  ctx {}{}{}",
            if f["active"] == true { "*" } else { " " },
            f["path"].as_str().unwrap_or("?"),
            mib(&f["size"]),
            f["quantisation"].as_str().unwrap_or("-"),
            f["context_length"]
                .as_u64()
                .map(|n| n.to_string())
                .unwrap_or("-".into()),
            f["drive"].as_str().map(|d| format!("  drive {d}")).unwrap_or_default(),
            f["problem"]
                .as_str()
                .map(|p| format!("  unusable: {p}"))
                .unwrap_or_default(),
        );
    }
    match v["active"].as_object() {
        Some(_) => println!("active: {}", choice(&v["active"])),
        None => println!("active: none (the chat uses its own understanding only)"),
    }
}

/// Prints `model.status` (also the answer of `model.use` and `model.unload`).
pub fn print_status(v: &Value) {
    if v["active"].is_null() {
        println!("no model in use (the chat uses its own understanding only)");
    } else {
        println!("{}", choice(&v["active"]));
        println!("loaded: {}", if v["loaded"] == true { "yes" } else { "no" });
        if !v["memory_bytes"].is_null() {
            println!("memory: {}", mib(&v["memory_bytes"]));
        }
        if let Some(t) = v["last_tokens_per_s"].as_f64() {
            println!("last generation: {t:.1} tokens/s");
        }
        if v["api_key_set"] == true {
            println!("API key: set");
        }
        if v["remote"] == true {
            println!("questions leave the appliance: yes (to that server)");
        }
    }
    if let Some(e) = v["last_error"].as_str() {
        println!("last error: {e}");
    }
}

/// Prints `model.test`.
pub fn print_test(v: &Value) {
    println!(
        "{} {}: first token after {} ms, {:.1} tokens/s ({} tokens)",
        v["backend"].as_str().unwrap_or("?"),
        v["model"].as_str().unwrap_or("?"),
        v["first_token_ms"],
        v["tokens_per_s"].as_f64().unwrap_or(0.0),
        v["tokens"]
    );
    println!("{}", v["text"].as_str().unwrap_or(""));
}

/// Prints `privacy.channels`.
pub fn print_privacy(v: &Value) {
    let ch = v["channels"].as_array().cloned().unwrap_or_default();
    if ch.is_empty() {
        println!("nothing can send data off the appliance");
    }
    for c in &ch {
        println!(
            "{:<7} {:<20} {}  ({}; switch: {})",
            c["state"].as_str().unwrap_or("?"),
            c["kind"].as_str().unwrap_or("?"),
            c["name"].as_str().unwrap_or("?"),
            c["detail"].as_str().unwrap_or(""),
            c["switch"].as_str().unwrap_or("")
        );
    }
    println!("{} open", v["open"]);
}

/// Runs a `cacheosctl model` subcommand.
pub async fn run(proxy: &ManagerProxy<'_>, action: ModelCmd, emit: impl Fn(&Value, fn(&Value))) -> Result<(), Failure> {
    let j = |s: String| parse_json(&s);
    match action {
        ModelCmd::List => emit(&j(proxy.list_models().await.map_err(failure)?)?, print_list),
        ModelCmd::Use { .. } => {
            let b = use_body(&action)?;
            emit(
                &j(proxy.use_model(&b.to_string()).await.map_err(failure)?)?,
                print_status,
            )
        }
        ModelCmd::Status => emit(&j(proxy.get_model_status().await.map_err(failure)?)?, print_status),
        ModelCmd::Unload => emit(&j(proxy.unload_model().await.map_err(failure)?)?, print_status),
        ModelCmd::Test => emit(&j(proxy.test_model().await.map_err(failure)?)?, print_test),
        ModelCmd::Stop => proxy.stop_model().await.map_err(failure)?,
    }
    Ok(())
}
