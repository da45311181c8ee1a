//! Short, concrete replies in the language of the question: what was done and the result.

use std::fmt::Write;

use cacheos_core::drive::{DriveInfo, NewFormat};
use cacheos_core::sandbox::SandboxInfo;
use cacheos_core::{CoreError, Operation, Output};

use crate::engine::Lang;

fn gib(b: u64) -> String {
    let g = b as f64 / (1u64 << 30) as f64;
    if g >= 10.0 {
        format!("{g:.0} GiB")
    } else if g >= 1.0 {
        format!("{g:.1} GiB")
    } else {
        format!("{:.0} MiB", b as f64 / (1u64 << 20) as f64)
    }
}

fn dur(secs: f64) -> String {
    let s = secs as u64;
    let (d, h, m) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else {
        format!("{m}m {}s", s % 60)
    }
}

/// The result of an operation as a few lines of text.
pub fn output(o: &Output, lang: Lang) -> String {
    let de = lang == Lang::De;
    let mut s = String::new();
    match o {
        Output::SystemStatus(st) => {
            let _ = writeln!(
                s,
                "{} — {} (Kernel {})",
                st.hostname, st.os_release.pretty_name, st.kernel
            );
            let cpu = st
                .cpu_percent
                .map(|c| format!("{c:.0} %"))
                .unwrap_or_else(|| "–".into());
            if de {
                let _ = writeln!(
                    s,
                    "Laufzeit {}, Last {:.2}, CPU {cpu} von {} Kernen",
                    dur(st.uptime_seconds),
                    st.load.one,
                    st.cpu_count
                );
                let _ = writeln!(
                    s,
                    "Speicher: {} von {} belegt",
                    gib(st.memory.used_bytes),
                    gib(st.memory.total_bytes)
                );
            } else {
                let _ = writeln!(
                    s,
                    "Uptime {}, load {:.2}, CPU {cpu} of {} cores",
                    dur(st.uptime_seconds),
                    st.load.one,
                    st.cpu_count
                );
                let _ = writeln!(
                    s,
                    "Memory: {} of {} used",
                    gib(st.memory.used_bytes),
                    gib(st.memory.total_bytes)
                );
            }
            for d in &st.disks {
                let _ = writeln!(
                    s,
                    "  {} ({}): {} / {}",
                    d.mount_point,
                    d.fs_type,
                    gib(d.used_bytes),
                    gib(d.total_bytes)
                );
            }
            match (st.failed_units, de) {
                (Some(0), true) => s.push_str("Keine fehlgeschlagenen Dienste."),
                (Some(0), false) => s.push_str("No failed units."),
                (Some(n), true) => {
                    s += &format!("{n} fehlgeschlagene Dienste — frag „warum?“ sobald die Diagnose da ist.")
                }
                (Some(n), false) => s += &format!("{n} failed units."),
                (None, _) => {}
            }
        }
        Output::SupervisorStatus(st) => {
            let _ = writeln!(s, "cacheosd {} — {}", st.version, st.state.as_str());
            for t in &st.tasks {
                let err = t.last_error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default();
                let restarts = if de { "Neustarts" } else { "restarts" };
                let _ = writeln!(s, "  {}: {:?}, {} {restarts}{err}", t.name, t.state, t.restarts);
            }
        }
        Output::Audit(recs) => {
            if recs.is_empty() {
                s.push_str(if de { "Keine Einträge." } else { "No entries." });
            }
            for r in recs.iter().take(15) {
                let r2 = &r.record;
                let what = r2.utterance.as_deref().map(|u| format!(" «{u}»")).unwrap_or_default();
                let _ = writeln!(
                    s,
                    "  #{} {} {} {} {}{what}",
                    r.id,
                    r2.frontend,
                    r2.principal,
                    r2.operation,
                    r2.outcome.as_str()
                );
            }
            if recs.len() > 15 {
                let _ = write!(s, "  … {} {}", recs.len() - 15, if de { "weitere" } else { "more" });
            }
        }
        Output::WebToken(t) => s += &t.token,
        Output::Drive(d) => drive(&mut s, d, de),
        Output::Drives(ds) => {
            if ds.is_empty() {
                s.push_str(if de {
                    "Keine Laufwerke angeschlossen. Sag z. B. „häng debian.iso ein“."
                } else {
                    "No drives attached. Say e.g. \"attach debian.iso\"."
                });
            }
            for d in ds {
                drive(&mut s, d, de);
                s.push('\n');
            }
        }
        Output::Images(imgs) => {
            if imgs.is_empty() {
                s.push_str(if de {
                    "Keine Abbilder im Image-Verzeichnis."
                } else {
                    "No images in the images directory."
                });
            }
            for (i, im) in imgs.iter().enumerate() {
                let fmt = im.format.map(|f| f.to_string()).unwrap_or_else(|| "?".into());
                let att = match (&im.attached_as, de) {
                    (Some(n), true) => format!(" — eingehängt als {n}"),
                    (Some(n), false) => format!(" — attached as {n}"),
                    (None, _) => String::new(),
                };
                let _ = writeln!(s, "  {}. {} ({fmt}, {}){att}", i + 1, im.name, gib(im.size));
            }
        }
        Output::Files(l) => {
            let _ = writeln!(s, "{}/{}:", l.mount_point.display(), l.path);
            for e in l.entries.iter().take(30) {
                let suffix = match e.kind {
                    cacheos_core::drive::EntryKind::Dir => "/",
                    cacheos_core::drive::EntryKind::Symlink => "@",
                    _ => "",
                };
                let _ = writeln!(s, "  {}{suffix}", e.name);
            }
            if l.entries.len() > 30 {
                let _ = write!(
                    s,
                    "  … {} {}",
                    l.entries.len() - 30,
                    if de { "weitere" } else { "more" }
                );
            }
        }
        Output::Created(c) => {
            let _ = writeln!(
                s,
                "{} {} ({}).",
                if de { "Angelegt:" } else { "Created" },
                c.image.path.display(),
                gib(c.image.size)
            );
            if let Some(d) = &c.drive {
                drive(&mut s, d, de);
            }
        }
        Output::Uploaded(u) => {
            let _ = writeln!(
                s,
                "{} {} ({}, SHA-256 {}).",
                if de { "Hochgeladen:" } else { "Uploaded" },
                u.path.display(),
                gib(u.size),
                u.sha256
            );
        }
        Output::Reconciled(r) => {
            let _ = write!(
                s,
                "{}: {} / {}: {} / {}: {} / {}: {}",
                if de { "behalten" } else { "kept" },
                r.kept.len(),
                if de { "neu eingehängt" } else { "re-attached" },
                r.reattached.len(),
                if de { "entfernt" } else { "removed" },
                r.removed.len(),
                if de { "Reste aufgeräumt" } else { "orphans released" },
                r.orphans.len()
            );
        }
        Output::Sandbox(b) => sandbox(&mut s, b, de),
        Output::Sandboxes(bs) => {
            if bs.is_empty() {
                s.push_str(if de {
                    "Keine Sandboxen. Sag z. B. „cacheosctl sandbox create test --template host“."
                } else {
                    "No sandboxes. Try e.g. \"cacheosctl sandbox create test --template host\"."
                });
            }
            for b in bs {
                sandbox(&mut s, b, de);
            }
        }
        Output::Templates(ts) => {
            for t in ts {
                let _ = writeln!(s, "  {}: {} ({})", t.name, t.description, t.path.display());
            }
        }
        Output::Copied(c) => {
            let _ = write!(
                s,
                "{} {} ({} bytes)",
                if de { "Kopiert:" } else { "Copied:" },
                c.path,
                c.bytes
            );
        }
        Output::ShellOpened(o) => {
            let _ = write!(
                s,
                "{} {} ({})",
                if de { "Shell geöffnet in" } else { "Shell opened in" },
                o.name,
                o.term
            );
        }
        Output::Exec(x) => {
            s += &x.stdout;
            s += &x.stderr;
            if !s.is_empty() && !s.ends_with('\n') {
                s.push('\n');
            }
            let _ = write!(
                s,
                "{} {}{}",
                if de { "Exit-Code" } else { "exit code" },
                x.exit_code,
                match (x.timed_out, de) {
                    (true, true) => " (Zeitlimit erreicht)",
                    (true, false) => " (timed out)",
                    _ => "",
                }
            );
        }
        Output::SandboxLogs(l) => {
            for line in l.lines.iter().rev().take(30).rev() {
                let _ = writeln!(s, "{line}");
            }
        }
        Output::SandboxReconciled(r) => {
            let _ = write!(
                s,
                "{}: {} / {}: {} / {}: {} / {}: {}",
                if de { "laufen weiter" } else { "kept running" },
                r.kept_running.len(),
                if de { "als gestoppt markiert" } else { "marked stopped" },
                r.marked_stopped.len(),
                if de { "unterbrochen" } else { "interrupted" },
                r.interrupted.len(),
                if de {
                    "fremde Container gestoppt"
                } else {
                    "stray containers stopped"
                },
                r.stray_containers.len()
            );
        }
        Output::SystemHistory(samples) => {
            let n = samples.len();
            let _ = write!(s, "{n} {}", if de { "Messwerte" } else { "samples" });
            let cpus: Vec<f64> = samples.iter().filter_map(|x| x.cpu_percent).collect();
            if let (Some(first), Some(last)) = (samples.first(), samples.last()) {
                let mins = last.time_ms.saturating_sub(first.time_ms) / 60_000;
                let peak = cpus.iter().copied().fold(f64::NAN, f64::max);
                let avg = cpus.iter().sum::<f64>() / cpus.len().max(1) as f64;
                let peak_load = samples.iter().map(|x| x.load_one).fold(0.0, f64::max);
                if de {
                    let _ = write!(s, " über {mins} min");
                    if !cpus.is_empty() {
                        let _ = write!(s, "; CPU im Mittel {avg:.0} %, höchstens {peak:.0} %");
                    }
                    let _ = write!(
                        s,
                        "; höchste Last {peak_load:.2}; zuletzt Speicher {} von {} belegt.",
                        gib(last.memory_used_bytes),
                        gib(last.memory_total_bytes)
                    );
                } else {
                    let _ = write!(s, " over {mins} min");
                    if !cpus.is_empty() {
                        let _ = write!(s, "; CPU average {avg:.0} %, peak {peak:.0} %");
                    }
                    let _ = write!(
                        s,
                        "; peak load {peak_load:.2}; latest memory {} of {} used.",
                        gib(last.memory_used_bytes),
                        gib(last.memory_total_bytes)
                    );
                }
            }
        }
        Output::Done(d) => s += &d.message,
        // issue 17 (kb)
        o @ (Output::KbJob(_) | Output::KbSources(_) | Output::KbSearch(_) | Output::KbAnswer(_)) => {
            s += &crate::render_kb::output(o, lang).unwrap_or_default()
        }
        // issue 18 (licences)
        o @ (Output::LicenseScan(_)
        | Output::Sbom(_)
        | Output::Notice(_)
        | Output::Proof(_)
        | Output::ProofVerified(_)
        | Output::Disclosure(_)) => s += &crate::render_license::output(o, lang).unwrap_or_default(),
        // issue 16 (diagnose)
        Output::Diagnosis(d) => s += &crate::render_diagnose::diagnosis(d, lang),
        Output::Journal(p) => s += &crate::render_diagnose::journal(p, lang),
        Output::Services(v) => s += &crate::render_diagnose::services(v, lang),
        Output::Service(x) => s += &crate::render_diagnose::restarted(x, lang),
        // issue 15 (software)
        o @ (Output::SoftwareSearch(_)
        | Output::SoftwarePlan(_)
        | Output::SoftwareJob(_)
        | Output::SoftwareLock(_)
        | Output::SandboxNetwork(_)) => s += &crate::render_software::output(o, lang).unwrap_or_default(),
        // issue 14 (models)
        o @ (Output::ModelList(_) | Output::ModelStatus(_) | Output::ModelTest(_) | Output::Privacy(_)) => {
            s += &crate::render_model::output(o, lang).unwrap_or_default()
        }
        // issue 19 (trust)
        Output::WebCert(c) => s += &crate::render_trust::cert(c, lang),
    }
    s.trim_end().to_string()
}

