//! End-to-end test of the chat through a real `cacheosd --dev` (root; CACHEOS_INTEGRATION=1; real loop devices,
//! mounts and systemd-nspawn on a busybox template): a scripted conversation in German and English over
//! `POST /api/v1/chat` attaches a raw ext4 image, lists its files, creates a sandbox bound to it, runs a command in
//! it, removes it only after "ja", and detaches the drive. After each step the state is checked through the REST
//! API, and the audit log must carry every utterance with its session.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::{json, Value};

const SESSION: &str = "e2e-chat";

/// A raw ext4 image at `path` holding `hello.txt`, ten `moreNN.txt` and a directory `notes/` (with `lost+found`,
/// 13 entries: the attach reply names 8 of them).
fn ext4_image(path: &Path) {
    let tree = path.with_extension("tree");
    std::fs::create_dir_all(tree.join("notes")).unwrap();
    std::fs::write(tree.join("hello.txt"), "hallo aus dem Abbild\n").unwrap();
    for i in 0..10 {
        std::fs::write(tree.join(format!("more{i:02}.txt")), format!("{i}\n")).unwrap();
    }
    std::fs::File::create(path).unwrap().set_len(16 << 20).unwrap();
    let out = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", "DATA", "-d"])
        .arg(&tree)
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mkfs.ext4: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(&tree).unwrap();
}

/// On a failed run, releases what the conversation left: first through the still-running daemon (sandboxes
/// removed, drives force-detached), then whatever remains under the state directory in the kernel — processes by
/// pid (the daemon, exports), mounts (deepest first) and loop devices — so a failure leaves no orphans.
struct Cleanup {
    url: String,
    dir: std::path::PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let list = |what: &str| -> Vec<String> {
            ureq::get(&format!("{}/api/v1/{what}", self.url))
                .call()
                .ok()
                .and_then(|r| r.into_json::<Value>().ok())
                .map(|v| names(&v))
                .unwrap_or_default()
        };
        for b in list("sandboxes") {
            let _ = ureq::delete(&format!("{}/api/v1/sandboxes/{b}?confirm=true", self.url)).call();
        }
        for d in list("drives") {
            let _ = ureq::post(&format!("{}/api/v1/drives/{d}/detach", self.url)).send_json(json!({"force": true}));
        }
        let dir = self.dir.to_string_lossy().into_owned();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            if pid != std::process::id() && String::from_utf8_lossy(&cmdline).contains(&dir) {
                let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
            }
        }
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut mounts: Vec<&str> = mountinfo
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| m.starts_with(&dir))
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = Command::new("umount").args(["-l", m]).status();
        }
        let loops = Command::new("losetup")
            .args(["--list", "--noheadings", "--output", "NAME,BACK-FILE"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        for l in loops.lines().filter(|l| l.contains(&dir)) {
            if let Some(dev) = l.split_whitespace().next() {
                let _ = Command::new("losetup").args(["-d", dev]).status();
            }
        }
    }
}

/// One exchange; this conversation expects no lines but interpretation, result and reply.
fn say(d: &Daemon, text: &str) -> Said {
    let said = chat_say(d, SESSION, text);
    assert!(said.other.is_empty(), "{text:?}: unexpected lines {:?}", said.other);
    said
}

