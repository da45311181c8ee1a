//! Typed D-Bus errors; the one exhaustive mapping from core errors to D-Bus error names.

use cacheos_core::diagnose::DiagnoseError;
use cacheos_core::CoreError;

/// Errors returned by the Manager interface, named `org.cacheos.CacheOS1.Error.<Variant>`.
#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "org.cacheos.CacheOS1.Error")]
pub enum Error {
    /// A transport-level error.
    #[zbus(error)]
    ZBus(zbus::Error),
    /// An argument was wrong; the message names it.
    InvalidArgument(String),
    /// The caller may not run this operation.
    PermissionDenied(String),
    /// A named thing does not exist.
    NotFound(String),
    /// The operation is not valid in the current state.
    FailedPrecondition(String),
    /// A thing with that name or identity exists already.
    AlreadyExists(String),
    /// Something still uses the thing; the message says what.
    Busy(String),
    /// A virtual drive side effect failed; the message has the cause chain.
    DriveFailed(String),
    /// A sandbox side effect failed; the message has the cause chain.
    SandboxFailed(String),
    /// The store failed.
    StoreFailed(String),
    /// The system could not be read.
    SystemUnreadable(String),
    /// An internal failure of the daemon.
    Internal(String),
    /// The knowledge base's index failed; the message has the cause chain.
    KbFailed(String),
}

impl From<CoreError> for Error {
    fn from(e: CoreError) -> Self {
        let msg = e.full_message();
        match e {
            CoreError::InvalidArgument { .. } => Error::InvalidArgument(msg),
            CoreError::PermissionDenied { .. } => Error::PermissionDenied(msg),
            CoreError::NotFound { .. } => Error::NotFound(msg),
            CoreError::FailedPrecondition(_) => Error::FailedPrecondition(msg),
            CoreError::AlreadyExists(_) => Error::AlreadyExists(msg),
            CoreError::Busy(_) => Error::Busy(msg),
            CoreError::Drive(_) => Error::DriveFailed(msg),
            CoreError::Sandbox(_) => Error::SandboxFailed(msg),
            CoreError::Store(_) => Error::StoreFailed(msg),
            CoreError::Probe(_) => Error::SystemUnreadable(msg),
            CoreError::Kb(_) => Error::KbFailed(msg),
            // issue 16 (diagnose)
            CoreError::Diagnose(DiagnoseError::UnknownUnit { .. }) => Error::NotFound(msg),
            CoreError::Diagnose(DiagnoseError::NoSystemd) => Error::FailedPrecondition(msg),
            CoreError::Diagnose(_) => Error::SystemUnreadable(msg),
        }
    }
}
