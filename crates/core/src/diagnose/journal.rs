//! Journal entries as `journalctl -o json` prints them, the filter of `journal.query`, and evidence folding:
//! repeated lines that differ only in numbers, ids or counters become one line with a count (a small Drain-style
//! template miner: tokens with digits are masked, lines with the same masked template are one group).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The journal fields CacheOS keeps of an entry (the rest of `journalctl -o json`'s output is dropped).
pub const KEPT_FIELDS: &[&str] = &[
    "JOB_RESULT",
    "JOB_TYPE",
    "UNIT_RESULT",
    "EXIT_CODE",
    "EXIT_STATUS",
    "ERRNO",
    "EXECUTABLE",
    "N_RESTARTS",
    "COREDUMP_SIGNAL_NAME",
    "COREDUMP_SIGNAL",
    "COREDUMP_EXE",
    "COREDUMP_COMM",
    "COREDUMP_PID",
    "CONFIG_FILE",
    "CONFIG_LINE",
    "_COMM",
    "_PID",
    "SYSLOG_IDENTIFIER",
    "INVOCATION_ID",
];

/// One journal entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JournalEntry {
    /// `__CURSOR`: where the entry is in the journal (`journalctl --cursor=` / `--after-cursor=`).
    pub cursor: String,
    /// `__REALTIME_TIMESTAMP`, microseconds since the Unix epoch.
    pub time_us: u64,
    /// `PRIORITY` (0 emerg … 7 debug), when given.
    pub priority: Option<u8>,
    /// The unit the entry is about: `UNIT` (systemd's messages about a unit), `COREDUMP_UNIT`,
    /// `OBJECT_SYSTEMD_UNIT`, else `_SYSTEMD_UNIT` (the unit that logged it).
    pub unit: Option<String>,
    /// `MESSAGE_ID`, lowercase hex without dashes, for systemd's catalogued messages.
    pub message_id: Option<String>,
    /// `MESSAGE` (binary messages decoded lossily as UTF-8).
    pub message: String,
    /// The other fields rules read ([`KEPT_FIELDS`]).
    pub fields: BTreeMap<String, String>,
}

/// Why a line of `journalctl -o json` output could not be read.
#[derive(Debug, thiserror::Error)]
pub enum JournalParseError {
    /// Not a JSON object.
    #[error("journal entry is not a JSON object")]
    NotJson(#[source] serde_json::Error),
    /// A required field is missing or not a string.
    #[error("journal entry has no {0}")]
    Missing(&'static str),
}

/// A field value: a string, or (for binary data or repeated fields) an array of byte values or of strings.
fn field_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Array(a) if a.iter().all(|x| x.is_u64()) => {
            let bytes: Vec<u8> = a.iter().filter_map(|x| x.as_u64()).map(|b| b as u8).collect();
            Some(String::from_utf8_lossy(&bytes).into_owned())
        }
        serde_json::Value::Array(a) => a.iter().find_map(field_text),
        _ => None,
    }
}

impl JournalEntry {
    /// Parses one line of `journalctl -o json` (the journal's JSON export format).
    pub fn from_json_line(line: &str) -> Result<Self, JournalParseError> {
        let v: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(line).map_err(JournalParseError::NotJson)?;
        Self::from_map(&v)
    }

    /// Builds an entry from a parsed JSON object.
    pub fn from_map(v: &serde_json::Map<String, serde_json::Value>) -> Result<Self, JournalParseError> {
        let get = |k: &str| v.get(k).and_then(field_text);
        let cursor = get("__CURSOR").ok_or(JournalParseError::Missing("__CURSOR"))?;
        let time_us = get("__REALTIME_TIMESTAMP")
            .and_then(|t| t.parse().ok())
            .ok_or(JournalParseError::Missing("__REALTIME_TIMESTAMP"))?;
        let unit = get("UNIT")
            .or_else(|| get("USER_UNIT"))
            .or_else(|| get("COREDUMP_UNIT"))
            .or_else(|| get("OBJECT_SYSTEMD_UNIT"))
            .or_else(|| get("_SYSTEMD_UNIT"));
        let fields = KEPT_FIELDS
            .iter()
            .filter_map(|k| get(k).map(|val| ((*k).to_owned(), val)))
            .collect();
        Ok(Self {
            cursor,
            time_us,
            priority: get("PRIORITY").and_then(|p| p.parse().ok()),
            unit,
            message_id: get("MESSAGE_ID").map(|m| m.replace('-', "").to_ascii_lowercase()),
            message: get("MESSAGE").unwrap_or_default(),
            fields,
        })
    }

    /// Parses every non-empty line of `journalctl -o json` output, skipping (and counting) lines that are not
    /// entries.
    pub fn parse_all(text: &str) -> (Vec<Self>, usize) {
        let mut bad = 0;
        let entries = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .filter_map(|l| match Self::from_json_line(l) {
                Ok(e) => Some(e),
                Err(_) => {
                    bad += 1;
                    None
                }
            })
            .collect();
        (entries, bad)
    }

