//! The fixed rules: from unit properties, journal entries and cgroup counters to a cause class, evidence and a
//! fix. Pure functions; every rule is tested against recorded fixtures (`tests.rs`).

use super::journal::{fold, message_ids as id, JournalEntry};
use super::{CauseClass, Finding, Fix, FixPlan, MemoryEvents, TargetKind, UnitProperties};

/// systemd's name of an exit status (`exit_status_to_string`, libc + systemd + LSB), e.g. 203 → `EXEC`.
pub fn exit_status_name(status: i32) -> Option<&'static str> {
    Some(match status {
        0 => "SUCCESS",
        1 => "FAILURE",
        2 => "INVALIDARGUMENT",
        3 => "NOTIMPLEMENTED",
        4 => "NOPERMISSION",
        5 => "NOTINSTALLED",
        6 => "NOTCONFIGURED",
        7 => "NOTRUNNING",
        200 => "CHDIR",
        201 => "NICE",
        202 => "FDS",
        203 => "EXEC",
        204 => "MEMORY",
        205 => "LIMITS",
        206 => "OOM_ADJUST",
        207 => "SIGNAL_MASK",
        208 => "STDIN",
        209 => "STDOUT",
        210 => "CHROOT",
        211 => "IOPRIO",
        212 => "TIMERSLACK",
        213 => "SECUREBITS",
        214 => "SETSCHEDULER",
        215 => "CPUAFFINITY",
        216 => "GROUP",
        217 => "USER",
        218 => "CAPABILITIES",
        219 => "CGROUP",
        220 => "SETSID",
        221 => "CONFIRM",
        222 => "STDERR",
        224 => "PAM",
        225 => "NETWORK",
        226 => "NAMESPACE",
        227 => "NO_NEW_PRIVILEGES",
        228 => "SECCOMP",
        229 => "SELINUX_CONTEXT",
        230 => "PERSONALITY",
        231 => "APPARMOR_PROFILE",
        232 => "ADDRESS_FAMILIES",
        233 => "RUNTIME_DIRECTORY",
        235 => "CHOWN",
        236 => "SMACK_PROCESS_LABEL",
        237 => "KEYRING",
        238 => "STATE_DIRECTORY",
        239 => "CACHE_DIRECTORY",
        240 => "LOGS_DIRECTORY",
        241 => "CONFIGURATION_DIRECTORY",
        242 => "NUMA_POLICY",
        243 => "CREDENTIALS",
        245 => "BPF",
        _ => return None,
    })
}

/// A signal's name, e.g. 11 → `SEGV`.
pub fn signal_name(sig: i32) -> Option<&'static str> {
    const NAMES: [&str; 31] = [
        "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2", "PIPE", "ALRM",
        "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG", "XCPU", "XFSZ", "VTALRM", "PROF",
        "WINCH", "IO", "PWR", "SYS",
    ];
    usize::try_from(sig)
        .ok()
        .and_then(|s| s.checked_sub(1))
        .and_then(|i| NAMES.get(i).copied())
}

/// `status=203/EXEC` style text of the unit's last main process exit, when there was one.
fn exit_text(p: &UnitProperties) -> Option<String> {
    match p.exec_main_code {
        1 => Some(format!(
            "{}/{}",
            p.exec_main_status,
            exit_status_name(p.exec_main_status).unwrap_or("n/a")
        )),
        2 | 3 => Some(format!(
            "{}/{}",
            p.exec_main_status,
            signal_name(p.exec_main_status).unwrap_or("n/a")
        )),
        _ => None,
    }
}

/// Human-readable bytes (powers of 1024).
pub fn bytes(n: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else if v.fract() == 0.0 {
        format!("{v:.0} {}", U[i])
    } else {
        format!("{v:.1} {}", U[i])
    }
}

/// Whether systemd itself (PID 1) logged the entry, rather than the unit's own processes.
fn from_systemd(e: &JournalEntry) -> bool {
    e.field("_PID") == Some("1") || e.field("SYSLOG_IDENTIFIER") == Some("systemd")
}

