//! Unit tests of sandbox validation and of the manager against the recording fakes: exact plans, errors naming what
//! was wrong, and nothing left behind on each failure path.

use std::sync::Arc;

use serde_json::json;

use super::fake::{FailOn, FakeSandboxes};
use super::*;
use crate::clock::FakeClock;
use crate::store::{MemoryStore, Store};

const T0: u64 = 1_700_000_000_000;

struct Env {
    fakes: FakeSandboxes,
    store: Arc<MemoryStore>,
    clock: Arc<FakeClock>,
    manager: SandboxManager,
}

fn templates() -> Vec<Template> {
    vec![
        Template {
            name: "host".into(),
            kind: TemplateKind::Host,
            path: "/".into(),
            description: "the appliance's own /usr".into(),
            command: Some(vec!["/usr/bin/sleep".into(), "2147483647".into()]),
        },
        Template {
            name: "busybox".into(),
            kind: TemplateKind::Directory,
            path: "/srv/templates/busybox".into(),
            description: "a busybox tree".into(),
            command: Some(vec!["/bin/sleep".into(), "2147483647".into()]),
        },
        Template {
            name: "disk".into(),
            kind: TemplateKind::Image,
            path: "/srv/templates/disk.raw".into(),
            description: "an OS image".into(),
            command: None,
        },
        Template {
            name: "debian".into(),
            kind: TemplateKind::FsImage,
            path: "/usr/lib/cacheos/templates/debian.squashfs".into(),
            description: "Debian 12 (bookworm) minimal (squashfs, 30.0 MiB)".into(),
            command: Some(vec!["/usr/bin/sleep".into(), "2147483647".into()]),
        },
    ]
}

fn env() -> Env {
    let fakes = FakeSandboxes::new();
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(FakeClock::at(T0));
    let manager = SandboxManager::new(
        store.clone(),
        Arc::new(fakes.roots()),
        Arc::new(fakes.runner()),
        clock.clone(),
        templates(),
        ManagerConfig::default(),
    );
    Env {
        fakes,
        store,
        clock,
        manager,
    }
}

fn spec(name: &str) -> SandboxSpec {
    SandboxSpec::new(name, "busybox")
}

fn record(e: &Env, name: &str) -> Option<serde_json::Value> {
    e.store.get_record(RECORD_KIND, name).unwrap()
}

fn state(e: &Env, name: &str) -> String {
    record(e, name).unwrap()["state"].as_str().unwrap().to_owned()
}

fn bind(drive: &str, rw: bool) -> Bind {
    Bind {
        drive: drive.into(),
        source: format!("/run/cacheos/drives/{drive}/p1").into(),
        target: format!("/mnt/{drive}").into(),
        read_write: rw,
    }
}

#[test]
fn names_are_validated_with_the_reason() {
    for ok in ["a", "box-1", "py3", &"a".repeat(32)] {
        validate_name(ok).unwrap();
    }
    for (bad, why) in [
        ("", "empty"),
        ("Box", "lowercase letter"),
        ("1box", "lowercase letter"),
        ("-box", "lowercase letter"),
        ("box_1", "'_'"),
        ("box.1", "'.'"),
        ("bäx", "'ä'"),
        (&"a".repeat(33), "longer than 32"),
    ] {
        let e = validate_name(bad).unwrap_err();
        assert_eq!(e.field, "name");
        assert!(e.reason.contains(why), "{bad:?}: {e}");
    }
}

#[test]
fn limits_are_validated_per_field() {
    let ok = Limits {
        cpu: Some(0.5),
        memory_max: Some(1 << 30),
        tasks_max: Some(512),
    };
    validate_limits(&ok).unwrap();
    validate_limits(&Limits::default()).unwrap();
    let cases = [
        (Limits { cpu: Some(0.0), ..ok }, "cpu"),
        (Limits { cpu: Some(64.5), ..ok }, "cpu"),
        (
            Limits {
                cpu: Some(f64::NAN),
                ..ok
            },
            "cpu",
        ),
        (
            Limits {
                memory_max: Some((32 << 20) - 1),
                ..ok
            },
            "memory_max",
        ),
        (
            Limits {
                memory_max: Some((1 << 40) + 1),
                ..ok
            },
            "memory_max",
        ),
        (
            Limits {
                tasks_max: Some(7),
                ..ok
            },
            "tasks_max",
        ),
        (
            Limits {
                tasks_max: Some(100_001),
                ..ok
            },
            "tasks_max",
        ),
    ];
    for (limits, field) in cases {
        assert_eq!(validate_limits(&limits).unwrap_err().field, field, "{limits:?}");
    }
    validate_limits(&Limits {
        cpu: Some(CPU_MIN),
        memory_max: Some(MEMORY_MIN),
        tasks_max: Some(TASKS_MAX),
    })
    .unwrap();
}

