//! [`BeneathPaths`]: the kernel-enforced [`SafePaths`]. Every file is opened with `openat2(2)` relative to an
//! allowed root with `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`, so neither `..` nor a symbolic link (however it
//! was swapped in) can lead out of the root; the descriptor obtained is what the core keeps using.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use cacheos_core::clock::system_time_ms;
use cacheos_core::drive::{DirEntry, EntryKind, OpenImage, PathError, SafePaths};
use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// The real [`SafePaths`].
#[derive(Debug, Clone, Copy, Default)]
pub struct BeneathPaths;

const RESOLVE: ResolveFlags = ResolveFlags::BENEATH.union(ResolveFlags::NO_MAGICLINKS);

fn map_errno(e: Errno, path: &Path, root: &Path) -> PathError {
    match e {
        Errno::XDEV | Errno::LOOP => PathError::Escapes {
            path: path.to_owned(),
            root: root.to_owned(),
        },
        Errno::NOENT | Errno::NOTDIR => PathError::Missing { path: path.to_owned() },
        Errno::EXIST => PathError::Exists { path: path.to_owned() },
        Errno::ACCESS | Errno::PERM | Errno::ROFS => PathError::PermissionDenied { path: path.to_owned() },
        Errno::ISDIR => PathError::IsDirectory { path: path.to_owned() },
        e => PathError::Io {
            path: path.to_owned(),
            source: e.into(),
        },
    }
}