    /// A kept field.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }

    /// Whether this entry carries the catalogued message `id`.
    pub fn is(&self, id: &str) -> bool {
        self.message_id.as_deref() == Some(id)
    }

    /// The time in milliseconds since the Unix epoch.
    pub fn time_ms(&self) -> u64 {
        self.time_us / 1000
    }
}

/// `MESSAGE_ID`s of systemd's catalogued messages (from systemd's `sd-messages.h` and its catalog).
pub mod message_ids {
    /// A job failed: "Failed to start X." / "Dependency failed for X." (`JOB_TYPE`, `JOB_RESULT`).
    pub const JOB_FAILED: &str = "be02cf6855d2428ba40df7e9d022f03d";
    /// A unit entered the failed state: "Failed with result 'R'." (`UNIT_RESULT`).
    pub const UNIT_FAILURE_RESULT: &str = "d9b373ed55a64feb8242e02dbe79a49c";
    /// A unit's process exited: "Main process exited, code=C, status=S" (`EXIT_CODE`, `EXIT_STATUS`, `COMMAND`).
    pub const PROCESS_EXIT: &str = "98e322203f7a4ed290d09fe03c09fe15";
    /// A process could not be executed: "Failed at step S spawning P: E" (`EXECUTABLE`, `ERRNO`).
    pub const SPAWN_FAILED: &str = "641257651c1b4ec9a8624d7a40a9e1e7";
    /// A process of the unit was killed by the kernel's OOM killer.
    pub const OUT_OF_MEMORY: &str = "fe6faa94e7774663a0da52717891d8ef";
    /// systemd-oomd killed the unit.
    pub const OOMD_KILL: &str = "d989611b15e44c9dbf31e3c81256e4ed";
    /// systemd-coredump recorded a core dump (`COREDUMP_UNIT`, `COREDUMP_SIGNAL_NAME`, `COREDUMP_EXE`).
    pub const COREDUMP: &str = "fc2e22bc6ee647b6b90729ab34a250b1";
    /// "Scheduled restart job, restart counter is at N." (`N_RESTARTS`).
    pub const RESTART_SCHEDULED: &str = "5eb03494b6584870a536b337290809b3";
    /// "Consumed …" resource use after the unit stopped.
    pub const UNIT_RESOURCES: &str = "ae8f7b866b0347b9af31fe1c80b127c0";
    /// A unit started successfully.
    pub const UNIT_STARTED: &str = "39f53479d3a045ac8e11786248231fbf";
    /// Invalid configuration (a unit file setting).
    pub const INVALID_CONFIGURATION: &str = "c772d24e9a884cbeb9ea12625c306c01";
}

/// Arguments of `journal.query`: which entries, newest last, at most `limit`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JournalQuery {
    /// Only entries about this unit (`journalctl -u`: logged by it, or by systemd or systemd-coredump about it).
    #[serde(default)]
    pub unit: Option<String>,
    /// Only entries about this sandbox's unit.
    #[serde(default)]
    pub sandbox: Option<String>,
    /// Only entries at this priority or more urgent (0 emerg … 7 debug; `err` is 3, `warning` 4).
    #[serde(default)]
    pub priority: Option<u8>,
    /// Only entries at or after this time (ms since the Unix epoch).
    #[serde(default)]
    pub since_ms: Option<u64>,
    /// Only entries before this time (ms since the Unix epoch).
    #[serde(default)]
    pub until_ms: Option<u64>,
    /// Only entries whose message contains this text (case-insensitive, literal).
    #[serde(default)]
    pub grep: Option<String>,
    /// At most this many entries, the newest (1..=10000; 200 when absent).
    #[serde(default)]
    pub limit: Option<u32>,
}

impl JournalQuery {
    /// Largest `limit`.
    pub const MAX_LIMIT: u32 = 10_000;
    /// `limit` when none is given.
    pub const DEFAULT_LIMIT: u32 = 200;

    /// The effective limit.
    pub fn limit(&self) -> usize {
        self.limit.unwrap_or(Self::DEFAULT_LIMIT) as usize
    }

    /// Whether an entry passes the filters other than the unit (which the journal source applies).
    pub fn matches(&self, e: &JournalEntry) -> bool {
        if let Some(p) = self.priority {
            if e.priority.is_some_and(|ep| ep > p) || e.priority.is_none() {
                return false;
            }
        }
        if self.since_ms.is_some_and(|s| e.time_ms() < s) || self.until_ms.is_some_and(|u| e.time_ms() >= u) {
            return false;
        }
        if let Some(g) = &self.grep {
            if !e.message.to_lowercase().contains(&g.to_lowercase()) {
                return false;
            }
        }
        true
    }
}

