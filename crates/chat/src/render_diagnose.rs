//! Replies for the diagnosis operations (`system.diagnose`, `journal.query`, `service.list`, `service.restart`) in
//! German and English: the cause in words, a few evidence lines (repeats with their count), and the fix — an
//! operation to say next where one exists, else the instruction.

use std::fmt::Write;

use cacheos_core::diagnose::{CauseClass, Diagnosis, Evidence, Finding, JournalPage, ServiceInfo};
use cacheos_core::Operation;

use crate::engine::Lang;

/// Evidence lines a reply quotes at most; the rest is in `journal.query`.
pub const QUOTED: usize = 4;

fn t(lang: Lang, de: &str, en: &str) -> String {
    match lang {
        Lang::De => de.to_owned(),
        Lang::En => en.to_owned(),
    }
}

/// The explanation of what the chat is about to do.
pub fn explain(op: &Operation, lang: Lang) -> String {
    match op {
        Operation::SystemDiagnose(a) => match (&a.unit, &a.sandbox, &a.drive) {
            (Some(u), _, _) => t(
                lang,
                &format!("Ich sehe nach, warum {u} nicht läuft (system.diagnose)."),
                &format!("Looking into why {u} is not running (system.diagnose)."),
            ),
            (_, Some(s), _) => t(
                lang,
                &format!("Ich sehe nach, was mit der Sandbox {s} los ist (system.diagnose)."),
                &format!("Looking into sandbox {s} (system.diagnose)."),
            ),
            (_, _, Some(d)) => t(
                lang,
                &format!("Ich prüfe das Laufwerk {d} (system.diagnose)."),
                &format!("Checking drive {d} (system.diagnose)."),
            ),
            _ => t(
                lang,
                "Ich prüfe Dienste, Sandboxen, interne Aufgaben, Dateisysteme und Speicher (system.diagnose).",
                "Checking units, sandboxes, internal tasks, file systems and memory (system.diagnose).",
            ),
        },
        Operation::JournalQuery(q) => {
            let what = q.unit.as_deref().or(q.sandbox.as_deref());
            let mut s = match what {
                Some(w) => t(
                    lang,
                    &format!("Ich zeige das Journal von {w}"),
                    &format!("Showing the journal of {w}"),
                ),
                None => t(lang, "Ich zeige das Journal", "Showing the journal"),
            };
            if q.priority.is_some_and(|p| p <= 4) {
                s += &t(lang, " (nur Warnungen und Fehler)", " (warnings and errors only)");
            }
            s + "."
        }
        Operation::ServiceList => t(
            lang,
            "Ich zeige die Dienste, fehlgeschlagene zuerst.",
            "Showing the services, failed ones first.",
        ),
        Operation::ServiceRestart(a) => t(
            lang,
            &format!("Ich starte {} neu (service.restart).", a.unit),
            &format!("Restarting {} (service.restart).", a.unit),
        ),
        _ => String::new(),
    }
}

