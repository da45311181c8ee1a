//! The web port's TLS identity: a self-signed certificate made on first start (rcgen, ECDSA P-256) and kept in the
//! state directory (the data partition in the appliance): `tls/cert.pem` (0644) and `tls/key.pem` (0600). An
//! administrator may replace both files with a certificate of their own; they are read as they are. Files that
//! cannot be used (no PEM, one of the two missing, a key that does not fit) are moved aside to `*.broken-<time>`
//! and a new certificate is made, with the reason logged: the web port never stays down over a bad file, and
//! nothing is deleted.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

/// Why the certificate could not be loaded or made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Reading or writing a file failed.
    #[error("cannot {action} {path}")]
    Io {
        /// read, create, ...
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file holds no PEM certificate or key.
    #[error("{path} holds no PEM {what}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// certificate or private key.
        what: &'static str,
    },
    /// Only one of the two files exists.
    #[error("{present} exists but {missing} does not")]
    Incomplete {
        /// The file that exists.
        present: PathBuf,
        /// The file that is missing.
        missing: PathBuf,
    },
    /// rcgen refused.
    #[error("cannot make a self-signed certificate")]
    Generate(#[source] rcgen::Error),
}

/// The certificate and key the web port serves.
#[derive(Debug)]
pub struct TlsIdentity {
    /// The certificate chain, leaf first (DER).
    pub chain: Vec<Vec<u8>>,
    /// The private key (PKCS#8, SEC1 or PKCS#1, as the PEM file holds it).
    key: PrivateKeyDer<'static>,
    /// `tls/cert.pem`.
    pub cert_path: PathBuf,
    /// SHA-256 of the leaf certificate, `AB:CD:…`.
    pub fingerprint: String,
    /// Whether it was made just now.
    pub created: bool,
    /// Why the files found were unusable and moved aside (then `created` is true).
    pub replaced: Option<String>,
}

impl TlsIdentity {
    /// The private key in the form rustls takes.
    pub fn private_key(&self) -> PrivateKeyDer<'static> {
        self.key.clone_key()
    }
    /// The certificate chain in the form rustls takes.
    pub fn certificates(&self) -> Vec<CertificateDer<'static>> {
        self.chain.iter().map(|c| CertificateDer::from(c.clone())).collect()
    }
}

/// SHA-256 of `der` as upper-case hexadecimal pairs separated by colons.
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn io<'p>(action: &'static str, path: &'p Path) -> impl FnOnce(std::io::Error) -> TlsError + 'p {
    move |source| TlsError::Io {
        action,
        path: path.into(),
        source,
    }
}

/// Reads `dir/cert.pem` and `dir/key.pem`, making a new self-signed certificate for `names` (DNS names or IP
/// addresses) when neither exists. A key file readable by others is tightened to 0600. Unusable files
/// ([`TlsError::Malformed`], [`TlsError::Incomplete`]) are set aside and replaced (see [`replace`]); only I/O
/// errors (an unwritable directory, say) are returned.
pub fn load_or_create(dir: &Path, names: &[String]) -> Result<TlsIdentity, TlsError> {
    match load_or_create_strict(dir, names) {
        Err(e @ (TlsError::Malformed { .. } | TlsError::Incomplete { .. })) => replace(dir, names, &e.to_string()),
        r => r,
    }
}

/// Moves whatever of `dir/cert.pem` and `dir/key.pem` exists aside to `<file>.broken-<unix seconds>`, logging
/// `reason`, and makes a new self-signed certificate for `names`. For files that read but do not work (a key that
/// does not fit the certificate), which only the TLS library finds.
pub fn replace(dir: &Path, names: &[String], reason: &str) -> Result<TlsIdentity, TlsError> {
    use cacheos_core::Clock;
    let stamp = cacheos_core::SystemClock.now_ms() / 1000;
    for name in ["cert.pem", "key.pem"] {
        let path = dir.join(name);
        if path.exists() {
            let aside = dir.join(format!("{name}.broken-{stamp}"));
            std::fs::rename(&path, &aside).map_err(io("move aside", &path))?;
            tracing::warn!(path = %path.display(), moved_to = %aside.display(), %reason,
                "TLS certificate files unusable; moved aside, making a new self-signed certificate");
        }
    }
    let mut id = load_or_create_strict(dir, names)?;
    id.replaced = Some(reason.to_string());
    Ok(id)
}

