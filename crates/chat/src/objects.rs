//! Drive and sandbox intents: which of the two an utterance is about (named, described, or referred to by a
//! pronoun), the slots of their operations (names, image files and paths, sizes, CPU, writable, network, template,
//! the command of `sandbox.exec` as an argv) and the operation or question that follows.

use cacheos_core::drive::manager::name_from_path;
use cacheos_core::drive::{
    AttachArgs, CommitArgs, CreateArgs, DetachArgs, DriveRef, FilesArgs, NewFormat, PersistArgs,
};
use cacheos_core::sandbox::ops::{
    BindArgs, SandboxCreateArgs, SandboxExecArgs, SandboxLogsArgs, SandboxRef, SandboxRemoveArgs, SandboxRunArgs,
    SandboxShellArgs,
};
use cacheos_core::sandbox::Network as Net;
use cacheos_core::Operation;

use crate::engine::{t, Engine, Interpretation, Known, Lang, Parsed, Session};
use crate::lexicon::{lookup, Concept};
use crate::normalize::fold;
use crate::slots;

/// What an utterance is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Domain {
    /// Virtual drives and image files.
    Drive,
    /// Sandboxes.
    Sandbox,
}

const IMAGE_EXT: &[&str] = &[
    ".iso", ".img", ".raw", ".qcow2", ".vmdk", ".vdi", ".vhdx", ".vhd", ".bin",
];
/// Words that refer back to the last drive or sandbox talked about.
const PRONOUNS: &[&str] = &[
    "sie", "es", "ihn", "ihm", "ihr", "it", "them", "this", "that", "diese", "dieses", "diesen", "dieser",
];
/// Definite articles: "die Sandbox" without a name is the one talked about.
const ARTICLES: &[&str] = &["das", "die", "den", "der", "the"];
const NAME_MARKERS: &[&str] = &["als", "as", "named", "called", "namens", "name"];
const EXEC_MARKERS: &[&str] = &["in", "im", "on", "inside", "auf"];
const NEGATIONS: &[&str] = &[
    "ohne", "without", "no", "kein", "keine", "keinem", "keinen", "nicht", "not", "offline", "nie", "never",
];
const FILLERS: &[&str] = &[
    "bitte",
    "please",
    "mal",
    "den",
    "the",
    "befehl",
    "command",
    "kommando",
    "der",
    "die",
    "das",
    "sandbox",
    "container",
    "umgebung",
    "einem",
    "einer",
    "einen",
    "a",
    "an",
];

/// Separable verb particles and fillers that may close a sentence after a pronoun.
const PARTICLES: &[&str] = &[
    "aus", "ein", "ab", "an", "neu", "hoch", "runter", "weg", "bitte", "jetzt", "auch", "wieder", "please", "now",
    "too",
];
/// Words that follow "sandbox" without being its name.
const NOT_NAMES: &[&str] = &[
    "mit", "with", "are", "is", "ist", "sind", "von", "of", "for", "fuer", "und", "and", "an", "aus", "ab", "ein",
    "neu", "hoch", "darin", "in", "on", "auf", "named", "called", "namens", "als", "as", "laufen", "running", "from",
    "aus", "zu", "to", "wieder", "again", "bitte", "please", "auch", "also", "nicht", "not", "noch", "still",
];

fn file_like(s: &str) -> bool {
    let l = s.to_lowercase();
    s.contains('/') || IMAGE_EXT.iter().any(|e| l.len() > e.len() && l.ends_with(e))
}

/// A name as the core accepts it: lowercase letters, digits and dashes.
fn clean_name(s: &str) -> String {
    let s: String = s
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    s.trim_matches('-').chars().take(32).collect()
}

/// Words asking for an interactive shell in a sandbox.
const SHELL_WORDS: &[&str] = &[
    "shell",
    "terminal",
    "konsole",
    "kommandozeile",
    "einloggen",
    "anmelden",
    "login",
    "log",
];

/// Names, paths and references found in an utterance.
#[derive(Debug, Default)]
pub(crate) struct Refs {
    drive: Option<String>,
    sandbox: Option<String>,
    path: Option<String>,
    new_name: Option<String>,
    pronoun: bool,
    article: bool,
    persist_phrase: bool,
    exec: Option<(Option<String>, Vec<String>)>,
}

impl Refs {
    pub(crate) fn find(p: &Parsed, text: &str, known: &Known, session: &Session) -> Refs {
        let mut r = Refs::default();
        let eq = |list: &[String], w: &str| list.iter().find(|n| n.to_lowercase() == w).cloned();
        for (i, tk) in p.toks.iter().enumerate() {
            let prev = i.checked_sub(1).map(|j| p.toks[j].norm.as_str()).unwrap_or("");
            if NAME_MARKERS.contains(&prev) && r.new_name.is_none() && lookup(&tk.norm).is_empty() {
                r.new_name = Some(clean_name(&tk.raw)).filter(|n| !n.is_empty());
                if let Some(d) = eq(&known.drives, &tk.norm) {
                    r.drive.get_or_insert(d);
                }
                continue;
            }
            if r.drive.is_none() {
                r.drive = eq(&known.drives, &tk.norm);
            }
            if r.sandbox.is_none() {
                r.sandbox = eq(&known.sandboxes, &tk.norm);
            }
            if r.path.is_none()
                && (file_like(&tk.raw)
                    || (tk.quoted && !known.sandboxes.contains(&tk.norm) && !known.drives.contains(&tk.norm)))
            {
                r.path = Some(tk.raw.clone());
            }
            if PRONOUNS.contains(&tk.norm.as_str()) {
                r.pronoun = true;
            }
            if ARTICLES.contains(&tk.norm.as_str()) {
                r.article = true;
                // "häng das aus", "lösche die": an article with no noun after it stands for the thing itself.
                if p.toks[i + 1..].iter().all(|t| PARTICLES.contains(&t.norm.as_str())) {
                    r.pronoun = true;
                }
            }
            let next = p.toks.get(i + 1).map(|t| t.norm.as_str()).unwrap_or("");
            if matches!(tk.norm.as_str(), "beim" | "at" | "after" | "nach" | "on")
                && matches!(
                    next,
                    "start" | "boot" | "booten" | "systemstart" | "neustart" | "reboot" | "startup" | "hochfahren"
                )
            {
                r.persist_phrase = true;
            }
        }
        if p.concepts.contains(&Concept::Exec) {
            r.exec = exec_parts(text, known, session).map(|(t, argv)| {
                let argv = tidy_argv(argv);
                (t, if argv.len() > 1 { cut_at_command_end(argv) } else { argv })
            });
            if r.exec.as_ref().is_some_and(|(_, a)| a.is_empty() || only_a_shell(a)) {
                r.exec = None;
            }
        }
        r
    }
}