/// An error as one line that says what went wrong.
pub fn error(e: &CoreError, lang: Lang) -> String {
    match (e, lang) {
        (CoreError::PermissionDenied { .. }, Lang::De) => format!("Das darfst du nicht: {}", e.full_message()),
        (CoreError::PermissionDenied { .. }, Lang::En) => format!("Not allowed: {}", e.full_message()),
        (_, Lang::De) => format!("Das hat nicht geklappt: {}", e.full_message()),
        (_, Lang::En) => format!("That failed: {}", e.full_message()),
    }
}

fn drive(s: &mut String, d: &DriveInfo, de: bool) {
    let mode = match (d.read_write, d.snapshot.is_some(), de) {
        (_, true, true) => "mit Schnappschuss (beschreibbar)",
        (_, true, false) => "with snapshot (writable)",
        (true, _, true) => "beschreibbar",
        (true, _, false) => "read-write",
        (false, _, true) => "nur lesbar",
        (false, _, false) => "read-only",
    };
    let _ = writeln!(
        s,
        "{}: {} ({}, {}, {mode})",
        d.name,
        d.image.display(),
        d.format,
        gib(d.virtual_size)
    );
    for p in &d.partitions {
        let what = p.fs_type.as_deref().unwrap_or("?");
        match &p.mount_point {
            Some(mp) => {
                let free = p
                    .free
                    .map(|f| format!(", {} {}", gib(f), if de { "frei" } else { "free" }));
                let _ = writeln!(s, "  {what} → {}{}", mp.display(), free.unwrap_or_default());
            }
            None => {
                let note = p.note.as_deref().unwrap_or("");
                let _ = writeln!(s, "  {} ({what}) {note}", p.device.display());
            }
        }
    }
    if !d.used_by.is_empty() {
        let _ = writeln!(
            s,
            "  {}: {}",
            if de { "benutzt von" } else { "used by" },
            d.used_by.join(", ")
        );
    }
}

