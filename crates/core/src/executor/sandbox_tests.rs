//! Tests of the `sandbox.*` arms of the executor over the recording drive and sandbox fakes: drive binds resolved
//! to mount points (errors name the drive), confirmation of removal, events, and audit records.

use std::sync::Arc;

use super::*;
use crate::auth::{Frontend, GroupPolicy, Principal, StaticAccounts};
use crate::clock::FakeClock;
use crate::drive::fake::FakeDrives;
use crate::drive::{AttachArgs, DriveConfig, DriveDeps, FsInfo, FsType};
use crate::sandbox::fake::FakeSandboxes;
use crate::sandbox::ops::{SandboxCreateArgs, SandboxExecArgs, SandboxRef, SandboxRemoveArgs};
use crate::sandbox::{ManagerConfig, TemplateKind};
use crate::store::MemoryStore;
use crate::system::FixedProbe;
use crate::testing::FakeSupervisor;

struct Rig {
    _dir: tempfile::TempDir,
    core: Core,
    store: Arc<MemoryStore>,
    drives: Arc<DriveManager>,
    fake_drives: FakeDrives,
    fakes: FakeSandboxes,
}

fn rig() -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let cfg = DriveConfig::new(&root.join("state"), &root.join("run"));
    std::fs::create_dir_all(&cfg.images_dir).unwrap();
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(FakeClock::at(1_000));
    let events = EventBus::new(64, clock.clone());
    let fake_drives = FakeDrives::new();
    let drives = Arc::new(DriveManager::new(
        cfg,
        DriveDeps::fake(&fake_drives),
        store.clone(),
        events.clone(),
        clock.clone(),
    ));
    let fakes = FakeSandboxes::new();
    let sandboxes = Arc::new(SandboxManager::new(
        store.clone(),
        Arc::new(fakes.roots()),
        Arc::new(fakes.runner()),
        clock.clone(),
        vec![Template {
            name: "bb".into(),
            kind: TemplateKind::Directory,
            path: "/srv/templates/bb".into(),
            description: "busybox".into(),
            command: Some(vec!["/bin/sleep".into(), "1000".into()]),
        }],
        ManagerConfig::default(),
    ));
    let core = Core::new(CoreDeps {
        store: store.clone(),
        probe: Arc::new(FixedProbe(Default::default())),
        supervisor: Arc::new(FakeSupervisor::default()),
        authorizer: Arc::new(GroupPolicy::new(
            StaticAccounts(vec![(1000, "cacheos".into())]),
            "cacheos",
        )),
        events,
        clock,
        web_token: None,
        drives: Some(drives.clone()),
        sandboxes: Some(sandboxes),
        metrics: Arc::new(crate::system::MetricsHistory::new(4)),
    });
    Rig {
        _dir: dir,
        core,
        store,
        drives,
        fake_drives,
        fakes,
    }
}

fn root() -> Caller {
    Caller::new(Frontend::Cli, Principal::Uid { uid: 0 })
}

fn name(n: &str) -> SandboxRef {
    SandboxRef { name: n.into() }
}

fn audit_of(r: &Rig, op: &str) -> Vec<AuditRecord> {
    r.store
        .query_audit(&AuditFilter {
            operation: Some(op.into()),
            ..Default::default()
        })
        .unwrap()
}

#[test]
fn create_resolves_drive_binds_to_mount_points() {
    let r = rig();
    let img = r.drives.config().images_dir.join("data.img");
    std::fs::File::create(&img).unwrap().set_len(4 << 20).unwrap();
    r.fake_drives.set_filesystem(
        "/dev/loop0",
        FsInfo {
            fs_type: FsType::Ext4,
            label: Some("DATA".into()),
            uuid: Some("u".into()),
        },
    );
    let d = r.drives.attach("uid 0", &AttachArgs::new("data.img")).unwrap();
    let mount = d.partitions[0].mount_point.clone().unwrap();
    let mut args = SandboxCreateArgs::new("web", "bb");
    args.binds = vec![BindArgs {
        drive: d.name.clone(),
        read_write: false,
        target: None,
    }];
    let Output::Sandbox(info) = r.core.execute(&root(), Operation::SandboxCreate(args)).unwrap() else {
        panic!("not a sandbox")
    };
    assert_eq!(info.binds.len(), 1);
    assert_eq!(info.binds[0].source, mount);
    assert_eq!(
        info.binds[0].target,
        std::path::PathBuf::from(format!("/mnt/{}", d.name))
    );
    assert!(!info.binds[0].read_write);
}

#[test]
fn bind_of_a_missing_drive_names_the_drive_and_creates_nothing() {
    let r = rig();
    let mut args = SandboxCreateArgs::new("web", "bb");
    args.binds = vec![BindArgs {
        drive: "nosuchdrive".into(),
        read_write: true,
        target: Some("/data".into()),
    }];
    let e = r.core.execute(&root(), Operation::SandboxCreate(args)).unwrap_err();
    assert_eq!(e.code(), "invalid-argument");
    assert!(e.to_string().contains("nosuchdrive"), "{e}");
    let Output::Sandboxes(all) = r.core.execute(&root(), Operation::SandboxList).unwrap() else {
        panic!()
    };
    assert!(all.is_empty());
}