/// Splits text into words like a shell would, without a shell: whitespace separates, quotes group (and are
/// removed). Returns each word and whether it was quoted.
pub fn shell_words(text: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let (mut quoted, mut in_word) = (false, false);
    let mut quote: Option<char> = None;
    let chars: Vec<char> = text.chars().take(4096).collect();
    for (i, &c) in chars.iter().enumerate() {
        // An apostrophe between letters ("there's", "doesn't") is part of the word, not a quote.
        let apostrophe = c == '\''
            && i > 0
            && chars[i - 1].is_alphanumeric()
            && chars.get(i + 1).is_some_and(|x| x.is_alphanumeric());
        match quote {
            Some(q) if c == q || (q == '“' && c == '"') => quote = None,
            Some(_) => cur.push(c),
            None if apostrophe => {
                cur.push(c);
                in_word = true;
            }
            None if matches!(c, '"' | '\'' | '`' | '„' | '“' | '«') => {
                quote = Some(match c {
                    '„' => '“',
                    '“' => '”',
                    '«' => '»',
                    c => c,
                });
                quoted = true;
                in_word = true;
            }
            None if c.is_whitespace() => {
                if in_word {
                    out.push((std::mem::take(&mut cur), quoted));
                }
                quoted = false;
                in_word = false;
            }
            None => {
                cur.push(c);
                in_word = true;
            }
        }
        if out.len() >= 256 {
            return out;
        }
    }
    if in_word {
        out.push((cur, quoted));
    }
    out
}

/// The target and argv of "führe `ls -la` in box aus" / "run uname -a in py": never a shell string.
fn exec_parts(text: &str, known: &Known, session: &Session) -> Option<(Option<String>, Vec<String>)> {
    let words = shell_words(text);
    let folded: Vec<String> = words
        .iter()
        .map(|(w, q)| {
            if *q {
                String::new()
            } else {
                fold(w).trim_end_matches(['?', '!', '.', ',', ':', ';']).to_string()
            }
        })
        .collect();
    let verb = folded.iter().position(|w| {
        matches!(
            w.as_str(),
            "fuehre" | "fuehr" | "ausfuehren" | "ausfuehre" | "run" | "execute" | "exec"
        )
    })?;
    // The target: a known sandbox, a pronoun after "in"/"on", or the word after the last "in"/"on".
    let known_at = folded
        .iter()
        .rposition(|w| known.sandboxes.iter().any(|s| s.to_lowercase() == *w));
    let marker_at = folded.iter().rposition(|w| EXEC_MARKERS.contains(&w.as_str()));
    let mut target = None;
    let mut cut = words.len();
    let mut after = words.len();
    if let Some(j) = known_at {
        target = Some(folded[j].clone());
        cut = match j.checked_sub(1) {
            Some(m) if EXEC_MARKERS.contains(&folded[m].as_str()) => m,
            _ => j,
        };
        // "in der Sandbox py": the marker may sit a few words earlier.
        if let Some(m) = marker_at.filter(|&m| m < j && folded[m + 1..j].iter().all(|w| FILLERS.contains(&w.as_str())))
        {
            cut = m;
        }
        after = j + 1;
    } else if let Some(m) = marker_at.filter(|&m| m > verb || verb + 1 == words.len()) {
        let mut j = m + 1;
        while j < words.len() && FILLERS.contains(&folded[j].as_str()) {
            j += 1;
        }
        if j < words.len() {
            let w = &folded[j];
            target = if PRONOUNS.contains(&w.as_str()) || matches!(w.as_str(), "ihr" | "there" | "dort" | "da" | "drin")
            {
                session.last_sandbox.clone()
            } else {
                // "in der web-sandbox": the known name inside the compound.
                let stripped = ["-sandbox", "-container", "-box", "-kiste"]
                    .iter()
                    .find_map(|s| w.strip_suffix(s))
                    .filter(|n| known.sandboxes.iter().any(|s| s.to_lowercase() == *n));
                Some(clean_name(stripped.unwrap_or(w)))
                    .filter(|n| !n.is_empty() && !crate::lang::function_word(n) && !NOT_NAMES.contains(&n.as_str()))
            };
            cut = m;
            after = j + 1;
        }
    }
    if target.is_none() {
        if let Some(j) = folded
            .iter()
            .position(|w| matches!(w.as_str(), "darin" | "drin" | "therein"))
        {
            target = session.last_sandbox.clone();
            cut = j;
            after = j + 1;
        }
    }
    let quoted: Vec<&String> = words.iter().filter(|(_, q)| *q).map(|(w, _)| w).collect();
    let argv: Vec<String> = if let Some(q) = quoted.first() {
        shell_words(q).into_iter().map(|(w, _)| w).collect()
    } else {
        let skip_front = |ws: &[(String, bool)], fs: &[String]| -> Vec<String> {
            let start = fs
                .iter()
                .position(|w| !FILLERS.contains(&w.as_str()))
                .unwrap_or(fs.len());
            ws[start..].iter().map(|(w, _)| w.clone()).collect()
        };
        let (a, b) = (verb + 1, cut.max(verb + 1));
        let mut argv = skip_front(&words[a..b], &folded[a..b]);
        if argv.is_empty() && after < words.len() {
            let end = folded
                .iter()
                .rposition(|w| !matches!(w.as_str(), "aus" | "ausfuehren" | "bitte" | "please" | ""))
                .map(|e| e + 1)
                .unwrap_or(words.len());
            if verb > after && verb < end {
                argv = skip_front(&words[after..verb], &folded[after..verb]);
            } else if end > after {
                argv = skip_front(&words[after..end], &folded[after..end]);
            }
        }
        // A trailing question mark or full stop is punctuation, not part of the command.
        if let Some(last) = argv.last_mut() {
            let trimmed = last.trim_end_matches(['?', '!']).to_string();
            *last = trimmed;
            if last.is_empty() {
                argv.pop();
            }
        }
        argv
    };
    (!argv.is_empty()).then_some((target, argv))
}

