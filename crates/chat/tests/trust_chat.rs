//! Issue 19: `web.cert` in the chat. The committed classifier has no class for it yet (adding training data means
//! retraining), so these check that the parser's reading of an operation newer than the model stands, that the
//! certificate words do not take the token's requests, and that the reply renders in both languages.

use cacheos_chat::dataset::{appliance_known, parse_tsv};
use cacheos_chat::engine::Lang;
use cacheos_chat::eval::evaluate;
use cacheos_chat::Engine;

const REQUESTS: &str = "\
web.cert\tzeig mir das Zertifikat der Weboberfläche
web.cert\twie lautet der Fingerabdruck des TLS-Zertifikats?
web.cert\tzeige den zertifikat fingerabdruck
web.cert\tshow the TLS certificate
web.cert\twhat is the certificate fingerprint of the web ui?
web.cert\tshow me the web cert fingerprint
web.token\tzeig den Web-Token
web.token\tshow the web token
";

#[test]
fn certificate_requests_reach_web_cert_and_token_requests_stay() {
    let engine = Engine::new();
    let r = evaluate(&engine, &parse_tsv(REQUESTS), &appliance_known(), false);
    assert_eq!(r.correct, 8, "{}: {:#?}", r.summary(), r.failures);
}

#[test]
fn the_reply_names_the_fingerprint_in_both_languages() {
    let c = cacheos_core::web_cert::WebCert {
        fingerprint_sha256: "AB:CD".into(),
        path: "/var/lib/cacheos/tls/cert.pem".into(),
        redirects_plain_http: true,
    };
    let o = cacheos_core::Output::WebCert(c);
    let de = cacheos_chat::render::output(&o, Lang::De);
    let en = cacheos_chat::render::output(&o, Lang::En);
    assert!(
        de.contains("SHA-256: AB:CD") && de.contains("Browser") && de.contains("umgeleitet"),
        "{de}"
    );
    assert!(
        en.contains("SHA-256: AB:CD") && en.contains("browser") && en.contains("redirected"),
        "{en}"
    );
}
