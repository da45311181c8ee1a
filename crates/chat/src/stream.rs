//! Streaming a model's words while it still writes its JSON proposal: [`TextStream`] is fed the raw pieces and hands
//! out only the decoded `"text"` of a `question` or `answer` proposal as it arrives (an operation proposal streams
//! nothing: its result follows once it ran). What is streamed is a preview; the reply the chat then sends is the
//! validated whole.

/// Finds the `"text"` string of an answer or question in a growing JSON document and decodes it piece by piece.
#[derive(Debug, Default)]
pub struct TextStream {
    raw: String,
    /// Byte offset in `raw` of the first undecoded character of the text string, once found.
    at: Option<usize>,
    /// The string ended (its closing quote was seen).
    done: bool,
}

fn is_text_kind(raw: &str) -> bool {
    let compact: String = raw.chars().filter(|c| !c.is_whitespace()).collect();
    compact.contains("\"kind\":\"answer\"") || compact.contains("\"kind\":\"question\"")
}

/// Where the value of `"text":` starts (just after its opening quote).
fn text_start(raw: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = raw[from..].find("\"text\"") {
        let after = from + i + "\"text\"".len();
        let rest = &raw[after..];
        let t = rest.trim_start();
        if let Some(t2) = t.strip_prefix(':') {
            let t3 = t2.trim_start();
            if t3.starts_with('"') {
                return Some(raw.len() - t3.len() + 1);
            }
            if t3.is_empty() {
                return None;
            }
        } else if t.is_empty() {
            return None;
        }
        from = after;
    }
    None
}

impl TextStream {
    /// Feeds the next raw piece; returns the text that became readable (possibly empty).
    pub fn feed(&mut self, piece: &str) -> String {
        self.raw.push_str(piece);
        if self.done {
            return String::new();
        }
        if self.at.is_none() {
            if !is_text_kind(&self.raw) {
                return String::new();
            }
            self.at = text_start(&self.raw);
        }
        let Some(mut i) = self.at else {
            return String::new();
        };
        let mut out = String::new();
        let b = self.raw.as_bytes();
        while i < b.len() {
            match b[i] {
                b'"' => {
                    self.done = true;
                    i += 1;
                    break;
                }
                b'\\' => {
                    let Some(&e) = b.get(i + 1) else { break };
                    let (s, len) = match e {
                        b'n' => ("\n".to_string(), 2),
                        b't' => ("\t".to_string(), 2),
                        b'r' => (String::new(), 2),
                        b'"' => ("\"".to_string(), 2),
                        b'\\' => ("\\".to_string(), 2),
                        b'/' => ("/".to_string(), 2),
                        b'u' => {
                            let Some(hex) = self.raw.get(i + 2..i + 6) else { break };
                            let c = u32::from_str_radix(hex, 16)
                                .ok()
                                .and_then(char::from_u32)
                                .unwrap_or('\u{fffd}');
                            (c.to_string(), 6)
                        }
                        _ => (String::new(), 2),
                    };
                    out.push_str(&s);
                    i += len;
                }
                _ => {
                    // A whole UTF-8 character (pieces may split one; then wait for the rest).
                    let rest = &self.raw.as_bytes()[i..];
                    let w = match rest[0] {
                        x if x < 0x80 => 1,
                        x if x >= 0xF0 => 4,
                        x if x >= 0xE0 => 3,
                        _ => 2,
                    };
                    match self.raw.get(i..i + w) {
                        Some(c) => {
                            out.push_str(c);
                            i += w;
                        }
                        None => break,
                    }
                }
            }
        }
        self.at = Some(i);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(pieces: &[&str]) -> String {
        let mut s = TextStream::default();
        pieces.iter().map(|p| s.feed(p)).collect()
    }

    #[test]
    fn answers_stream_their_text_and_operations_nothing() {
        assert_eq!(
            run(&[
                r#"{"kind":"ans"#,
                r#"wer","te"#,
                r#"xt":"Ein Lauf"#,
                r#"werk ist "#,
                r#"eine Datei."}"#
            ]),
            "Ein Laufwerk ist eine Datei."
        );
        assert_eq!(run(&[r#"{ "kind" : "question", "text" : "Welches?" }"#]), "Welches?");
        assert_eq!(
            run(&[r#"{"kind":"answer","text":"a\"b\\c\nd \u00e4"#, r#"\u00"#, r#"fc"}"#]),
            "a\"b\\c\nd äü"
        );
        // A multi-byte character split between pieces (as bytes cannot be split in a &str, split at the escape).
        assert_eq!(run(&[r#"{"kind":"answer","text":"Grüße""#, "}"]), "Grüße");
        assert_eq!(
            run(&[r#"{"kind":"operation","operation":"system.status","args":{"text":"x"}}"#]),
            ""
        );
        assert_eq!(run(&["Sure, here is the text: \"hello\""]), "");
    }
}