/// The cause of a finding in words: (what happened, what to do).
pub fn cause(f: &Finding, lang: Lang) -> (String, String) {
    let de = lang == Lang::De;
    let x = f.subject.as_deref().unwrap_or("?");
    let u = f.target.as_str();
    let pair = |a: String, b: String| (a, b);
    match (f.cause, de) {
        (CauseClass::MissingExecutable, true) => pair(
            format!("{u} konnte nicht starten: das Programm {x} fehlt (203/EXEC)."),
            format!("Installiere das Programm, das {x} mitbringt, oder korrigiere den Pfad in ExecStart=."),
        ),
        (CauseClass::MissingExecutable, false) => pair(
            format!("{u} could not start: the program {x} does not exist (203/EXEC)."),
            format!("Install the program that provides {x}, or correct the path in ExecStart=."),
        ),
        (CauseClass::BadSetting, true) => pair(
            format!("{u} hat eine ungültige Einstellung in der Unit-Datei ({x})."),
            format!("Korrigiere die Einstellung in {x}, dann systemctl daemon-reload und {u} neu starten."),
        ),
        (CauseClass::BadSetting, false) => pair(
            format!("{u} has an invalid setting in its unit file ({x})."),
            format!("Correct the setting in {x}, then systemctl daemon-reload and start {u} again."),
        ),
        (CauseClass::MissingFile, true) => pair(
            format!("{u} ist ausgefallen: die Datei {x} fehlt."),
            format!("Lege {x} an (oder korrigiere den Pfad in der Konfiguration) und starte {u} neu."),
        ),
        (CauseClass::MissingFile, false) => pair(
            format!("{u} failed: the file {x} does not exist."),
            format!("Create {x} (or correct the path in its configuration), then restart {u}."),
        ),
        (CauseClass::PortInUse, true) => pair(
            format!("{u} konnte nicht lauschen: Port {x} ist schon belegt."),
            format!("Beende den Prozess auf Port {x} (ss -ltnp) oder gib {u} einen anderen Port, dann neu starten."),
        ),
        (CauseClass::PortInUse, false) => pair(
            format!("{u} could not listen: port {x} is already in use."),
            format!("Stop the process holding port {x} (ss -ltnp) or give {u} another port, then restart it."),
        ),
        (CauseClass::OutOfMemory, true) => pair(
            format!("Der OOM-Killer hat {u} beendet (Speichergrenze {x})."),
            format!("Erhöhe MemoryMax= von {u} oder lass es weniger Speicher brauchen, dann neu starten."),
        ),
        (CauseClass::OutOfMemory, false) => pair(
            format!("The OOM killer killed {u} (memory limit {x})."),
            format!("Raise MemoryMax= of {u} or make it use less memory, then restart it."),
        ),
        (CauseClass::CoreDump, true) => pair(
            format!("{u} ist abgestürzt ({x}) und hat einen Core-Dump geschrieben."),
            "Sieh dir den Absturz mit coredumpctl info an, aktualisiere oder melde das Programm; ein Neustart bringt es zurück.".to_owned(),
        ),
        (CauseClass::CoreDump, false) => pair(
            format!("{u} crashed ({x}) and dumped core."),
            "Look at the crash with coredumpctl info, update or report the program; a restart brings it back.".to_owned(),
        ),
        (CauseClass::DependencyFailed, true) => pair(
            format!("{u} ist nicht gestartet, weil {x} ausgefallen ist, das es braucht."),
            format!("Behebe zuerst den Fehler von {x} (unten), dann starte {u} neu."),
        ),
        (CauseClass::DependencyFailed, false) => pair(
            format!("{u} did not start because {x}, which it requires, failed."),
            format!("Fix {x} first (below), then start {u} again."),
        ),
        (CauseClass::MountFailed, true) => pair(
            format!("Das Einhängen von {x} ist fehlgeschlagen."),
            "Prüfe Gerät, Dateisystemtyp und Optionen der Mount-Unit (What=, Type=, Options=).".to_owned(),
        ),
        (CauseClass::MountFailed, false) => pair(
            format!("Mounting {x} failed."),
            "Check the device, file system type and options of the mount unit (What=, Type=, Options=).".to_owned(),
        ),
        (CauseClass::PermissionDenied, true) => pair(
            format!("{u} ist ausgefallen: Zugriff verweigert auf {x}."),
            format!("Mach {x} ausführbar bzw. lesbar für den Benutzer der Unit (chmod, Besitzer), dann neu starten."),
        ),
        (CauseClass::PermissionDenied, false) => pair(
            format!("{u} failed: permission denied on {x}."),
            format!("Make {x} executable or readable for the unit's user (chmod, owner), then restart it."),
        ),
        (CauseClass::RestartLoop, true) => pair(
            format!("{u} ist immer wieder ausgefallen ({x} Neustarts); systemd hat aufgegeben (start-limit-hit)."),
            format!("Behebe die Ursache (unten); dann setze ich den Zähler zurück und starte {u} neu."),
        ),
        (CauseClass::RestartLoop, false) => pair(
            format!("{u} kept failing ({x} restarts); systemd gave up (start-limit-hit)."),
            format!("Fix the cause (below); then I reset the counter and restart {u}."),
        ),
        (CauseClass::SandboxOutOfMemory, true) => pair(
            format!("Die Sandbox {u} hat ihre Speichergrenze ({x}) erreicht; der OOM-Killer hat Prozesse beendet."),
            format!("Gib der Sandbox {u} mehr Speicher (neu anlegen mit höherer Grenze) oder lass weniger darin laufen."),
        ),
        (CauseClass::SandboxOutOfMemory, false) => pair(
            format!("Sandbox {u} hit its memory limit ({x}); the OOM killer killed processes in it."),
            format!("Give sandbox {u} more memory (create it again with a higher limit) or run less in it."),
        ),
        (CauseClass::ExitCode, true) => pair(
            format!("{u} hat sich mit Status {x} beendet."),
            format!("Sieh dir die letzten Meldungen an (unten); danach {u} neu starten."),
        ),
        (CauseClass::ExitCode, false) => pair(
            format!("{u} exited with status {x}."),
            format!("Look at its last messages (below); then restart {u}."),
        ),
        (CauseClass::Signal, true) => pair(format!("{u} wurde durch Signal {x} beendet."), format!("Starte {u} neu.")),
        (CauseClass::Signal, false) => pair(format!("{u} was killed by signal {x}."), format!("Restart {u}.")),
        (CauseClass::Timeout, true) => pair(
            format!("{u} ist nicht rechtzeitig fertig geworden (Timeout)."),
            format!("Sieh nach, worauf es wartet, oder erhöhe TimeoutStartSec=; dann {u} neu starten."),
        ),
        (CauseClass::Timeout, false) => pair(
            format!("{u} did not finish in time (timeout)."),
            format!("See what it waits for, or raise TimeoutStartSec=; then restart {u}."),
        ),
        (CauseClass::Watchdog, true) => pair(
            format!("{u} hat auf seinen Watchdog nicht mehr geantwortet."),
            format!("Starte {u} neu."),
        ),
        (CauseClass::Watchdog, false) => pair(
            format!("{u} stopped answering its watchdog."),
            format!("Restart {u}."),
        ),
        (CauseClass::Resources, true) => pair(
            format!("systemd konnte die Ressourcen von {u} nicht einrichten."),
            format!("Sieh dir die Meldungen an (unten); dann {u} neu starten."),
        ),
        (CauseClass::Resources, false) => pair(
            format!("systemd could not set up the resources of {u}."),
            format!("Look at the messages (below); then restart {u}."),
        ),
        (CauseClass::DiskFull, true) => pair(
            format!("{u} ist zu {x} voll."),
            format!("Lösche nicht mehr benötigte Dateien unter {u} (alte Images, Snapshots)."),
        ),
        (CauseClass::DiskFull, false) => pair(
            format!("{u} is {x} full."),
            format!("Remove files you no longer need below {u} (old images, snapshots)."),
        ),
        (CauseClass::MemoryPressure, true) => pair(
            format!("Der Speicher wird knapp: nur noch {x} frei."),
            "Stoppe Sandboxen oder Dienste, die du nicht brauchst.".to_owned(),
        ),
        (CauseClass::MemoryPressure, false) => pair(
            format!("Memory is short: only {x} available."),
            "Stop sandboxes or services you do not need.".to_owned(),
        ),
        (CauseClass::TaskDegraded, true) => pair(
            format!("Die interne Aufgabe {u} von cacheosd wird neu gestartet ({x})."),
            "cacheosd startet sie selbst neu; wenn es wiederkommt, sieh ins Journal von cacheosd.".to_owned(),
        ),
        (CauseClass::TaskDegraded, false) => pair(
            format!("cacheosd's internal task {u} is being restarted ({x})."),
            "cacheosd restarts it itself; if it keeps happening, read cacheosd's journal.".to_owned(),
        ),
        (CauseClass::SandboxFailed, true) => pair(
            format!("Die Sandbox {u} konnte nicht starten: {x}"),
            format!("Sieh dir die Logs von {u} an und starte sie erneut."),
        ),
        (CauseClass::SandboxFailed, false) => pair(
            format!("Sandbox {u} failed to start: {x}"),
            format!("Read the logs of {u} and start it again."),
        ),
        (CauseClass::Healthy, true) => pair(format!("Mit {u} ist alles in Ordnung."), String::new()),
        (CauseClass::Healthy, false) => pair(format!("{u} is fine."), String::new()),
    }
}

