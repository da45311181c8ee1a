//! End-to-end test of issue 18 through a real `cacheosd --dev` (root; CACHEOS_INTEGRATION=1; loop devices, mounts,
//! a busybox template): in German and in English, over `POST /api/v1/chat`, it scans an attached ext4 drive holding
//! MIT, Apache-2.0 and GPL files and checks the SPDX ids, makes an SBOM of a sandbox (valid SPDX 2.3 and CycloneDX
//! 1.5 JSON), makes a proof of existence of the drive, verifies it (holds), changes one byte and verifies again (names
//! the file), and drafts an invention disclosure citing the proof. The audit log must carry every utterance.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::{json, Value};

const SESSION: &str = "e2e-license";

const MIT: &str = "MIT License\n\nCopyright (c) 2024 Example\n\nPermission is hereby granted, free of charge, to any person obtaining a copy\nof this software and associated documentation files (the \"Software\"), to deal\nin the Software without restriction, including without limitation the rights\nto use, copy, modify, merge, publish, distribute, sublicense, and/or sell\ncopies of the Software, and to permit persons to whom the Software is\nfurnished to do so, subject to the following conditions:\n\nThe above copyright notice and this permission notice shall be included in all\ncopies or substantial portions of the Software.\n\nTHE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR\nIMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,\nFITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE\nAUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER\nLIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,\nOUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE\nSOFTWARE.\n";

/// A raw ext4 image at `path` with an MIT licence file, a file with an Apache-2.0 SPDX tag and a GPL-2.0+ header
/// with its SPDX tag (the scanner reads full licence texts, tags and manifests, not the GPL's prose notice alone).
fn ext4_image(path: &Path) {
    let tree = path.with_extension("tree");
    std::fs::create_dir_all(tree.join("src")).unwrap();
    std::fs::write(tree.join("LICENSE"), MIT).unwrap();
    std::fs::write(
        tree.join("src/lib.rs"),
        "// SPDX-License-Identifier: Apache-2.0\npub fn f() {}\n",
    )
    .unwrap();
    std::fs::write(
        tree.join("src/old.c"),
        "/* SPDX-License-Identifier: GPL-2.0-or-later\n * This program is free software; you can redistribute it and/or modify\n * it under the terms of the GNU General Public License as published by\n * the Free Software Foundation; either version 2 of the License, or\n * (at your option) any later version.\n */\nint main(void) { return 0; }\n",
    )
    .unwrap();
    std::fs::write(tree.join("README.txt"), "nothing here\n").unwrap();
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

/// On a failed run, removes sandboxes and force-detaches drives through the still-running daemon.
struct Cleanup {
    url: String,
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
    }
}

fn say(d: &Daemon, text: &str) -> Said {
    chat_say(d, SESSION, text)
}

/// Says `text` (and `yes` if the chat asks) and requires that `operation` ran and succeeded; returns its output.
fn ran(d: &Daemon, text: &str, yes: &str, operation: &str) -> (Said, Value) {
    let mut s = say(d, text);
    if s.executed.is_none() && s.interpretation["needs_confirmation"] == true {
        s = say(d, yes);
    }
    let ex = s
        .executed
        .clone()
        .unwrap_or_else(|| panic!("{text:?} ran nothing: {} / {}", s.interpretation, s.reply));
    assert_eq!(ex["operation"], operation, "{text:?}: {ex}");
    assert_eq!(ex["ok"], true, "{text:?} failed: {ex}\n{}", d.log());
    let out = ex["output"].clone();
    (s, out)
}

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap().to_string())
        .collect()
}

/// The phrasings of one language.
struct Script {
    attach: &'static str,
    drive: &'static str,
    create_box: &'static str,
    start_box: &'static str,
    boxname: &'static str,
    scan: &'static str,
    sbom: &'static str,
    proof: &'static str,
    verify: &'static str,
    disclosure: &'static str,
    yes: &'static str,
}

