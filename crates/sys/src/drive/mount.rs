//! mount(2)/umount2(2) through rustix with explicit flags, and `/proc/self/mountinfo` parsing ([`KernelMounter`]).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use cacheos_core::drive::{Holder, MountEntry, MountError, MountRequest, Mounter, UnmountMode, Usage};
use rustix::mount::{MountFlags, UnmountFlags};

const MOUNTINFO: &str = "/proc/self/mountinfo";

/// The kernel's mount table.
#[derive(Debug, Clone, Default)]
pub struct KernelMounter;

/// The mount(2) flags of a request: `NOSUID|NODEV` always, `NOEXEC` unless exec, `RDONLY` unless read-write.
pub fn mount_flags(request: &MountRequest) -> MountFlags {
    let mut flags = MountFlags::NOSUID | MountFlags::NODEV;
    if !request.exec {
        flags |= MountFlags::NOEXEC;
    }
    if !request.read_write {
        flags |= MountFlags::RDONLY;
    }
    flags
}

/// Undoes mountinfo's octal escapes (`\040` for a space, `\011`, `\012`, `\134`).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() && bytes[i + 1..i + 4].iter().all(|b| (b'0'..=b'7').contains(b)) {
            let v = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses `/proc/*/mountinfo` text; lines that do not parse are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let left: Vec<&str> = left.split(' ').collect();
            let mut right = right.split(' ');
            let fs_type = right.next()?.to_owned();
            let source = unescape(right.next()?);
            Some(MountEntry {
                mount_id: left.first()?.parse().ok()?,
                target: PathBuf::from(unescape(left.get(4)?)),
                options: left.get(5)?.split(',').map(str::to_owned).collect(),
                fs_type,
                source,
            })
        })
        .collect()
}

impl KernelMounter {
    /// Every entry of `/proc/self/mountinfo`.
    pub fn mountinfo(&self) -> Result<Vec<MountEntry>, MountError> {
        let text = fs::read_to_string(MOUNTINFO).map_err(|source| MountError::MountInfo {
            path: MOUNTINFO.into(),
            source,
        })?;
        Ok(parse_mountinfo(&text))
    }
}

impl Mounter for KernelMounter {
    fn mount(&self, request: &MountRequest) -> Result<(), MountError> {
        let target = &request.target;
        let created = !target.exists();
        if created {
            fs::create_dir_all(target).map_err(|source| MountError::CreateTarget {
                target: target.clone(),
                source,
            })?;
        }
        let flags = mount_flags(request);
        let result = rustix::mount::mount(&request.source, target, request.fs_type.kernel_name(), flags, None);
        if let Err(e) = result {
            if created {
                let _ = fs::remove_dir(target);
            }
            return Err(MountError::Mount {
                source_path: request.source.clone(),
                target: target.clone(),
                fs_type: request.fs_type,
                source: e.into(),
            });
        }
        tracing::debug!(source = %request.source.display(), target = %target.display(),
            fs_type = %request.fs_type, flags = %request.flags().join(","), "mounted");
        Ok(())
    }

    fn unmount(&self, target: &Path, mode: UnmountMode) -> Result<(), MountError> {
        let flags = match mode {
            UnmountMode::Normal => UnmountFlags::NOFOLLOW,
            UnmountMode::Lazy => UnmountFlags::NOFOLLOW | UnmountFlags::DETACH,
        };
        match rustix::mount::unmount(target, flags) {
            Ok(()) => {}
            Err(rustix::io::Errno::BUSY) => {
                return Err(MountError::Busy {
                    target: target.to_owned(),
                })
            }
            Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOENT) => {
                return Err(MountError::NotMounted {
                    target: target.to_owned(),
                })
            }
            Err(e) => {
                return Err(MountError::Unmount {
                    target: target.to_owned(),
                    source: e.into(),
                })
            }
        }
        // The mount point is ours; a directory that is not empty (something else was put there) stays.
        match fs::remove_dir(target) {
            Ok(()) => {}
            Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::DirectoryNotEmpty) => {}
            Err(e) => tracing::warn!(target = %target.display(), error = %e, "cannot remove mount point"),
        }
        tracing::debug!(target = %target.display(), ?mode, "unmounted");
        Ok(())
    }

    fn mounts_under(&self, prefix: &Path) -> Result<Vec<MountEntry>, MountError> {
        Ok(self
            .mountinfo()?
            .into_iter()
            .filter(|m| m.target.starts_with(prefix))
            .collect())
    }

    fn holders(&self, target: &Path) -> Vec<Holder> {
        holders_below(Path::new("/proc"), target)
    }

    fn usage(&self, target: &Path) -> Option<Usage> {
        let st = rustix::fs::statvfs(target).ok()?;
        let total = st.f_blocks.saturating_mul(st.f_frsize);
        let free = st.f_bavail.saturating_mul(st.f_frsize);
        let used = st.f_blocks.saturating_sub(st.f_bfree).saturating_mul(st.f_frsize);
        Some(Usage {
            total_bytes: total,
            used_bytes: used,
            free_bytes: free,
        })
    }
}

/// Processes (from `proc`, normally `/proc`) with an open file, working directory or root at or below `target`.
/// Processes that vanish or cannot be read while scanning are skipped.
pub fn holders_below(proc: &Path, target: &Path) -> Vec<Holder> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(proc) else {
        return out;
    };
    let own = std::process::id();
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if pid == own {
            continue;
        }
        let dir = e.path();
        let mut links: Vec<PathBuf> = vec![dir.join("cwd"), dir.join("root")];
        if let Ok(fds) = fs::read_dir(dir.join("fd")) {
            links.extend(fds.flatten().map(|f| f.path()));
        }
        let held = links
            .iter()
            .filter_map(|l| fs::read_link(l).ok())
            .find(|p| p.starts_with(target));
        if let Some(path) = held {
            let command = fs::read_to_string(dir.join("comm"))
                .map(|c| c.trim().to_owned())
                .unwrap_or_default();
            out.push(Holder { pid, command, path });
        }
    }
    out.sort_by_key(|h| h.pid);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use cacheos_core::drive::FsType;

    #[test]
    fn flags_follow_the_request() {
        let mut r = MountRequest::read_only("/dev/loop0", "/mnt/x", FsType::Ext4);
        assert_eq!(
            mount_flags(&r),
            MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC | MountFlags::RDONLY
        );
        r.exec = true;
        r.read_write = true;
        assert_eq!(mount_flags(&r), MountFlags::NOSUID | MountFlags::NODEV);
    }

    #[test]
    fn parses_mountinfo() {
        let text = "22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:5 - proc proc rw\n\
                    95 29 7:3 / /run/cacheos/drives/my\\040disk/p1 ro,nosuid,nodev,noexec,relatime - ext4 /dev/loop3p1 ro\n\
                    garbage\n";
        let m = parse_mountinfo(text);
        assert_eq!(m.len(), 2);
        assert_eq!(m[1].mount_id, 95);
        assert_eq!(m[1].target, Path::new("/run/cacheos/drives/my disk/p1"));
        assert_eq!(m[1].source, "/dev/loop3p1");
        assert_eq!(m[1].fs_type, "ext4");
        for o in ["ro", "nosuid", "nodev", "noexec"] {
            assert!(m[1].has_option(o), "{o}");
        }
        assert_eq!(unescape("a\\134b\\011"), "a\\b\t");
    }

    #[test]
    fn reads_the_real_table() {
        let all = KernelMounter.mounts_under(Path::new("/")).unwrap();
        assert!(all.iter().any(|m| m.target == Path::new("/")));
    }
}
