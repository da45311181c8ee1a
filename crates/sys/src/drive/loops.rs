//! Loop devices through the `loopdev-3` crate: attach an already-open image descriptor, list partitions and find
//! devices by backing file from sysfs, detach without side effects on busy devices ([`KernelLoops`]).

use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use cacheos_core::drive::{LoopControl, LoopError, LoopInfo, LoopOptions, OpenImage, Partition};
use rustix::fs::OFlags;

const LOOP_CONTROL: &str = "/dev/loop-control";
/// How often a free device is looked for when another process takes it between `LOOP_CTL_GET_FREE` and attach.
const ATTACH_ATTEMPTS: u32 = 16;

/// The kernel's loop driver under `/dev` and `/sys/block`.
#[derive(Debug, Clone)]
pub struct KernelLoops {
    sys_block: PathBuf,
}

impl Default for KernelLoops {
    fn default() -> Self {
        Self {
            sys_block: PathBuf::from("/sys/block"),
        }
    }
}

/// `loopN` from `/dev/loopN`, or `None` when the path does not name a loop device.
pub fn loop_name(device: &Path) -> Option<String> {
    let name = device.file_name()?.to_str()?;
    let digits = name.strip_prefix("loop")?;
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then(|| name.to_owned())
}

fn read_trimmed(path: &Path) -> Result<String, LoopError> {
    fs::read_to_string(path)
        .map(|s| s.trim_end_matches('\n').to_owned())
        .map_err(|source| LoopError::Sysfs {
            path: path.to_owned(),
            source,
        })
}

fn read_u64(path: &Path) -> Result<u64, LoopError> {
    let s = read_trimmed(path)?;
    s.trim().parse().map_err(|e| LoopError::Sysfs {
        path: path.to_owned(),
        source: io::Error::new(io::ErrorKind::InvalidData, format!("{s:?}: {e}")),
    })
}

