//! Software in sandboxes (issue 15): find packages for a wish ("ich brauche Flask"), plan an install with exact
//! versions and sizes, run it as a job inside a sandbox (never on the appliance), keep a lockfile per sandbox, and
//! make a sandbox's port reachable and a command of it keep running.
//!
//! Data: `data/aliases.tsv` (wishes → packages) and `data/profiles.tsv` (development environments), parsed by
//! [`aliases`]. Lookups go through the narrow [`resolve::Resolver`] trait (Debian's package index, PyPI's JSON API,
//! npm's search endpoint; the real ones live in `cacheos-sys`), plans are made by [`plan::plan`], installs run
//! through [`install::SandboxAccess`] (the sandbox manager's exec with argv, or a recording fake) and port forwards
//! through [`expose::PortForwarder`] (nftables DNAT, or a recording fake).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub mod aliases;
pub mod expose;
pub mod fake;
pub mod index;
pub mod install;
pub mod plan;
pub mod resolve;
pub mod starters;

#[cfg(test)]
mod tests;

/// A package ecosystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Ecosystem {
    /// Debian packages through apt, from the archive of the sandbox's template (Debian 12).
    Apt,
    /// Python packages from PyPI, installed with pip into a venv (`/opt/cacheos/venv`).
    Pip,
    /// Node.js packages from npm, installed into the project directory (`/srv/app`).
    Npm,
}

impl Ecosystem {
    /// The serde name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Apt => "apt",
            Self::Pip => "pip",
            Self::Npm => "npm",
        }
    }

    /// What people call its registry.
    pub fn registry(self) -> &'static str {
        match self {
            Self::Apt => "Debian",
            Self::Pip => "PyPI",
            Self::Npm => "npm",
        }
    }

    /// All, in a fixed order.
    pub const ALL: [Ecosystem; 3] = [Ecosystem::Apt, Ecosystem::Pip, Ecosystem::Npm];
}

impl std::fmt::Display for Ecosystem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where pip installs (a venv: Debian 12 refuses a system-wide pip, PEP 668).
pub const VENV_DIR: &str = "/opt/cacheos/venv";
/// Where npm installs (the project directory, with its `package.json` and `package-lock.json`).
pub const NPM_DIR: &str = "/srv/app";
/// The template a new sandbox for software is made from.
pub const DEFAULT_TEMPLATE: &str = "debian";
/// The store record kind of the per-sandbox lockfile (key: the sandbox name).
pub const LOCK_KIND: &str = "software-lock";

/// One package asked for explicitly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PackageRequest {
    pub ecosystem: Ecosystem,
    pub name: String,
    /// An exact version; the newest when absent.
    #[serde(default)]
    pub version: Option<String>,
}

/// Arguments of `software.search`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SoftwareSearchArgs {
    /// A package name or a wish in words ("Flask", "eine Datenbank"); empty means the caller's utterance (chat).
    #[serde(default)]
    pub query: String,
    /// Only this ecosystem; all when absent.
    #[serde(default)]
    pub ecosystem: Option<Ecosystem>,
}

/// Arguments of `software.plan` and `software.install`: a wish in words, a profile and/or explicit packages, and
/// optionally the sandbox (a new one from the debian template with NAT is proposed when absent).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SoftwareInstallArgs {
    /// The sandbox to install into; absent: a new sandbox (named after the wish) from the debian template with NAT.
    #[serde(default)]
    pub sandbox: Option<String>,
    /// Explicit packages.
    #[serde(default)]
    pub packages: Vec<PackageRequest>,
    /// A wish in words ("Flask und Redis", "eine Python-Entwicklungsumgebung"); `""` means the caller's utterance
    /// (what the chat sends). Resolved through the alias table and the profiles.
    #[serde(default)]
    pub request: Option<String>,
    /// A profile by name (`python`, `node`, `c`, `cpp`, `rust`, `go`, `java`, `php`, `ruby`, `web`).
    #[serde(default)]
    pub profile: Option<String>,
    /// Starter apps to set up (alias keys with a starter, such as `flask`): files written when missing, the service
    /// kept running and its port exposed. Filled from the wish by the planner; a confirmed plan carries them.
    #[serde(default)]
    pub starters: Vec<String>,
}

