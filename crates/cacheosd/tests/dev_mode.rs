//! End-to-end tests of `cacheosd --dev` on a private bus: every front end reads status and is audited under its
//! own name; a killed task restarts and says so; restarts keep the audit log; bad stores fail loudly.

mod common;

use std::time::Duration;

use common::*;
use futures_util::StreamExt;

fn audit_frontends(d: &Daemon) -> Vec<(String, String)> {
    d.get("/api/v1/audit?limit=100")
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["frontend"].as_str().unwrap().to_string(),
                r["operation"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn every_front_end_reads_status_and_is_audited_as_itself() {
    if !enabled("every_front_end_reads_status_and_is_audited_as_itself") {
        return;
    }
    let bus = TestBus::session();
    let state = bus.dir.path().join("state");
    let d = Daemon::start(&bus.address, &state);

    // D-Bus, as a plain client.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _in_runtime = rt.enter(); // zbus objects must be dropped inside the runtime
    let status: serde_json::Value = rt.block_on(async {
        let conn = zbus::connection::Builder::address(bus.address.as_str())
            .unwrap()
            .build()
            .await
            .unwrap();
        let p = cacheos_dbus_proxy(&conn).await;
        let v: String = p.call("GetSystemStatus", &()).await.unwrap();
        assert_eq!(
            p.get_property::<String>("Version").await.unwrap(),
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(p.get_property::<String>("State").await.unwrap(), "running");
        serde_json::from_str(&v).unwrap()
    });
    assert!(!status["hostname"].as_str().unwrap().is_empty());
    assert!(status["memory"]["total_bytes"].as_u64().unwrap() > 0);

    // REST.
    let rest = d.get("/api/v1/system/status");
    assert_eq!(rest["hostname"], status["hostname"]);

    // CLI, text and JSON.
    let out = d.ctl(&["status", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cli: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cli["hostname"], status["hostname"]);
    let out = d.ctl(&["status"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("Memory:"));

    let seen = audit_frontends(&d);
    for fe in ["dbus", "rest", "cli"] {
        assert!(
            seen.contains(&(fe.to_string(), "system.status".to_string())),
            "no system.status from {fe} in {seen:?}"
        );
    }
    // The CLI's audit view filters too.
    let out = d.ctl(&["audit", "--json", "--frontend", "cli", "--operation", "system.status"]);
    let recs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(recs.as_array().unwrap().len(), 2);
    assert!(recs
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["frontend"] == "cli" && r["principal"]["kind"] == "uid"));

    // Errors carry typed names and exit codes.
    let out = d.ctl(&["supervisor", "kill-task", "no-such-task"]);
    assert_eq!(out.status.code(), Some(5), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"no-such-task\" not found"));
    let token = d.ctl(&["web", "token"]);
    assert_eq!(String::from_utf8_lossy(&token.stdout).trim().len(), 64);
}

async fn cacheos_dbus_proxy(conn: &zbus::Connection) -> zbus::Proxy<'static> {
    zbus::Proxy::new(
        conn,
        "org.cacheos.CacheOS1",
        "/org/cacheos/CacheOS1",
        "org.cacheos.CacheOS1.Manager",
    )
    .await
    .unwrap()
}

#[test]
fn killed_task_is_restarted_and_reported() {
    if !enabled("killed_task_is_restarted_and_reported") {
        return;
    }
    let bus = TestBus::session();
    let d = Daemon::start(&bus.address, &bus.dir.path().join("state"));

    // Listen on D-Bus for the signal while killing the task through REST and watching SSE.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _in_runtime = rt.enter(); // zbus objects must be dropped inside the runtime
    let conn = rt.block_on(async {
        zbus::connection::Builder::address(bus.address.as_str())
            .unwrap()
            .build()
            .await
            .unwrap()
    });
    let proxy = rt.block_on(cacheos_dbus_proxy(&conn));
    let mut signals = rt.block_on(proxy.receive_signal("Event")).unwrap();

    let url = d.url("/api/v1/supervisor/tasks/metrics/kill");
    let ev = sse_until(
        &d.url("/api/v1/events"),
        Duration::from_secs(20),
        || {
            let r: serde_json::Value = ureq::post(&url).call().unwrap().into_json().unwrap();
            assert!(r["message"].as_str().unwrap().contains("metrics"));
        },
        |name, v| name == "task-state-changed" && v["task"] == "metrics" && v["state"] == "backoff",
    );
    assert_eq!(ev["error"], "killed (fault injection)");
    assert_eq!(ev["restarts"], 1);

    let got = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(msg) = signals.next().await {
                let (kind, json): (String, String) = msg.body().deserialize().unwrap();
                if kind == "task-state-changed" && json.contains("\"backoff\"") {
                    return json;
                }
            }
            panic!("signal stream ended");
        })
        .await
        .expect("Event signal for the killed task")
    });
    assert!(got.contains("metrics"));

    let st = wait_until("metrics to run again", Duration::from_secs(20), || {
        let s = d.get("/api/v1/supervisor/status");
        let t = s["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "metrics")
            .unwrap()
            .clone();
        (t["state"] == "running" && s["state"] == "running").then_some(t)
    });
    assert_eq!(st["restarts"], 1);
    assert_eq!(st["last_error"], "killed (fault injection)");
    let out = d.ctl(&["supervisor"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("killed (fault injection)"));
}

#[test]
fn restart_keeps_the_audit_log_and_bad_stores_are_refused() {
    if !enabled("restart_keeps_the_audit_log_and_bad_stores_are_refused") {
        return;
    }
    let bus = TestBus::session();
    let state = bus.dir.path().join("state");
    let mut d = Daemon::start(&bus.address, &state);
    d.get("/api/v1/system/status");
    let before = d.get("/api/v1/audit");
    let status = d.stop();
    assert!(status.success(), "clean exit on SIGTERM, got {status}: {}", d.log());

    let mut d = Daemon::start(&bus.address, &state);
    let after = d.get("/api/v1/audit?limit=1000");
    let ids: Vec<u64> = after
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_u64().unwrap())
        .collect();
    for r in before.as_array().unwrap() {
        assert!(
            ids.contains(&r["id"].as_u64().unwrap()),
            "record {} lost across restart",
            r["id"]
        );
    }
    assert!(d.stop().success());

    // A corrupt store: refused with a message naming the file, left byte-identical.
    let store = state.join("cacheos.redb");
    let garbage: Vec<u8> = (0..50_000u32).map(|i| (i * 13 % 256) as u8).collect();
    std::fs::write(&store, &garbage).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cacheosd"))
        .args(["--dev", "--state-dir"])
        .arg(&state)
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("corrupt") && err.contains("cacheos.redb"), "{err}");
    assert_eq!(std::fs::read(&store).unwrap(), garbage);

    // A store from a newer schema: refused, untouched.
    std::fs::remove_file(&store).unwrap();
    {
        let s = cacheos_store::RedbStore::open(&store, 10).unwrap();
        s.force_schema_version_for_tests(99).unwrap();
    }
    let before = std::fs::read(&store).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cacheosd"))
        .args(["--dev", "--state-dir"])
        .arg(&state)
        .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("schema version 99"), "{err}");
    assert_eq!(std::fs::read(&store).unwrap(), before);
}

