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
    /// Per-CPU times since boot, for `/metrics` (`node_cpu_seconds_total`); none when unreadable.
    fn cpu_times(&self) -> Vec<crate::diagnose::metrics::CpuTimes> {
        Vec::new()
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

/// One sample of the machine's load, taken by the metrics worker (`system.history`, event `metrics-sampled`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MetricSample {
    /// When (ms since the Unix epoch).
    pub time_ms: u64,
    /// CPU use in percent of all CPUs; `null` until two CPU samples exist.
    pub cpu_percent: Option<f64>,
    /// Memory in use (`total - available`).
    pub memory_used_bytes: u64,
    /// Memory in total.
    pub memory_total_bytes: u64,
    /// Load average over one minute.
    pub load_one: f64,
    /// Load average over five minutes.
    pub load_five: f64,
    /// Load average over fifteen minutes.
    pub load_fifteen: f64,
    /// Used bytes of the file system at `/` (or the first one listed).
    pub disk_used_bytes: u64,
    /// Size of that file system.
    pub disk_total_bytes: u64,
}

impl MetricSample {
    /// The sample a status snapshot contains.
    pub fn of(st: &SystemStatus) -> Self {
        let disk = st.disks.iter().find(|d| d.mount_point == "/").or(st.disks.first());
        Self {
            time_ms: st.time_ms,
            cpu_percent: st.cpu_percent,
            memory_used_bytes: st.memory.used_bytes,
            memory_total_bytes: st.memory.total_bytes,
            load_one: st.load.one,
            load_five: st.load.five,
            load_fifteen: st.load.fifteen,
            disk_used_bytes: disk.map_or(0, |d| d.used_bytes),
            disk_total_bytes: disk.map_or(0, |d| d.total_bytes),
        }
    }
}

pub use crate::metrics_history::MetricsHistory;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_takes_the_root_file_system() {
        let st = SystemStatus {
            time_ms: 7,
            disks: vec![
                DiskUsage {
                    mount_point: "/boot".into(),
                    used_bytes: 1,
                    total_bytes: 2,
                    ..Default::default()
                },
                DiskUsage {
                    mount_point: "/".into(),
                    used_bytes: 30,
                    total_bytes: 100,
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let s = MetricSample::of(&st);
        assert_eq!((s.time_ms, s.disk_used_bytes, s.disk_total_bytes), (7, 30, 100));
    }
}