#[test]
fn binds_and_env_are_validated() {
    validate_binds(&[bind("data", false), bind("more", true)]).unwrap();
    let mut b = bind("data", false);
    b.target = "/mnt/../etc".into();
    assert!(validate_binds(&[b]).unwrap_err().reason.contains("clean absolute"));
    let mut b = bind("data", false);
    b.source = "relative".into();
    assert!(validate_binds(&[b]).unwrap_err().reason.contains("source relative"));
    let mut b = bind("data", false);
    b.target = "/proc/x".into();
    assert!(validate_binds(&[b]).unwrap_err().reason.contains("reserved"));
    let mut b = bind("data", false);
    b.target = "/mnt/a:b".into();
    assert_eq!(validate_binds(&[b]).unwrap_err().field, "binds");
    assert!(validate_binds(&[bind("data", false), bind("data", true)])
        .unwrap_err()
        .reason
        .contains("two binds"));
    validate_env(&[("LANG".into(), "C.UTF-8".into()), ("_X1".into(), String::new())]).unwrap();
    assert_eq!(validate_env(&[("1X".into(), "v".into())]).unwrap_err().field, "env");
    assert_eq!(validate_env(&[("A=B".into(), "v".into())]).unwrap_err().field, "env");
    assert_eq!(validate_argv(&[]).unwrap_err().field, "argv");
}

#[test]
fn create_records_intent_only_and_the_record_has_the_agreed_shape() {
    let e = env();
    let mut s = spec("box");
    s.binds = vec![bind("data", true)];
    s.limits.memory_max = Some(64 << 20);
    let info = e.manager.create(s, "alice").unwrap();
    assert_eq!(info.state, SandboxState::Created);
    assert_eq!(info.created_by, "alice");
    assert_eq!(info.created_ms, T0);
    assert!(
        e.fakes.plan().is_empty(),
        "create touches nothing: {:?}",
        e.fakes.plan()
    );
    let rec = record(&e, "box").unwrap();
    assert_eq!(rec["name"], "box");
    assert_eq!(rec["state"], "created");
    assert_eq!(rec["binds"][0]["drive"], "data");
    assert_eq!(rec["binds"][0]["read_write"], true);
    assert_eq!(rec["binds"][0]["source"], "/run/cacheos/drives/data/p1");
    assert_eq!(rec["limits"]["memory_max"], 64 << 20);
    assert_eq!(rec["network"], "none");
}

#[test]
fn create_failures_name_the_problem_and_leave_nothing() {
    let e = env();
    e.manager.create(spec("box"), "alice").unwrap();
    let before = record(&e, "box");

    let err = e.manager.create(spec("Bad_Name"), "alice").unwrap_err();
    assert_eq!(
        (err.kind(), err.field()),
        (SandboxErrorKind::InvalidArgument, Some("name"))
    );

    let err = e.manager.create(spec("box"), "bob").unwrap_err();
    assert!(
        matches!(&err, SandboxError::AlreadyExists { name } if name == "box"),
        "{err}"
    );
    assert_eq!(err.kind(), SandboxErrorKind::FailedPrecondition);
    assert_eq!(err.to_string(), "sandbox box already exists");
    assert_eq!(
        record(&e, "box"),
        before,
        "a duplicate create must not touch the first record"
    );

    let err = e
        .manager
        .create(SandboxSpec::new("other", "nope"), "alice")
        .unwrap_err();
    assert!(matches!(&err, SandboxError::TemplateNotFound { template } if template == "nope"));
    assert_eq!(err.kind(), SandboxErrorKind::NotFound);

    for (limits, field) in [
        (
            Limits {
                cpu: Some(100.0),
                ..Limits::default()
            },
            "cpu",
        ),
        (
            Limits {
                memory_max: Some(1 << 20),
                ..Limits::default()
            },
            "memory_max",
        ),
        (
            Limits {
                tasks_max: Some(1),
                ..Limits::default()
            },
            "tasks_max",
        ),
    ] {
        let mut s = spec("other");
        s.limits = limits;
        let err = e.manager.create(s, "alice").unwrap_err();
        assert_eq!(err.field(), Some(field), "{err}");
        assert!(err.to_string().starts_with(&format!("invalid {field}: ")), "{err}");
    }

    let err = e
        .manager
        .create(SandboxSpec::new("other", "disk"), "alice")
        .unwrap_err();
    assert_eq!(err.field(), Some("ephemeral"));

    assert!(record(&e, "other").is_none());
    assert!(e.fakes.plan().is_empty(), "{:?}", e.fakes.plan());
    assert!(e.fakes.leftovers().is_empty());
}

