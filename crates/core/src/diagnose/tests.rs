//! Every rule against the recorded fault fixtures (`crates/core/tests/fixtures/diagnose/`), plus name resolution,
//! the everything-sweep, `service.list` and `service.restart` on the fakes.

use std::sync::Arc;

use super::fake::{fixtures_dir, FakeJournal, FakeUnits, Fixture};
use super::*;
use crate::sandbox::{Limits, SandboxInfo, SandboxState};

fn load(name: &str) -> Fixture {
    Fixture::load(&fixtures_dir().join(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

fn diagnostics(fx: &Fixture) -> (Diagnostics, Arc<FakeUnits>, Arc<FakeJournal>) {
    let (u, j) = fx.fakes();
    let (u, j) = (Arc::new(u), Arc::new(j));
    (Diagnostics::new(u.clone(), j.clone()), u, j)
}

fn sandbox(name: &str, state: SandboxState, memory_max: Option<u64>) -> SandboxInfo {
    SandboxInfo {
        name: name.into(),
        state,
        template: "debian".into(),
        ephemeral: false,
        network: Default::default(),
        limits: Limits {
            memory_max,
            ..Default::default()
        },
        binds: vec![],
        created_by: "root".into(),
        created_ms: 0,
        uptime_seconds: None,
        main_pid: None,
        unit: None,
        ip: None,
        cpu_time_ns: None,
        memory_current: None,
        memory_peak: None,
        tasks_current: None,
        last_error: None,
        software: None,
    }
}

fn has_line(f: &Finding, needle: &str) -> bool {
    f.evidence.iter().any(|e| e.message.contains(needle))
}

/// (fixture, unit asked for, cause, subject, a key evidence line, the fix plan's operation)
type Case = (
    &'static str,
    &'static str,
    CauseClass,
    Option<&'static str>,
    &'static str,
    Option<&'static str>,
);

const UNIT_FAULTS: &[Case] = &[
    (
        "missing-exec",
        "cacheos-fault-exec",
        CauseClass::MissingExecutable,
        Some("/usr/bin/cacheos-does-not-exist"),
        "Failed at step EXEC spawning /usr/bin/cacheos-does-not-exist: No such file or directory",
        None,
    ),
    (
        "bad-setting",
        "cacheos-fault-setting.service",
        CauseClass::BadSetting,
        Some("/run/systemd/system/cacheos-fault-setting.service:4"),
        "Unknown key name 'ExecStartt'",
        None,
    ),
    (
        "missing-config",
        "cacheos-fault-config",
        CauseClass::MissingFile,
        Some("/etc/cacheos-fault/app.conf"),
        "/etc/cacheos-fault/app.conf: No such file or directory",
        Some("service.restart"),
    ),
    (
        "port-in-use",
        "cacheos-fault-port.socket",
        CauseClass::PortInUse,
        Some("8088"),
        "Address already in use",
        Some("service.restart"),
    ),
    (
        "oom-kill",
        "cacheos-fault-oom",
        CauseClass::OutOfMemory,
        Some("32 MiB"),
        "killed by the OOM killer",
        Some("service.restart"),
    ),
    (
        "core-dump",
        "cacheos-fault-crash",
        CauseClass::CoreDump,
        Some("SIGSEGV"),
        "status=11/SEGV",
        Some("service.restart"),
    ),
    (
        "dependency",
        "cacheos-fault-dep",
        CauseClass::DependencyFailed,
        Some("cacheos-fault-dep-base.service"),
        "Dependency failed for cacheos-fault-dep.service",
        Some("service.restart"),
    ),
    (
        "mount-failed",
        "mnt-cacheosfault.mount",
        CauseClass::MountFailed,
        Some("/mnt/cacheosfault"),
        "wrong fs type, bad option",
        None,
    ),
    (
        "permission-denied",
        "cacheos-fault-perm",
        CauseClass::PermissionDenied,
        Some("/var/tmp/cacheos-fault-noexec.sh"),
        "spawning /var/tmp/cacheos-fault-noexec.sh: Permission denied",
        None,
    ),
    (
        "start-limit-hit",
        "cacheos-fault-loop",
        CauseClass::RestartLoop,
        Some("3"),
        "Start request repeated too quickly.",
        Some("service.restart"),
    ),
];

#[test]
fn every_unit_fault_gets_its_cause_class_evidence_and_fix() {
    for (fixture, unit, cause, subject, line, plan) in UNIT_FAULTS {
        let fx = load(fixture);
        let (d, _, _) = diagnostics(&fx);
        let f = d.unit(unit).unwrap_or_else(|e| panic!("{fixture}: {e}"));
        assert_eq!(f.cause, *cause, "{fixture}: {f:#?}");
        assert_eq!(f.subject.as_deref(), *subject, "{fixture}: subject of {f:#?}");
        assert!(
            has_line(&f, line),
            "{fixture}: evidence lacks {line:?}: {:#?}",
            f.evidence
        );
        assert_eq!(f.fix.plan.as_ref().map(|p| p.op.as_str()), *plan, "{fixture}: plan");
        assert!(!f.fix.instruction.is_empty() && !f.summary.is_empty(), "{fixture}");
        assert!(f.evidence.len() <= Finding::MAX_EVIDENCE);
        for e in &f.evidence {
            assert!(
                e.cursor.starts_with("s=") && e.time_ms > 1_700_000_000_000,
                "{fixture}: {e:?}"
            );
        }
        if let Some(p) = &f.fix.plan {
            assert!(p.operation().is_some(), "{fixture}: plan {p:?} is an operation");
        }
    }
}

/// Fixtures recorded in the appliance VM (systemd 252, `systemctl show UNIT` and `journalctl -b -o json -u UNIT` as
/// the guest printed them during the fault-injection self-test), for the faults the hand-written fixtures got wrong:
/// a simple service whose program cannot be executed logs its spawn failure *before* systemd's "Started" line (the
/// rules used to cut it off and named no path), and a restart loop that hits the start limit keeps
/// `Result=exit-code` with only "Start request repeated too quickly." in the journal.
const RECORDED_FAULTS: &[Case] = &[
    (
        "recorded-252-missing-exec",
        "cacheos-fault-exec.service",
        CauseClass::MissingExecutable,
        Some("/usr/bin/cacheos-does-not-exist"),
        "Failed at step EXEC spawning /usr/bin/cacheos-does-not-exist: No such file or directory",
        None,
    ),
    (
        "recorded-252-permission-denied",
        "cacheos-fault-perm.service",
        CauseClass::PermissionDenied,
        Some("/var/tmp/cacheos-fault-noexec.sh"),
        "spawning /var/tmp/cacheos-fault-noexec.sh: Permission denied",
        None,
    ),
    (
        "recorded-252-start-limit-hit",
        "cacheos-fault-loop.service",
        CauseClass::RestartLoop,
        Some("3"),
        "Start request repeated too quickly.",
        Some("service.restart"),
    ),
];

#[test]
fn faults_recorded_on_the_appliance_get_their_cause_class_and_evidence() {
    for (fixture, unit, cause, subject, line, plan) in RECORDED_FAULTS {
        let fx = load(fixture);
        let (d, _, _) = diagnostics(&fx);
        let f = d.unit(unit).unwrap_or_else(|e| panic!("{fixture}: {e}"));
        assert_eq!(f.cause, *cause, "{fixture}: {f:#?}");
        assert_eq!(f.subject.as_deref(), *subject, "{fixture}: subject of {f:#?}");
        assert!(
            has_line(&f, line),
            "{fixture}: evidence lacks {line:?}: {:#?}",
            f.evidence
        );
        assert_eq!(f.fix.plan.as_ref().map(|p| p.op.as_str()), *plan, "{fixture}: plan");
    }
    // The loop's underlying failure is the program's exit status, found in the entries before systemd gave up.
    let fx = load("recorded-252-start-limit-hit");
    let (d, _, _) = diagnostics(&fx);
    let f = d.unit("cacheos-fault-loop.service").unwrap();
    let inner = f.because.as_deref().expect("what made it fail each time");
    assert_eq!(inner.cause, CauseClass::ExitCode, "{inner:#?}");
    assert_eq!(inner.subject.as_deref(), Some("3/NOTIMPLEMENTED"), "{inner:#?}");
}

#[test]
fn a_dependency_failure_names_and_diagnoses_the_failed_unit() {
    let fx = load("dependency");
    let (d, _, _) = diagnostics(&fx);
    let f = d.unit("cacheos-fault-dep").unwrap();
    let inner = f.because.as_deref().expect("the failed dependency's finding");
    assert_eq!(inner.target, "cacheos-fault-dep-base.service");
    assert_eq!(inner.cause, CauseClass::ExitCode);
    assert_eq!(inner.subject.as_deref(), Some("1/FAILURE"));
    assert!(has_line(inner, "backend not reachable"), "{:#?}", inner.evidence);
    assert!(
        f.summary.contains("because cacheos-fault-dep-base.service failed"),
        "{}",
        f.summary
    );
}

#[test]
fn a_restart_loop_folds_repeats_and_names_the_underlying_failure() {
    let fx = load("start-limit-hit");
    let (d, _, _) = diagnostics(&fx);
    let f = d.unit("cacheos-fault-loop.service").unwrap();
    let restarts = f
        .evidence
        .iter()
        .find(|e| e.message.contains("Scheduled restart job"))
        .unwrap();
    assert_eq!(restarts.count, 3, "{:#?}", f.evidence);
    assert!(restarts.last_time_ms.unwrap() > restarts.time_ms);
    let exits = f
        .evidence
        .iter()
        .find(|e| e.message.contains("status=1/FAILURE"))
        .unwrap();
    assert_eq!(exits.count, 4);
    let inner = f.because.as_deref().unwrap();
    assert_eq!(inner.cause, CauseClass::ExitCode);
    assert!(f.summary.contains("4 times"), "{}", f.summary);
    assert_eq!(f.state.as_deref(), Some("failed (start-limit-hit, 1/FAILURE)"));
}

#[test]
fn a_core_dump_is_found_without_systemd_coredump_too() {
    let mut fx = load("core-dump");
    fx.journal.retain(|e| !e.is(journal::message_ids::COREDUMP));
    let (d, _, _) = diagnostics(&fx);
    let f = d.unit("cacheos-fault-crash").unwrap();
    assert_eq!((f.cause, f.subject.as_deref()), (CauseClass::CoreDump, Some("SIGSEGV")));
}

#[test]
fn a_sandbox_killed_by_its_memory_limit_is_found_from_the_journal_or_memory_events() {
    let fx = load("sandbox-oom");
    let info = sandbox("memhog", SandboxState::Stopped, Some(256 << 20));
    // Both facts.
    let (d, _, _) = diagnostics(&fx);
    let f = d.sandbox(&info).unwrap();
    assert_eq!(f.cause, CauseClass::SandboxOutOfMemory, "{f:#?}");
    assert_eq!(f.subject.as_deref(), Some("256 MiB"));
    assert!(has_line(&f, "killed by the OOM killer"), "{:#?}", f.evidence);
    assert_eq!(f.fix.plan.as_ref().unwrap().op, "sandbox.restart");
    assert!(f.fix.instruction.contains("512 MiB"), "{}", f.fix.instruction);
    // Only the journal (the collected unit's cgroup is gone).
    let mut only_journal = fx.clone();
    only_journal.memory = None;
    let (d, _, _) = diagnostics(&only_journal);
    assert_eq!(d.sandbox(&info).unwrap().cause, CauseClass::SandboxOutOfMemory);
    // Only memory.events (a running sandbox whose process was killed, journal rotated).
    let mut only_events = fx.clone();
    only_events.journal.clear();
    let u = &mut only_events.units[0];
    (u.load_state, u.active_state, u.sub_state) = ("loaded".into(), "active".into(), "running".into());
    let (d, _, _) = diagnostics(&only_events);
    let running = sandbox("memhog", SandboxState::Running, Some(256 << 20));
    let f = d.sandbox(&running).unwrap();
    assert_eq!(f.cause, CauseClass::SandboxOutOfMemory);
    assert!(f.state.unwrap().contains("oom_kill 1"));
    // Neither: healthy.
    let mut neither = only_events;
    neither.memory = None;
    let (d, _, _) = diagnostics(&neither);
    assert_eq!(d.sandbox(&running).unwrap().cause, CauseClass::Healthy);
}

#[test]
fn unknown_units_get_a_clear_error_with_close_names() {
    let fx = load("missing-exec");
    let (d, _, _) = diagnostics(&fx);
    let e = d.unit("cacheos-fault-exce").unwrap_err();
    assert_eq!(
        e.to_string(),
        "unit \"cacheos-fault-exce\" not found (did you mean cacheos-fault-exec.service?)"
    );
    let e = d.unit("zzz").unwrap_err();
    assert_eq!(e.to_string(), "unit \"zzz\" not found");
    assert!(matches!(d.restart("nginx"), Err(DiagnoseError::UnknownUnit { .. })));
}

#[test]
fn a_healthy_unit_is_healthy() {
    let fx = load("missing-exec");
    let (d, _, _) = diagnostics(&fx);
    let f = d.unit("system.slice").unwrap();
    assert_eq!(f.cause, CauseClass::Healthy);
    assert!(f.fix.plan.is_none());
}

#[test]
fn the_sweep_covers_failed_units_sandboxes_tasks_disks_and_memory() {
    let mut all = load("missing-exec");
    for name in ["oom-kill", "dependency", "sandbox-oom"] {
        let fx = load(name);
        all.units.extend(fx.units);
        all.journal.extend(fx.journal);
    }
    let (d, _, _) = diagnostics(&all);
    let facts = SweepFacts {
        tasks: vec![crate::supervisor::TaskStatus {
            name: "web".into(),
            state: crate::supervisor::TaskState::Backoff,
            restarts: 2,
            last_error: Some("address in use".into()),
            since_ms: 0,
        }],
        status: Some(crate::system::SystemStatus {
            memory: crate::system::Memory {
                total_bytes: 1000,
                available_bytes: 50,
                ..Default::default()
            },
            disks: vec![crate::system::DiskUsage {
                mount_point: "/var/lib/cacheos".into(),
                total_bytes: 100,
                used_bytes: 95,
                available_bytes: 5,
                ..Default::default()
            }],
            ..Default::default()
        }),
        sandboxes: vec![sandbox("memhog", SandboxState::Stopped, Some(256 << 20))],
    };
    let dg = d.sweep(&facts).unwrap();
    let got: Vec<(CauseClass, &str)> = dg.findings.iter().map(|f| (f.cause, f.target.as_str())).collect();
    assert_eq!(
        got,
        vec![
            (CauseClass::ExitCode, "cacheos-fault-dep-base.service"),
            (CauseClass::MissingExecutable, "cacheos-fault-exec.service"),
            (CauseClass::OutOfMemory, "cacheos-fault-oom.service"),
            (CauseClass::SandboxOutOfMemory, "memhog"),
            (CauseClass::TaskDegraded, "web"),
            (CauseClass::DiskFull, "/var/lib/cacheos"),
            (CauseClass::MemoryPressure, "memory"),
        ]
    );
    assert_eq!(dg.scope, "everything");
    // No systemd: the sweep still reports the rest.
    let units = Arc::new(FakeUnits::without_systemd());
    let d = Diagnostics::new(units, Arc::new(FakeJournal::default()));
    let dg = d.sweep(&SweepFacts::default()).unwrap();
    assert!(dg.findings.is_empty());
    assert!(dg.checked[0].contains("systemd is not PID 1"));
}

#[test]
fn services_list_failed_first_and_restart_resets_through_the_source() {
    let mut all = load("missing-exec");
    all.units.extend(load("oom-kill").units);
    let (d, units, _) = diagnostics(&all);
    let list = d.services().unwrap();
    let names: Vec<_> = list.iter().map(|s| (s.name.as_str(), s.failed)).collect();
    assert_eq!(
        names,
        vec![
            ("cacheos-fault-exec.service", true),
            ("cacheos-fault-oom.service", true)
        ]
    );
    let after = d.restart("cacheos-fault-oom").unwrap();
    assert_eq!(units.restarted(), vec!["cacheos-fault-oom.service"]);
    assert_eq!((after.active_state.as_str(), after.failed), ("active", false));
}

#[test]
fn unit_names_and_memory_events_parse() {
    assert_eq!(unit_name("nginx"), "nginx.service");
    assert_eq!(unit_name("mnt-x.mount"), "mnt-x.mount");
    let m = MemoryEvents::parse("low 0\nhigh 2\nmax 10\noom 3\noom_kill 1\noom_group_kill 0\n");
    assert_eq!((m.high, m.max, m.oom, m.oom_kill), (2, 10, 3, 1));
    assert_eq!(exit_status_name(203), Some("EXEC"));
    assert_eq!(signal_name(11), Some("SEGV"));
    assert_eq!(rules::bytes(33554432), "32 MiB");
}

/// A socket-activated service whose socket could not bind: the service is not failed (it never started), so the
/// diagnosis names the failed socket and gives its cause, port and evidence.
#[test]
fn a_socket_activated_service_names_its_socket_that_could_not_bind() {
    let fx = load("socket-activated");
    let (d, _, _) = diagnostics(&fx);
    let f = d.unit("cacheos-fault-sock").unwrap();
    assert_eq!(f.cause, CauseClass::DependencyFailed, "{f:#?}");
    assert_eq!(f.subject.as_deref(), Some("cacheos-fault-sock.socket"));
    assert!(f.summary.contains("port-in-use"), "{}", f.summary);
    assert!(has_line(&f, "Address already in use"), "{:#?}", f.evidence);
    let inner = f.because.as_deref().expect("the socket's own finding");
    assert_eq!(inner.cause, CauseClass::PortInUse);
    assert_eq!(inner.subject.as_deref(), Some("8089"));
    let plan = f.fix.plan.as_ref().expect("restart the socket");
    assert_eq!(plan.op, "service.restart");
    assert_eq!(plan.args["unit"], "cacheos-fault-sock.socket");
    // The socket asked for directly is the port case itself.
    assert_eq!(
        d.unit("cacheos-fault-sock.socket").unwrap().cause,
        CauseClass::PortInUse
    );
    // A socket-activated service whose socket is fine stays healthy.
    let (u, j) = load("socket-activated").fakes();
    let mut sock = u.properties("cacheos-fault-sock.socket").unwrap();
    sock.active_state = "active".into();
    sock.sub_state = "listening".into();
    sock.result = "success".into();
    u.add(sock);
    let f = Diagnostics::new(Arc::new(u), Arc::new(j))
        .unit("cacheos-fault-sock.service")
        .unwrap();
    assert_eq!(f.cause, CauseClass::Healthy, "{f:#?}");
}

/// The failure watch of the core: a unit that fails after the first check goes out once as `service-failed`.
#[test]
fn a_unit_that_fails_goes_out_as_one_service_failed_event() {
    let (core, _, units) = crate::testing::core_with_diagnostics(&["missing-exec"]);
    let mut rx = core.events().subscribe();
    // Already failed at the first check: learnt, not announced.
    assert_eq!(core.check_failures(), 0);
    units.add(UnitProperties {
        id: "nginx.service".into(),
        load_state: "loaded".into(),
        active_state: "failed".into(),
        sub_state: "failed".into(),
        result: "exit-code".into(),
        ..Default::default()
    });
    assert_eq!(core.check_failures(), 1);
    assert_eq!(core.check_failures(), 0);
    let ev = rx.try_recv().expect("an event");
    assert_eq!(ev.kind.type_name(), "service-failed");
    match ev.kind {
        crate::event::EventKind::ServiceFailed { name, target, .. } => {
            assert_eq!((name.as_str(), target), ("nginx.service", TargetKind::Unit));
        }
        other => panic!("{other:?}"),
    }
    assert!(rx.try_recv().is_err(), "announced once");
}