fn sandbox(s: &mut String, b: &SandboxInfo, de: bool) {
    let state = match (b.state.as_str(), de) {
        ("running", true) => "läuft",
        ("stopped", true) => "gestoppt",
        ("created", true) => "angelegt",
        ("failed", true) => "fehlgeschlagen",
        (other, _) => other,
    };
    let pid = b.main_pid.map(|p| format!(", PID {p}")).unwrap_or_default();
    let _ = writeln!(s, "{}: {state} ({}{pid})", b.name, b.template);
    for bind in &b.binds {
        let mode = if bind.read_write { "rw" } else { "ro" };
        let _ = writeln!(s, "  {} → {} ({mode})", bind.drive, bind.target.display());
    }
    if let Some(e) = &b.last_error {
        let _ = writeln!(s, "  {}: {e}", if de { "Fehler" } else { "error" });
    }
}

/// What a sandbox operation will do, in one or two sentences (the plan of a removal says what is lost).
pub fn explain_sandbox(op: &Operation, lang: Lang) -> String {
    let de = lang == Lang::De;
    let pick = |a: String, b: String| if de { a } else { b };
    match op {
        Operation::SandboxList => pick("Ich zeige die Sandboxen.".into(), "Showing the sandboxes.".into()),
        Operation::SandboxInfo(a) => pick(
            format!("Ich zeige Sandbox {}.", a.name),
            format!("Showing sandbox {}.", a.name),
        ),
        Operation::SandboxTemplates => pick(
            "Ich zeige die Vorlagen für Sandboxen.".into(),
            "Showing the sandbox templates.".into(),
        ),
        Operation::SandboxCreate(a) => pick(
            format!(
                "Ich lege Sandbox {} aus der Vorlage {} an (sandbox.create).",
                a.name, a.template
            ),
            format!(
                "Creating sandbox {} from template {} (sandbox.create).",
                a.name, a.template
            ),
        ),
        Operation::SandboxStart(a) => pick(
            format!("Ich starte Sandbox {} (sandbox.start).", a.name),
            format!("Starting sandbox {} (sandbox.start).", a.name),
        ),
        Operation::SandboxStop(a) => pick(
            format!("Ich stoppe Sandbox {} (sandbox.stop).", a.name),
            format!("Stopping sandbox {} (sandbox.stop).", a.name),
        ),
        Operation::SandboxRestart(a) => pick(
            format!("Ich starte Sandbox {} neu (sandbox.restart).", a.name),
            format!("Restarting sandbox {} (sandbox.restart).", a.name),
        ),
        Operation::SandboxRemove(a) => pick(
            format!(
                "Plan: Sandbox {} stoppen und löschen (sandbox.remove); ihre beschreibbaren Daten gehen verloren.",
                a.name
            ),
            format!(
                "Plan: stop and remove sandbox {} (sandbox.remove); its writable data is lost.",
                a.name
            ),
        ),
        Operation::SandboxExec(a) => pick(
            format!(
                "Ich führe „{}“ in Sandbox {} aus (sandbox.exec).",
                a.argv.join(" "),
                a.name
            ),
            format!("Running \"{}\" in sandbox {} (sandbox.exec).", a.argv.join(" "), a.name),
        ),
        Operation::SandboxLogs(a) => pick(
            format!("Ich zeige die Ausgaben von Sandbox {}.", a.name),
            format!("Showing the console output of sandbox {}.", a.name),
        ),
        Operation::SandboxReconcile => pick(
            "Ich gleiche die Sandboxen mit den laufenden Containern ab.".into(),
            "Reconciling sandbox records with the running containers.".into(),
        ),
        other => other.name().to_string(),
    }
}

