//! The web port's TLS setup (issue 19): load or make the certificate in `<state_dir>/tls/`, tell the core (for
//! `web.cert`), write the fingerprint for the console login banner, and build the rustls configuration.

use std::sync::Arc;

use anyhow::Context;
use cacheos_core::web_cert::WebCert;
use cacheos_core::Core;

use crate::config::Config;

/// The rustls configuration for the web port.
pub fn setup(cfg: &Config, core: &Core, dev: bool) -> anyhow::Result<Arc<cacheos_web::tls::ServerConfig>> {
    let dir = cfg.state_dir.join("tls");
    let names = cacheos_sys::tls::default_names();
    let mut id = cacheos_sys::tls::load_or_create(&dir, &names).context("web port TLS certificate")?;
    let server = match cacheos_web::tls::server_config(id.certificates(), id.private_key()) {
        Ok(s) => s,
        // Files that parse but do not work together (a key of another certificate): set aside, made anew.
        Err(e) => {
            let reason = format!("{} and key.pem cannot be served: {e}", id.cert_path.display());
            id = cacheos_sys::tls::replace(&dir, &names, &reason).context("web port TLS certificate")?;
            cacheos_web::tls::server_config(id.certificates(), id.private_key())
                .with_context(|| format!("new TLS certificate {} cannot be served", id.cert_path.display()))?
        }
    };
    tracing::info!(path = %id.cert_path.display(), fingerprint = %id.fingerprint, created = id.created,
        replaced = id.replaced.as_deref().unwrap_or(""), "web port TLS certificate");
    core.set_web_cert(WebCert {
        fingerprint_sha256: id.fingerprint.clone(),
        path: id.cert_path.display().to_string(),
        redirects_plain_http: true,
    });
    if !dev {
        if let Err(e) = write_banner(&cfg.web.tls_banner_file, &id.fingerprint, cfg.web.listen.port()) {
            tracing::warn!(error = %format!("{e:#}"), "cannot write the TLS fingerprint for the login banner");
        }
    }
    Ok(server)
}

/// The login banner's lines (an `/etc/issue.d` file): where HTTPS is and the fingerprint to compare.
pub fn banner_text(fingerprint: &str, port: u16) -> String {
    format!("  HTTPS: https://\\4:{port}/  certificate SHA-256 (compare with your browser's):\n  {fingerprint}\n\n")
}

fn write_banner(path: &std::path::Path, fingerprint: &str, port: u16) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, banner_text(fingerprint, port)).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot rename {} into place", tmp.display()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn banner_names_the_port_and_fingerprint_and_never_looks_like_a_prompt() {
        let b = super::banner_text("AB:CD", 8080);
        assert!(b.contains("https://\\4:8080/") && b.contains("AB:CD"), "{b}");
        assert!(!b.contains("$ ") && !b.contains("# "));
    }
}