/// The phrase to say for a finding's plan (each is a row of the chat data).
fn plan_phrase(f: &Finding, lang: Lang) -> Option<String> {
    let p = f.fix.plan.as_ref()?;
    let arg = |k: &str| p.args.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_owned();
    Some(match (p.op.as_str(), lang) {
        ("service.restart", Lang::De) => format!("„starte {} neu“", arg("unit")),
        ("service.restart", Lang::En) => format!("\"restart {}\"", arg("unit")),
        ("sandbox.restart", Lang::De) => format!("„starte die Sandbox {} neu“", arg("name")),
        ("sandbox.restart", Lang::En) => format!("\"restart sandbox {}\"", arg("name")),
        ("sandbox.start", Lang::De) => format!("„starte die Sandbox {}“", arg("name")),
        ("sandbox.start", Lang::En) => format!("\"start sandbox {}\"", arg("name")),
        _ => return None,
    })
}

fn time(ms: u64) -> String {
    let s = ms / 1000;
    format!("{:02}:{:02}:{:02}", s / 3600 % 24, s / 60 % 60, s % 60)
}

fn evidence_line(s: &mut String, e: &Evidence, lang: Lang) {
    let count = if e.count > 1 {
        match lang {
            Lang::De => format!(" ({}×)", e.count),
            Lang::En => format!(" ({}×)", e.count),
        }
    } else {
        String::new()
    };
    let msg = e.message.lines().next().unwrap_or_default();
    let _ = writeln!(s, "  {} {msg}{count}", time(e.time_ms));
}

