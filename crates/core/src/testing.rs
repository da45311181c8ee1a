//! Test doubles shared by the front-end crates' tests: a recording supervisor and a ready-made core.

use std::sync::{Arc, Mutex};

use crate::auth::{GroupPolicy, StaticAccounts};
use crate::clock::SystemClock;
use crate::event::EventBus;
use crate::executor::{Core, CoreDeps};
use crate::store::MemoryStore;
use crate::supervisor::{DaemonState, SupervisorControl, SupervisorError, SupervisorStatus, TaskState, TaskStatus};
use crate::system::{FixedProbe, SystemStatus};

/// A supervisor with one task, `web`, that records kill requests.
#[derive(Debug, Default)]
pub struct FakeSupervisor {
    /// Tasks killed so far.
    pub killed: Mutex<Vec<String>>,
}

impl SupervisorControl for FakeSupervisor {
    fn status(&self) -> SupervisorStatus {
        SupervisorStatus {
            version: crate::VERSION.into(),
            state: DaemonState::Running,
            started_ms: 0,
            uptime_seconds: 1.0,
            dev_mode: true,
            tasks: vec![TaskStatus {
                name: "web".into(),
                state: TaskState::Running,
                restarts: self.killed.lock().unwrap().len() as u32,
                last_error: None,
                since_ms: 0,
            }],
        }
    }
    fn kill_task(&self, name: &str) -> Result<(), SupervisorError> {
        if name != "web" {
            return Err(SupervisorError::UnknownTask(name.into()));
        }
        self.killed.lock().unwrap().push(name.into());
        Ok(())
    }
}

/// A core over a memory store, a fixed probe (hostname `testbox`) and [`FakeSupervisor`]; uid 1000 is in group
/// `cacheos`; the web token is `token`.
pub fn core() -> (Arc<Core>, Arc<MemoryStore>) {
    let (core, store, _) = core_with_metrics();
    (core, store)
}

/// [`core`], plus the metrics history its `system.history` reads (empty; tests push samples).
pub fn core_with_metrics() -> (Arc<Core>, Arc<MemoryStore>, Arc<crate::system::MetricsHistory>) {
    let metrics = Arc::new(crate::system::MetricsHistory::new(720));
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(SystemClock);
    let core = Core::new(CoreDeps {
        store: store.clone(),
        probe: Arc::new(FixedProbe(SystemStatus {
            hostname: "testbox".into(),
            ..Default::default()
        })),
        supervisor: Arc::new(FakeSupervisor::default()),
        authorizer: Arc::new(GroupPolicy::new(
            StaticAccounts(vec![(1000, "cacheos".into())]),
            "cacheos",
        )),
        events: EventBus::new(64, clock.clone()),
        clock,
        web_token: Some("token".into()),
        metrics: metrics.clone(),
    });
    (Arc::new(core), store, metrics)
}
