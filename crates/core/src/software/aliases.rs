//! The alias table (`data/aliases.tsv`: what people ask for → packages) and the environment profiles
//! (`data/profiles.tsv`), and [`understand`], which reads a German or English wish against them.

use std::sync::OnceLock;

use super::Ecosystem;

/// How an alias is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A program or library asked for by name.
    App,
    /// A language runtime: used only when no app of that language was asked for.
    Lang,
    /// A category ("Webserver"): used only when nothing else matched.
    Generic,
}

/// One row of the alias table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alias {
    pub key: String,
    pub kind: Kind,
    /// Each word as tokens ("build tools" → ["build", "tools"]).
    pub words: Vec<Vec<String>>,
    pub apt: Vec<String>,
    pub pip: Vec<String>,
    pub npm: Vec<String>,
    pub port: Option<u16>,
    /// `python` or `node`: the runtime a pip or npm install needs.
    pub lang: Option<String>,
    pub description: String,
}

impl Alias {
    /// The packages of one ecosystem.
    pub fn packages(&self, eco: Ecosystem) -> &[String] {
        match eco {
            Ecosystem::Apt => &self.apt,
            Ecosystem::Pip => &self.pip,
            Ecosystem::Npm => &self.npm,
        }
    }
}

/// One environment profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub key: String,
    pub words: Vec<Vec<String>>,
    pub apt: Vec<String>,
    pub description: String,
}

fn list(cell: &str) -> Vec<String> {
    if cell.trim() == "-" {
        Vec::new()
    } else {
        cell.split_whitespace().map(str::to_string).collect()
    }
}

fn words(cell: &str) -> Vec<Vec<String>> {
    cell.split(',')
        .map(|w| tokens(w).into_iter().map(|t| t.text).collect::<Vec<_>>())
        .filter(|w| !w.is_empty())
        .collect()
}

/// Parses the alias table; a malformed row is an error naming its line.
pub fn parse_aliases(text: &str) -> Result<Vec<Alias>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let c: Vec<&str> = line.split('\t').collect();
        if c.len() != 9 {
            return Err(format!("aliases.tsv line {}: {} columns, expected 9", i + 1, c.len()));
        }
        let kind = match c[1] {
            "app" => Kind::App,
            "lang" => Kind::Lang,
            "generic" => Kind::Generic,
            k => return Err(format!("aliases.tsv line {}: unknown kind {k:?}", i + 1)),
        };
        let port = match c[6] {
            "-" => None,
            p => Some(
                p.parse()
                    .map_err(|_| format!("aliases.tsv line {}: bad port {p:?}", i + 1))?,
            ),
        };
        out.push(Alias {
            key: c[0].to_string(),
            kind,
            words: words(c[2]),
            apt: list(c[3]),
            pip: list(c[4]),
            npm: list(c[5]),
            port,
            lang: (c[7] != "-").then(|| c[7].to_string()),
            description: c[8].to_string(),
        });
    }
    Ok(out)
}

/// Parses the profile table.
pub fn parse_profiles(text: &str) -> Result<Vec<Profile>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let c: Vec<&str> = line.split('\t').collect();
        if c.len() != 4 {
            return Err(format!("profiles.tsv line {}: {} columns, expected 4", i + 1, c.len()));
        }
        out.push(Profile {
            key: c[0].to_string(),
            words: words(c[1]),
            apt: list(c[2]),
            description: c[3].to_string(),
        });
    }
    Ok(out)
}

/// The shipped alias table.
pub fn aliases() -> &'static [Alias] {
    static T: OnceLock<Vec<Alias>> = OnceLock::new();
    T.get_or_init(|| parse_aliases(include_str!("data/aliases.tsv")).expect("the shipped alias table parses"))
}

/// The shipped profiles.
pub fn profiles() -> &'static [Profile] {
    static T: OnceLock<Vec<Profile>> = OnceLock::new();
    T.get_or_init(|| parse_profiles(include_str!("data/profiles.tsv")).expect("the shipped profile table parses"))
}

/// The alias of that key.
pub fn alias(key: &str) -> Option<&'static Alias> {
    aliases().iter().find(|a| a.key == key)
}

