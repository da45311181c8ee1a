//! Readers: turn a file's bytes into sections (heading or page, and numbered lines) that the chunker cuts into
//! passages. Plain text and source code, Markdown (headings from pulldown-cmark), HTML (headings and text from
//! scraper), man pages (groff source: `.SH`/`.SS` sections, macros and escapes stripped), PDF text layers (lopdf,
//! one section per page) and gzip-compressed files of any of these (Debian's `/usr/share/doc`).

use std::io::Read;

/// A part of a document: a heading or page and its lines, each with its 1-based line number in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// Heading (Markdown/HTML heading path, man page section) when there is one.
    pub heading: Option<String>,
    /// PDF page (1-based).
    pub page: Option<u32>,
    /// (line number, text).
    pub lines: Vec<(u32, String)>,
}

/// Why a file was not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// Binary content (NUL bytes, not text).
    Binary,
    /// A format without text (a PDF without a text layer, an empty file).
    NoText,
    /// The format could not be parsed.
    Unreadable(String),
}

/// What a file is, by name and content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Markdown,
    Html,
    Man,
    Pdf,
}

/// File extensions that are never text.
const BINARY_EXT: &[&str] = &[
    "png", "jpg", "jpeg", "gif", "webp", "ico", "zip", "xz", "bz2", "zst", "7z", "tar", "iso", "img", "qcow2", "vmdk",
    "vdi", "so", "o", "a", "exe", "dll", "bin", "mp3", "mp4", "mkv", "ogg", "wav", "flac", "woff", "woff2", "ttf",
    "otf", "class", "jar", "pyc", "deb", "rpm", "squashfs", "sqlite", "db", "redb",
];

/// The kind of a file by its name and first bytes.
pub fn kind_of(name: &str, head: &[u8]) -> Option<Kind> {
    let lower = name.to_lowercase();
    let ext = lower.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    if head.starts_with(b"%PDF-") {
        return Some(Kind::Pdf);
    }
    if BINARY_EXT.contains(&ext) {
        return None;
    }
    Some(match ext {
        "md" | "markdown" => Kind::Markdown,
        "html" | "htm" | "xhtml" => Kind::Html,
        "pdf" => Kind::Pdf,
        e if e.len() == 1 && e.as_bytes()[0].is_ascii_digit() => Kind::Man,
        _ if head.starts_with(b".TH ") || head.starts_with(b".\\\"") || head.starts_with(b"'\\\"") => Kind::Man,
        _ if head.len() > 5 && head[..5].eq_ignore_ascii_case(b"<!doc") || head.starts_with(b"<html") => Kind::Html,
        _ => Kind::Text,
    })
}

/// Reads a file's bytes as sections. `name` is the file name (for gzip: the name without `.gz`).
pub fn read(name: &str, bytes: &[u8], max_bytes: u64) -> Result<Vec<Section>, Skip> {
    if let Some(inner) = name.strip_suffix(".gz") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .take(max_bytes)
            .read_to_end(&mut out)
            .map_err(|e| Skip::Unreadable(format!("gzip: {e}")))?;
        return read(inner, &out, max_bytes);
    }
    let head = &bytes[..bytes.len().min(1024)];
    let kind = kind_of(name, head).ok_or(Skip::Binary)?;
    let sections = match kind {
        Kind::Pdf => pdf(bytes)?,
        _ => {
            let text = text_of(bytes)?;
            match kind {
                Kind::Markdown => markdown(&text),
                Kind::Html => html(&text),
                Kind::Man => man(&text),
                _ => plain(&text),
            }
        }
    };
    if sections
        .iter()
        .all(|s| s.lines.iter().all(|(_, l)| l.trim().is_empty()))
    {
        return Err(Skip::NoText);
    }
    Ok(sections)
}

/// Bytes as text: UTF-8 (invalid sequences replaced), refused when it has NUL bytes or is mostly not text.
fn text_of(bytes: &[u8]) -> Result<String, Skip> {
    let sample = &bytes[..bytes.len().min(8192)];
    if sample.contains(&0) {
        return Err(Skip::Binary);
    }
    let text = String::from_utf8_lossy(bytes);
    let bad = text
        .chars()
        .take(8192)
        .filter(|c| *c == '\u{FFFD}' || (c.is_control() && !c.is_whitespace()))
        .count();
    if bad * 10 > text.chars().take(8192).count().max(1) {
        return Err(Skip::Binary);
    }
    Ok(text.into_owned())
}

