//! Failure notices in a chat conversation (issue 16): a `service-failed` event becomes "Der Dienst X ist
//! ausgefallen – soll ich nachsehen?", and a short yes on the next line becomes the question the chat answers with
//! `system.diagnose` — the same question the web page's "take a look" button sends, so the diagnosis is an ordinary,
//! audited chat turn.

use serde_json::Value;

/// Short answers that accept the offer in German (the question is then asked in German).
const YES_DE: &[&str] = &[
    "ja",
    "j",
    "jo",
    "jep",
    "jawohl",
    "klar",
    "gern",
    "gerne",
    "bitte",
    "ja bitte",
    "ja gerne",
    "ja, bitte",
    "ja mach",
    "mach",
    "mach mal",
    "los",
    "nachsehen",
    "sieh nach",
    "schau nach",
    "ok",
    "okay",
];

/// Short answers that accept the offer in English.
const YES_EN: &[&str] = &[
    "yes",
    "y",
    "yeah",
    "yep",
    "sure",
    "please",
    "yes please",
    "yes, please",
    "go ahead",
    "do it",
    "take a look",
    "look",
];

/// What failed, from a `service-failed` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureNotice {
    /// A sandbox (else a systemd unit).
    pub sandbox: bool,
    /// The unit's or sandbox's name.
    pub name: String,
    /// systemd's `Result` or the sandbox's last error, when the event carried one.
    pub detail: Option<String>,
}

impl FailureNotice {
    /// The notice of an `Event` signal (`kind`, `json`); `None` for every other kind or a document without a name.
    pub fn from_event(kind: &str, json: &str) -> Option<Self> {
        if kind != "service-failed" {
            return None;
        }
        let v: Value = serde_json::from_str(json).ok()?;
        let name = v["name"].as_str().filter(|n| !n.is_empty())?.to_owned();
        Some(Self {
            sandbox: v["target"] == "sandbox",
            name,
            detail: v["detail"].as_str().map(str::to_owned),
        })
    }

    /// The lines the conversation prints, German then English, with the answer that accepts.
    pub fn text(&self) -> String {
        let detail = self
            .detail
            .as_deref()
            .map(|d| format!(" ({})", first_line(d)))
            .unwrap_or_default();
        let (de, en) = if self.sandbox {
            ("Die Sandbox", "The sandbox")
        } else {
            ("Der Dienst", "The service")
        };
        format!(
            "{de} {name} ist ausgefallen{detail} – soll ich nachsehen? (ja)\n\
             {en} {name} has failed – shall I take a look? (yes)",
            name = self.name
        )
    }

    /// The question for the chat, in German or English.
    pub fn question(&self, german: bool) -> String {
        match (german, self.sandbox) {
            (true, false) => format!("warum ist der Dienst {} ausgefallen?", self.name),
            (true, true) => format!("warum ist die Sandbox {} ausgefallen?", self.name),
            (false, false) => format!("why did the service {} fail?", self.name),
            (false, true) => format!("why did the sandbox {} fail?", self.name),
        }
    }
}

/// What to send for `line` when `offers` are open (oldest first): the question about the one failure, or the
/// general "gibt es Probleme?" when several failed; `None` when the line is not a short yes (it then goes to the
/// chat as written and the offers lapse).
pub fn answer(line: &str, offers: &[FailureNotice]) -> Option<String> {
    let german = accepts(line)?;
    match offers {
        [] => None,
        [one] => Some(one.question(german)),
        _ if german => Some("gibt es Probleme?".to_owned()),
        _ => Some("is anything wrong?".to_owned()),
    }
}

/// Whether `line` is a short yes: `Some(true)` in German, `Some(false)` in English.
fn accepts(line: &str) -> Option<bool> {
    let l = line.trim().to_lowercase();
    let l = l.trim_end_matches(['.', '!', '?']).trim();
    if YES_DE.contains(&l) {
        Some(true)
    } else if YES_EN.contains(&l) {
        Some(false)
    } else {
        None
    }
}

fn first_line(s: &str) -> &str {
    let l = s.lines().next().unwrap_or("");
    match l.char_indices().nth(120) {
        Some((i, _)) => &l[..i],
        None => l,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit() -> FailureNotice {
        FailureNotice::from_event(
            "service-failed",
            r#"{"seq":4,"time_ms":1,"type":"service-failed","name":"nginx.service","target":"unit","detail":"exit-code"}"#,
        )
        .unwrap()
    }

    #[test]
    fn only_service_failed_events_with_a_name_are_notices() {
        assert_eq!(
            unit(),
            FailureNotice {
                sandbox: false,
                name: "nginx.service".into(),
                detail: Some("exit-code".into())
            }
        );
        let sb = FailureNotice::from_event(
            "service-failed",
            r#"{"type":"service-failed","name":"web","target":"sandbox","detail":null}"#,
        )
        .unwrap();
        assert!(sb.sandbox && sb.detail.is_none());
        assert_eq!(FailureNotice::from_event("drive", r#"{"name":"data"}"#), None);
        assert_eq!(FailureNotice::from_event("service-failed", r#"{"name":""}"#), None);
        assert_eq!(FailureNotice::from_event("service-failed", "not json"), None);
    }

    #[test]
    fn the_notice_says_what_failed_in_both_languages_and_never_looks_like_a_shell_prompt() {
        let t = unit().text();
        assert_eq!(
            t,
            "Der Dienst nginx.service ist ausgefallen (exit-code) – soll ich nachsehen? (ja)\n\
             The service nginx.service has failed – shall I take a look? (yes)"
        );
        assert!(!t.contains("$ ") && !t.contains("# "));
        let long = FailureNotice {
            sandbox: true,
            name: "web".into(),
            detail: Some(format!("{}\nsecond line", "x".repeat(300))),
        };
        let t = long.text();
        assert!(
            t.starts_with("Die Sandbox web ist ausgefallen (") && !t.contains("second"),
            "{t}"
        );
        assert!(t.lines().next().unwrap().chars().count() < 200, "{t}");
    }

    #[test]
    fn a_short_yes_asks_the_question_in_its_language_and_anything_else_goes_on_as_written() {
        let one = [unit()];
        assert_eq!(
            answer("Ja!", &one).as_deref(),
            Some("warum ist der Dienst nginx.service ausgefallen?")
        );
        assert_eq!(
            answer(" yes please ", &one).as_deref(),
            Some("why did the service nginx.service fail?")
        );
        assert_eq!(answer("nein", &one), None);
        assert_eq!(answer("zeig mir den Systemstatus", &one), None);
        assert_eq!(answer("ja", &[]), None);
        let two = [
            unit(),
            FailureNotice::from_event("service-failed", r#"{"name":"web","target":"sandbox"}"#).unwrap(),
        ];
        assert_eq!(answer("ja", &two).as_deref(), Some("gibt es Probleme?"));
        assert_eq!(answer("y", &two).as_deref(), Some("is anything wrong?"));
        assert_eq!(two[1].question(true), "warum ist die Sandbox web ausgefallen?");
    }
}