/// The profile of that key.
pub fn profile(key: &str) -> Option<&'static Profile> {
    profiles().iter().find(|p| p.key == key)
}

/// A token of a wish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// Lowercase, umlauts folded.
    pub text: String,
    /// Part of a hyphenated word ("python" of "python-webserver").
    pub part: bool,
}

/// Lowercases, folds umlauts and ß, and splits into tokens; a hyphenated word also yields its parts.
pub fn tokens(text: &str) -> Vec<Token> {
    let mut folded = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            'ä' | 'Ä' => folded.push_str("ae"),
            'ö' | 'Ö' => folded.push_str("oe"),
            'ü' | 'Ü' => folded.push_str("ue"),
            'ß' => folded.push_str("ss"),
            c => folded.extend(c.to_lowercase()),
        }
    }
    let mut out = Vec::new();
    for raw in folded.split(|c: char| !(c.is_alphanumeric() || "+-._@/".contains(c))) {
        let t = raw.trim_matches(|c: char| ".-_/".contains(c));
        if t.is_empty() {
            continue;
        }
        out.push(Token {
            text: t.to_string(),
            part: false,
        });
        if t.contains('-') {
            for p in t.split('-').filter(|p| !p.is_empty()) {
                out.push(Token {
                    text: p.to_string(),
                    part: true,
                });
            }
        }
    }
    out
}

/// Words that ask for a development environment.
pub const DEV_WORDS: &[&str] = &[
    "entwicklungsumgebung",
    "entwicklung",
    "umgebung",
    "programmierumgebung",
    "dev",
    "devbox",
    "development",
    "environment",
    "toolchain",
    "programmieren",
    "entwickeln",
    "werkzeuge",
    "tools",
];

/// Words that say "from PyPI, into a venv".
const PIP_WORDS: &[&str] = &["pypi", "pip", "venv", "virtualenv"];
/// Words that say "from npm".
const NPM_WORDS: &[&str] = &["npm"];
/// Words that say "from Debian".
const APT_WORDS: &[&str] = &["debian", "apt", "deb"];

/// Words of a wish that are not package names (German and English function words and install verbs).
pub const STOPWORDS: &[&str] = &[
    "ich",
    "du",
    "wir",
    "mir",
    "mich",
    "uns",
    "brauche",
    "braucht",
    "brauchen",
    "benoetige",
    "moechte",
    "moechten",
    "will",
    "wuerde",
    "gern",
    "gerne",
    "bitte",
    "danke",
    "hätte",
    "haette",
    "haetten",
    "ein",
    "eine",
    "einen",
    "einem",
    "einer",
    "der",
    "die",
    "das",
    "den",
    "dem",
    "des",
    "und",
    "oder",
    "mit",
    "ohne",
    "fuer",
    "in",
    "im",
    "ins",
    "auf",
    "an",
    "am",
    "aus",
    "von",
    "vom",
    "zu",
    "zum",
    "zur",
    "als",
    "auch",
    "noch",
    "mal",
    "doch",
    "so",
    "es",
    "ist",
    "sind",
    "sein",
    "soll",
    "sollen",
    "kannst",
    "koenntest",
    "kann",
    "einrichten",
    "richte",
    "richten",
    "installiere",
    "installieren",
    "installier",
    "installiert",
    "installation",
    "setze",
    "setz",
    "aufsetzen",
    "auf",
    "starte",
    "starten",
    "gib",
    "hol",
    "hole",
    "besorge",
    "bereitstellen",
    "stelle",
    "stell",
    "bereit",
    "neue",
    "neuen",
    "neues",
    "neu",
    "sandbox",
    "sandkasten",
    "container",
    "paket",
    "pakete",
    "paketen",
    "version",
    "programm",
    "programme",
    "software",
    "server",
    "dazu",
    "damit",
    "dafuer",
    "alles",
    "was",
    "wo",
    "wie",
    "welche",
    "welches",
    "suche",
    "such",
    "finde",
    "find",
    "zeig",
    "zeige",
    "i",
    "we",
    "me",
    "my",
    "need",
    "needs",
    "want",
    "would",
    "like",
    "please",
    "thanks",
    "a",
    "an",
    "the",
    "and",
    "or",
    "with",
    "without",
    "for",
    "into",
    "to",
    "on",
    "of",
    "from",
    "in",
    "as",
    "also",
    "some",
    "set",
    "setup",
    "up",
    "install",
    "installing",
    "get",
    "give",
    "make",
    "start",
    "run",
    "new",
    "box",
    "package",
    "packages",
    "program",
    "programs",
    "is",
    "it",
    "be",
    "can",
    "could",
    "you",
    "search",
    "look",
    "show",
    "which",
    "what",
    "latest",
    "newest",
    "neueste",
    "neuesten",
    "aktuelle",
    "aktuellen",
    "web",
    "app",
    "anwendung",
    "dienst",
    "service",
    "port",
    "bereitstellung",
    "ready",
    "there",
    "here",
    "hier",
    "dort",
    "da",
    "einfach",
    "schnell",
    "kleinen",
    "kleine",
    "kleiner",
    "small",
    "simple",
    "little",
    "just",
    "mir's",
    "let",
    "lets",
    "me",
];