impl KernelLoops {
    /// Reads what the kernel reports for `loopN` (`None` when it has no backing file).
    pub fn info(&self, name: &str) -> Result<Option<LoopInfo>, LoopError> {
        let dir = self.sys_block.join(name);
        let loop_dir = dir.join("loop");
        let backing = loop_dir.join("backing_file");
        let backing_file = match fs::read_to_string(&backing) {
            Ok(s) => PathBuf::from(s.trim_end_matches('\n')),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(LoopError::Sysfs { path: backing, source }),
        };
        let read = || -> Result<LoopInfo, LoopError> {
            Ok(LoopInfo {
                device: PathBuf::from("/dev").join(name),
                backing_file: backing_file.clone(),
                offset: read_u64(&loop_dir.join("offset"))?,
                size_limit: read_u64(&loop_dir.join("sizelimit"))?,
                read_only: read_u64(&dir.join("ro"))? == 1,
                partscan: read_u64(&loop_dir.join("partscan"))? == 1,
                autoclear: read_u64(&loop_dir.join("autoclear"))? == 1,
            })
        };
        match read() {
            Ok(info) => Ok(Some(info)),
            // Detached while we were reading: its `loop/` directory went away.
            Err(LoopError::Sysfs { source, .. }) if source.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn try_attach(&self, image: &OpenImage, options: &LoopOptions) -> Result<PathBuf, LoopError> {
        let control = ::loopdev::LoopControl::open().map_err(|source| LoopError::Control {
            path: LOOP_CONTROL.into(),
            source,
        })?;
        for _ in 0..ATTACH_ATTEMPTS {
            let device = control.next_free().map_err(|source| LoopError::Control {
                path: LOOP_CONTROL.into(),
                source,
            })?;
            let path = device.path().unwrap_or_else(|| PathBuf::from("/dev/loop?"));
            let mut with = device
                .with()
                .read_only(options.read_only)
                .part_scan(options.partscan)
                .offset(options.offset);
            if let Some(limit) = options.size_limit {
                with = with.size_limit(limit);
            }
            // LOOP_SET_FD with the image's own descriptor, then LOOP_SET_STATUS64 (the crate detaches again if that
            // fails). Read-only comes from the descriptor's access mode, checked by the caller.
            match with.attach_fd(std::os::fd::AsRawFd::as_raw_fd(&image.file)) {
                Ok(()) => return Ok(path),
                // Another process took this device between LOOP_CTL_GET_FREE and LOOP_SET_FD: try the next one.
                Err(e) if e.raw_os_error() == Some(rustix::io::Errno::BUSY.raw_os_error()) => continue,
                Err(source) => {
                    return Err(LoopError::Attach {
                        image: image.path.clone(),
                        device: path,
                        source,
                    })
                }
            }
        }
        Err(LoopError::NoFreeDevice {
            image: image.path.clone(),
            attempts: ATTACH_ATTEMPTS,
        })
    }
}

impl LoopControl for KernelLoops {
    fn attach(&self, image: &OpenImage, options: &LoopOptions) -> Result<PathBuf, LoopError> {
        let mode = rustix::fs::fcntl_getfl(&image.file).map_err(|e| LoopError::Attach {
            image: image.path.clone(),
            device: PathBuf::new(),
            source: e.into(),
        })?;
        let writable = mode.contains(OFlags::RDWR) || mode.contains(OFlags::WRONLY);
        // LOOP_SET_STATUS64 cannot make a device read-only: the kernel takes that from the descriptor alone.
        if options.read_only && writable {
            return Err(LoopError::WritableFd {
                image: image.path.clone(),
            });
        }
        if !options.read_only && !writable {
            return Err(LoopError::ReadOnlyFd {
                image: image.path.clone(),
            });
        }
        let device = self.try_attach(image, options)?;
        tracing::debug!(image = %image.path.display(), device = %device.display(), ?options, "loop device attached");
        Ok(device)
    }

    fn partitions(&self, device: &Path) -> Result<Vec<Partition>, LoopError> {
        let name = loop_name(device).ok_or_else(|| LoopError::NotLoop {
            device: device.to_owned(),
        })?;
        let dir = self.sys_block.join(&name);
        let entries = fs::read_dir(&dir).map_err(|source| LoopError::Sysfs {
            path: dir.clone(),
            source,
        })?;
        let prefix = format!("{name}p");
        let mut parts = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| LoopError::Sysfs {
                path: dir.clone(),
                source,
            })?;
            let file_name = entry.file_name();
            let Some(part) = file_name.to_str().filter(|n| n.starts_with(&prefix)) else {
                continue;
            };
            let pdir = entry.path();
            let uevent = read_trimmed(&pdir.join("uevent"))?;
            let name = uevent
                .lines()
                .find_map(|l| l.strip_prefix("PARTNAME="))
                .map(str::to_owned);
            parts.push(Partition {
                number: read_u64(&pdir.join("partition"))? as u32,
                device: PathBuf::from("/dev").join(part),
                start: read_u64(&pdir.join("start"))? * 512,
                size: read_u64(&pdir.join("size"))? * 512,
                name,
            });
        }
        parts.sort_by_key(|p| p.number);
        Ok(parts)
    }

