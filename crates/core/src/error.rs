//! The core's error type, with a stable code per variant that front ends map to HTTP statuses and D-Bus names.

use crate::store::StoreError;
use crate::supervisor::SupervisorError;
use crate::system::ProbeError;

/// Why an operation did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// An argument was wrong.
    #[error("invalid {field}: {reason}")]
    InvalidArgument {
        /// Which argument.
        field: &'static str,
        /// What was wrong with it.
        reason: String,
    },
    /// The caller may not run this operation.
    #[error("{operation} is not allowed: {reason}")]
    PermissionDenied {
        /// Dotted name.
        operation: &'static str,
        /// Why.
        reason: String,
    },
    /// A named thing does not exist.
    #[error("{kind} {name:?} not found")]
    NotFound {
        /// What kind of thing.
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// The operation is not valid in the current state.
    #[error("{0}")]
    FailedPrecondition(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The system could not be read.
    #[error(transparent)]
    Probe(#[from] ProbeError),
}

impl CoreError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            CoreError::InvalidArgument { .. } => "invalid-argument",
            CoreError::PermissionDenied { .. } => "permission-denied",
            CoreError::NotFound { .. } => "not-found",
            CoreError::FailedPrecondition(_) => "failed-precondition",
            CoreError::Store(_) => "store-failed",
            CoreError::Probe(_) => "system-unreadable",
        }
    }

    /// The message with its whole cause chain, for logs and audit records.
    pub fn full_message(&self) -> String {
        let mut s = self.to_string();
        let mut src = std::error::Error::source(self);
        while let Some(e) = src {
            s.push_str(": ");
            s.push_str(&e.to_string());
            src = e.source();
        }
        s
    }
}

impl From<SupervisorError> for CoreError {
    fn from(e: SupervisorError) -> Self {
        match e {
            SupervisorError::UnknownTask(name) => CoreError::NotFound { kind: "task", name },
            e @ SupervisorError::FaultInjectionDisabled => CoreError::FailedPrecondition(e.to_string()),
        }
    }
}
