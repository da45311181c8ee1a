//! Entities first: the objects that exist right now (images, drives, sandboxes, templates, tasks, units) found in
//! the text, with edit-distance tolerance for typos ("debain.iso" → debian.iso when exactly one name is that
//! close), and builtin entities (sizes, CPU shares, time windows, numbers, paths, quoted strings, commands, file
//! systems, new names after "namens/called/named", flags such as network or writable). The result feeds three
//! consumers: the rule parser (the text with object-name typos corrected), the intent classifier (the tokens with
//! entities replaced by typed placeholders, so "stoppe web" reads "stoppe @sandbox") and the slot filler (typed
//! values per operation, see [`crate::slotfill`]).

use serde_json::{json, Value};

use crate::engine::{Known, Session};
use crate::lexicon::lookup;
use crate::normalize::{fold, tokens, Token};
use crate::slots;

/// One entity found in the text.
#[derive(Debug, Clone, PartialEq)]
pub struct Entity {
    /// Its type: `image`, `path`, `drive`, `sandbox`, `template`, `task`, `unit`, `size`, `cpu`, `duration`,
    /// `number`, `quoted`, `command`, `fs`, `name`, `network`, `no-network`, `writable`, `readonly`, `force`,
    /// `negation`, `exec-flag`, `outcome`, `format`, `pronoun`.
    pub kind: &'static str,
    /// Its value as an operation argument (a name, a number of bytes, a window in ms, an argv …).
    pub value: Value,
    /// First token.
    pub start: usize,
    /// One past the last token.
    pub end: usize,
    /// Found by a weak cue only (an image's stem without its extension): it fills a slot but does not replace the
    /// word for the classifier.
    pub weak: bool,
}

/// All entities of an utterance.
#[derive(Debug, Clone, Default)]
pub struct Entities {
    /// The tokens.
    pub toks: Vec<Token>,
    /// The entities, in text order.
    pub list: Vec<Entity>,
    /// The utterance with object-name typos corrected.
    pub corrected: String,
}

const IMAGE_EXT: &[&str] = &[
    ".iso", ".img", ".raw", ".qcow2", ".vmdk", ".vdi", ".vhdx", ".vhd", ".bin",
];
const UNIT_EXT: &[&str] = &[
    ".service", ".socket", ".timer", ".target", ".mount", ".path", ".slice", ".scope",
];
const NAME_MARKERS: &[&str] = &[
    "namens",
    "named",
    "called",
    "name",
    "namen",
    "heissen",
    "heisst",
    "heissenden",
    "nenne",
    "nenn",
    "als",
    "as",
];
const PRONOUNS: &[&str] = &[
    "sie", "es", "ihn", "ihm", "it", "them", "diese", "dieses", "diesen", "dieser", "this", "that",
];
const NEGATIONS: &[&str] = &[
    "ohne",
    "without",
    "no",
    "kein",
    "keine",
    "keinem",
    "keinen",
    "nicht",
    "not",
    "never",
    "nie",
    "mehr",
    "longer",
    "offline",
    "ausschalten",
    "abschalten",
    "deaktivieren",
    "deaktiviere",
    "stop",
    "stoppe",
    "shouldn't",
    "shouldnt",
    "anymore",
    "dont",
    "don't",
    "don",
    "doesn",
    "shouldn",
    "won",
    "nimmer",
    "aufhoeren",
    "disable",
    "unpersist",
    "turn-off",
    "beenden",
    "beende",
    "unpersist",
    "nicht-persistent",
    "non-persistent",
];
/// Words that are not a new object's name even when unknown to the lexicon.
const NOT_NAMES: &[&str] = &[
    "up",
    "hoch",
    "auf",
    "mit",
    "with",
    "for",
    "fuer",
    "from",
    "aus",
    "von",
    "called",
    "named",
    "namens",
    "an",
    "der",
    "die",
    "das",
    "und",
    "and",
    "that",
    "which",
    "die",
    "bitte",
    "please",
    "mal",
    "quickly",
    "schnell",
    "fresh",
    "frische",
    "temporary",
    "temporaere",
    "debian",
    "host",
    "vorlage",
    "template",
    "basis",
    "base",
    "image",
    "me",
    "mir",
    "uns",
    "instance",
    "instanz",
    "based",
    "gleich",
    "sofort",
    "now",
    "jetzt",
    "zum",
    "zur",
    "for",
    "a",
    "an",
    "eine",
    "einen",
    "ein",
    "einer",
    "sandboxen",
    "sandboxes",
    "containers",
];
/// Number words that are also articles: never a number on their own.
const ARTICLES: &[&str] = &["ein", "eine", "einer", "einem", "einen", "eins", "one", "a", "an"];
/// Words that say an operation succeeded (an audit filter).
const SUCCEEDED: &[&str] = &[
    "erfolgreich",
    "erfolgreiche",
    "erfolgreichen",
    "gelungen",
    "gelungene",
    "geklappt",
    "successful",
    "successfully",
    "succeeded",
    "success",
    "worked",
];
/// Words that ask for the attached result of a create ("… und gleich einhängen", "and mount it").
const ATTACH_WORDS: &[&str] = &[
    "einhaengen",
    "einhaenge",
    "eingehaengt",
    "anhaengen",
    "angehaengt",
    "einbinden",
    "eingebunden",
    "mounten",
    "gemountet",
    "mount",
    "mounted",
    "attach",
    "attached",
    "ranhaengen",
];
/// Words that never are a typo of an object name.
const NOT_TYPOS: &[&str] = &[
    "bild", "bilder", "daten", "datum", "debug", "weber", "wetter", "build", "guild",
];

fn dl(a: &str, b: &str) -> usize {
    strsim::damerau_levenshtein(a, b)
}

fn file_like(s: &str) -> bool {
    let l = s.to_lowercase();
    IMAGE_EXT.iter().any(|e| l.len() > e.len() && l.ends_with(e))
}

