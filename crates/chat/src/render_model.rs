//! Chat replies for the model operations and the privacy channels (issue 14), in German or English: what will be
//! done, the backends and GGUF files, the active model (and whether questions leave the appliance), the test's
//! timing, and the channels by which data can leave, each with the phrase or operation that switches it.

use std::fmt::Write;

use cacheos_core::model::{BackendKind, ModelChoice, ModelStatus};
use cacheos_core::{Operation, Output};

use crate::engine::Lang;

fn mib(b: u64) -> String {
    format!("{:.0} MiB", b as f64 / (1024.0 * 1024.0))
}

fn choice(c: &ModelChoice, de: bool) -> String {
    match c.backend {
        BackendKind::Openai => format!(
            "{} {} {} {}",
            if de { "Modell" } else { "model" },
            c.model.as_deref().unwrap_or("?"),
            if de { "am Server" } else { "on the server" },
            c.target
        ),
        BackendKind::Gguf => match &c.drive {
            Some(d) => format!(
                "GGUF {} {} {d}",
                c.model.as_deref().unwrap_or(&c.target),
                if de { "auf Laufwerk" } else { "on drive" }
            ),
            None => format!("GGUF {}", c.target),
        },
    }
}

/// What the chat is about to do.
pub fn explain(op: &Operation, lang: Lang) -> String {
    let de = lang == Lang::De;
    let s = match op {
        Operation::ModelList => ("Ich zeige die Sprachmodelle.", "Showing the language models."),
        Operation::ModelUse(a) => {
            let what = match (&a.url, &a.drive, &a.path) {
                (Some(u), _, _) => {
                    format!("{} {u}", if de { "den Modellserver" } else { "the model server" })
                }
                (_, Some(d), _) => format!(
                    "{} {d}",
                    if de {
                        "das Modell auf Laufwerk"
                    } else {
                        "the model on drive"
                    }
                ),
                (_, _, Some(p)) => format!("{} {p}", if de { "das Modell" } else { "the model" }),
                _ => "?".into(),
            };
            return if de {
                format!("Ich nutze {what} (model.use).")
            } else {
                format!("Using {what} (model.use).")
            };
        }
        Operation::ModelStatus => (
            "Ich zeige das aktive Sprachmodell.",
            "Showing the active language model.",
        ),
        Operation::ModelUnload => ("Ich schalte das Sprachmodell ab.", "Switching the language model off."),
        Operation::ModelTest => ("Ich teste das Sprachmodell.", "Testing the language model."),
        Operation::PrivacyChannels => (
            "Ich zeige, was Daten aus der Appliance senden kann.",
            "Showing what can send data off the appliance.",
        ),
        _ => ("", ""),
    };
    (if de { s.0 } else { s.1 }).to_string()
}

fn status(st: &ModelStatus, de: bool) -> String {
    let mut s = String::new();
    match &st.active {
        None => {
            let _ = writeln!(
                s,
                "{}",
                if de {
                    "Kein Sprachmodell aktiv: der Chat versteht mit seinen eigenen Regeln, nichts verlässt die Appliance."
                } else {
                    "No language model is active: the chat understands with its own rules, nothing leaves the appliance."
                }
            );
        }
        Some(c) => {
            let _ = writeln!(
                s,
                "{}: {}{}",
                if de { "Aktiv" } else { "Active" },
                choice(c, de),
                if st.loaded {
                    if de {
                        " (bereit)"
                    } else {
                        " (ready)"
                    }
                } else if de {
                    " (lädt bei der ersten Frage)"
                } else {
                    " (loads on the first question)"
                }
            );
            if let Some(m) = st.memory_bytes {
                let _ = writeln!(s, "{}: {}", if de { "Speicher" } else { "Memory" }, mib(m));
            }
            if let Some(t) = st.last_tokens_per_s {
                let _ = writeln!(s, "{}: {t:.1} tokens/s", if de { "Zuletzt" } else { "Last" });
            }
            if st.api_key_set {
                let _ = writeln!(
                    s,
                    "{}",
                    if de {
                        "Ein API-Schlüssel ist gesetzt (er wird nie angezeigt)."
                    } else {
                        "An API key is set (it is never shown)."
                    }
                );
            }
            if st.remote {
                let _ = writeln!(
                    s,
                    "{}",
                    if de {
                        "Achtung: Fragen, die die Regeln nicht verstehen, gehen an diesen Server außerhalb der Appliance."
                    } else {
                        "Note: questions the rules do not understand go to this server outside the appliance."
                    }
                );
            }
        }
    }
    if let Some(e) = &st.last_error {
        let _ = writeln!(s, "{}: {e}", if de { "Letzter Fehler" } else { "Last error" });
    }
    s
}