/// Arguments of `software.list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SoftwareListArgs {
    pub sandbox: String,
}

/// Arguments of `software.remove`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SoftwareRemoveArgs {
    pub sandbox: String,
    /// Packages to remove (the versions are ignored); each must be one CacheOS installed there.
    #[schema(min_items = 1)]
    pub packages: Vec<PackageRequest>,
}

/// Arguments of `software.cancel` and `software.job`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SoftwareJobRef {
    pub job: String,
}

/// A package found by a resolver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Candidate {
    pub ecosystem: Ecosystem,
    pub name: String,
    /// The newest version (or the one asked for).
    pub version: String,
    /// Download size in bytes, when the registry says.
    pub size: Option<u64>,
    /// One line.
    pub description: String,
    /// The alias or profile that led to it, if any.
    #[serde(default)]
    pub via: Option<String>,
}

/// The result of `software.search`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SearchResult {
    pub query: String,
    /// Alias entries the query matched (keys), in the table's order.
    pub aliases: Vec<String>,
    pub candidates: Vec<Candidate>,
    /// Registries that could not be asked, and why (no network, index not fetched yet).
    pub unavailable: Vec<String>,
}

/// A new sandbox a plan proposes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NewSandbox {
    pub name: String,
    pub template: String,
    pub network: crate::sandbox::Network,
}

/// A starter app in a plan: files written when missing, a command kept running, a port exposed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StarterPlan {
    /// The alias key (`flask`).
    pub key: String,
    /// The service's name inside the sandbox (`cacheos-app-flask.service`).
    pub service: String,
    /// Its command (argv).
    pub command: Vec<String>,
    /// Files written when they do not exist yet (absolute paths inside).
    pub files: Vec<String>,
    /// The port it listens on, exposed on the appliance.
    pub port: Option<u16>,
}

/// What `software.plan` proposes and `software.install` runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SoftwarePlan {
    /// The sandbox it installs into.
    pub sandbox: String,
    /// Set when the sandbox does not exist yet and is created first.
    pub create: Option<NewSandbox>,
    /// Alias entries and profiles the wish matched.
    pub matched: Vec<String>,
    /// Words of the wish that named no package, with close names where there are some.
    pub unresolved: Vec<String>,
    /// Exact packages, in install order (apt first: pip and npm need their runtimes).
    pub packages: Vec<Candidate>,
    /// Starter apps.
    pub starters: Vec<StarterPlan>,
    /// apt packages they pull in besides (an estimate from the index: first alternatives, newest versions, what a
    /// debian template has counted as there); apt resolves the exact set.
    #[serde(default)]
    pub dependencies: Vec<String>,
    /// Sum of the known download sizes of packages and dependencies not in the cache, in bytes.
    pub download_bytes: u64,
    /// apt packages whose .deb is in the shared download cache already (no download).
    pub cached: Vec<String>,
    /// The commands it runs inside the sandbox, in order (argv joined for reading; they never go through a shell).
    pub steps: Vec<String>,
    /// Offline, index missing, registry unreachable: what the plan could not check.
    pub notes: Vec<String>,
}

impl SoftwarePlan {
    /// The install arguments that run exactly this plan (what a confirmation sends and the audit log keeps).
    pub fn to_args(&self) -> SoftwareInstallArgs {
        SoftwareInstallArgs {
            sandbox: Some(self.sandbox.clone()),
            packages: self
                .packages
                .iter()
                .map(|c| PackageRequest {
                    ecosystem: c.ecosystem,
                    name: c.name.clone(),
                    version: Some(c.version.clone()),
                })
                .collect(),
            request: None,
            profile: None,
            starters: self.starters.iter().map(|s| s.key.clone()).collect(),
        }
    }
}

