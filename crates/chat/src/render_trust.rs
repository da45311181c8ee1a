//! Chat replies for the issue 19 operations (`web.cert`), German and English.

use cacheos_core::web_cert::WebCert;

use crate::engine::Lang;

fn t(lang: Lang, de: &str, en: &str) -> String {
    match lang {
        Lang::De => de.to_string(),
        Lang::En => en.to_string(),
    }
}

/// What `web.cert` will do.
pub fn explain_cert(lang: Lang) -> String {
    t(
        lang,
        "Ich zeige den Fingerabdruck des TLS-Zertifikats der Weboberfläche.",
        "Showing the fingerprint of the web port's TLS certificate.",
    )
}

/// The certificate as a reply.
pub fn cert(c: &WebCert, lang: Lang) -> String {
    let redirect = if c.redirects_plain_http {
        t(
            lang,
            "HTTP von anderen Rechnern wird auf HTTPS umgeleitet.",
            "Plain HTTP from other machines is redirected to HTTPS.",
        )
    } else {
        String::new()
    };
    format!(
        "{}\n  SHA-256: {}\n  {}: {}\n{}",
        t(
            lang,
            "Vergleiche diesen Fingerabdruck mit dem, den dein Browser zeigt:",
            "Compare this fingerprint with the one your browser shows:",
        ),
        c.fingerprint_sha256,
        t(lang, "Datei", "File"),
        c.path,
        redirect
    )
}