/// The one candidate within the tolerance of `word` (closest wins; a tie between two names is no match).
fn closest<'a>(word: &str, names: impl Iterator<Item = &'a String>, tol: usize) -> Option<&'a String> {
    let mut best: Option<(&String, usize)> = None;
    let mut tie = false;
    for n in names {
        let d = dl(word, &n.to_lowercase());
        if d > tol {
            continue;
        }
        match best {
            Some((_, bd)) if d > bd => {}
            Some((_, bd)) if d == bd => tie = true,
            _ => {
                best = Some((n, d));
                tie = false;
            }
        }
    }
    if tie {
        None
    } else {
        best.map(|b| b.0)
    }
}

/// Number words up to sixty, German and English (folded).
pub fn number_word(w: &str) -> Option<f64> {
    Some(match w {
        "ein" | "eine" | "einer" | "einem" | "einen" | "eins" | "one" | "a" | "an" => 1.0,
        "zwei" | "two" => 2.0,
        "drei" | "three" => 3.0,
        "vier" | "four" => 4.0,
        "fuenf" | "five" => 5.0,
        "sechs" | "six" => 6.0,
        "sieben" | "seven" => 7.0,
        "acht" | "eight" => 8.0,
        "neun" | "nine" => 9.0,
        "zehn" | "ten" => 10.0,
        "zwoelf" | "twelve" => 12.0,
        "fuenfzehn" | "fifteen" => 15.0,
        "zwanzig" | "twenty" => 20.0,
        "dreissig" | "thirty" => 30.0,
        "vierzig" | "forty" => 40.0,
        "fuenfzig" | "fifty" => 50.0,
        "sechzig" | "sixty" => 60.0,
        "hundert" | "hundred" => 100.0,
        _ => return None,
    })
}

fn time_unit(w: &str) -> Option<u64> {
    const MIN: u64 = 60_000;
    Some(match w {
        "sekunde" | "sekunden" | "second" | "seconds" | "sek" | "sec" | "secs" | "s" => 1000,
        "minute" | "minuten" | "minutes" | "min" | "mins" | "m" => MIN,
        "stunde" | "stunden" | "hour" | "hours" | "std" | "h" | "hrs" => 60 * MIN,
        "tag" | "tage" | "tagen" | "tages" | "day" | "days" | "d" | "24h" => 24 * 60 * MIN,
        "woche" | "wochen" | "week" | "weeks" => 7 * 24 * 60 * MIN,
        _ => return None,
    })
}

/// A time window ending now, in ms, with the tokens it spans: "der letzten Stunde", "over the last 30 minutes",
/// "seit zehn Minuten", "halbe Stunde", "heute", "seit gestern", "10min".
pub fn duration(toks: &[Token], i: usize) -> Option<(u64, usize)> {
    let w = toks.get(i)?.norm.as_str();
    let next = toks.get(i + 1).map(|t| t.norm.as_str()).unwrap_or("");
    let after = toks.get(i + 2).map(|t| t.norm.as_str()).unwrap_or("");
    match w {
        "heute" | "today" | "tagsueber" => return Some((24 * 3_600_000, 1)),
        "gestern" | "yesterday" => return Some((2 * 24 * 3_600_000, 1)),
        "vorhin" | "recently" | "kuerzlich" => return Some((3_600_000, 1)),
        "mitternacht" | "midnight" | "nacht" | "night" | "overnight" | "nachts" => return Some((24 * 3_600_000, 1)),
        "morning" | "vormittag" | "fruehmorgens" => return Some((12 * 3_600_000, 1)),
        "morgen" if matches!(i.checked_sub(1).map(|j| toks[j].norm.as_str()), Some("heute" | "seit")) => {
            return Some((12 * 3_600_000, 1))
        }
        _ => {}
    }
    if matches!(w, "halbe" | "halben" | "half") {
        if let Some(u) = time_unit(next) {
            return Some((u / 2, 2));
        }
        if matches!(next, "an" | "a") {
            if let Some(u) = time_unit(after) {
                return Some((u / 2, 3));
            }
        }
    }
    if matches!(
        w,
        "letzte" | "letzten" | "letzter" | "letzen" | "last" | "past" | "vergangene" | "vergangenen" | "previous"
    ) {
        if let Some(u) = time_unit(next) {
            return Some((u, 2));
        }
        // "the last few minutes", "der letzten paar Stunden": a handful.
        if matches!(next, "few" | "paar" | "wenigen" | "couple") {
            let unit = if next == "couple" {
                toks.get(i + 3).map(|t| t.norm.as_str()).unwrap_or("")
            } else {
                after
            };
            if let Some(u) = time_unit(unit) {
                return Some((5 * u, if next == "couple" { 4 } else { 3 }));
            }
        }
        return None;
    }
    // "10min", "2h", "30m"
    let split = w.find(|c: char| !c.is_ascii_digit()).unwrap_or(w.len());
    // "256M" is a size, not 256 minutes.
    let megabytes = &w[split..] == "m" && (toks[i].raw.ends_with('M') || w[..split].len() >= 3);
    if split > 0 && split < w.len() && !megabytes {
        if let (Some(n), Some(u)) = (slots::number(&w[..split]), time_unit(&w[split..])) {
            return Some(((n * u as f64) as u64, 1));
        }
    }
    let n = slots::number(w).or_else(|| number_word(w))?;
    let u = time_unit(next)?;
    Some(((n * u as f64) as u64, 2))
}