#[test]
fn chat_works_through_cli_rest_and_dbus_with_shared_sessions() {
    if !enabled("chat_works_through_cli_rest_and_dbus_with_shared_sessions") {
        return;
    }
    let bus = TestBus::session();
    let d = Daemon::start(&bus.address, &bus.dir.path().join("state"));

    // Explain: nothing runs.
    let out = d.ctl(&[
        "chat",
        "--explain",
        "--json",
        "--session",
        "c1",
        "beende die Aufgabe metrics",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["interpretation"]["operation"], "supervisor.kill-task");
    assert_eq!(v["interpretation"]["args"], serde_json::json!({"task": "metrics"}));
    assert_eq!(v["interpretation"]["needs_confirmation"], true);

    // One-shot chat in German answers in German with the result.
    let out = d.ctl(&["chat", "--session", "c1", "zeig mir den Systemstatus"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Ich zeige den Systemstatus") && text.contains("Speicher"),
        "{text}"
    );

    // Plan over the CLI; another principal (a REST client) cannot confirm it; the same user over plain D-Bus can.
    let out = d.ctl(&["chat", "--session", "c1", "beende die Aufgabe metrics"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("ja"));
    let err = ureq::post(&d.url("/api/v1/chat"))
        .send_json(serde_json::json!({"text": "ja", "session": "c1"}))
        .unwrap_err();
    assert!(matches!(err, ureq::Error::Status(403, _)), "{err:?}");
    let out = std::process::Command::new("busctl")
        .args([
            "--address",
            &d.bus,
            "--json=short",
            "call",
            "org.cacheos.CacheOS1",
            "/org/cacheos/CacheOS1",
            "org.cacheos.CacheOS1.Manager",
            "Chat",
            "ss",
            "ja",
            "c1",
        ])
        .output()
        .unwrap();
    let resp = String::from_utf8_lossy(&out.stdout);
    assert!(
        resp.contains("supervisor.kill-task") && resp.contains("\\\"ok\\\":true"),
        "{resp}"
    );

    let recs = d.get("/api/v1/audit?frontend=chat");
    let recs = recs.as_array().unwrap();
    let kill = recs
        .iter()
        .find(|r| r["operation"] == "supervisor.kill-task")
        .expect("kill audited");
    assert_eq!(kill["utterance"], "beende die Aufgabe metrics → ja");
    assert_eq!(kill["session"], "c1");
    assert!(recs
        .iter()
        .any(|r| r["operation"] == "system.status" && r["utterance"] == "zeig mir den Systemstatus"));

    // Interactive mode over a pipe.
    let mut child = std::process::Command::new(bin("cacheosctl"))
        .args(["--bus", "session", "chat", "--session", "c2"])
        .env("DBUS_SESSION_BUS_ADDRESS", &d.bus)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all("was kannst du?\nshow the services\nexit\n".as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(text.contains("Ich kann") && text.contains("Showing cacheosd"), "{text}");
}

/// Issue 19 (audit group commit): read-only records are committed in groups, but an acknowledged changing
/// operation's record is durable when the answer arrives. SIGKILL right after the answer (no flush, no shutdown),
/// restart: the record is there with every record before it, and ids only grow.
#[test]
fn an_acknowledged_changing_operation_survives_sigkill_and_ids_only_grow() {
    if !enabled("an_acknowledged_changing_operation_survives_sigkill_and_ids_only_grow") {
        return;
    }
    let bus = TestBus::session();
    let state = bus.dir.path().join("state");
    let mut last_id = 0;
    for round in 0..3 {
        let mut d = Daemon::start(&bus.address, &state);
        // Read-only records first (grouped, not yet durable), then one changing operation.
        for _ in 0..50 {
            d.get("/api/v1/system/status");
        }
        let r: serde_json::Value = ureq::post(&d.url("/api/v1/supervisor/tasks/metrics/kill"))
            .call()
            .unwrap()
            .into_json()
            .unwrap();
        assert!(r["message"].as_str().unwrap().contains("metrics"), "{r}");
        d.kill9();

        let mut d = Daemon::start(&bus.address, &state);
        let recs = d.get("/api/v1/audit?limit=1000");
        let recs = recs.as_array().unwrap();
        let kill = recs
            .iter()
            .find(|r| r["operation"] == "supervisor.kill-task" && r["id"].as_u64().unwrap() > last_id)
            .unwrap_or_else(|| panic!("round {round}: acknowledged supervisor.kill-task lost after SIGKILL"));
        let kill_id = kill["id"].as_u64().unwrap();
        let ids: Vec<u64> = recs.iter().map(|r| r["id"].as_u64().unwrap()).collect();
        // Newest first, strictly decreasing: no id reused, and every record before the kill kept (no gaps).
        assert!(ids.windows(2).all(|w| w[0] > w[1]), "round {round}: {ids:?}");
        let before: Vec<u64> = ids.iter().copied().filter(|&i| i <= kill_id).collect();
        assert_eq!(
            before,
            (1..=kill_id).rev().collect::<Vec<_>>(),
            "round {round}: gaps before the kill"
        );
        let newest = ids[0];
        assert!(newest >= kill_id && kill_id > last_id, "round {round}: ids only grow");
        last_id = newest;
        assert!(d.stop().success());
    }
}
