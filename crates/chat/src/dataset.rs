//! Training and evaluation data: the `EXPECTED<TAB>REQUEST` files (the utterance table, `crates/chat/data/*.tsv`,
//! the held-out sets), the contexts they were written in, the deterministic generator of variations
//! (`data/templates.tsv`) and the training set of the intent classifier with its fingerprint.

use crate::engine::Known;
use crate::entities::Entities;
use crate::Session;

/// One line of a data file.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// Expected outcome: an operation name, `none`, `question`, `not-understood` or `chat:<action>`.
    pub expected: String,
    /// Expected arguments (`null` when none are listed).
    pub args: serde_json::Value,
    /// The request.
    pub text: String,
    /// Continues the previous line's session.
    pub cont: bool,
}

/// Parses `EXPECTED<TAB>REQUEST` lines (`#` comments, blank lines skipped; a leading `+` continues the session).
pub fn parse_tsv(content: &str) -> Vec<Example> {
    content
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|line| {
            let (expected, text) = line.split_once('\t').unwrap_or((line, ""));
            let (cont, expected) = match expected.trim().strip_prefix('+') {
                Some(e) => (true, e),
                None => (false, expected.trim()),
            };
            let (name, args) = match expected.split_once(' ') {
                Some((n, a)) => (n, serde_json::from_str(a.trim()).ok()?),
                None => (expected, serde_json::Value::Null),
            };
            Some(Example {
                expected: name.to_string(),
                args,
                text: text.trim().to_string(),
                cont,
            })
        })
        .collect()
}

/// The context the utterance table was written in.
pub fn table_known() -> Known {
    Known {
        tasks: vec!["dbus".into(), "metrics".into(), "web".into()],
        now_ms: 10_000_000_000,
        drives: vec!["work".into(), "data".into()],
        images: vec![
            "debian.iso".into(),
            "ubuntu.iso".into(),
            "disk.vdi".into(),
            "scratch.img".into(),
        ],
        sandboxes: vec!["py".into(), "build".into()],
        templates: vec!["host".into(), "debian".into()],
    }
}

/// The appliance the tuning, held-out and family data were written for: images debian.iso, ubuntu-24.04.iso,
/// data.img, alpine.qcow2, disk.vmdk, old.vdi, win.vhdx; drive data attached; sandboxes web (running) and build
/// (stopped); templates host and debian; tasks dbus, metrics and web.
pub fn appliance_known() -> Known {
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

/// The classifier's label for an expected outcome, or `None` when the line does not train it (questions back,
/// confirmations and cancellations are the session's business, not the classifier's).
pub fn label(expected: &str) -> Option<&str> {
    match expected {
        "question" | "chat:confirm" | "chat:cancel" | "chat:nothing-to-confirm" | "chat:nothing-to-cancel" => None,
        "not-understood" | "none" => Some("none"),
        e => Some(e),
    }
}

fn slot_values(slot: &str) -> &'static [&'static str] {
    match slot {
        "SANDBOX" => &["web", "build"],
        "IMAGE" => &[
            "debian.iso",
            "ubuntu-24.04.iso",
            "data.img",
            "alpine.qcow2",
            "disk.vmdk",
            "old.vdi",
            "win.vhdx",
        ],
        "DRIVE" => &["data"],
        "TEMPLATE" => &["host", "debian"],
        "TASK" => &["dbus", "metrics", "web"],
        "NAME" => &[
            "lab", "dev", "pool", "test", "box1", "worker", "app", "ci", "demo", "sandy",
        ],
        "SIZE" => &["1 GB", "512 MB", "2 GiB", "10G", "4 GB", "256M", "20 GB", "1,5 GB"],
        "CMD" => &[
            "uname -a",
            "ls -la /",
            "df -h",
            "cat /etc/os-release",
            "python3 --version",
            "whoami",
            "ps aux",
            "free -m",
            "id",
            "hostname",
        ],
        "NEWFILE" => &[
            "scratch.img",
            "test.qcow2",
            "big.img",
            "work.img",
            "backup.img",
            "disk2.qcow2",
        ],
        "UNIT" => &[
            "nginx.service",
            "cacheosd.service",
            "ssh.service",
            "systemd-networkd.service",
        ],
        "NUM" => &["10", "20", "50", "100", "5"],
        _ => &[],
    }
}

enum Seg {
    Lit(String),
    Alt(Vec<String>),
    Slot(String),
}

