//! Words to concepts. The vocabulary is data: each concept lists its German and English words (folded, so
//! `häng` is written `haeng`); adding a synonym is adding a word. Matching tolerates typos (Damerau-Levenshtein
//! distance 1 from 4 letters, 2 from 8) and splits German compounds (`systemstatus` = `system` + `status`).

/// What a word means to the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Concept {
    /// show, list, tell.
    Show,
    /// status, state, health, overview.
    Status,
    /// the machine itself.
    System,
    /// CPU, memory, disks, load, uptime: facets of the system status.
    Resource,
    /// the daemon and its internal tasks.
    Supervisor,
    /// the audit log.
    Audit,
    /// the web token.
    Token,
    /// kill / abort (a task).
    Kill,
    /// failed / errors (audit filter).
    Failed,
    /// denied (audit filter).
    Denied,
    /// help / what can you do.
    Help,
    /// yes / confirm.
    Yes,
    /// no / cancel.
    No,
    /// delete / forget.
    Delete,
    /// chat history.
    History,
    /// please, thanks and other politeness that carries no meaning.
    Polite,
}

/// Language a word belongs to; `Both` for shared words (status, system, ok).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WordLang {
    /// German.
    De,
    /// English.
    En,
    /// Either.
    Both,
}

use Concept::*;
use WordLang::{Both, De, En};

