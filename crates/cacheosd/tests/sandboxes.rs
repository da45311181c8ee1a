//! End-to-end test of sandboxes through a real `cacheosd --dev` with real systemd-nspawn containers on a busybox
//! template tree (root; CACHEOS_INTEGRATION=1; needs systemd-nspawn, cgexec and busybox-static): the CLI's create,
//! start, exec (stdout and the command's exit code as cacheosctl's own), stop and remove, the streamed REST exec,
//! the D-Bus sandbox object, copies, the shell, throw-away runs, the audit trail of every call, and SIGKILL of the
//! daemon in the middle of create, start and restart.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

fn root_enabled(name: &str) -> bool {
    if !enabled(name) {
        return false;
    }
    assert!(
        is_root(),
        "{name}: sandbox end-to-end tests need root (CACHEOS_INTEGRATION is set)"
    );
    true
}

fn ctl_json(d: &Daemon, args: &[&str]) -> serde_json::Value {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    let o = d.ctl(&a);
    assert!(
        o.status.success(),
        "cacheosctl {args:?}: {}{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
        d.log()
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn sandbox_lifecycle_through_cli_rest_and_dbus_is_audited() {
    if !root_enabled("sandbox_lifecycle_through_cli_rest_and_dbus_is_audited") {
        return;
    }
    let bus = TestBus::session();
    let state = bus.dir.path().canonicalize().unwrap().join("state");
    busybox_template(&state.join("templates/bb"));
    let mut d = Daemon::start(&bus.address, &state);

    let templates = ctl_json(&d, &["template", "list"]);
    let names: Vec<&str> = templates
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"bb") && names.contains(&"host"), "{names:?}");
    // A template put into the directory while the daemon runs is offered at once, and one taken away is gone.
    busybox_template(&state.join("templates/late"));
    let names = |v: serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert!(names(ctl_json(&d, &["template", "list"])).contains(&"late".to_owned()));
    std::fs::remove_dir_all(state.join("templates/late")).unwrap();
    assert!(!names(ctl_json(&d, &["template", "list"])).contains(&"late".to_owned()));

    let created = ctl_json(
        &d,
        &["sandbox", "create", "box", "--template", "bb", "--memory", "256M"],
    );
    assert_eq!(
        (created["name"].as_str(), created["state"].as_str()),
        (Some("box"), Some("created"))
    );
    let started = ctl_json(&d, &["sandbox", "start", "box"]);
    assert_eq!(started["state"], "running", "{started}");
    assert!(started["main_pid"].as_u64().is_some());

    // exec: stdout, and cacheosctl exits with the command's exit code.
    let o = d.ctl(&["sandbox", "exec", "box", "--", "echo", "hi"]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "hi\n");
    let o = d.ctl(&["sandbox", "exec", "box", "--", "sh", "-c", "exit 3"]);
    assert_eq!(o.status.code(), Some(3), "{}", String::from_utf8_lossy(&o.stderr));
    let o = d.ctl(&["sandbox", "exec", "box", "--", "no-such-command"]);
    assert_eq!(o.status.code(), Some(127), "{}", String::from_utf8_lossy(&o.stderr));
    let x = ctl_json(
        &d,
        &["sandbox", "exec", "box", "--", "sh", "-c", "echo out; echo err >&2"],
    );
    assert_eq!(
        (x["stdout"].as_str(), x["stderr"].as_str()),
        (Some("out\n"), Some("err\n"))
    );

    // Copies: a file and a directory in (the directory as a tar stream through a pipe), both out again.
    let local = bus.dir.path().canonicalize().unwrap().join("local");
    std::fs::create_dir_all(local.join("tree/sub")).unwrap();
    std::fs::write(local.join("note.txt"), "a note\n").unwrap();
    std::fs::write(local.join("tree/a"), "a\n").unwrap();
    std::fs::write(local.join("tree/sub/b"), "b\n").unwrap();
    let c = ctl_json(
        &d,
        &[
            "sandbox",
            "copy-in",
            "box",
            local.join("note.txt").to_str().unwrap(),
            "/root/note.txt",
        ],
    );
    assert_eq!(c["bytes"], 7, "{c}");
    let o = d.ctl(&[
        "sandbox",
        "copy-in",
        "box",
        local.join("tree").to_str().unwrap(),
        "/srv/tree",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = d.ctl(&[
        "sandbox",
        "exec",
        "box",
        "--",
        "cat",
        "/root/note.txt",
        "/srv/tree/sub/b",
    ]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "a note\nb\n");
    let o = d.ctl(&[
        "sandbox",
        "copy-out",
        "box",
        "/root/note.txt",
        local.join("back.txt").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read_to_string(local.join("back.txt")).unwrap(), "a note\n");
    // Never overwrites, and a missing file inside leaves nothing here.
    let o = d.ctl(&[
        "sandbox",
        "copy-out",
        "box",
        "/root/note.txt",
        local.join("back.txt").to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let o = d.ctl(&[
        "sandbox",
        "copy-out",
        "box",
        "/root/missing",
        local.join("missing").to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(!local.join("missing").exists());
    let o = d.ctl(&[
        "sandbox",
        "copy-out",
        "-r",
        "box",
        "/srv/tree",
        local.join("tree-back").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read_to_string(local.join("tree-back/sub/b")).unwrap(), "b\n");

    // The same over REST: PUT writes a file, GET reads it back; a missing file is an error response, not an empty
    // body.
    let resp = ureq::put(&d.url("/api/v1/sandboxes/box/files?path=/root/rest.txt"))
        .send_bytes(b"over rest\n")
        .unwrap();
    let c: serde_json::Value = resp.into_json().unwrap();
    assert_eq!(c["bytes"], 10, "{c}");
    let back = ureq::get(&d.url("/api/v1/sandboxes/box/files?path=/root/rest.txt"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert_eq!(back, "over rest\n");
    match ureq::get(&d.url("/api/v1/sandboxes/box/files?path=/root/none")).call() {
        Err(ureq::Error::Status(code, _)) => assert!(code >= 400, "{code}"),
        other => panic!("GET of a missing file: {other:?}"),
    }
    let tar = ureq::get(&d.url("/api/v1/sandboxes/box/files?path=/srv/tree&archive=true"))
        .call()
        .unwrap();
    assert_eq!(tar.content_type(), "application/x-tar");
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut tar.into_reader(), &mut bytes).unwrap();
    assert!(bytes.len() >= 1024, "{} bytes", bytes.len());

    // An interactive shell (input from a pipe here): what is typed runs inside.
    let mut shell = Command::new(bin("cacheosctl"))
        .args(["--bus", "session", "sandbox", "shell", "box"])
        .env("DBUS_SESSION_BUS_ADDRESS", &d.bus)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut input = shell.stdin.take().unwrap();
        input.write_all(b"echo in-$CACHEOS_SANDBOX-$((40+2))\nexit\n").unwrap();
    }
    let o = shell.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("in-box-42"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );

    // run: a command in a throw-away sandbox; cacheosctl exits with its code and nothing is left afterwards.
    let o = d.ctl(&[
        "sandbox",
        "run",
        "--template",
        "bb",
        "--memory",
        "64M",
        "--",
        "sh",
        "-c",
        "echo once; exit 4",
    ]);
    assert_eq!(o.status.code(), Some(4), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "once\n");
    let resp = ureq::post(&d.url("/api/v1/sandboxes/run"))
        .send_json(serde_json::json!({"template": "bb", "argv": ["echo", "via rest"]}))
        .unwrap();
    let text = resp.into_string().unwrap();
    assert!(text.contains("via rest") && text.contains("\"exit_code\":0"), "{text}");
    let names: Vec<String> = d
        .get("/api/v1/sandboxes")
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["box"], "run sandboxes are gone");
    assert_eq!(sandbox_leftovers(&state, "run-1"), Vec::<String>::new());

    // REST exec streams NDJSON and ends with the exit code.
    let resp = ureq::post(&d.url("/api/v1/sandboxes/box/exec"))
        .send_json(serde_json::json!({"argv": ["sh", "-c", "echo streamed; exit 5"]}))
        .unwrap();
    let text = resp.into_string().unwrap();
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let out: String = lines
        .iter()
        .filter(|l| l["stream"] == "stdout")
        .map(|l| l["data"].as_str().unwrap())
        .collect();
    assert_eq!(out, "streamed\n", "{text}");
    assert_eq!(lines.last().unwrap(), &serde_json::json!({"exit_code": 5}));
    let info = d.get("/api/v1/sandboxes/box");
    assert_eq!(info["state"], "running");

    // D-Bus: the sandbox is an object.
    let prop = Command::new("busctl")
        .args([
            "--address",
            &bus.address,
            "get-property",
            "org.cacheos.CacheOS1",
            "/org/cacheos/CacheOS1/sandbox/box",
            "org.cacheos.CacheOS1.Sandbox",
            "State",
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&prop.stdout).contains("running"), "{prop:?}");

    let stopped = ctl_json(&d, &["sandbox", "stop", "box"]);
    assert_eq!(stopped["state"], "stopped");
    let o = d.ctl(&["sandbox", "exec", "box", "--", "true"]);
    assert_eq!(o.status.code(), Some(1), "exec in a stopped sandbox is refused");
    // Removal without --yes (and without a terminal) is refused; with it the sandbox is gone.
    let o = d.ctl(&["sandbox", "remove", "box"]);
    assert_eq!(o.status.code(), Some(2));
    ctl_json(&d, &["sandbox", "remove", "box", "--yes"]);
    let o = d.ctl(&["sandbox", "info", "box"]);
    assert_eq!(o.status.code(), Some(5));
    wait_until("sandbox object removed", std::time::Duration::from_secs(10), || {
        let out = Command::new("busctl")
            .args(["--address", &bus.address, "tree", "--list", "org.cacheos.CacheOS1"])
            .output()
            .ok()?;
        (!String::from_utf8_lossy(&out.stdout).contains("/sandbox/box")).then_some(())
    });

    // Every call is in the audit log.
    let audit = ctl_json(&d, &["audit", "--operation", "sandbox.", "--limit", "100"]);
    let ops: Vec<(String, String, String)> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["operation"].as_str().unwrap().to_owned(),
                r["frontend"].as_str().unwrap().to_owned(),
                r["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for (op, frontend) in [
        ("sandbox.create", "cli"),
        ("sandbox.start", "cli"),
        ("sandbox.exec", "cli"),
        ("sandbox.exec", "rest"),
        ("sandbox.stop", "cli"),
        ("sandbox.remove", "cli"),
        ("sandbox.reconcile", "internal"),
        ("sandbox.copy-in", "cli"),
        ("sandbox.copy-out", "cli"),
        ("sandbox.shell", "cli"),
        ("sandbox.run", "cli"),
        ("sandbox.run", "rest"),
    ] {
        assert!(
            ops.iter().any(|(o, f, r)| o == op && f == frontend && r == "ok"),
            "{op} from {frontend} missing: {ops:?}"
        );
    }
    assert_eq!(
        ops.iter().filter(|(o, f, _)| o == "sandbox.exec" && f == "cli").count(),
        6,
        "{ops:?}"
    );
    d.stop();
}

/// An ext4 image at `path` holding `hello.txt`.
fn ext4_image(path: &Path, text: &str) {
    let tree = path.with_extension("tree");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join("hello.txt"), text).unwrap();
    std::fs::File::create(path).unwrap().set_len(16 << 20).unwrap();
    let out = Command::new("mkfs.ext4")
        .args([
            "-q",
            "-F",
            "-L",
            "DATA",
            "-d",
            tree.to_str().unwrap(),
            path.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mkfs.ext4: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(&tree).unwrap();
}

#[test]
fn drive_binds_resolve_to_the_mount_and_keep_the_drive_busy() {
    if !root_enabled("drive_binds_resolve_to_the_mount_and_keep_the_drive_busy") {
        return;
    }
    let bus = TestBus::session();
    let state = bus.dir.path().canonicalize().unwrap().join("state");
    busybox_template(&state.join("templates/bb"));
    std::fs::create_dir_all(state.join("images")).unwrap();
    ext4_image(&state.join("images/data.img"), "hello from the drive\n");
    let mut d = Daemon::start(&bus.address, &state);

    // A bind of a drive that is not attached is refused, naming the drive.
    let o = d.ctl(&["sandbox", "create", "box", "--template", "bb", "--bind", "data"]);
    assert_eq!(o.status.code(), Some(6), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("drive data"), "{o:?}");

    let drive = ctl_json(&d, &["drive", "attach", "data.img"]);
    let mount = drive["partitions"][0]["mount_point"].as_str().unwrap().to_owned();
    let created = ctl_json(
        &d,
        &["sandbox", "create", "box", "--template", "bb", "--bind", "data:ro"],
    );
    assert_eq!(created["binds"][0]["source"], mount.as_str());
    assert_eq!(created["binds"][0]["target"], "/mnt/data");
    ctl_json(&d, &["sandbox", "start", "box"]);
    let o = d.ctl(&["sandbox", "exec", "box", "--", "cat", "/mnt/data/hello.txt"]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "hello from the drive\n");
    let o = d.ctl(&["sandbox", "exec", "box", "--", "sh", "-c", "echo x > /mnt/data/new.txt"]);
    assert_ne!(o.status.code(), Some(0), "a read-only bind must refuse writes");

    // While the sandbox runs, the drive is in use and a plain detach is refused.
    let info = ctl_json(&d, &["drive", "info", "data"]);
    assert_eq!(info["used_by"], serde_json::json!(["box"]));
    let o = d.ctl(&["drive", "detach", "data"]);
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("box"), "{o:?}");

    ctl_json(&d, &["sandbox", "remove", "box", "--yes"]);
    ctl_json(&d, &["drive", "detach", "data"]);
    d.stop();
}

/// What of sandbox `name` the system still holds besides its record: nspawn processes carrying its marker, and
/// mounts and its directory below the daemon's sandbox roots.
fn sandbox_leftovers(state: &Path, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let marker = format!("CACHEOS_SANDBOX={name}");
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            if String::from_utf8_lossy(&cmdline)
                .split('\0')
                .any(|a| a.ends_with(&marker))
            {
                out.push(format!("process {}", entry.file_name().to_string_lossy()));
            }
        }
    }
    let run = state.join("run/sandboxes");
    for line in std::fs::read_to_string("/proc/self/mountinfo").unwrap().lines() {
        if let Some(target) = line.split(' ').nth(4) {
            if Path::new(target).starts_with(run.join("roots").join(name)) {
                out.push(format!("mount {target}"));
            }
        }
    }
    if run.join("roots").join(name).exists() {
        out.push(format!("run dir {}", run.join("roots").join(name).display()));
    }
    out
}

#[test]
fn sigkill_during_create_start_and_restart_then_restart_is_consistent() {
    if !root_enabled("sigkill_during_create_start_and_restart_then_restart_is_consistent") {
        return;
    }
    let bus = TestBus::session();
    let state = bus.dir.path().canonicalize().unwrap().join("state");
    busybox_template(&state.join("templates/bb"));
    // (pause point, the command that is interrupted, ephemeral, the state expected after the restart)
    let cases = [
        ("create.recorded", "create", false, Some("created")),
        ("start.recorded", "start", false, Some("stopped")),
        ("start.prepared", "start", false, Some("stopped")),
        ("start.running", "start", false, Some("stopped")),
        ("start.running", "start", true, None),
        ("restart.stopped", "restart", false, Some("stopped")),
    ];
    for (point, command, ephemeral, expected) in cases {
        let what = format!(
            "{point} during {command}{}",
            if ephemeral { " (ephemeral)" } else { "" }
        );
        let _ = std::fs::remove_file(state.join("paused"));
        let mut d = Daemon::start_env(&bus.address, &state, &[], &[("CACHEOS_TEST_PAUSE_AT", point)]);
        let mut create = vec!["sandbox", "create", "victim", "--template", "bb"];
        if ephemeral {
            create.push("--ephemeral");
        }
        if command != "create" {
            ctl_json(&d, &create);
        }
        if command == "restart" {
            // Reaching start.* here would pause too early: restart's own point comes after the stop.
            ctl_json(&d, &["sandbox", "start", "victim"]);
        }
        let args: Vec<&str> = match command {
            "create" => create.clone(),
            other => vec!["sandbox", other, "victim"],
        };
        let mut client = Command::new(bin("cacheosctl"))
            .args(["--bus", "session"])
            .args(&args)
            .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        wait_until(
            &format!("{what} to be reached"),
            std::time::Duration::from_secs(60),
            || std::fs::read_to_string(state.join("paused")).ok(),
        );
        let before = d.get("/api/v1/audit?limit=1000");
        d.kill9();
        let _ = client.kill();
        let _ = client.wait();

        let d = Daemon::start(&bus.address, &state);
        common::assert_interrupted_recorded(&d, &before, &format!("sandbox.{command}"), &what);
        let list = d.get("/api/v1/sandboxes");
        let rec = list.as_array().unwrap().iter().find(|s| s["name"] == "victim");
        assert_eq!(rec.map(|r| r["state"].as_str().unwrap()), expected, "{what}: {list}");
        assert_eq!(
            sandbox_leftovers(&state, "victim"),
            Vec::<String>::new(),
            "{what}: leftovers after restart"
        );
        if expected.is_some() {
            // The sandbox works normally afterwards, and goes away completely.
            ctl_json(&d, &["sandbox", "start", "victim"]);
            let o = d.ctl(&["sandbox", "exec", "victim", "--", "echo", "alive"]);
            assert_eq!(String::from_utf8_lossy(&o.stdout), "alive\n", "{what}");
            let o = d.ctl(&["sandbox", "remove", "victim", "--yes"]);
            assert!(o.status.success(), "{what}: {}", String::from_utf8_lossy(&o.stderr));
        }
        assert_eq!(
            sandbox_leftovers(&state, "victim"),
            Vec::<String>::new(),
            "{what}: leftovers at the end"
        );
        assert!(!state.join("sandboxes/victim").exists(), "{what}: data left");
        drop(d);
    }
}

#[test]
fn a_drive_with_an_os_tree_is_a_template_and_stays_unmodified() {
    if !root_enabled("a_drive_with_an_os_tree_is_a_template_and_stays_unmodified") {
        return;
    }
    let bus = TestBus::session();
    let state = bus.dir.path().canonicalize().unwrap().join("state");
    std::fs::create_dir_all(state.join("images")).unwrap();
    // An ext4 image whose root is a busybox OS tree, plus a second tree in a subdirectory.
    let tree = state.join("os.tree");
    busybox_template(&tree);
    busybox_template(&tree.join("srv/inner"));
    std::fs::write(tree.join("srv/inner/etc/os-release"), "ID=inner\n").unwrap();
    let image = state.join("images/os.img");
    std::fs::File::create(&image).unwrap().set_len(32 << 20).unwrap();
    let out = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-d", tree.to_str().unwrap(), image.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let d = Daemon::start(&bus.address, &state);

    // Not attached: the error names the drive.
    let o = d.ctl(&["sandbox", "create", "early", "--template", "drive:os"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("os"), "{o:?}");

    ctl_json(&d, &["drive", "attach", "os.img", "--name", "os"]);
    let names: Vec<String> = ctl_json(&d, &["template", "list"])
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(names.contains(&"drive:os".to_owned()), "{names:?}");
    ctl_json(&d, &["sandbox", "create", "fromdrive", "--template", "drive:os"]);
    ctl_json(&d, &["sandbox", "start", "fromdrive"]);
    let o = d.ctl(&["sandbox", "exec", "fromdrive", "--", "cat", "/etc/os-release"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("ID=busybox"), "{o:?}");
    // Writes go to the sandbox's own layer; the drive is never modified.
    let o = d.ctl(&[
        "sandbox",
        "exec",
        "fromdrive",
        "--",
        "sh",
        "-c",
        "echo x > /root/written",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let files = ctl_json(&d, &["drive", "files", "os", "root"]);
    assert!(!files.to_string().contains("written"), "{files}");
    // The drive is in use while the sandbox runs.
    let o = d.ctl(&["drive", "detach", "os"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("fromdrive"), "{o:?}");

    // A tree further down, by path; paths out of the drive are refused.
    let o = d.ctl(&[
        "sandbox",
        "run",
        "--template",
        "drive:os/srv/inner",
        "--",
        "cat",
        "/etc/os-release",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "ID=inner\n",
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = d.ctl(&["sandbox", "create", "escape", "--template", "drive:os/../../.."]);
    assert_eq!(o.status.code(), Some(6), "{}", String::from_utf8_lossy(&o.stderr));

    ctl_json(&d, &["sandbox", "stop", "fromdrive"]);
    let o = d.ctl(&["sandbox", "remove", "fromdrive", "--yes"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    ctl_json(&d, &["drive", "detach", "os"]);
}
