//! Text normalisation: lower case, umlauts folded to their ASCII spellings (ä→ae, ö→oe, ü→ue, ß→ss) so both
//! spellings meet, punctuation removed, quoted strings kept whole.

/// Folds case and German special letters: `Häng` → `haeng`, `Größe` → `groesse`.
pub fn fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    for c in s.chars().flat_map(char::to_lowercase) {
        match c {
            'ä' => out.push_str("ae"),
            'ö' => out.push_str("oe"),
            'ü' => out.push_str("ue"),
            'ß' => out.push_str("ss"),
            'é' | 'è' | 'ê' => out.push('e'),
            'à' | 'á' | 'â' => out.push('a'),
            _ => out.push(c),
        }
    }
    out
}

/// One token of an utterance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// Folded form used for matching.
    pub norm: String,
    /// The text as written (for names and paths).
    pub raw: String,
    /// Written in quotes: a name or path, never a keyword.
    pub quoted: bool,
}

/// The part of `text` the pipeline reads: the first [`MAX_CHARS`] characters (a pasted megabyte costs no more than a
/// page).
pub fn head(text: &str) -> &str {
    match text.char_indices().nth(MAX_CHARS) {
        Some((at, _)) => &text[..at],
        None => text,
    }
}

/// How many characters of an utterance are read.
pub const MAX_CHARS: usize = 4096;

/// Splits an utterance into tokens. Quotes ("…", '…', „…“, «…») keep their content as one token. Other
/// punctuation separates words, except inside paths and sizes (`/`, `.`, `-`, `_`, `,` between digits, `%`).
pub fn tokens(text: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().take(MAX_CHARS).collect();
    let mut i = 0;
    let closing = |c: char| match c {
        '"' => Some('"'),
        '\'' => Some('\''),
        '„' => Some('“'),
        '“' => Some('”'),
        '«' => Some('»'),
        '`' => Some('`'),
        _ => None,
    };
    // An apostrophe between letters ("there's", "doesn't", "web's") separates words; it never opens a quote.
    let apostrophe = |i: usize| {
        matches!(chars[i], '\'' | '’')
            && i > 0
            && chars[i - 1].is_alphanumeric()
            && chars.get(i + 1).is_some_and(|c| c.is_alphanumeric())
    };
    while i < chars.len() && out.len() < 256 {
        let c = chars[i];
        if apostrophe(i) {
            i += 1;
            continue;
        }
        if let Some(close) = closing(c) {
            // A quote opens a quoted token only at a word start and when it closes.
            if let Some(end) = chars[i + 1..]
                .iter()
                .position(|&x| x == close || (close == '“' && x == '"'))
            {
                let raw: String = chars[i + 1..i + 1 + end].iter().collect();
                if !raw.trim().is_empty() {
                    out.push(Token {
                        norm: fold(raw.trim()),
                        raw: raw.trim().to_string(),
                        quoted: true,
                    });
                }
                i += end + 2;
                continue;
            }
            i += 1;
            continue;
        }
        if c.is_alphanumeric() || matches!(c, '/' | '_' | '~' | '%') {
            let start = i;
            while i < chars.len() {
                let x = chars[i];
                let inner = matches!(x, '.' | '-' | ',' | ':')
                    && i + 1 < chars.len()
                    && chars[i + 1].is_alphanumeric()
                    && i > start
                    && (x != ',' || (chars[i - 1].is_ascii_digit() && chars[i + 1].is_ascii_digit()));
                if x.is_alphanumeric() || matches!(x, '/' | '_' | '~' | '%') || inner {
                    i += 1;
                } else {
                    break;
                }
            }
            let raw: String = chars[start..i].iter().collect();
            out.push(Token {
                norm: fold(&raw),
                raw,
                quoted: false,
            });
            continue;
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norms(s: &str) -> Vec<String> {
        tokens(s).into_iter().map(|t| t.norm).collect()
    }

    #[test]
    fn umlauts_and_ascii_spellings_meet() {
        assert_eq!(fold("Häng das ISO ein, größer!"), "haeng das iso ein, groesser!");
        assert_eq!(
            norms("Zeig mir den Systemstatus!"),
            vec!["zeig", "mir", "den", "systemstatus"]
        );
        assert_eq!(norms("zeige   laufwerke?"), vec!["zeige", "laufwerke"]);
    }

    #[test]
    fn paths_sizes_and_quotes_stay_whole() {
        let t = tokens("häng \"Mein Bild.iso\" ein und /var/lib/x.img mit 1,5 GiB und 50%");
        let raws: Vec<_> = t.iter().map(|t| t.raw.as_str()).collect();
        assert_eq!(
            raws,
            vec![
                "häng",
                "Mein Bild.iso",
                "ein",
                "und",
                "/var/lib/x.img",
                "mit",
                "1,5",
                "GiB",
                "und",
                "50%"
            ]
        );
        assert!(t[1].quoted && !t[0].quoted);
        assert_eq!(norms("debian-12.iso, bitte."), vec!["debian-12.iso", "bitte"]);
    }

    #[test]
    fn unbalanced_quotes_and_long_input_are_harmless() {
        assert_eq!(norms("zeig \"status"), vec!["zeig", "status"]);
        assert!(tokens(&"a ".repeat(100_000)).len() <= 256);
    }
}