fn conversation(d: &Daemon, s: &Script) -> Vec<(&'static str, &'static str)> {
    let (said, _) = ran(d, s.attach, s.yes, "drive.attach");
    assert_eq!(
        said.interpretation["args"]["read_write"], true,
        "{}",
        said.interpretation
    );
    let drive = d.get(&format!("/api/v1/drives/{}", s.drive));
    let mp = drive["partitions"][0]["mount_point"].as_str().unwrap().to_string();

    // Scan: the SPDX ids of the three files.
    let (said, out) = ran(d, s.scan, s.yes, "license.scan");
    assert_eq!(said.interpretation["args"]["drive"], s.drive, "{}", said.interpretation);
    let of = |path: &str| -> Vec<String> {
        out["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["path"].as_str().unwrap().trim_start_matches('/').ends_with(path))
            .flat_map(|f| f["findings"].as_array().unwrap().iter())
            .map(|f| f["expression"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(of("LICENSE").contains(&"MIT".to_string()), "{out}");
    assert!(of("src/lib.rs").contains(&"Apache-2.0".to_string()), "{out}");
    assert!(of("src/old.c").iter().any(|e| e.starts_with("GPL-2.0")), "{out}");
    for id in ["MIT", "Apache-2.0"] {
        assert!(said.reply.contains(id), "the reply names {id}: {}", said.reply);
    }

    // SBOM of a sandbox from the busybox template.
    ran(d, s.create_box, s.yes, "sandbox.create");
    // The SBOM reads a running sandbox's tree.
    ran(d, s.start_box, s.yes, "sandbox.start");
    let (said, out) = ran(d, s.sbom, s.yes, "sbom.create");
    assert_eq!(
        said.interpretation["args"]["sandbox"], s.boxname,
        "{}",
        said.interpretation
    );
    assert_eq!(out["spdx"]["spdxVersion"], "SPDX-2.3", "{}", out["spdx"]);
    assert!(
        out["spdx"]["SPDXID"].as_str().is_some() && out["spdx"]["packages"].is_array(),
        "{}",
        out["spdx"]
    );
    assert_eq!(out["cyclonedx"]["bomFormat"], "CycloneDX", "{}", out["cyclonedx"]);
    assert_eq!(out["cyclonedx"]["specVersion"], "1.5", "{}", out["cyclonedx"]);
    assert!(out["cyclonedx"]["components"].is_array(), "{}", out["cyclonedx"]);

    // Proof, verification (holds), one byte changed, verification (names the file).
    let (said, proof) = ran(d, s.proof, s.yes, "proof.create");
    assert_eq!(said.interpretation["args"]["drive"], s.drive, "{}", said.interpretation);
    let root = proof["root"].as_str().unwrap().to_string();
    assert!(proof["files"].as_array().unwrap().len() >= 4, "{proof}");
    let (_, v) = ran(d, s.verify, s.yes, "proof.verify");
    assert_eq!(v["intact"], true, "{v}");
    assert_eq!(v["root"], root.as_str(), "{v}");
    assert_eq!(v["files_checked"], true, "{v}");
    let file = Path::new(&mp).join("src/lib.rs");
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[3] ^= 0x20;
    std::fs::write(&file, bytes).unwrap();
    let (said, v) = ran(d, s.verify, s.yes, "proof.verify");
    assert_eq!(v["intact"], false, "{v}");
    assert!(v["changes"].to_string().contains("src/lib.rs"), "{v}");
    assert!(
        said.reply.contains("src/lib.rs"),
        "the reply names the file: {}",
        said.reply
    );
    assert!(
        !said.reply.contains(": none") || s.yes == "yes",
        "the time-stamp verdict in German: {}",
        said.reply
    );

    // Disclosure citing the proof.
    let (_, out) = ran(d, s.disclosure, s.yes, "disclosure.draft");
    assert!(out.to_string().contains(&root), "the draft cites proof {root}: {out}");

    ran(d, &format!("detach {} force", s.drive), s.yes, "drive.detach");
    vec![
        ("license.scan", s.scan),
        ("sbom.create", s.sbom),
        ("proof.create", s.proof),
        ("proof.verify", s.verify),
        ("disclosure.draft", s.disclosure),
    ]
}

#[test]
fn scan_sbom_proof_verify_and_disclosure_from_the_chat_in_german_and_english() {
    let name = "scan_sbom_proof_verify_and_disclosure_from_the_chat_in_german_and_english";
    if !enabled(name) {
        return;
    }
    assert!(is_root(), "{name}: needs root (CACHEOS_INTEGRATION is set)");
    let bus = TestBus::session();
    let state = bus.dir.path().canonicalize().unwrap().join("state");
    busybox_template(&state.join("templates/bb"));
    std::fs::create_dir_all(state.join("images")).unwrap();
    ext4_image(&state.join("images/data.img"));
    ext4_image(&state.join("images/code.img"));
    let d = Daemon::start(&bus.address, &state);
    let _cleanup = Cleanup { url: d.url("") };

    let mut expected = conversation(
        &d,
        &Script {
            attach: "häng data.img beschreibbar ein",
            drive: "data",
            create_box: "erstelle eine Sandbox namens box aus der Vorlage bb",
            start_box: "starte box",
            boxname: "box",
            scan: "welche Lizenzen hat der Code auf data?",
            sbom: "mach eine SBOM von der Sandbox box",
            // "erstelle einen Nachweis für data" gets a question (proof.create or sandbox.create).
            proof: "erstelle einen Existenznachweis für data",
            verify: "prüfe den Nachweis",
            disclosure: "entwirf eine Erfindungsmeldung zu data",
            yes: "ja",
        },
    );
    expected.extend(conversation(
        &d,
        &Script {
            attach: "attach code.img read-write",
            drive: "code",
            create_box: "create a sandbox called lab from template bb",
            start_box: "start lab",
            boxname: "lab",
            scan: "which licenses does the code on code have?",
            // "make an SBOM of the sandbox lab" gets a question (sbom.create or `make` in lab).
            sbom: "create an SBOM of the sandbox lab",
            proof: "create a proof of existence for code",
            verify: "verify the proof",
            disclosure: "draft an invention disclosure about code",
            yes: "yes",
        },
    ));

    let audit = d.get("/api/v1/audit?frontend=chat&limit=200");
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
    for (op, utterance) in expected {
        assert!(
            seen.iter()
                .any(|(o, u, out)| o == op && u.starts_with(utterance) && out == "ok"),
            "no audit entry {op} «{utterance}» in {seen:#?}"
        );
    }
    for b in names(&d.get("/api/v1/sandboxes")) {
        let _ = ureq::delete(&d.url(&format!("/api/v1/sandboxes/{b}?confirm=true"))).call();
    }
}