/// The longest allowed root that contains `path` lexically, and `path` relative to it.
fn split<'a>(path: &'a Path, roots: &'a [PathBuf]) -> Result<(&'a Path, &'a Path), PathError> {
    if !path.is_absolute() {
        return Err(PathError::NotAllowed {
            path: path.to_owned(),
            allowed: "absolute paths only".into(),
        });
    }
    roots
        .iter()
        .filter(|r| path.starts_with(r))
        .max_by_key(|r| r.as_os_str().len())
        .map(|r| (r.as_path(), path.strip_prefix(r).unwrap_or(Path::new(""))))
        .ok_or_else(|| PathError::NotAllowed {
            path: path.to_owned(),
            allowed: roots
                .iter()
                .map(|r| r.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

fn open_root(root: &Path, path: &Path) -> Result<OwnedFd, PathError> {
    rustix::fs::open(root, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| map_errno(e, path, root))
}

fn kind_of(meta: &std::fs::Metadata) -> EntryKind {
    let t = meta.file_type();
    if t.is_symlink() {
        EntryKind::Symlink
    } else if t.is_dir() {
        EntryKind::Dir
    } else if t.is_file() {
        EntryKind::File
    } else {
        EntryKind::Other
    }
}

impl SafePaths for BeneathPaths {
    fn open_image(&self, path: &Path, roots: &[PathBuf], writable: bool) -> Result<OpenImage, PathError> {
        let (root, rel) = split(path, roots)?;
        if rel.as_os_str().is_empty() {
            return Err(PathError::IsDirectory { path: path.to_owned() });
        }
        let dir = open_root(root, path)?;
        let access = if writable { OFlags::RDWR } else { OFlags::RDONLY };
        // NONBLOCK: opening a FIFO must not hang; it has no effect on the regular files accepted below.
        let fd = rustix::fs::openat2(
            &dir,
            rel,
            access | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK,
            Mode::empty(),
            RESOLVE,
        )
        .map_err(|e| map_errno(e, path, root))?;
        let file = File::from(fd);
        let meta = file.metadata().map_err(|source| PathError::Io {
            path: path.to_owned(),
            source,
        })?;
        if meta.is_dir() {
            return Err(PathError::IsDirectory { path: path.to_owned() });
        }
        if !meta.is_file() {
            return Err(PathError::NotRegularFile { path: path.to_owned() });
        }
        Ok(OpenImage {
            path: path.to_owned(),
            file,
        })
    }

    fn create_image(&self, path: &Path, roots: &[PathBuf]) -> Result<OpenImage, PathError> {
        let (root, rel) = split(path, roots)?;
        if rel.as_os_str().is_empty() {
            return Err(PathError::Exists { path: path.to_owned() });
        }
        let dir = open_root(root, path)?;
        let fd = rustix::fs::openat2(
            &dir,
            rel,
            OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC | OFlags::NOCTTY,
            Mode::from_raw_mode(0o640),
            RESOLVE,
        )
        .map_err(|e| map_errno(e, path, root))?;
        Ok(OpenImage {
            path: path.to_owned(),
            file: File::from(fd),
        })
    }

    fn list_dir(&self, root: &Path, rel: &Path) -> Result<Vec<DirEntry>, PathError> {
        let shown = root.join(rel);
        let dir = open_root(root, &shown)?;
        let rel = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        let fd = rustix::fs::openat2(
            &dir,
            rel,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            RESOLVE,
        )
        .map_err(|e| map_errno(e, &shown, root))?;
        // The descriptor's /proc link names exactly the directory opened; entries are examined without
        // following their own symbolic links.
        let via = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
        let io_err = |source: io::Error| PathError::Io {
            path: shown.clone(),
            source,
        };
        let mut out = Vec::new();
        for e in std::fs::read_dir(&via).map_err(io_err)? {
            let e = e.map_err(io_err)?;
            let Ok(meta) = e.path().symlink_metadata() else {
                continue;
            };
            out.push(DirEntry {
                name: e.file_name().to_string_lossy().into_owned(),
                kind: kind_of(&meta),
                size: if meta.is_file() { meta.len() } else { 0 },
                modified_ms: meta.modified().map(system_time_ms).unwrap_or(0),
            });
        }
        drop(fd);
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn remove(&self, path: &Path) -> Result<(), PathError> {
        std::fs::remove_file(path).map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => PathError::Missing { path: path.to_owned() },
            _ => PathError::Io {
                path: path.to_owned(),
                source,
            },
        })
    }

    fn publish(&self, from: &Path, to: &Path, roots: &[PathBuf]) -> Result<(), PathError> {
        let (root, rel_from) = split(from, roots)?;
        let (root_to, rel_to) = split(to, roots)?;
        let plain = |p: &Path| p.components().count() == 1;
        if root != root_to || !plain(rel_from) || !plain(rel_to) {
            return Err(PathError::NotAllowed {
                path: to.to_owned(),
                allowed: format!("a plain file name directly in {}", root.display()),
            });
        }
        let dir = rustix::fs::open(
            root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| map_errno(e, to, root))?;
        rustix::fs::renameat_with(&dir, rel_from, &dir, rel_to, rustix::fs::RenameFlags::NOREPLACE)
            .map_err(|e| map_errno(e, to, root))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlinks_and_dotdot_cannot_leave_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap().join("images");
        std::fs::create_dir(&root).unwrap();
        let outside = dir.path().canonicalize().unwrap().join("secret.img");
        std::fs::write(&outside, b"secret").unwrap();
        std::fs::write(root.join("ok.img"), b"ok").unwrap();
        symlink(&outside, root.join("abs-link.img")).unwrap();
        symlink("../secret.img", root.join("rel-link.img")).unwrap();
        symlink("ok.img", root.join("inner-link.img")).unwrap();
        std::fs::create_dir(root.join("sub")).unwrap();
        let roots = vec![root.clone()];
        let p = BeneathPaths;

        assert!(p.open_image(&root.join("ok.img"), &roots, false).is_ok());
        assert!(
            p.open_image(&root.join("inner-link.img"), &roots, false).is_ok(),
            "links inside stay allowed"
        );
        for bad in ["abs-link.img", "rel-link.img"] {
            let e = p.open_image(&root.join(bad), &roots, false).unwrap_err();
            assert!(matches!(e, PathError::Escapes { .. }), "{bad}: {e}");
        }
        let e = p
            .open_image(&root.join("sub/../../secret.img"), &roots, false)
            .unwrap_err();
        assert!(matches!(e, PathError::Escapes { .. }), "{e}");
        let e = p.open_image(&outside, &roots, false).unwrap_err();
        assert!(matches!(e, PathError::NotAllowed { .. }), "{e}");
        let e = p.open_image(&root.join("sub"), &roots, false).unwrap_err();
        assert!(matches!(e, PathError::IsDirectory { .. }), "{e}");
        let e = p.open_image(&root.join("none.img"), &roots, false).unwrap_err();
        assert!(matches!(e, PathError::Missing { .. }), "{e}");
        let fifo = root.join("fifo.img");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let e = p.open_image(&fifo, &roots, false).unwrap_err();
        assert!(matches!(e, PathError::NotRegularFile { .. }), "{e}");

        // Creating never replaces and never follows a link out.
        let e = p.create_image(&root.join("ok.img"), &roots).unwrap_err();
        assert!(matches!(e, PathError::Exists { .. }), "{e}");
        let e = p.create_image(&root.join("abs-link.img"), &roots).unwrap_err();
        assert!(matches!(e, PathError::Exists { .. }), "{e}");
        assert_eq!(std::fs::read(&outside).unwrap(), b"secret");
        let made = p.create_image(&root.join("sub/new.img"), &roots).unwrap();
        assert!(made.file.metadata().unwrap().is_file());

        let list = p.list_dir(&root, Path::new("")).unwrap();
        let names: Vec<&str> = list.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "abs-link.img",
                "fifo.img",
                "inner-link.img",
                "ok.img",
                "rel-link.img",
                "sub"
            ]
        );
        assert_eq!(list[0].kind, EntryKind::Symlink);
        assert_eq!(list[3].size, 2);
        let e = p.list_dir(&root, Path::new("abs-link.img")).unwrap_err();
        assert!(matches!(e, PathError::Escapes { .. }), "{e}");
        let e = p.list_dir(&root, Path::new("..")).unwrap_err();
        assert!(matches!(e, PathError::Escapes { .. }), "{e}");
    }
}
