//! Resolvers: the narrow trait the planner asks for packages ([`Resolver`]), and the real ones over their sources:
//! [`DebianLists`] (the `Packages` indexes apt keeps in the lists directory all debian sandboxes share),
//! [`Pypi`] (exact-name JSON lookups: PyPI has no search API) and [`Npm`] (its search endpoint and version
//! documents), the last two over [`HttpGet`] (curl in `cacheos-sys`; a recording fake in tests).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use super::index::{self, DebIndex};
use super::{close_names, pypi_normalize, validate_name, validate_version, Candidate, Ecosystem, SoftwareError};

/// Finds packages of one ecosystem.
pub trait Resolver: Send + Sync {
    /// Which ecosystem.
    fn ecosystem(&self) -> Ecosystem;
    /// The package of exactly that name, at `version` (the newest when `None`). Not found names close ones; a
    /// missing version lists those that exist.
    fn lookup(&self, name: &str, version: Option<&str>) -> Result<Candidate, SoftwareError>;
    /// Packages matching free text, best first.
    fn search(&self, query: &str, limit: usize) -> Result<Vec<Candidate>, SoftwareError>;
    /// What installing `names` pulls in besides them (an estimate, with download sizes); none where unknown.
    fn dependencies(&self, _names: &[String]) -> Vec<(String, u64)> {
        Vec::new()
    }
}

/// Packages every debian template has besides those of priority required and important.
pub const TEMPLATE_BASE: &[&str] = &[
    "apt",
    "ca-certificates",
    "systemd",
    "systemd-sysv",
    "libsystemd0",
    "openssl",
];

/// An HTTPS GET: `Ok(None)` for 404, `Err` (with why) when the registry cannot be reached.
pub trait HttpGet: Send + Sync {
    fn get(&self, url: &str) -> Result<Option<Vec<u8>>, String>;
}

/// The resolvers of the three ecosystems.
#[derive(Clone)]
pub struct Resolvers {
    pub apt: Arc<dyn Resolver>,
    pub pip: Arc<dyn Resolver>,
    pub npm: Arc<dyn Resolver>,
}

impl Resolvers {
    /// The resolver of `eco`.
    pub fn get(&self, eco: Ecosystem) -> &dyn Resolver {
        match eco {
            Ecosystem::Apt => &*self.apt,
            Ecosystem::Pip => &*self.pip,
            Ecosystem::Npm => &*self.npm,
        }
    }
}

/// The index files with their modification times.
type Files = Vec<(PathBuf, SystemTime)>;

/// Debian packages from the `*_Packages` files in apt's lists directory, re-read when a file changes.
pub struct DebianLists {
    dir: PathBuf,
    cache: Mutex<Option<(Files, Arc<DebIndex>)>>,
}

impl DebianLists {
    /// Reads `dir` (the shared `/var/lib/apt/lists` of debian sandboxes).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            cache: Mutex::new(None),
        }
    }

    fn files(&self) -> Vec<(PathBuf, SystemTime)> {
        let mut out: Vec<_> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with("_Packages"))
            .filter_map(|e| Some((e.path(), e.metadata().ok()?.modified().ok()?)))
            .collect();
        out.sort();
        out
    }

    /// The index (empty when apt never fetched one).
    pub fn index(&self) -> Arc<DebIndex> {
        let files = self.files();
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((seen, idx)) = cache.as_ref() {
            if *seen == files {
                return idx.clone();
            }
        }
        let mut idx = DebIndex::default();
        for (p, _) in &files {
            if let Ok(text) = std::fs::read_to_string(p) {
                idx.add_packages_file(&text);
            }
        }
        let idx = Arc::new(idx);
        *cache = Some((files, idx.clone()));
        idx
    }

    fn missing(&self) -> SoftwareError {
        SoftwareError::Unavailable(
            "Debian's package index has not been fetched yet (the first install runs apt-get update)".into(),
        )
    }
}

impl Resolver for DebianLists {
    fn ecosystem(&self) -> Ecosystem {
        Ecosystem::Apt
    }

    fn lookup(&self, name: &str, version: Option<&str>) -> Result<Candidate, SoftwareError> {
        validate_name(Ecosystem::Apt, name)?;
        if let Some(v) = version {
            validate_version(Ecosystem::Apt, v)?;
        }
        let idx = self.index();
        if idx.packages.is_empty() {
            return Err(self.missing());
        }
        match idx.get(name, version) {
            Some(v) => Ok(Candidate {
                ecosystem: Ecosystem::Apt,
                name: name.to_string(),
                version: v.version.clone(),
                size: v.size,
                description: v.description.clone(),
                via: None,
            }),
            None if idx.packages.contains_key(name) => Err(SoftwareError::NoSuchVersion {
                ecosystem: Ecosystem::Apt,
                name: name.to_string(),
                version: version.unwrap_or_default().to_string(),
                available: idx.packages[name].iter().map(|v| v.version.clone()).collect(),
            }),
            None => Err(SoftwareError::NotFound {
                ecosystem: Ecosystem::Apt,
                name: name.to_string(),
                close: close_names(name, idx.packages.keys().map(String::as_str), 5),
            }),
        }
    }

    fn search(&self, query: &str, limit: usize) -> Result<Vec<Candidate>, SoftwareError> {
        let idx = self.index();
        if idx.packages.is_empty() {
            return Err(self.missing());
        }
        Ok(idx.search(query, limit))
    }

