//! Configuration: built-in defaults, then `/usr/lib/cacheos/cacheosd.toml`, then `/etc/cacheos/cacheosd.toml`,
//! then `--config FILE`, each overriding keys of the previous; then command-line flags. Every key is documented in
//! the shipped `/usr/lib/cacheos/cacheosd.toml`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

/// Vendor configuration shipped in the image.
pub const VENDOR_CONFIG: &str = "/usr/lib/cacheos/cacheosd.toml";
/// Administrator overrides.
pub const ADMIN_CONFIG: &str = "/etc/cacheos/cacheosd.toml";

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the store and the web token live.
    pub state_dir: PathBuf,
    /// Members of this group (and root) may run every operation.
    pub operator_group: String,
    /// Web port.
    pub web: WebConfig,
    /// D-Bus.
    pub dbus: DbusConfig,
    /// Audit log.
    pub audit: AuditConfig,
    /// Task supervision.
    pub supervisor: SupervisorConfig,
    /// System metrics sampling.
    pub metrics: MetricsConfig,
    /// Virtual drives.
    pub drives: DrivesConfig,
    /// Sandboxes.
    pub sandboxes: SandboxesConfig,
    /// Knowledge base (issue 17).
    pub kb: KbConfig,
    /// Language models (issue 14).
    pub models: ModelsConfig,
}

/// `[models]`: the in-process GGUF backend (used when the daemon is built with the `gguf` feature).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ModelsConfig {
    /// Unload a GGUF model after this many seconds without a request (the next request loads it again).
    pub idle_unload_secs: u64,
    /// Most memory a GGUF model may use (file, context cache, buffers), in MiB; 0 means what the machine has
    /// available less 256 MiB.
    pub memory_limit_mib: u64,
    /// Context length in tokens (clipped to the model's training context).
    pub context_tokens: u32,
}

impl Default for ModelsConfig {
    fn default() -> Self {
        let g = cacheos_model::GgufSettings::default();
        Self {
            idle_unload_secs: g.idle.as_secs(),
            memory_limit_mib: 0,
            context_tokens: g.n_ctx,
        }
    }
}

impl ModelsConfig {
    /// The backend's settings.
    pub fn gguf(&self) -> cacheos_model::GgufSettings {
        cacheos_model::GgufSettings {
            n_ctx: self.context_tokens.max(256),
            memory_limit: (self.memory_limit_mib > 0).then_some(self.memory_limit_mib.saturating_mul(1 << 20)),
            idle: std::time::Duration::from_secs(self.idle_unload_secs.max(1)),
        }
    }
}

/// `[kb]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct KbConfig {
    /// Offer the knowledge base at all.
    pub enabled: bool,
    /// The index; empty means `<state_dir>/kb` (on the data partition).
    pub dir: PathBuf,
    /// The appliance's own documentation, indexed at every start as source `docs` (unchanged files are skipped).
    pub docs_dir: PathBuf,
    /// Files larger than this many bytes are indexed only up to it.
    pub max_file_bytes: u64,
}

impl Default for KbConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            dir: PathBuf::new(),
            docs_dir: "/usr/share/cacheos/doc".into(),
            max_file_bytes: 64 << 20,
        }
    }
}

/// `[sandboxes]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SandboxesConfig {
    /// Manage sandboxes at all.
    pub enabled: bool,
    /// Runtime directory: assembled roots under `roots/`, the runner's files under `runner/`.
    pub run_dir: PathBuf,
    /// Writable data of persistent sandboxes; empty means `<state_dir>/sandboxes`.
    pub data_dir: PathBuf,
    /// Templates: each `<templates_dir>/<name>/` holding an OS tree and each `<name>.squashfs` / `<name>.erofs` image;
    /// empty means `<state_dir>/templates`.
    pub templates_dir: PathBuf,
    /// Templates shipped with the system (the image's `debian.squashfs`): trees and squashfs/erofs images as in
    /// `templates_dir`, which wins on equal names; empty for none. Not read in development mode.
    pub system_templates_dir: PathBuf,
    /// Offer the appliance's own `/usr` as template `host`.
    pub host_template: bool,
    /// Seconds a stop waits for a container to exit before killing it.
    pub stop_timeout_secs: u64,
}