    fn detach(&self, device: &Path) -> Result<(), LoopError> {
        let name = loop_name(device).ok_or_else(|| LoopError::NotLoop {
            device: device.to_owned(),
        })?;
        if self.info(&name)?.is_none() {
            return Err(LoopError::NotLoop {
                device: device.to_owned(),
            });
        }
        // An exclusive open fails while anything holds the device (a mount of it or of a partition). Checking first
        // keeps a refused detach free of side effects: LOOP_CLR_FD on a device open elsewhere would instead set
        // autoclear and succeed.
        match OpenOptions::new()
            .read(true)
            .custom_flags(OFlags::EXCL.bits() as i32)
            .open(device)
        {
            Ok(probe) => drop(probe),
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::BUSY.raw_os_error()) => {
                return Err(LoopError::Busy {
                    device: device.to_owned(),
                })
            }
            Err(source) => {
                return Err(LoopError::Detach {
                    device: device.to_owned(),
                    source,
                })
            }
        }
        let dev = ::loopdev::LoopDevice::open(device).map_err(|source| LoopError::Detach {
            device: device.to_owned(),
            source,
        })?;
        dev.detach().map_err(|source| LoopError::Detach {
            device: device.to_owned(),
            source,
        })?;
        drop(dev);
        // The kernel finishes the clear when our own descriptor is closed, which can take a moment to show in sysfs.
        // If the device is still attached after that, somebody opened it between the check and LOOP_CLR_FD: the
        // kernel set autoclear instead.
        let end = std::time::Instant::now() + std::time::Duration::from_millis(500);
        while self.info(&name)?.is_some() {
            if std::time::Instant::now() >= end {
                return Err(LoopError::Busy {
                    device: device.to_owned(),
                });
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        tracing::debug!(device = %device.display(), "loop device detached");
        Ok(())
    }

    fn find_by_backing_file(&self, backing_file: &Path) -> Result<Vec<LoopInfo>, LoopError> {
        let entries = fs::read_dir(&self.sys_block).map_err(|source| LoopError::Sysfs {
            path: self.sys_block.clone(),
            source,
        })?;
        let mut found = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| LoopError::Sysfs {
                path: self.sys_block.clone(),
                source,
            })?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if loop_name(Path::new(&name)).is_none() {
                continue;
            }
            // A device detached while we read is simply not listed.
            match self.info(&name) {
                Ok(Some(info)) if info.backing_file == backing_file => found.push(info),
                Ok(_) => {}
                Err(LoopError::Sysfs { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        found.sort_by_key(|i| {
            let n: u64 = loop_name(&i.device)
                .and_then(|n| n[4..].parse().ok())
                .unwrap_or(u64::MAX);
            n
        });
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loop_names() {
        assert_eq!(loop_name(Path::new("/dev/loop12")).as_deref(), Some("loop12"));
        assert_eq!(loop_name(Path::new("/dev/loop12p1")), None);
        assert_eq!(loop_name(Path::new("/dev/loop")), None);
        assert_eq!(loop_name(Path::new("/dev/sda")), None);
    }

    #[test]
    fn reads_a_fake_sysfs() {
        let dir = tempfile::tempdir().unwrap();
        let l = dir.path().join("loop7");
        fs::create_dir_all(l.join("loop")).unwrap();
        fs::create_dir_all(l.join("loop7p1")).unwrap();
        fs::create_dir_all(dir.path().join("loop8")).unwrap();
        for (f, v) in [
            ("loop/backing_file", "/srv/a.img\n"),
            ("loop/offset", "512\n"),
            ("loop/sizelimit", "0\n"),
        ] {
            fs::write(l.join(f), v).unwrap();
        }
        for (f, v) in [("loop/partscan", "1\n"), ("loop/autoclear", "0\n"), ("ro", "1\n")] {
            fs::write(l.join(f), v).unwrap();
        }
        for (f, v) in [("partition", "1\n"), ("start", "2048\n"), ("size", "4096\n")] {
            fs::write(l.join("loop7p1").join(f), v).unwrap();
        }
        fs::write(
            l.join("loop7p1/uevent"),
            "MAJOR=259\nDEVNAME=loop7p1\nPARTN=1\nPARTNAME=data\n",
        )
        .unwrap();
        let loops = KernelLoops {
            sys_block: dir.path().to_owned(),
        };
        let found = loops.find_by_backing_file(Path::new("/srv/a.img")).unwrap();
        assert_eq!(
            found,
            [LoopInfo {
                device: "/dev/loop7".into(),
                backing_file: "/srv/a.img".into(),
                offset: 512,
                size_limit: 0,
                read_only: true,
                partscan: true,
                autoclear: false
            }]
        );
        assert!(loops.find_by_backing_file(Path::new("/srv/b.img")).unwrap().is_empty());
        let parts = loops.partitions(Path::new("/dev/loop7")).unwrap();
        assert_eq!(
            parts,
            [Partition {
                number: 1,
                device: "/dev/loop7p1".into(),
                start: 2048 * 512,
                size: 4096 * 512,
                name: Some("data".into())
            }]
        );
        assert!(matches!(
            loops.partitions(Path::new("/dev/sda")),
            Err(LoopError::NotLoop { .. })
        ));
    }
}