    fn dependencies(&self, names: &[String]) -> Vec<(String, u64)> {
        self.index().closure(names, TEMPLATE_BASE)
    }
}

/// PyPI through its JSON API (`https://pypi.org/pypi/NAME/json`).
pub struct Pypi {
    http: Arc<dyn HttpGet>,
    base: String,
}

impl Pypi {
    pub fn new(http: Arc<dyn HttpGet>) -> Self {
        Self {
            http,
            base: "https://pypi.org".into(),
        }
    }
}

fn unreachable(registry: &'static str) -> impl Fn(String) -> SoftwareError {
    move |reason| SoftwareError::Unreachable { registry, reason }
}

/// Names of the alias table's packages in one ecosystem (the pool of close names where a registry has no search).
fn alias_pool(eco: Ecosystem) -> Vec<&'static str> {
    super::aliases::aliases()
        .iter()
        .flat_map(|a| a.packages(eco).iter().map(String::as_str))
        .collect()
}

impl Resolver for Pypi {
    fn ecosystem(&self) -> Ecosystem {
        Ecosystem::Pip
    }

    fn lookup(&self, name: &str, version: Option<&str>) -> Result<Candidate, SoftwareError> {
        validate_name(Ecosystem::Pip, name)?;
        if let Some(v) = version {
            validate_version(Ecosystem::Pip, v)?;
        }
        let norm = pypi_normalize(name);
        let url = format!("{}/pypi/{}/json", self.base, index::url_name(&norm));
        let Some(body) = self.http.get(&url).map_err(unreachable("PyPI"))? else {
            return Err(SoftwareError::NotFound {
                ecosystem: Ecosystem::Pip,
                name: name.to_string(),
                close: close_names(&norm, alias_pool(Ecosystem::Pip), 5),
            });
        };
        index::parse_pypi(&body, version).map_err(|available| SoftwareError::NoSuchVersion {
            ecosystem: Ecosystem::Pip,
            name: name.to_string(),
            version: version.unwrap_or_default().to_string(),
            available,
        })
    }

    fn search(&self, query: &str, _limit: usize) -> Result<Vec<Candidate>, SoftwareError> {
        // No search API: each word that is a valid name is looked up exactly.
        let mut out = Vec::new();
        for w in query.split_whitespace() {
            if validate_name(Ecosystem::Pip, w).is_err() {
                continue;
            }
            match self.lookup(w, None) {
                Ok(c) => out.push(c),
                Err(SoftwareError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}

/// npm through its registry (`https://registry.npmjs.org`).
pub struct Npm {
    http: Arc<dyn HttpGet>,
    base: String,
}

impl Npm {
    pub fn new(http: Arc<dyn HttpGet>) -> Self {
        Self {
            http,
            base: "https://registry.npmjs.org".into(),
        }
    }
}

impl Resolver for Npm {
    fn ecosystem(&self) -> Ecosystem {
        Ecosystem::Npm
    }

    fn lookup(&self, name: &str, version: Option<&str>) -> Result<Candidate, SoftwareError> {
        validate_name(Ecosystem::Npm, name)?;
        if let Some(v) = version {
            validate_version(Ecosystem::Npm, v)?;
        }
        let url = format!(
            "{}/{}/{}",
            self.base,
            index::url_name(name),
            version.unwrap_or("latest")
        );
        if let Some(body) = self.http.get(&url).map_err(unreachable("npm"))? {
            if let Some(c) = index::parse_npm_version(&body) {
                return Ok(c);
            }
        }
        // Either the package or the version is missing: the package document tells which.
        let doc = self
            .http
            .get(&format!("{}/{}", self.base, index::url_name(name)))
            .map_err(unreachable("npm"))?;
        match doc.and_then(|d| serde_json::from_slice::<serde_json::Value>(&d).ok()) {
            Some(d) if d["versions"].is_object() => {
                let mut available: Vec<String> = d["versions"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, _)| k.clone())
                    .collect();
                available.sort_by(|a, b| index::deb_cmp(a, b));
                Err(SoftwareError::NoSuchVersion {
                    ecosystem: Ecosystem::Npm,
                    name: name.to_string(),
                    version: version.unwrap_or_default().to_string(),
                    available,
                })
            }
            _ => {
                let similar = self.search(name, 5).unwrap_or_default();
                Err(SoftwareError::NotFound {
                    ecosystem: Ecosystem::Npm,
                    name: name.to_string(),
                    close: similar
                        .into_iter()
                        .map(|c| c.name)
                        .filter(|n| n != name)
                        .take(5)
                        .collect(),
                })
            }
        }
    }

    fn search(&self, query: &str, limit: usize) -> Result<Vec<Candidate>, SoftwareError> {
        let url = format!(
            "{}/-/v1/search?text={}&size={}",
            self.base,
            index::url_query(query),
            limit.clamp(1, 50)
        );
        let body = self.http.get(&url).map_err(unreachable("npm"))?.unwrap_or_default();
        Ok(index::parse_npm_search(&body))
    }
}

/// The apt packages whose .deb is in the shared download cache (`/var/cache/apt/archives`): (name, version).
pub fn cached_debs(dir: &std::path::Path) -> Vec<(String, String)> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| index::parse_deb_filename(&e.file_name().to_string_lossy()))
        .collect();
    out.sort();
    out
}
