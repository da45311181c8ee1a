//! Real side effects of software installs (issue 15): HTTPS GETs for PyPI and npm through `curl` (fixed argv, HTTPS
//! only, the URL built from validated names), port forwards as one nftables table (`nft -f -`), the appliance's
//! address for URLs, and [`SharedAptCache`]: a [`RootPreparer`] wrapper that binds the download cache and package
//! lists shared by all debian sandboxes (on the data partition) into each of them.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use cacheos_core::sandbox::{Bind, PreparedRoot, RootError, RootPreparer, Template, TemplateKind};
use cacheos_core::software::expose::{nft_ruleset, Forward, PortForwarder};
use cacheos_core::software::resolve::HttpGet;

/// HTTPS GETs through curl.
#[derive(Debug, Clone)]
pub struct CurlGet {
    /// The curl binary.
    pub program: PathBuf,
    /// Longest time of one request, in seconds.
    pub timeout_secs: u32,
}

impl Default for CurlGet {
    fn default() -> Self {
        Self {
            program: "curl".into(),
            timeout_secs: 20,
        }
    }
}

impl HttpGet for CurlGet {
    fn get(&self, url: &str) -> Result<Option<Vec<u8>>, String> {
        if !url.starts_with("https://") || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("refusing to fetch {url:?}"));
        }
        // The status code goes on its own last line, after the body.
        let out = Command::new(&self.program)
            .args([
                "--silent",
                "--show-error",
                "--location",
                "--proto",
                "=https",
                "--max-filesize",
                "67108864",
            ])
            .arg("--max-time")
            .arg(self.timeout_secs.to_string())
            .args([
                "--header",
                "Accept: application/json",
                "--write-out",
                "\n%{http_code}",
                "--",
            ])
            .arg(url)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run curl: {e}"))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            return Err(err.trim().trim_start_matches("curl: ").to_string());
        }
        let body = out.stdout;
        let split = body.iter().rposition(|&b| b == b'\n').unwrap_or(0);
        let code: u16 = String::from_utf8_lossy(&body[split..]).trim().parse().unwrap_or(0);
        match code {
            200..=299 => Ok(Some(body[..split].to_vec())),
            404 | 410 => Ok(None),
            c => Err(format!("HTTP status {c} for {url}")),
        }
    }
}

/// Port forwards as the nftables table `ip cacheos_expose`, replaced as a whole on every change.
#[derive(Debug, Clone)]
pub struct NftForwarder {
    pub program: PathBuf,
}

impl Default for NftForwarder {
    fn default() -> Self {
        Self { program: "nft".into() }
    }
}

impl PortForwarder for NftForwarder {
    fn apply(&self, forwards: &[Forward]) -> Result<(), String> {
        let ruleset = nft_ruleset(forwards);
        let mut child = Command::new(&self.program)
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run nft: {e}"))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(ruleset.as_bytes())
                .map_err(|e| format!("cannot write to nft: {e}"))?;
        }
        let out = child.wait_with_output().map_err(|e| format!("nft failed: {e}"))?;
        if !out.status.success() {
            return Err(format!("nft: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(())
    }
}

/// The appliance's address on its default route (no packet is sent: a UDP socket is only connected).
pub fn primary_address() -> Option<String> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.1:9").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_unspecified()).then(|| ip.to_string())
}

/// Binds the shared apt download cache and package lists into sandboxes of OS templates that boot their own init
/// (the debian template): `<dir>/archives` → `/var/cache/apt/archives`, `<dir>/lists` → `/var/lib/apt/lists`, both
/// writable (idmapped, so the container's root and `_apt` write as themselves). apt's own locks in those directories
/// keep concurrent sandboxes apart; a package downloaded once is installed from the cache everywhere.
pub struct SharedAptCache {
    inner: Arc<dyn RootPreparer>,
    dir: PathBuf,
}

impl SharedAptCache {
    pub fn new(inner: Arc<dyn RootPreparer>, dir: impl Into<PathBuf>) -> Self {
        Self { inner, dir: dir.into() }
    }

    /// `<dir>/archives`.
    pub fn archives(&self) -> PathBuf {
        self.dir.join("archives")
    }

