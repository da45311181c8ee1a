//! Walking a source below its root with the drives' path rules: the root is opened once, every file is opened
//! relative to it with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`, directories are listed through their
//! descriptor, and symbolic links are counted and skipped, never followed (so a link loop or a link leading out of
//! the drive cannot be entered). Only regular files are read.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::{Mode, OFlags, ResolveFlags};

const RESOLVE: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS);
/// Deepest directory level walked.
const MAX_DEPTH: usize = 32;
/// Most files listed per source.
const MAX_FILES: usize = 500_000;

/// A regular file found by the walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path relative to the source's root (`/`-separated).
    pub rel: String,
    /// Size in bytes.
    pub size: u64,
    /// Modification time (ns since the epoch).
    pub mtime_ns: i128,
}

/// What the walk found.
#[derive(Debug, Default)]
pub struct Listing {
    /// Regular files, sorted by path.
    pub files: Vec<Entry>,
    /// Symbolic links, devices, FIFOs, sockets and unreadable directories.
    pub skipped: u64,
}

/// A source's directory tree, held open by descriptor.
#[derive(Debug)]
pub struct Tree {
    root: OwnedFd,
    /// The subdirectory (relative to the root) the source is, when one was given.
    base: String,
}

impl Tree {
    /// Opens `root` (which must be a directory, not a link) and, when given, `sub` strictly below it.
    pub fn open(root: &Path, sub: Option<&str>) -> io::Result<Self> {
        let dir = rustix::fs::open(
            root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::empty(),
        )?;
        let base = match sub {
            Some(s) if !s.trim_matches('/').is_empty() && s != "." => {
                let s = s.trim_matches('/').to_string();
                // Refused when it leads out or through a link.
                rustix::fs::openat2(
                    &dir,
                    s.as_str(),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                    RESOLVE,
                )?;
                s
            }
            _ => String::new(),
        };
        Ok(Self { root: dir, base })
    }

    fn full(&self, rel: &str) -> String {
        match (self.base.is_empty(), rel.is_empty()) {
            (true, _) => {
                if rel.is_empty() {
                    ".".into()
                } else {
                    rel.into()
                }
            }
            (false, true) => self.base.clone(),
            (false, false) => format!("{}/{rel}", self.base),
        }
    }

    /// Lists every regular file below the source (paths relative to the source), stopping early on `cancel`.
    pub fn list(&self, cancel: &AtomicBool) -> Listing {
        let mut out = Listing::default();
        let mut stack = vec![(String::new(), 0usize)];
        while let Some((dir, depth)) = stack.pop() {
            if cancel.load(Ordering::Relaxed) || out.files.len() >= MAX_FILES {
                break;
            }
            let fd = match rustix::fs::openat2(
                &self.root,
                self.full(&dir).as_str(),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
                RESOLVE,
            ) {
                Ok(fd) => fd,
                Err(_) => {
                    out.skipped += 1;
                    continue;
                }
            };
            let via = format!("/proc/self/fd/{}", fd.as_raw_fd());
            let Ok(rd) = std::fs::read_dir(&via) else {
                out.skipped += 1;
                continue;
            };
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let rel = if dir.is_empty() {
                    name.clone()
                } else {
                    format!("{dir}/{name}")
                };
                let Ok(meta) = e.path().symlink_metadata() else {
                    out.skipped += 1;
                    continue;
                };
                let ft = meta.file_type();
                if ft.is_dir() {
                    if name.starts_with('.') || depth + 1 > MAX_DEPTH {
                        continue;
                    }
                    stack.push((rel, depth + 1));
                } else if ft.is_file() {
                    if name.starts_with('.') {
                        continue;
                    }
                    out.files.push(Entry {
                        rel,
                        size: meta.len(),
                        mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
                    });
                } else {
                    out.skipped += 1;
                }
            }
            drop(fd);
        }
        out.files.sort_by(|a, b| a.rel.cmp(&b.rel));
        out
    }

    /// Reads a listed file (at most `max` bytes): opened below the root without following links; anything but
    /// a regular file is refused.
    pub fn read(&self, rel: &str, max: u64) -> io::Result<Vec<u8>> {
        let fd = rustix::fs::openat2(
            &self.root,
            self.full(rel).as_str(),
            OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK | OFlags::NOFOLLOW,
            Mode::empty(),
            RESOLVE,
        )?;
        let file = File::from(fd);
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"));
        }
        let mut buf = Vec::with_capacity(meta.len().min(max) as usize);
        file.take(max).read_to_end(&mut buf)?;
        Ok(buf)
    }
}