impl Default for SandboxesConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            run_dir: "/run/cacheos/sandboxes".into(),
            data_dir: PathBuf::new(),
            templates_dir: PathBuf::new(),
            system_templates_dir: "/usr/lib/cacheos/templates".into(),
            host_template: true,
            stop_timeout_secs: 10,
        }
    }
}

/// `[drives]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DrivesConfig {
    /// Manage virtual drives at all.
    pub enabled: bool,
    /// Runtime directory: mount points under `drives/`, export files under `exports/`.
    pub run_dir: PathBuf,
    /// Where bare image names resolve and uploads go; empty means `<state_dir>/images`.
    pub images_dir: PathBuf,
    /// Further places images may be attached from (besides `images_dir` and attached drives' mounts).
    pub allowed: Vec<PathBuf>,
    /// Largest image `drive.upload` (`PUT /api/v1/images/{name}`) accepts, in bytes.
    pub max_upload_bytes: u64,
}

impl Default for DrivesConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            run_dir: "/run/cacheos".into(),
            images_dir: PathBuf::new(),
            allowed: vec!["/media".into(), "/run/media".into()],
            max_upload_bytes: cacheos_core::drive::manager::DEFAULT_MAX_UPLOAD_BYTES,
        }
    }
}

/// `[web]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// Serve the web port at all.
    pub enabled: bool,
    /// Address and port to listen on.
    pub listen: SocketAddr,
    /// Loopback clients need no token.
    pub trust_loopback: bool,
    /// Failed token attempts per client address before it gets 429.
    pub max_auth_failures: u32,
    /// Window in seconds over which failures are counted.
    pub auth_failure_window_secs: u64,
    /// Serve TLS on the web port (issue 19): a self-signed certificate is made in `<state_dir>/tls/` on first start;
    /// plain HTTP from beyond loopback is redirected to HTTPS.
    pub tls: bool,
    /// Where the certificate's fingerprint is written for the console login banner (not in dev mode).
    pub tls_banner_file: PathBuf,
}

/// `[dbus]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DbusConfig {
    /// `system` or `session`.
    pub bus: String,
    /// An explicit bus address; overrides `bus` when set.
    pub address: Option<String>,
}

/// `[audit]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Oldest records beyond this number are pruned.
    pub max_records: u64,
}

/// `[supervisor]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SupervisorConfig {
    /// First restart delay of a failed task, in milliseconds; doubles per consecutive failure.
    pub restart_backoff_initial_ms: u64,
    /// Largest restart delay, in milliseconds.
    pub restart_backoff_max_ms: u64,
    /// A task that ran this many seconds before failing restarts with the initial delay again.
    pub stable_after_secs: u64,
    /// Allow `supervisor.kill-task` (always on in `--dev`).
    pub fault_injection: bool,
    /// Seconds to wait for every task to come up before reporting READY anyway (degraded).
    pub startup_timeout_secs: u64,
}

/// `[metrics]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Seconds between CPU / failed-unit samples.
    pub sample_interval_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            state_dir: "/var/lib/cacheos".into(),
            operator_group: "cacheos".into(),
            web: WebConfig::default(),
            dbus: DbusConfig::default(),
            audit: AuditConfig::default(),
            supervisor: SupervisorConfig::default(),
            metrics: MetricsConfig::default(),
            drives: DrivesConfig::default(),
            sandboxes: SandboxesConfig::default(),
            kb: KbConfig::default(),
            models: ModelsConfig::default(),
        }
    }
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: "0.0.0.0:8080".parse().unwrap(),
            trust_loopback: true,
            max_auth_failures: 5,
            auth_failure_window_secs: 60,
            tls: true,
            tls_banner_file: "/run/cacheos/tls.issue".into(),
        }
    }
}