/// Whether `word` (folded) names a program of the command gazetteer (`ping`, `uname`, `df` …).
pub(crate) fn is_program(word: &str) -> bool {
    COMMANDS.contains(&word)
}

/// Programs people name when they want something run in a sandbox ("git status in build", "mach in web ein apt
/// update"): a word from this list starts a command even without a quote or an exec verb.
const COMMANDS: &[&str] = &[
    "ls",
    "cat",
    "echo",
    "df",
    "uname",
    "whoami",
    "hostname",
    "printenv",
    "ps",
    "htop",
    "git",
    "apt",
    "apt-get",
    "apt-cache",
    "dpkg",
    "pip",
    "pip3",
    "python",
    "python3",
    "node",
    "npm",
    "npx",
    "curl",
    "wget",
    "ping",
    "ip",
    "ss",
    "netstat",
    "systemctl",
    "journalctl",
    "touch",
    "mkdir",
    "rm",
    "cp",
    "mv",
    "ln",
    "chmod",
    "chown",
    "tar",
    "gzip",
    "grep",
    "nproc",
    "lscpu",
    "lsblk",
    "uptime",
    "cargo",
    "rustc",
    "gcc",
    "g++",
    "go",
    "java",
    "javac",
    "nginx",
    "bash",
    "sh",
    "sleep",
    "stat",
    "sed",
    "awk",
    "pwd",
    "ldd",
    "openssl",
    "ruby",
    "perl",
    "php",
    "redis-cli",
    "psql",
    "mysql",
    "cmake",
    "dmesg",
    "lsb_release",
    "getent",
    "nslookup",
    "dig",
    "traceroute",
    "locale",
    "timedatectl",
    "hostnamectl",
    "useradd",
    "passwd",
    "wc",
    "sort",
    "tail",
    "head",
    "env",
    "id",
    "free",
    "top",
    "date",
    "make",
    "which",
    "du",
    "find",
    "kill",
    "file",
    "mount",
    "nano",
    "vim",
    "vi",
    "less",
    "unzip",
    "zip",
    "rsync",
    "ssh",
];
/// Commands that are also ordinary words ("free memory", "top of the list", "du bist", "make a sandbox"): they
/// start a command only at the beginning, after "mach"/"run"-like words, or followed by an argument-like word.
const AMBIGUOUS_COMMANDS: &[&str] = &[
    "env", "id", "free", "top", "date", "make", "which", "du", "find", "kill", "file", "mount", "less", "sort", "head",
    "tail", "go", "ip", "ss", "sh", "zip", "ssh", "java", "node", "python", "git",
];
/// Words that end an unquoted command ("ls /tmp in web", "make -j4 laufen lassen", "ls / once").
const COMMAND_ENDS: &[&str] = &[
    "in",
    "im",
    "inside",
    "innerhalb",
    "on",
    "auf",
    "and",
    "und",
    "then",
    "dann",
    "danach",
    "afterwards",
    "once",
    "einmal",
    "laufen",
    "lassen",
    "ausfuehren",
    "ausfuehre",
    "aus",
    "testen",
    "drin",
    "darin",
    "there",
    "dort",
    "please",
    "bitte",
    "for",
    "fuer",
    "me",
    "mir",
    "somewhere",
    "irgendwo",
    "a",
    "an",
    "the",
    "eine",
    "einer",
    "einem",
    "einen",
    "der",
    "die",
    "das",
    "den",
    "dem",
    "within",
    "from",
    "via",
    "machen",
    "mach",
    "run",
    "ran",
    "start",
    "starten",
    "execute",
    "laeuft",
    "schnell",
    "quickly",
    "kurz",
    "mal",
    "sandbox",
    "container",
    "box",
];

fn arg_like(w: &str) -> bool {
    w.starts_with('-')
        || w.contains('/')
        || w.contains('=')
        || w.chars().next().is_some_and(|c| c.is_ascii_digit())
        || w.starts_with('~')
        || w.starts_with('$')
}

/// The first program of [`COMMANDS`] in the words and the words that follow it up to a word of
/// [`COMMAND_ENDS`], a known sandbox or a comma: the unquoted command of "git status in build".
fn gazetteer_command(
    words: &[(String, bool)],
    folded: &[String],
    is_sandbox: &dyn Fn(&str) -> bool,
) -> Option<Vec<String>> {
    let installs = |w: &str| {
        matches!(
            w,
            "installiere"
                | "installieren"
                | "install"
                | "installs"
                | "brauche"
                | "need"
                | "want"
                | "moechte"
                | "will"
                | "entferne"
                | "remove"
                | "uninstall"
                | "deinstalliere"
                | "version"
                | "lizenz"
                | "license"
                | "paket"
                | "package"
        )
    };
    // "which python is in web? run python3 --version": a program right after an exec verb wins over an earlier
    // word that is only sometimes a program.
    let after_verb = (1..words.len()).find(|&k| {
        !words[k].1
            && COMMANDS.contains(&folded[k].as_str())
            && !is_sandbox(&folded[k])
            && matches!(
                folded[k - 1].as_str(),
                "run" | "execute" | "exec" | "fuehre" | "fuehr" | "starte" | "ausfuehren"
            )
    });
    let first = (0..words.len()).find(|&k| {
        let w = folded[k].as_str();
        if words[k].1 || !COMMANDS.contains(&w) || is_sandbox(w) {
            return false;
        }
        let prev = k.checked_sub(1).map(|j| folded[j].as_str()).unwrap_or("");
        if installs(prev) || (k >= 2 && installs(&folded[k - 2])) {
            return false;
        }
        if !AMBIGUOUS_COMMANDS.contains(&w) {
            return true;
        }
        let next = folded.get(k + 1).map(|x| x.as_str()).unwrap_or("");
        // At the start: "free -m", "which python3", "git status", "date" — not "which templates are there".
        let opens = k == 0
            && (next.is_empty()
                || COMMAND_ENDS.contains(&next)
                || is_sandbox(next)
                || COMMANDS.contains(&next)
                || (matches!(w, "git" | "go" | "make") && !crate::lang::function_word(next)));
        opens
            || arg_like(words.get(k + 1).map(|x| x.0.as_str()).unwrap_or(""))
            || matches!(
                prev,
                "mach" | "mache" | "do" | "ein" | "run" | "execute" | "drin:" | "then" | "jetzt" | "now"
            )
            || (matches!(next, "in" | "im" | "inside" | "on" | "drin" | "darin") && w.len() > 2)
    });
    let start = match (first, after_verb) {
        (Some(f), Some(v)) if v > f && AMBIGUOUS_COMMANDS.contains(&folded[f].as_str()) => v,
        (Some(f), _) => f,
        (None, v) => v?,
    };
    let mut argv = vec![words[start].0.clone()];
    let mut k = start + 1;
    if words[start].0.ends_with(',') {
        k = words.len();
    }
    while k < words.len() {
        let (w, f) = (&words[k].0, folded[k].as_str());
        if !words[k].1 && !arg_like(w) && (COMMAND_ENDS.contains(&f) || is_sandbox(f) || f.is_empty()) {
            break;
        }
        argv.push(w.clone());
        if w.ends_with(',') || w.ends_with(';') {
            break;
        }
        k += 1;
    }
    for a in argv.iter_mut() {
        *a = a.trim_end_matches([',', ';', '?', '!']).to_string();
    }
    if let Some(last) = argv.last_mut() {
        if last.ends_with('.') && !last.contains('/') {
            *last = last.trim_end_matches('.').to_string();
        }
    }
    argv.retain(|w| !w.is_empty());
    (!argv.is_empty()).then_some(argv)
}

