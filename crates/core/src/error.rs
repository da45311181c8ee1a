//! The core's error type, with a stable code per variant that front ends map to HTTP statuses and D-Bus names.

use crate::diagnose::DiagnoseError;
use crate::drive::{DriveError, ImageError, PathError};
use crate::sandbox::{SandboxError, SandboxErrorKind};
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
    /// A thing with that name or identity exists already.
    #[error("{0}")]
    AlreadyExists(String),
    /// Something still uses the thing; the message says what.
    #[error("{0}")]
    Busy(String),
    /// A virtual drive side effect failed (the cause chain says which step and why).
    #[error(transparent)]
    Drive(DriveError),
    /// A sandbox side effect failed (the cause chain says which step and why).
    #[error(transparent)]
    Sandbox(SandboxError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The system could not be read.
    #[error(transparent)]
    Probe(#[from] ProbeError),
    /// The knowledge base's index failed (the cause chain says why).
    #[error(transparent)]
    Kb(crate::kb::KbError),
    /// systemd or the journal could not be asked, or a unit is unknown (the message names close ones).
    #[error(transparent)]
    Diagnose(#[from] DiagnoseError),
}

impl CoreError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            CoreError::InvalidArgument { .. } => "invalid-argument",
            CoreError::PermissionDenied { .. } => "permission-denied",
            CoreError::NotFound { .. } => "not-found",
            CoreError::FailedPrecondition(_) => "failed-precondition",
            CoreError::AlreadyExists(_) => "already-exists",
            CoreError::Busy(_) => "busy",
            CoreError::Drive(_) => "drive-failed",
            CoreError::Sandbox(_) => "sandbox-failed",
            CoreError::Store(_) => "store-failed",
            CoreError::Probe(_) => "system-unreadable",
            CoreError::Kb(_) => "kb-failed",
            CoreError::Diagnose(DiagnoseError::UnknownUnit { .. }) => "not-found",
            CoreError::Diagnose(DiagnoseError::NoSystemd) => "failed-precondition",
            CoreError::Diagnose(_) => "system-unreadable",
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

/// An error's message with its whole cause chain.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

impl From<crate::kb::KbError> for CoreError {
    fn from(e: crate::kb::KbError) -> Self {
        match e {
            crate::kb::KbError::UnknownSource(name) => CoreError::NotFound {
                kind: "knowledge base source",
                name,
            },
            e => CoreError::Kb(e),
        }
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

impl From<DriveError> for CoreError {
    fn from(e: DriveError) -> Self {
        let full = |e: &dyn std::error::Error| {
            let mut s = e.to_string();
            let mut src = e.source();
            while let Some(c) = src {
                s.push_str(": ");
                s.push_str(&c.to_string());
                src = c.source();
            }
            s
        };
        match e {
            DriveError::InvalidArgument { field, reason } => CoreError::InvalidArgument { field, reason },
            DriveError::NotFound { name } => CoreError::NotFound { kind: "drive", name },
            e @ (DriveError::Exists { .. } | DriveError::AlreadyAttached { .. }) => {
                CoreError::AlreadyExists(e.to_string())
            }
            e @ DriveError::Busy { .. } => CoreError::Busy(e.to_string()),
            e @ (DriveError::FailedPrecondition(_) | DriveError::NoFileSystem { .. }) => {
                CoreError::FailedPrecondition(e.to_string())
            }
            DriveError::Path(PathError::Missing { path }) => CoreError::NotFound {
                kind: "file",
                name: path.display().to_string(),
            },
            DriveError::Path(PathError::Exists { path }) => {
                CoreError::AlreadyExists(format!("{} already exists", path.display()))
            }
            DriveError::Path(
                e @ (PathError::NotAllowed { .. }
                | PathError::Escapes { .. }
                | PathError::IsDirectory { .. }
                | PathError::NotRegularFile { .. }),
            ) => CoreError::InvalidArgument {
                field: "path",
                reason: e.to_string(),
            },
            DriveError::Image(
                e @ (ImageError::Empty { .. } | ImageError::Corrupt { .. } | ImageError::Size { .. }),
            ) => CoreError::InvalidArgument {
                field: "path",
                reason: full(&e),
            },
            DriveError::Store(e) => CoreError::Store(e),
            e => CoreError::Drive(e),
        }
    }
}

impl From<SandboxError> for CoreError {
    fn from(e: SandboxError) -> Self {
        match (e.kind(), e) {
            (_, SandboxError::NotFound { name }) => CoreError::NotFound { kind: "sandbox", name },
            (_, SandboxError::TemplateNotFound { template }) => CoreError::NotFound {
                kind: "template",
                name: template,
            },
            (_, SandboxError::Store(e)) => CoreError::Store(e),
            (SandboxErrorKind::NotFound, e) => CoreError::NotFound {
                kind: "sandbox",
                name: e.to_string(),
            },
            (SandboxErrorKind::InvalidArgument, e) => CoreError::InvalidArgument {
                field: e.field().unwrap_or("argument"),
                reason: match e {
                    SandboxError::InvalidArgument { reason, .. } => reason,
                    e => e.to_string(),
                },
            },
            (SandboxErrorKind::FailedPrecondition, e) => CoreError::FailedPrecondition(e.to_string()),
            (SandboxErrorKind::Busy, e) => CoreError::Busy(e.to_string()),
            (SandboxErrorKind::Internal, e) => CoreError::Sandbox(e),
        }
    }
}
