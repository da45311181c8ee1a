//! End-to-end test of the web port's TLS (issue 19) through a real `cacheosd --dev` (CACHEOS_INTEGRATION=1; no
//! root; needs openssl and curl): the certificate is made on first start, the fingerprint `cacheosctl web cert`
//! and REST print is the one a TLS client is served (read with `openssl s_client`, independently of our code), it
//! is kept across restarts, and a corrupt key is set aside with the reason logged and replaced.

mod common;

use std::process::{Command, Stdio};

use common::*;

/// The SHA-256 fingerprint of the certificate served on `port`, as openssl prints it (`AB:CD:…`).
fn served_fingerprint(port: u16) -> String {
    let mut s_client = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-servername",
            "localhost",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl must be installed");
    let x509 = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256"])
        .stdin(s_client.stdout.take().unwrap())
        .output()
        .unwrap();
    let _ = s_client.wait();
    let out = String::from_utf8_lossy(&x509.stdout).trim().to_string();
    out.split_once('=')
        .unwrap_or_else(|| panic!("no fingerprint from openssl: {out:?}"))
        .1
        .to_string()
}

fn ctl_fingerprint(d: &Daemon) -> String {
    let o = d.ctl(&["web", "cert"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out} {}", String::from_utf8_lossy(&o.stderr));
    out.lines()
        .find_map(|l| l.strip_prefix("SHA-256 "))
        .unwrap_or_else(|| panic!("no SHA-256 line: {out}"))
        .trim()
        .to_string()
}

#[test]
fn the_certificate_is_made_once_served_shown_kept_and_a_corrupt_key_replaced() {
    if !enabled("the_certificate_is_made_once_served_shown_kept_and_a_corrupt_key_replaced") {
        return;
    }
    let bus = TestBus::session();
    let state = bus.dir.path().join("state");
    let mut d = Daemon::start(&bus.address, &state);
    let fp = ctl_fingerprint(&d);
    assert_eq!(fp.len(), 95, "{fp}");
    assert_eq!(
        served_fingerprint(d.port),
        fp,
        "the CLI shows the certificate TLS clients get"
    );
    let rest = d.get("/api/v1/web/cert");
    assert_eq!(rest["fingerprint_sha256"], fp.as_str());
    assert_eq!(rest["path"], state.join("tls/cert.pem").display().to_string());
    // The same port answers HTTPS (loopback is trusted there too) and plain HTTP on loopback.
    let o = Command::new("curl")
        .args(["-sk", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("https://127.0.0.1:{}/api/v1/system/status", d.port))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "200");
    assert!(d.get("/api/v1/system/status")["hostname"].is_string());
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(state.join("tls/key.pem")).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    assert!(d.stop().success());

    // Kept across a restart.
    let mut d = Daemon::start(&bus.address, &state);
    assert_eq!(ctl_fingerprint(&d), fp);
    assert_eq!(served_fingerprint(d.port), fp);
    assert!(d.stop().success());

    // A corrupt key: the daemon still starts, the files are set aside (not deleted) and a new pair is served.
    std::fs::write(
        state.join("tls/key.pem"),
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let mut d = Daemon::start(&bus.address, &state);
    let new = ctl_fingerprint(&d);
    assert_ne!(new, fp);
    assert_eq!(served_fingerprint(d.port), new);
    let log = d.log();
    assert!(log.contains("moved aside") && log.contains("key.pem"), "{log}");
    let aside: Vec<String> = std::fs::read_dir(state.join("tls"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".broken-"))
        .collect();
    assert_eq!(aside.len(), 2, "{aside:?}");
    assert!(d.stop().success());
}
