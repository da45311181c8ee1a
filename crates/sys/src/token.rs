//! The web token: created once with 256 random bits, stored mode 0600, read on every start.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why the token could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Reading or writing the file failed.
    #[error("cannot {action} web token file {path}")]
    Io {
        /// read, create, ...
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file holds something that is not a token.
    #[error(
        "web token file {0} does not hold a token (expected 64 hexadecimal digits); remove it to create a new one"
    )]
    Malformed(PathBuf),
    /// No randomness.
    #[error("cannot get random bytes for the web token")]
    Random(#[source] getrandom::Error),
}

fn io<'p>(action: &'static str, path: &'p Path) -> impl FnOnce(std::io::Error) -> TokenError + 'p {
    move |source| TokenError::Io {
        action,
        path: path.into(),
        source,
    }
}

/// Reads the token at `path`, creating it (mode 0600, exclusively) when it does not exist. A file readable by
/// others is tightened to 0600.
pub fn load_or_create(path: &Path) -> Result<String, TokenError> {
    match std::fs::read_to_string(path) {
        Ok(s) => {
            let t = s.trim();
            if t.len() != 64 || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(TokenError::Malformed(path.into()));
            }
            let meta = std::fs::metadata(path).map_err(io("inspect", path))?;
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(path = %path.display(), "web token file was readable by others; setting mode 0600");
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io("chmod", path))?;
            }
            Ok(t.to_string())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut raw = [0u8; 32];
            getrandom::fill(&mut raw).map_err(TokenError::Random)?;
            let token: String = raw.iter().map(|b| format!("{b:02x}")).collect();
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(io("create directory for", path))?;
            }
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(io("create", path))?;
            f.write_all(format!("{token}\n").as_bytes())
                .map_err(io("write", path))?;
            f.sync_all().map_err(io("sync", path))?;
            tracing::info!(path = %path.display(), "created web token");
            Ok(token)
        }
        Err(e) => Err(io("read", path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/web-token");
        let a = load_or_create(&p).unwrap();
        assert_eq!(a.len(), 64);
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(load_or_create(&p).unwrap(), a);
        let other = load_or_create(&dir.path().join("other")).unwrap();
        assert_ne!(a, other);
    }

    #[test]
    fn loose_mode_is_tightened_and_garbage_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t");
        let tok = "ab".repeat(32);
        std::fs::write(&p, &tok).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(load_or_create(&p).unwrap(), tok);
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        std::fs::write(&p, "hello").unwrap();
        let e = load_or_create(&p).unwrap_err();
        assert!(e.to_string().contains("does not hold a token"), "{e}");
    }
}