fn parse_template(t: &str) -> Vec<Seg> {
    let mut out = Vec::new();
    let mut lit = String::new();
    let mut chars = t.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '{' {
            let mut body = String::new();
            for x in chars.by_ref() {
                if x == '}' {
                    break;
                }
                body.push(x);
            }
            out.push(Seg::Lit(std::mem::take(&mut lit)));
            out.push(Seg::Alt(body.split('|').map(String::from).collect()));
        } else if c == '$' {
            let mut name = String::new();
            while let Some(&x) = chars.peek() {
                if x.is_ascii_uppercase() {
                    name.push(x);
                    chars.next();
                } else {
                    break;
                }
            }
            out.push(Seg::Lit(std::mem::take(&mut lit)));
            out.push(Seg::Slot(name));
        } else {
            lit.push(c);
        }
    }
    out.push(Seg::Lit(lit));
    out
}

/// Variations per template line at most.
pub const PER_TEMPLATE: usize = 16;

/// Expands the generator's templates (`EXPECTED<TAB>TEMPLATE`, `{a|b}` alternatives, `$SANDBOX`-style slots that
/// may also appear in EXPECTED) into examples: every combination when there are few, otherwise a fixed sample.
pub fn generate(templates: &str) -> Vec<Example> {
    let mut out = Vec::new();
    for (lineno, line) in templates
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.starts_with('#') && !l.trim().is_empty())
    {
        let Some((expected, template)) = line.split_once('\t') else {
            continue;
        };
        let segs = parse_template(template.trim());
        let sizes: Vec<usize> = segs
            .iter()
            .map(|s| match s {
                Seg::Lit(_) => 1,
                Seg::Alt(a) => a.len(),
                Seg::Slot(n) => slot_values(n).len().max(1),
            })
            .collect();
        let total: usize = sizes.iter().product::<usize>().max(1);
        let n = total.min(PER_TEMPLATE);
        let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ (lineno as u64).wrapping_mul(0x100_0000_01b3);
        for k in 0..n {
            // Combination number: all of them in order, or a fixed pseudo-random sample.
            let mut idx = if total <= PER_TEMPLATE {
                k
            } else {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed % total as u64) as usize
            };
            let mut text = String::new();
            let mut exp = expected.trim().to_string();
            for (s, size) in segs.iter().zip(&sizes) {
                let pick = idx % size;
                idx /= size;
                match s {
                    Seg::Lit(l) => text.push_str(l),
                    Seg::Alt(a) => text.push_str(&a[pick]),
                    Seg::Slot(name) => {
                        let v = slot_values(name).get(pick).copied().unwrap_or("");
                        text.push_str(v);
                        exp = exp.replacen(&format!("${name}"), v, 1);
                    }
                }
            }
            let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
            out.extend(parse_tsv(&format!("{exp}\t{text}")));
        }
    }
    out.dedup_by(|a, b| a.text == b.text);
    out
}

/// A data source: its name, its examples, and the context it was written in.
#[derive(Debug, Clone)]
pub struct Source {
    /// File name (or `generated`).
    pub name: String,
    /// Examples.
    pub examples: Vec<Example>,
    /// Whether the context is the utterance table's (`true`) or the appliance's.
    pub table_context: bool,
}

/// The classifier's input for one request in its context.
pub fn placeholders(text: &str, known: &Known) -> Vec<String> {
    Entities::find(text, known, &Session::default()).placeholders()
}

/// A fingerprint of the training data: every source's name and content and the trainer's version.
pub fn fingerprint(files: &[(String, String)], trainer_version: u32) -> u64 {
    let mut files: Vec<&(String, String)> = files.iter().collect();
    files.sort();
    let mut h = crate::classifier::fnv64(0, &trainer_version.to_le_bytes());
    for (name, content) in files {
        h = crate::classifier::fnv64(h, name.as_bytes());
        h = crate::classifier::fnv64(h, &[0]);
        h = crate::classifier::fnv64(h, content.as_bytes());
        h = crate::classifier::fnv64(h, &[0]);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tsv_and_templates() {
        let e = parse_tsv("# c\nsandbox.stop {\"name\":\"web\"}\tstoppe web\n+chat:confirm\tja\n\nnone\tpizza\n");
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].args["name"], "web");
        assert!(e[1].cont && e[1].expected == "chat:confirm");
        let g = generate("sandbox.stop {\"name\":\"$SANDBOX\"}\t{stoppe|halte} $SANDBOX{| an}\n");
        assert_eq!(g.len(), 8);
        assert!(g
            .iter()
            .any(|x| x.text == "halte build an" && x.args["name"] == "build"));
        assert!(generate("x\t{a|b|c|d} {a|b|c|d} {a|b|c|d}").len() <= PER_TEMPLATE);
        assert_eq!(generate("x\t{a|b|c|d} {a|b|c|d}"), generate("x\t{a|b|c|d} {a|b|c|d}"));
    }
}
