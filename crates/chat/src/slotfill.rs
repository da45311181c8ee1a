//! The slot filler: an operation's arguments from the typed entities of the utterance, as defined per operation in
//! `crates/chat/data/slots.toml` (data, not code: a new operation family adds a table there). Each argument names
//! the entity kinds it is taken from, in order of preference, with optional modifiers:
//!
//! - `kind` — the first entity of that kind (`sandbox`, `drive`, `image`, `path`, `size`, `cpu`, `number`, `unit`,
//!   `name`, `fs`, `command`, `quoted`, `task`, `template`, flags such as `writable`, `force`, `network` …);
//! - `a,b` — the first of the kinds that is present; `=VALUE` as the last alternative is a default (JSON or a
//!   bare string); `auto` makes a free name from the operation's object (`sandbox-1`);
//! - a trailing `!` — required: when missing, the session's last object of that kind (`sandbox`, `drive`) is used,
//!   otherwise the chat asks for it;
//! - `duration:since` — a time window as "since now minus the window"; `drive:bind` — a drive as a bind
//!   (`[{drive, read_write}]`); `negation:not` — `true` unless the request is negated; `path:subdir` — a path as
//!   a sub directory (no leading `/`); `text` — the quoted string, else the words after "über/about/for/nach".

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::{json, Map, Value};

use crate::engine::{Known, Session};
use crate::entities::Entities;

/// The slot definitions shipped with the chat.
pub const SLOTS_TOML: &str = include_str!("../data/slots.toml");

/// Slot definitions: operation → argument → spec.
pub type Slots = BTreeMap<String, BTreeMap<String, String>>;

/// The shipped slot definitions, parsed once.
pub fn slots() -> &'static Slots {
    static S: OnceLock<Slots> = OnceLock::new();
    S.get_or_init(|| parse(SLOTS_TOML).unwrap_or_default())
}

/// Parses slot definitions.
pub fn parse(toml_text: &str) -> Result<Slots, String> {
    toml::from_str(toml_text).map_err(|e| e.to_string())
}

/// Kinds of existing objects a request can name.
const OBJECT_KINDS: &[&str] = &["sandbox", "drive", "image", "task"];