#[test]
fn file_system_image_templates_serve_persistent_and_ephemeral_sandboxes() {
    let e = env();
    // Unlike a disk image, a squashfs/erofs template is mounted and used like a tree: persistent sandboxes work.
    e.manager.create(SandboxSpec::new("deb", "debian"), "alice").unwrap();
    let mut tmp = SandboxSpec::new("tmp", "debian");
    tmp.ephemeral = true;
    e.manager.create(tmp, "alice").unwrap();
    e.manager.start("deb").unwrap();
    e.manager.start("tmp").unwrap();
    assert_eq!(
        e.fakes.plan(),
        [
            "prepare root of deb from template debian (persistent)",
            "start deb from directory /run/cacheos/sandboxes/deb/root, network none, command /usr/bin/sleep 2147483647",
            "prepare root of tmp from template debian (ephemeral)",
            "start tmp from directory /run/cacheos/sandboxes/tmp/root, network none, command /usr/bin/sleep 2147483647",
        ]
    );
    e.fakes.clear_calls();
    e.manager.stop("tmp").unwrap();
    assert!(
        record(&e, "tmp").is_none(),
        "an ephemeral sandbox is removed when it stops"
    );
    e.manager.stop("deb").unwrap();
    e.manager.remove("deb").unwrap();
    assert!(e.fakes.leftovers().is_empty(), "{:?}", e.fakes.leftovers());
    assert_eq!(serde_json::to_value(TemplateKind::FsImage).unwrap(), json!("fs-image"));
    let listed = e.manager.templates();
    let debian = listed.iter().find(|t| t.name == "debian").unwrap();
    assert_eq!(debian.kind, TemplateKind::FsImage);
}

#[test]
fn start_and_stop_follow_the_exact_plan() {
    let e = env();
    let mut s = spec("box");
    s.binds = vec![bind("data", false)];
    s.limits = Limits {
        cpu: Some(0.5),
        memory_max: Some(64 << 20),
        tasks_max: Some(64),
    };
    e.manager.create(s, "alice").unwrap();
    let info = e.manager.start("box").unwrap();
    assert_eq!(info.state, SandboxState::Running);
    assert_eq!(info.main_pid, Some(4001));
    assert_eq!(info.unit.as_deref(), Some("cacheos-sandbox-box.service"));
    assert_eq!(
        e.fakes.plan(),
        [
            "prepare root of box from template busybox (persistent)",
            "start box from directory /run/cacheos/sandboxes/box/root, network none, cpu 0.5, memory 67108864, \
             tasks 64, bind /run/cacheos/drives/data/p1 at /mnt/data ro, command /bin/sleep 2147483647",
        ]
    );
    assert_eq!(state(&e, "box"), "running");
    assert_eq!(e.fakes.leftovers(), ["container box", "root box", "data box"]);

    e.clock.advance(90_000);
    let info = e.manager.info("box").unwrap();
    assert_eq!(info.uptime_seconds, Some(90));
    assert_eq!(info.memory_peak, Some(8 << 20));
    assert_eq!(info.tasks_current, Some(1));

    let err = e.manager.start("box").unwrap_err();
    assert!(
        matches!(
            err,
            SandboxError::WrongState {
                state: SandboxState::Running,
                ..
            }
        ),
        "{err}"
    );

    e.fakes.clear_calls();
    let info = e.manager.stop("box").unwrap();
    assert_eq!(info.state, SandboxState::Stopped);
    assert_eq!(info.main_pid, None);
    assert_eq!(e.fakes.plan(), ["stop box (timeout 10 s)", "release root of box"]);
    assert_eq!(state(&e, "box"), "stopped");
    assert_eq!(e.fakes.leftovers(), ["data box"], "persistent data stays until remove");

    let err = e.manager.stop("box").unwrap_err();
    assert_eq!(err.to_string(), "sandbox box is stopped; stop needs it running");

    e.fakes.clear_calls();
    e.manager.remove("box").unwrap();
    assert_eq!(
        e.fakes.plan(),
        ["release root of box", "remove data of box", "forget box"]
    );
    assert!(record(&e, "box").is_none());
    assert!(e.fakes.leftovers().is_empty());
}

