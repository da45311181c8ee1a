//! Chat replies for the knowledge base (`kb.*`): what an operation will do, and answers quoted with numbered
//! citations (file, heading or page, lines) in the question's language.

use std::fmt::Write;

use cacheos_core::kb::{Citation, KbAnswer, KbSource, KbSourceState, Passage};
use cacheos_core::{Operation, Output};

use crate::engine::{t, Lang};

/// One line saying what a `kb.*` operation will do.
pub fn explain(op: &Operation, lang: Lang) -> String {
    match op {
        Operation::KbIndex(a) => {
            let what = match (&a.path, a.source.as_str()) {
                (_, "docs") => t(lang, "die CacheOS-Dokumentation", "the CacheOS documentation"),
                (Some(p), s) => t(lang, &format!("{p} auf Laufwerk {s}"), &format!("{p} on drive {s}")),
                (None, s) => t(lang, &format!("Laufwerk {s}"), &format!("drive {s}")),
            };
            t(
                lang,
                &format!("Ich indiziere {what} für die Suche (kb.index)."),
                &format!("Indexing {what} for search (kb.index)."),
            )
        }
        Operation::KbSources => t(
            lang,
            "Ich zeige die indizierten Quellen.",
            "Showing the indexed sources.",
        ),
        Operation::KbSearch(a) => t(
            lang,
            &format!("Ich suche nach „{}“.", a.query),
            &format!("Searching for \"{}\".", a.query),
        ),
        Operation::KbAsk(_) => t(lang, "Ich suche in den Dokumenten.", "Looking it up in the documents."),
        Operation::KbRemove(a) => t(
            lang,
            &format!(
                "Ich entferne die Quelle {} aus dem Index; die Dateien bleiben.",
                a.source
            ),
            &format!("Removing source {} from the index; the files stay.", a.source),
        ),
        Operation::KbCancel(a) => t(
            lang,
            &format!("Ich breche das Indizieren von {} ab.", a.source),
            &format!("Cancelling the indexing of {}.", a.source),
        ),
        _ => String::new(),
    }
}

/// Where a passage is, as one citation line: `drive data: docs/rechnung.md, „März“, Zeilen 3–9`.
pub fn citation(c: &Citation, lang: Lang) -> String {
    let de = lang == Lang::De;
    let mut s = if c.source == "docs" {
        c.path.clone()
    } else {
        format!("{}: {}", c.source, c.path)
    };
    if let Some(p) = c.page {
        let _ = write!(s, ", {} {p}", if de { "Seite" } else { "page" });
    }
    if let Some(h) = &c.heading {
        if de {
            let _ = write!(s, ", „{h}“");
        } else {
            let _ = write!(s, ", \"{h}\"");
        }
    }
    let lines = if c.line_start == c.line_end {
        format!("{} {}", if de { "Zeile" } else { "line" }, c.line_start)
    } else {
        format!(
            "{} {}–{}",
            if de { "Zeilen" } else { "lines" },
            c.line_start,
            c.line_end
        )
    };
    let _ = write!(s, ", {lines}");
    s
}

/// A passage shortened for the chat: at most `max` characters, cut at a word.
fn quote(p: &Passage, max: usize) -> String {
    let flat: String = p.text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        return flat;
    }
    let cut: String = flat.chars().take(max).collect();
    match cut.rfind(' ') {
        Some(i) => format!("{} …", &cut[..i]),
        None => format!("{cut} …"),
    }
}

fn offline_note(p: &Passage, lang: Lang) -> &'static str {
    match (p.offline, lang) {
        (true, Lang::De) => " (Laufwerk ausgehängt)",
        (true, Lang::En) => " (drive detached)",
        _ => "",
    }
}

/// An extractive answer: the passages quoted, each with its number, and the numbered sources below.
pub fn answer(a: &KbAnswer, lang: Lang) -> String {
    if !a.found {
        return t(
            lang,
            "Dazu habe ich in den indizierten Dokumenten nichts Passendes gefunden. Welche Quellen indiziert sind, \
             zeigt „welche Quellen sind indiziert?“; ein Laufwerk nimmst du mit „indiziere das Laufwerk NAME“ auf.",
            "I found nothing relevant in the indexed documents. \"which sources are indexed?\" lists them; \
             \"index the drive NAME\" adds a drive.",
        );
    }
    let mut s = t(lang, "Das steht in den Dokumenten:\n", "From the documents:\n");
    for (i, p) in a.passages.iter().enumerate() {
        let _ = writeln!(s, "[{}] „{}“", i + 1, quote(p, 320));
    }
    s.push_str(&t(lang, "Quellen:\n", "Sources:\n"));
    for (i, p) in a.passages.iter().enumerate() {
        let _ = writeln!(
            s,
            "[{}] {}{}",
            i + 1,
            citation(&p.citation, lang),
            offline_note(p, lang)
        );
    }
    if lang == Lang::En {
        s = s.replace(['„', '“'], "\"");
    }
    s
}