/// Words between "in" and a sandbox's name ("in der Sandbox web", "into the box web").
const SANDBOX_FILLERS: &[&str] = &[
    "der",
    "die",
    "das",
    "den",
    "dem",
    "the",
    "my",
    "meine",
    "meiner",
    "meinem",
    "sandbox",
    "container",
    "box",
];

/// What a wish names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wish {
    /// Alias keys, in the table's order.
    pub aliases: Vec<String>,
    /// A profile key, when the wish asks for a development environment.
    pub profile: Option<String>,
    /// The ecosystem the wish prefers for aliases that have several (`pip` for "Flask aus PyPI").
    pub prefer: Option<Ecosystem>,
    /// A version prefix asked for per alias or profile key ("Node 18" → node: 18).
    pub versions: Vec<(String, String)>,
    /// The sandbox named after "in"/"into"/"auf" when it is one of `sandboxes`.
    pub sandbox: Option<String>,
    /// Other words that may be package names.
    pub rest: Vec<String>,
}

fn matches_at(toks: &[Token], i: usize, word: &[String]) -> bool {
    word.iter()
        .enumerate()
        .all(|(k, w)| toks.get(i + k).is_some_and(|t| &t.text == w))
}

fn is_version(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_digit()) && s.chars().all(|c| c.is_ascii_digit() || c == '.')
}