fn numbered(text: &str) -> impl Iterator<Item = (u32, &str)> {
    text.lines().enumerate().map(|(i, l)| (i as u32 + 1, l))
}

/// Plain text, logs and source code: one section without a heading.
pub fn plain(text: &str) -> Vec<Section> {
    vec![Section {
        heading: None,
        page: None,
        lines: numbered(text).map(|(n, l)| (n, l.to_string())).collect(),
    }]
}

/// Markdown: a section per heading, named by the heading path ("Drives › Attaching").
pub fn markdown(text: &str) -> Vec<Section> {
    use pulldown_cmark::{Event, Parser, Tag, TagEnd};
    // Line number of each byte offset.
    let line_of = |off: usize| text[..off.min(text.len())].matches('\n').count() as u32 + 1;
    let mut heads: Vec<(u32, usize, String)> = Vec::new(); // (line, level, text)
    let mut current: Option<(u32, usize, String)> = None;
    for (ev, range) in Parser::new(text).into_offset_iter() {
        match ev {
            Event::Start(Tag::Heading { level, .. }) => {
                current = Some((line_of(range.start), level as usize, String::new()))
            }
            Event::Text(t) | Event::Code(t) => {
                if let Some((_, _, s)) = current.as_mut() {
                    s.push_str(&t);
                }
            }
            Event::End(TagEnd::Heading(_)) => {
                if let Some(h) = current.take() {
                    heads.push(h);
                }
            }
            _ => {}
        }
    }
    let lines: Vec<(u32, &str)> = numbered(text).collect();
    let mut out = Vec::new();
    let mut path: Vec<(usize, String)> = Vec::new();
    let first = heads.first().map(|h| h.0).unwrap_or(u32::MAX);
    let pre: Vec<(u32, String)> = lines
        .iter()
        .filter(|(n, _)| *n < first)
        .map(|(n, l)| (*n, l.to_string()))
        .collect();
    if !pre.is_empty() {
        out.push(Section {
            heading: None,
            page: None,
            lines: pre,
        });
    }
    for (i, (line, level, title)) in heads.iter().enumerate() {
        while path.last().is_some_and(|(l, _)| l >= level) {
            path.pop();
        }
        path.push((*level, title.trim().to_string()));
        let end = heads.get(i + 1).map(|h| h.0).unwrap_or(u32::MAX);
        let body: Vec<(u32, String)> = lines
            .iter()
            .filter(|(n, _)| *n >= *line && *n < end)
            .map(|(n, l)| (*n, strip_markdown(l)))
            .collect();
        // The document title (a lone level-1 heading) is not repeated in every section's path.
        let named: Vec<&str> = path
            .iter()
            .skip(usize::from(path.len() > 1 && path[0].0 == 1))
            .map(|(_, t)| t.as_str())
            .collect();
        out.push(Section {
            heading: Some(named.join(" › ")),
            page: None,
            lines: body,
        });
    }
    out
}

fn strip_markdown(line: &str) -> String {
    line.trim_start_matches('#').replace("**", "").replace('`', "")
}

