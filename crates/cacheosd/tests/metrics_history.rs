//! End-to-end test of the metrics history: the metrics task of a real `cacheosd --dev` fills `system.history` and
//! publishes `metrics-sampled` events on the SSE stream; REST and `cacheosctl history` read it.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn the_metrics_task_fills_the_history_and_publishes_samples() {
    if !enabled("the_metrics_task_fills_the_history_and_publishes_samples") {
        return;
    }
    let bus = TestBus::session();
    let state = bus.dir.path().join("state");
    let d = Daemon::start_with(&bus.address, &state, &[]);
    // The first sample is taken at start; later ones every `metrics.sample_interval_secs` (5 s by default).
    let ev = sse_until(
        &d.url("/api/v1/events"),
        Duration::from_secs(15),
        || {},
        |name, v| name == "metrics-sampled" && v["sample"]["memory_total_bytes"].as_u64().unwrap_or(0) > 0,
    );
    let t = ev["sample"]["time_ms"].as_u64().unwrap();
    let history = d.get(&format!("/api/v1/system/history?since_ms={t}"));
    let samples = history.as_array().unwrap();
    assert!(!samples.is_empty(), "no sample at or after {t}: {history}");
    assert_eq!(samples[0]["time_ms"].as_u64(), Some(t));
    assert!(samples[0]["disk_total_bytes"].as_u64().unwrap() > 0);
    let all = d.get("/api/v1/system/history");
    assert!(all.as_array().unwrap().len() >= samples.len());

    let out = d.ctl(&["history", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cli: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!cli.as_array().unwrap().is_empty());
    let out = d.ctl(&["history", "--since", "1h"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("TIME") && text.lines().count() >= 2, "{text}");
    let audit = d.get("/api/v1/audit?operation=system.history");
    let fes: Vec<_> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["frontend"].as_str().unwrap())
        .collect();
    assert!(fes.contains(&"rest") && fes.contains(&"cli"), "{fes:?}");
}