/// "bash", "a shell", "bash prompt": asking for an interactive shell, not for a command.
fn only_a_shell(argv: &[String]) -> bool {
    !argv.is_empty()
        && argv.iter().all(|w| {
            matches!(
                fold(w).as_str(),
                "bash"
                    | "sh"
                    | "zsh"
                    | "shell"
                    | "terminal"
                    | "konsole"
                    | "prompt"
                    | "login"
                    | "root-shell"
                    | "ne"
                    | "a"
                    | "an"
                    | "eine"
                    | "interaktive"
                    | "interaktiv"
                    | "interactive"
            )
        })
}

/// Cuts a command that starts with a known program at the first word that ends a command ("touch /tmp/test eine
/// datei an" → touch /tmp/test).
fn cut_at_command_end(argv: Vec<String>) -> Vec<String> {
    let Some(first) = argv.first() else { return argv };
    if !COMMANDS.contains(&fold(first).as_str()) {
        return argv;
    }
    let mut out = vec![first.clone()];
    for w in &argv[1..] {
        let f = fold(w).trim_end_matches([',', '.', '?', '!']).to_string();
        if !arg_like(w) && COMMAND_ENDS.contains(&f.as_str()) {
            break;
        }
        let ends = w.ends_with(',');
        out.push(w.trim_end_matches(',').to_string());
        if ends {
            break;
        }
    }
    out
}

/// The command of an utterance that runs one ("run X inside Y", "führe X in Y aus", "was sagt X in Y", "what does
/// X say in Y", a quoted string after such a verb): its argv, never a shell string.
pub(crate) fn command_argv(text: &str, known: &Known, session: &Session) -> Option<Vec<String>> {
    let argv = command_argv_raw(text, known, session)?;
    let argv = tidy_argv(argv);
    let argv = if argv.len() > 1 { cut_at_command_end(argv) } else { argv };
    if only_a_shell(&argv) {
        return None;
    }
    (!argv.is_empty()).then_some(argv)
}

/// Drops exec verbs in front and trailing clauses ("and then delete it", "für mich", "aus") from a command.
fn tidy_argv(mut argv: Vec<String>) -> Vec<String> {
    while argv.first().is_some_and(|w| {
        matches!(
            fold(w).trim_end_matches([',', ':']),
            "run"
                | "execute"
                | "exec"
                | "fuehre"
                | "fuehr"
                | "ausfuehren"
                | "mal"
                | "bitte"
                | "please"
                | "den"
                | "the"
                | "befehl"
                | "command"
        )
    }) {
        argv.remove(0);
    }
    let stop = argv.iter().enumerate().position(|(i, w)| {
        let f = fold(w);
        let next = argv.get(i + 1).map(|x| fold(x)).unwrap_or_default();
        (matches!(f.as_str(), "and" | "und" | "then" | "dann")
            && matches!(
                next.as_str(),
                "then" | "dann" | "danach" | "delete" | "remove" | "loesche" | "entferne" | "tear" | "wirf" | "throw"
            ))
            || matches!(f.as_str(), "afterwards" | "danach")
    });
    if let Some(at) = stop {
        argv.truncate(at);
    }
    while argv.last().is_some_and(|w| {
        matches!(
            fold(w).trim_end_matches(['?', '!', '.', ',']),
            "aus"
                | "ausfuehren"
                | "laufen"
                | "lassen"
                | "bitte"
                | "please"
                | "nach"
                | "von"
                | "from"
                | "auf"
                | "on"
                | "im"
                | "inside"
                | "for"
                | "me"
                | "fuer"
                | "mich"
                | "say"
                | "print"
                | "output"
                | "return"
                | "zurueck"
                | "so"
                | "da"
                | "dazu"
                | "and"
                | "und"
                | ""
        )
    }) {
        argv.pop();
    }
    if let Some(last) = argv.last_mut() {
        let t = last.trim_end_matches(['?', '!', ',']).to_string();
        *last = t;
    }
    argv.retain(|w| !w.is_empty());
    argv
}