/// A journal line as evidence: repeats folded into one line with a count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Evidence {
    /// First occurrence (ms since the Unix epoch).
    pub time_ms: u64,
    /// Cursor of the first occurrence.
    pub cursor: String,
    /// The message of the first occurrence.
    pub message: String,
    /// How many lines with the same template there were.
    pub count: u32,
    /// Last occurrence (ms since the Unix epoch), when there was more than one.
    pub last_time_ms: Option<u64>,
    /// Priority of the first occurrence.
    pub priority: Option<u8>,
    /// The unit of the entry.
    pub unit: Option<String>,
}

/// The template of a message: tokens containing a digit become `<*>` (PIDs, counters, times, addresses).
pub fn template(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for (i, tok) in message.split_whitespace().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        if tok.bytes().any(|b| b.is_ascii_digit()) {
            out.push_str("<*>");
        } else {
            out.push_str(tok);
        }
    }
    out
}

/// Folds entries (oldest first) into evidence lines, one per template and unit, in order of first occurrence.
pub fn fold(entries: &[&JournalEntry]) -> Vec<Evidence> {
    let mut order: Vec<Evidence> = Vec::new();
    let mut index: std::collections::HashMap<(String, Option<String>), usize> = std::collections::HashMap::new();
    for e in entries {
        let key = (template(&e.message), e.unit.clone());
        match index.get(&key) {
            Some(&i) => {
                let ev = &mut order[i];
                ev.count += 1;
                ev.last_time_ms = Some(e.time_ms());
            }
            None => {
                index.insert(key, order.len());
                order.push(Evidence {
                    time_ms: e.time_ms(),
                    cursor: e.cursor.clone(),
                    message: e.message.clone(),
                    count: 1,
                    last_time_ms: None,
                    priority: e.priority,
                    unit: e.unit.clone(),
                });
            }
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(cursor: &str, t: u64, msg: &str) -> JournalEntry {
        JournalEntry {
            cursor: cursor.into(),
            time_us: t,
            priority: Some(6),
            unit: Some("a.service".into()),
            message_id: None,
            message: msg.into(),
            fields: BTreeMap::new(),
        }
    }

    #[test]
    fn parses_strings_byte_arrays_and_repeated_fields() {
        let line = r#"{"__CURSOR":"s=1;i=2","__REALTIME_TIMESTAMP":"1700000000000123","PRIORITY":"3","MESSAGE":[104,105,10],"UNIT":["x.service","y.service"],"MESSAGE_ID":"be02cf68-55d2-428b-a40d-f7e9d022f03d","JOB_RESULT":"failed","_HOSTNAME":"h"}"#;
        let e = JournalEntry::from_json_line(line).unwrap();
        assert_eq!(e.message, "hi\n");
        assert_eq!(e.unit.as_deref(), Some("x.service"));
        assert_eq!(e.priority, Some(3));
        assert!(e.is(message_ids::JOB_FAILED));
        assert_eq!(e.field("JOB_RESULT"), Some("failed"));
        assert_eq!(e.field("_HOSTNAME"), None, "unlisted fields are dropped");
        assert_eq!(e.time_ms(), 1_700_000_000_000);
        assert!(JournalEntry::from_json_line(r#"{"MESSAGE":"x"}"#).is_err());
        assert!(JournalEntry::from_json_line("not json").is_err());
        let (all, bad) = JournalEntry::parse_all(&format!("{line}\n\nnope\n{line}\n"));
        assert_eq!((all.len(), bad), (2, 1));
    }

    #[test]
    fn repeats_fold_into_one_line_with_a_count() {
        let es = [
            entry("c1", 1_000_000, "Scheduled restart job, restart counter is at 1."),
            entry("c2", 2_000_000, "Main process exited, code=exited, status=1/FAILURE"),
            entry("c3", 3_000_000, "Scheduled restart job, restart counter is at 2."),
            entry("c4", 4_000_000, "Scheduled restart job, restart counter is at 3."),
        ];
        let refs: Vec<_> = es.iter().collect();
        let f = fold(&refs);
        assert_eq!(f.len(), 2);
        assert_eq!(
            (f[0].count, f[0].cursor.as_str(), f[0].last_time_ms),
            (3, "c1", Some(4000))
        );
        assert_eq!(f[1].count, 1);
        assert_eq!(template("status=203/EXEC at 12:00"), "<*> at <*>");
    }

    #[test]
    fn query_filters_priority_time_and_text() {
        let mut e = entry("c", 5_000_000, "bind() failed: Address already in use");
        e.priority = Some(3);
        let q = JournalQuery {
            priority: Some(4),
            since_ms: Some(5000),
            until_ms: Some(5001),
            grep: Some("ADDRESS".into()),
            ..Default::default()
        };
        assert!(q.matches(&e));
        e.priority = Some(6);
        assert!(!q.matches(&e));
        e.priority = Some(3);
        assert!(!JournalQuery {
            since_ms: Some(5001),
            ..Default::default()
        }
        .matches(&e));
        assert!(!JournalQuery {
            grep: Some("nope".into()),
            ..Default::default()
        }
        .matches(&e));
    }
}