/// [`load_or_create`] without replacing unusable files.
pub fn load_or_create_strict(dir: &Path, names: &[String]) -> Result<TlsIdentity, TlsError> {
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    let created = match (cert_path.exists(), key_path.exists()) {
        (true, true) => false,
        (false, false) => {
            create(dir, &cert_path, &key_path, names)?;
            true
        }
        (true, false) => {
            return Err(TlsError::Incomplete {
                present: cert_path,
                missing: key_path,
            })
        }
        (false, true) => {
            return Err(TlsError::Incomplete {
                present: key_path,
                missing: cert_path,
            })
        }
    };
    let cert_pem = std::fs::read(&cert_path).map_err(io("read", &cert_path))?;
    let chain: Vec<Vec<u8>> = CertificateDer::pem_slice_iter(&cert_pem)
        .filter_map(Result::ok)
        .map(|c| c.to_vec())
        .collect();
    if chain.is_empty() {
        return Err(TlsError::Malformed {
            path: cert_path,
            what: "certificate",
        });
    }
    let meta = std::fs::metadata(&key_path).map_err(io("inspect", &key_path))?;
    if meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(path = %key_path.display(), "TLS key was readable by others; setting mode 0600");
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).map_err(io("chmod", &key_path))?;
    }
    let key_pem = std::fs::read(&key_path).map_err(io("read", &key_path))?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| TlsError::Malformed {
        path: key_path.clone(),
        what: "private key",
    })?;
    Ok(TlsIdentity {
        fingerprint: fingerprint(&chain[0]),
        chain,
        key,
        cert_path,
        created,
        replaced: None,
    })
}

fn write_new(path: &Path, mode: u32, bytes: &[u8]) -> Result<(), TlsError> {
    let tmp = path.with_extension("pem.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io("create", &tmp))?;
    f.write_all(bytes).map_err(io("write", &tmp))?;
    f.sync_all().map_err(io("sync", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io("rename into place", path))
}

fn create(dir: &Path, cert_path: &Path, key_path: &Path, names: &[String]) -> Result<(), TlsError> {
    std::fs::create_dir_all(dir).map_err(io("create directory", dir))?;
    let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(TlsError::Generate)?;
    let host = names.first().cloned().unwrap_or_else(|| "cacheos".into());
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("CacheOS {host}"));
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "CacheOS appliance (self-signed)");
    use cacheos_core::Clock;
    let year = 1970 + (cacheos_core::SystemClock.now_ms() / 1000 / 31_556_952) as i32;
    params.not_before = rcgen::date_time_ymd(year - 1, 1, 1);
    params.not_after = rcgen::date_time_ymd(year + 10, 1, 1);
    let key = rcgen::KeyPair::generate().map_err(TlsError::Generate)?;
    let cert = params.self_signed(&key).map_err(TlsError::Generate)?;
    // The key first: a certificate without its key is reported, never silently replaced.
    write_new(key_path, 0o600, key.serialize_pem().as_bytes())?;
    write_new(cert_path, 0o644, cert.pem().as_bytes())?;
    tracing::info!(path = %cert_path.display(), fingerprint = %fingerprint(cert.der()), "made a self-signed TLS certificate");
    Ok(())
}

