//! Text analysis for German and English: words, lowercasing, stop words, German compound splitting and Snowball
//! stemming, as tantivy analyzers (`kb_de`, `kb_en`) and as plain functions for query coverage.
//!
//! Every passage is indexed twice, once per language, so a question finds it in whichever language it is asked
//! without guessing the document's language. The German analyzer keeps a compound word and adds its parts
//! ("rechnungsdatum" → rechnungsdatum, rechnung, datum), so "Datum der Rechnung" finds it too.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use tantivy::tokenizer::{Language, Stemmer, TextAnalyzer, Token, TokenStream, Tokenizer};

/// Name of the German analyzer in the index's tokenizer manager.
pub const DE: &str = "kb_de";
/// Name of the English analyzer.
pub const EN: &str = "kb_en";

/// The stop word list (German and English).
pub fn stopwords() -> &'static HashSet<String> {
    static SET: OnceLock<HashSet<String>> = OnceLock::new();
    SET.get_or_init(|| words(include_str!("../data/stopwords.txt")).collect())
}

/// The German word parts the compound splitter knows.
pub fn compound_parts() -> &'static HashSet<String> {
    static SET: OnceLock<HashSet<String>> = OnceLock::new();
    SET.get_or_init(|| words(include_str!("../data/de-compound.txt")).collect())
}

fn words(list: &str) -> impl Iterator<Item = String> + '_ {
    list.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(str::split_whitespace)
        .map(str::to_lowercase)
}

/// Words of `text`, lowercased, with their byte offsets: runs of letters and digits (an inner `-`, `.` or `_`
/// splits), at most 40 bytes long.
pub fn split_words(text: &str) -> Vec<(usize, usize, String)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices().chain(std::iter::once((text.len(), ' '))) {
        if c.is_alphanumeric() {
            if start.is_none() {
                start = Some(i);
            }
        } else if let Some(s) = start.take() {
            let w = &text[s..i];
            if w.len() <= 40 {
                out.push((s, i, w.to_lowercase()));
            }
        }
    }
    out
}

/// The parts of a German compound word, when it splits fully into known parts (the last part may carry an
/// inflection ending); empty otherwise. Parts are at least three letters.
pub fn split_compound(word: &str) -> Vec<String> {
    let dict = compound_parts();
    let chars: Vec<char> = word.chars().collect();
    if chars.len() < 6 {
        return Vec::new();
    }
    fn known(dict: &HashSet<String>, s: &str) -> bool {
        dict.contains(s)
    }
    fn tail_known(dict: &HashSet<String>, s: &str) -> bool {
        if known(dict, s) {
            return true;
        }
        for end in ["en", "n", "e", "s", "es", "er", "ern"] {
            if let Some(stem) = s.strip_suffix(end) {
                if stem.chars().count() >= 3 && known(dict, stem) {
                    return true;
                }
            }
        }
        false
    }
    fn go(dict: &HashSet<String>, chars: &[char], depth: usize) -> Option<Vec<String>> {
        if depth > 4 {
            return None;
        }
        let whole: String = chars.iter().collect();
        // Longest head first, so "rechnungsdatum" is rechnung|s|datum rather than a shorter reading.
        for i in (3..=chars.len().saturating_sub(3)).rev() {
            let head: String = chars[..i].iter().collect();
            let mut head_ok = known(dict, &head).then(|| head.clone());
            if head_ok.is_none() {
                for link in ["s", "es", "n", "en", "e"] {
                    if let Some(h) = head.strip_suffix(link) {
                        if h.chars().count() >= 3 && known(dict, h) {
                            head_ok = Some(h.to_string());
                            break;
                        }
                    }
                }
            }
            let Some(h) = head_ok else { continue };
            let rest = &chars[i..];
            let tail: String = rest.iter().collect();
            if tail_known(dict, &tail) {
                return Some(vec![h, tail]);
            }
            if let Some(mut parts) = go(dict, rest, depth + 1) {
                parts.insert(0, h);
                return Some(parts);
            }
        }
        let _ = whole;
        None
    }
    if let Some(parts) = go(dict, &chars, 0) {
        return parts;
    }
    // Separable verb prefixes: "einhängen" also counts as "hängen", "ausschalten" as "schalten".
    for prefix in [
        "ein", "aus", "auf", "ab", "an", "um", "zu", "mit", "vor", "nach", "weg", "her", "hin",
    ] {
        if let Some(rest) = word.strip_prefix(prefix) {
            if rest.chars().count() >= 5 {
                return vec![rest.to_string()];
            }
        }
    }
    Vec::new()
}

/// The words tokenizer: lowercased words without stop words; with `compounds`, each German compound's parts
/// follow it at the same position.
#[derive(Clone)]
pub struct WordTokenizer {
    compounds: bool,
    tokens: Vec<Token>,
}

impl WordTokenizer {
    /// A tokenizer; `compounds` adds German compound parts.
    pub fn new(compounds: bool) -> Self {
        Self {
            compounds,
            tokens: Vec::new(),
        }
    }
}

/// A token stream over a prepared list.
pub struct VecStream<'a> {
    tokens: &'a mut Vec<Token>,
    next: usize,
}

impl TokenStream for VecStream<'_> {
    fn advance(&mut self) -> bool {
        if self.next < self.tokens.len() {
            self.next += 1;
            true
        } else {
            false
        }
    }
    fn token(&self) -> &Token {
        &self.tokens[self.next - 1]
    }
    fn token_mut(&mut self) -> &mut Token {
        &mut self.tokens[self.next - 1]
    }
}