#[test]
fn lifecycle_publishes_events_and_remove_needs_confirm() {
    let r = rig();
    let mut rx = r.core.events().subscribe();
    r.core
        .execute(&root(), Operation::SandboxCreate(SandboxCreateArgs::new("web", "bb")))
        .unwrap();
    let Output::Sandbox(i) = r.core.execute(&root(), Operation::SandboxStart(name("web"))).unwrap() else {
        panic!()
    };
    assert_eq!(i.state.as_str(), "running");
    let e = r
        .core
        .execute(
            &root(),
            Operation::SandboxRemove(SandboxRemoveArgs {
                name: "web".into(),
                confirm: false,
            }),
        )
        .unwrap_err();
    assert_eq!(e.code(), "invalid-argument");
    assert!(e.to_string().contains("confirm"), "{e}");
    assert!(r.core.execute(&root(), Operation::SandboxInfo(name("web"))).is_ok());
    r.core
        .execute(
            &root(),
            Operation::SandboxRemove(SandboxRemoveArgs {
                name: "web".into(),
                confirm: true,
            }),
        )
        .unwrap();
    let e = r
        .core
        .execute(&root(), Operation::SandboxInfo(name("web")))
        .unwrap_err();
    assert_eq!(
        (e.code(), e.to_string().as_str()),
        ("not-found", "sandbox \"web\" not found")
    );
    let mut actions = Vec::new();
    while let Ok(ev) = rx.try_recv() {
        if let EventKind::Sandbox { name, action, .. } = ev.kind {
            assert_eq!(name, "web");
            actions.push(action);
        }
    }
    assert_eq!(
        actions,
        [SandboxAction::Created, SandboxAction::Started, SandboxAction::Removed]
    );
    assert_eq!(audit_of(&r, "sandbox.remove").len(), 2);
}

#[test]
fn exec_collects_or_streams_output_and_is_audited() {
    let r = rig();
    r.core
        .execute(&root(), Operation::SandboxCreate(SandboxCreateArgs::new("web", "bb")))
        .unwrap();
    r.core.execute(&root(), Operation::SandboxStart(name("web"))).unwrap();
    r.fakes.script_exec("echo", "hi\n", "warn\n", 0);
    let exec = |argv: &[&str]| {
        Operation::SandboxExec(SandboxExecArgs {
            name: "web".into(),
            argv: argv.iter().map(|s| s.to_string()).collect(),
            timeout_secs: Some(10),
        })
    };
    let Output::Exec(x) = r.core.execute(&root(), exec(&["echo", "hi"])).unwrap() else {
        panic!()
    };
    assert_eq!(
        (x.exit_code, x.stdout.as_str(), x.stderr.as_str()),
        (0, "hi\n", "warn\n")
    );
    let mut chunks = Vec::new();
    let Output::Exec(x) = r
        .core
        .execute_streaming(&root(), exec(&["echo", "hi"]), &mut |c| chunks.push(c))
        .unwrap()
    else {
        panic!()
    };
    assert_eq!((x.exit_code, x.stdout.as_str()), (0, ""));
    assert!(chunks.contains(&OutputChunk::Stdout(b"hi\n".to_vec())), "{chunks:?}");
    let Output::Exec(x) = r.core.execute(&root(), exec(&["nope"])).unwrap() else {
        panic!()
    };
    assert_eq!(x.exit_code, 127);
    let recs = audit_of(&r, "sandbox.exec");
    assert_eq!(recs.len(), 3);
    assert_eq!(recs[0].record.args["argv"], serde_json::json!(["nope"]));
    assert!(recs.iter().all(|a| a.record.outcome == Outcome::Ok));
    let e = r
        .core
        .execute(
            &Caller::new(Frontend::Cli, Principal::Uid { uid: 4242 }),
            exec(&["echo"]),
        )
        .unwrap_err();
    assert_eq!(e.code(), "permission-denied");
    let e = r.core.execute(&root(), exec(&[])).unwrap_err();
    assert_eq!(e.code(), "invalid-argument");
}

#[test]
fn sandboxes_absent_is_a_failed_precondition() {
    let (core, _) = crate::testing::core();
    let e = core.execute(&root(), Operation::SandboxList).unwrap_err();
    assert_eq!(e.code(), "failed-precondition");
}

#[test]
fn a_failing_start_is_a_sandbox_error_with_its_cause_and_the_failed_state_is_published() {
    let r = rig();
    r.core
        .execute(&root(), Operation::SandboxCreate(SandboxCreateArgs::new("web", "bb")))
        .unwrap();
    let mut rx = r.core.events().subscribe();
    r.fakes
        .fail_next(crate::sandbox::fake::FailOn::Start, "nspawn exited with status 1");
    let e = r
        .core
        .execute(&root(), Operation::SandboxStart(name("web")))
        .unwrap_err();
    assert_eq!(e.code(), "sandbox-failed");
    assert!(matches!(e, CoreError::Sandbox(_)));
    assert!(
        e.full_message().contains("nspawn exited with status 1"),
        "{}",
        e.full_message()
    );
    let Output::Sandbox(info) = r.core.execute(&root(), Operation::SandboxInfo(name("web"))).unwrap() else {
        panic!()
    };
    let mut published = None;
    while let Ok(ev) = rx.try_recv() {
        if let EventKind::Sandbox { detail, .. } = ev.kind {
            published = detail;
        }
    }
    assert_eq!(published.as_deref(), Some(info.state.as_str()));
    let e = r
        .core
        .execute(&root(), Operation::SandboxCreate(SandboxCreateArgs::new("x", "nope")))
        .unwrap_err();
    assert_eq!(
        (e.code(), e.to_string().as_str()),
        ("not-found", "template \"nope\" not found")
    );
}
