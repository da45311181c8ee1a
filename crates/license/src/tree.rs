//! The source trees scans, SBOMs and proofs read: a narrow trait, the real one strictly below a directory
//! descriptor (`openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`, symbolic links reported and never followed)
//! and an in-memory one for tests.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};
use sha2::{Digest, Sha256};

/// Deepest directory nesting a walk descends into; deeper directories are reported as skipped.
pub const MAX_DEPTH: usize = 256;

/// Why a tree could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    /// The root or a path below it could not be opened.
    #[error("cannot open {path}")]
    Open {
        /// The path, relative to the source root.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A path leaves the root (`..`, absolute, or through a symbolic link).
    #[error("path {0:?} leads outside the source root")]
    Outside(String),
    /// The walk was cancelled.
    #[error("cancelled")]
    Cancelled,
}

/// One thing a walk met.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A regular file, with its path relative to the root (`/`-separated) and size.
    File {
        /// Relative path.
        path: String,
        /// Size in bytes.
        size: u64,
    },
    /// Something not read: a symbolic link, a device, an unreadable directory, a too deep directory.
    Skipped {
        /// Relative path.
        path: String,
        /// Why, in a few words.
        reason: String,
    },
}

/// Which directories (relative paths) a walk leaves out.
pub type Prune<'a> = &'a dyn Fn(&str) -> bool;

/// Prunes nothing.
pub fn no_prune(_: &str) -> bool {
    false
}

/// A tree of files below one root.
pub trait SourceTree: Send + Sync {
    /// Visits every entry below the root, depth first, directory entries in byte order of their names. Returns
    /// [`TreeError::Cancelled`] as soon as `cancel` is set. Directories for which `prune` is true are not entered.
    fn walk(&self, cancel: &AtomicBool, prune: Prune<'_>, visit: &mut dyn FnMut(Entry)) -> Result<(), TreeError>;
    /// Up to `limit` bytes from the start of a regular file.
    fn read(&self, path: &str, limit: usize) -> Result<Vec<u8>, TreeError>;
    /// Size and SHA-256 of a regular file, read in full.
    fn hash(&self, path: &str) -> Result<(u64, [u8; 32]), TreeError>;
}

/// Checks a relative path: no empty, `.` or `..` components, not absolute. Returns it without a leading `./`.
pub fn clean_relative(path: &str) -> Result<String, TreeError> {
    let p = path.trim_start_matches("./").trim_end_matches('/');
    if p.is_empty() {
        return Ok(String::new());
    }
    if p.starts_with('/') || p.split('/').any(|c| c.is_empty() || c == "." || c == "..") || p.contains('\0') {
        return Err(TreeError::Outside(path.to_owned()));
    }
    Ok(p.to_owned())
}

/// The real tree: a directory descriptor; every open is `openat2` below it without following symbolic links.
pub struct BeneathTree {
    root: OwnedFd,
    label: PathBuf,
}

fn io(e: rustix::io::Errno) -> std::io::Error {
    std::io::Error::from_raw_os_error(e.raw_os_error())
}

const RESOLVE: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS);

impl BeneathTree {
    /// Opens `sub` (relative, checked) below `base`, which must be a directory the daemon chose itself (a drive's
    /// mount point, a sandbox's root). `sub` is resolved beneath `base`; a symbolic link anywhere on the way is
    /// refused.
    pub fn open(base: &Path, sub: &str) -> Result<Self, TreeError> {
        let sub = clean_relative(sub)?;
        let base_fd = rustix::fs::open(
            base,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| TreeError::Open {
            path: base.display().to_string(),
            source: io(e),
        })?;
        let root = if sub.is_empty() {
            base_fd
        } else {
            rustix::fs::openat2(
                &base_fd,
                sub.as_str(),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
                RESOLVE,
            )
            .map_err(|e| match e {
                rustix::io::Errno::XDEV | rustix::io::Errno::LOOP => TreeError::Outside(sub.clone()),
                e => TreeError::Open {
                    path: sub.clone(),
                    source: io(e),
                },
            })?
        };
        Ok(Self {
            root,
            label: base.join(sub),
        })
    }

    /// Where the tree is, for messages.
    pub fn label(&self) -> &Path {
        &self.label
    }

