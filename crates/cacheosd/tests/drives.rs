//! End-to-end tests of virtual drives through a real `cacheosd --dev` with real loop devices, mounts and
//! qemu-storage-daemon exports (root; CACHEOS_INTEGRATION=1): the CLI, REST and D-Bus objects, read-only
//! enforcement, snapshots that leave the image byte-identical, busy refusals that name the holder, and SIGKILL of
//! the daemon at exact steps of attach and detach followed by a restart that finds a clean, consistent state.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

fn root_enabled(name: &str) -> bool {
    if !enabled(name) {
        return false;
    }
    assert!(
        rustix_is_root(),
        "{name}: drive end-to-end tests need root (CACHEOS_INTEGRATION is set)"
    );
    true
}

fn rustix_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

fn sh(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An ext4 image at `path` holding `hello.txt`.
fn ext4_image(path: &Path, text: &str) {
    let tree = path.with_extension("tree");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join("hello.txt"), text).unwrap();
    std::fs::File::create(path).unwrap().set_len(16 << 20).unwrap();
    sh(
        "mkfs.ext4",
        &[
            "-q",
            "-F",
            "-L",
            "DATA",
            "-d",
            tree.to_str().unwrap(),
            path.to_str().unwrap(),
        ],
    );
    std::fs::remove_dir_all(&tree).unwrap();
}