fn finding(s: &mut String, f: &Finding, lang: Lang, depth: usize) {
    let (what, fix) = cause(f, lang);
    let indent = "  ".repeat(depth);
    let _ = writeln!(s, "{indent}{what}");
    if f.cause == CauseClass::Healthy {
        return;
    }
    if !f.evidence.is_empty() {
        let _ = writeln!(
            s,
            "{indent}{}",
            t(lang, "Belege aus dem Journal:", "Evidence from the journal:")
        );
        let skip = f.evidence.len().saturating_sub(QUOTED);
        for e in &f.evidence[skip..] {
            s.push_str(&indent);
            evidence_line(s, e, lang);
        }
        if skip > 0 {
            let _ = writeln!(
                s,
                "{indent}  {}",
                t(
                    lang,
                    &format!("… {skip} weitere – „zeig mir das Journal von {}“", f.target),
                    &format!("… {skip} more – \"show the journal of {}\"", f.target),
                )
            );
        }
    }
    if let Some(b) = &f.because {
        finding(s, b, lang, depth + 1);
    }
    if !fix.is_empty() {
        let _ = writeln!(s, "{indent}{} {fix}", t(lang, "Lösung:", "Fix:"));
    }
    if let Some(p) = plan_phrase(f, lang) {
        let _ = writeln!(
            s,
            "{indent}{}",
            t(
                lang,
                &format!("Sag {p}, dann mache ich das."),
                &format!("Say {p} and I will do it.")
            )
        );
    }
}

/// A diagnosis as text.
pub fn diagnosis(d: &Diagnosis, lang: Lang) -> String {
    let mut s = String::new();
    if d.findings.is_empty() {
        let _ = writeln!(
            s,
            "{} ({})",
            t(lang, "Ich habe keine Probleme gefunden.", "I found no problems."),
            d.checked.join(", ")
        );
    }
    if d.findings.len() > 1 {
        let _ = writeln!(
            s,
            "{}",
            t(
                lang,
                &format!("Ich habe {} Probleme gefunden:", d.findings.len()),
                &format!("I found {} problems:", d.findings.len())
            )
        );
    }
    for f in &d.findings {
        finding(&mut s, f, lang, 0);
    }
    s.trim_end().to_owned()
}

/// A journal page as text: the folded lines, newest last (at most 20).
pub fn journal(p: &JournalPage, lang: Lang) -> String {
    let mut s = String::new();
    if p.entries.is_empty() {
        return t(lang, "Keine Einträge.", "No entries.");
    }
    let skip = p.folded.len().saturating_sub(20);
    for e in &p.folded[skip..] {
        let unit = e.unit.as_deref().map(|u| format!("{u}: ")).unwrap_or_default();
        let msg = e.message.lines().next().unwrap_or_default();
        let msg = msg.strip_prefix(&unit).unwrap_or(msg);
        let count = if e.count > 1 {
            format!(" ({}×)", e.count)
        } else {
            String::new()
        };
        let _ = writeln!(s, "  {} {unit}{msg}{count}", time(e.time_ms));
    }
    let _ = write!(
        s,
        "{}",
        t(
            lang,
            &format!("{} Einträge, {} verschiedene.", p.entries.len(), p.folded.len()),
            &format!("{} entries, {} distinct.", p.entries.len(), p.folded.len())
        )
    );
    s
}