/// Says `text` and requires that `operation` ran and succeeded.
fn ran(d: &Daemon, text: &str, operation: &str) -> Said {
    let s = say(d, text);
    let ex = s
        .executed
        .clone()
        .unwrap_or_else(|| panic!("{text:?} ran nothing: {} / {}", s.interpretation, s.reply));
    assert_eq!(ex["operation"], operation, "{text:?}: {ex}");
    assert_eq!(ex["ok"], true, "{text:?} failed: {ex}\n{}", d.log());
    s
}

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_mixed_language_conversation_attaches_binds_runs_removes_after_yes_and_detaches() {
    let name = "a_mixed_language_conversation_attaches_binds_runs_removes_after_yes_and_detaches";
    if !enabled(name) {
        return;
    }
    assert!(is_root(), "{name}: needs root (CACHEOS_INTEGRATION is set)");
    let bus = TestBus::session();
    let state = bus.dir.path().canonicalize().unwrap().join("state");
    busybox_template(&state.join("templates/bb"));
    std::fs::create_dir_all(state.join("images")).unwrap();
    ext4_image(&state.join("images/data.img"));
    let d = Daemon::start(&bus.address, &state);
    // Declared after the daemon, so it runs while the daemon still answers.
    let _cleanup = Cleanup {
        url: d.url(""),
        dir: state.clone(),
    };

    // 1. Attach (German): the reply names the mount path and the top-level files, in German.
    let s = ran(&d, "häng data.img ein", "drive.attach");
    let drives = d.get("/api/v1/drives");
    assert_eq!(names(&drives), ["data"], "{drives}");
    let mp = drives[0]["partitions"][0]["mount_point"].as_str().unwrap().to_string();
    assert!(mp.ends_with("/drives/data/DATA"), "{mp}");
    assert!(
        s.reply.contains(&format!("Eingehängt unter {mp}; dort liegen: "))
            && s.reply.contains("hello.txt, lost+found/, more00.txt")
            && s.reply.contains("… und 5 weitere."),
        "{}",
        s.reply
    );
    assert!(
        s.reply.contains("häng data aus"),
        "the reply says what to do next: {}",
        s.reply
    );

    // 2. Files (English).
    let s = ran(&d, "show the files on data", "drive.files");
    assert!(
        s.reply.contains("hello.txt") && s.reply.contains("notes/"),
        "{}",
        s.reply
    );

    // 3. A sandbox bound to the drive (German), then started (English).
    let s = ran(
        &d,
        "erstelle eine Sandbox namens lab aus der Vorlage bb mit Laufwerk data",
        "sandbox.create",
    );
    assert_eq!(s.interpretation["args"]["template"], "bb", "{}", s.interpretation);
    let sandboxes = d.get("/api/v1/sandboxes");
    assert_eq!(names(&sandboxes), ["lab"], "{sandboxes}");
    assert_eq!(sandboxes[0]["binds"][0]["drive"], "data", "{sandboxes}");
    let target = sandboxes[0]["binds"][0]["target"].as_str().unwrap().to_string();
    assert!(s.reply.contains("starte lab"), "next step: {}", s.reply);
    ran(&d, "start lab", "sandbox.start");
    assert_eq!(d.get("/api/v1/sandboxes/lab")["state"], "running");
    // The drive now says who uses it.
    assert!(d.get("/api/v1/drives/data").to_string().contains("lab"));

    // 4. A command in it sees the drive's files (English, then German).
    let s = ran(&d, &format!("run `cat {target}/hello.txt` in lab"), "sandbox.exec");
    assert!(s.reply.contains("hallo aus dem Abbild"), "{}", s.reply);
    assert_eq!(s.executed.unwrap()["output"]["exit_code"], 0);
    let s = ran(&d, &format!("führe `ls {target}` in lab aus"), "sandbox.exec");
    assert!(
        s.reply.contains("notes") && s.reply.contains("Exit-Code 0"),
        "{}",
        s.reply
    );

    // 5. Removal waits for the yes: the first request changes nothing.
    // Asked for a shell, the console (which has a terminal, here a pipe) opens it in the sandbox itself: what
    // follows goes to the shell; the chat service executes nothing itself.
    let (_, out) = console(
        &d.bus,
        &[],
        "öffne eine Shell in lab\necho in-$((6*7))-$CACHEOS_SANDBOX\nexit\n",
    );
    assert!(out.contains("in-42-lab"), "{out}");

    let s = say(&d, "lösche die Sandbox lab");
    assert!(s.executed.is_none(), "removal ran without a yes: {}", s.reply);
    assert_eq!(s.interpretation["operation"], "sandbox.remove");
    assert_eq!(s.interpretation["needs_confirmation"], true);
    assert_eq!(names(&d.get("/api/v1/sandboxes")), ["lab"]);
    assert_eq!(d.get("/api/v1/sandboxes/lab")["state"], "running");
    let s = ran(&d, "ja", "sandbox.remove");
    assert!(s.reply.contains("Sandbox lab ist gestoppt und gelöscht"), "{}", s.reply);
    assert_eq!(names(&d.get("/api/v1/sandboxes")), Vec::<String>::new());

    // 6. Detach (English).
    let s = ran(&d, "detach data", "drive.detach");
    assert!(s.reply.contains("Drive data is detached"), "{}", s.reply);
    assert_eq!(names(&d.get("/api/v1/drives")), Vec::<String>::new());
    let losetup = Command::new("losetup")
        .args(["--list", "--noheadings"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&losetup.stdout).contains(state.to_str().unwrap()),
        "loop devices left: {}",
        String::from_utf8_lossy(&losetup.stdout)
    );

    // 7. The audit log has every operation the chat ran, with the utterance and the session.
    let audit = d.get("/api/v1/audit?frontend=chat&limit=100");
    let seen: Vec<(String, String, String)> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["session"], SESSION, "{r}");
            (
                r["operation"].as_str().unwrap().into(),
                r["utterance"].as_str().unwrap_or_default().into(),
                r["outcome"].as_str().unwrap().into(),
            )
        })
        .collect();
    for (op, utterance) in [
        ("drive.attach", "häng data.img ein"),
        // The listing in the attach reply is read with the same utterance.
        ("drive.files", "häng data.img ein"),
        ("drive.files", "show the files on data"),
        (
            "sandbox.create",
            "erstelle eine Sandbox namens lab aus der Vorlage bb mit Laufwerk data",
        ),
        ("sandbox.start", "start lab"),
        ("sandbox.remove", "lösche die Sandbox lab → ja"),
        ("drive.detach", "detach data"),
    ] {
        assert!(
            seen.iter().any(|(o, u, out)| o == op && u == utterance && out == "ok"),
            "no audit entry {op} «{utterance}» in {seen:#?}"
        );
    }
    assert!(
        seen.iter().filter(|(o, ..)| o == "sandbox.exec").count() == 2
            && !seen
                .iter()
                .any(|(o, u, _)| o == "sandbox.remove" && u == "lösche die Sandbox lab"),
        "{seen:#?}"
    );
    // The history of the session has the whole conversation.
    let hist = d.get(&format!("/api/v1/chat/{SESSION}/history"));
    assert_eq!(hist.as_array().unwrap().len(), 9, "{hist}");
}