/// The operation an audit question asks about, from a verb and an object word: "wer hat Sandboxen gelöscht"
/// → `sandbox.remove`, "who detached drives" → `drive.detach`. Only a pair of both gives one.
fn audited_operation(words: &[&str], known: &Known) -> Option<&'static str> {
    let any = |prefixes: &[&str]| words.iter().any(|w| prefixes.iter().any(|p| w.starts_with(p)));
    let named = |names: &[String]| words.iter().any(|w| names.iter().any(|n| n.to_lowercase() == *w));
    let sandbox = any(&["sandbox", "container", "sandkaest", "sandkast"]) || named(&known.sandboxes);
    let drive = any(&["laufwerk", "drive", "image", "abbild"]) || named(&known.drives) || named(&known.images);
    let verb = |v: &[&str]| any(v);
    let pick = |s: Option<&'static str>, d: Option<&'static str>| match (sandbox, drive) {
        (true, false) => s,
        (false, true) => d,
        _ => None,
    };
    if verb(&[
        "geloescht",
        "loeschte",
        "loeschen",
        "loeschung",
        "entfernt",
        "entfernen",
        "deleted",
        "delete",
        "deletion",
        "removed",
        "removal",
        "weggeworfen",
    ]) {
        return pick(Some("sandbox.remove"), None);
    }
    if verb(&["ausgefuehrt", "executed", "befehle", "commands"]) {
        return pick(Some("sandbox.exec"), None);
    }
    if verb(&["angelegt", "erstellt", "erzeugt", "created", "gebaut", "creation"]) {
        return pick(Some("sandbox.create"), Some("drive.create"));
    }
    if verb(&[
        "ausgehaengt",
        "abgehaengt",
        "detached",
        "unmounted",
        "ausgeworfen",
        "ejected",
        "getrennt",
        "detach",
        "aushaeng",
        "abhaeng",
    ]) {
        return pick(None, Some("drive.detach"));
    }
    if verb(&[
        "eingehaengt",
        "angehaengt",
        "attached",
        "mounted",
        "eingebunden",
        "attach",
        "einhaeng",
    ]) {
        return pick(None, Some("drive.attach"));
    }
    if verb(&[
        "committed",
        "comitted",
        "festgeschrieben",
        "zurueckgeschrieben",
        "commit",
    ]) {
        return pick(None, Some("drive.commit"));
    }
    if verb(&["gestoppt", "angehalten", "stopped", "halted", "stopp", "anhalten"]) {
        return pick(Some("sandbox.stop"), None);
    }
    if verb(&["restarted", "neugestartet"]) {
        return pick(Some("sandbox.restart"), None);
    }
    if verb(&["gestartet", "started"]) {
        return pick(Some("sandbox.start"), None);
    }
    None
}

fn fs_word(w: &str) -> Option<&'static str> {
    Some(match w {
        "ext4" | "ext-4" => "ext4",
        "xfs" => "xfs",
        "btrfs" => "btrfs",
        "fat" | "fat32" | "vfat" | "fat-32" => "vfat",
        _ => return None,
    })
}

fn clean_name(s: &str) -> String {
    let s: String = s
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    s.trim_matches('-').chars().take(32).collect()
}

/// The command words of "run X inside Y", "führe X in Y aus", "was sagt X in Y", "what does X say in Y", or a
/// quoted string: its argv and the token span it covers.
fn command(toks: &[Token], text: &str, known: &Known, session: &Session) -> Option<(Vec<String>, usize, usize)> {
    let argv = crate::objects::command_argv(text, known, session)?;
    // Map the argv back onto the tokens (a quoted command is one token).
    let folded: Vec<String> = argv
        .iter()
        .map(|w| fold(w.trim_matches(|c: char| !c.is_alphanumeric())))
        .filter(|w| !w.is_empty())
        .collect();
    let joined = fold(&argv.join(" "));
    if let Some(q) = toks.iter().position(|t| t.quoted && t.norm == joined) {
        return Some((argv, q, q + 1));
    }
    let first = folded.first()?;
    let start = toks
        .iter()
        .position(|t| &t.norm == first || t.norm.starts_with(first.as_str()))?;
    let mut end = start;
    let mut k = 0;
    while end < toks.len() && k < folded.len() {
        if toks[end].norm.contains(folded[k].as_str()) || folded[k].contains(toks[end].norm.as_str()) {
            k += 1;
        } else if k > 0 {
            break;
        }
        end += 1;
    }
    Some((argv, start, end.max(start + 1)))
}

/// Splits hyphenated compounds of an existing object's name and a vocabulary word ("metrics-Task",
/// "data-Laufwerk", "web-Container") into two words, so that the name is a name and the word keeps its meaning.
/// A word that is itself a name, a file name or quoted stays as written.
pub fn split_compounds(text: &str, known: &Known, session: &Session) -> String {
    let mut names: Vec<String> = known
        .sandboxes
        .iter()
        .chain(&known.drives)
        .chain(&known.tasks)
        .chain(&known.templates)
        .chain(session.last_sandbox.iter())
        .chain(session.last_drive.iter())
        .map(|n| n.to_lowercase())
        .collect();
    names.sort_unstable();
    names.dedup();
    let vocabulary = |part: &str| {
        let f = fold(part);
        !f.is_empty() && lookup(&f).iter().any(|h| h.distance == 0)
    };
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        let ws = rest.find(|c: char| !c.is_whitespace()).unwrap_or(rest.len());
        out.push_str(&rest[..ws]);
        rest = &rest[ws..];
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let word = &rest[..end];
        rest = &rest[end..];
        let core = word.trim_end_matches([',', '.', '!', '?', ';', ':']);
        let lower = core.to_lowercase();
        let parts: Vec<&str> = core.split('-').collect();
        let split = parts.len() == 2
            && !core.contains(['"', '\'', '`', '/', '„', '“', '«'])
            && !file_like(core)
            && !names.contains(&lower)
            && known
                .images
                .iter()
                .all(|i| !i.to_lowercase().starts_with(&format!("{lower}.")))
            && parts.iter().all(|p| !p.is_empty())
            && ((names.contains(&parts[0].to_lowercase()) && vocabulary(parts[1]))
                || (names.contains(&parts[1].to_lowercase()) && vocabulary(parts[0])));
        if split {
            out.push_str(parts[0]);
            out.push(' ');
            out.push_str(&word[parts[0].len() + 1..]);
        } else {
            out.push_str(word);
        }
    }
    out
}