/// The absolute paths in a message with their byte offsets (quotes, brackets, trailing punctuation stripped).
fn paths(msg: &str) -> Vec<(usize, &str)> {
    let sep = |c: char| c.is_whitespace() || c == '"' || c == '\'' || c == '(' || c == ')' || c == '`';
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in msg.char_indices().chain(std::iter::once((msg.len(), ' '))) {
        match (sep(c), start) {
            (true, Some(s)) => {
                let t = msg[s..i].trim_end_matches([':', ',', '.', ';']);
                if t.starts_with('/') && t.len() > 1 {
                    out.push((s, t));
                }
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    out
}

/// The first absolute path in a message.
fn first_path(msg: &str) -> Option<String> {
    paths(msg).first().map(|(_, p)| (*p).to_owned())
}

/// The path a complaint is about: the last path before the complaint (`cat: /etc/x: No such file …` names
/// `/etc/x`, not `cat`), else the first path.
fn path_before(msg: &str, needle: &str) -> Option<String> {
    let at = msg.to_ascii_lowercase().find(needle).unwrap_or(msg.len());
    let ps = paths(msg);
    ps.iter()
        .rev()
        .find(|(i, _)| *i < at)
        .or(ps.first())
        .map(|(_, p)| (*p).to_owned())
}

/// The port in an "address already in use" message: the number after the last `:` or after "port".
fn port_in(msg: &str) -> Option<String> {
    let digits = |s: &str| -> Option<String> {
        let d: String = s.chars().take_while(char::is_ascii_digit).collect();
        d.parse::<u16>().ok().filter(|p| *p > 0).map(|p| p.to_string())
    };
    let lower = msg.to_ascii_lowercase();
    if let Some(i) = lower.find("port ") {
        if let Some(p) = digits(&lower[i + 5..]) {
            return Some(p);
        }
    }
    lower
        .match_indices(':')
        .rev()
        .find_map(|(i, _)| digits(&lower[i + 1..]))
}

/// The entries of the unit's latest episode: after the last successful start that precedes its last failure.
fn episode(entries: &[JournalEntry]) -> &[JournalEntry] {
    let last_fail = entries.iter().rposition(|e| {
        e.is(id::UNIT_FAILURE_RESULT) || e.is(id::JOB_FAILED) || e.is(id::PROCESS_EXIT) || e.is(id::OUT_OF_MEMORY)
    });
    let end = last_fail.map_or(entries.len(), |i| i + 1);
    let started = entries[..end].iter().rposition(|e| e.is(id::UNIT_STARTED));
    let mut start = started.map_or(0, |i| i + 1);
    // A process that fails at once logs before systemd's "Started" line of the same start: on a real systemd
    // (252) the spawn failure ("Failed to locate executable …", 203/EXEC) of a simple service is in the journal
    // *before* "Started X". Those lines carry the Started line's INVOCATION_ID and belong to this episode.
    if let Some(s) = started {
        if let Some(inv) = invocation(&entries[s]) {
            while start > 0 && invocation(&entries[start - 1]) == Some(inv) {
                start -= 1;
            }
        }
    }
    // A crash after a good start is after the Started line; a failed start has none in its episode. Keep the
    // tail (messages the unit printed after systemd's last failure line are part of it, too).
    &entries[start.min(entries.len())..]
}

/// The invocation an entry belongs to: `INVOCATION_ID` (systemd's lines about the unit and the spawned child's),
/// else `_SYSTEMD_INVOCATION_ID` (the unit's own output).
fn invocation(e: &JournalEntry) -> Option<&str> {
    e.field("INVOCATION_ID").or_else(|| e.field("_SYSTEMD_INVOCATION_ID"))
}

/// Whether systemd said it stopped restarting the unit: "Start request repeated too quickly." (systemd 252 logs
/// this without a `MESSAGE_ID` and keeps `Result=` of the last failure, e.g. `exit-code`, when an automatic
/// restart hits the start limit; `Result=start-limit-hit` only when a start request is refused).
fn start_limit_hit(p: &UnitProperties, entries: &[JournalEntry]) -> bool {
    p.result == "start-limit-hit"
        || p.is_failed()
            && entries
                .iter()
                .rev()
                .take_while(|e| !e.is(id::UNIT_STARTED))
                .any(|e| from_systemd(e) && e.message.contains("Start request repeated too quickly"))
}

/// Whether an entry is worth showing: a warning or worse, or one of systemd's failure messages.
fn is_evidence(e: &JournalEntry) -> bool {
    e.priority.is_some_and(|p| p <= 4)
        || [
            id::JOB_FAILED,
            id::UNIT_FAILURE_RESULT,
            id::PROCESS_EXIT,
            id::SPAWN_FAILED,
            id::OUT_OF_MEMORY,
            id::OOMD_KILL,
            id::COREDUMP,
            id::RESTART_SCHEDULED,
        ]
        .iter()
        .any(|m| e.is(m))
        || e.field("CONFIG_FILE").is_some()
}

fn evidence_of(entries: &[&JournalEntry]) -> Vec<super::Evidence> {
    let mut f = fold(entries);
    if f.len() > Finding::MAX_EVIDENCE {
        f.drain(..f.len() - Finding::MAX_EVIDENCE);
    }
    f
}

fn restart_plan(unit: &str) -> Option<FixPlan> {
    Some(FixPlan {
        op: "service.restart".into(),
        args: serde_json::json!({ "unit": unit }),
    })
}

/// What the messages of the episode say (the unit's own processes, and systemd's about it, such as a socket that
/// could not bind), in order of precedence.
fn own_message_cause(ep: &[JournalEntry]) -> Option<(CauseClass, Option<String>)> {
    let own: Vec<&JournalEntry> = ep.iter().filter(|e| !e.is(id::SPAWN_FAILED)).collect();
    let find = |needles: &[&'static str]| {
        own.iter().rev().find_map(|e| {
            let m = e.message.to_ascii_lowercase();
            needles.iter().find(|n| m.contains(**n)).map(|n| (*e, *n))
        })
    };
    const IN_USE: [&str; 3] = ["address already in use", "eaddrinuse", "address in use"];
    if find(&IN_USE).is_some() {
        let port = own.iter().rev().find_map(|e| {
            let m = e.message.to_ascii_lowercase();
            IN_USE
                .iter()
                .any(|n| m.contains(n))
                .then(|| port_in(&e.message))
                .flatten()
        });
        return Some((CauseClass::PortInUse, port));
    }
    if let Some((e, n)) = find(&["permission denied", "eacces"]) {
        return Some((CauseClass::PermissionDenied, path_before(&e.message, n)));
    }
    if let Some((e, n)) = find(&[
        "no such file or directory",
        "enoent",
        "cannot open",
        "can't open",
        "not found",
    ]) {
        if let Some(p) = path_before(&e.message, n) {
            return Some((CauseClass::MissingFile, Some(p)));
        }
    }
    None
}

/// Diagnoses one unit from its properties, its journal entries of this boot (oldest first) and its cgroup's
/// memory counters.
pub fn diagnose_unit(p: &UnitProperties, entries: &[JournalEntry], mem: Option<MemoryEvents>) -> Finding {
    let ep = episode(entries);
    let mut ev: Vec<&JournalEntry> = ep.iter().filter(|e| is_evidence(e)).collect();
    let state = Some(match exit_text(p) {
        Some(x) if p.is_failed() || p.result != "success" => format!("{} ({}, {x})", p.active_state, p.result),
        _ if !p.result.is_empty() && p.result != "success" => format!("{} ({})", p.active_state, p.result),
        _ => p.active_state.clone(),
    });
    let unit = p.id.as_str();
    let mut f = Finding {
        target_kind: TargetKind::Unit,
        target: p.id.clone(),
        cause: CauseClass::Healthy,
        subject: None,
        summary: String::new(),
        state,
        evidence: Vec::new(),
        entries_seen: entries.len() as u32,
        fix: Fix {
            instruction: String::new(),
            plan: None,
        },
        because: None,
    };

    // 1. systemd could not load the unit.
    if matches!(p.load_state.as_str(), "bad-setting" | "error" | "masked") {
        let cfg = entries.iter().rev().find(|e| e.field("CONFIG_FILE").is_some());
        let file = cfg.and_then(|e| {
            Some(format!(
                "{}:{}",
                e.field("CONFIG_FILE")?,
                e.field("CONFIG_LINE").unwrap_or("?")
            ))
        });
        ev = entries
            .iter()
            .filter(|e| e.field("CONFIG_FILE").is_some() || e.priority.is_some_and(|p| p <= 3))
            .collect();
        f.cause = CauseClass::BadSetting;
        f.subject = file
            .clone()
            .or_else(|| (!p.fragment_path.is_empty()).then(|| p.fragment_path.clone()));
        if p.load_state == "masked" {
            f.summary = format!("{unit} is masked");
            f.fix.instruction = format!("unmask it: systemctl unmask {unit}");
        } else {
            let what = cfg.map_or_else(
                || p.load_error.clone().unwrap_or_else(|| "a setting was refused".into()),
                |e| e.message.clone(),
            );
            f.summary = format!("{unit} has a bad unit file setting: {what}");
            f.fix.instruction = format!(
                "correct the setting in {}, then run systemctl daemon-reload and start {unit} again",
                f.subject.as_deref().unwrap_or("the unit file")
            );
        }
        f.evidence = evidence_of(&ev);
        return f;
    }

    // 2. The restart loop ended in the start limit: say so, and what made it fail each time.
    if start_limit_hit(p, entries) {
        let earlier = entries
            .iter()
            .rev()
            .filter(|e| e.is(id::UNIT_FAILURE_RESULT))
            .filter_map(|e| e.field("UNIT_RESULT"))
            .find(|r| *r != "start-limit-hit")
            .unwrap_or("exit-code");
        let restarts = entries
            .iter()
            .filter(|e| e.is(id::RESTART_SCHEDULED))
            .filter_map(|e| e.field("N_RESTARTS").and_then(|n| n.parse::<u32>().ok()))
            .max()
            .unwrap_or(p.n_restarts);
        let inner_props = UnitProperties {
            result: earlier.to_owned(),
            ..p.clone()
        };
        // What made it fail each time: the entries before systemd gave up (so the inner diagnosis does not find
        // the start limit again).
        let gave_up = entries
            .iter()
            .rposition(|e| from_systemd(e) && e.message.contains("Start request repeated too quickly"))
            .unwrap_or(entries.len());
        let inner = diagnose_unit(&inner_props, &entries[..gave_up], mem);
        f.cause = CauseClass::RestartLoop;
        f.subject = Some(restarts.to_string());
        f.summary = format!(
            "{unit} failed {} times in a row ({}), so systemd stopped restarting it (start-limit-hit)",
            restarts + 1,
            inner.cause.as_str()
        );
        f.fix.instruction = format!(
            "fix why it fails ({}), then reset and restart it",
            if inner.fix.instruction.is_empty() {
                inner.summary.clone()
            } else {
                inner.fix.instruction.clone()
            }
        );
        f.fix.plan = restart_plan(unit);
        let all: Vec<&JournalEntry> = entries.iter().filter(|e| is_evidence(e)).collect();
        f.evidence = evidence_of(&all);
        f.because = Some(Box::new(inner));
        return f;
    }

    // 3. OOM killer.
    let oom_entry = ep.iter().any(|e| e.is(id::OUT_OF_MEMORY) || e.is(id::OOMD_KILL));
    if p.result == "oom-kill" || oom_entry || mem.is_some_and(|m| m.oom_kill > 0) {
        f.cause = CauseClass::OutOfMemory;
        f.subject = p.memory_max.map(bytes);
        f.summary = match p.memory_max {
            Some(m) => format!(
                "the kernel's OOM killer killed {unit}: it needed more than its MemoryMax of {}",
                bytes(m)
            ),
            None => format!("the kernel's OOM killer killed {unit}: the machine ran out of memory"),
        };
        f.fix.instruction = match p.memory_max {
            Some(m) => format!(
                "raise its memory limit, e.g. systemctl set-property {unit} MemoryMax={}M, or make it use less, then restart it",
                m.saturating_mul(2) >> 20
            ),
            None => format!("free memory (stop sandboxes or services you do not need), then restart {unit}"),
        };
        f.fix.plan = restart_plan(unit);
        f.evidence = evidence_of(&ev);
        return f;
    }

    // 4. Core dump.
    let dump = ep.iter().rev().find(|e| e.is(id::COREDUMP));
    if p.result == "core-dump" || p.exec_main_code == 3 || dump.is_some() {
        let sig = dump
            .and_then(|e| e.field("COREDUMP_SIGNAL_NAME").map(str::to_owned))
            .or_else(|| signal_name(p.exec_main_status).map(|s| format!("SIG{s}")));
        let exe = dump.and_then(|e| e.field("COREDUMP_EXE"));
        f.cause = CauseClass::CoreDump;
        f.subject = sig.clone();
        f.summary = format!(
            "{} crashed with {} and dumped core",
            exe.unwrap_or(unit),
            sig.as_deref().unwrap_or("a signal")
        );
        f.fix.instruction = format!(
            "look at the crash with coredumpctl info {}; update or report the program; restart {unit} to bring it back",
            exe.unwrap_or(unit)
        );
        f.fix.plan = restart_plan(unit);
        f.evidence = evidence_of(&ev);
        return f;
    }

    // 5. The executable could not be run (203/EXEC and its spawn message).
    let spawn = ep.iter().rev().find(|e| e.is(id::SPAWN_FAILED));
    if (p.exec_main_code == 1 && p.exec_main_status == 203) || spawn.is_some() {
        let errno = spawn.and_then(|e| e.field("ERRNO")).and_then(|n| n.parse::<i32>().ok());
        let msg = spawn.map(|e| e.message.to_ascii_lowercase()).unwrap_or_default();
        let path = spawn
            .and_then(|e| e.field("EXECUTABLE").map(str::to_owned))
            .or_else(|| spawn.and_then(|e| first_path(&e.message)));
        let denied = errno == Some(13) || msg.contains("permission denied");
        f.subject = path.clone();
        let path = path.unwrap_or_else(|| "the program in ExecStart=".into());
        if denied {
            f.cause = CauseClass::PermissionDenied;
            f.summary = format!("{unit} could not start: permission denied on {path} (203/EXEC)");
            f.fix.instruction = format!(
                "make {path} executable (chmod +x {path}) and check that the user the unit runs as may read it and every directory above it"
            );
        } else {
            f.cause = CauseClass::MissingExecutable;
            f.summary = format!("{unit} could not start: {path} does not exist (203/EXEC)");
            f.fix.instruction =
                format!("install the program that provides {path}, or correct the path in ExecStart= of {unit}");
        }
        f.evidence = evidence_of(&ev);
        return f;
    }

    // 6. A mount unit failed: quote mount's own message.
    if p.unit_type() == "mount" && (p.is_failed() || p.result != "success" && !p.result.is_empty()) {
        let said = ep
            .iter()
            .rev()
            .find(|e| !from_systemd(e) && e.message.trim_start().starts_with("mount:"))
            .or_else(|| {
                ep.iter()
                    .rev()
                    .find(|e| !from_systemd(e) && e.priority.is_some_and(|p| p <= 4))
            })
            .or_else(|| ep.iter().find(|e| !from_systemd(e)));
        if let Some(s) = said {
            if !ev.iter().any(|x| x.cursor == s.cursor) {
                ev.push(s);
                ev.sort_by_key(|e| e.time_us);
            }
        }
        f.cause = CauseClass::MountFailed;
        f.subject = Some(if p.mount_where.is_empty() {
            unit.to_owned()
        } else {
            p.mount_where.clone()
        });
        f.summary = format!(
            "mounting {} on {} failed{}",
            if p.what.is_empty() { "the device" } else { &p.what },
            f.subject.as_deref().unwrap_or(unit),
            said.map(|e| format!(": {}", e.message.trim())).unwrap_or_default()
        );
        f.fix.instruction = format!(
            "check that {} exists and holds the file system type and options the mount unit names (What=, Type=, Options=)",
            if p.what.is_empty() { "the device" } else { &p.what }
        );
        f.evidence = evidence_of(&ev);
        return f;
    }

    // 7. A job failed because a dependency did (Diagnostics names the failed one and follows it).
    let dep_job = ep
        .iter()
        .rev()
        .find(|e| e.is(id::JOB_FAILED) && e.field("JOB_RESULT") == Some("dependency"));
    if dep_job.is_some() && !p.is_failed() {
        f.cause = CauseClass::DependencyFailed;
        f.subject = p.requires.first().cloned();
        f.summary = format!("{unit} did not start because a unit it requires failed");
        f.fix.instruction = format!("fix the failed dependency, then start {unit} again");
        f.fix.plan = restart_plan(unit);
        f.evidence = evidence_of(&ev);
        return f;
    }

    if !p.is_failed() && (p.result.is_empty() || p.result == "success") {
        f.cause = CauseClass::Healthy;
        f.summary = format!("{unit} is {} ({})", p.active_state, p.sub_state);
        f.fix.instruction = "nothing to do".into();
        f.evidence = evidence_of(&ev);
        return f;
    }

    // 8. The unit's own words.
    if let Some((cause, subject)) = own_message_cause(ep) {
        let said: Vec<&JournalEntry> = ep
            .iter()
            .filter(|e| {
                let m = e.message.to_ascii_lowercase();
                m.contains("in use") || m.contains("denied") || m.contains("no such file") || m.contains("open")
            })
            .collect();
        for e in said {
            if !ev.iter().any(|x| x.cursor == e.cursor) {
                ev.push(e);
            }
        }
        ev.sort_by_key(|e| e.time_us);
        f.cause = cause;
        f.subject = subject.clone();
        let s = subject.as_deref().unwrap_or("?");
        (f.summary, f.fix.instruction) = match cause {
            CauseClass::PortInUse => (
                format!("{unit} could not listen: port {s} is already in use by another process"),
                format!(
                    "find the process holding port {s} (ss -ltnp 'sport = :{s}') and stop it, or give {unit} another port; then restart {unit}"
                ),
            ),
            CauseClass::PermissionDenied => (
                format!("{unit} failed: permission denied on {s}"),
                format!("give the unit's user access to {s} (owner, mode, or a ReadWritePaths= setting), then restart {unit}"),
            ),
            _ => (
                format!("{unit} failed: {s} does not exist"),
                format!("create {s} (or correct the path in the unit's configuration), then restart {unit}"),
            ),
        };
        f.fix.plan = restart_plan(unit);
        f.evidence = evidence_of(&ev);
        return f;
    }

    // 9. What systemd's result says.
    let x = exit_text(p).unwrap_or_else(|| p.result.clone());
    (f.cause, f.summary, f.fix.instruction) = match p.result.as_str() {
        "timeout" => (
            CauseClass::Timeout,
            format!("{unit} did not finish starting or stopping in time"),
            format!("look at its last messages for what it waits on, or raise TimeoutStartSec=; then restart {unit}"),
        ),
        "watchdog" => (
            CauseClass::Watchdog,
            format!("{unit} stopped answering its watchdog and was killed"),
            format!("look at its last messages for why it hung; restart {unit}"),
        ),
        "signal" => (
            CauseClass::Signal,
            format!("{unit} was killed by signal {x}"),
            format!("find who sent the signal (a stop, the OOM killer, a person); restart {unit}"),
        ),
        "resources" => (
            CauseClass::Resources,
            format!("systemd could not set up {unit}'s resources (a directory, user, or namespace)"),
            format!("look at the evidence for the resource that failed; restart {unit}"),
        ),
        _ => (
            CauseClass::ExitCode,
            format!("{unit} exited with status {x}"),
            format!("look at its last messages (journal.query unit {unit}); restart {unit} when fixed"),
        ),
    };
    f.subject = Some(x);
    f.fix.plan = restart_plan(unit);
    // The unit's own last lines explain most exit codes.
    let own_tail: Vec<&JournalEntry> = ep.iter().filter(|e| !from_systemd(e)).rev().take(3).collect();
    for e in own_tail {
        if !ev.iter().any(|x| x.cursor == e.cursor) {
            ev.push(e);
        }
    }
    ev.sort_by_key(|e| e.time_us);
    f.evidence = evidence_of(&ev);
    f
}

/// Diagnoses a sandbox: killed by its memory limit (cgroup `memory.events` `oom_kill`, or its unit's result), a
/// failed start (its unit's diagnosis, or the manager's last error), or healthy.
pub fn diagnose_sandbox(
    info: &crate::sandbox::SandboxInfo,
    unit: Option<&UnitProperties>,
    entries: &[JournalEntry],
    mem: Option<MemoryEvents>,
) -> Finding {
    let name = &info.name;
    let unit_finding = unit.map(|p| diagnose_unit(p, entries, mem));
    let oom_kills = mem.map_or(0, |m| m.oom_kill);
    let ep = episode(entries);
    let journal_oom = ep
        .iter()
        .any(|e| e.is(id::OUT_OF_MEMORY) || e.is(id::OOMD_KILL) || e.field("UNIT_RESULT") == Some("oom-kill"));
    let unit_oom = journal_oom
        || unit_finding
            .as_ref()
            .is_some_and(|f| f.cause == CauseClass::OutOfMemory);
    let limit = info.limits.memory_max;
    let mut f = Finding {
        target_kind: TargetKind::Sandbox,
        target: name.clone(),
        cause: CauseClass::Healthy,
        subject: None,
        summary: String::new(),
        state: Some(info.state.as_str().to_owned()),
        evidence: match &unit_finding {
            Some(u) => u.evidence.clone(),
            None => evidence_of(&ep.iter().filter(|e| is_evidence(e)).collect::<Vec<_>>()),
        },
        entries_seen: entries.len() as u32,
        fix: Fix {
            instruction: String::new(),
            plan: None,
        },
        because: None,
    };
    if oom_kills > 0 || unit_oom {
        f.cause = CauseClass::SandboxOutOfMemory;
        f.subject = limit.map(bytes);
        let killed = if oom_kills > 0 {
            format!("{oom_kills} process(es)")
        } else {
            "its processes".to_owned()
        };
        f.summary = match limit {
            Some(l) => format!(
                "sandbox {name} hit its memory limit of {}: the OOM killer killed {killed}",
                bytes(l)
            ),
            None => format!("the OOM killer killed {killed} in sandbox {name}"),
        };
        f.fix.instruction = match limit {
            Some(l) => format!(
                "give sandbox {name} more memory: create it again with a memory limit of at least {} (now {}), or run less in it",
                bytes(l.saturating_mul(2)),
                bytes(l)
            ),
            None => format!("free memory on the appliance or run less in sandbox {name}"),
        };
        f.fix.plan = Some(FixPlan {
            op: "sandbox.restart".into(),
            args: serde_json::json!({ "name": name }),
        });
        if let Some(m) = mem {
            f.state = Some(format!(
                "{} (memory.events: max {}, oom {}, oom_kill {})",
                info.state.as_str(),
                m.max,
                m.oom,
                m.oom_kill
            ));
        }
        return f;
    }
    match (info.state, unit_finding) {
        (_, Some(u)) if u.cause != CauseClass::Healthy => Finding {
            target_kind: TargetKind::Sandbox,
            target: name.clone(),
            state: Some(info.state.as_str().to_owned()),
            because: Some(Box::new(u.clone())),
            summary: format!("sandbox {name}: {}", u.summary),
            ..u
        },
        (crate::sandbox::SandboxState::Failed, _) => {
            f.cause = CauseClass::SandboxFailed;
            f.subject = info.last_error.clone();
            f.summary = format!(
                "sandbox {name} failed to start: {}",
                info.last_error.as_deref().unwrap_or("no reason was recorded")
            );
            f.fix.instruction = format!("read sandbox.logs of {name}; then start it again");
            f.fix.plan = Some(FixPlan {
                op: "sandbox.start".into(),
                args: serde_json::json!({ "name": name }),
            });
            f
        }
        _ => {
            f.summary = format!("sandbox {name} is {}", info.state.as_str());
            f.fix.instruction = "nothing to do".into();
            f
        }
    }
}

/// Supervisor tasks that are restarting.
pub fn diagnose_tasks(tasks: &[crate::supervisor::TaskStatus]) -> Vec<Finding> {
    tasks
        .iter()
        .filter(|t| t.state == crate::supervisor::TaskState::Backoff)
        .map(|t| Finding {
            target_kind: TargetKind::Task,
            target: t.name.clone(),
            cause: CauseClass::TaskDegraded,
            subject: t.last_error.clone(),
            summary: format!(
                "cacheosd's task {} ended ({}) and is being restarted (restart {})",
                t.name,
                t.last_error.as_deref().unwrap_or("no reason"),
                t.restarts
            ),
            state: Some("backoff".into()),
            evidence: Vec::new(),
            entries_seen: 0,
            fix: Fix {
                instruction: "cacheosd restarts it with backoff; if it keeps failing, read journal.query unit cacheosd"
                    .into(),
                plan: None,
            },
            because: None,
        })
        .collect()
}

/// File systems at least this full count as nearly full (percent).
pub const DISK_FULL_PERCENT: u64 = 90;
/// Less available memory than this counts as memory pressure (percent of the total).
pub const MEMORY_LOW_PERCENT: u64 = 10;

/// Nearly full file systems and memory pressure.
pub fn diagnose_resources(st: &crate::system::SystemStatus) -> Vec<Finding> {
    let mut out = Vec::new();
    for d in &st.disks {
        if d.total_bytes == 0 || d.read_only {
            continue;
        }
        let pct = d.used_bytes.saturating_mul(100) / d.total_bytes;
        if pct >= DISK_FULL_PERCENT {
            out.push(Finding {
                target_kind: TargetKind::FileSystem,
                target: d.mount_point.clone(),
                cause: CauseClass::DiskFull,
                subject: Some(format!("{pct}%")),
                summary: format!(
                    "{} is {pct}% full ({} free of {})",
                    d.mount_point,
                    bytes(d.available_bytes),
                    bytes(d.total_bytes)
                ),
                state: None,
                evidence: Vec::new(),
                entries_seen: 0,
                fix: Fix {
                    instruction: format!(
                        "remove files below {} you do not need (old images: drive.images; snapshots: drive.discard)",
                        d.mount_point
                    ),
                    plan: Some(FixPlan {
                        op: "drive.images".into(),
                        args: serde_json::Value::Null,
                    }),
                },
                because: None,
            });
        }
    }
    let m = &st.memory;
    if m.total_bytes > 0 && m.available_bytes.saturating_mul(100) / m.total_bytes < MEMORY_LOW_PERCENT {
        out.push(Finding {
            target_kind: TargetKind::Memory,
            target: "memory".into(),
            cause: CauseClass::MemoryPressure,
            subject: Some(bytes(m.available_bytes)),
            summary: format!(
                "only {} of {} memory is available",
                bytes(m.available_bytes),
                bytes(m.total_bytes)
            ),
            state: None,
            evidence: Vec::new(),
            entries_seen: 0,
            fix: Fix {
                instruction: "stop sandboxes or services you do not need (sandbox.list shows their memory)".into(),
                plan: Some(FixPlan {
                    op: "sandbox.list".into(),
                    args: serde_json::Value::Null,
                }),
            },
            because: None,
        });
    }
    out
}

/// A drive: a mounted file system nearly full, a drive not attached, or healthy.
pub fn diagnose_drive(info: &crate::drive::DriveInfo) -> Finding {
    let full = info.partitions.iter().find_map(|p| {
        let (used, free) = (p.used?, p.free?);
        let total = used + free;
        let pct = used.saturating_mul(100).checked_div(total)?;
        (pct >= DISK_FULL_PERCENT).then(|| (p.mount_point.clone(), pct, free))
    });
    let mut f = Finding {
        target_kind: TargetKind::Drive,
        target: info.name.clone(),
        cause: CauseClass::Healthy,
        subject: None,
        summary: format!("drive {} is {:?}", info.name, info.state).to_lowercase(),
        state: Some(format!("{:?}", info.state).to_lowercase()),
        evidence: Vec::new(),
        entries_seen: 0,
        fix: Fix {
            instruction: "nothing to do".into(),
            plan: None,
        },
        because: None,
    };
    if let Some((mp, pct, free)) = full {
        let at = mp.map_or_else(|| info.name.clone(), |m| m.display().to_string());
        f.cause = CauseClass::DiskFull;
        f.subject = Some(format!("{pct}%"));
        f.summary = format!(
            "the file system of drive {} at {at} is {pct}% full ({} free)",
            info.name,
            bytes(free)
        );
        f.fix = Fix {
            instruction: format!("remove files below {at} you do not need, or create a larger drive and copy the data"),
            plan: Some(FixPlan {
                op: "drive.files".into(),
                args: serde_json::json!({ "name": info.name }),
            }),
        };
    }
    f
}
