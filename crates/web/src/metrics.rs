//! `GET /metrics`: the Prometheus text exposition (OpenMetrics, by the `prometheus-client` crate) of
//! [`cacheos_core::Core::scrape`], behind the same access rules as the API. Host series use node_exporter's names
//! (`node_cpu_seconds_total`, `node_memory_MemAvailable_bytes`, `node_filesystem_avail_bytes`, `node_load1`, …) so
//! existing dashboards work; CacheOS's own series are `cacheos_*`.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use cacheos_core::diagnose::metrics::{Scrape, BUCKETS};
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::AppState;

/// The content type of the OpenMetrics exposition (for scrapers that ask for it, as Prometheus does).
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The content type of the classic Prometheus text format (everyone else: promtool, curl, older scrapers).
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Debug)]
struct Collector(Scrape);

type Labels = Vec<(&'static str, String)>;

/// One metric family of constant values; nothing is written for an empty series.
fn family<M: EncodeMetric>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    make: fn(f64) -> M,
    series: impl IntoIterator<Item = (Labels, f64)>,
) -> Result<(), std::fmt::Error> {
    let series: Vec<_> = series.into_iter().collect();
    if series.is_empty() {
        return Ok(());
    }
    let mut m = enc.encode_descriptor(name, help, None, kind)?;
    for (labels, v) in series {
        make(v).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

fn gauge(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (Labels, f64)>,
) -> Result<(), std::fmt::Error> {
    family(enc, name, help, MetricType::Gauge, ConstGauge::new, series)
}

fn counter(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (Labels, f64)>,
) -> Result<(), std::fmt::Error> {
    family(enc, name, help, MetricType::Counter, ConstCounter::new, series)
}

impl prometheus_client::collector::Collector for Collector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.0;
        let e = &mut enc;
        // Host, with node_exporter's names.
        counter(
            e,
            "node_cpu_seconds",
            "Seconds the CPUs spent in each mode.",
            s.cpus.iter().flat_map(|c| {
                c.modes
                    .iter()
                    .map(move |(mode, secs)| (vec![("cpu", c.cpu.to_string()), ("mode", (*mode).to_owned())], *secs))
            }),
        )?;
        if let Some(st) = &s.status {
            gauge(
                e,
                "node_memory_MemTotal_bytes",
                "Memory information field MemTotal_bytes.",
                [(vec![], st.memory.total_bytes as f64)],
            )?;
            gauge(
                e,
                "node_memory_MemAvailable_bytes",
                "Memory information field MemAvailable_bytes.",
                [(vec![], st.memory.available_bytes as f64)],
            )?;
            gauge(
                e,
                "node_memory_SwapTotal_bytes",
                "Memory information field SwapTotal_bytes.",
                [(vec![], st.memory.swap_total_bytes as f64)],
            )?;
            gauge(e, "node_load1", "1m load average.", [(vec![], st.load.one)])?;
            gauge(e, "node_load5", "5m load average.", [(vec![], st.load.five)])?;
            gauge(e, "node_load15", "15m load average.", [(vec![], st.load.fifteen)])?;
            let fs = |d: &cacheos_core::system::DiskUsage| -> Labels {
                vec![
                    ("device", d.source.clone()),
                    ("fstype", d.fs_type.clone()),
                    ("mountpoint", d.mount_point.clone()),
                ]
            };
            gauge(
                e,
                "node_filesystem_size_bytes",
                "Filesystem size in bytes.",
                st.disks.iter().map(|d| (fs(d), d.total_bytes as f64)),
            )?;
            gauge(
                e,
                "node_filesystem_avail_bytes",
                "Filesystem space available to non-root users in bytes.",
                st.disks.iter().map(|d| (fs(d), d.available_bytes as f64)),
            )?;
            gauge(
                e,
                "node_filesystem_free_bytes",
                "Filesystem free space in bytes.",
                st.disks
                    .iter()
                    .map(|d| (fs(d), d.total_bytes.saturating_sub(d.used_bytes) as f64)),
            )?;
            gauge(
                e,
                "node_filesystem_readonly",
                "Filesystem read-only status.",
                st.disks.iter().map(|d| (fs(d), f64::from(u8::from(d.read_only)))),
            )?;
            gauge(
                e,
                "node_time_seconds",
                "System time in seconds since epoch (1970).",
                [(vec![], st.time_ms as f64 / 1000.0)],
            )?;
            gauge(
                e,
                "node_boot_time_seconds",
                "Node boot time, in unixtime.",
                [(vec![], (st.time_ms as f64 / 1000.0 - st.uptime_seconds).floor())],
            )?;
            if let Some(n) = st.failed_units {
                gauge(
                    e,
                    "cacheos_failed_units",
                    "systemd units in the failed state.",
                    [(vec![], f64::from(n))],
                )?;
            }
        }
        // Operations.
        counter(
            e,
            "cacheos_operations",
            "Operations run, by name and outcome.",
            s.operations.iter().map(|o| {
                (
                    vec![("operation", o.name.to_owned()), ("outcome", o.outcome.to_owned())],
                    o.count as f64,
                )
            }),
        )?;
        if !s.operations.is_empty() {
            let mut m = e.encode_descriptor(
                "cacheos_operation_duration_seconds",
                "How long operations took, by name and outcome.",
                None,
                MetricType::Histogram,
            )?;
            for o in &s.operations {
                let labels: Labels = vec![("operation", o.name.to_owned()), ("outcome", o.outcome.to_owned())];
                let mut buckets: Vec<(f64, u64)> = BUCKETS.iter().copied().zip(o.buckets.iter().copied()).collect();
                let counted: u64 = o.buckets.iter().sum();
                buckets.push((f64::INFINITY, o.count - counted));
                m.encode_family(&labels)?
                    .encode_histogram::<Labels>(o.sum_seconds, o.count, &buckets, None)?;
            }
        }
        // Sandboxes, drives, the audit store, the supervisor.
        gauge(
            e,
            "cacheos_sandbox_up",
            "1 when the sandbox's container runs.",
            s.sandboxes.iter().map(|b| {
                (
                    vec![("sandbox", b.name.clone()), ("state", b.state.to_owned())],
                    f64::from(u8::from(b.state == "running")),
                )
            }),
        )?;
        counter(
            e,
            "cacheos_sandbox_cpu_seconds",
            "CPU time a running sandbox used.",
            s.sandboxes
                .iter()
                .filter_map(|b| Some((vec![("sandbox", b.name.clone())], b.cpu_seconds?))),
        )?;
        gauge(
            e,
            "cacheos_sandbox_memory_bytes",
            "Memory a running sandbox uses.",
            s.sandboxes
                .iter()
                .filter_map(|b| Some((vec![("sandbox", b.name.clone())], b.memory_bytes? as f64))),
        )?;
        gauge(
            e,
            "cacheos_sandbox_memory_max_bytes",
            "A sandbox's memory limit.",
            s.sandboxes
                .iter()
                .filter_map(|b| Some((vec![("sandbox", b.name.clone())], b.memory_max_bytes? as f64))),
        )?;
        gauge(
            e,
            "cacheos_sandboxes",
            "Sandboxes known.",
            [(vec![], s.sandboxes.len() as f64)],
        )?;
        gauge(
            e,
            "cacheos_drives",
            "Virtual drives known.",
            [(vec![], s.drives.len() as f64)],
        )?;
        gauge(
            e,
            "cacheos_drive_size_bytes",
            "A virtual drive's size.",
            s.drives
                .iter()
                .map(|(n, st, size)| (vec![("drive", n.clone()), ("state", st.clone())], *size as f64)),
        )?;
        if let Some(n) = s.audit_records {
            gauge(
                e,
                "cacheos_audit_records",
                "Records in the audit store.",
                [(vec![], n as f64)],
            )?;
        }
        gauge(
            e,
            "cacheos_task_up",
            "1 when cacheosd's internal task runs.",
            s.tasks
                .iter()
                .map(|(n, up, _)| (vec![("task", n.clone())], f64::from(u8::from(*up)))),
        )?;
        counter(
            e,
            "cacheos_task_restarts",
            "Restarts of cacheosd's internal tasks.",
            s.tasks
                .iter()
                .map(|(n, _, r)| (vec![("task", n.clone())], f64::from(*r))),
        )?;
        Ok(())
    }
}