#[test]
fn ephemeral_sandboxes_are_gone_at_stop() {
    let e = env();
    let mut s = SandboxSpec::new("tmp", "host");
    s.ephemeral = true;
    s.network = Network::Nat;
    e.manager.create(s, "alice").unwrap();
    e.manager.start("tmp").unwrap();
    assert_eq!(
        e.fakes.plan(),
        [
            "prepare root of tmp from template host (ephemeral)",
            "start tmp from directory /run/cacheos/sandboxes/tmp/root, network nat, bind /usr at /usr ro, command /usr/bin/sleep 2147483647",
        ]
    );
    e.fakes.clear_calls();
    let info = e.manager.stop("tmp").unwrap();
    assert_eq!(info.state, SandboxState::Stopped);
    assert_eq!(
        e.fakes.plan(),
        [
            "stop tmp (timeout 10 s)",
            "release root of tmp",
            "release root of tmp",
            "remove data of tmp",
            "forget tmp"
        ]
    );
    assert!(record(&e, "tmp").is_none());
    assert!(e.fakes.leftovers().is_empty());
}

#[test]
fn persistent_host_sandboxes_keep_their_root_in_the_state_dir() {
    let e = env();
    e.manager.create(SandboxSpec::new("h", "host"), "alice").unwrap();
    e.manager.start("h").unwrap();
    assert_eq!(
        e.fakes.plan()[1],
        "start h from directory /var/lib/cacheos/sandboxes/h/root, network none, bind /usr at /usr ro, command /usr/bin/sleep 2147483647"
    );
    // The preparer's own bind is no drive: the record lists only the drives asked for.
    assert_eq!(record(&e, "h").unwrap()["binds"], json!([]));
}

#[test]
fn a_failing_runner_start_releases_the_root_and_records_the_failure() {
    let e = env();
    e.manager.create(spec("box"), "alice").unwrap();
    e.fakes.fail_next(FailOn::Start, "nspawn exited with status 1");
    let err = e.manager.start("box").unwrap_err();
    assert_eq!(err.kind(), SandboxErrorKind::Internal);
    assert_eq!(err.to_string(), "cannot start sandbox box");
    assert_eq!(
        e.fakes.plan(),
        [
            "prepare root of box from template busybox (persistent)",
            "start box from directory /run/cacheos/sandboxes/box/root, network none, command /bin/sleep 2147483647",
            "release root of box",
        ]
    );
    let rec = record(&e, "box").unwrap();
    assert_eq!(rec["state"], "failed");
    assert!(rec["last_error"]
        .as_str()
        .unwrap()
        .contains("nspawn exited with status 1"));
    assert_eq!(e.fakes.leftovers(), ["data box"], "no container and no runtime root");
    // A failed sandbox can be started again.
    e.manager.start("box").unwrap();
    assert_eq!(state(&e, "box"), "running");
    assert_eq!(record(&e, "box").unwrap()["last_error"], json!(null));
}