fn sources(list: &[KbSource], lang: Lang) -> String {
    let de = lang == Lang::De;
    if list.is_empty() {
        return t(
            lang,
            "Noch nichts indiziert. Sag z. B. „indiziere das Laufwerk data“.",
            "Nothing indexed yet. Say e.g. \"index the drive data\".",
        );
    }
    let mut s = String::new();
    for src in list {
        let state = match (src.state, de) {
            (KbSourceState::Ready, true) => "bereit",
            (KbSourceState::Ready, false) => "ready",
            (KbSourceState::Indexing, true) => "wird indiziert",
            (KbSourceState::Indexing, false) => "indexing",
            (KbSourceState::Offline, true) => "offline (Laufwerk ausgehängt)",
            (KbSourceState::Offline, false) => "offline (drive detached)",
            (KbSourceState::Cancelled, true) => "abgebrochen",
            (KbSourceState::Cancelled, false) => "cancelled",
            (KbSourceState::Failed, true) => "fehlgeschlagen",
            (KbSourceState::Failed, false) => "failed",
        };
        let _ = writeln!(
            s,
            "  {}: {} {}, {} {}, {} KiB — {state}",
            src.name,
            src.documents,
            if de { "Dokumente" } else { "documents" },
            src.chunks,
            if de { "Abschnitte" } else { "passages" },
            src.bytes / 1024
        );
    }
    s
}

/// The result of a `kb.*` operation for the chat; `None` for other outputs.
pub fn output(o: &Output, lang: Lang) -> Option<String> {
    Some(match o {
        Output::KbJob(j) => t(
            lang,
            &format!(
                "Indizieren von {} ({}) läuft im Hintergrund. „welche Quellen sind indiziert?“ zeigt den Stand.",
                j.source, j.root
            ),
            &format!(
                "Indexing {} ({}) runs in the background. \"which sources are indexed?\" shows how far it is.",
                j.source, j.root
            ),
        ),
        Output::KbSources(list) => sources(list, lang),
        Output::KbSearch(r) => {
            if r.passages.is_empty() {
                return Some(t(lang, "Keine Treffer.", "No matches."));
            }
            let mut s = String::new();
            for (i, p) in r.passages.iter().enumerate() {
                let _ = writeln!(
                    s,
                    "[{}] {}{}",
                    i + 1,
                    citation(&p.citation, lang),
                    offline_note(p, lang)
                );
                let _ = writeln!(s, "    {}", quote(p, 160));
            }
            s
        }
        Output::KbAnswer(a) => answer(a, lang),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passage() -> Passage {
        Passage {
            citation: Citation {
                source: "data".into(),
                path: "rechnungen/maerz.md".into(),
                heading: Some("Rechnung März".into()),
                page: None,
                line_start: 3,
                line_end: 9,
            },
            text: "Die Rechnung vom 14. März über 120 Euro ist bezahlt.".into(),
            score: 3.0,
            coverage: 1.0,
            offline: false,
        }
    }

    #[test]
    fn answers_quote_and_cite_in_both_languages() {
        let a = KbAnswer {
            question: "q".into(),
            found: true,
            passages: vec![passage()],
        };
        let de = answer(&a, Lang::De);
        assert!(de.contains("[1] „Die Rechnung vom 14. März"), "{de}");
        assert!(
            de.contains("[1] data: rechnungen/maerz.md, „Rechnung März“, Zeilen 3–9"),
            "{de}"
        );
        let en = answer(&a, Lang::En);
        assert!(
            en.contains("[1] data: rechnungen/maerz.md, \"Rechnung März\", lines 3–9"),
            "{en}"
        );
        let none = KbAnswer {
            question: "q".into(),
            found: false,
            passages: vec![],
        };
        assert!(answer(&none, Lang::De).contains("nichts Passendes"));
        assert!(answer(&none, Lang::En).contains("nothing relevant"));
    }
}