/// What a drive operation will do, in one or two sentences (plans of destructive ones say exactly what is lost).
pub fn explain_drive(op: &Operation, lang: Lang) -> String {
    let de = lang == Lang::De;
    let pick = |a: String, b: String| if de { a } else { b };
    match op {
        Operation::DriveList => pick("Ich zeige die Laufwerke.".into(), "Showing the drives.".into()),
        Operation::DriveInfo(a) => pick(
            format!("Ich zeige Laufwerk {}.", a.name),
            format!("Showing drive {}.", a.name),
        ),
        Operation::DriveImages => pick(
            "Ich zeige die Abbilder im Image-Verzeichnis.".into(),
            "Showing the images in the images directory.".into(),
        ),
        Operation::DriveFiles(a) => pick(
            format!("Ich zeige die Dateien auf {} {}.", a.name, a.path),
            format!("Listing the files on {} {}.", a.name, a.path),
        ),
        Operation::DriveAttach(a) => {
            let rw = if a.read_write {
                pick("beschreibbar".into(), "read-write".into())
            } else {
                pick("nur lesbar".into(), "read-only".into())
            };
            let name = a.name.as_deref().map(|n| format!(" als {n}")).unwrap_or_default();
            let name_en = a.name.as_deref().map(|n| format!(" as {n}")).unwrap_or_default();
            pick(
                format!(
                    "Ich hänge {}{name} {rw} ein und mounte seine Dateisysteme (drive.attach).",
                    a.path
                ),
                format!(
                    "Attaching {}{name_en} {rw} and mounting its file systems (drive.attach).",
                    a.path
                ),
            )
        }
        Operation::DriveDetach(a) if a.force => pick(
            format!(
                "Plan: Laufwerk {} mit Gewalt aushängen (drive.detach, force): offene Dateien werden getrennt, ein \
                 Schnappschuss wird verworfen.",
                a.name
            ),
            format!(
                "Plan: force-detach drive {} (drive.detach, force): open files are cut off and an uncommitted \
                 snapshot is discarded.",
                a.name
            ),
        ),
        Operation::DriveDetach(a) => pick(
            format!("Ich hänge Laufwerk {} aus (drive.detach).", a.name),
            format!("Detaching drive {} (drive.detach).", a.name),
        ),
        Operation::DriveCreate(a) => {
            let fmt = match a.format {
                NewFormat::Raw => "raw",
                NewFormat::Qcow2 => "qcow2",
            };
            let fs = a.fs.map(|f| format!(" + {}", f.as_str())).unwrap_or_default();
            pick(
                format!("Ich lege {} an ({fmt}{fs}, {}) (drive.create).", a.path, gib(a.size)),
                format!("Creating {} ({fmt}{fs}, {}) (drive.create).", a.path, gib(a.size)),
            )
        }
        Operation::DriveUpload(a) => pick(
            format!("Ich speichere die hochgeladene Datei als {} (drive.upload).", a.name),
            format!("Storing the uploaded file as {} (drive.upload).", a.name),
        ),
        Operation::DriveSnapshot(a) => pick(
            format!(
                "Ich lege einen beschreibbaren Schnappschuss über {} an; das Abbild bleibt unverändert.",
                a.name
            ),
            format!(
                "Putting a writable snapshot over {}; the image stays unchanged.",
                a.name
            ),
        ),
        Operation::DriveDiscard(a) => pick(
            format!(
                "Plan: den Schnappschuss von {} verwerfen (drive.discard); alle Änderungen darin gehen verloren.",
                a.name
            ),
            format!(
                "Plan: discard the snapshot of {} (drive.discard); every change in it is lost.",
                a.name
            ),
        ),
        Operation::DriveCommit(a) => pick(
            format!(
                "Plan: den Schnappschuss von {} in das Abbild schreiben (drive.commit); das Abbild wird überschrieben.",
                a.name
            ),
            format!(
                "Plan: write the snapshot of {} into its image (drive.commit); the image is overwritten.",
                a.name
            ),
        ),
        Operation::DrivePersist(a) if a.persistent => pick(
            format!("Ich hänge {} künftig beim Start wieder ein.", a.name),
            format!("Drive {} will be attached again at boot.", a.name),
        ),
        Operation::DrivePersist(a) => pick(
            format!("{} wird beim Start nicht mehr eingehängt.", a.name),
            format!("Drive {} will no longer be attached at boot.", a.name),
        ),
        Operation::DriveReconcile => pick(
            "Ich gleiche die Laufwerke mit dem Kernel ab.".into(),
            "Reconciling drive records with the kernel.".into(),
        ),
        other => other.name().to_string(),
    }
}