impl Entities {
    /// Finds the entities of `text` in the context of what exists (`known`) and of the conversation.
    pub fn find(text: &str, known: &Known, session: &Session) -> Entities {
        // Nothing past the tokeniser's limit matters; the rest of the pipeline sees the same prefix.
        let text = crate::normalize::head(text);
        let split = split_compounds(text, known, session);
        let text = split.as_str();
        let toks = tokens(text);
        let hits: Vec<Vec<crate::lexicon::Hit>> = toks.iter().map(|t| lookup(&t.norm)).collect();
        let lookup = |i: usize| &hits[i];
        let mut list: Vec<Entity> = Vec::new();
        let mut corrected = text.to_string();
        // Names made in this conversation count as existing ones (the appliance may not list them yet).
        let with = |names: &[String], extra: &Option<String>| {
            let mut v = names.to_vec();
            if let Some(x) = extra {
                if !v.contains(x) {
                    v.push(x.clone());
                }
            }
            v
        };
        let sandboxes = with(&known.sandboxes, &session.last_sandbox);
        let drives = with(&known.drives, &session.last_drive);
        let mut covered = vec![false; toks.len()];
        let ent = |kind: &'static str, value: Value, start: usize, end: usize| Entity {
            kind,
            value,
            start,
            end,
            weak: false,
        };
        // Commands first: their words are not names, sizes or vocabulary.
        if let Some((argv, s, e)) = command(&toks, text, known, session) {
            list.push(ent("command", json!(argv), s, e));
            covered[s..e].iter_mut().for_each(|c| *c = true);
        }
        let mut i = 0;
        while i < toks.len() {
            if covered[i] {
                i += 1;
                continue;
            }
            let tk = &toks[i];
            let w = tk.norm.as_str();
            let prev = i.checked_sub(1).map(|j| toks[j].norm.as_str()).unwrap_or("");
            let n0 = list.len();
            let eq = |names: &[String]| names.iter().find(|n| n.to_lowercase() == w).cloned();
            // A new name after "namens", "called", "named": never vocabulary.
            let prev2 = i.checked_sub(2).map(|j| toks[j].norm.as_str()).unwrap_or("");
            // "name it clean", "nenn ihn sauber": so explicit that even a vocabulary word is the name.
            let strongly = matches!(prev, "it" | "es" | "sie" | "ihn")
                && matches!(prev2, "call" | "name" | "nenn" | "nenne" | "taufe");
            // "namens net", "called stop": after an explicit marker even a vocabulary word is the name.
            let strongly = strongly
                || (matches!(
                    prev,
                    "namens" | "named" | "called" | "heisst" | "heissen" | "nenne" | "nenn"
                ) && !crate::lang::function_word(w)
                    && !matches!(w, "it" | "es" | "sie" | "ihn" | "them"));
            // "alpine.qcow2 als net einhängen": after an image and "als/as", a short plain word is the drive's
            // name even when it is vocabulary (not a flag such as writable, not a noun such as drive).
            let strongly = strongly
                || (matches!(prev, "als" | "as")
                    && list.iter().any(|e| e.kind == "image" || e.kind == "path")
                    && !crate::lang::function_word(w)
                    && w.len() <= 16
                    && !matches!(w, "well" | "usual" | "before" | "root" | "admin" | "user" | "benutzer")
                    && w.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                    && lookup(i).iter().all(|h| {
                        !matches!(
                            h.concept,
                            crate::lexicon::Concept::Writable
                                | crate::lexicon::Concept::ReadOnly
                                | crate::lexicon::Concept::Drive
                                | crate::lexicon::Concept::Image
                                | crate::lexicon::Concept::Sandbox
                        ) || h.distance > 0
                    }));
            let marked = NAME_MARKERS.contains(&prev) || strongly || (prev == "it" && prev2 == "label");
            let label_marked = matches!(
                prev,
                "label" | "labelled" | "labeled" | "bezeichnung" | "beschriftung" | "etikett"
            ) || (prev == "it" && prev2 == "label");
            if label_marked && !tk.quoted && !file_like(w) && !matches!(w, "it" | "es" | "als" | "as") {
                list.push(ent("label", json!(tk.raw), i, i + 1));
                i += 1;
                continue;
            }
            // "nenn ihn sauber", "name it clean": the pronoun is not the name, the word after it is.
            let pronoun = matches!(w, "it" | "es" | "sie" | "ihn" | "them");
            if marked
                && !pronoun
                && !tk.quoted
                && !file_like(w)
                && (strongly || lookup(i).is_empty())
                && fs_word(w).is_none()
            {
                let n = clean_name(&tk.raw);
                if !n.is_empty() {
                    list.push(ent("name", json!(n), i, i + 1));
                    // "attach it as data", "called web": the name may also be an existing object.
                    if let Some(d) = eq(&drives) {
                        list.push(Entity {
                            weak: true,
                            ..ent("drive", json!(d), i, i + 1)
                        });
                    }
                    i += 1;
                    continue;
                }
            }
            if tk.quoted {
                list.push(ent("quoted", json!(tk.raw), i, i + 1));
                // `als Laufwerk "ubuntu"`, `as "vm"`, `called "lab"`: a quoted new name.
                let drive_noun = matches!(prev, "laufwerk" | "drive" | "sandbox" | "container" | "disk" | "platte");
                if !file_like(&tk.raw)
                    && !tk.raw.contains('/')
                    && !tk.raw.contains(' ')
                    && (NAME_MARKERS.contains(&prev) || (drive_noun && matches!(prev2, "als" | "as")))
                {
                    let n = clean_name(&tk.raw);
                    if !n.is_empty() {
                        list.push(ent("name", json!(n), i, i + 1));
                    }
                }
                if file_like(&tk.raw) || tk.raw.contains('/') {
                    list.push(ent("path", json!(tk.raw), i, i + 1));
                }
                i += 1;
                continue;
            }
            // Object names, exact.
            for (kind, names) in [
                ("sandbox", &sandboxes),
                ("drive", &drives),
                ("template", &known.templates),
                ("task", &known.tasks),
                ("image", &known.images),
            ] {
                if let Some(n) = eq(names) {
                    list.push(ent(kind, json!(n), i, i + 1));
                }
            }
            if list.len() == n0 {
                let dotted = w.contains('.') && w.len() >= 5 && !w.starts_with('.') && !w.contains('/');
                if file_like(&tk.raw) || (dotted && closest(w, known.images.iter(), 1).is_some()) {
                    let tol = if w.len() >= 8 { 2 } else { 1 };
                    match closest(w, known.images.iter(), tol) {
                        Some(img) => {
                            if img.to_lowercase() != w {
                                corrected = corrected.replacen(&tk.raw, img, 1);
                                // A file to be created may be one edit away from an existing one
                                // ("daten.img" beside data.img): it keeps its own name as a path.
                                list.push(Entity {
                                    weak: true,
                                    ..ent("path", json!(tk.raw), i, i + 1)
                                });
                            }
                            list.push(ent("image", json!(img), i, i + 1));
                        }
                        None => list.push(ent("path", json!(tk.raw), i, i + 1)),
                    }
                } else if UNIT_EXT.iter().any(|e| w.len() > e.len() && w.ends_with(e)) {
                    list.push(ent("unit", json!(tk.raw), i, i + 1));
                } else if tk.raw.starts_with("/dev/") {
                    // A host device is never an image CacheOS attaches.
                    list.push(ent("device", json!(tk.raw), i, i + 1));
                } else if tk.raw.contains('/') && tk.raw.len() > 1 {
                    list.push(ent("path", json!(tk.raw), i, i + 1));
                } else if w.len() >= 3
                    && !NOT_TYPOS.contains(&w)
                    && !crate::lang::function_word(w)
                    && !w.chars().any(|c| c.is_ascii_digit())
                    && lookup(i).iter().all(|h| h.distance > 0)
                {
                    // A typo of an object name: exactly one name one edit away.
                    let mut names: Vec<&String> = sandboxes
                        .iter()
                        .chain(&drives)
                        .chain(&known.templates)
                        .chain(&known.tasks)
                        .filter(|n| n.len() >= 3 && n.len().abs_diff(w.len()) <= 1)
                        .collect();
                    // A name of two kinds (sandbox and task "web") is one candidate, not a tie.
                    names.sort();
                    names.dedup();
                    if let Some(n) = closest(w, names.into_iter(), 1) {
                        let n = n.clone();
                        corrected = corrected.replacen(&tk.raw, &n, 1);
                        for (kind, names) in [
                            ("sandbox", &sandboxes),
                            ("drive", &drives),
                            ("template", &known.templates),
                            ("task", &known.tasks),
                        ] {
                            if names.contains(&n) {
                                list.push(ent(kind, json!(n), i, i + 1));
                            }
                        }
                    }
                }
            }
            // "debian-Sandbox": a known name inside a compound (weak: the word stays for the classifier).
            if list.len() == n0 && w.contains('-') && !file_like(w) {
                for part in w.split('-') {
                    for (kind, names) in [("template", &known.templates), ("sandbox", &known.sandboxes)] {
                        if let Some(n) = names.iter().find(|n| n.to_lowercase() == part) {
                            list.push(Entity {
                                weak: true,
                                ..ent(kind, json!(n), i, i + 1)
                            });
                        }
                    }
                }
            }
            // An image named by its stem ("häng ubuntu ein"): weak.
            if w.len() >= 3 && !list[n0..].iter().any(|e| e.kind == "image") {
                let stems: Vec<&String> = known
                    .images
                    .iter()
                    .filter(|img| {
                        let l = img.to_lowercase();
                        let stem = IMAGE_EXT
                            .iter()
                            .find_map(|e| l.strip_suffix(e))
                            .unwrap_or(&l)
                            .to_string();
                        stem == w || (w.len() >= 4 && stem.split(['-', '.', '_']).next() == Some(w))
                    })
                    .collect();
                if stems.len() == 1 {
                    list.push(Entity {
                        weak: true,
                        ..ent("image", json!(stems[0]), i, i + 1)
                    });
                }
            }
            if list.len() > n0 {
                i += 1;
                continue;
            }
            // "der Ordner backup", "the backups folder", "im logs verzeichnis": a sub directory by name.
            let next = toks.get(i + 1).map(|t| t.norm.as_str()).unwrap_or("");
            let folder = |x: &str| {
                matches!(
                    x,
                    "ordner"
                        | "verzeichnis"
                        | "unterordner"
                        | "folder"
                        | "directory"
                        | "dir"
                        | "subfolder"
                        | "subdirectory"
                )
            };
            // "the root dir", "das Wurzelverzeichnis": the drive's top level.
            let root = (folder(prev) || folder(next)) && matches!(w, "root" | "wurzel" | "top" | "top-level" | "haupt")
                || matches!(
                    w,
                    "wurzelverzeichnis"
                        | "hauptverzeichnis"
                        | "rootverzeichnis"
                        | "root-verzeichnis"
                        | "stammverzeichnis"
                        | "root-ordner"
                        | "hauptordner"
                );
            if root {
                list.push(ent("path", json!("/"), i, i + 1));
                i += 1;
                continue;
            }
            // A vocabulary word is a folder's name only between an article and the folder word ("im logs
            // verzeichnis", "the logs folder").
            let article = matches!(
                prev,
                "im" | "in" | "ins" | "the" | "den" | "der" | "das" | "dem" | "des" | "my" | "mein"
            );
            if (folder(prev) || folder(next))
                && !folder(w)
                && !crate::lang::function_word(w)
                && (lookup(i).iter().all(|h| h.distance > 0) || (folder(next) && article))
                && w.chars().all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))
            {
                list.push(Entity {
                    weak: true,
                    ..ent("path", json!(tk.raw), i, i + 1)
                });
                i += 1;
                continue;
            }
            // Builtin entities.
            if let Some((ms, used)) = duration(&toks, i) {
                list.push(ent("duration", json!(ms), i, i + used));
                i += used;
                continue;
            }
            // "max 64 processes", "höchstens 64 Prozesse", "tasks max 200", "max 200 tasks".
            let spelled = number_word(w).filter(|_| !ARTICLES.contains(&w));
            if let Some(n) = slots::number(w).or(spelled).filter(|n| n.fract() == 0.0) {
                let next = toks.get(i + 1).map(|t| t.norm.as_str()).unwrap_or("");
                let before: Vec<&str> = toks[i.saturating_sub(2)..i].iter().map(|t| t.norm.as_str()).collect();
                let proc = |x: &str| {
                    matches!(
                        x,
                        "prozesse"
                            | "prozessen"
                            | "processes"
                            | "tasks"
                            | "tasks_max"
                            | "pids"
                            | "procs"
                            | "prozess"
                            | "process"
                            | "threads"
                            | "aufgaben"
                    )
                };
                if proc(next)
                    || (before.iter().any(|b| proc(b))
                        && before
                            .iter()
                            .any(|b| matches!(*b, "max" | "maximal" | "hoechstens" | "limit" | "bis")))
                {
                    list.push(ent("tasks", json!(n as u64), i, i + if proc(next) { 2 } else { 1 }));
                    i += if proc(next) { 2 } else { 1 };
                    continue;
                }
            }
            if let Some((bytes, used)) = slots::size(&toks, i) {
                list.push(ent("size", json!(bytes), i, i + used));
                i += used;
                continue;
            }
            if let Some((cpu, used)) = slots::cpu(&toks, i) {
                list.push(ent("cpu", json!(cpu), i, i + used));
                i += used;
                continue;
            }
            if let Some(fs) = fs_word(w) {
                list.push(ent("fs", json!(fs), i, i + 1));
            } else if let Some(n) = slots::number(w) {
                list.push(ent("number", json!(n as u64), i, i + 1));
            } else if let Some(n) = number_word(w).filter(|_| !ARTICLES.contains(&w)) {
                // "die letzten zehn Zeilen", "the last five lines": a number word that is not an article.
                list.push(ent("number", json!(n as u64), i, i + 1));
            } else if PRONOUNS.contains(&w) {
                list.push(ent("pronoun", Value::Null, i, i + 1));
            } else if matches!(w, "qcow2" | "qcow") {
                list.push(ent("format", json!("qcow2"), i, i + 1));
            }
            i += 1;
        }
        // An operation named by its dotted name ("audit entries for drive.attach").
        for (i, t) in toks.iter().enumerate() {
            if let Some(info) = cacheos_core::OPERATIONS.iter().find(|o| o.name == t.norm) {
                list.retain(|e| !(e.start == i && e.end == i + 1));
                list.push(ent("operation", json!(info.name), i, i + 1));
            }
        }
        // A new object's name without a marker: an unknown word right after "sandbox"/"container" or a creating
        // verb, or right before "anlegen"/"erstellen" ("erstell eine debian sandbox spielplatz", "create tiny: …",
        // "mini anlegen"). Weak: it fills a name, the classifier still sees the word.
        let taken = |i: usize, list: &[Entity]| list.iter().any(|e| e.start <= i && i < e.end && e.end > 0);
        for i in 0..toks.len() {
            let w = toks[i].norm.as_str();
            let prev = i.checked_sub(1).map(|j| toks[j].norm.as_str()).unwrap_or("");
            let next = toks.get(i + 1).map(|t| t.norm.as_str()).unwrap_or("");
            let noun = |x: &str| {
                matches!(
                    x,
                    "sandbox" | "container" | "box" | "umgebung" | "sandkasten" | "debian-sandbox" | "debian-container"
                )
            };
            let verb = |x: &str| {
                matches!(
                    x,
                    "create"
                        | "make"
                        | "erstelle"
                        | "erstell"
                        | "erzeuge"
                        | "bau"
                        | "baue"
                        | "new"
                        | "neue"
                        | "neuen"
                        | "neues"
                        | "leg"
                        | "lege"
                )
            };
            // "spin up ci", "fire up lab", "set up box1".
            let prev2 = i.checked_sub(2).map(|j| toks[j].norm.as_str()).unwrap_or("");
            let phrasal = prev == "up" && matches!(prev2, "spin" | "fire" | "set" | "start" | "bring" | "boot");
            let after_verb = matches!(
                next,
                "anlegen" | "erstellen" | "erzeugen" | "einrichten" | "bauen" | "aufsetzen"
            );
            // "lab: debian, 1 core", "web2 aus host template": a name first, then its description.
            let leading = i == 0
                && hits[i].iter().all(|h| h.distance > 0)
                && (text
                    .trim_start()
                    .get(toks[i].raw.len()..)
                    .is_some_and(|r| r.starts_with(':'))
                    || matches!(
                        next,
                        "aus" | "from" | "off" | "auf" | "based" | "basierend" | "vom" | "von" | "on" | "using"
                    ));
            let fuzzy_noun = prev.len() >= 6 && (dl(prev, "sandbox") <= 1 || dl(prev, "container") <= 1);
            if !(noun(prev) || verb(prev) || phrasal || after_verb || leading || fuzzy_noun)
                || toks[i].quoted
                || taken(i, &list)
            {
                continue;
            }
            // A vocabulary word is a name too where nothing else can be meant: right after the noun or the verb
            // and before a clause boundary ("eine sandbox net mit internet", "container worker anlegen").
            let boundary = toks[i].raw.ends_with([',', ':'])
                || matches!(
                    next,
                    "" | "mit"
                        | "with"
                        | "und"
                        | "and"
                        | "anlegen"
                        | "erstellen"
                        | "an"
                        | "die"
                        | "der"
                        | "das"
                        | "that"
                        | "which"
                        | "auf"
                        | "on"
                        | "fuer"
                        | "for"
                        | "capped"
                        | "limited"
                        | "using"
                        | "from"
                        | "basierend"
                        | "based"
                        | "einrichten"
                        | "bauen"
                        | "von"
                        | "ohne"
                        | "without"
                );
            let vocabulary_ok = hits[i].is_empty() || ((noun(prev) || verb(prev)) && boundary);
            let plain = w.len() >= 2
                && w.len() <= 32
                && w.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && w.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && vocabulary_ok
                && fs_word(w).is_none()
                && !known.templates.iter().any(|t| t.to_lowercase() == w)
                && !crate::lang::function_word(w)
                && !NOT_NAMES.contains(&w)
                && !noun(w);
            if plain {
                list.push(Entity {
                    weak: true,
                    ..ent("newname", json!(clean_name(&toks[i].raw)), i, i + 1)
                });
            }
        }
        let words: Vec<&str> = toks.iter().map(|t| t.norm.as_str()).collect();
        let has = |ws: &[&str]| words.iter().any(|w| ws.contains(w));
        // "persistenz für data aus", "auto-attach off": a trailing off/aus switches something off.
        let trailing_off = words.last().is_some_and(|w| matches!(*w, "aus" | "off"));
        let negated = has(NEGATIONS) || trailing_off;
        // A word that is a new object's name ("namens net") does not ask for a network.
        let named: Vec<bool> = (0..toks.len())
            .map(|i| {
                list.iter()
                    .any(|e| matches!(e.kind, "name" | "newname") && e.start <= i && i < e.end)
            })
            .collect();
        let mut flag = |kind: &'static str, value: Value| list.push(ent(kind, value, 0, 0));
        let net = words.iter().enumerate().any(|(i, w)| {
            !named[i]
                && (lookup(i)
                    .iter()
                    .any(|h| h.concept == crate::lexicon::Concept::Network && h.distance == 0)
                    || w.starts_with("internet")
                    || w.starts_with("netzwerk")
                    || *w == "networked")
        });
        if net {
            flag(
                if negated { "no-network" } else { "network" },
                json!(if negated { "none" } else { "nat" }),
            );
        }
        if negated {
            flag("negation", json!(true));
        }
        if words.iter().enumerate().any(|(i, w)| {
            lookup(i)
                .iter()
                .any(|h| h.concept == crate::lexicon::Concept::Writable && h.distance == 0)
                || matches!(
                    *w,
                    "beschreibbar" | "schreibbare" | "beschreibbare" | "read-write" | "write" | "writing" | "aenderbar"
                )
        }) {
            flag("writable", json!(true));
        }
        if has(&[
            "read/write",
            "rw",
            "lesen/schreiben",
            "schreibzugriff",
            "schreibrechte",
            "schreibrecht",
        ]) {
            flag("writable", json!(true));
        }
        // "und häng es gleich ein": the separable verb with its particle later on.
        let separable_attach = words.iter().enumerate().any(|(i, w)| {
            matches!(
                *w,
                "haeng" | "haenge" | "haengs" | "haengst" | "haengen" | "binde" | "bind"
            ) && words[i + 1..].iter().any(|x| matches!(*x, "ein" | "an"))
        });
        if (has(ATTACH_WORDS) || separable_attach) && !negated {
            flag("attach-flag", json!(true));
        }
        if let Some(op) = audited_operation(&words, known) {
            flag("operation", json!(op));
        }
        if has(&["schreibgeschuetzt", "readonly", "read-only", "nur-lesen", "lesend"]) {
            flag("readonly", json!(true));
        }
        if has(&[
            "force",
            "forced",
            "gewalt",
            "erzwingen",
            "erzwinge",
            "zwangsweise",
            "forcibly",
            "hart",
            "hard",
            "busy",
            "stuck",
            "beschaeftigt",
            "blockiert",
            "klemmt",
            "erzwing",
            "egal",
            "regardless",
        ]) {
            flag("force", json!(true));
        }
        if has(&[
            "ausfuehrbar",
            "ausfuehren",
            "executable",
            "exec",
            "programme",
            "programs",
            "noexec",
            "binaries",
            "binary",
            "binaries",
            "executables",
            "ausfuehrbare",
            "binaerdateien",
        ]) {
            flag("exec-flag", json!(true));
        }
        if has(&[
            "verweigert",
            "verweigerte",
            "denied",
            "refused",
            "abgelehnt",
            "abgelehnte",
            "forbidden",
        ]) {
            flag("outcome", json!("denied"));
        } else if has(&[
            "fehlgeschlagen",
            "fehlgeschlagene",
            "fehlgeschlagenen",
            "failed",
            "failures",
            "errors",
            "fehler",
            "gescheitert",
            "schiefgegangen",
            "schief",
            "misslungen",
            "wrong",
            "unsuccessful",
            "fehlerhaft",
            "fehlerhafte",
        ]) {
            flag("outcome", json!("error"));
        } else if has(SUCCEEDED) {
            flag("outcome", json!("ok"));
        }
        // An endpoint URL ("http://192.168.1.5:8080/v1"): the tokeniser splits it at "://"; it is one value, and no
        // path or name inside it is an entity of its own.
        for (i, t) in toks.iter().enumerate() {
            if !matches!(t.norm.as_str(), "http" | "https") || !toks.get(i + 1).is_some_and(|n| n.raw.starts_with("//"))
            {
                continue;
            }
            let url = format!("{}:{}", t.raw, toks[i + 1].raw)
                .trim_end_matches(['.', ',', '!', '?', ')'])
                .to_string();
            list.retain(|x| x.end == 0 || x.end <= i || x.start >= i + 2);
            list.push(ent("url", json!(url), i, i + 2));
        }
        // "ls in wbe": the command shows only once the sandbox's name is corrected (one word for one word, so the
        // token positions stay).
        if corrected != text && !list.iter().any(|e| e.kind == "command") {
            let ctoks = tokens(&corrected);
            if ctoks.len() == toks.len() {
                if let Some((argv, s, e)) = command(&ctoks, &corrected, known, session) {
                    list.retain(|x| x.end == 0 || x.end <= s || x.start >= e);
                    list.push(ent("command", json!(argv), s, e));
                }
            }
        }
        list.sort_by_key(|e| (e.end == 0, e.start));
        Entities { toks, list, corrected }
    }

    /// The first entity of `kind`, strong before weak.
    pub fn first(&self, kind: &str) -> Option<&Entity> {
        let mut of = self.list.iter().filter(|e| e.kind == kind);
        let all: Vec<&Entity> = of.by_ref().collect();
        all.iter().find(|e| !e.weak).or(all.first()).copied()
    }

    /// The tokens for the classifier: entities replaced by typed placeholders (`@sandbox`, `@image`,
    /// `@sandbox|task` for a name of both kinds, `@duration`, `@size` …); other words as they are.
    pub fn placeholders(&self) -> Vec<String> {
        let mut out = Vec::with_capacity(self.toks.len());
        let mut i = 0;
        while i < self.toks.len() {
            let here: Vec<&Entity> = self
                .list
                .iter()
                .filter(|e| e.start == i && e.end > i && !e.weak && e.kind != "pronoun")
                .collect();
            if here.is_empty() {
                let w = &self.toks[i].norm;
                let typo = (!self.toks[i].quoted && !crate::lang::function_word(w))
                    .then(|| crate::lexicon::correct(w))
                    .flatten();
                out.push(typo.map(str::to_string).unwrap_or_else(|| w.clone()));
                i += 1;
                continue;
            }
            let mut kinds: Vec<&str> = here.iter().map(|e| e.kind).collect();
            kinds.sort_unstable();
            kinds.dedup();
            out.push(format!("@{}", kinds.join("|")));
            i = here.iter().map(|e| e.end).max().unwrap_or(i + 1);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn appliance() -> Known {
        Known {
            tasks: vec!["dbus".into(), "metrics".into(), "web".into()],
            now_ms: 10_000_000_000,
            drives: vec!["data".into()],
            images: [
                "debian.iso",
                "ubuntu-24.04.iso",
                "data.img",
                "alpine.qcow2",
                "disk.vmdk",
                "old.vdi",
                "win.vhdx",
            ]
            .map(String::from)
            .to_vec(),
            sandboxes: vec!["web".into(), "build".into()],
            templates: vec!["host".into(), "debian".into()],
        }
    }

    fn find(s: &str) -> Entities {
        Entities::find(s, &appliance(), &Session::default())
    }

    #[test]
    fn object_names_with_typos() {
        let e = find("häng debain.iso ein");
        assert_eq!(e.first("image").unwrap().value, "debian.iso");
        assert_eq!(e.corrected, "häng debian.iso ein");
        assert_eq!(find("attach dsik.vmdk").first("image").unwrap().value, "disk.vmdk");
        assert_eq!(find("stoppe biuld").first("sandbox").unwrap().value, "build");
        assert!(find("attach foo.iso").first("image").is_none());
        assert_eq!(find("attach foo.iso").first("path").unwrap().value, "foo.iso");
        assert_eq!(find("stoppe web").placeholders(), vec!["stoppe", "@sandbox|task"]);
    }

    #[test]
    fn builtins() {
        let e = find("was war in der letzten Stunde");
        assert_eq!(e.first("duration").unwrap().value, 3_600_000);
        assert_eq!(
            find("over the last 30 minutes").first("duration").unwrap().value,
            1_800_000
        );
        assert_eq!(
            find("der letzten zehn Minuten").first("duration").unwrap().value,
            600_000
        );
        assert_eq!(find("mit einem halben Kern").first("cpu").unwrap().value, 0.5);
        assert_eq!(find("mit halber Kern").first("cpu").unwrap().value, 0.5);
        assert_eq!(find("mit 2 GB RAM").first("size").unwrap().value, 2u64 << 30);
        assert_eq!(find("eine sandbox namens lab").first("name").unwrap().value, "lab");
        assert_eq!(find("a sandbox called dev").first("name").unwrap().value, "dev");
        assert_eq!(
            find("einen neuen container, nenn ihn sauber")
                .first("name")
                .unwrap()
                .value,
            "sauber"
        );
        assert_eq!(
            find("a fresh container, name it clean").first("name").unwrap().value,
            "clean"
        );
        assert_eq!(find("mit ext4").first("fs").unwrap().value, "ext4");
        assert_eq!(find("mit Internet").first("network").unwrap().value, "nat");
        assert_eq!(find("ohne Netzwerk").first("no-network").unwrap().value, "none");
        let e = find("run 'uname -a' inside web");
        assert_eq!(e.first("command").unwrap().value, json!(["uname", "-a"]));
        assert_eq!(e.first("sandbox").unwrap().value, "web");
        let e = find("was sagt uname -a in web");
        assert_eq!(e.first("command").unwrap().value, json!(["uname", "-a"]));
        assert_eq!(e.placeholders(), vec!["was", "sagt", "@command", "in", "@sandbox|task"]);
    }
}