    fn open_at(&self, path: &str, flags: OFlags) -> Result<OwnedFd, TreeError> {
        let path = clean_relative(path)?;
        let p = if path.is_empty() { "." } else { path.as_str() };
        rustix::fs::openat2(
            &self.root,
            p,
            flags | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::empty(),
            RESOLVE,
        )
        .map_err(|e| match e {
            rustix::io::Errno::XDEV | rustix::io::Errno::LOOP => TreeError::Outside(path.clone()),
            e => TreeError::Open {
                path: path.clone(),
                source: io(e),
            },
        })
    }

    fn open_file(&self, path: &str) -> Result<std::fs::File, TreeError> {
        let fd = self.open_at(path, OFlags::RDONLY | OFlags::NONBLOCK)?;
        let st = rustix::fs::fstat(&fd).map_err(|e| TreeError::Open {
            path: path.to_owned(),
            source: io(e),
        })?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(TreeError::Open {
                path: path.to_owned(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"),
            });
        }
        Ok(std::fs::File::from(fd))
    }

    fn walk_dir(
        &self,
        rel: &str,
        depth: usize,
        cancel: &AtomicBool,
        prune: Prune<'_>,
        visit: &mut dyn FnMut(Entry),
    ) -> Result<(), TreeError> {
        let fd = match self.open_at(rel, OFlags::RDONLY | OFlags::DIRECTORY) {
            Ok(fd) => fd,
            Err(e) if !rel.is_empty() => {
                visit(Entry::Skipped {
                    path: rel.to_owned(),
                    reason: format!("unreadable directory: {}", error_chain(&e)),
                });
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let mut names = Vec::new();
        let mut dir = rustix::fs::Dir::read_from(&fd).map_err(|e| TreeError::Open {
            path: rel.to_owned(),
            source: io(e),
        })?;
        while let Some(ent) = dir.read() {
            let ent = ent.map_err(|e| TreeError::Open {
                path: rel.to_owned(),
                source: io(e),
            })?;
            let name = ent.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            match std::str::from_utf8(name) {
                Ok(n) => names.push(n.to_owned()),
                Err(_) => visit(Entry::Skipped {
                    path: format!("{rel}/{}", String::from_utf8_lossy(name)),
                    reason: "name is not UTF-8".into(),
                }),
            }
        }
        drop(dir);
        names.sort();
        for name in names {
            if cancel.load(Ordering::Relaxed) {
                return Err(TreeError::Cancelled);
            }
            let path = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            let st = match rustix::fs::statat(&fd, name.as_str(), rustix::fs::AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(e) => {
                    visit(Entry::Skipped {
                        path,
                        reason: format!("cannot stat: {}", io(e)),
                    });
                    continue;
                }
            };
            match FileType::from_raw_mode(st.st_mode) {
                FileType::RegularFile => visit(Entry::File {
                    path,
                    size: st.st_size as u64,
                }),
                FileType::Directory if depth + 1 >= MAX_DEPTH => visit(Entry::Skipped {
                    path,
                    reason: format!("deeper than {MAX_DEPTH} directories"),
                }),
                FileType::Directory if prune(&path) => {}
                FileType::Directory => self.walk_dir(&path, depth + 1, cancel, prune, visit)?,
                FileType::Symlink => visit(Entry::Skipped {
                    path,
                    reason: "symbolic link (not followed)".into(),
                }),
                other => visit(Entry::Skipped {
                    path,
                    reason: format!("not a regular file ({other:?})"),
                }),
            }
        }
        Ok(())
    }
}

/// The error with its causes, on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

impl SourceTree for BeneathTree {
    fn walk(&self, cancel: &AtomicBool, prune: Prune<'_>, visit: &mut dyn FnMut(Entry)) -> Result<(), TreeError> {
        self.walk_dir("", 0, cancel, prune, visit)
    }

    fn read(&self, path: &str, limit: usize) -> Result<Vec<u8>, TreeError> {
        let f = self.open_file(path)?;
        let mut buf = Vec::new();
        f.take(limit as u64)
            .read_to_end(&mut buf)
            .map_err(|e| TreeError::Open {
                path: path.to_owned(),
                source: e,
            })?;
        Ok(buf)
    }

    fn hash(&self, path: &str) -> Result<(u64, [u8; 32]), TreeError> {
        let mut f = self.open_file(path)?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut size = 0u64;
        loop {
            let n = f.read(&mut buf).map_err(|e| TreeError::Open {
                path: path.to_owned(),
                source: e,
            })?;
            if n == 0 {
                break;
            }
            size += n as u64;
            h.update(&buf[..n]);
        }
        Ok((size, h.finalize().into()))
    }
}

/// A tree held in memory: path → contents.
#[derive(Debug, Default, Clone)]
pub struct MemoryTree {
    /// Files by relative path.
    pub files: BTreeMap<String, Vec<u8>>,
}

impl MemoryTree {
    /// A tree of these files.
    pub fn new<'a>(files: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Self {
        Self {
            files: files.into_iter().map(|(p, c)| (p.to_owned(), c.to_vec())).collect(),
        }
    }
}

impl SourceTree for MemoryTree {
    fn walk(&self, cancel: &AtomicBool, prune: Prune<'_>, visit: &mut dyn FnMut(Entry)) -> Result<(), TreeError> {
        for (p, c) in &self.files {
            if cancel.load(Ordering::Relaxed) {
                return Err(TreeError::Cancelled);
            }
            let mut d = p.as_str();
            let mut pruned = false;
            while let Some((parent, _)) = d.rsplit_once('/') {
                pruned |= prune(parent);
                d = parent;
            }
            if pruned {
                continue;
            }
            visit(Entry::File {
                path: p.clone(),
                size: c.len() as u64,
            });
        }
        Ok(())
    }

