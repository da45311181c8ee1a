//! Replies are concrete: what was done, the result and what to say next, in the question's language — the short
//! top-level listing after an attach, localised results of operations the core words in English, the history
//! summary, and remedies after failures.

use cacheos_chat::render::{next_step, remedy, result, top_level, SHORT_LIST};
use cacheos_chat::Lang;
use cacheos_core::drive::{DetachArgs, DirEntry, EntryKind, FileListing};
use cacheos_core::executor::Done;
use cacheos_core::operation::KillTaskArgs;
use cacheos_core::{CoreError, MetricSample, Operation, Output};

fn listing(n: usize) -> FileListing {
    FileListing {
        drive: "data".into(),
        mount_point: "/run/cacheos/drives/data/DATA".into(),
        path: String::new(),
        entries: (0..n)
            .map(|i| DirEntry {
                name: format!("e{i:02}"),
                kind: if i == 0 { EntryKind::Dir } else { EntryKind::File },
                size: 1,
                modified_ms: 0,
            })
            .collect(),
    }
}

#[test]
fn the_top_level_is_a_short_list_with_the_mount_path() {
    assert_eq!(
        top_level(&listing(2), Lang::De),
        "Eingehängt unter /run/cacheos/drives/data/DATA; dort liegen: e00/, e01."
    );
    let long = top_level(&listing(SHORT_LIST + 5), Lang::En);
    assert!(
        long.starts_with("Mounted at /run/cacheos/drives/data/DATA; top level: e00/, e01,"),
        "{long}"
    );
    assert!(long.ends_with(", e07 … and 5 more."), "{long}");
    assert_eq!(
        top_level(&listing(0), Lang::De),
        "Eingehängt unter /run/cacheos/drives/data/DATA; das Dateisystem ist leer."
    );
}

#[test]
fn results_the_core_words_in_english_are_said_in_the_questions_language() {
    let done = Output::Done(Done {
        message: "drive data detached".into(),
    });
    let detach = Operation::DriveDetach(DetachArgs {
        name: "data".into(),
        force: false,
    });
    assert_eq!(
        result(&detach, &done, Lang::De),
        "Laufwerk data ist ausgehängt; Mounts und Loop-Geräte sind freigegeben."
    );
    let kill = Operation::SupervisorKillTask(KillTaskArgs { task: "web".into() });
    let r = result(&kill, &done, Lang::De);
    assert!(
        r.starts_with("Aufgabe web abgebrochen") && r.contains("„wie geht es den Diensten?“"),
        "{r}"
    );
    assert!(next_step(&Operation::SystemStatus, &done, Lang::En).is_none());
}

#[test]
fn the_history_is_summarised_not_only_counted() {
    let sample = |t: u64, cpu: f64, load: f64| MetricSample {
        time_ms: t,
        cpu_percent: Some(cpu),
        memory_used_bytes: 1 << 30,
        memory_total_bytes: 4 << 30,
        load_one: load,
        load_five: 0.0,
        load_fifteen: 0.0,
        disk_used_bytes: 0,
        disk_total_bytes: 0,
    };
    let out = Output::SystemHistory(vec![sample(0, 10.0, 0.5), sample(600_000, 30.0, 1.25)]);
    let r = result(&Operation::SystemHistory(Default::default()), &out, Lang::De);
    assert_eq!(
        r,
        "2 Messwerte über 10 min; CPU im Mittel 20 %, höchstens 30 %; höchste Last 1.25; zuletzt Speicher 1.0 GiB \
         von 4.0 GiB belegt."
    );
}

#[test]
fn failures_say_what_to_do() {
    let e = CoreError::NotFound {
        kind: "drive",
        name: "x".into(),
    };
    let detach = Operation::DriveDetach(DetachArgs {
        name: "x".into(),
        force: false,
    });
    assert_eq!(
        remedy(&detach, &e, Lang::De).as_deref(),
        Some("Welche Laufwerke eingehängt sind, zeigt „zeig die Laufwerke“.")
    );
}
