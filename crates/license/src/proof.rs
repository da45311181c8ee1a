//! Proofs of existence: a manifest of (path, size, SHA-256) sorted by path, its Merkle root, the time, signed with
//! the appliance's ed25519 key; optionally an RFC 3161 time-stamp token over the root. `verify` recomputes
//! everything and says which files changed and whether signature, key and time stamp hold.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::tree::{Entry, SourceTree, TreeError};
use crate::util::{hex, rfc3339, unhex};

/// The format tag every manifest carries.
pub const FORMAT: &str = "cacheos-proof-v1";

/// One file in a manifest.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
pub struct ProofFile {
    /// Path relative to the proved directory.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256, hex.
    pub sha256: String,
}

/// An RFC 3161 time-stamp token over the manifest's root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TimeStamp {
    /// The service's URL.
    pub tsa: String,
    /// The DER-encoded token (a CMS SignedData carrying TSTInfo), hex.
    pub token: String,
}

/// A signed manifest: what `proof.create` returns and `proof.verify` takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProofManifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// What was proved (`drive data:/src`).
    pub source: String,
    /// When, in ms since the Unix epoch.
    pub created_ms: u64,
    /// The same time as RFC 3339 (UTC).
    pub created: String,
    /// Every regular file, sorted by path.
    pub files: Vec<ProofFile>,
    /// Entries not included (symbolic links, unreadable files) with the reason.
    #[serde(default)]
    pub skipped: Vec<String>,
    /// Merkle root over the files, hex.
    pub root: String,
    /// The signer's ed25519 public key, hex.
    pub public_key: String,
    /// Signature over [`ProofManifest::message`], hex.
    pub signature: String,
    /// The time-stamp token, when a service was configured and reachable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<TimeStamp>,
}

impl ProofManifest {
    /// The bytes that are signed: format, root, time and source, one per line.
    pub fn message(&self) -> Vec<u8> {
        format!("{FORMAT}\n{}\n{}\n{}\n", self.root, self.created_ms, self.source).into_bytes()
    }
}

fn leaf(f: &ProofFile) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update((f.path.len() as u64).to_be_bytes());
    h.update(f.path.as_bytes());
    h.update(f.size.to_be_bytes());
    h.update(unhex(&f.sha256).unwrap_or_default());
    h.finalize().into()
}

/// The Merkle root over files sorted by path: leaves `H(0 || len || path || size || sha256)`, nodes
/// `H(1 || left || right)`, an odd node moves up unchanged; the empty tree's root is `H("")`.
pub fn merkle_root(files: &[ProofFile]) -> [u8; 32] {
    if files.is_empty() {
        return Sha256::digest(b"").into();
    }
    let mut level: Vec<[u8; 32]> = files.iter().map(leaf).collect();
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|c| match c {
                [l, r] => {
                    let mut h = Sha256::new();
                    h.update([1u8]);
                    h.update(l);
                    h.update(r);
                    h.finalize().into()
                }
                [one] => *one,
                _ => unreachable!(),
            })
            .collect();
    }
    level[0]
}

