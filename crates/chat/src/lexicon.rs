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
    /// the web port's TLS certificate and its fingerprint (issue 19).
    Certificate,
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
    /// a virtual drive (attached image).
    Drive,
    /// an image file (ISO, disk image).
    Image,
    /// attach / mount.
    Attach,
    /// detach / unmount / eject.
    Detach,
    /// `häng` / `hänge`: attach with `ein`, detach with `aus` / `ab`.
    Hang,
    /// files / contents of a drive.
    Files,
    /// a writable snapshot over a drive.
    Snapshot,
    /// discard (a snapshot).
    Discard,
    /// commit (a snapshot into its image).
    Commit,
    /// attach again at boot.
    Persist,
    /// create / new.
    Create,
    /// reconcile records with the world.
    Reconcile,
    /// a sandbox / container.
    Sandbox,
    /// a sandbox template.
    Template,
    /// start.
    Start,
    /// stop.
    Stop,
    /// restart.
    Restart,
    /// remove (a sandbox; a drive is detached).
    Remove,
    /// run a command in a sandbox.
    Exec,
    /// console output of a sandbox.
    Output,
    /// Python (the host template has python3).
    Python,
    /// network access.
    Network,
    /// force (a detach).
    Force,
    /// writable.
    Writable,
    /// read-only.
    ReadOnly,
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
        Certificate,
        De,
        &["zertifikat", "zertifikats", "fingerabdruck", "fingerabdrucks"],
    ),
    (Certificate, En, &["certificate", "cert", "fingerprint"]),
    (Certificate, Both, &["tls", "ssl"]),
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
            "jap",
            "japp",
            "klar",
            "sicher",
            "bestaetige",
            "bestaetigt",
            "genau",
            "mach",
            "machs",
            "los",
            "j",
            "passt",
            "gerne",
            "gern",
            "einverstanden",
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
        &[
            "nein",
            "nee",
            "ne",
            "abbruch",
            "abbrechen",
            "stopp",
            "lass",
            "lieber",
            "nicht",
            "warte",
            "halt",
        ],
    ),
    (
        No,
        En,
        &["no", "nope", "nah", "cancel", "stop", "dont", "never", "n", "wait"],
    ),
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
        Drive,
        De,
        &[
            "laufwerk",
            "laufwerke",
            "laufwerks",
            "laufwerken",
            "datentraeger",
            "platte",
            "platten",
        ],
    ),
    (Drive, En, &["drive", "drives", "volume", "volumes"]),
    (
        Image,
        De,
        &[
            "abbild",
            "abbilder",
            "abbildes",
            "abbilddatei",
            "abbilddateien",
            "imagedatei",
            "imagedateien",
        ],
    ),
    (Image, En, &["image", "images", "isos", "iso"]),
    (
        Attach,
        De,
        &[
            "einhaengen",
            "einhaenge",
            "mounte",
            "mounten",
            "anschliessen",
            "schliesse",
            "schliess",
            "einbinden",
            "binde",
            "einlegen",
        ],
    ),
    (Attach, En, &["attach", "mount", "plug", "insert"]),
    (
        Detach,
        De,
        &[
            "aushaengen",
            "abhaengen",
            "trennen",
            "trenne",
            "unmounten",
            "auswerfen",
            "abmelden",
        ],
    ),
    (
        Detach,
        En,
        &["detach", "unmount", "umount", "eject", "unplug", "disconnect"],
    ),
    (Hang, De, &["haeng", "haenge", "haengen", "haengt"]),
    (
        Files,
        De,
        &[
            "dateien",
            "datei",
            "inhalt",
            "inhalte",
            "verzeichnis",
            "drauf",
            "darauf",
        ],
    ),
    (
        Files,
        En,
        &["files", "contents", "content", "folder", "directory", "browse"],
    ),
    (
        Snapshot,
        De,
        &["schnappschuss", "schnappschusses", "momentaufnahme", "sicherungspunkt"],
    ),
    (Snapshot, En, &["snapshot", "snapshots", "overlay"]),
    (
        Discard,
        De,
        &["verwerfen", "verwirf", "verwerfe", "zuruecksetzen", "rueckgaengig"],
    ),
    (Discard, En, &["discard", "revert", "rollback", "drop", "undo"]),
    (
        Commit,
        De,
        &[
            "uebernehmen",
            "uebernimm",
            "uebernehme",
            "festschreiben",
            "schreib",
            "schreibe",
            "zurueckschreiben",
        ],
    ),
    (Commit, En, &["commit", "merge"]),
    (Persist, De, &["dauerhaft", "bootfest", "immer"]),
    (
        Persist,
        En,
        &["persist", "persistent", "permanent", "permanently", "always"],
    ),
    (
        Create,
        De,
        &[
            "erstelle",
            "erstellen",
            "erzeuge",
            "erzeugen",
            "anlegen",
            "neue",
            "neues",
            "neuen",
            "baue",
        ],
    ),
    (Create, En, &["create", "new", "make", "setup", "spawn"]),
    (Reconcile, De, &["abgleichen", "gleiche", "abgleich", "synchronisiere"]),
    (Reconcile, En, &["reconcile", "resync", "sync"]),
    (
        Sandbox,
        De,
        &[
            "sandboxen",
            "umgebung",
            "umgebungen",
            "containern",
            "sandkasten",
            "sandkaesten",
            "sandkisten",
        ],
    ),
    (Sandbox, En, &["sandboxes"]),
    (Sandbox, Both, &["sandbox", "container", "containers"]),
    (Template, De, &["vorlage", "vorlagen"]),
    (Template, En, &["template", "templates"]),
    (Start, De, &["starte", "starten", "startet", "hochfahren", "fahre"]),
    (Start, En, &["start", "launch", "boot"]),
    (
        Stop,
        De,
        &["stoppe", "stoppen", "stopp", "anhalten", "halte", "herunterfahren"],
    ),
    (Stop, En, &["stop", "shutdown", "shut", "halt"]),
    (Restart, De, &["neustarten", "neustart", "neu"]),
    (Restart, En, &["restart", "reboot"]),
    (Remove, De, &["entferne", "entfernen", "beseitige", "weg"]),
    (Remove, En, &["remove", "destroy", "rm"]),
    (Exec, De, &["fuehre", "fuehr", "ausfuehren", "ausfuehre"]),
    (Exec, En, &["run", "execute", "exec"]),
    (Output, De, &["ausgabe", "ausgaben", "konsole", "konsolenausgabe"]),
    (Output, En, &["output", "console"]),
    (Python, Both, &["python", "python3"]),
    (
        Network,
        De,
        &["netz", "netzwerk", "internet", "netzzugang", "internetzugang"],
    ),
    (Network, En, &["network", "networking", "net", "nat", "online"]),
    (Force, De, &["gewalt", "erzwungen", "erzwinge", "zwangsweise"]),
    (Force, En, &["force", "forced", "forcibly", "forcefully"]),
    (
        Writable,
        De,
        &["beschreibbar", "schreibbar", "schreibend", "schreibzugriff"],
    ),
    (Writable, En, &["writable", "writeable", "rw", "readwrite", "write"]),
    (ReadOnly, De, &["schreibgeschuetzt", "lesbar", "lesend"]),
    (ReadOnly, En, &["readonly", "ro", "read"]),
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
            "about",
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
                .any(|w| w.len() >= 5 && w.len().abs_diff(part.len()) <= 1 && strsim::damerau_levenshtein(part, w) <= 1)
        })
        .map(|(c, l, _)| Hit {
            concept: *c,
            lang: *l,
            distance: 1,
        })
        .collect()
}