/// The vocabulary: (concept, language, folded words).
pub const LEXICON: &[(Concept, WordLang, &[&str])] = &[
    (
        Show,
        De,
        &[
            "zeig",
            "zeige",
            "zeigen",
            "anzeigen",
            "liste",
            "listen",
            "auflisten",
            "gib",
            "gibt",
            "sag",
            "sage",
            "nenne",
            "wie",
            "was",
            "welche",
            "welcher",
            "ueberblick",
            "uebersicht",
            "pruefe",
            "pruef",
            "check",
        ],
    ),
    (
        Show,
        En,
        &[
            "show", "display", "list", "print", "tell", "give", "what", "whats", "how", "view", "see", "get", "check",
            "overview", "report",
        ],
    ),
    (
        Status,
        De,
        &["zustand", "lage", "gesundheit", "befinden", "laeuft", "geht"],
    ),
    (
        Status,
        En,
        &["state", "health", "healthy", "doing", "going", "running", "up"],
    ),
    (
        Status,
        Both,
        &["status", "info", "infos", "information", "informationen"],
    ),
    (
        System,
        De,
        &["rechner", "maschine", "geraet", "kiste", "systems", "computers"],
    ),
    (
        System,
        En,
        &["machine", "box", "host", "computer", "appliance", "server"],
    ),
    (System, Both, &["system", "cacheos"]),
    (
        Resource,
        De,
        &[
            "speicher",
            "arbeitsspeicher",
            "auslastung",
            "last",
            "laufzeit",
            "festplatte",
            "festplatten",
            "platz",
            "kerne",
            "prozessor",
            "kernel",
            "betriebssystem",
            "version",
            "hostname",
        ],
    ),
    (
        Resource,
        En,
        &[
            "memory",
            "load",
            "uptime",
            "disk",
            "disks",
            "space",
            "usage",
            "cores",
            "processor",
            "kernel",
            "os",
            "version",
            "hostname",
        ],
    ),
    (Resource, Both, &["cpu", "ram"]),
    (
        Supervisor,
        De,
        &[
            "dienst",
            "dienste",
            "aufgaben",
            "hintergrunddienste",
            "prozesse",
            "interne",
        ],
    ),
    (
        Supervisor,
        En,
        &["daemon", "service", "services", "tasks", "task", "workers", "internal"],
    ),
    (Supervisor, Both, &["supervisor", "cacheosd"]),
    (
        Audit,
        De,
        &[
            "protokoll",
            "protokolls",
            "auditlog",
            "pruefprotokoll",
            "aktivitaeten",
            "ereignisse",
            "gemacht",
            "getan",
            "passiert",
        ],
    ),
    (
        Audit,
        En,
        &["audit", "activity", "activities", "trail", "happened", "done", "events"],
    ),
    (Audit, Both, &["log", "logs", "logbuch"]),
    (
        Token,
        De,
        &[
            "zugangstoken",
            "schluessel",
            "zugangsschluessel",
            "webtoken",
            "kennwort",
        ],
    ),
    (Token, En, &["token", "key", "password", "credentials", "bearer"]),
    (
        Kill,
        De,
        &[
            "beende",
            "beenden",
            "abschiessen",
            "toete",
            "killen",
            "kille",
            "abbrechen",
        ],
    ),
    (Kill, En, &["kill", "abort", "terminate", "crash"]),
    (
        Failed,
        De,
        &[
            "fehlgeschlagen",
            "fehlgeschlagene",
            "fehlgeschlagenen",
            "fehler",
            "fehlern",
            "gescheitert",
            "gescheiterte",
        ],
    ),
    (
        Failed,
        En,
        &["failed", "failures", "failure", "errors", "error", "unsuccessful"],
    ),
    (
        Denied,
        De,
        &["verweigert", "verweigerte", "verboten", "abgelehnt", "abgelehnte"],
    ),
    (Denied, En, &["denied", "refused", "forbidden", "rejected"]),
    (
        Help,
        De,
        &[
            "hilfe",
            "kannst",
            "befehle",
            "moeglichkeiten",
            "anleitung",
            "funktionen",
        ],
    ),
    (Help, En, &["help", "commands", "capabilities", "can", "usage"]),
    (
        Yes,
        De,
        &[
            "ja",
            "jawohl",
            "jo",
            "jep",
            "klar",
            "sicher",
            "bestaetige",
            "bestaetigt",
            "genau",
            "mach",
            "machs",
            "los",
        ],
    ),
    (
        Yes,
        En,
        &[
            "yes",
            "yep",
            "yeah",
            "sure",
            "confirm",
            "confirmed",
            "proceed",
            "go",
            "y",
        ],
    ),
    (Yes, Both, &["ok", "okay"]),
    (
        No,
        De,
        &["nein", "nee", "ne", "abbruch", "stopp", "lass", "lieber", "nicht"],
    ),
    (No, En, &["no", "nope", "cancel", "stop", "dont", "never", "n"]),
    (
        Delete,
        De,
        &[
            "loesch",
            "loesche",
            "loeschen",
            "vergiss",
            "vergessen",
            "leeren",
            "leere",
        ],
    ),
    (Delete, En, &["delete", "clear", "forget", "erase", "wipe"]),
    (
        History,
        De,
        &["verlauf", "chatverlauf", "gespraech", "unterhaltung", "nachrichten"],
    ),
    (History, En, &["history", "conversation", "chat", "messages"]),
    (
        Polite,
        De,
        &[
            "bitte",
            "danke",
            "mal",
            "doch",
            "kannst",
            "koenntest",
            "wuerdest",
            "mir",
            "uns",
            "den",
            "die",
            "das",
            "der",
            "des",
            "dem",
            "ein",
            "eine",
            "einen",
            "und",
            "aktuell",
            "aktuelle",
            "aktuellen",
            "jetzt",
            "gerade",
            "du",
        ],
    ),
    (
        Polite,
        En,
        &[
            "please",
            "thanks",
            "thank",
            "could",
            "would",
            "you",
            "me",
            "the",
            "a",
            "an",
            "of",
            "and",
            "current",
            "currently",
            "now",
            "right",
            "kindly",
            "pls",
            "plz",
        ],
    ),
];

fn tolerance(len: usize) -> usize {
    match len {
        0..=3 => 0,
        4..=7 => 1,
        _ => 2,
    }
}

/// A word's meaning and language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    /// The concept.
    pub concept: Concept,
    /// The language of the matched word.
    pub lang: WordLang,
    /// Edit distance of the match (0 = exact).
    pub distance: usize,
}

fn exact(word: &str) -> Vec<Hit> {
    LEXICON
        .iter()
        .filter(|(_, _, words)| words.contains(&word))
        .map(|(c, l, _)| Hit {
            concept: *c,
            lang: *l,
            distance: 0,
        })
        .collect()
}

