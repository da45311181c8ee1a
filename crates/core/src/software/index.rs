//! Parsers of what the registries answer: Debian `Packages` indexes (as apt keeps them in `/var/lib/apt/lists`),
//! PyPI's JSON API (`/pypi/NAME/json`) and npm's registry documents (`/-/v1/search`, `/NAME/VERSION`). Pure
//! functions over bytes, so they are tested without a network.

use std::collections::BTreeMap;

use super::{Candidate, Ecosystem};

/// One version of a Debian package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebVersion {
    pub version: String,
    /// `Size:` (the .deb's bytes).
    pub size: Option<u64>,
    pub description: String,
    /// `Pre-Depends:` and `Depends:`, the first alternative of each, without version or architecture.
    pub depends: Vec<String>,
    /// `Priority: required` or `important` (in every debian template already).
    pub base: bool,
}

/// Debian packages by name, each with its versions in index order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DebIndex {
    pub packages: BTreeMap<String, Vec<DebVersion>>,
}

impl DebIndex {
    /// Adds the stanzas of one `Packages` file.
    pub fn add_packages_file(&mut self, text: &str) {
        for stanza in text.split("\n\n") {
            let (mut name, mut version, mut size, mut desc) = (None, None, None, String::new());
            let (mut depends, mut base) = (Vec::new(), false);
            for line in stanza.lines() {
                if let Some(v) = line.strip_prefix("Package: ") {
                    name = Some(v.trim().to_string());
                } else if let Some(v) = line.strip_prefix("Version: ") {
                    version = Some(v.trim().to_string());
                } else if let Some(v) = line.strip_prefix("Size: ") {
                    size = v.trim().parse().ok();
                } else if let Some(v) = line.strip_prefix("Description: ") {
                    desc = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("Description-en: ") {
                    desc = v.trim().to_string();
                } else if let Some(v) = line
                    .strip_prefix("Depends: ")
                    .or_else(|| line.strip_prefix("Pre-Depends: "))
                {
                    for dep in v.split(',') {
                        let first = dep.split('|').next().unwrap_or("").trim();
                        let n = first.split([' ', '(', ':']).next().unwrap_or("");
                        if !n.is_empty() {
                            depends.push(n.to_string());
                        }
                    }
                } else if let Some(v) = line.strip_prefix("Priority: ") {
                    base = matches!(v.trim(), "required" | "important");
                }
            }
            if let (Some(n), Some(v)) = (name, version) {
                let list = self.packages.entry(n).or_default();
                if !list.iter().any(|x| x.version == v) {
                    list.push(DebVersion {
                        version: v,
                        size,
                        description: desc,
                        depends,
                        base,
                    });
                }
            }
        }
    }

    /// The newest version of a package (Debian version order), or the exact one asked for.
    pub fn get(&self, name: &str, version: Option<&str>) -> Option<&DebVersion> {
        let list = self.packages.get(name)?;
        match version {
            Some(v) => list.iter().find(|x| x.version == v),
            None => list.iter().max_by(|a, b| deb_cmp(&a.version, &b.version)),
        }
    }

    /// The packages `roots` pull in that a debian template does not have yet (an estimate: the first alternative of
    /// each dependency, newest versions, everything of priority required or important and `skip` counted as there),
    /// with their download sizes, by name.
    pub fn closure(&self, roots: &[String], skip: &[&str]) -> Vec<(String, u64)> {
        let mut seen: std::collections::BTreeSet<String> = roots.iter().cloned().collect();
        let mut queue: Vec<String> = roots.to_vec();
        let mut out = Vec::new();
        while let Some(n) = queue.pop() {
            let Some(v) = self.get(&n, None) else { continue };
            for d in &v.depends {
                if seen.contains(d) || skip.contains(&d.as_str()) {
                    continue;
                }
                seen.insert(d.clone());
                match self.get(d, None) {
                    Some(dv) if !dv.base => {
                        out.push((d.clone(), dv.size.unwrap_or(0)));
                        queue.push(d.clone());
                    }
                    _ => {}
                }
            }
        }
        out.sort();
        out
    }

    /// Packages whose name or description contains every word of the query, exact name first, then by name length.
    pub fn search(&self, query: &str, limit: usize) -> Vec<Candidate> {
        let words: Vec<String> = query.split_whitespace().map(|w| w.to_lowercase()).collect();
        if words.is_empty() {
            return Vec::new();
        }
        let mut hits: Vec<(u8, usize, &String)> = Vec::new();
        for (name, versions) in &self.packages {
            let desc = versions
                .first()
                .map(|v| v.description.to_lowercase())
                .unwrap_or_default();
            let all = words
                .iter()
                .all(|w| name.contains(w.as_str()) || desc.contains(w.as_str()));
            if !all {
                continue;
            }
            let rank = if words.len() == 1 && *name == words[0] {
                0
            } else if words.iter().all(|w| name.contains(w.as_str())) {
                1
            } else {
                2
            };
            hits.push((rank, name.len(), name));
        }
        hits.sort();
        hits.into_iter()
            .take(limit)
            .filter_map(|(_, _, n)| {
                let v = self.get(n, None)?;
                Some(Candidate {
                    ecosystem: Ecosystem::Apt,
                    name: n.clone(),
                    version: v.version.clone(),
                    size: v.size,
                    description: v.description.clone(),
                    via: None,
                })
            })
            .collect()
    }
}

fn order(c: char) -> i32 {
    match c {
        '~' => -1,
        c if c.is_ascii_alphabetic() => c as i32,
        c => c as i32 + 256,
    }
}

fn cmp_part(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let (mut a, mut b) = (a, b);
    while !a.is_empty() || !b.is_empty() {
        let na = a.find(|c: char| c.is_ascii_digit()).unwrap_or(a.len());
        let nb = b.find(|c: char| c.is_ascii_digit()).unwrap_or(b.len());
        let (sa, sb) = (&a[..na], &b[..nb]);
        let mut ca = sa.chars();
        let mut cb = sb.chars();
        loop {
            let (x, y) = (ca.next(), cb.next());
            if x.is_none() && y.is_none() {
                break;
            }
            let ox = x.map(order).unwrap_or(0);
            let oy = y.map(order).unwrap_or(0);
            if ox != oy {
                return ox.cmp(&oy);
            }
        }
        a = &a[na..];
        b = &b[nb..];
        let da = a.find(|c: char| !c.is_ascii_digit()).unwrap_or(a.len());
        let db = b.find(|c: char| !c.is_ascii_digit()).unwrap_or(b.len());
        let x: u128 = a[..da].parse().unwrap_or(0);
        let y: u128 = b[..db].parse().unwrap_or(0);
        if x != y {
            return x.cmp(&y);
        }
        a = &a[da..];
        b = &b[db..];
    }
    Ordering::Equal
}

/// Debian version order (epoch, upstream, revision; `~` sorts before everything).
pub fn deb_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let split = |v: &str| -> (u64, String, String) {
        let (epoch, rest) = match v.split_once(':') {
            Some((e, r)) => (e.parse().unwrap_or(0), r),
            None => (0, v),
        };
        match rest.rsplit_once('-') {
            Some((u, r)) => (epoch, u.to_string(), r.to_string()),
            None => (epoch, rest.to_string(), String::new()),
        }
    };
    let (ea, ua, ra) = split(a);
    let (eb, ub, rb) = split(b);
    ea.cmp(&eb)
        .then_with(|| cmp_part(&ua, &ub))
        .then_with(|| cmp_part(&ra, &rb))
}