#[test]
fn a_failing_root_preparation_starts_nothing() {
    let e = env();
    let mut s = spec("box");
    s.ephemeral = true;
    e.manager.create(s, "alice").unwrap();
    e.fakes.fail_next(FailOn::Prepare, "overlay: no such device");
    let err = e.manager.start("box").unwrap_err();
    assert_eq!(err.to_string(), "cannot prepare the root of sandbox box");
    assert_eq!(
        e.fakes.plan(),
        [
            "prepare root of box from template busybox (ephemeral)",
            "release root of box"
        ]
    );
    assert_eq!(state(&e, "box"), "failed");
    assert!(e.fakes.leftovers().is_empty());
}

#[test]
fn exec_needs_a_running_sandbox_and_reports_exit_codes() {
    let e = env();
    e.manager.create(spec("box"), "alice").unwrap();
    let req = ExecSpec {
        argv: vec!["echo".into(), "hi".into()],
        env: Vec::new(),
        cwd: None,
        time_limit: None,
    };
    let mut out = Vec::new();
    let err = e.manager.exec("box", &req, &mut |c| out.push(c)).unwrap_err();
    assert_eq!(err.kind(), SandboxErrorKind::FailedPrecondition);
    assert_eq!(err.to_string(), "sandbox box is created; exec needs it running");
    assert!(e.fakes.plan().is_empty());

    let err = e.manager.exec("nope", &req, &mut |c| out.push(c)).unwrap_err();
    assert_eq!(err.kind(), SandboxErrorKind::NotFound);
    assert_eq!(err.to_string(), "sandbox nope not found");

    e.manager.start("box").unwrap();
    e.fakes.script_exec("echo", "hi\n", "", 0);
    let outcome = e.manager.exec("box", &req, &mut |c| out.push(c)).unwrap();
    assert_eq!(
        outcome,
        ExecOutcome {
            exit_code: 0,
            timed_out: false
        }
    );
    assert_eq!(out, [OutputChunk::Stdout(b"hi\n".to_vec())]);

    out.clear();
    let missing = ExecSpec {
        argv: vec!["no-such-command".into()],
        ..req.clone()
    };
    let outcome = e.manager.exec("box", &missing, &mut |c| out.push(c)).unwrap();
    assert_eq!(outcome.exit_code, 127);
    assert_eq!(out, [OutputChunk::Stderr(b"no-such-command: not found\n".to_vec())]);

    let empty = ExecSpec { argv: vec![], ..req };
    assert_eq!(
        e.manager.exec("box", &empty, &mut |_| {}).unwrap_err().field(),
        Some("argv")
    );
}

#[test]
fn copies_shell_and_logs() {
    let e = env();
    e.manager.create(spec("box"), "alice").unwrap();
    let err = e
        .manager
        .copy_in("box", &mut &b"hello"[..], "/root/a".as_ref())
        .unwrap_err();
    assert_eq!(err.kind(), SandboxErrorKind::FailedPrecondition);
    assert_eq!(
        e.manager.shell("box", "xterm").unwrap_err().kind(),
        SandboxErrorKind::FailedPrecondition
    );
    e.manager.start("box").unwrap();
    assert_eq!(
        e.manager
            .copy_in("box", &mut &b"hello"[..], "/root/a".as_ref())
            .unwrap(),
        5
    );
    let mut out = Vec::new();
    assert_eq!(e.manager.copy_out("box", "/root/a".as_ref(), &mut out).unwrap(), 5);
    assert_eq!(out, b"hello");
    for bad in ["rel", "/"] {
        assert_eq!(
            e.manager
                .copy_out("box", bad.as_ref(), &mut Vec::new())
                .unwrap_err()
                .field(),
            Some("path")
        );
    }
    e.manager.shell("box", "xterm-256color").unwrap();
    assert_eq!(
        e.manager.shell("box", "xterm; rm -rf /").unwrap_err().field(),
        Some("term")
    );
    assert_eq!(e.manager.logs("box", 10).unwrap(), ["started box"]);
    let plan = e.fakes.plan();
    assert_eq!(
        &plan[2..],
        [
            "copy 5 bytes into box at /root/a",
            "copy /root/a out of box",
            "shell in box (xterm-256color)",
            "logs of box (10 lines)"
        ]
    );
}

