//! Counts and durations of operations by name and outcome, kept by the executor for `/metrics`
//! (`cacheos_operations_total`, `cacheos_operation_duration_seconds`).

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::audit::Outcome;

/// Upper bounds (seconds) of the duration histogram's buckets; `+Inf` is implied.
pub const BUCKETS: [f64; 10] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5, 10.0];

#[derive(Debug, Default, Clone)]
struct Stat {
    count: u64,
    sum_us: u64,
    buckets: [u64; BUCKETS.len()],
}

/// One operation name and outcome's counters.
#[derive(Debug, Clone, PartialEq)]
pub struct OperationStat {
    /// Dotted name.
    pub name: &'static str,
    /// `ok`, `error` or `denied`.
    pub outcome: &'static str,
    /// How many ran.
    pub count: u64,
    /// Their total duration in seconds.
    pub sum_seconds: f64,
    /// Count per bucket of [`BUCKETS`] (not cumulative).
    pub buckets: Vec<u64>,
}

/// The counters, shared by every execution.
#[derive(Debug, Default)]
pub struct OperationStats {
    inner: Mutex<BTreeMap<(&'static str, &'static str), Stat>>,
}

impl OperationStats {
    /// Records one run.
    pub fn record(&self, name: &'static str, outcome: Outcome, duration_us: u64) {
        let mut m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let s = m.entry((name, outcome.as_str())).or_default();
        s.count += 1;
        s.sum_us += duration_us;
        let secs = duration_us as f64 / 1e6;
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            s.buckets[i] += 1;
        }
    }

    /// Every name and outcome seen, sorted.
    pub fn snapshot(&self) -> Vec<OperationStat> {
        let m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        m.iter()
            .map(|((name, outcome), s)| OperationStat {
                name,
                outcome,
                count: s.count,
                sum_seconds: s.sum_us as f64 / 1e6,
                buckets: s.buckets.to_vec(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_by_name_and_outcome_into_buckets() {
        let s = OperationStats::default();
        s.record("system.status", Outcome::Ok, 300);
        s.record("system.status", Outcome::Ok, 20_000);
        s.record("system.status", Outcome::Denied, 100);
        s.record("drive.attach", Outcome::Error, 60_000_000);
        let v = s.snapshot();
        assert_eq!(v.len(), 3);
        let ok = v
            .iter()
            .find(|x| x.name == "system.status" && x.outcome == "ok")
            .unwrap();
        assert_eq!(ok.count, 2);
        assert!((ok.sum_seconds - 0.0203).abs() < 1e-9);
        assert_eq!(ok.buckets[0], 1);
        assert_eq!(ok.buckets[5], 1);
        let slow = v.iter().find(|x| x.name == "drive.attach").unwrap();
        assert_eq!(slow.buckets.iter().sum::<u64>(), 0, "beyond the last bucket: only +Inf");
    }
}

/// Seconds one CPU spent in each mode since boot (`/proc/stat`), as node_exporter's `node_cpu_seconds_total`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CpuTimes {
    /// CPU number.
    pub cpu: u32,
    /// (mode, seconds): user, nice, system, idle, iowait, irq, softirq, steal.
    pub modes: Vec<(&'static str, f64)>,
}

/// One sandbox's series.
#[derive(Debug, Clone, PartialEq)]
pub struct SandboxSeries {
    /// Name.
    pub name: String,
    /// State (`running`, `stopped` …).
    pub state: &'static str,
    /// CPU time in seconds, while running.
    pub cpu_seconds: Option<f64>,
    /// Memory in use, while running.
    pub memory_bytes: Option<u64>,
    /// The memory limit, when set.
    pub memory_max_bytes: Option<u64>,
}

/// Everything `/metrics` shows, read in one go without running (and auditing) an operation per scrape.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    /// The machine (memory, disks, load, failed units), when readable.
    pub status: Option<crate::system::SystemStatus>,
    /// Per-CPU times.
    pub cpus: Vec<CpuTimes>,
    /// Operation counters.
    pub operations: Vec<OperationStat>,
    /// Sandboxes.
    pub sandboxes: Vec<SandboxSeries>,
    /// Drives: (name, state, image size in bytes).
    pub drives: Vec<(String, String, u64)>,
    /// Records in the audit store.
    pub audit_records: Option<u64>,
    /// The supervisor's tasks: (name, running, restarts).
    pub tasks: Vec<(String, bool, u32)>,
}