/// State of an install or remove job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum JobState {
    Running,
    Done,
    Failed,
    Cancelled,
}

/// An install or remove job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SoftwareJob {
    /// `software-N`.
    pub job: String,
    pub sandbox: String,
    pub state: JobState,
    /// The plan it runs.
    pub plan: SoftwarePlan,
    /// Index of the step running now (into `plan.steps`).
    pub step: usize,
    /// The last lines of output (at most 40).
    pub output: Vec<String>,
    /// Why it failed, explained (no network, not found, disk full, dependency conflict, …).
    pub error: Option<String>,
    /// Where the starters can be reached (`http://ADDR:5000`), once done.
    pub urls: Vec<String>,
}

/// One installed package in a lockfile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LockedPackage {
    pub ecosystem: Ecosystem,
    pub name: String,
    pub version: String,
    /// Asked for (not only pulled in as a dependency).
    pub requested: bool,
}

/// What CacheOS installed in a sandbox (`software.list`; record kind [`LOCK_KIND`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Lockfile {
    pub sandbox: String,
    /// Requested packages with the installed versions, and (for pip and npm) what they pulled in.
    pub packages: Vec<LockedPackage>,
    /// `pip freeze` of the venv, as it printed it.
    #[serde(default)]
    pub pip_freeze: Option<String>,
    /// `package-lock.json` of the npm project, as npm wrote it.
    #[serde(default)]
    pub package_lock: Option<String>,
    /// Starter services set up (alias keys).
    #[serde(default)]
    pub starters: Vec<String>,
    /// When it was last written (ms since the epoch).
    pub updated_ms: u64,
}

/// Why a name or version is not acceptable, with close names where known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SoftwareError {
    #[error("{0}")]
    Invalid(String),
    #[error("{ecosystem} package {name:?} not found{}", close_list(.close))]
    NotFound {
        ecosystem: Ecosystem,
        name: String,
        close: Vec<String>,
    },
    #[error("{ecosystem} package {name} has no version {version}{}", versions_list(.available))]
    NoSuchVersion {
        ecosystem: Ecosystem,
        name: String,
        version: String,
        available: Vec<String>,
    },
    #[error("{registry} cannot be reached: {reason}")]
    Unreachable { registry: &'static str, reason: String },
    #[error("{0}")]
    Unavailable(String),
}

fn close_list(close: &[String]) -> String {
    if close.is_empty() {
        String::new()
    } else {
        format!("; close names: {}", close.join(", "))
    }
}

fn versions_list(v: &[String]) -> String {
    if v.is_empty() {
        String::new()
    } else {
        let shown: Vec<_> = v.iter().rev().take(8).cloned().collect();
        format!("; it has {}", shown.join(", "))
    }
}

fn bad(what: &str, name: &str, rule: &str) -> SoftwareError {
    match name.chars().find(|c| "`$;&|<>(){}[]*?!~'\"\\\n\r\t #".contains(*c)) {
        Some(c) if !rule.contains(c) => {
            SoftwareError::Invalid(format!("{name:?} is not a valid {what}: {c:?} is not allowed ({rule})"))
        }
        _ => SoftwareError::Invalid(format!("{name:?} is not a valid {what} ({rule})")),
    }
}