impl Default for DbusConfig {
    fn default() -> Self {
        Self {
            bus: "system".into(),
            address: None,
        }
    }
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self { max_records: 100_000 }
    }
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        Self {
            restart_backoff_initial_ms: 200,
            restart_backoff_max_ms: 30_000,
            stable_after_secs: 60,
            fault_injection: false,
            startup_timeout_secs: 30,
        }
    }
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            sample_interval_secs: 5,
        }
    }
}

fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// Loads and layers the given files (missing ones are skipped, unreadable or invalid ones are errors naming the
/// file), then validates.
pub fn load(files: &[&Path]) -> anyhow::Result<Config> {
    let mut table = toml::Table::new();
    for f in files {
        let text = match std::fs::read_to_string(f) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot read configuration {}", f.display())),
        };
        let t: toml::Table = toml::from_str(&text).with_context(|| format!("invalid configuration {}", f.display()))?;
        // Check each file on its own so an unknown key is reported with the file it is in.
        Config::deserialize(toml::Value::Table(t.clone()))
            .with_context(|| format!("invalid configuration {}", f.display()))?;
        merge(&mut table, t);
    }
    let cfg = Config::deserialize(toml::Value::Table(table)).context("invalid configuration")?;
    cfg.validate()?;
    Ok(cfg)
}

impl Config {
    /// Checks values the types cannot.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            matches!(self.dbus.bus.as_str(), "system" | "session"),
            "invalid dbus.bus {:?}: expected \"system\" or \"session\"",
            self.dbus.bus
        );
        anyhow::ensure!(
            self.audit.max_records >= 1,
            "invalid audit.max_records: must be at least 1"
        );
        anyhow::ensure!(
            self.metrics.sample_interval_secs >= 1,
            "invalid metrics.sample_interval_secs: must be at least 1"
        );
        anyhow::ensure!(
            self.supervisor.restart_backoff_initial_ms >= 1
                && self.supervisor.restart_backoff_initial_ms <= self.supervisor.restart_backoff_max_ms,
            "invalid supervisor.restart_backoff_*: initial must be at least 1 and at most max"
        );
        anyhow::ensure!(
            self.sandboxes.stop_timeout_secs >= 1,
            "invalid sandboxes.stop_timeout_secs: must be at least 1"
        );
        anyhow::ensure!(
            self.state_dir.is_absolute(),
            "invalid state_dir {:?}: must be absolute",
            self.state_dir
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_override_key_by_key_and_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let vendor = dir.path().join("vendor.toml");
        let admin = dir.path().join("admin.toml");
        std::fs::write(&vendor, "[web]\nlisten = \"0.0.0.0:9000\"\ntrust_loopback = false\n").unwrap();
        std::fs::write(&admin, "[web]\nlisten = \"127.0.0.1:9001\"\n[audit]\nmax_records = 7\n").unwrap();
        let c = load(&[&vendor, &admin, &dir.path().join("missing.toml")]).unwrap();
        assert_eq!(c.web.listen, "127.0.0.1:9001".parse().unwrap());
        assert!(!c.web.trust_loopback, "vendor key kept where admin is silent");
        assert_eq!(c.audit.max_records, 7);
        assert_eq!(c.metrics, MetricsConfig::default());

        std::fs::write(&admin, "[web]\nlisen = \"x\"\n").unwrap();
        let e = format!("{:#}", load(&[&vendor, &admin]).unwrap_err());
        assert!(e.contains("admin.toml") && e.contains("lisen"), "{e}");
        std::fs::write(&admin, "[dbus]\nbus = \"tram\"\n").unwrap();
        let e = format!("{:#}", load(&[&admin]).unwrap_err());
        assert!(e.contains("dbus.bus"), "{e}");
    }

    #[test]
    fn shipped_vendor_file_parses_and_matches_defaults() {
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rootfs-overlay/usr/lib/cacheos/cacheosd.toml");
        let c = load(&[&shipped]).unwrap();
        assert_eq!(c, Config::default(), "the shipped file documents the built-in defaults");
    }
}
