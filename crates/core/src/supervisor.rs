//! What the supervisor reports about itself, and the control interface the executor uses.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The daemon's overall state (the D-Bus `State` property).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DaemonState {
    /// Reconciling state and bringing up tasks.
    Starting,
    /// Every task runs.
    Running,
    /// At least one task is restarting or failed.
    Degraded,
    /// Shutting down.
    Stopping,
}

impl DaemonState {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            DaemonState::Starting => "starting",
            DaemonState::Running => "running",
            DaemonState::Degraded => "degraded",
            DaemonState::Stopping => "stopping",
        }
    }
}

/// State of one supervised task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TaskState {
    /// Running.
    Running,
    /// Ended unexpectedly; waiting for its backoff before restarting.
    Backoff,
    /// Ended on request (shutdown).
    Stopped,
}

/// Health of one supervised task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TaskStatus {
    /// Task name (`web`, `dbus`, `metrics`, ...).
    pub name: String,
    /// Current state.
    pub state: TaskState,
    /// Times it was restarted since the daemon started.
    pub restarts: u32,
    /// Why it last ended, when it did.
    pub last_error: Option<String>,
    /// When the state last changed (ms since the Unix epoch).
    pub since_ms: u64,
}

/// The supervisor's report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SupervisorStatus {
    /// CacheOS version.
    pub version: String,
    /// Daemon state.
    pub state: DaemonState,
    /// When the daemon started (ms since the Unix epoch).
    pub started_ms: u64,
    /// Seconds since start.
    pub uptime_seconds: f64,
    /// Running in development mode (session bus, fault injection).
    pub dev_mode: bool,
    /// Every supervised task.
    pub tasks: Vec<TaskStatus>,
}

/// Why a supervisor request failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SupervisorError {
    /// No task of that name.
    #[error("no internal task named {0:?}")]
    UnknownTask(String),
    /// Fault injection is off.
    #[error("fault injection is disabled (enable supervisor.fault_injection or run with --dev)")]
    FaultInjectionDisabled,
}

/// The supervisor as the executor sees it.
pub trait SupervisorControl: Send + Sync {
    /// Current report.
    fn status(&self) -> SupervisorStatus;
    /// Aborts a task (fault injection); the supervisor restarts it with backoff.
    fn kill_task(&self, name: &str) -> Result<(), SupervisorError>;
}