/// The names a new certificate is made for: the host name, `localhost` and the loopback addresses.
pub fn default_names() -> Vec<String> {
    let host = rustix::system::uname().nodename().to_string_lossy().into_owned();
    let mut names = vec![host, "localhost".into(), "127.0.0.1".into(), "::1".into()];
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_once_kept_and_read_back_with_the_same_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let tls = dir.path().join("tls");
        let a = load_or_create(&tls, &["cacheos".into(), "127.0.0.1".into()]).unwrap();
        assert!(a.created);
        assert_eq!(a.fingerprint.len(), 32 * 3 - 1);
        assert!(a.fingerprint.bytes().all(|b| b == b':' || b.is_ascii_hexdigit()));
        assert_eq!(a.fingerprint, fingerprint(&a.chain[0]));
        let mode = std::fs::metadata(tls.join("key.pem")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = load_or_create(&tls, &["other".into()]).unwrap();
        assert!(!b.created);
        assert_eq!(a.fingerprint, b.fingerprint, "the kept certificate is reused");
        assert_eq!(a.private_key().secret_der(), b.private_key().secret_der());
        // The key converts to what rustls takes.
        assert!(matches!(b.private_key(), PrivateKeyDer::Pkcs8(_)));
    }

    #[test]
    fn a_lone_certificate_or_garbage_is_reported_by_the_strict_loader() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cert.pem"), "x").unwrap();
        let e = load_or_create_strict(dir.path(), &[]).unwrap_err();
        assert!(matches!(e, TlsError::Incomplete { .. }), "{e}");
        assert!(
            e.to_string().contains("key.pem") && e.to_string().contains("does not"),
            "{e}"
        );
        assert_eq!(std::fs::read(dir.path().join("cert.pem")).unwrap(), b"x");
        std::fs::write(dir.path().join("key.pem"), "y").unwrap();
        let e = load_or_create_strict(dir.path(), &[]).unwrap_err();
        assert!(e.to_string().contains("cert.pem holds no PEM certificate"), "{e}");
    }

    fn asides(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".broken-"))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_corrupt_key_is_moved_aside_with_the_reason_and_a_new_certificate_made() {
        let dir = tempfile::tempdir().unwrap();
        let old = load_or_create(dir.path(), &["cacheos".into()]).unwrap();
        std::fs::write(dir.path().join("key.pem"), "-----BEGIN PRIVATE KEY-----\ngarbage\n").unwrap();
        let new = load_or_create(dir.path(), &["cacheos".into()]).unwrap();
        assert!(new.created);
        let why = new.replaced.as_deref().unwrap();
        assert!(why.contains("key.pem holds no PEM private key"), "{why}");
        assert_ne!(new.fingerprint, old.fingerprint);
        let moved = asides(dir.path());
        assert_eq!(moved.len(), 2, "{moved:?}");
        assert!(moved[0].starts_with("cert.pem.broken-") && moved[1].starts_with("key.pem.broken-"));
        let kept = std::fs::read_to_string(dir.path().join(&moved[1])).unwrap();
        assert!(kept.contains("garbage"), "the broken key is kept, not deleted");
        // The new pair is kept from then on.
        let again = load_or_create(dir.path(), &[]).unwrap();
        assert!(!again.created && again.replaced.is_none());
        assert_eq!(again.fingerprint, new.fingerprint);
    }

    #[test]
    fn a_lone_key_is_moved_aside_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("key.pem"), "k").unwrap();
        let id = load_or_create(dir.path(), &[]).unwrap();
        assert!(
            id.replaced.as_deref().unwrap().contains("cert.pem does not"),
            "{:?}",
            id.replaced
        );
        assert_eq!(asides(dir.path()).len(), 1);
        assert!(dir.path().join("cert.pem").exists() && dir.path().join("key.pem").exists());
    }

    #[test]
    fn an_unwritable_directory_is_an_error_naming_it() {
        let e = load_or_create(Path::new("/proc/cacheos-tls-test"), &[]).unwrap_err();
        assert!(e.to_string().contains("/proc/cacheos-tls-test"), "{e}");
    }
}