#[test]
fn restart_and_remove_of_a_running_sandbox() {
    let e = env();
    e.manager.create(spec("box"), "alice").unwrap();
    e.manager.start("box").unwrap();
    e.fakes.clear_calls();
    let info = e.manager.restart("box").unwrap();
    assert_eq!(info.main_pid, Some(4002));
    assert_eq!(
        e.fakes.plan(),
        [
            "stop box (timeout 10 s)",
            "release root of box",
            "prepare root of box from template busybox (persistent)",
            "start box from directory /run/cacheos/sandboxes/box/root, network none, command /bin/sleep 2147483647",
        ]
    );
    e.fakes.clear_calls();
    e.manager.remove("box").unwrap();
    assert_eq!(
        e.fakes.plan(),
        [
            "stop box (timeout 10 s)",
            "release root of box",
            "release root of box",
            "remove data of box",
            "forget box"
        ]
    );
    assert!(e.fakes.leftovers().is_empty());
    assert!(e.manager.list().unwrap().is_empty());
}

#[test]
fn a_failing_stop_keeps_the_record_and_reports() {
    let e = env();
    e.manager.create(spec("box"), "alice").unwrap();
    e.manager.start("box").unwrap();
    e.fakes.fail_next(FailOn::Stop, "timed out");
    let err = e.manager.stop("box").unwrap_err();
    assert_eq!(err.to_string(), "cannot stop sandbox box");
    // The intent stays recorded; lifecycle calls are refused until reconcile settled it.
    assert_eq!(state(&e, "box"), "stopping");
    assert_eq!(e.manager.start("box").unwrap_err().kind(), SandboxErrorKind::Busy);
    let report = e.manager.reconcile().unwrap();
    assert_eq!(report.interrupted, ["box"]);
    assert_eq!(state(&e, "box"), "stopped");
    assert_eq!(e.fakes.leftovers(), ["data box"]);
}

#[test]
fn reconcile_repairs_records_and_the_system() {
    let e = env();
    // killed behind our back: persistent -> stopped, ephemeral -> cleaned
    e.manager.create(spec("killed"), "alice").unwrap();
    e.manager.start("killed").unwrap();
    let mut s = spec("eph");
    s.ephemeral = true;
    e.manager.create(s, "alice").unwrap();
    e.manager.start("eph").unwrap();
    // still running: kept
    e.manager.create(spec("alive"), "alice").unwrap();
    e.manager.start("alive").unwrap();
    // never started: untouched
    e.manager.create(spec("fresh"), "alice").unwrap();
    e.fakes.kill_behind_back("killed");
    e.fakes.kill_behind_back("eph");
    // a container and root nobody recorded
    e.fakes.add_stray("ghost");
    // a daemon killed mid-start: record says starting, container runs
    e.manager.create(spec("half"), "alice").unwrap();
    e.manager.start("half").unwrap();
    let mut rec = record(&e, "half").unwrap();
    rec["state"] = json!("starting");
    e.store.put_record(RECORD_KIND, "half", &rec).unwrap();

    e.fakes.clear_calls();
    let report = e.manager.reconcile().unwrap();
    assert_eq!(report.kept_running, ["alive"]);
    assert_eq!(report.marked_stopped, ["killed"]);
    assert_eq!(report.cleaned_ephemeral, ["eph"]);
    assert_eq!(report.interrupted, ["half"]);
    assert_eq!(report.stray_containers, ["ghost"]);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(state(&e, "killed"), "stopped");
    assert_eq!(
        record(&e, "killed").unwrap()["last_error"],
        "the container stopped outside cacheos"
    );
    assert_eq!(state(&e, "half"), "stopped");
    assert_eq!(state(&e, "fresh"), "created");
    assert_eq!(state(&e, "alive"), "running");
    assert!(record(&e, "eph").is_none());
    assert_eq!(
        e.fakes.leftovers(),
        [
            "container alive",
            "root alive",
            "data alive",
            "data half",
            "data killed"
        ]
    );
    // A second reconcile has nothing to do.
    let again = e.manager.reconcile().unwrap();
    assert_eq!(
        again,
        ReconcileReport {
            kept_running: vec!["alive".into()],
            ..ReconcileReport::default()
        }
    );
}

