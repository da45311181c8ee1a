//! CacheOS core: typed operations, the executor that handles them, events, and the traits behind every side effect.
//!
//! Front ends (D-Bus, REST, CLI, chat) turn their input into an [`Operation`] and hand it to [`Core::execute`]
//! together with a [`Caller`]. The core validates, authorises, runs, audits and publishes events. It knows no
//! HTTP, D-Bus or database types: those live in the front-end and store crates.

pub mod audit;
pub mod auth;
pub mod clock;
pub mod diagnose;
pub mod drive;
pub mod error;
pub mod event;
pub mod executor;
pub mod kb;
pub mod license;
pub mod metrics_history;
pub mod model;
pub mod operation;
pub mod sandbox;
pub mod software;
pub mod store;
pub mod supervisor;
pub mod system;
pub mod testing;
pub mod web_cert;

pub use audit::{AuditFilter, AuditRecord, NewAuditRecord, Outcome};
pub use auth::{Accounts, Caller, Frontend, GroupPolicy, Principal};
pub use clock::{Clock, SystemClock};
pub use error::CoreError;
pub use event::{Event, EventBus, EventKind};
pub use executor::{Core, CoreDeps, Output};
pub use operation::{OpInfo, Operation, Privilege, Risk, OPERATIONS};
pub use store::{Store, StoreError};
pub use supervisor::{DaemonState, SupervisorControl, SupervisorStatus, TaskState, TaskStatus};
pub use system::{MetricSample, MetricsHistory, SystemProbe, SystemStatus};

/// The version of CacheOS, shared by every binary of the workspace.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