/// Entries named in a short listing before "… and N more".
pub const SHORT_LIST: usize = 8;

/// Where a just-attached file system is mounted and what lies at its top level, in one line: "Eingehängt unter
/// /run/cacheos/drives/x/DATA; dort liegen: a, b/ … und 3 weitere."
pub fn top_level(l: &cacheos_core::drive::FileListing, lang: Lang) -> String {
    let de = lang == Lang::De;
    let mp = l.mount_point.display();
    if l.entries.is_empty() {
        return if de {
            format!("Eingehängt unter {mp}; das Dateisystem ist leer.")
        } else {
            format!("Mounted at {mp}; the file system is empty.")
        };
    }
    let names: Vec<String> = l
        .entries
        .iter()
        .take(SHORT_LIST)
        .map(|e| match e.kind {
            cacheos_core::drive::EntryKind::Dir => format!("{}/", e.name),
            _ => e.name.clone(),
        })
        .collect();
    let more = l.entries.len().saturating_sub(SHORT_LIST);
    let tail = match (more, de) {
        (0, _) => String::new(),
        (n, true) => format!(" … und {n} weitere"),
        (n, false) => format!(" … and {n} more"),
    };
    if de {
        format!("Eingehängt unter {mp}; dort liegen: {}{tail}.", names.join(", "))
    } else {
        format!("Mounted at {mp}; top level: {}{tail}.", names.join(", "))
    }
}

