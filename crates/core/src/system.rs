//! System status types and the probe trait that reads them from the machine.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Fields of `/etc/os-release` that CacheOS shows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OsRelease {
    /// `PRETTY_NAME`.
    pub pretty_name: String,
    /// `ID`.
    pub id: String,
    /// `VERSION_ID`, empty when absent.
    pub version_id: String,
}

/// Load averages.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LoadAvg {
    /// Over one minute.
    pub one: f64,
    /// Over five minutes.
    pub five: f64,
    /// Over fifteen minutes.
    pub fifteen: f64,
}

/// Memory use.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Memory {
    /// `MemTotal`.
    pub total_bytes: u64,
    /// `MemAvailable`.
    pub available_bytes: u64,
    /// `total - available`.
    pub used_bytes: u64,
    /// `SwapTotal`.
    pub swap_total_bytes: u64,
    /// `SwapTotal - SwapFree`.
    pub swap_used_bytes: u64,
}

/// Use of one mounted file system.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DiskUsage {
    /// Where it is mounted.
    pub mount_point: String,
    /// The mount source (device or pseudo name).
    pub source: String,
    /// File system type.
    pub fs_type: String,
    /// Size.
    pub total_bytes: u64,
    /// Used.
    pub used_bytes: u64,
    /// Available to unprivileged users.
    pub available_bytes: u64,
    /// Mounted read-only.
    pub read_only: bool,
}

/// A snapshot of the machine's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SystemStatus {
    /// Host name.
    pub hostname: String,
    /// Kernel release (`uname -r`).
    pub kernel: String,
    /// Operating system.
    pub os_release: OsRelease,
    /// Seconds since boot.
    pub uptime_seconds: f64,
    /// Load averages.
    pub load: LoadAvg,
    /// Number of CPUs online.
    pub cpu_count: u32,
    /// CPU use in percent of all CPUs over the last sampling interval; `null` until two samples exist.
    pub cpu_percent: Option<f64>,
    /// Memory use.
    pub memory: Memory,
    /// Use of each mounted block-backed or persistent file system.
    pub disks: Vec<DiskUsage>,
    /// Number of failed systemd units; `null` when systemd is not PID 1.
    pub failed_units: Option<u32>,
    /// When this was read (ms since the Unix epoch).
    pub time_ms: u64,
}

/// Why the probe could not read the system.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {what}")]
pub struct ProbeError {
    /// What could not be read (a file or a command).
    pub what: String,
    /// Why.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// Reads the machine's state. The real implementation reads procfs and statvfs; CPU use and failed units come
/// from the last [`SystemProbe::sample`] so that a status call stays cheap.
pub trait SystemProbe: Send + Sync {
    /// Current status.
    fn status(&self) -> Result<SystemStatus, ProbeError>;
    /// Takes a periodic sample (CPU counters, failed units). Called by the metrics worker.
    fn sample(&self) -> Result<(), ProbeError> {
        Ok(())
    }
}

/// A probe that returns a fixed status, for tests.
#[derive(Debug, Default)]
pub struct FixedProbe(pub SystemStatus);

impl SystemProbe for FixedProbe {
    fn status(&self) -> Result<SystemStatus, ProbeError> {
        Ok(self.0.clone())
    }
}
