//! The one vocabulary of operations. Every front end produces these values; the executor handles them.
//!
//! Each operation has a stable dotted name (`system.status`, `audit.query`, ...) used alike in the audit log, the
//! OpenAPI operation ids, the D-Bus documentation, the CLI and the chat engine. Its preconditions are documented on
//! the variant and summarised in [`OPERATIONS`].

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::audit::AuditFilter;

/// How much an operation changes. Chat asks for confirmation of destructive ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Risk {
    /// Reads state only.
    ReadOnly,
    /// Changes state in a way that can be undone.
    Changing,
    /// Removes data or interrupts work; needs an explicit confirmation in chat.
    Destructive,
}

/// Who may run an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Privilege {
    /// Any local user or authenticated web client.
    Anyone,
    /// Root, members of group `cacheos`, web token holders.
    Operator,
}

/// Static facts about an operation, in one table for documentation, policy and front ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct OpInfo {
    /// Stable dotted name.
    pub name: &'static str,
    /// One line saying what it does.
    pub summary: &'static str,
    /// Risk class.
    pub risk: Risk,
    /// Who may run it.
    pub privilege: Privilege,
}

/// Every operation the core knows, in the order of [`Operation`]'s variants.
pub const OPERATIONS: &[OpInfo] = &[
    OpInfo {
        name: "system.status",
        summary: "host name, OS, kernel, uptime, load, CPU, memory, disks and failed units",
        risk: Risk::ReadOnly,
        privilege: Privilege::Anyone,
    },
    OpInfo {
        name: "supervisor.status",
        summary: "daemon version, uptime, state and the health of each internal task",
        risk: Risk::ReadOnly,
        privilege: Privilege::Anyone,
    },
    OpInfo {
        name: "supervisor.kill-task",
        summary: "abort an internal task so the supervisor restarts it (fault injection; dev mode or when enabled)",
        risk: Risk::Destructive,
        privilege: Privilege::Operator,
    },
    OpInfo {
        name: "audit.query",
        summary: "audit log entries, newest first, filtered by time, front end, operation and outcome",
        risk: Risk::ReadOnly,
        privilege: Privilege::Anyone,
    },
    OpInfo {
        name: "web.token",
        summary: "the bearer token that web clients other than loopback must present",
        risk: Risk::ReadOnly,
        privilege: Privilege::Operator,
    },
    OpInfo {
        name: "system.history",
        summary: "CPU, memory, disk and load samples of the last hour (or since a time), oldest first",
        risk: Risk::ReadOnly,
        privilege: Privilege::Anyone,
    },
];

/// Arguments of `system.history`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HistoryArgs {
    /// Only samples taken at or after this time (ms since the Unix epoch); all kept samples when absent.
    #[serde(default)]
    pub since_ms: Option<u64>,
}

/// Arguments of `supervisor.kill-task`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct KillTaskArgs {
    /// Name of the internal task, as listed by `supervisor.status`.
    pub task: String,
}

/// A request to the core. Serialised as `{"op": "<dotted name>", "args": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", content = "args")]
pub enum Operation {
    /// `system.status`: always valid; anyone may call it.
    #[serde(rename = "system.status")]
    SystemStatus,
    /// `supervisor.status`: always valid; anyone may call it.
    #[serde(rename = "supervisor.status")]
    SupervisorStatus,
    /// `supervisor.kill-task`: valid only when fault injection is enabled (dev mode, or
    /// `supervisor.fault_injection = true`); operators only. The task is aborted and restarted with backoff.
    #[serde(rename = "supervisor.kill-task")]
    SupervisorKillTask(KillTaskArgs),
    /// `audit.query`: always valid; anyone may call it. `limit` must be 1..=10000.
    #[serde(rename = "audit.query")]
    AuditQuery(AuditFilter),
    /// `web.token`: valid when the web port is configured; operators only.
    #[serde(rename = "web.token")]
    WebToken,
    /// `system.history`: always valid (empty until the metrics worker has sampled); anyone may call it. The daemon
    /// keeps one hour of samples in memory.
    #[serde(rename = "system.history")]
    SystemHistory(HistoryArgs),
}

impl Operation {
    /// Static facts about this operation.
    pub fn info(&self) -> &'static OpInfo {
        let i = match self {
            Operation::SystemStatus => 0,
            Operation::SupervisorStatus => 1,
            Operation::SupervisorKillTask(_) => 2,
            Operation::AuditQuery(_) => 3,
            Operation::WebToken => 4,
            Operation::SystemHistory(_) => 5,
        };
        &OPERATIONS[i]
    }

    /// The stable dotted name.
    pub fn name(&self) -> &'static str {
        self.info().name
    }

    /// The arguments as JSON, exactly as the REST API takes them (`null` when there are none).
    pub fn args_json(&self) -> serde_json::Value {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(mut m)) => m.remove("args").unwrap_or(serde_json::Value::Null),
            _ => serde_json::Value::Null,
        }
    }

    /// Looks up an operation's facts by dotted name.
    pub fn lookup(name: &str) -> Option<&'static OpInfo> {
        OPERATIONS.iter().find(|i| i.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_dotted_and_match_serde() {
        let ops = [
            Operation::SystemStatus,
            Operation::SupervisorStatus,
            Operation::SupervisorKillTask(KillTaskArgs { task: "web".into() }),
            Operation::AuditQuery(AuditFilter::default()),
            Operation::WebToken,
            Operation::SystemHistory(HistoryArgs { since_ms: Some(1) }),
        ];
        assert_eq!(ops.len(), OPERATIONS.len());
        for op in &ops {
            let v = serde_json::to_value(op).unwrap();
            assert_eq!(v["op"], op.name(), "serde name of {op:?}");
            let back: Operation = serde_json::from_value(v).unwrap();
            assert_eq!(&back, op);
            assert!(op.name().contains('.'));
        }
        let mut names: Vec<_> = OPERATIONS.iter().map(|i| i.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), OPERATIONS.len());
    }

    #[test]
    fn args_json_is_the_rest_body() {
        let op = Operation::SupervisorKillTask(KillTaskArgs { task: "metrics".into() });
        assert_eq!(op.args_json(), serde_json::json!({"task": "metrics"}));
        assert_eq!(Operation::SystemStatus.args_json(), serde_json::Value::Null);
    }
}