/// Why a proof could not be made or checked.
#[derive(Debug, thiserror::Error)]
pub enum ProofError {
    /// The tree could not be read.
    #[error(transparent)]
    Tree(#[from] TreeError),
    /// The key file is unusable.
    #[error("signing key {path}")]
    Key {
        /// The key file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The manifest is malformed.
    #[error("malformed manifest: {0}")]
    Malformed(String),
}

/// Lists and hashes every file of a tree.
pub fn hash_tree(
    tree: &dyn SourceTree,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(u64),
) -> Result<(Vec<ProofFile>, Vec<String>), TreeError> {
    let mut paths = Vec::new();
    let mut skipped = Vec::new();
    tree.walk(cancel, &crate::tree::no_prune, &mut |e| match e {
        Entry::File { path, .. } => paths.push(path),
        Entry::Skipped { path, reason } => skipped.push(format!("{path}: {reason}")),
    })?;
    let mut files = Vec::with_capacity(paths.len());
    for (i, path) in paths.into_iter().enumerate() {
        if cancel.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(TreeError::Cancelled);
        }
        match tree.hash(&path) {
            Ok((size, h)) => files.push(ProofFile {
                path,
                size,
                sha256: hex(&h),
            }),
            Err(e) => skipped.push(format!("{path}: {}", crate::tree::error_chain(&e))),
        }
        if i % 256 == 255 {
            progress(i as u64 + 1);
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok((files, skipped))
}

/// Makes a signed manifest of `tree`.
pub fn create(
    tree: &dyn SourceTree,
    source: &str,
    key: &SigningKey,
    now_ms: u64,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(u64),
) -> Result<ProofManifest, TreeError> {
    let (files, skipped) = hash_tree(tree, cancel, progress)?;
    let mut m = ProofManifest {
        format: FORMAT.into(),
        source: source.to_owned(),
        created_ms: now_ms,
        created: rfc3339(now_ms),
        root: hex(&merkle_root(&files)),
        files,
        skipped,
        public_key: hex(key.verifying_key().as_bytes()),
        signature: String::new(),
        timestamp: None,
    };
    m.signature = hex(&key.sign(&m.message()).to_bytes());
    Ok(m)
}

/// How a file differs from its manifest entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Change {
    /// Path.
    pub path: String,
    /// `modified`, `missing` or `added`.
    pub change: String,
}

/// What `proof.verify` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Verification {
    /// The manifest's source and root.
    pub source: String,
    /// Root hash as recorded.
    pub root: String,
    /// When the manifest says it was made.
    pub created: String,
    /// The recorded file list hashes to the recorded root.
    pub root_matches: bool,
    /// The signature over root, time and source is valid for the recorded public key.
    pub signature_valid: bool,
    /// The recorded public key is this appliance's key.
    pub key_is_ours: bool,
    /// `none`, `imprint-matches` (the token's message imprint is SHA-256 of the signed message; the service's
    /// own signature is not checked), `mismatch` or `malformed`.
    pub timestamp: String,
    /// Files that differ from the manifest now (when the source could be read).
    pub changes: Vec<Change>,
    /// Whether the files were compared (false when the source is gone).
    pub files_checked: bool,
    /// Everything holds: root, signature, our key, the time stamp if any, and no changes.
    pub intact: bool,
}

/// Checks a manifest; with `tree`, also compares the files as they are now.
pub fn verify(
    m: &ProofManifest,
    our_key: &VerifyingKey,
    tree: Option<&dyn SourceTree>,
    cancel: &AtomicBool,
) -> Result<Verification, ProofError> {
    if m.format != FORMAT {
        return Err(ProofError::Malformed(format!("format {:?} is not {FORMAT}", m.format)));
    }
    let root_matches = hex(&merkle_root(&m.files)) == m.root && m.files.windows(2).all(|w| w[0].path < w[1].path);
    let signature_valid = (|| {
        let pk: [u8; 32] = unhex(&m.public_key)?.try_into().ok()?;
        let sig: [u8; 64] = unhex(&m.signature)?.try_into().ok()?;
        let vk = VerifyingKey::from_bytes(&pk).ok()?;
        Some(vk.verify(&m.message(), &Signature::from_bytes(&sig)).is_ok())
    })()
    .unwrap_or(false);
    let key_is_ours = m.public_key == hex(our_key.as_bytes());
    let timestamp = match &m.timestamp {
        None => "none".to_owned(),
        Some(ts) => match unhex(&ts.token) {
            None => "malformed".to_owned(),
            Some(der) => {
                let want: [u8; 32] = Sha256::digest(m.message()).into();
                match crate::tsa::message_imprint(&der) {
                    None => "malformed".to_owned(),
                    Some(got) if got == want => "imprint-matches".to_owned(),
                    Some(_) => "mismatch".to_owned(),
                }
            }
        },
    };
    let mut changes = Vec::new();
    let files_checked = tree.is_some();
    if let Some(t) = tree {
        let (now, _) = hash_tree(t, cancel, &mut |_| {})?;
        let (mut i, mut j) = (0, 0);
        while i < m.files.len() || j < now.len() {
            match (m.files.get(i), now.get(j)) {
                (Some(a), Some(b)) if a.path == b.path => {
                    if a.sha256 != b.sha256 || a.size != b.size {
                        changes.push(Change {
                            path: a.path.clone(),
                            change: "modified".into(),
                        });
                    }
                    i += 1;
                    j += 1;
                }
                (Some(a), Some(b)) if a.path < b.path => {
                    changes.push(Change {
                        path: a.path.clone(),
                        change: "missing".into(),
                    });
                    i += 1;
                }
                (Some(a), None) => {
                    changes.push(Change {
                        path: a.path.clone(),
                        change: "missing".into(),
                    });
                    i += 1;
                }
                (_, Some(b)) => {
                    changes.push(Change {
                        path: b.path.clone(),
                        change: "added".into(),
                    });
                    j += 1;
                }
                (None, None) => break,
            }
        }
    }
    let ts_ok = timestamp == "none" || timestamp == "imprint-matches";
    Ok(Verification {
        source: m.source.clone(),
        root: m.root.clone(),
        created: m.created.clone(),
        intact: root_matches && signature_valid && key_is_ours && ts_ok && changes.is_empty(),
        root_matches,
        signature_valid,
        key_is_ours,
        timestamp,
        changes,
        files_checked,
    })
}

/// Loads the signing key from `path` (32 bytes, mode 0600), creating it on first use.
pub fn load_or_create_key(path: &Path) -> Result<SigningKey, ProofError> {
    let err = |source| ProofError::Key {
        path: path.to_owned(),
        source,
    };
    match std::fs::read(path) {
        Ok(bytes) => {
            let mode = std::fs::metadata(path).map_err(err)?.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!("mode {mode:o} lets others read it; it must be 0600"),
                )));
            }
            let seed: [u8; 32] = bytes
                .try_into()
                .map_err(|_| err(std::io::Error::new(std::io::ErrorKind::InvalidData, "not 32 bytes")))?;
            Ok(SigningKey::from_bytes(&seed))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed).map_err(|e| err(std::io::Error::other(e.to_string())))?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(err)?;
            }
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(err)?;
            f.write_all(&seed).and_then(|()| f.sync_all()).map_err(err)?;
            Ok(SigningKey::from_bytes(&seed))
        }
        Err(e) => Err(err(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::{BeneathTree, MemoryTree};

    fn key(b: u8) -> SigningKey {
        SigningKey::from_bytes(&[b; 32])
    }

    fn made() -> (MemoryTree, ProofManifest) {
        let t = MemoryTree::new([
            ("a.txt", b"alpha".as_slice()),
            ("d/b.bin", b"\0\x01\x02".as_slice()),
            ("c", b"".as_slice()),
        ]);
        let m = create(
            &t,
            "drive data:/",
            &key(1),
            1_796_219_314_000,
            &AtomicBool::new(false),
            &mut |_| {},
        )
        .unwrap();
        (t, m)
    }

    fn check(m: &ProofManifest, t: &MemoryTree) -> Verification {
        verify(m, &key(1).verifying_key(), Some(t), &AtomicBool::new(false)).unwrap()
    }

    #[test]
    fn an_untouched_tree_verifies() {
        let (t, m) = made();
        assert_eq!(
            m.files.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(),
            ["a.txt", "c", "d/b.bin"]
        );
        let v = check(&m, &t);
        assert!(v.intact, "{v:?}");
        // The manifest survives a JSON round trip.
        let back: ProofManifest = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        assert!(check(&back, &t).intact);
    }

    #[test]
    fn one_tampered_byte_is_detected() {
        let (mut t, m) = made();
        t.files.get_mut("a.txt").unwrap()[0] ^= 1;
        let v = check(&m, &t);
        assert!(!v.intact);
        assert_eq!(
            v.changes,
            [Change {
                path: "a.txt".into(),
                change: "modified".into()
            }]
        );
        assert!(v.signature_valid && v.root_matches);
    }

    #[test]
    fn a_removed_and_an_added_file_are_detected() {
        let (mut t, m) = made();
        t.files.remove("c");
        t.files.insert("z".into(), b"new".to_vec());
        let v = check(&m, &t);
        assert_eq!(
            v.changes,
            [
                Change {
                    path: "c".into(),
                    change: "missing".into()
                },
                Change {
                    path: "z".into(),
                    change: "added".into()
                }
            ]
        );
    }

    #[test]
    fn an_edited_manifest_breaks_root_or_signature() {
        let (t, m) = made();
        let mut edited = m.clone();
        edited.files[0].sha256 = hex(&[0u8; 32]);
        let v = check(&edited, &t);
        assert!(!v.root_matches && !v.intact);
        let mut redated = m.clone();
        redated.created_ms -= 86_400_000;
        assert!(!check(&redated, &t).signature_valid);
    }

    #[test]
    fn a_wrong_key_is_detected() {
        let (t, m) = made();
        // Signed by another appliance: valid signature, but not our key.
        let other = create(
            &t,
            "drive data:/",
            &key(2),
            m.created_ms,
            &AtomicBool::new(false),
            &mut |_| {},
        )
        .unwrap();
        let v = check(&other, &t);
        assert!(v.signature_valid && !v.key_is_ours && !v.intact);
        // Our public key pasted over another key's signature: the signature fails.
        let mut forged = other.clone();
        forged.public_key = m.public_key.clone();
        let v = check(&forged, &t);
        assert!(!v.signature_valid && !v.intact);
    }

    #[test]
    fn a_forged_time_stamp_is_detected() {
        let (t, mut m) = made();
        let good: [u8; 32] = Sha256::digest(m.message()).into();
        m.timestamp = Some(TimeStamp {
            tsa: "https://tsa.example".into(),
            token: hex(&crate::tsa::tests::token_with_imprint(&good)),
        });
        assert_eq!(check(&m, &t).timestamp, "imprint-matches");
        // A token over some other data.
        m.timestamp.as_mut().unwrap().token = hex(&crate::tsa::tests::token_with_imprint(&[7u8; 32]));
        let v = check(&m, &t);
        assert_eq!(v.timestamp, "mismatch");
        assert!(!v.intact);
        m.timestamp.as_mut().unwrap().token = "3003020101".into();
        assert_eq!(check(&m, &t).timestamp, "malformed");
    }

    #[test]
    fn the_key_is_made_once_with_mode_0600() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("keys/proof.key");
        let k1 = load_or_create_key(&p).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(load_or_create_key(&p).unwrap().to_bytes(), k1.to_bytes());
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(load_or_create_key(&p).is_err());
    }

    #[test]
    fn a_real_tree_with_many_small_files_is_hashed_with_progress() {
        // Large trees: 20 000 files here (a 100 000-file run is the benchmark's `--proof-files`).
        let d = tempfile::tempdir().unwrap();
        for i in 0..200 {
            let sub = d.path().join(format!("d{i:03}"));
            std::fs::create_dir(&sub).unwrap();
            for j in 0..100 {
                std::fs::write(sub.join(format!("f{j}")), format!("{i}-{j}")).unwrap();
            }
        }
        let t = BeneathTree::open(d.path(), "").unwrap();
        let mut ticks = 0;
        let m = create(&t, "tmp", &key(1), 0, &AtomicBool::new(false), &mut |_| ticks += 1).unwrap();
        assert_eq!(m.files.len(), 20_000);
        assert!(ticks >= 70, "{ticks}");
        std::fs::write(d.path().join("d100/f5"), "changed").unwrap();
        let v = verify(&m, &key(1).verifying_key(), Some(&t), &AtomicBool::new(false)).unwrap();
        assert_eq!(v.changes.len(), 1);
    }
}