fn sha(path: &Path) -> String {
    sh("sha256sum", &[path.to_str().unwrap()])
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// Loop devices, mounts and export processes that mention `dir`: all must be gone after every case.
fn leftovers(dir: &Path) -> Vec<String> {
    let d = dir.to_str().unwrap();
    let mut out = Vec::new();
    for l in sh("losetup", &["--list", "--noheadings", "--output", "NAME,BACK-FILE"]).lines() {
        if l.contains(d) {
            out.push(format!("loop: {l}"));
        }
    }
    for l in std::fs::read_to_string("/proc/self/mountinfo").unwrap().lines() {
        if l.contains(d) {
            out.push(format!("mount: {l}"));
        }
    }
    let ps = Command::new("pgrep").args(["-a", "-f", d]).output().unwrap();
    for l in String::from_utf8_lossy(&ps.stdout).lines() {
        if l.contains("qemu-storage-daemon") {
            out.push(format!("process: {l}"));
        }
    }
    out
}

fn ctl_json(d: &Daemon, args: &[&str]) -> serde_json::Value {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    let o = d.ctl(&a);
    assert!(
        o.status.success(),
        "cacheosctl {args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

fn post(d: &Daemon, path: &str, body: serde_json::Value) -> Result<serde_json::Value, (u16, serde_json::Value)> {
    match ureq::post(&d.url(path)).send_json(body) {
        Ok(r) => Ok(r.into_json().unwrap()),
        Err(ureq::Error::Status(code, r)) => Err((code, r.into_json().unwrap())),
        Err(e) => panic!("{path}: {e}"),
    }
}

fn mount_point(info: &serde_json::Value) -> PathBuf {
    PathBuf::from(info["partitions"][0]["mount_point"].as_str().unwrap())
}

#[test]
fn drives_through_cli_rest_and_dbus() {
    if !root_enabled("drives_through_cli_rest_and_dbus") {
        return;
    }
    let bus = TestBus::session();
    let state = bus.dir.path().canonicalize().unwrap().join("state");
    let images = state.join("images");
    std::fs::create_dir_all(&images).unwrap();
    ext4_image(&images.join("data.img"), "hello raw\n");
    let d = Daemon::start(&bus.address, &state);

    // CLI: attach read-only by bare name; the file is there, writes fail.
    let info = ctl_json(&d, &["drive", "attach", "data.img"]);
    assert_eq!(info["name"], "data");
    assert_eq!(info["read_write"], false);
    let mp = mount_point(&info);
    assert_eq!(mp, state.join("run/drives/data/DATA"));
    assert_eq!(std::fs::read_to_string(mp.join("hello.txt")).unwrap(), "hello raw\n");
    let err = std::fs::write(mp.join("new.txt"), "x").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(30), "read-only file system expected: {err}");
    let opts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let line = opts.lines().find(|l| l.contains(mp.to_str().unwrap())).unwrap();
    for flag in ["ro", "nosuid", "nodev", "noexec"] {
        assert!(
            line.split(' ').nth(5).unwrap().split(',').any(|f| f == flag),
            "{flag} missing: {line}"
        );
    }
    let files = ctl_json(&d, &["drive", "files", "data"]);
    let names: Vec<&str> = files["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"hello.txt"), "{names:?}");

    // D-Bus: the drive is an object with properties.
    let path = "/org/cacheos/CacheOS1/drive/data";
    let prop = sh(
        "busctl",
        &[
            "--address",
            &bus.address,
            "get-property",
            "org.cacheos.CacheOS1",
            path,
            "org.cacheos.CacheOS1.Drive",
            "MountPoints",
        ],
    );
    assert!(prop.contains(mp.to_str().unwrap()), "{prop}");

    // Errors name the problem and map to exit codes; nothing is left behind.
    let o = d.ctl(&["drive", "attach", "missing.iso"]);
    assert_eq!(o.status.code(), Some(5), "{}", String::from_utf8_lossy(&o.stderr));
    let o = d.ctl(&["drive", "attach", "/etc/passwd"]);
    assert_eq!(o.status.code(), Some(6));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not inside an allowed place"));
    std::fs::write(images.join("junk.img"), vec![0u8; 1 << 20]).unwrap();
    let o = d.ctl(&["drive", "attach", "junk.img"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no file system CacheOS can mount"));
    let o = d.ctl(&["drive", "attach", "data.img", "--name", "again"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("already attached as drive \"data\""));

    // Busy: a process with its working directory on the drive is named, and force detaches lazily.
    let mut holder = Command::new("sleep")
        .arg("60")
        .current_dir(&mp)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let o = d.ctl(&["drive", "detach", "data"]);
    assert_eq!(o.status.code(), Some(1));
    let msg = String::from_utf8_lossy(&o.stderr);
    assert!(msg.contains(&format!("pid {} (sleep)", holder.id())), "{msg}");
    holder.kill().unwrap();
    holder.wait().unwrap();
    let msg = ctl_json(&d, &["drive", "detach", "data"]);
    assert_eq!(msg["message"], "drive data detached");
    assert_eq!(leftovers(&state), Vec::<String>::new());

    // REST: qcow2 through the export, snapshot, write, discard; the image stays byte-identical.
    sh(
        "qemu-img",
        &[
            "convert",
            "-f",
            "raw",
            "-O",
            "qcow2",
            images.join("data.img").to_str().unwrap(),
            images.join("data.qcow2").to_str().unwrap(),
        ],
    );
    let before = sha(&images.join("data.qcow2"));
    let info = post(
        &d,
        "/api/v1/drives",
        serde_json::json!({"path": "data.qcow2", "name": "q"}),
    )
    .unwrap();
    assert_eq!(info["format"], "qcow2");
    assert!(info["export_pid"].as_u64().is_some());
    let mp = mount_point(&info);
    assert_eq!(std::fs::read_to_string(mp.join("hello.txt")).unwrap(), "hello raw\n");
    let snap = post(&d, "/api/v1/drives/q/snapshot", serde_json::json!({})).unwrap();
    assert!(!snap["snapshot"].is_null());
    std::fs::write(mp.join("scratch.txt"), "written into the snapshot").unwrap();
    let (code, body) = post(&d, "/api/v1/drives/q/commit", serde_json::json!({"confirm": true})).unwrap_err();
    assert_eq!(code, 409, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("attached read-only"));
    post(&d, "/api/v1/drives/q/discard", serde_json::json!({})).unwrap();
    assert!(!mp.join("scratch.txt").exists());
    post(&d, "/api/v1/drives/q/detach", serde_json::json!({})).unwrap();
    assert_eq!(sha(&images.join("data.qcow2")), before);
    assert_eq!(leftovers(&state), Vec::<String>::new());

    // Create a blank ext4 drive, attached read-write; write to it; commit a snapshot into it.
    let created = ctl_json(
        &d,
        &[
            "drive",
            "create",
            "blank.img",
            "--size",
            "32M",
            "--fs",
            "ext4",
            "--label",
            "WORK",
            "--attach",
        ],
    );
    let info = &created["drive"];
    assert_eq!(info["read_write"], true);
    let mp = mount_point(info);
    std::fs::write(mp.join("kept.txt"), "kept").unwrap();
    ctl_json(&d, &["drive", "snapshot", "blank"]);
    std::fs::write(mp.join("committed.txt"), "committed").unwrap();
    let o = d.ctl(&["drive", "commit", "blank"]);
    assert_eq!(o.status.code(), Some(2), "commit without --yes on a pipe must refuse");
    ctl_json(&d, &["drive", "commit", "blank", "--yes"]);
    assert_eq!(std::fs::read_to_string(mp.join("committed.txt")).unwrap(), "committed");
    ctl_json(&d, &["drive", "detach", "blank"]);
    assert_eq!(leftovers(&state), Vec::<String>::new());

    // Audited with the right front ends.
    let audit = d.get("/api/v1/audit?operation=drive.&limit=200");
    let seen: Vec<(String, String)> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["frontend"].as_str().unwrap().into(),
                r["operation"].as_str().unwrap().into(),
            )
        })
        .collect();
    for want in [
        ("cli", "drive.attach"),
        ("rest", "drive.attach"),
        ("rest", "drive.snapshot"),
        ("cli", "drive.create"),
    ] {
        assert!(
            seen.contains(&(want.0.into(), want.1.into())),
            "{want:?} not in {seen:?}"
        );
    }
}

fn paused(state: &Path) -> Option<String> {
    std::fs::read_to_string(state.join("paused")).ok()
}

#[test]
fn sigkill_during_attach_and_detach_then_restart_is_clean() {
    if !root_enabled("sigkill_during_attach_and_detach_then_restart_is_clean") {
        return;
    }
    let bus = TestBus::session();
    let state = bus.dir.path().canonicalize().unwrap().join("state");
    let images = state.join("images");
    std::fs::create_dir_all(&images).unwrap();
    ext4_image(&images.join("raw.img"), "x\n");
    sh(
        "qemu-img",
        &[
            "convert",
            "-f",
            "raw",
            "-O",
            "qcow2",
            images.join("raw.img").to_str().unwrap(),
            images.join("q.qcow2").to_str().unwrap(),
        ],
    );

    let cases = [
        ("attach.recorded", "raw.img"),
        ("attach.loop", "raw.img"),
        ("attach.mount", "raw.img"),
        ("attach.export", "q.qcow2"),
        ("attach.loop", "q.qcow2"),
        ("attach.mount", "q.qcow2"),
        ("detach.recorded", "raw.img"),
        ("detach.recorded", "q.qcow2"),
    ];
    for (point, image) in cases {
        let _ = std::fs::remove_file(state.join("paused"));
        let mut d = Daemon::start_env(&bus.address, &state, &[], &[("CACHEOS_TEST_PAUSE_AT", point)]);
        if point.starts_with("detach") {
            ctl_json(&d, &["drive", "attach", image, "--name", "victim"]);
        }
        let args: Vec<&str> = if point.starts_with("attach") {
            vec!["drive", "attach", image, "--name", "victim"]
        } else {
            vec!["drive", "detach", "victim"]
        };
        let mut client = Command::new(bin("cacheosctl"))
            .args(["--bus", "session"])
            .args(&args)
            .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_until(&format!("{point} to be reached"), Duration::from_secs(30), || {
            paused(&state)
        });
        let before = d.get("/api/v1/audit?limit=1000");
        d.kill9();
        let _ = client.kill();
        let _ = client.wait();

        let d = Daemon::start(&bus.address, &state);
        let drives = d.get("/api/v1/drives");
        assert_eq!(drives, serde_json::json!([]), "{point} {image}: records after restart");
        let op = if point.starts_with("attach") {
            "drive.attach"
        } else {
            "drive.detach"
        };
        assert_interrupted_recorded(&d, &before, op, &format!("{point} {image}"));
        assert_eq!(
            leftovers(&state),
            Vec::<String>::new(),
            "{point} {image}: leftovers after restart"
        );
        // The same image attaches again normally.
        let info = ctl_json(&d, &["drive", "attach", image, "--name", "victim"]);
        assert_eq!(info["state"], "attached");
        ctl_json(&d, &["drive", "detach", "victim"]);
        drop(d);
    }
    assert_eq!(leftovers(&state), Vec::<String>::new());
}

#[test]
fn corrupt_images_fail_cleanly_and_persistent_drives_come_back_after_a_reboot() {
    if !root_enabled("corrupt_images_fail_cleanly_and_persistent_drives_come_back_after_a_reboot") {
        return;
    }
    let bus = TestBus::session();
    let state = bus.dir.path().canonicalize().unwrap().join("state");
    let images = state.join("images");
    std::fs::create_dir_all(&images).unwrap();
    ext4_image(&images.join("keep.img"), "persistent\n");
    ext4_image(&images.join("gone.img"), "transient\n");
    sh(
        "qemu-img",
        &[
            "convert",
            "-f",
            "raw",
            "-O",
            "qcow2",
            images.join("keep.img").to_str().unwrap(),
            images.join("full.qcow2").to_str().unwrap(),
        ],
    );
    // A qcow2 cut short: the header promises clusters the file does not have.
    let bytes = std::fs::read(images.join("full.qcow2")).unwrap();
    std::fs::write(images.join("cut.qcow2"), &bytes[..bytes.len().min(200_000) / 2]).unwrap();
    let mut garbage = b"QFI\xfb".to_vec();
    garbage.extend(std::iter::repeat_n(0xffu8, 4096));
    std::fs::write(images.join("garbage.qcow2"), garbage).unwrap();

    let mut d = Daemon::start(&bus.address, &state);
    for bad in ["cut.qcow2", "garbage.qcow2"] {
        let o = d.ctl(&["drive", "attach", bad]);
        assert!(!o.status.success(), "{bad} must not attach");
        let msg = String::from_utf8_lossy(&o.stderr);
        assert!(msg.contains(bad), "{bad}: the error names the image: {msg}");
        assert_eq!(leftovers(&state), Vec::<String>::new(), "{bad}: leftovers");
        assert_eq!(d.get("/api/v1/drives"), serde_json::json!([]), "{bad}: no record");
    }

    ctl_json(&d, &["drive", "attach", "keep.img"]);
    ctl_json(&d, &["drive", "persist", "keep"]);
    ctl_json(&d, &["drive", "attach", "gone.img"]);
    d.kill9();
    // A reboot: every mount and loop device of the daemon's is gone from the kernel.
    let run = state.join("run/drives");
    for l in std::fs::read_to_string("/proc/self/mountinfo").unwrap().lines().rev() {
        let target = l.split(' ').nth(4).unwrap();
        if target.starts_with(run.to_str().unwrap()) {
            sh("umount", &[target]);
        }
    }
    for l in sh("losetup", &["--list", "--noheadings", "--output", "NAME,BACK-FILE"]).lines() {
        if l.contains(state.to_str().unwrap()) {
            sh("losetup", &["-d", l.split_whitespace().next().unwrap()]);
        }
    }
    let d = Daemon::start(&bus.address, &state);
    let drives = d.get("/api/v1/drives");
    let names: Vec<&str> = drives
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["keep"], "only the persistent drive comes back");
    assert_eq!(drives[0]["state"], "attached");
    let mp = mount_point(&drives[0]);
    assert_eq!(std::fs::read_to_string(mp.join("hello.txt")).unwrap(), "persistent\n");
    ctl_json(&d, &["drive", "detach", "keep"]);
    assert_eq!(leftovers(&state), Vec::<String>::new());
}