fn command_argv_raw(text: &str, known: &Known, session: &Session) -> Option<Vec<String>> {
    let not_a_command = |argv: &[String]| {
        let first = argv.first().map(|w| fold(w)).unwrap_or_default();
        matches!(
            first.as_str(),
            "a" | "an"
                | "ein"
                | "eine"
                | "einen"
                | "the"
                | "die"
                | "das"
                | "den"
                | "sandbox"
                | "container"
                | "it"
                | "es"
                | "sie"
                | "uns"
                | "mir"
                | "me"
                | "up"
                | "hoch"
        ) || first.chars().next().is_some_and(|c| c.is_ascii_digit())
            || argv
                .iter()
                .any(|w| matches!(fold(w).as_str(), "sandbox" | "container" | "sandboxen" | "vorlage"))
    };
    let words = shell_words(text);
    let folded: Vec<String> = words
        .iter()
        .map(|(w, q)| {
            if *q {
                String::new()
            } else {
                fold(w).trim_end_matches(['?', '!', '.', ',', ':']).to_string()
            }
        })
        .collect();
    let is_sandbox =
        |w: &str| known.sandboxes.iter().any(|s| s.to_lowercase() == w) || session.last_sandbox.as_deref() == Some(w);
    // A quoted string after a known sandbox or an exec verb is the command.
    if let Some(qi) = words.iter().position(|(_, q)| *q) {
        // "python3 -c 'print(1)'": the quote is an argument of a program named before it.
        let before_program = (0..qi).any(|k| !words[k].1 && COMMANDS.contains(&folded[k].as_str()))
            && qi > 0
            && (arg_like(&words[qi - 1].0) || COMMANDS.contains(&folded[qi - 1].as_str()));
        if before_program {
            if let Some(g) = gazetteer_command(&words, &folded, &is_sandbox) {
                return Some(g);
            }
        }
    }
    if let Some((q, _)) = words.iter().find(|(_, q)| *q) {
        if folded
            .iter()
            .any(|w| is_sandbox(w) || matches!(w.as_str(), "run" | "exec" | "execute" | "fuehre" | "ausfuehren"))
        {
            return Some(shell_words(q).into_iter().map(|(w, _)| w).collect());
        }
    }
    if let Some((_, argv)) = exec_parts(text, known, session) {
        let program = argv.first().is_some_and(|w| COMMANDS.contains(&fold(w).as_str()));
        if !program {
            if let Some(g) = gazetteer_fallback(&words, &folded, &is_sandbox) {
                return Some(g);
            }
        }
        if !not_a_command(&argv) {
            return Some(argv);
        }
    }
    let target = folded.iter().rposition(|w| is_sandbox(w));
    // "was sagt X in Y", "what does X say in Y".
    let verb = folded.iter().enumerate().position(|(i, w)| {
        matches!(w.as_str(), "sagt" | "liefert" | "ergibt" | "meldet")
            || (w == "does" && i > 0 && folded[i - 1] == "what")
            || (w == "gibt" && i > 0 && folded[i - 1] == "was")
    });
    if let (Some(verb), Some(target)) = (verb, target.filter(|&j| verb.is_some_and(|v| j > v + 1))) {
        let mut cut = target;
        if cut > 0 && EXEC_MARKERS.contains(&folded[cut - 1].as_str()) {
            cut -= 1;
        } else if cut > 1
            && FILLERS.contains(&folded[cut - 1].as_str())
            && EXEC_MARKERS.contains(&folded[cut - 2].as_str())
        {
            cut -= 2;
        }
        let argv: Vec<String> = words[verb + 1..cut].iter().map(|(w, _)| w.clone()).collect();
        return (!argv.is_empty() && !not_a_command(&argv)).then_some(argv);
    }
    let Some(target) = target else {
        return gazetteer_fallback(&words, &folded, &is_sandbox);
    };
    let rest = |from: usize| -> Vec<String> { words[from..].iter().map(|(w, _)| w.clone()).collect() };
    // "web: cat /etc/os-release", "in build, make -j4".
    if words[target].0.ends_with(':') || words[target].0.ends_with(',') {
        let argv = rest(target + 1);
        if !argv.is_empty() && !not_a_command(&argv) {
            return Some(argv);
        }
    }
    // "check nginx in web with systemctl status nginx", "zeig die Prozesse in web mit ps aux".
    if let Some(m) = folded
        .iter()
        .enumerate()
        .position(|(i, w)| i > target && matches!(w.as_str(), "with" | "mit" | "using" | "via" | "per"))
    {
        let argv = rest(m + 1);
        if !argv.is_empty() && !not_a_command(&argv) {
            return Some(argv);
        }
    }
    // "whoami in web", "free -m in build": a command word first, then the sandbox.
    if target >= 2 && EXEC_MARKERS.contains(&folded[target - 1].as_str()) && target <= 5 {
        let first = folded[0].as_str();
        // "free -m in build" starts with a program that is also a resource word; "memory cap on web" does not.
        let known_word = crate::lang::function_word(first)
            || crate::lexicon::lookup(first).iter().any(|h| {
                h.distance == 0 && (h.concept != crate::lexicon::Concept::Resource || !COMMANDS.contains(&first))
            });
        let plain = folded[..target - 1].iter().all(|w| {
            w.starts_with('-')
                || w.contains('/')
                || (!crate::lang::function_word(w)
                    && crate::lexicon::lookup(w)
                        .iter()
                        .all(|h| h.distance > 0 || h.concept == crate::lexicon::Concept::Resource))
        });
        if !known_word && plain {
            let argv: Vec<String> = words[..target - 1].iter().map(|(w, _)| w.clone()).collect();
            if !not_a_command(&argv) {
                return Some(argv);
            }
        }
    }
    gazetteer_fallback(&words, &folded, &is_sandbox)
}

/// A program from the list in an utterance about a sandbox (a known one, "darin", or a throw-away one).
fn gazetteer_fallback(
    words: &[(String, bool)],
    folded: &[String],
    is_sandbox: &dyn Fn(&str) -> bool,
) -> Option<Vec<String>> {
    let about_sandbox = folded.iter().any(|w| {
        is_sandbox(w)
            || matches!(w.as_str(), "darin" | "drin" | "therein" | "inside")
            || w.contains("sandbox")
            || w.contains("container")
            || w.starts_with("wegwerf")
            || w.starts_with("einweg")
            || w.starts_with("einmal")
            || w.starts_with("temporaer")
            || matches!(
                w.as_str(),
                "one-off" | "disposable" | "ephemeral" | "throwaway" | "throw-away" | "one-shot"
            )
    });
    if !about_sandbox {
        return None;
    }
    gazetteer_command(words, folded, is_sandbox)
}