    /// `<dir>/lists`.
    pub fn lists(&self) -> PathBuf {
        self.dir.join("lists")
    }

    fn applies(template: &Template) -> bool {
        matches!(template.kind, TemplateKind::Directory | TemplateKind::FsImage) && template.command.is_none()
    }
}

/// Whether writable binds from `dir` can be idmapped: not from tmpfs or ramfs before Linux 6.3 (a live boot without
/// a data partition keeps its state there; nspawn would then refuse to start the sandbox).
pub fn idmap_supported(dir: &Path) -> bool {
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    const RAMFS_MAGIC: i64 = 0x8584_58f6;
    let Ok(st) = rustix::fs::statfs(dir) else {
        return true;
    };
    #[allow(clippy::unnecessary_cast)] // f_type is i64 on x86_64 glibc, other widths elsewhere
    let kind = st.f_type as i64;
    if kind == RAMFS_MAGIC {
        return false;
    }
    if kind != TMPFS_MAGIC {
        return true;
    }
    let uname = rustix::system::uname();
    let release = uname.release().to_string_lossy();
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse::<u32>().ok());
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (6, 3)
}

impl RootPreparer for SharedAptCache {
    fn prepare(&self, name: &str, template: &Template, ephemeral: bool) -> Result<PreparedRoot, RootError> {
        let mut root = self.inner.prepare(name, template, ephemeral)?;
        if !Self::applies(template) {
            return Ok(root);
        }
        let dirs = [
            (self.archives(), "/var/cache/apt/archives"),
            (self.lists(), "/var/lib/apt/lists"),
        ];
        for (src, _) in &dirs {
            for d in [src.clone(), src.join("partial")] {
                if let Err(source) = std::fs::create_dir_all(&d) {
                    let _ = self.inner.release(name);
                    return Err(RootError::CreateDir { path: d, source });
                }
            }
        }
        if !idmap_supported(&self.dir) {
            tracing::warn!(
                dir = %self.dir.display(),
                "the shared apt cache is on a file system without idmapped mounts (tmpfs before Linux 6.3): \
                 sandbox {name} downloads into its own cache"
            );
            return Ok(root);
        }
        for (src, target) in dirs {
            root.binds.push(Bind {
                drive: "apt-cache".into(),
                source: src,
                target: target.into(),
                read_write: true,
            });
        }
        Ok(root)
    }

    fn release(&self, name: &str) -> Result<(), RootError> {
        self.inner.release(name)
    }

    fn remove_data(&self, name: &str) -> Result<(), RootError> {
        self.inner.remove_data(name)
    }

    fn prepared(&self) -> Result<Vec<String>, RootError> {
        self.inner.prepared()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curl_refuses_anything_but_https() {
        let c = CurlGet::default();
        assert!(c.get("http://pypi.org/pypi/flask/json").is_err());
        assert!(c.get("https://pypi.org/x y").is_err());
    }

    #[test]
    fn the_cache_is_bound_into_booted_os_templates_only() {
        let fakes = cacheos_core::sandbox::fake::FakeSandboxes::new();
        let d = tempfile::tempdir().unwrap();
        let cache = SharedAptCache::new(Arc::new(fakes.roots()), d.path());
        let debian = Template {
            name: "debian".into(),
            kind: TemplateKind::FsImage,
            path: "/usr/lib/cacheos/templates/debian.squashfs".into(),
            description: String::new(),
            command: None,
        };
        let root = cache.prepare("web", &debian, false).unwrap();
        let targets: Vec<_> = root
            .binds
            .iter()
            .map(|b| (b.target.display().to_string(), b.read_write))
            .collect();
        assert_eq!(
            targets,
            [
                ("/var/cache/apt/archives".to_string(), true),
                ("/var/lib/apt/lists".to_string(), true)
            ]
        );
        assert!(d.path().join("archives/partial").is_dir() && d.path().join("lists/partial").is_dir());
        let host = Template {
            name: "host".into(),
            kind: TemplateKind::Host,
            path: "/".into(),
            description: String::new(),
            command: Some(vec!["sleep".into()]),
        };
        assert!(cache
            .prepare("py", &host, false)
            .unwrap()
            .binds
            .iter()
            .all(|b| b.drive != "apt-cache"));
    }
}
