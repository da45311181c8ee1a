//! Events flowing out of the core: every front end that wants them subscribes to the one [`EventBus`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::audit::Outcome;
use crate::auth::Frontend;
use crate::clock::Clock;
use crate::supervisor::{DaemonState, TaskState};

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum EventKind {
    /// An operation that changes something, or any operation that failed or was denied, finished (after its audit
    /// record was written). Successful read-only operations are audited but not published.
    OperationFinished {
        /// Dotted name.
        operation: String,
        /// Front end.
        frontend: Frontend,
        /// Outcome.
        outcome: Outcome,
        /// Audit record id, when it was recorded.
        audit_id: Option<u64>,
    },
    /// A supervised task changed state.
    TaskStateChanged {
        /// Task name.
        task: String,
        /// New state.
        state: TaskState,
        /// Restarts so far.
        restarts: u32,
        /// Why it ended, when it did.
        error: Option<String>,
    },
    /// The daemon's state changed.
    DaemonStateChanged {
        /// New state.
        state: DaemonState,
    },
    /// The metrics worker took a sample (also kept for `system.history`).
    MetricsSampled {
        /// The sample.
        sample: crate::system::MetricSample,
    },
    /// A virtual drive changed.
    Drive {
        /// Drive name (for `created`: the new image's file name).
        name: String,
        /// What happened.
        action: DriveAction,
        /// Mount points, image path or reason, when there is something to say.
        detail: Option<String>,
    },
    /// A sandbox changed.
    Sandbox {
        /// Sandbox name.
        name: String,
        /// What happened.
        action: SandboxAction,
        /// The new state or a reason, when there is something to say.
        detail: Option<String>,
    },
    /// A knowledge base indexing job started, progressed or ended.
    KbIndex {
        /// Source name.
        source: String,
        /// Started, progress, finished, cancelled or failed.
        phase: crate::kb::KbPhase,
        /// Files and bytes so far.
        progress: crate::kb::IndexProgress,
        /// The root (started), the counts (finished) or the error (failed).
        detail: Option<String>,
    },
    // issue 18 (licences)
    /// A licence scan, SBOM or proof job started, made progress or ended.
    LicenseJob {
        /// The job's name (for `license.cancel`).
        job: String,
        /// The operation running it.
        operation: String,
        /// Files visited so far.
        files: u64,
        /// Bytes read so far (scans).
        bytes: u64,
        /// `started`, `running`, `done`, `cancelled` or `failed`.
        state: String,
    },
    /// A systemd unit or a sandbox has failed (seen by the failure watch; once per failure, again only after it
    /// recovered). The chat page and the web UI offer to look: "Der Dienst X ist ausgefallen – soll ich nachsehen?".
    ServiceFailed {
        /// Unit name (`nginx.service`) or sandbox name.
        name: String,
        /// `unit` or `sandbox`.
        target: crate::diagnose::TargetKind,
        /// systemd's `Result` or the sandbox's last error, when known.
        detail: Option<String>,
    },
    // issue 15 (software)
    /// A software install job started, moved to a step, printed a line or ended.
    SoftwareJob {
        /// The job (`software-N`, for `software.job` and `software.cancel`).
        job: String,
        /// The sandbox it installs into.
        sandbox: String,
        /// Running, done, failed or cancelled.
        state: crate::software::JobState,
        /// The step running now (0-based) and how many there are.
        step: usize,
        steps: usize,
        /// The step's description, an output line, or the error.
        line: Option<String>,
    },
}

/// What happened to a sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SandboxAction {
    Created,
    Started,
    Stopped,
    Restarted,
    Removed,
    Reconciled,
}

/// What happened to a drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DriveAction {
    Attached,
    Mounted,
    Detached,
    SnapshotCreated,
    SnapshotDiscarded,
    SnapshotCommitted,
    PersistenceChanged,
    Created,
}

impl EventKind {
    /// The `type` tag, used as the SSE event name and D-Bus signal argument.
    pub fn type_name(&self) -> &'static str {
        match self {
            EventKind::OperationFinished { .. } => "operation-finished",
            EventKind::TaskStateChanged { .. } => "task-state-changed",
            EventKind::DaemonStateChanged { .. } => "daemon-state-changed",
            EventKind::Drive { .. } => "drive",
            EventKind::Sandbox { .. } => "sandbox",
            EventKind::MetricsSampled { .. } => "metrics-sampled",
            EventKind::KbIndex { .. } => "kb-index",
            EventKind::LicenseJob { .. } => "license-job",
            EventKind::SoftwareJob { .. } => "software-job",
            EventKind::ServiceFailed { .. } => "service-failed",
        }
    }
}

/// An event with its sequence number and time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Event {
    /// Increases by one per event since the daemon started.
    pub seq: u64,
    /// When (ms since the Unix epoch).
    pub time_ms: u64,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// A broadcast channel of [`Event`]s. Slow subscribers lose the oldest events rather than block the core.
#[derive(Clone)]
pub struct EventBus {
    tx: async_broadcast::Sender<Event>,
    _keep_open: async_broadcast::InactiveReceiver<Event>,
    seq: Arc<AtomicU64>,
    clock: Arc<dyn Clock>,
}

impl EventBus {
    /// A bus that buffers up to `capacity` events per subscriber.
    pub fn new(capacity: usize, clock: Arc<dyn Clock>) -> Self {
        let (mut tx, rx) = async_broadcast::broadcast(capacity);
        tx.set_overflow(true);
        tx.set_await_active(false);
        Self {
            tx,
            _keep_open: rx.deactivate(),
            seq: Arc::new(AtomicU64::new(0)),
            clock,
        }
    }

    /// Publishes an event to every current subscriber and returns it.
    pub fn publish(&self, kind: EventKind) -> Event {
        let ev = Event {
            seq: self.seq.fetch_add(1, Ordering::SeqCst) + 1,
            time_ms: self.clock.now_ms(),
            kind,
        };
        tracing::debug!(seq = ev.seq, event = ev.kind.type_name(), "event");
        // Overflow mode never blocks; an error means there are no active receivers, which is fine.
        let _ = self.tx.try_broadcast(ev.clone());
        ev
    }

    /// A new subscription; it sees events published from now on.
    pub fn subscribe(&self) -> async_broadcast::Receiver<Event> {
        self.tx.new_receiver()
    }
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBus").field("seq", &self.seq).finish()
    }
}