/// The result of `op` for the chat: like [`output`], but messages the core words in English (detach, remove, …)
/// are said in the question's language, and a line says what one can do next.
pub fn result(op: &Operation, o: &Output, lang: Lang) -> String {
    let de = lang == Lang::De;
    let pick = |a: String, b: String| if de { a } else { b };
    let mut s = match (op, o) {
        (Operation::DriveDetach(a), Output::Done(_)) => pick(
            format!(
                "Laufwerk {} ist ausgehängt; Mounts und Loop-Geräte sind freigegeben.",
                a.name
            ),
            format!(
                "Drive {} is detached; its mounts and loop devices are released.",
                a.name
            ),
        ),
        (Operation::SupervisorKillTask(a), Output::Done(_)) => pick(
            format!("Aufgabe {} abgebrochen; der Supervisor startet sie neu.", a.task),
            format!("Task {} aborted; the supervisor restarts it.", a.task),
        ),
        (Operation::SandboxRemove(a), Output::Done(_)) => pick(
            format!("Sandbox {} ist gestoppt und gelöscht.", a.name),
            format!("Sandbox {} is stopped and removed.", a.name),
        ),
        _ => output(o, lang),
    };
    if let Some(next) = next_step(op, o, lang) {
        if !s.is_empty() {
            s.push('\n');
        }
        s += &next;
    }
    s
}

