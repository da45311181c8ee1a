//! Test doubles shared by the front-end crates' tests: a recording supervisor and a ready-made core.

use std::sync::{Arc, Mutex};

use crate::auth::{GroupPolicy, StaticAccounts};
use crate::clock::SystemClock;
use crate::event::EventBus;
use crate::executor::{Core, CoreDeps};
use crate::sandbox::fake::FakeSandboxes;
use crate::sandbox::{ManagerConfig, SandboxManager, Template, TemplateKind};
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
    let (core, store, _) = build(None);
    (core, store)
}

/// [`core`], plus the metrics history its `system.history` reads (empty; tests push samples).
pub fn core_with_metrics() -> (Arc<Core>, Arc<MemoryStore>, Arc<crate::system::MetricsHistory>) {
    let (core, store, metrics) = build(None);
    (core, store, metrics)
}

/// Like [`core`], with a sandbox manager over recording fakes and one directory template, `bb`, whose main command
/// is `/bin/sleep`. Returns the fakes to script execs with.
pub fn core_with_sandboxes() -> (Arc<Core>, Arc<MemoryStore>, FakeSandboxes) {
    let fakes = FakeSandboxes::new();
    let (core, store, _) = build(Some(fakes.clone()));
    (core, store, fakes)
}

/// Like [`core`], with a drive manager over the recording drive fakes and plain file access whose state lives
/// below `dir` (images in `<dir>/state/images`), accepting uploads of at most `max_upload_bytes`.
pub fn core_with_drives(dir: &std::path::Path, max_upload_bytes: u64) -> (Arc<Core>, Arc<MemoryStore>) {
    let mut cfg = crate::drive::DriveConfig::new(&dir.join("state"), &dir.join("run"));
    cfg.max_upload_bytes = max_upload_bytes;
    let fakes = crate::drive::fake::FakeDrives::new();
    let (core, store, _) = build_with(None, |store, events, clock| {
        Arc::new(crate::drive::DriveManager::new(
            cfg.clone(),
            crate::drive::DriveDeps::fake(&fakes),
            store,
            events,
            clock,
        ))
    });
    (core, store)
}

type Built = (Arc<Core>, Arc<MemoryStore>, Arc<crate::system::MetricsHistory>);

type MakeDrives<'a> =
    &'a dyn Fn(Arc<MemoryStore>, EventBus, Arc<dyn crate::clock::Clock>) -> Arc<crate::drive::DriveManager>;

fn build(fakes: Option<FakeSandboxes>) -> Built {
    build_inner(fakes, None)
}

fn build_with(
    fakes: Option<FakeSandboxes>,
    drives: impl Fn(Arc<MemoryStore>, EventBus, Arc<dyn crate::clock::Clock>) -> Arc<crate::drive::DriveManager>,
) -> Built {
    build_inner(fakes, Some(&drives))
}

fn build_inner(fakes: Option<FakeSandboxes>, drives: Option<MakeDrives<'_>>) -> Built {
    let metrics = Arc::new(crate::system::MetricsHistory::new(720));
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(SystemClock);
    let sandboxes = fakes.map(|f| {
        Arc::new(SandboxManager::new(
            store.clone(),
            Arc::new(f.roots()),
            Arc::new(f.runner()),
            clock.clone(),
            vec![Template {
                name: "bb".into(),
                kind: TemplateKind::Directory,
                path: "/srv/templates/bb".into(),
                description: "busybox".into(),
                command: Some(vec!["/bin/sleep".into(), "1000".into()]),
            }],
            ManagerConfig::default(),
        ))
    });
    let events = EventBus::new(64, clock.clone());
    let drives = drives.map(|f| f(store.clone(), events.clone(), clock.clone()));
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
        events,
        clock,
        web_token: Some("token".into()),
        drives,
        sandboxes,
        metrics: metrics.clone(),
    });
    (Arc::new(core), store, metrics)
}

// issue 16 (diagnose)
/// [`core`] with diagnosis sources loaded from recorded fixtures (`crates/core/tests/fixtures/diagnose/<name>`,
/// all merged), and the fake units (which record restarts).
pub fn core_with_diagnostics(
    fixtures: &[&str],
) -> (Arc<Core>, Arc<MemoryStore>, Arc<crate::diagnose::fake::FakeUnits>) {
    use crate::diagnose::fake::{fixtures_dir, FakeJournal, FakeUnits, Fixture};
    let (core, store, _) = build(None);
    let units = Arc::new(FakeUnits::default());
    let journal = Arc::new(FakeJournal::default());
    for name in fixtures {
        let fx = Fixture::load(&fixtures_dir().join(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"));
        for u in &fx.units {
            units.add(u.clone());
        }
        journal.extend(fx.journal);
    }
    let core = Arc::try_unwrap(core)
        .ok()
        .expect("the test core is not shared yet")
        .with_diagnostics(Arc::new(crate::diagnose::Diagnostics::new(units.clone(), journal)));
    (Arc::new(core), store, units)
}
