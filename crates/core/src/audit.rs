//! Audit records: who did what, through which front end, with which arguments, and how it ended.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{Frontend, Principal};

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// It ran and succeeded.
    Ok,
    /// It was allowed but failed (validation or execution).
    Error,
    /// The caller was not allowed to run it.
    Denied,
}

impl Outcome {
    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Denied => "denied",
        }
    }
    /// Parses a stable name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "ok" => Outcome::Ok,
            "error" => Outcome::Error,
            "denied" => Outcome::Denied,
            _ => return None,
        })
    }
}

/// An audit record before the store gives it an id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NewAuditRecord {
    /// When the operation started, in milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// The front end it came through.
    pub frontend: Frontend,
    /// Who called.
    pub principal: Principal,
    /// Dotted operation name.
    pub operation: String,
    /// Arguments as the REST API takes them (null for an operation without arguments).
    #[schema(value_type = Object, nullable)]
    pub args: serde_json::Value,
    /// How it ended.
    pub outcome: Outcome,
    /// Stable error code when it did not succeed.
    pub error_code: Option<String>,
    /// Error message when it did not succeed.
    pub error: Option<String>,
    /// How long it took, in microseconds.
    pub duration_us: u64,
    /// Chat session, for chat-originated operations.
    pub session: Option<String>,
    /// The original utterance, for chat-originated operations.
    pub utterance: Option<String>,
}

/// A stored audit record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditRecord {
    /// Sequence number, increasing with time; never reused.
    pub id: u64,
    /// The record.
    #[serde(flatten)]
    pub record: NewAuditRecord,
}

/// Which audit records to return. All fields are optional; records come newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditFilter {
    /// Only records at or after this time (ms since the Unix epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<u64>,
    /// Only records before this time (ms since the Unix epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<u64>,
    /// Only records from this front end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frontend: Option<Frontend>,
    /// Only this operation; a name ending in `.` matches every operation with that prefix (`drive.`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// Only records with this outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// Only records with an id below this one (for paging backwards).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before_id: Option<u64>,
    /// At most this many records (1..=10000, default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

impl AuditFilter {
    /// Default number of records returned.
    pub const DEFAULT_LIMIT: u32 = 100;
    /// Largest accepted limit.
    pub const MAX_LIMIT: u32 = 10_000;

    /// The effective limit.
    pub fn limit(&self) -> usize {
        self.limit.unwrap_or(Self::DEFAULT_LIMIT) as usize
    }

    /// Whether a record passes every filter except the id and time window handled by the scan.
    pub fn matches(&self, r: &AuditRecord) -> bool {
        let rec = &r.record;
        self.since_ms.is_none_or(|s| rec.time_ms >= s)
            && self.until_ms.is_none_or(|u| rec.time_ms < u)
            && self.before_id.is_none_or(|b| r.id < b)
            && self.frontend.is_none_or(|f| rec.frontend == f)
            && self.outcome.is_none_or(|o| rec.outcome == o)
            && self.operation.as_deref().is_none_or(|op| {
                if op.ends_with('.') {
                    rec.operation.starts_with(op)
                } else {
                    rec.operation == op
                }
            })
    }
}
