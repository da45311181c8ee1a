//! The chunker: sections into passages of a few lines, each keeping its heading or page and exact line range.

use crate::read::Section;

/// Most lines in a passage.
pub const MAX_LINES: usize = 14;
/// Most bytes of text in a passage (a passage ends at the line that reaches it).
pub const MAX_BYTES: usize = 1200;

/// A passage to index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Heading of its section.
    pub heading: Option<String>,
    /// PDF page.
    pub page: Option<u32>,
    /// First line.
    pub line_start: u32,
    /// Last line (inclusive).
    pub line_end: u32,
    /// The lines joined by newlines.
    pub text: String,
}

/// Cuts every section into passages: blank lines at either end are dropped, a passage ends after `MAX_LINES`
/// lines or `MAX_BYTES` bytes, preferably at a blank line in its second half.
pub fn chunks(sections: &[Section]) -> Vec<Chunk> {
    let mut out = Vec::new();
    for s in sections {
        let mut cur: Vec<&(u32, String)> = Vec::new();
        let mut bytes = 0;
        let flush = |cur: &mut Vec<&(u32, String)>, out: &mut Vec<Chunk>| {
            while cur.last().is_some_and(|(_, l)| l.trim().is_empty()) {
                cur.pop();
            }
            if let (Some(first), Some(last)) = (cur.first(), cur.last()) {
                out.push(Chunk {
                    heading: s.heading.clone(),
                    page: s.page,
                    line_start: first.0,
                    line_end: last.0,
                    text: cur.iter().map(|(_, l)| l.as_str()).collect::<Vec<_>>().join("\n"),
                });
            }
            cur.clear();
        };
        for line in &s.lines {
            let blank = line.1.trim().is_empty();
            if cur.is_empty() && blank {
                continue;
            }
            let full = cur.len() >= MAX_LINES || bytes >= MAX_BYTES;
            let good_break = blank && cur.len() >= MAX_LINES / 2;
            if full || good_break {
                flush(&mut cur, &mut out);
                bytes = 0;
                if blank {
                    continue;
                }
            }
            // Very long lines (logs, minified files) are cut so one passage stays readable.
            bytes += line.1.len().min(MAX_BYTES);
            cur.push(line);
        }
        flush(&mut cur, &mut out);
    }
    for c in &mut out {
        if c.text.len() > 4 * MAX_BYTES {
            let mut end = 4 * MAX_BYTES;
            while !c.text.is_char_boundary(end) {
                end -= 1;
            }
            c.text.truncate(end);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passages_keep_exact_line_ranges() {
        let lines: Vec<(u32, String)> = (1..=40)
            .map(|n| (n, if n == 10 { String::new() } else { format!("line {n}") }))
            .collect();
        let c = chunks(&[Section {
            heading: Some("H".into()),
            page: None,
            lines,
        }]);
        assert_eq!((c[0].line_start, c[0].line_end), (1, 9));
        assert_eq!(c[1].line_start, 11);
        assert!(c.iter().all(|c| c.heading.as_deref() == Some("H")));
        assert_eq!(c.last().unwrap().line_end, 40);
        assert!(c.iter().all(|c| c.text.lines().count() <= MAX_LINES));
    }
}