/// The object kinds `op` requires (from its definition's required argument: "sandbox!", "image,path!"), or none.
pub fn required_object_kinds(op: &str) -> Vec<&'static str> {
    let Some(def) = slots().get(op) else {
        return vec![];
    };
    def.values()
        .filter(|spec| spec.ends_with('!'))
        .flat_map(|spec| {
            spec.trim_start_matches('^')
                .trim_end_matches('!')
                .split(',')
                .filter_map(|k| OBJECT_KINDS.iter().find(|o| **o == k).copied())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Whether the request names an existing object of another kind than `op` needs, and none of its kind ("data kann
/// weg": a drive, so not `sandbox.remove`). A pronoun may mean anything, so it never counts against.
pub fn names_only_other_kinds(op: &str, e: &Entities) -> bool {
    let need = required_object_kinds(op);
    if need.is_empty() || e.list.iter().any(|x| x.kind == "pronoun") {
        return false;
    }
    let has_needed = e.list.iter().any(|x| need.contains(&x.kind));
    let has_other = e
        .list
        .iter()
        .any(|x| !x.weak && OBJECT_KINDS.contains(&x.kind) && !need.contains(&x.kind));
    has_other && !has_needed
}

/// Whether the request carries a command that starts with a known program ("ping -c 3 example.com von web aus")
/// while `op` takes no command: such a reading is unlikely, whatever the words around the command suggest.
pub fn ignores_command(op: &str, e: &Entities) -> bool {
    let Some(c) = e.first("command") else { return false };
    let program = c
        .value
        .get(0)
        .and_then(Value::as_str)
        .is_some_and(|w| crate::objects::is_program(&crate::normalize::fold(w)));
    let takes = slots().get(op).is_some_and(|d| {
        d.values()
            .any(|s| s.split(',').any(|k| k.trim_start_matches('^').starts_with("command")))
    });
    program && op.contains('.') && !takes
}

/// The outcome of filling an operation's slots.
#[derive(Debug, Clone, PartialEq)]
pub enum Filled {
    /// All required arguments are there.
    Args(Value),
    /// A required argument is missing: its name, the entity kind wanted, and the arguments so far.
    Missing {
        /// The argument.
        arg: String,
        /// The entity kind it wants.
        kind: String,
        /// The arguments found so far.
        partial: Value,
    },
}

fn free_name(base: &str, known: &Known) -> String {
    (1..)
        .map(|n| format!("{base}-{n}"))
        .find(|n| !known.sandboxes.contains(n) && !known.drives.contains(n))
        .unwrap_or_else(|| base.to_string())
}

fn text_remainder(e: &Entities) -> Option<Value> {
    if let Some(q) = e.first("quoted") {
        return Some(q.value.clone());
    }
    let at = e.toks.iter().rposition(|t| {
        matches!(
            t.norm.as_str(),
            "ueber" | "about" | "for" | "nach" | "zu" | "zum" | "zur" | "on" | "regarding" | "bezueglich"
        )
    })?;
    let words: Vec<&str> = e.toks[at + 1..]
        .iter()
        .map(|t| t.raw.as_str())
        .filter(|w| {
            !matches!(
                w.to_lowercase().as_str(),
                "bitte" | "please" | "the" | "die" | "der" | "das" | "den"
            )
        })
        .collect();
    (!words.is_empty()).then(|| json!(words.join(" ")))
}

/// Whether the entities' value of `op`'s `arg` overrides the deterministic parser's (spec with a leading `^`).
pub fn overrides(op: &str, arg: &str) -> bool {
    slots()
        .get(op)
        .and_then(|d| d.get(arg))
        .is_some_and(|s| s.starts_with('^'))
}

/// Fills the arguments of `op` from the entities. `None`: no definitions for `op` (the operation takes none or is
/// not known to the chat).
pub fn fill(op: &str, e: &Entities, known: &Known, session: &Session) -> Option<Filled> {
    fill_with(slots(), op, e, known, session)
}

/// [`fill`] with explicit definitions.
pub fn fill_with(defs: &Slots, op: &str, e: &Entities, known: &Known, session: &Session) -> Option<Filled> {
    let def = defs.get(op)?;
    let mut args = Map::new();
    let object = op.split('.').next().unwrap_or("x");
    let negated = e.first("negation").is_some();
    for (arg, spec) in def {
        let spec = spec.trim_start_matches('^');
        let (spec, required) = match spec.strip_suffix('!') {
            Some(s) => (s, true),
            None => (spec, false),
        };
        let mut value: Option<Value> = None;
        let mut wanted = String::new();
        for alt in spec.split(',') {
            let alt = alt.trim();
            if let Some(d) = alt.strip_prefix('=') {
                value = Some(serde_json::from_str(d).unwrap_or_else(|_| json!(d)));
                break;
            }
            if alt == "auto" {
                value = Some(json!(free_name(
                    if object == "sandbox" { "sandbox" } else { object },
                    known
                )));
                break;
            }
            let (kind, modifier) = alt.split_once(':').unwrap_or((alt, ""));
            if wanted.is_empty() {
                wanted = kind.to_string();
            }
            if kind == "text" {
                value = text_remainder(e);
                if value.is_some() {
                    break;
                }
                continue;
            }
            if modifier == "not" {
                value = Some(json!(!negated));
                break;
            }
            let Some(ent) = e.first(kind) else { continue };
            value = Some(match modifier {
                "since" => json!(known.now_ms.saturating_sub(ent.value.as_u64().unwrap_or(0))),
                "bind" => json!([{"drive": ent.value, "read_write": e.first("writable").is_some()}]),
                "subdir" => json!(ent.value.as_str().unwrap_or("").trim_start_matches('/')),
                _ => ent.value.clone(),
            });
            break;
        }
        if value.is_none() && required {
            value = match wanted.as_str() {
                "sandbox" if e.first("pronoun").is_some() || e.list.is_empty() => {
                    session.last_sandbox.clone().map(Value::from)
                }
                "drive" if e.first("pronoun").is_some() || e.list.is_empty() => {
                    session.last_drive.clone().map(Value::from)
                }
                _ => None,
            };
        }
        match value {
            Some(v) => {
                args.insert(arg.clone(), v);
            }
            None if required => {
                return Some(Filled::Missing {
                    arg: arg.clone(),
                    kind: wanted,
                    partial: Value::Object(args),
                })
            }
            None => {}
        }
    }
    Some(Filled::Args(Value::Object(args)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::appliance_known;

    fn f(op: &str, text: &str) -> Option<Filled> {
        let k = appliance_known();
        fill(
            op,
            &Entities::find(text, &k, &Session::default()),
            &k,
            &Session::default(),
        )
    }

    #[test]
    fn shipped_definitions_parse_and_fill() {
        assert!(!slots().is_empty(), "slots.toml parses");
        assert_eq!(
            f("sandbox.stop", "fahr web runter"),
            Some(Filled::Args(json!({"name": "web"})))
        );
        let Some(Filled::Args(a)) = f(
            "sandbox.create",
            "eine debian-Sandbox namens lab mit halber Kern und Internet",
        ) else {
            panic!()
        };
        assert_eq!(
            (&a["name"], &a["template"], &a["cpu"], &a["network"]),
            (&json!("lab"), &json!("debian"), &json!(0.5), &json!("nat"))
        );
        let Some(Filled::Args(a)) = f("sandbox.create", "spin up a sandbox") else {
            panic!()
        };
        assert_eq!((&a["name"], &a["template"]), (&json!("sandbox-1"), &json!("host")));
        assert!(matches!(
            f("sandbox.stop", "stoppe die sandbox"),
            Some(Filled::Missing { .. })
        ));
        let Some(Filled::Args(a)) = f("system.history", "over the last 30 minutes") else {
            panic!()
        };
        assert_eq!(a["since_ms"], json!(10_000_000_000u64 - 1_800_000));
        assert_eq!(
            f("drive.attach", "mach debain.iso zugänglich"),
            Some(Filled::Args(
                json!({"path": "debian.iso", "read_write": false, "exec": false})
            ))
        );
        assert_eq!(f("no.such-op", "x"), None);
    }
}