/// Encodes a scrape.
pub fn encode(s: Scrape) -> String {
    let mut reg = Registry::default();
    reg.register_collector(Box::new(Collector(s)));
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &reg);
    out
}

/// The OpenMetrics text as the classic Prometheus text format (0.0.4): the two differ for this output only in
/// that OpenMetrics names a counter family without its `_total` suffix in `# HELP`/`# TYPE` and ends with `# EOF`.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len() + 16 * counters.len());
    for line in openmetrics.lines() {
        if line == "# EOF" {
            continue;
        }
        let rewritten = ["# HELP ", "# TYPE "].iter().find_map(|p| {
            let rest = line.strip_prefix(p)?;
            let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            counters.contains(name).then(|| format!("{p}{name}_total {tail}"))
        });
        out.push_str(rewritten.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

pub(crate) async fn scrape(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    let openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/openmetrics-text"));
    let core = state.core.clone();
    match tokio::task::spawn_blocking(move || encode(core.scrape())).await {
        Ok(body) if openmetrics => ([(header::CONTENT_TYPE, OPENMETRICS)], body).into_response(),
        Ok(body) => ([(header::CONTENT_TYPE, PROMETHEUS_TEXT)], to_prometheus_text(&body)).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("scrape failed: {e}")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cacheos_core::diagnose::metrics::{CpuTimes, OperationStat};

    #[test]
    fn counters_histograms_and_node_names_encode_in_both_formats() {
        let s = Scrape {
            cpus: vec![CpuTimes {
                cpu: 0,
                modes: vec![("idle", 12.5)],
            }],
            operations: vec![OperationStat {
                name: "system.status",
                outcome: "ok",
                count: 3,
                sum_seconds: 0.004,
                buckets: vec![1, 1, 0, 0, 0, 0, 0, 0, 0, 0],
            }],
            audit_records: Some(7),
            ..Default::default()
        };
        let om = encode(s);
        assert!(om.contains("# TYPE node_cpu_seconds counter\n"), "{om}");
        assert!(
            om.contains("node_cpu_seconds_total{cpu=\"0\",mode=\"idle\"} 12.5"),
            "{om}"
        );
        assert!(om.ends_with("# EOF\n"));
        assert!(
            om.contains(
                "cacheos_operation_duration_seconds_bucket{le=\"0.001\",operation=\"system.status\",outcome=\"ok\"} 2"
            ),
            "{om}"
        );
        assert!(
            om.contains(
                "cacheos_operation_duration_seconds_bucket{le=\"+Inf\",operation=\"system.status\",outcome=\"ok\"} 3"
            ),
            "{om}"
        );
        let text = to_prometheus_text(&om);
        assert!(text.contains("# TYPE node_cpu_seconds_total counter\n"), "{text}");
        assert!(
            text.contains("# HELP cacheos_operations_total Operations run"),
            "{text}"
        );
        assert!(!text.contains("# EOF"));
        assert!(
            text.contains("# TYPE cacheos_audit_records gauge\ncacheos_audit_records 7"),
            "{text}"
        );
    }
}