/// `cacheos-console` against the bus at `bus` with `TERM=dumb` and piped standard streams.
fn spawn_console(bus: &str, args: &[&str]) -> std::process::Child {
    Command::new(bin("cacheos-console"))
        .args(args)
        .env("CACHEOS_BUS", "session")
        .env("DBUS_SESSION_BUS_ADDRESS", bus)
        .env("TERM", "dumb")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Runs `cacheos-console` with `input` on a pipe against the bus at `bus`; returns (exit code, stdout+stderr).
fn console(bus: &str, args: &[&str], input: &str) -> (Option<i32>, String) {
    use std::io::Write;
    let mut child = spawn_console(bus, args);
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[test]
fn the_console_chats_leaves_for_bash_and_survives_a_missing_daemon() {
    if !enabled("the_console_chats_leaves_for_bash_and_survives_a_missing_daemon") {
        return;
    }
    let bus = TestBus::session();
    // No daemon yet: the console says so and still offers the shell, which gets the rest of the piped input.
    let (code, out) = console(
        &bus.address,
        &[],
        "zeig mir den Systemstatus\nshell\necho from-bash \"$SHELL\"\n",
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("cacheosd ist nicht erreichbar") && out.contains("\"shell\" opens a shell"),
        "{out}"
    );
    assert!(out.contains("from-bash /bin/bash"), "{out}");
    // `-c` is bash's, for su, ssh and scripts.
    let (code, out) = console(&bus.address, &["-c", "echo via-bash; exit 7"], "");
    assert_eq!((code, out.as_str()), (Some(7), "via-bash\n"));

    let state = bus.dir.path().canonicalize().unwrap().join("state");
    let d = Daemon::start(&bus.address, &state);
    let (code, out) = console(
        &bus.address,
        &[],
        "zeig mir den Systemstatus\nhelp\n!sh\necho from-bash\n",
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("„shell“ oder „!sh“"),
        "the banner says how to leave: {out}"
    );
    assert!(
        out.contains("Ich zeige den Systemstatus.") && out.contains("Speicher:"),
        "{out}"
    );
    assert!(
        out.contains("I can for example:") && out.contains("\"!sh\" opens a bash shell"),
        "{out}"
    );
    assert!(
        out.contains("from-bash") && !out.contains("\x1b["),
        "no colours without a terminal: {out}"
    );
    // The same session as `cacheosctl chat` (`cli-<uid>`, owned by this uid, so read over D-Bus).
    let uid = String::from_utf8(Command::new("id").arg("-u").output().unwrap().stdout).unwrap();
    let hist = Command::new("busctl")
        .args([
            "--address",
            &bus.address,
            "call",
            "org.cacheos.CacheOS1",
            "/org/cacheos/CacheOS1",
        ])
        .args(["org.cacheos.CacheOS1.Manager", "ChatHistory", "s"])
        .arg(format!("cli-{}", uid.trim()))
        .output()
        .unwrap();
    let hist = String::from_utf8_lossy(&hist.stdout);
    assert!(hist.contains("zeig mir den Systemstatus"), "{hist}\n{}", d.log());
    // "exit" logs out without a shell.
    let (code, out) = console(&bus.address, &[], "exit\necho not-run\n");
    assert_eq!(code, Some(0));
    assert!(!out.contains("not-run"), "{out}");
}

/// Issue 16: a sandbox that fails while the console waits for a line is announced there ("Die Sandbox … ist
/// ausgefallen – soll ich nachsehen?"), and a plain "ja" asks the chat why, which answers with `system.diagnose`
/// on that sandbox (audited with the question as its utterance). Needs root and systemd-nspawn: the failure is
/// real (a busybox tree without `sleep`, so the container cannot start).
#[test]
fn the_console_announces_a_failed_sandbox_and_ja_diagnoses_it() {
    use std::io::{Read, Write};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;
    if !enabled("the_console_announces_a_failed_sandbox_and_ja_diagnoses_it") {
        return;
    }
    assert!(
        is_root(),
        "the console failure test needs root (CACHEOS_INTEGRATION is set)"
    );
    let bus = TestBus::session();
    let state = bus.dir.path().canonicalize().unwrap().join("state");
    let tree = state.join("templates/nosleep");
    busybox_template(&tree);
    std::fs::remove_file(tree.join("bin/sleep")).unwrap();
    let d = Daemon::start(&bus.address, &state);

    let mut child = spawn_console(&bus.address, &[]);
    let seen = Arc::new(Mutex::new(String::new()));
    let readers: Vec<_> = [
        Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ]
    .into_iter()
    .map(|mut r| {
        let seen = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = r.read(&mut buf) {
                if n == 0 {
                    break;
                }
                seen.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        })
    })
    .collect();
    let text = || seen.lock().unwrap().clone();
    let mut stdin = child.stdin.take().unwrap();
    wait_until("the console banner", Duration::from_secs(20), || {
        text().contains("CacheOS-Chat").then_some(())
    });

    let o = d.ctl(&["sandbox", "create", "kaputt", "--template", "nosleep"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = d.ctl(&["sandbox", "start", "kaputt"]);
    assert!(!o.status.success(), "a tree without sleep must not start");
    // The failure watch runs with every metrics sample (5 s by default).
    wait_until("the failure notice on the console", Duration::from_secs(30), || {
        text().contains("Die Sandbox kaputt ist ausgefallen").then_some(())
    });
    let out = text();
    assert!(
        out.contains("soll ich nachsehen? (ja)") && out.contains("The sandbox kaputt has failed"),
        "{out}"
    );
    stdin.write_all(b"ja\n").unwrap();
    wait_until("the diagnosis in the console", Duration::from_secs(30), || {
        let audit = d.get("/api/v1/audit?operation=system.diagnose&limit=10");
        audit
            .as_array()?
            .iter()
            .find(|r| r["args"]["sandbox"] == "kaputt")
            .cloned()
    });
    let audit = d.get("/api/v1/audit?operation=system.diagnose&limit=10");
    let rec = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["args"]["sandbox"] == "kaputt")
        .unwrap()
        .clone();
    assert_eq!(rec["utterance"], "warum ist die Sandbox kaputt ausgefallen?", "{rec}");
    stdin.write_all(b"exit\n").unwrap();
    drop(stdin);
    let st = child.wait().unwrap();
    for r in readers {
        r.join().unwrap();
    }
    assert!(st.success(), "{}", text());
    let out = text();
    let after = out.split("soll ich nachsehen? (ja)").nth(1).unwrap_or("");
    assert!(after.contains("kaputt"), "the reply names the sandbox:\n{out}");
    let o = d.ctl(&["sandbox", "remove", "kaputt", "--yes"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}