/// Exact matches, or matches at distance 1 for parts of at least five letters (typos inside compounds).
fn near(part: &str) -> Vec<Hit> {
    let e = exact(part);
    if !e.is_empty() || part.chars().count() < 5 {
        return e;
    }
    LEXICON
        .iter()
        .filter(|(c, _, _)| *c != Polite)
        .filter(|(_, _, words)| {
            words
                .iter()
                .any(|w| w.len() >= 5 && strsim::damerau_levenshtein(part, w) <= 1)
        })
        .map(|(c, l, _)| Hit {
            concept: *c,
            lang: *l,
            distance: 1,
        })
        .collect()
}

/// The concepts a folded word stands for: exact matches first; otherwise a German compound of two known words;
/// otherwise the closest words within the typo tolerance.
pub fn lookup(word: &str) -> Vec<Hit> {
    let hits = exact(word);
    if !hits.is_empty()
        || word.len() < 3
        || word.len() > 40
        || word.chars().any(|c| c.is_ascii_digit() || c == '/' || c == '.')
    {
        return hits;
    }
    if word.contains('-') {
        // CPU-Auslastung, Audit-Protokoll, Web-Token: the parts' meanings.
        return word
            .split('-')
            .flat_map(lookup)
            .filter(|h| h.concept != Polite)
            .collect();
    }
    // Compounds: systemstatus, auditprotokoll, dienststatus.
    if word.len() >= 8 {
        for cut in 4..=word.len() - 4 {
            if !word.is_char_boundary(cut) {
                continue;
            }
            let (a, b) = word.split_at(cut);
            let b = b.strip_prefix('s').filter(|r| !exact(r).is_empty()).unwrap_or(b);
            let (ha, hb) = (near(a), near(b));
            if !ha.is_empty() && !hb.is_empty() {
                return ha.into_iter().chain(hb).filter(|h| h.concept != Polite).collect();
            }
        }
    }
    let tol = tolerance(word.chars().count());
    if tol == 0 {
        return hits;
    }
    let mut best: Vec<Hit> = Vec::new();
    let mut best_d = usize::MAX;
    for (c, l, words) in LEXICON {
        if *c == Polite {
            continue;
        }
        for w in *words {
            if w.len() < 4 {
                continue;
            }
            let d = strsim::damerau_levenshtein(word, w);
            if d <= tol.min(tolerance(w.len())) && d <= best_d {
                if d < best_d {
                    best.clear();
                    best_d = d;
                }
                best.push(Hit {
                    concept: *c,
                    lang: *l,
                    distance: d,
                });
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn concepts(w: &str) -> Vec<Concept> {
        let mut v: Vec<_> = lookup(w).into_iter().map(|h| h.concept).collect();
        v.sort();
        v.dedup();
        v
    }

    #[test]
    fn exact_typo_and_compound() {
        assert_eq!(concepts("status"), vec![Status]);
        assert_eq!(concepts("stauts"), vec![Status], "transposition");
        assert_eq!(concepts("protokol"), vec![Audit], "missing letter");
        assert_eq!(concepts("systemstatus"), vec![Status, System]);
        assert_eq!(concepts("dienststatus"), vec![Status, Supervisor]);
        assert_eq!(concepts("xyzzy"), Vec::<Concept>::new());
        assert_eq!(concepts("ja"), vec![Yes]);
        assert_eq!(
            concepts("je"),
            Vec::<Concept>::new(),
            "no typo tolerance below four letters"
        );
    }

    #[test]
    fn no_word_is_listed_twice_within_a_concept_and_language() {
        for (c, l, words) in LEXICON {
            let mut w = words.to_vec();
            w.sort();
            let n = w.len();
            w.dedup();
            assert_eq!(n, w.len(), "{c:?} {l:?} has duplicates");
            assert!(
                words.iter().all(|x| super::super::normalize::fold(x) == *x),
                "{c:?}: words must be folded"
            );
        }
    }
}