/// HTML: sections at `<h1>`…`<h6>` lines of the source, so line ranges point into the file itself.
pub fn html(text: &str) -> Vec<Section> {
    let lines: Vec<(u32, &str)> = numbered(text).collect();
    let is_head = |l: &str| {
        let l = l.to_ascii_lowercase();
        (1..=6).any(|n| l.contains(&format!("<h{n}")))
    };
    let mut out: Vec<Section> = Vec::new();
    let mut start = 0usize;
    let flush = |from: usize, to: usize, out: &mut Vec<Section>| {
        if from >= to {
            return;
        }
        let seg = &lines[from..to];
        let src: String = seg.iter().map(|(_, l)| *l).collect::<Vec<_>>().join("\n");
        let frag = scraper::Html::parse_fragment(&src);
        let heading = scraper::Selector::parse("h1, h2, h3, h4, h5, h6").ok().and_then(|sel| {
            frag.select(&sel).next().map(|h| {
                h.text()
                    .collect::<String>()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
        });
        let skip = scraper::Selector::parse("script, style").ok();
        let hidden: Vec<_> = skip
            .map(|s| frag.select(&s).flat_map(|e| e.text().map(str::to_string)).collect())
            .unwrap_or_default();
        let mut body: String = frag.root_element().text().collect();
        for h in hidden {
            body = body.replacen(&h, "", 1);
        }
        let text_lines: Vec<String> = body
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|l| !l.is_empty())
            .collect();
        // Spread the extracted lines over the segment's source lines; the range stays the segment's.
        let (first, last) = (seg[0].0, seg[seg.len() - 1].0);
        let mut lines_out = Vec::new();
        for (i, l) in text_lines.into_iter().enumerate() {
            lines_out.push(((first + i as u32).min(last), l));
        }
        if let Some(last_line) = lines_out.last_mut() {
            last_line.0 = last_line.0.max(last.min(first + 1_000_000));
        }
        out.push(Section {
            heading,
            page: None,
            lines: lines_out,
        });
    };
    for (i, (_, l)) in lines.iter().enumerate() {
        if i > start && is_head(l) {
            flush(start, i, &mut out);
            start = i;
        }
    }
    flush(start, lines.len(), &mut out);
    out
}

/// Man page source: sections from `.SH` (and `.SS`), text macros' arguments kept, other requests and escapes
/// dropped.
pub fn man(text: &str) -> Vec<Section> {
    let mut out: Vec<Section> = Vec::new();
    let mut sh: Option<String> = None;
    let mut cur = Section {
        heading: None,
        page: None,
        lines: Vec::new(),
    };
    for (n, raw) in numbered(text) {
        let line = raw.trim_end();
        if line.starts_with(".\\\"") || line.starts_with("'\\\"") || line.starts_with("\\\"") {
            continue;
        }
        if let Some(rest) = line.strip_prefix(".SH").or_else(|| line.strip_prefix(".SS")) {
            let title = unescape(rest.trim().trim_matches('"'));
            let heading = if line.starts_with(".SS") {
                Some(format!("{} › {}", sh.clone().unwrap_or_default(), title))
            } else {
                sh = Some(title.clone());
                Some(title)
            };
            if !cur.lines.is_empty() || cur.heading.is_some() {
                out.push(std::mem::replace(
                    &mut cur,
                    Section {
                        heading: None,
                        page: None,
                        lines: Vec::new(),
                    },
                ));
            }
            cur.heading = heading;
            continue;
        }
        let content = if let Some(rest) = line.strip_prefix('.') {
            let (mac, args) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            match mac {
                "B" | "I" | "BR" | "RB" | "IR" | "RI" | "BI" | "IB" | "SM" | "SB" | "TP" | "IP" | "OP" | "UR"
                | "MT" | "Nm" | "Nd" | "Ar" | "Fl" | "Op" | "Pa" | "Dl" | "It" => {
                    let words: Vec<String> = args
                        .split('"')
                        .flat_map(|p| p.split_whitespace())
                        .map(unescape)
                        .collect();
                    if mac == "IP" || mac == "TP" {
                        words.first().cloned().unwrap_or_default()
                    } else {
                        words.join(if mac.len() == 2 && mac != "SM" && mac != "SB" {
                            ""
                        } else {
                            " "
                        })
                    }
                }
                _ => String::new(),
            }
        } else {
            unescape(line)
        };
        if !content.is_empty() || !line.starts_with('.') {
            cur.lines.push((n, content));
        }
    }
    out.push(cur);
    out.retain(|s| !s.lines.is_empty());
    out
}

/// Skips a one-letter or `(xx` escape name.
fn skip_name(it: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    if it.next() == Some('(') {
        it.next();
        it.next();
    }
}

/// Removes groff escapes: fonts, `\-`, `\(xx`, `\&`, `\e`, `\*(xx`.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('f') => skip_name(&mut it),
            Some('-') => out.push('-'),
            Some('e') | Some('\\') => out.push('\\'),
            Some('&') | Some('|') | Some('^') | Some('c') => {}
            Some('(') => {
                let a = it.next();
                let b = it.next();
                out.push_str(match (a, b) {
                    (Some('e'), Some('m')) | (Some('e'), Some('n')) => "-",
                    (Some('b'), Some('u')) => "*",
                    (Some('a'), Some('q')) => "'",
                    (Some('d'), Some('q')) => "\"",
                    _ => "",
                });
            }
            Some('*') => skip_name(&mut it),
            Some(' ') => out.push(' '),
            Some(o) => out.push(o),
            None => {}
        }
    }
    out
}