/// Whether a version's upstream part starts with the asked prefix ("18" matches "18.19.0+dfsg-6~deb12u2").
pub fn version_has_prefix(version: &str, prefix: &str) -> bool {
    let upstream = version.split_once(':').map(|(_, r)| r).unwrap_or(version);
    upstream == prefix
        || upstream
            .strip_prefix(prefix)
            .is_some_and(|r| r.starts_with(|c: char| !c.is_ascii_digit()))
}

/// The name of a .deb in apt's archive directory → (package, version). apt writes `NAME_VERSION_ARCH.deb` with the
/// epoch's `:` as `%3a`.
pub fn parse_deb_filename(file: &str) -> Option<(String, String)> {
    let stem = file.strip_suffix(".deb")?;
    let mut parts = stem.split('_');
    let name = parts.next()?;
    let version = parts.next()?.replace("%3a", ":");
    parts.next()?;
    Some((name.to_string(), version))
}

/// A PyPI `/pypi/NAME/json` document → the package at `version` (the newest when `None`), or the versions it has
/// when the asked one is missing (`Err`).
pub fn parse_pypi(json: &[u8], version: Option<&str>) -> Result<Candidate, Vec<String>> {
    let v: serde_json::Value = serde_json::from_slice(json).map_err(|_| Vec::new())?;
    let info = &v["info"];
    let name = info["name"].as_str().unwrap_or_default().to_string();
    let newest = info["version"].as_str().unwrap_or_default().to_string();
    let releases = v["releases"].as_object();
    let want = version.map(str::to_string).unwrap_or(newest);
    let files = match releases {
        Some(r) => match r.get(&want) {
            Some(f) => f.as_array().cloned().unwrap_or_default(),
            None => {
                let mut have: Vec<String> = r.keys().cloned().collect();
                have.sort_by(|a, b| deb_cmp(a, b));
                return Err(have);
            }
        },
        None => v["urls"].as_array().cloned().unwrap_or_default(),
    };
    // The size of a pure-Python wheel when there is one, else of the first file.
    let pick = files
        .iter()
        .find(|f| f["filename"].as_str().is_some_and(|n| n.ends_with("py3-none-any.whl")))
        .or_else(|| files.iter().find(|f| f["packagetype"] == "bdist_wheel"))
        .or_else(|| files.first());
    Ok(Candidate {
        ecosystem: Ecosystem::Pip,
        name,
        version: want,
        size: pick.and_then(|f| f["size"].as_u64()),
        description: info["summary"].as_str().unwrap_or_default().to_string(),
        via: None,
    })
}