/// Decides whether the utterance is about drives or sandboxes.
pub(crate) fn domain(p: &Parsed, r: &Refs, session: &Session) -> Option<Domain> {
    use Concept::*;
    let has = |c: Concept| p.concepts.contains(&c);
    if r.exec.is_some() || has(Sandbox) || has(Template) || has(Python) {
        return Some(Domain::Sandbox);
    }
    // "öffne eine Shell in box": a shell word and a sandbox named.
    if r.sandbox.is_some() && p.toks.iter().any(|t| SHELL_WORDS.contains(&t.norm.as_str())) {
        return Some(Domain::Sandbox);
    }
    if [Attach, Detach, Hang, Snapshot, Discard, Commit, Files, Drive, Image]
        .into_iter()
        .any(has)
        || r.persist_phrase
        || r.path.is_some()
    {
        return Some(Domain::Drive);
    }
    if r.sandbox.is_some() {
        return Some(Domain::Sandbox);
    }
    if r.drive.is_some() {
        return Some(Domain::Drive);
    }
    if r.pronoun {
        let sandbox_verb = [Start, Stop, Restart, Output, Kill].into_iter().any(has);
        let any_verb = sandbox_verb || [Remove, Delete, Persist, Force].into_iter().any(has);
        if sandbox_verb && session.last_sandbox.is_some() {
            return Some(Domain::Sandbox);
        }
        if any_verb {
            return match session.last_kind.as_deref() {
                Some("drive") if session.last_drive.is_some() => Some(Domain::Drive),
                Some("sandbox") if session.last_sandbox.is_some() => Some(Domain::Sandbox),
                _ => None,
            };
        }
    }
    None
}

fn ask(session: &mut Session, lang: Lang, asked: &str, de: &str, en: &str, options: Vec<String>) -> Interpretation {
    session.asked = Some(asked.to_string());
    session.options = options.clone();
    Interpretation::Question {
        text: t(lang, de, en),
        options,
    }
}

impl Engine {
    fn sandbox_name(&self, p: &Parsed, r: &Refs, session: &Session) -> Option<String> {
        self.explicit_sandbox(p, r)
            .or_else(|| (r.pronoun || r.article).then(|| session.last_sandbox.clone()).flatten())
    }

    /// A sandbox named in the utterance itself (not referred to).
    fn explicit_sandbox(&self, p: &Parsed, r: &Refs) -> Option<String> {
        if let Some(n) = &r.sandbox {
            return Some(n.clone());
        }
        // "die Sandbox foo", "container foo": an unknown name after the noun (the core says whether it exists).
        for w in p.toks.windows(2) {
            if matches!(w[0].norm.as_str(), "sandbox" | "container" | "umgebung")
                && lookup(&w[1].norm).is_empty()
                && !NOT_NAMES.contains(&w[1].norm.as_str())
                && !w[1].norm.chars().any(|c| c.is_ascii_digit())
                && w[1].norm.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            {
                return Some(w[1].norm.clone());
            }
        }
        None
    }

    fn drive_name(&self, r: &Refs, session: &Session) -> Option<String> {
        r.drive
            .clone()
            .or_else(|| (r.pronoun || r.article).then(|| session.last_drive.clone()).flatten())
    }

    /// A sandbox intent.
    pub(crate) fn sandbox_intent(&self, p: &Parsed, r: &Refs, known: &Known, session: &mut Session) -> Interpretation {
        use Concept::*;
        let lang = p.lang;
        let has = |c: Concept| p.concepts.contains(&c);
        let tok = |w: &[&str]| p.toks.iter().any(|t| w.contains(&t.norm.as_str()));
        let name = self.sandbox_name(p, r, session);
        let which = |session: &mut Session, asked: &str| {
            ask(
                session,
                lang,
                asked,
                "Welche Sandbox meinst du?",
                "Which sandbox do you mean?",
                known.sandboxes.clone(),
            )
        };
        // "öffne eine Shell in box", "log me into py": an interactive shell, which a console opens itself.
        if r.exec.is_none() && tok(SHELL_WORDS) && ![Create, Stop, Restart, Remove, Delete].into_iter().any(has) {
            return match name {
                Some(name) => self.operation(
                    Operation::SandboxShell(SandboxShellArgs { name, term: None }),
                    lang,
                    session,
                ),
                None => which(session, "sandbox.shell"),
            };
        }
        if let Some((target, argv)) = r.exec.clone() {
            // "führe uname -a in einer Wegwerf-Sandbox aus", "run make in a fresh sandbox": no sandbox of that name,
            // but a new, throw-away one: sandbox.run makes one, runs the command and removes it. "new"/"fresh" count
            // only after an indefinite article ("in der neuen Sandbox" is one that exists).
            let words: Vec<&str> = p.toks.iter().map(|t| t.norm.as_str()).collect();
            let throw_away = words.iter().enumerate().any(|(i, w)| {
                let clear = [
                    "wegwerf",
                    "throwaway",
                    "throw-away",
                    "temporaer",
                    "temporary",
                    "ephemeral",
                    "einmal",
                ];
                let fresh = ["neue", "new", "frische", "fresh"];
                clear.iter().any(|p| w.starts_with(p))
                    || (fresh.iter().any(|p| w.starts_with(p))
                        && i > 0
                        && ["einer", "einem", "eine", "einen", "a", "an"].contains(&words[i - 1]))
            });
            let known_target = target
                .as_deref()
                .is_some_and(|t| known.sandboxes.iter().any(|s| s == t));
            if throw_away && !known_target {
                let c = self.create_args(p, r, known);
                return self.operation(
                    Operation::SandboxRun(SandboxRunArgs {
                        template: c.template,
                        argv,
                        name: None,
                        limits: c.limits,
                        network: c.network,
                        binds: c.binds,
                        env: Vec::new(),
                        timeout_secs: None,
                    }),
                    lang,
                    session,
                );
            }
            let target = target.or(name);
            return match target {
                Some(name) => self.operation(
                    Operation::SandboxExec(SandboxExecArgs {
                        name,
                        argv,
                        timeout_secs: None,
                    }),
                    lang,
                    session,
                ),
                None => {
                    let q = which(session, "sandbox.exec");
                    session.asked_argv = argv;
                    q
                }
            };
        }
        let creating = has(Create)
            || (has(Start)
                && name.is_none()
                && !r.article
                && !r.pronoun
                && !tok(&["alle", "all"])
                && !has(Restart)
                && !has(Stop)
                && !has(Remove)
                && !has(Delete));
        // "gib mir eine Python-Umgebung", "I need a python sandbox with 2 cores": asking for one is creating one.
        let wanting = tok(&["ein", "eine", "einen", "a", "an"])
            && (has(Python)
                || tok(&[
                    "brauche", "moechte", "will", "haette", "need", "want", "gib", "give", "get",
                ]))
            && !tok(&["liste", "list", "uebersicht", "overview", "alle", "all"])
            && self.explicit_sandbox(p, r).is_none()
            && ![Stop, Restart, Remove, Delete, Kill, Output].into_iter().any(has);
        let creating = creating || wanting;
        if creating && !(has(Template) && has(Show) && !has(Create)) {
            return self.operation(Operation::SandboxCreate(self.create_args(p, r, known)), lang, session);
        }
        if has(Template) && !has(Create) {
            return self.operation(Operation::SandboxTemplates, lang, session);
        }
        if has(Reconcile) {
            return self.operation(Operation::SandboxReconcile, lang, session);
        }
        let op_name = if has(Restart) {
            "sandbox.restart"
        } else if has(Stop) || has(Kill) || (has(Start) && tok(&["herunter", "runter", "down"])) {
            "sandbox.stop"
        } else if has(Start) {
            "sandbox.start"
        } else if has(Remove) || has(Delete) {
            "sandbox.remove"
        } else if has(Output) || has(Audit) {
            "sandbox.logs"
        } else if self.explicit_sandbox(p, r).is_some() {
            "sandbox.info"
        } else {
            return self.operation(Operation::SandboxList, lang, session);
        };
        match name {
            Some(n) => self.operation(sandbox_op(op_name, n), lang, session),
            None => which(session, op_name),
        }
    }

