//! Short, concrete replies in the language of the question: what was done and the result.

use std::fmt::Write;

use cacheos_core::{CoreError, Output};

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
        Output::SystemHistory(samples) => {
            let n = samples.len();
            let _ = write!(s, "{n} {}", if de { "Messwerte" } else { "samples" });
        }
        Output::Done(d) => s += &d.message,
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