/// An npm `/NAME/VERSION` (or `/NAME/latest`) document → the package.
pub fn parse_npm_version(json: &[u8]) -> Option<Candidate> {
    let v: serde_json::Value = serde_json::from_slice(json).ok()?;
    Some(Candidate {
        ecosystem: Ecosystem::Npm,
        name: v["name"].as_str()?.to_string(),
        version: v["version"].as_str()?.to_string(),
        size: v["dist"]["unpackedSize"].as_u64(),
        description: v["description"].as_str().unwrap_or_default().to_string(),
        via: None,
    })
}

/// An npm `/-/v1/search` answer → candidates.
pub fn parse_npm_search(json: &[u8]) -> Vec<Candidate> {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(json) else {
        return Vec::new();
    };
    v["objects"]
        .as_array()
        .map(|objs| {
            objs.iter()
                .filter_map(|o| {
                    let p = &o["package"];
                    Some(Candidate {
                        ecosystem: Ecosystem::Npm,
                        name: p["name"].as_str()?.to_string(),
                        version: p["version"].as_str()?.to_string(),
                        size: None,
                        description: p["description"].as_str().unwrap_or_default().to_string(),
                        via: None,
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Percent-encodes a (validated) package name for a URL path (`@scope/name` → `@scope%2fname`).
pub fn url_name(name: &str) -> String {
    name.replace('/', "%2f")
}

/// Percent-encodes a query string value.
pub fn url_query(q: &str) -> String {
    let mut out = String::new();
    for b in q.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