    fn create_args(&self, p: &Parsed, r: &Refs, known: &Known) -> SandboxCreateArgs {
        use Concept::*;
        let has = |c: Concept| p.concepts.contains(&c);
        let tok = |w: &[&str]| p.toks.iter().any(|t| w.contains(&t.norm.as_str()));
        let template = if has(Python) {
            "host".to_string()
        } else {
            p.toks
                .iter()
                .find_map(|t| known.templates.iter().find(|x| x.to_lowercase() == t.norm).cloned())
                .unwrap_or_else(|| "host".into())
        };
        let name = r.new_name.clone().unwrap_or_else(|| {
            let base = if has(Python) {
                "python".to_string()
            } else if template != "host" {
                clean_name(&template)
            } else {
                "sandbox".to_string()
            };
            (1..)
                .map(|n| format!("{base}-{n}"))
                .find(|n| !known.sandboxes.contains(n))
                .unwrap_or(base)
        });
        let mut a = SandboxCreateArgs::new(name, template);
        for i in 0..p.toks.len() {
            if a.limits.memory_max.is_none() {
                if let Some((bytes, _)) = slots::size(&p.toks, i) {
                    a.limits.memory_max = Some(bytes);
                    continue;
                }
            }
            if a.limits.cpu.is_none() {
                if let Some((cpu, _)) = slots::cpu(&p.toks, i) {
                    a.limits.cpu = Some(cpu);
                }
            }
        }
        if has(Network) && !tok(NEGATIONS) {
            a.network = Net::Nat;
        }
        a.ephemeral = tok(&["temporaer", "temporaere", "temporary", "ephemeral", "wegwerf"]);
        if let Some(d) = &r.drive {
            a.binds.push(BindArgs {
                drive: d.clone(),
                read_write: has(Writable),
                target: None,
            });
        }
        a
    }

    /// A drive intent.
    pub(crate) fn drive_intent(&self, p: &Parsed, r: &Refs, known: &Known, session: &mut Session) -> Interpretation {
        use Concept::*;
        let lang = p.lang;
        let has = |c: Concept| p.concepts.contains(&c);
        let tok = |w: &[&str]| p.toks.iter().any(|t| w.contains(&t.norm.as_str()));
        let name = self.drive_name(r, session);
        let throw_away = tok(&["wirf", "throw", "wegwerfen"]) && tok(&["weg", "away", "wegwerfen"]);
        let op_name = if has(Commit) {
            "drive.commit"
        } else if has(Discard) || throw_away {
            "drive.discard"
        } else if has(Snapshot) && !has(Show) {
            "drive.snapshot"
        } else if r.persist_phrase || has(Persist) {
            let persistent = !tok(NEGATIONS) && !tok(&["mehr", "longer"]);
            return match name {
                Some(name) => self.operation(Operation::DrivePersist(PersistArgs { name, persistent }), lang, session),
                None => self.which_drive(session, lang, known, "drive.persist"),
            };
        } else if has(Detach)
            || (has(Hang) && tok(&["aus", "ab"]))
            || has(Remove)
            || has(Delete)
            || (has(Stop) && !has(Start))
        {
            let force = has(Force);
            return match name {
                Some(name) => self.operation(Operation::DriveDetach(DetachArgs { name, force }), lang, session),
                None => self.which_drive(session, lang, known, "drive.detach"),
            };
        } else if has(Attach) || has(Hang) {
            return self.attach(p, r, known, session);
        } else if has(Create) && r.path.is_some() {
            let size = (0..p.toks.len()).find_map(|i| slots::size(&p.toks, i)).map(|s| s.0);
            let path = r.path.clone().unwrap_or_default();
            return match size {
                Some(size) => self.operation(
                    Operation::DriveCreate(CreateArgs {
                        format: if path.to_lowercase().ends_with(".qcow2") {
                            NewFormat::Qcow2
                        } else {
                            NewFormat::Raw
                        },
                        path,
                        size,
                        fs: None,
                        label: None,
                        attach: false,
                        name: None,
                    }),
                    lang,
                    session,
                ),
                None => Interpretation::Question {
                    text: t(
                        lang,
                        "Wie groß soll das Abbild werden?",
                        "How large should the image be?",
                    ),
                    options: vec!["1 GB".into(), "10 GB".into()],
                },
            };
        } else if has(Files) && !(has(Image) && r.drive.is_none()) {
            let sub = r
                .path
                .as_deref()
                .filter(|x| x.starts_with('/'))
                .map(|x| x.trim_start_matches('/').to_string())
                .unwrap_or_default();
            return match name {
                Some(name) => self.operation(
                    Operation::DriveFiles(FilesArgs {
                        name,
                        path: sub,
                        volume: None,
                    }),
                    lang,
                    session,
                ),
                None => self.which_drive(session, lang, known, "drive.files"),
            };
        } else if has(Reconcile) {
            return self.operation(Operation::DriveReconcile, lang, session);
        } else if r.drive.is_some() {
            "drive.info"
        } else if has(Image) && !has(Drive) {
            return self.operation(Operation::DriveImages, lang, session);
        } else {
            return self.operation(Operation::DriveList, lang, session);
        };
        match name {
            Some(n) => self.operation(drive_op(op_name, n), lang, session),
            None => self.which_drive(session, lang, known, op_name),
        }
    }