/// The service list as text.
pub fn services(v: &[ServiceInfo], lang: Lang) -> String {
    let mut s = String::new();
    let failed = v.iter().filter(|x| x.failed).count();
    let _ = writeln!(
        s,
        "{}",
        match (failed, lang) {
            (0, Lang::De) => format!("{} Dienste, keiner ausgefallen.", v.len()),
            (0, Lang::En) => format!("{} services, none failed.", v.len()),
            (n, Lang::De) => format!("{} Dienste, {n} ausgefallen:", v.len()),
            (n, Lang::En) => format!("{} services, {n} failed:", v.len()),
        }
    );
    for x in v.iter().take(25) {
        let mark = if x.failed { "✗" } else { " " };
        let _ = writeln!(s, " {mark} {} — {} ({})", x.name, x.active_state, x.sub_state);
    }
    if failed > 0 {
        let _ = write!(
            s,
            "{}",
            t(
                lang,
                "Frag „warum ist der Dienst X ausgefallen?“",
                "Ask \"why did X fail?\""
            )
        );
    }
    s.trim_end().to_owned()
}

/// The result of `service.restart`.
pub fn restarted(x: &ServiceInfo, lang: Lang) -> String {
    match (x.failed, lang) {
        (false, Lang::De) => format!("{} ist neu gestartet: {} ({}).", x.name, x.active_state, x.sub_state),
        (false, Lang::En) => format!("{} restarted: {} ({}).", x.name, x.active_state, x.sub_state),
        (true, Lang::De) => format!(
            "{} ist nach dem Neustart wieder ausgefallen – frag „warum ist {} ausgefallen?“",
            x.name, x.name
        ),
        (true, Lang::En) => format!(
            "{} failed again after the restart – ask \"why did {} fail?\"",
            x.name, x.name
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use cacheos_core::diagnose::fake::{fixtures_dir, Fixture};
    use cacheos_core::diagnose::Diagnostics;

    use super::*;

    /// (fixture, unit, German words, English words) — the reply names the cause and the fix in both languages.
    const CASES: &[(&str, &str, &[&str], &[&str])] = &[
        (
            "missing-exec",
            "cacheos-fault-exec",
            &[
                "Programm /usr/bin/cacheos-does-not-exist fehlt",
                "203/EXEC",
                "Installiere",
            ],
            &["/usr/bin/cacheos-does-not-exist does not exist", "Install"],
        ),
        (
            "bad-setting",
            "cacheos-fault-setting",
            &["ungültige Einstellung", "service:4", "daemon-reload"],
            &["invalid setting", "service:4", "daemon-reload"],
        ),
        (
            "missing-config",
            "cacheos-fault-config",
            &[
                "Datei /etc/cacheos-fault/app.conf fehlt",
                "„starte cacheos-fault-config.service neu“",
            ],
            &[
                "/etc/cacheos-fault/app.conf does not exist",
                "\"restart cacheos-fault-config.service\"",
            ],
        ),
        (
            "port-in-use",
            "cacheos-fault-port.socket",
            &["Port 8088 ist schon belegt"],
            &["port 8088 is already in use"],
        ),
        (
            "oom-kill",
            "cacheos-fault-oom",
            &["OOM-Killer", "32 MiB", "MemoryMax="],
            &["OOM killer", "32 MiB", "MemoryMax="],
        ),
        (
            "core-dump",
            "cacheos-fault-crash",
            &["abgestürzt (SIGSEGV)", "Core-Dump"],
            &["crashed (SIGSEGV)", "dumped core"],
        ),
        (
            "dependency",
            "cacheos-fault-dep",
            &[
                "weil cacheos-fault-dep-base.service ausgefallen ist",
                "Status 1/FAILURE",
            ],
            &["because cacheos-fault-dep-base.service", "status 1/FAILURE"],
        ),
        (
            "mount-failed",
            "mnt-cacheosfault.mount",
            &["Einhängen von /mnt/cacheosfault ist fehlgeschlagen", "wrong fs type"],
            &["Mounting /mnt/cacheosfault failed", "wrong fs type"],
        ),
        (
            "permission-denied",
            "cacheos-fault-perm",
            &["Zugriff verweigert auf /var/tmp/cacheos-fault-noexec.sh"],
            &["permission denied on /var/tmp/cacheos-fault-noexec.sh"],
        ),
        (
            "start-limit-hit",
            "cacheos-fault-loop",
            &["immer wieder ausgefallen (3 Neustarts)", "(3×)"],
            &["kept failing (3 restarts)", "(3×)"],
        ),
    ];

    fn diagnose(fixture: &str, unit: &str) -> Diagnosis {
        let fx = Fixture::load(&fixtures_dir().join(fixture)).unwrap();
        let (u, j) = fx.fakes();
        let d = Diagnostics::new(Arc::new(u), Arc::new(j));
        let f = d.unit(unit).unwrap();
        Diagnosis {
            scope: format!("unit {unit}"),
            findings: vec![f],
            checked: vec![],
        }
    }

    #[test]
    fn every_fault_is_explained_in_german_and_english() {
        for (fixture, unit, de, en) in CASES {
            let d = diagnose(fixture, unit);
            let (de_text, en_text) = (diagnosis(&d, Lang::De), diagnosis(&d, Lang::En));
            for w in *de {
                assert!(de_text.contains(w), "{fixture} (de) lacks {w:?}:\n{de_text}");
            }
            for w in *en {
                assert!(en_text.contains(w), "{fixture} (en) lacks {w:?}:\n{en_text}");
            }
            assert!(
                de_text.contains("Belege aus dem Journal:") && de_text.contains("Lösung:"),
                "{de_text}"
            );
            assert!(
                en_text.contains("Evidence from the journal:") && en_text.contains("Fix:"),
                "{en_text}"
            );
            // The reply quotes at most a few lines per finding.
            let quoted = en_text.lines().filter(|l| l.starts_with("  13:")).count();
            assert!(quoted <= 2 * QUOTED, "{fixture}: {quoted} lines quoted");
        }
    }

    #[test]
    fn a_sandbox_out_of_memory_is_explained_in_both_languages() {
        let fx = Fixture::load(&fixtures_dir().join("sandbox-oom")).unwrap();
        let (u, j) = fx.fakes();
        let d = Diagnostics::new(Arc::new(u), Arc::new(j));
        let info: cacheos_core::sandbox::SandboxInfo = serde_json::from_value(serde_json::json!({
            "name": "memhog", "state": "stopped", "template": "debian", "ephemeral": false, "network": "none",
            "limits": {"memory_max": 268435456u64}, "binds": [], "created_by": "root", "created_ms": 0,
            "uptime_seconds": null, "main_pid": null, "unit": null, "ip": null, "cpu_time_ns": null,
            "memory_current": null, "memory_peak": null, "tasks_current": null, "last_error": null
        }))
        .unwrap();
        let dg = Diagnosis {
            scope: "sandbox memhog".into(),
            findings: vec![d.sandbox(&info).unwrap()],
            checked: vec![],
        };
        let de = diagnosis(&dg, Lang::De);
        assert!(
            de.contains("Sandbox memhog hat ihre Speichergrenze (256 MiB) erreicht"),
            "{de}"
        );
        assert!(de.contains("„starte die Sandbox memhog neu“"), "{de}");
        let en = diagnosis(&dg, Lang::En);
        assert!(en.contains("Sandbox memhog hit its memory limit (256 MiB)"), "{en}");
    }

    #[test]
    fn no_findings_and_healthy_units_say_so() {
        let d = Diagnosis {
            scope: "everything".into(),
            findings: vec![],
            checked: vec!["3 units (0 failed)".into()],
        };
        assert_eq!(
            diagnosis(&d, Lang::De),
            "Ich habe keine Probleme gefunden. (3 units (0 failed))"
        );
        assert!(diagnosis(&d, Lang::En).starts_with("I found no problems."));
    }
}