/// PDF: the text layer of each page as a section; a PDF whose pages have no text is [`Skip::NoText`].
pub fn pdf(bytes: &[u8]) -> Result<Vec<Section>, Skip> {
    let doc = lopdf::Document::load_mem(bytes).map_err(|e| Skip::Unreadable(format!("pdf: {e}")))?;
    let mut out = Vec::new();
    for (page, _) in doc.get_pages() {
        let text = doc.extract_text(&[page]).unwrap_or_default();
        let lines: Vec<(u32, String)> = numbered(&text)
            .map(|(n, l)| (n, l.trim().to_string()))
            .filter(|(_, l)| !l.is_empty())
            .collect();
        if !lines.is_empty() {
            out.push(Section {
                heading: None,
                page: Some(page),
                lines,
            });
        }
    }
    if out.is_empty() {
        return Err(Skip::NoText);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_sections_carry_heading_paths_and_lines() {
        let md = "# Guide\n\nIntro.\n\n## Drives\n\nAttach one.\n\n### Read-write\n\nUse rw.\n";
        let s = markdown(md);
        let rw = s
            .iter()
            .find(|s| s.heading.as_deref() == Some("Drives › Read-write"))
            .unwrap();
        assert_eq!(rw.lines.first().unwrap().0, 9);
        assert!(rw.lines.iter().any(|(n, l)| *n == 11 && l == "Use rw."));
        assert!(s.iter().any(|s| s.heading.as_deref() == Some("Guide")));
    }

    #[test]
    fn man_pages_lose_macros_and_keep_sections() {
        let src = ".TH X 1\n.SH NAME\nx \\- does things\n.SH OPTIONS\n.TP\n.B \\-\\-force\nDetach \\fBnow\\fR.\n";
        let s = man(src);
        let opts = s.iter().find(|s| s.heading.as_deref() == Some("OPTIONS")).unwrap();
        let text: Vec<&str> = opts.lines.iter().map(|(_, l)| l.as_str()).collect();
        assert!(text.contains(&"--force") && text.contains(&"Detach now."), "{text:?}");
        assert_eq!(opts.lines.last().unwrap().0, 7);
    }

    #[test]
    fn html_sections_start_at_heading_lines() {
        let src = "<html><body>\n<h1>Title</h1>\n<p>One</p>\n<h2>Second</h2>\n<p>Two <b>bold</b></p>\n<script>x()</script>\n</body></html>\n";
        let s = html(src);
        let second = s.iter().find(|s| s.heading.as_deref() == Some("Second")).unwrap();
        assert_eq!(second.lines.first().unwrap().0, 4);
        assert!(second.lines.iter().any(|(_, l)| l.contains("Two bold")));
        assert!(!second.lines.iter().any(|(_, l)| l.contains("x()")));
    }

    #[test]
    fn binary_and_gzip() {
        assert_eq!(read("a.txt", b"ab\0cd", 1 << 20), Err(Skip::Binary));
        assert_eq!(read("a.png", b"hello", 1 << 20), Err(Skip::Binary));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, b"# T\n\nhello world\n").unwrap();
        let s = read("README.md.gz", &gz.finish().unwrap(), 1 << 20).unwrap();
        assert_eq!(s[0].heading.as_deref(), Some("T"));
        assert_eq!(read("empty.txt", b"", 1 << 20), Err(Skip::NoText));
    }
}