#[test]
fn drive_manager_sees_binds_of_active_sandboxes_only() {
    let e = env();
    let mut s = spec("a");
    s.binds = vec![bind("data", false)];
    e.manager.create(s, "alice").unwrap();
    assert!(drives_bound_by_active_sandboxes(e.store.as_ref(), "data")
        .unwrap()
        .is_empty());
    e.manager.start("a").unwrap();
    assert_eq!(
        drives_bound_by_active_sandboxes(e.store.as_ref(), "data").unwrap(),
        ["a"]
    );
    assert!(drives_bound_by_active_sandboxes(e.store.as_ref(), "other")
        .unwrap()
        .is_empty());
    e.manager.stop("a").unwrap();
    assert!(drives_bound_by_active_sandboxes(e.store.as_ref(), "data")
        .unwrap()
        .is_empty());
}

#[test]
fn serde_names_are_kebab_case() {
    for (s, n) in [
        (SandboxState::Created, "created"),
        (SandboxState::Starting, "starting"),
        (SandboxState::Running, "running"),
        (SandboxState::Stopping, "stopping"),
        (SandboxState::Stopped, "stopped"),
        (SandboxState::Failed, "failed"),
    ] {
        assert_eq!(serde_json::to_value(s).unwrap(), json!(n));
        assert_eq!(s.as_str(), n);
    }
    assert_eq!(serde_json::to_value(Network::Nat).unwrap(), json!("nat"));
    assert_eq!(
        serde_json::to_value(TemplateKind::Directory).unwrap(),
        json!("directory")
    );
    let s: SandboxSpec =
        serde_json::from_value(json!({"name": "a", "template": "host", "memory_max": 1073741824})).unwrap();
    assert_eq!(s.limits.memory_max, Some(1 << 30));
    assert_eq!(s.network, Network::None);
    assert!(!s.ephemeral);
}

#[test]
fn list_carries_live_figures_of_running_sandboxes_only() {
    let e = env();
    e.manager.create(spec("run"), "uid 0").unwrap();
    e.manager.create(spec("idle"), "uid 0").unwrap();
    e.manager.start("run").unwrap();
    let list = e.manager.list().unwrap();
    let run = list.iter().find(|s| s.name == "run").unwrap();
    let idle = list.iter().find(|s| s.name == "idle").unwrap();
    assert_eq!(run.memory_current, Some(4 << 20));
    assert_eq!(run.tasks_current, Some(1));
    assert_eq!(idle.memory_current, None);
}

#[test]
fn run_makes_a_throw_away_sandbox_and_leaves_nothing() {
    let e = env();
    e.fakes.script_exec("uname", "Linux\n", "", 0);
    assert_eq!(e.manager.unused_name("run").unwrap(), "run-1");
    let req = ExecSpec {
        argv: vec!["uname".into()],
        env: Vec::new(),
        cwd: None,
        time_limit: None,
    };
    let mut out = Vec::new();
    let outcome = e
        .manager
        .run(SandboxSpec::new("run-1", "busybox"), "alice", &req, &mut |c| {
            out.push(c)
        })
        .unwrap();
    assert_eq!(outcome.exit_code, 0);
    assert_eq!(out, [OutputChunk::Stdout(b"Linux\n".to_vec())]);
    assert!(record(&e, "run-1").is_none());
    assert!(e.fakes.leftovers().is_empty(), "{:?}", e.fakes.leftovers());

    // A start that fails: the error comes back and the sandbox is gone all the same.
    e.fakes.fail_next(FailOn::Start, "nspawn exited with status 1");
    let err = e
        .manager
        .run(SandboxSpec::new("run-2", "busybox"), "alice", &req, &mut |_| {})
        .unwrap_err();
    assert!(format!("{err:?}").contains("nspawn exited"), "{err:?}");
    assert!(record(&e, "run-2").is_none());
    assert!(e.fakes.leftovers().is_empty(), "{:?}", e.fakes.leftovers());

    // Nothing is created for an empty command.
    let empty = ExecSpec { argv: vec![], ..req };
    assert_eq!(
        e.manager
            .run(SandboxSpec::new("run-3", "busybox"), "alice", &empty, &mut |_| {})
            .unwrap_err()
            .field(),
        Some("argv")
    );
    assert!(record(&e, "run-3").is_none());
}