/// What to do after `op` failed with `e`, when there is an obvious remedy.
pub fn remedy(op: &Operation, e: &CoreError, lang: Lang) -> Option<String> {
    let de = lang == Lang::De;
    let pick = |a: &str, b: &str| Some(if de { a.to_string() } else { b.to_string() });
    match (op, e.code()) {
        (Operation::DriveAttach(_), "not-found") => pick(
            "Welche Abbilder es gibt, zeigt „welche Abbilder gibt es?“.",
            "\"list images\" shows which images there are.",
        ),
        (Operation::DriveDetach(_) | Operation::DriveFiles(_) | Operation::DriveInfo(_), "not-found") => pick(
            "Welche Laufwerke eingehängt sind, zeigt „zeig die Laufwerke“.",
            "\"list drives\" shows the attached drives.",
        ),
        (
            Operation::SandboxStart(_)
            | Operation::SandboxStop(_)
            | Operation::SandboxExec(_)
            | Operation::SandboxRemove(_)
            | Operation::SandboxInfo(_),
            "not-found",
        ) => pick(
            "Welche Sandboxen es gibt, zeigt „zeige die Sandboxen“.",
            "\"list sandboxes\" shows the sandboxes.",
        ),
        (_, "permission-denied") => pick(
            "Dafür braucht es root oder die Gruppe cacheos.",
            "This needs root or group cacheos.",
        ),
        _ => None,
    }
}

/// What one can say next after `op` succeeded, when there is an obvious next step.
pub fn next_step(op: &Operation, o: &Output, lang: Lang) -> Option<String> {
    let de = lang == Lang::De;
    let pick = |a: String, b: String| Some(if de { a } else { b });
    match (op, o) {
        (Operation::DriveAttach(_), Output::Drive(d)) => pick(
            format!(
                "Weiter: „zeig die Dateien auf {0}“, „erstelle eine Sandbox mit Laufwerk {0}“ oder „häng {0} aus“.",
                d.name
            ),
            format!(
                "Next: \"show the files on {0}\", \"create a sandbox with drive {0}\" or \"detach {0}\".",
                d.name
            ),
        ),
        (Operation::SandboxCreate(_), Output::Sandbox(b)) => pick(
            format!("Weiter: „starte {}“.", b.name),
            format!("Next: \"start {}\".", b.name),
        ),
        (Operation::SandboxStart(_), Output::Sandbox(b)) => pick(
            format!(
                "Weiter: „führe `uname -a` in {0} aus“, „stoppe {0}“ oder „lösche {0}“.",
                b.name
            ),
            format!(
                "Next: \"run `uname -a` in {0}\", \"stop {0}\" or \"remove {0}\".",
                b.name
            ),
        ),
        (Operation::SandboxStop(_), Output::Sandbox(b)) => pick(
            format!("Weiter: „starte {0}“ oder „lösche {0}“.", b.name),
            format!("Next: \"start {0}\" or \"remove {0}\".", b.name),
        ),
        (Operation::SupervisorKillTask(_), Output::Done(_)) => pick(
            "Weiter: „wie geht es den Diensten?“ zeigt, ob sie wieder läuft.".into(),
            "Next: \"show the services\" tells whether it runs again.".into(),
        ),
        (Operation::DriveImages, Output::Images(imgs)) if !imgs.is_empty() => pick(
            format!("Weiter: „häng {} ein“.", imgs[0].name),
            format!("Next: \"attach {}\".", imgs[0].name),
        ),
        // issue 18 (licences)
        (op, o) => crate::render_license::next_step(op, o, lang),
    }
}
