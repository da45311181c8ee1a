//! Language detection for short requests: German and English function words, the lexicon's language of each
//! vocabulary word, umlauts and ß. Unknown words (product names such as "Flask", object names) count for neither
//! language, so "ich brauche Flask" is German.

use crate::engine::Lang;
use crate::lexicon::{lookup, WordLang};
use crate::normalize::Token;

/// German function words and frequent verbs (folded) that English does not share.
const DE: &[&str] = &[
    "ich", "du", "er", "wir", "ihr", "mir", "mich", "dir", "dich", "uns", "euch", "mein", "meine", "meinen", "dein",
    "deine", "ist", "sind", "bin", "bist", "hat", "habe", "hast", "haben", "wird", "werden", "kann", "koennen",
    "kannst", "soll", "sollte", "will", "willst", "moechte", "brauche", "brauchst", "gib", "zeig", "zeige", "mach",
    "mache", "bitte", "danke", "und", "oder", "aber", "nicht", "kein", "keine", "keinen", "der", "die", "das", "den",
    "dem", "des", "ein", "eine", "einen", "einem", "einer", "mit", "ohne", "von", "vom", "zum", "zur", "fuer", "auf",
    "aus", "bei", "beim", "nach", "seit", "ueber", "unter", "im", "ins", "am", "wie", "was", "wer", "wo", "welche",
    "welcher", "welches", "warum", "wieso", "mal", "doch", "noch", "schon", "jetzt", "gerade", "alle", "alles", "viel",
    "wieviel", "letzten", "letzte", "stunde", "minuten", "heute", "gestern", "neu", "weg", "runter", "hoch", "an",
    "ab", "es", "sie", "ihn", "gibt", "geht", "laeuft", "sag", "sage", "da", "dort", "hier", "darin", "drin", "namens",
    "bzw", "ja", "nein", "gerne", "gern", "lass", "lasse", "los", "sich", "sein", "seine", "ihre", "auch", "nur",
    "sehr", "etwa", "zu", "vor", "hinter", "dann", "denn", "wenn", "ob", "dass", "welchen",
];

/// English function words and frequent verbs that German does not share.
const EN: &[&str] = &[
    "i",
    "you",
    "he",
    "we",
    "they",
    "me",
    "my",
    "your",
    "our",
    "is",
    "are",
    "am",
    "was",
    "were",
    "be",
    "been",
    "have",
    "has",
    "had",
    "do",
    "does",
    "did",
    "can",
    "could",
    "would",
    "should",
    "will",
    "shall",
    "need",
    "want",
    "please",
    "thanks",
    "and",
    "or",
    "but",
    "not",
    "no",
    "the",
    "a",
    "an",
    "of",
    "to",
    "for",
    "with",
    "without",
    "from",
    "on",
    "at",
    "by",
    "into",
    "inside",
    "over",
    "under",
    "about",
    "what",
    "which",
    "who",
    "where",
    "why",
    "how",
    "whats",
    "show",
    "give",
    "make",
    "get",
    "let",
    "lets",
    "all",
    "everything",
    "much",
    "many",
    "last",
    "past",
    "hour",
    "minutes",
    "today",
    "yesterday",
    "new",
    "away",
    "down",
    "up",
    "off",
    "it",
    "them",
    "this",
    "that",
    "these",
    "those",
    "there",
    "here",
    "called",
    "named",
    "yes",
    "some",
    "any",
    "just",
    "only",
    "very",
    "then",
    "if",
    "than",
    "its",
    "it's",
    "i'm",
    "i'd",
    "don't",
    "doesn't",
    "isn't",
    "running",
    "currently",
];

/// Whether a folded word is a German or English function word (never a name or a typo of one).
pub fn function_word(w: &str) -> bool {
    DE.contains(&w) || EN.contains(&w)
}

/// The language `tokens` are written in, `None` when nothing tells.
pub fn detect(tokens: &[Token]) -> Option<Lang> {
    let (mut de, mut en) = (0i32, 0i32);
    for t in tokens.iter().filter(|t| !t.quoted) {
        let w = t.norm.as_str();
        if t.raw.chars().any(|c| "äöüßÄÖÜ".contains(c)) {
            de += 2;
        }
        let (d, e) = (DE.contains(&w), EN.contains(&w));
        if d && !e {
            de += 2;
        } else if e && !d {
            en += 2;
        }
        if !d && !e {
            for h in lookup(w) {
                match h.lang {
                    WordLang::De => de += 1,
                    WordLang::En => en += 1,
                    WordLang::Both => {}
                }
            }
        }
    }
    match de.cmp(&en) {
        std::cmp::Ordering::Greater => Some(Lang::De),
        std::cmp::Ordering::Less => Some(Lang::En),
        std::cmp::Ordering::Equal => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::tokens;

    #[test]
    fn short_german_with_an_english_product_name_is_german() {
        for s in [
            "ich brauche Flask",
            "stoppe web",
            "mach build aus",
            "welche Datenkanäle gibt es",
            "zeig Docker",
        ] {
            assert_eq!(detect(&tokens(s)), Some(Lang::De), "{s}");
        }
        for s in ["I need Flask", "shut down web", "show the drives", "reboot build"] {
            assert_eq!(detect(&tokens(s)), Some(Lang::En), "{s}");
        }
        assert_eq!(detect(&tokens("web")), None);
    }
}