impl Tokenizer for WordTokenizer {
    type TokenStream<'a> = VecStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> VecStream<'a> {
        self.tokens.clear();
        let stop = stopwords();
        let mut position = 0;
        for (from, to, w) in split_words(text) {
            if stop.contains(&w) {
                continue;
            }
            let parts = if self.compounds { split_compound(&w) } else { Vec::new() };
            self.tokens.push(Token {
                offset_from: from,
                offset_to: to,
                position,
                text: w,
                position_length: 1,
            });
            for p in parts {
                self.tokens.push(Token {
                    offset_from: from,
                    offset_to: to,
                    position,
                    text: p,
                    position_length: 1,
                });
            }
            position += 1;
        }
        VecStream {
            tokens: &mut self.tokens,
            next: 0,
        }
    }
}

/// The German analyzer: words, stop words, compound parts, German Snowball stems.
pub fn german() -> TextAnalyzer {
    TextAnalyzer::builder(WordTokenizer::new(true))
        .filter(Stemmer::new(Language::German))
        .build()
}

/// The English analyzer: words, stop words, English Snowball stems.
pub fn english() -> TextAnalyzer {
    TextAnalyzer::builder(WordTokenizer::new(false))
        .filter(Stemmer::new(Language::English))
        .build()
}

/// The terms `analyzer` makes of `text`, in order (with duplicates).
pub fn terms(analyzer: &mut TextAnalyzer, text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut s = analyzer.token_stream(text);
    while s.advance() {
        out.push(s.token().text.clone());
    }
    out
}

/// A query's content words, each with the German and English terms that count as finding it.
#[derive(Debug, Clone)]
pub struct QueryWords {
    /// Per content word: (German terms, English terms).
    pub words: Vec<(Vec<String>, Vec<String>)>,
}

/// Analyzers shared by the index and the coverage computation.
#[derive(Clone)]
pub struct Analyzers {
    de: Arc<std::sync::Mutex<TextAnalyzer>>,
    en: Arc<std::sync::Mutex<TextAnalyzer>>,
}

impl Default for Analyzers {
    fn default() -> Self {
        Self {
            de: Arc::new(std::sync::Mutex::new(german())),
            en: Arc::new(std::sync::Mutex::new(english())),
        }
    }
}

impl Analyzers {
    /// German terms of `text`.
    pub fn de(&self, text: &str) -> Vec<String> {
        terms(&mut self.de.lock().unwrap(), text)
    }

    /// English terms of `text`.
    pub fn en(&self, text: &str) -> Vec<String> {
        terms(&mut self.en.lock().unwrap(), text)
    }

    /// The content words of a query (stop words dropped, duplicates merged).
    pub fn query_words(&self, query: &str) -> QueryWords {
        let mut seen = HashSet::new();
        let mut words = Vec::new();
        for (_, _, w) in split_words(query) {
            if stopwords().contains(&w) || !seen.insert(w.clone()) {
                continue;
            }
            let de = self.de(&w);
            let en = self.en(&w);
            if de.is_empty() && en.is_empty() {
                continue;
            }
            words.push((de, en));
        }
        QueryWords { words }
    }

    /// The share of the query's content words that `text` contains (in either language's analysis), each word
    /// weighted by `weights[i]` (its rarity; all 1 when empty). A compound word counts as found when the word
    /// itself is, or all of its parts are.
    pub fn coverage(&self, q: &QueryWords, text: &str) -> f32 {
        self.weighted_coverage(q, &[], text)
    }

    /// [`Analyzers::coverage`] with per-word weights.
    pub fn weighted_coverage(&self, q: &QueryWords, weights: &[f32], text: &str) -> f32 {
        if q.words.is_empty() {
            return 0.0;
        }
        let de: HashSet<String> = self.de(text).into_iter().collect();
        let en: HashSet<String> = self.en(text).into_iter().collect();
        let weight = |i: usize| weights.get(i).copied().unwrap_or(1.0);
        let total: f32 = (0..q.words.len()).map(weight).sum();
        let found: f32 = q
            .words
            .iter()
            .enumerate()
            .filter(|(_, (d, e))| {
                d.first().is_some_and(|t| de.contains(t))
                    || (d.len() > 1 && d[1..].iter().all(|t| de.contains(t)))
                    || e.iter().any(|t| en.contains(t))
            })
            .map(|(i, _)| weight(i))
            .sum();
        if total <= 0.0 {
            0.0
        } else {
            found / total
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compounds_split_with_linking_elements() {
        assert_eq!(split_compound("rechnungsdatum"), vec!["rechnung", "datum"]);
        assert_eq!(split_compound("netzwerkverbindung"), vec!["netzwerk", "verbindung"]);
        assert_eq!(split_compound("schreibschutzes"), vec!["schreib", "schutzes"]);
        assert!(split_compound("haus").is_empty());
        assert!(split_compound("xyzabcdefg").is_empty());
    }

    #[test]
    fn german_analysis_stems_and_adds_parts() {
        let a = Analyzers::default();
        let t = a.de("Die Rechnungsdaten der Laufwerke");
        assert!(t.contains(&"rechnung".to_string()), "{t:?}");
        assert!(t.iter().any(|x| x.starts_with("laufwerk")), "{t:?}");
        assert!(!t.iter().any(|x| x == "die" || x == "der"), "{t:?}");
        let e = a.en("Attaching drives read-only");
        assert!(
            e.contains(&"attach".to_string()) && e.contains(&"drive".to_string()),
            "{e:?}"
        );
    }

    #[test]
    fn coverage_counts_content_words_only() {
        let a = Analyzers::default();
        let q = a.query_words("Wie hänge ich ein ISO schreibbar ein?");
        assert!(q.words.len() >= 2, "{q:?}");
        assert!(a.coverage(&q, "Ein ISO-Abbild schreibbar einhängen: hänge es mit read_write ein") > 0.6);
        assert!(a.coverage(&q, "Sandboxen bekommen Internet mit network nat") < 0.3);
    }
}