    fn which_drive(&self, session: &mut Session, lang: Lang, known: &Known, asked: &str) -> Interpretation {
        ask(
            session,
            lang,
            asked,
            "Welches Laufwerk meinst du?",
            "Which drive do you mean?",
            known.drives.clone(),
        )
    }

    fn attach(&self, p: &Parsed, r: &Refs, known: &Known, session: &mut Session) -> Interpretation {
        let lang = p.lang;
        let path = r.path.clone().or_else(|| {
            // "häng debian ein": the stem of an image file.
            p.toks.iter().flat_map(|t| t.norm.split('-')).find_map(|w| {
                known
                    .images
                    .iter()
                    .find(|i| w.len() >= 3 && name_from_path(std::path::Path::new(i.as_str())) == w)
                    .cloned()
            })
        });
        let Some(path) = path else {
            let iso = p.toks.iter().any(|t| matches!(t.norm.as_str(), "iso" | "isos"));
            let options: Vec<String> = known
                .images
                .iter()
                .filter(|i| !iso || i.to_lowercase().ends_with(".iso"))
                .cloned()
                .collect();
            if options.len() == 1 {
                return self.attach_path(options[0].clone(), p, r, session);
            }
            return ask(
                session,
                lang,
                "drive.attach",
                "Welches Abbild soll ich einhängen?",
                "Which image should I attach?",
                if options.is_empty() {
                    known.images.clone()
                } else {
                    options
                },
            );
        };
        self.attach_path(path, p, r, session)
    }

    fn attach_path(&self, path: String, p: &Parsed, r: &Refs, session: &mut Session) -> Interpretation {
        let mut a = AttachArgs::new(path);
        a.name = r.new_name.clone();
        a.read_write = p.concepts.contains(&Concept::Writable);
        self.operation(Operation::DriveAttach(a), p.lang, session)
    }
}

/// A sandbox operation on one sandbox by name (removal planned without `confirm`; the yes sets it).
pub(crate) fn sandbox_op(op: &str, name: String) -> Operation {
    match op {
        "sandbox.start" => Operation::SandboxStart(SandboxRef { name }),
        "sandbox.stop" => Operation::SandboxStop(SandboxRef { name }),
        "sandbox.restart" => Operation::SandboxRestart(SandboxRef { name }),
        "sandbox.remove" => Operation::SandboxRemove(SandboxRemoveArgs { name, confirm: false }),
        "sandbox.logs" => Operation::SandboxLogs(SandboxLogsArgs { name, lines: None }),
        "sandbox.shell" => Operation::SandboxShell(SandboxShellArgs { name, term: None }),
        _ => Operation::SandboxInfo(SandboxRef { name }),
    }
}

/// A drive operation on one drive by name (a commit planned without `confirm`; the yes sets it).
pub(crate) fn drive_op(op: &str, name: String) -> Operation {
    match op {
        "drive.commit" => Operation::DriveCommit(CommitArgs { name, confirm: false }),
        "drive.discard" => Operation::DriveDiscard(DriveRef { name }),
        "drive.snapshot" => Operation::DriveSnapshot(DriveRef { name }),
        "drive.detach" => Operation::DriveDetach(DetachArgs { name, force: false }),
        "drive.persist" => Operation::DrivePersist(PersistArgs { name, persistent: true }),
        "drive.files" => Operation::DriveFiles(FilesArgs {
            name,
            path: String::new(),
            volume: None,
        }),
        "drive.attach" => Operation::DriveAttach(AttachArgs::new(name)),
        _ => Operation::DriveInfo(DriveRef { name }),
    }
}

/// The operation as confirmed by an explicit yes: removal and commit carry `confirm: true`.
pub(crate) fn confirmed(op: Operation) -> Operation {
    match op {
        Operation::SandboxRemove(a) => Operation::SandboxRemove(SandboxRemoveArgs { confirm: true, ..a }),
        Operation::DriveCommit(a) => Operation::DriveCommit(CommitArgs { confirm: true, ..a }),
        op => op,
    }
}

/// Remembers the drive or sandbox an operation is about, for "sie" / "it" later.
pub(crate) fn remember(op: &Operation, session: &mut Session) {
    let drive = match op {
        Operation::DriveInfo(a) | Operation::DriveSnapshot(a) | Operation::DriveDiscard(a) => Some(a.name.clone()),
        Operation::DriveFiles(a) => Some(a.name.clone()),
        Operation::DriveDetach(a) => Some(a.name.clone()),
        Operation::DriveCommit(a) => Some(a.name.clone()),
        Operation::DrivePersist(a) => Some(a.name.clone()),
        Operation::DriveAttach(a) => Some(
            a.name
                .clone()
                .unwrap_or_else(|| name_from_path(std::path::Path::new(&a.path))),
        ),
        _ => None,
    };
    let sandbox = match op {
        Operation::SandboxInfo(a)
        | Operation::SandboxStart(a)
        | Operation::SandboxStop(a)
        | Operation::SandboxRestart(a) => Some(a.name.clone()),
        Operation::SandboxRemove(a) => Some(a.name.clone()),
        Operation::SandboxExec(a) => Some(a.name.clone()),
        Operation::SandboxLogs(a) => Some(a.name.clone()),
        Operation::SandboxCreate(a) => Some(a.name.clone()),
        _ => None,
    };
    if drive.is_some() {
        session.last_drive = drive;
        session.last_kind = Some("drive".into());
    }
    if sandbox.is_some() {
        session.last_sandbox = sandbox;
        session.last_kind = Some("sandbox".into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words_respect_quotes_and_never_need_a_shell() {
        let w: Vec<String> = shell_words("run 'echo a b' \"x y\" z")
            .into_iter()
            .map(|x| x.0)
            .collect();
        assert_eq!(w, vec!["run", "echo a b", "x y", "z"]);
        assert!(shell_words(&"\"".repeat(10_000)).len() <= 256);
    }

    #[test]
    fn names_are_cleaned() {
        assert_eq!(clean_name("My_Box!"), "my-box");
        assert!(file_like("debian.iso") && file_like("/srv/x") && !file_like(".iso") && !file_like("work"));
    }
}