thread_local! {
    static CACHE: std::cell::RefCell<std::collections::HashMap<String, Vec<Hit>>> = Default::default();
}

/// The concepts a folded word stands for: exact matches first; otherwise a German compound of two known words;
/// otherwise the closest words within the typo tolerance. Answers are remembered per thread (a few thousand
/// words), as every stage of the pipeline asks about the same words.
pub fn lookup(word: &str) -> Vec<Hit> {
    if let Some(h) = CACHE.with(|c| c.borrow().get(word).cloned()) {
        return h;
    }
    let h = lookup_uncached(word);
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() >= 8192 {
            c.clear();
        }
        c.insert(word.to_string(), h.clone());
    });
    h
}

fn lookup_uncached(word: &str) -> Vec<Hit> {
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
            let ha = near(a);
            if ha.is_empty() {
                continue;
            }
            let hb = near(b);
            if !hb.is_empty() {
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
            if w.len() < 4 || w.len().abs_diff(word.len()) > tol {
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

/// The one lexicon word a misspelt word stands for ("hlep" → help, "hisotry" → history, "imgaes" → images):
/// for the classifier, which has seen the word but not the typo. Words of four letters or more without an exact
/// hit, one edit away (two from eight letters), and only when the closest word is unique.
pub fn correct(word: &str) -> Option<&'static str> {
    let n = word.chars().count();
    if !(4..=30).contains(&n) || !exact(word).is_empty() || word.chars().any(|c| !c.is_alphabetic()) {
        return None;
    }
    let tol = tolerance(n);
    let mut best: Option<(&'static str, usize)> = None;
    let mut tie = false;
    for (c, _, words) in LEXICON {
        if *c == Polite {
            continue;
        }
        for w in *words {
            if w.len() < 4 || w.len().abs_diff(word.len()) > tol {
                continue;
            }
            let d = strsim::damerau_levenshtein(word, w);
            if d == 0 || d > tol.min(tolerance(w.len())) {
                continue;
            }
            // Another ending of the same word ("worker"/"workers", "gleich"/"gleiche") is not a typo.
            if w.starts_with(word) || word.starts_with(w) {
                continue;
            }
            // Four letters leave too little to tell a typo from another word ("sagt" is not "sage"):
            // only swapped letters count there.
            if n == 4 && !same_letters(word, w) {
                continue;
            }
            // Up to six letters, a changed letter is as often another word ("listed" is not "listen"): only
            // swapped letters or a missing one count.
            if n <= 6 && !same_letters(word, w) && w.chars().count() != n + 1 {
                continue;
            }
            match best {
                Some((b, bd)) if d == bd && b != *w => tie = true,
                Some((_, bd)) if d >= bd => {}
                _ => {
                    best = Some((w, d));
                    tie = false;
                }
            }
        }
    }
    best.filter(|_| !tie).map(|b| b.0)
}

/// Whether two words are made of the same letters (a transposition, not a different word).
fn same_letters(a: &str, b: &str) -> bool {
    let mut x: Vec<char> = a.chars().collect();
    let mut y: Vec<char> = b.chars().collect();
    x.sort_unstable();
    y.sort_unstable();
    x == y
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misspelt_words_are_corrected_only_when_unambiguous() {
        assert_eq!(correct("hisotry"), Some("history"));
        assert_eq!(correct("history"), None, "a known word stays");
        assert_eq!(correct("xyzzyq"), None);
        assert_eq!(correct("sagt"), None, "four letters: only swapped letters are a typo");
        assert_eq!(correct("listed"), None, "six letters: a changed letter is another word");
        assert_eq!(correct("gleich"), None, "another ending is not a typo");
        assert_eq!(correct("stauts"), Some("status"));
    }

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
    fn drive_and_sandbox_synonyms_spellings_and_typos() {
        for w in [
            "einhaengen",
            "mounten",
            "anschliessen",
            "einbinden",
            "attach",
            "mount",
            "plug",
        ] {
            assert_eq!(concepts(w), vec![Attach], "{w}");
        }
        for w in ["aushaengen", "abhaengen", "trennen", "unmount", "detach", "eject"] {
            assert_eq!(concepts(w), vec![Detach], "{w}");
        }
        assert_eq!(concepts("einhaegen"), vec![Attach], "missing letter");
        assert_eq!(concepts("laufwrek"), vec![Drive], "transposition");
        assert_eq!(concepts("schnappschus"), vec![Snapshot]);
        assert_eq!(concepts("sandbx"), vec![Sandbox]);
        assert_eq!(concepts("laufwerksdateien"), vec![Drive, Files], "compound");
        assert_eq!(concepts("python-sandbox"), vec![Sandbox, Python]);
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