    fn read(&self, path: &str, limit: usize) -> Result<Vec<u8>, TreeError> {
        let c = self.files.get(path).ok_or_else(|| TreeError::Open {
            path: path.to_owned(),
            source: std::io::ErrorKind::NotFound.into(),
        })?;
        Ok(c[..c.len().min(limit)].to_vec())
    }

    fn hash(&self, path: &str) -> Result<(u64, [u8; 32]), TreeError> {
        let c = self.read(path, usize::MAX)?;
        Ok((c.len() as u64, Sha256::digest(&c).into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn collect(t: &dyn SourceTree) -> Vec<Entry> {
        let mut v = Vec::new();
        t.walk(&AtomicBool::new(false), &no_prune, &mut |e| v.push(e)).unwrap();
        v
    }

    #[test]
    fn symlinks_are_reported_not_followed_and_loops_do_not_hang() {
        let d = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "x").unwrap();
        std::fs::create_dir(d.path().join("a")).unwrap();
        std::fs::write(d.path().join("a/f.txt"), "hello").unwrap();
        symlink(outside.path(), d.path().join("out")).unwrap();
        symlink("..", d.path().join("a/loop")).unwrap();
        symlink("self", d.path().join("self")).unwrap();
        let t = BeneathTree::open(d.path(), "").unwrap();
        let e = collect(&t);
        assert_eq!(
            e[0],
            Entry::File {
                path: "a/f.txt".into(),
                size: 5
            }
        );
        let skipped: Vec<_> = e
            .iter()
            .filter_map(|e| match e {
                Entry::Skipped { path, .. } => Some(path.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(skipped, ["a/loop", "out", "self"]);
        assert!(matches!(t.read("out/secret", 10), Err(TreeError::Outside(_))));
        assert!(matches!(t.read("../x", 10), Err(TreeError::Outside(_))));
        assert!(matches!(BeneathTree::open(d.path(), "out"), Err(TreeError::Outside(_))));
    }

    #[test]
    fn unreadable_files_and_directories_are_skipped_or_errors() {
        if rustix::process::geteuid().is_root() {
            // root reads everything; the permission case is covered by the sandbox-owned trees in the VM.
            let d = tempfile::tempdir().unwrap();
            let t = BeneathTree::open(d.path(), "").unwrap();
            assert!(collect(&t).is_empty());
            return;
        }
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("closed")).unwrap();
        std::fs::write(d.path().join("closed/x"), "x").unwrap();
        std::fs::write(d.path().join("noread"), "x").unwrap();
        std::fs::set_permissions(d.path().join("closed"), std::fs::Permissions::from_mode(0o000)).unwrap();
        std::fs::set_permissions(d.path().join("noread"), std::fs::Permissions::from_mode(0o000)).unwrap();
        let t = BeneathTree::open(d.path(), "").unwrap();
        let e = collect(&t);
        assert!(matches!(&e[0], Entry::Skipped { path, .. } if path == "closed"));
        assert!(t.read("noread", 10).is_err());
        std::fs::set_permissions(d.path().join("closed"), std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn relative_paths_are_checked() {
        assert_eq!(clean_relative("./src/").unwrap(), "src");
        assert_eq!(clean_relative("").unwrap(), "");
        for bad in ["/etc", "a/../b", "a//b", ".."] {
            assert!(clean_relative(bad).is_err(), "{bad}");
        }
    }
}