/// Reads a wish: aliases (apps first; a language only when no app of it was named; a category only when nothing
/// else matched), a profile when a development environment is asked for, the preferred ecosystem, versions
/// following a name ("Node 18"), the target sandbox ("in web") and the remaining words.
pub fn understand(text: &str, sandboxes: &[String]) -> Wish {
    let toks = tokens(text);
    let mut wish = Wish::default();
    let mut used = vec![false; toks.len()];
    let has = |list: &[&str]| toks.iter().any(|t| list.contains(&t.text.as_str()));
    wish.prefer = if has(PIP_WORDS) {
        Some(Ecosystem::Pip)
    } else if has(NPM_WORDS) {
        Some(Ecosystem::Npm)
    } else if has(APT_WORDS) {
        Some(Ecosystem::Apt)
    } else {
        None
    };
    // The target sandbox: "in web", "into web", "in der Sandbox web"; an existing one, or a new name.
    for i in 0..toks.len() {
        if !["in", "into", "auf", "im"].contains(&toks[i].text.as_str()) {
            continue;
        }
        let mut j = i + 1;
        while toks.get(j).is_some_and(|t| SANDBOX_FILLERS.contains(&t.text.as_str())) {
            j += 1;
        }
        let Some(t) = toks.get(j) else { continue };
        let is_alias = aliases()
            .iter()
            .any(|a| a.words.iter().any(|w| w.len() == 1 && w[0] == t.text))
            || profiles()
                .iter()
                .any(|p| p.words.iter().any(|w| w.len() == 1 && w[0] == t.text));
        let existing = sandboxes.contains(&t.text);
        let plain = crate::sandbox::validate_name(&t.text).is_ok()
            && !is_alias
            && !t.part
            && (!STOPWORDS.contains(&t.text.as_str()) || t.text == "web" || t.text == "app");
        if existing || (plain && j > i + 1 && toks[j - 1].text.contains("sandbox")) || (plain && j == i + 1) {
            wish.sandbox = Some(t.text.clone());
            used[j] = true;
            break;
        }
    }
    let dev = has(DEV_WORDS);
    // Profiles: a development environment and a language word.
    if dev {
        'p: for p in profiles() {
            for (i, _) in toks.iter().enumerate() {
                if let Some(w) = p.words.iter().find(|w| matches_at(&toks, i, w)) {
                    wish.profile = Some(p.key.clone());
                    for u in used.iter_mut().skip(i).take(w.len()) {
                        *u = true;
                    }
                    if let Some(v) = toks.get(i + w.len()).filter(|t| is_version(&t.text)) {
                        wish.versions.push((p.key.clone(), v.text.clone()));
                        used[i + w.len()] = true;
                    }
                    break 'p;
                }
            }
        }
    }
    let mut found: Vec<(&Alias, usize)> = Vec::new();
    for a in aliases() {
        for i in 0..toks.len() {
            if used[i] {
                continue;
            }
            // Longest word of this alias matching here.
            if let Some(w) = a
                .words
                .iter()
                .filter(|w| matches_at(&toks, i, w))
                .max_by_key(|w| w.len())
            {
                if !found.iter().any(|(f, _)| f.key == a.key) {
                    found.push((a, i));
                }
                for u in used.iter_mut().skip(i).take(w.len()) {
                    *u = true;
                }
                if let Some(v) = toks.get(i + w.len()).filter(|t| is_version(&t.text)) {
                    wish.versions.push((a.key.clone(), v.text.clone()));
                    used[i + w.len()] = true;
                }
            }
        }
    }
    let apps: Vec<&Alias> = found
        .iter()
        .filter(|(a, _)| a.kind == Kind::App)
        .map(|(a, _)| *a)
        .collect();
    let app_langs: Vec<&str> = apps.iter().filter_map(|a| a.lang.as_deref()).collect();
    for (a, _) in &found {
        let keep = match a.kind {
            Kind::App => true,
            // "Python-Webserver mit Flask": Flask brings Python; a profile brings its language.
            Kind::Lang => {
                !(app_langs.contains(&a.key.as_str()) || (a.key == "pip" && app_langs.contains(&"python")))
                    && wish.profile.is_none()
            }
            Kind::Generic => {
                apps.is_empty() && wish.profile.is_none() && found.iter().all(|(f, _)| f.kind == Kind::Generic)
            }
        };
        // A language that is only part of a hyphenated word ("Python-Webserver") is a descriptor.
        if keep {
            wish.aliases.push(a.key.clone());
        }
    }
    if dev && wish.profile.is_none() {
        // "eine Entwicklungsumgebung für Rust" when the profile word came after an alias already took it.
        if let Some(k) = wish.aliases.iter().find_map(|k| profile(k).map(|p| p.key.clone())) {
            wish.aliases.retain(|a| a != &k);
            wish.profile = Some(k);
        }
    }
    let sandbox_names = sandboxes;
    for (i, t) in toks.iter().enumerate() {
        if used[i] || t.part || STOPWORDS.contains(&t.text.as_str()) || DEV_WORDS.contains(&t.text.as_str()) {
            continue;
        }
        if PIP_WORDS.contains(&t.text.as_str())
            || NPM_WORDS.contains(&t.text.as_str())
            || APT_WORDS.contains(&t.text.as_str())
        {
            continue;
        }
        if is_version(&t.text) || t.text.chars().count() < 2 || sandbox_names.contains(&t.text) {
            continue;
        }
        // Hyphenated descriptors whose parts matched ("python-webserver") are not package names.
        if t.text.contains('-')
            && toks.iter().skip(i + 1).take_while(|p| p.part).any(|p| {
                aliases()
                    .iter()
                    .any(|a| a.words.iter().any(|w| w.len() == 1 && w[0] == p.text))
                    || STOPWORDS.contains(&p.text.as_str())
            })
            && !t.text.chars().any(|c| c.is_ascii_digit())
        {
            continue;
        }
        if !wish.rest.contains(&t.text) {
            wish.rest.push(t.text.clone());
        }
    }
    wish
}