/// Checks a package name against its ecosystem's grammar (which also keeps every shell metacharacter out).
pub fn validate_name(eco: Ecosystem, name: &str) -> Result<(), SoftwareError> {
    let ok = match eco {
        // Debian policy 5.6.1: lowercase letters, digits, + - ., at least two characters, starting alphanumeric.
        Ecosystem::Apt => {
            name.len() >= 2
                && name.len() <= 128
                && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c))
        }
        // PEP 508: letters, digits, . _ -, starting and ending alphanumeric.
        Ecosystem::Pip => {
            !name.is_empty()
                && name.len() <= 128
                && name.starts_with(|c: char| c.is_ascii_alphanumeric())
                && name.ends_with(|c: char| c.is_ascii_alphanumeric())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        }
        // npm: lowercase, at most 214 characters, URL-safe, optionally @scope/name, not starting with . or _.
        Ecosystem::Npm => {
            let bare = |s: &str| {
                !s.is_empty()
                    && !s.starts_with(['.', '_'])
                    && s.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-._~".contains(c))
            };
            name.len() <= 214
                && match name.strip_prefix('@') {
                    Some(rest) => rest.split_once('/').is_some_and(|(s, n)| bare(s) && bare(n)),
                    None => bare(name),
                }
        }
    };
    if ok {
        return Ok(());
    }
    let (what, rule) = match eco {
        Ecosystem::Apt => (
            "Debian package name",
            "lowercase letters, digits, '+', '-' and '.', starting with a letter or digit",
        ),
        Ecosystem::Pip => (
            "PyPI package name",
            "letters, digits, '.', '_' and '-', starting and ending with a letter or digit",
        ),
        Ecosystem::Npm => (
            "npm package name",
            "lowercase letters, digits, '-', '.', '_' and '~', optionally @scope/name",
        ),
    };
    Err(bad(what, name, rule))
}

/// Checks a version string: starts with a digit; letters, digits and the separators the ecosystem uses.
pub fn validate_version(eco: Ecosystem, version: &str) -> Result<(), SoftwareError> {
    let extra = match eco {
        Ecosystem::Apt => ".+~:-",
        Ecosystem::Pip => ".+!_-",
        Ecosystem::Npm => ".+-",
    };
    let ok = !version.is_empty()
        && version.len() <= 64
        && version.starts_with(|c: char| c.is_ascii_digit())
        && version.chars().all(|c| c.is_ascii_alphanumeric() || extra.contains(c));
    if ok {
        Ok(())
    } else {
        Err(bad(
            &format!("{} version", eco.registry()),
            version,
            &format!("an exact version: digits, letters and {extra:?}, starting with a digit"),
        ))
    }
}

/// PEP 503 normalised form of a PyPI name (`Flask_SQLAlchemy` → `flask-sqlalchemy`).
pub fn pypi_normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut sep = false;
    for c in name.chars() {
        if "._-".contains(c) {
            sep = true;
        } else {
            if sep && !out.is_empty() {
                out.push('-');
            }
            sep = false;
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// Edit distance (Levenshtein) between two short strings.
pub fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Up to `n` names of `pool` close to `name` (edit distance at most a third of its length, at least 1, or a
/// prefix/containment match), closest first.
pub fn close_names<'a>(name: &str, pool: impl IntoIterator<Item = &'a str>, n: usize) -> Vec<String> {
    let limit = (name.chars().count() / 3).max(1);
    let mut scored: Vec<(usize, &str)> = pool
        .into_iter()
        .filter(|p| *p != name)
        .filter_map(|p| {
            let d = distance(name, p);
            if d <= limit {
                Some((d, p))
            } else if name.len() >= 3 && (p.starts_with(name) || (p.contains(name) && p.len() <= name.len() + 8)) {
                Some((limit + 1 + p.len() - name.len(), p))
            } else {
                None
            }
        })
        .collect();
    scored.sort();
    scored.dedup_by(|a, b| a.1 == b.1);
    scored.into_iter().take(n).map(|(_, p)| p.to_string()).collect()
}

/// Shown sizes: "12.3 MB".
pub fn human_size(bytes: u64) -> String {
    if bytes >= 1_000_000 {
        format!("{:.1} MB", bytes as f64 / 1e6)
    } else if bytes >= 1000 {
        format!("{} kB", bytes.div_ceil(1000))
    } else {
        format!("{bytes} B")
    }
}