/// The result of a model or privacy operation, or `None` for other outputs.
pub fn output(o: &Output, lang: Lang) -> Option<String> {
    let de = lang == Lang::De;
    let mut s = String::new();
    match o {
        Output::ModelList(l) => {
            for b in &l.backends {
                let _ = writeln!(
                    s,
                    "{}: {}{}",
                    b.kind.as_str(),
                    if b.available {
                        if de {
                            "verfügbar"
                        } else {
                            "available"
                        }
                    } else if de {
                        "nicht in diesem Build"
                    } else {
                        "not in this build"
                    },
                    if b.active {
                        if de {
                            " — aktiv"
                        } else {
                            " — active"
                        }
                    } else {
                        ""
                    }
                );
            }
            if l.files.is_empty() {
                let _ = writeln!(
                    s,
                    "{}",
                    if de {
                        "Keine GGUF-Dateien gefunden (in /var/lib/cacheos/models oder auf eingehängten Laufwerken)."
                    } else {
                        "No GGUF files found (in /var/lib/cacheos/models or on attached drives)."
                    }
                );
            }
            for f in &l.files {
                let mut facts = vec![mib(f.size)];
                facts.extend(f.quantisation.clone());
                facts.extend(f.architecture.clone());
                if let Some(c) = f.context_length {
                    facts.push(format!("{} {c}", if de { "Kontext" } else { "context" }));
                }
                if let Some(p) = &f.problem {
                    facts.push(format!("{}: {p}", if de { "unbrauchbar" } else { "unusable" }));
                }
                let _ = writeln!(
                    s,
                    "{} {}{} ({}){}",
                    if f.active { "*" } else { "-" },
                    f.path,
                    f.drive
                        .as_ref()
                        .map(|d| format!(" [{} {d}]", if de { "Laufwerk" } else { "drive" }))
                        .unwrap_or_default(),
                    facts.join(", "),
                    if f.active {
                        if de {
                            " — aktiv"
                        } else {
                            " — active"
                        }
                    } else {
                        ""
                    }
                );
            }
            if let Some(a) = &l.active {
                if a.backend == BackendKind::Openai {
                    let _ = writeln!(s, "{}: {}", if de { "Aktiv" } else { "Active" }, choice(a, de));
                }
            }
        }
        Output::ModelStatus(st) => s += &status(st, de),
        Output::ModelTest(t) => {
            let _ = writeln!(
                s,
                "{} {}: {} {} ms, {:.1} tokens/s ({} tokens)",
                t.backend.as_str(),
                t.model,
                if de { "erstes Token nach" } else { "first token after" },
                t.first_token_ms,
                t.tokens_per_s,
                t.tokens
            );
            let _ = writeln!(s, "„{}“", t.text.trim());
        }
        Output::Privacy(p) => {
            if p.open == 0 {
                let _ = writeln!(
                    s,
                    "{}",
                    if de {
                        "Kein Kanal ist offen: nichts verlässt die Appliance."
                    } else {
                        "No channel is open: nothing leaves the appliance."
                    }
                );
            } else {
                let _ = writeln!(
                    s,
                    "{} {}:",
                    p.open,
                    if de { "Kanal/Kanäle offen" } else { "channel(s) open" }
                );
            }
            for c in &p.channels {
                let state = match (c.state.as_str(), de) {
                    ("open", true) => "offen",
                    ("local", true) => "nur lokal",
                    ("closed", true) => "zu",
                    (x, _) => x,
                };
                let _ = writeln!(
                    s,
                    "- {} {}: {state} — {} ({}: {})",
                    c.kind,
                    c.name,
                    c.detail,
                    if de { "schalten mit" } else { "switch with" },
                    c.switch
                );
            }
        }
        _ => return None,
    }
    Some(s)
}

/// The line a reply gets when a model, not the rules, read the request.
pub fn provenance(backend: &str, model: &str, remote: bool, lang: Lang) -> String {
    match (lang, remote) {
        (Lang::De, true) => {
            format!("(gelesen vom Sprachmodell {model} über {backend}; die Frage ging an diesen Server)")
        }
        (Lang::De, false) => format!("(gelesen vom Sprachmodell {model} über {backend})"),
        (Lang::En, true) => format!("(read by language model {model} via {backend}; the question went to that server)"),
        (Lang::En, false) => format!("(read by language model {model} via {backend})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cacheos_core::model::{PrivacyChannel, PrivacyReport};

    #[test]
    fn status_says_when_questions_leave() {
        let st = ModelStatus {
            active: Some(ModelChoice {
                backend: BackendKind::Openai,
                target: "http://192.168.1.5:8080".into(),
                model: Some("qwen".into()),
                threads: None,
                drive: None,
            }),
            loaded: true,
            remote: true,
            api_key_set: true,
            ..Default::default()
        };
        let de = output(&Output::ModelStatus(st.clone()), Lang::De).unwrap();
        assert!(
            de.contains("außerhalb der Appliance") && de.contains("nie angezeigt"),
            "{de}"
        );
        let en = output(&Output::ModelStatus(ModelStatus::default()), Lang::En).unwrap();
        assert!(en.contains("No language model is active"), "{en}");
    }

    #[test]
    fn privacy_lists_each_channel_with_its_switch() {
        let p = PrivacyReport {
            channels: vec![PrivacyChannel {
                kind: "model-endpoint".into(),
                name: "http://h".into(),
                state: "open".into(),
                detail: "questions go there".into(),
                switch: "model.unload".into(),
            }],
            open: 1,
        };
        let s = output(&Output::Privacy(p), Lang::De).unwrap();
        assert!(s.contains("offen") && s.contains("model.unload"), "{s}");
    }
}
