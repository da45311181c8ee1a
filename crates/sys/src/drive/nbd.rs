//! Block exports through qemu-nbd on a kernel nbd device ([`NbdExport`]), and [`AutoExport`], which uses nbd where
//! the kernel has it (the appliance) and qemu-storage-daemon's FUSE export otherwise (hosts without nbd).
//!
//! qemu-nbd runs in the foreground as cacheosd's child with the image descriptor the core opened as its standard
//! input (its own daemon mode would replace standard input by /dev/null before opening the image). The device is
//! named by a symbolic link at the export path, so a crash between start and record is found again by path.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cacheos_core::drive::{BlockExport, ExportError, ExportHandle, ExportKind, ExportRequest, ImageFormat, OpenImage};
use rustix::process::{Pid, Signal};
use serde_json::json;

use super::export::{wait_gone, QsdFuseExport};

const PROGRAM: &str = "qemu-nbd";

/// qemu-nbd on `/dev/nbdN`.
#[derive(Debug, Clone)]
pub struct NbdExport {
    program: String,
    sys_block: PathBuf,
    ready_timeout: Duration,
    stop_timeout: Duration,
}

impl Default for NbdExport {
    fn default() -> Self {
        Self {
            program: PROGRAM.into(),
            sys_block: "/sys/block".into(),
            ready_timeout: Duration::from_secs(30),
            stop_timeout: Duration::from_secs(10),
        }
    }
}

/// qemu-nbd's arguments: the image is `/proc/self/fd/0`, described as JSON so that no backing file named in the
/// image is opened (or, for a snapshot overlay, exactly the given one).
pub fn nbd_args(request: &ExportRequest, device: &Path) -> Vec<String> {
    let ro = !request.writable;
    let mut spec = json!({
        "driver": request.format.qemu_driver(),
        "read-only": ro,
        "file": {"driver": "file", "filename": "/proc/self/fd/0", "read-only": ro},
    });
    match (&request.backing, request.format) {
        (Some(b), ImageFormat::Qcow2) => {
            spec["backing"] = json!({
                "driver": b.format.qemu_driver(),
                "read-only": true,
                "file": {"driver": "file", "filename": b.path.to_string_lossy(), "read-only": true},
            });
        }
        (_, ImageFormat::Qcow2 | ImageFormat::Vmdk) => spec["backing"] = serde_json::Value::Null,
        _ => {}
    }
    let mut args = vec![
        format!("--connect={}", device.display()),
        // Without --verbose, qemu-nbd --connect daemonises and replaces standard input (the image) by /dev/null.
        "--verbose".into(),
        "--persistent".into(),
        "--aio=threads".into(),
    ];
    if ro {
        args.push("--read-only".into());
    }
    args.push(format!("json:{spec}"));
    args
}

impl NbdExport {
    fn pid_of(&self, dev_name: &str) -> Option<u32> {
        fs::read_to_string(self.sys_block.join(dev_name).join("pid"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
    }

    fn free_device(&self) -> Option<String> {
        (0..64)
            .map(|i| format!("nbd{i}"))
            .find(|n| self.sys_block.join(n).exists() && self.pid_of(n).is_none())
    }

    fn dev_name(export_path: &Path) -> Option<String> {
        let target = fs::read_link(export_path).ok()?;
        let name = target.file_name()?.to_str()?.to_owned();
        name.starts_with("nbd").then_some(name)
    }

    fn disconnect(&self, dev: &str, pid: Option<u32>) -> io::Result<()> {
        let _ = Command::new(&self.program)
            .arg(format!("--disconnect=/dev/{dev}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if let Some(pid) = pid {
            // qemu-nbd exits once disconnected; SIGTERM, then SIGKILL, if it does not.
            if !wait_gone(pid, self.stop_timeout) {
                if let Some(p) = Pid::from_raw(pid as i32) {
                    let _ = rustix::process::kill_process(p, Signal::TERM);
                    if !wait_gone(pid, self.stop_timeout) {
                        let _ = rustix::process::kill_process(p, Signal::KILL);
                        if !wait_gone(pid, self.stop_timeout) {
                            return Err(io::Error::new(io::ErrorKind::TimedOut, "qemu-nbd did not exit"));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

impl BlockExport for NbdExport {
    fn start(&self, image: &OpenImage, request: &ExportRequest) -> Result<ExportHandle, ExportError> {
        if request.format.is_raw() {
            return Err(ExportError::NotNeeded {
                image: image.path.clone(),
                format: request.format,
            });
        }
        let dev = self.free_device().ok_or_else(|| ExportError::Start {
            image: image.path.clone(),
            message: "no free nbd device".into(),
        })?;
        let device = PathBuf::from(format!("/dev/{dev}"));
        std::os::unix::fs::symlink(&device, &request.export_path).map_err(|source| ExportError::ExportFile {
            path: request.export_path.clone(),
            source,
        })?;
        let log = super::export::log_path(&request.export_path);
        let spawned = (|| -> io::Result<std::process::Child> {
            let log = fs::File::create(&log)?;
            Command::new(&self.program)
                .args(nbd_args(request, &device))
                .stdin(Stdio::from(image.file.try_clone()?))
                .stdout(Stdio::from(log.try_clone()?))
                .stderr(Stdio::from(log))
                .spawn()
        })();
        let cleanup = || {
            let _ = fs::remove_file(&request.export_path);
            let _ = fs::remove_file(&log);
        };
        let mut child = match spawned {
            Ok(c) => c,
            Err(source) => {
                cleanup();
                return Err(ExportError::Spawn {
                    program: self.program.clone(),
                    image: image.path.clone(),
                    source,
                });
            }
        };
        let pid = child.id();
        let end = Instant::now() + self.ready_timeout;
        loop {
            let size: u64 = fs::read_to_string(self.sys_block.join(&dev).join("size"))
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0);
            if self.pid_of(&dev).is_some() && size > 0 {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                let message = fs::read_to_string(&log).unwrap_or_default();
                cleanup();
                return Err(ExportError::Start {
                    image: image.path.clone(),
                    message: format!("{PROGRAM} exited with {status}: {}", message.trim()),
                });
            }
            if Instant::now() > end {
                let _ = self.disconnect(&dev, Some(pid));
                let _ = child.kill();
                let _ = child.wait();
                cleanup();
                return Err(ExportError::Timeout {
                    image: image.path.clone(),
                    seconds: self.ready_timeout.as_secs(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        tracing::debug!(image = %image.path.display(), device = %device.display(), pid, "nbd export started");
        drop(child);
        Ok(ExportHandle {
            kind: ExportKind::Nbd,
            export_path: request.export_path.clone(),
            pid,
            writable: request.writable,
        })
    }

    fn stop(&self, handle: &ExportHandle) -> Result<(), ExportError> {
        let stop_err = |source| ExportError::Stop {
            pid: handle.pid,
            export_path: handle.export_path.clone(),
            source,
        };
        if let Some(dev) = Self::dev_name(&handle.export_path) {
            let pid = self.pid_of(&dev).or(Some(handle.pid));
            self.disconnect(&dev, pid).map_err(stop_err)?;
        }
        let _ = fs::remove_file(&handle.export_path);
        let _ = fs::remove_file(super::export::log_path(&handle.export_path));
        Ok(())
    }

    fn find(&self, export_path: &Path) -> Option<u32> {
        self.pid_of(&Self::dev_name(export_path)?)
    }
}

/// nbd where the kernel has it, FUSE otherwise; stops and finds exports of either kind by their export path.
#[derive(Debug, Clone, Default)]
pub struct AutoExport {
    nbd: NbdExport,
    fuse: QsdFuseExport,
}

impl AutoExport {
    /// Whether new exports use nbd.
    pub fn uses_nbd(&self) -> bool {
        self.nbd.sys_block.join("nbd0").exists()
    }
}

fn is_link(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

impl BlockExport for AutoExport {
    fn start(&self, image: &OpenImage, request: &ExportRequest) -> Result<ExportHandle, ExportError> {
        if self.uses_nbd() {
            self.nbd.start(image, request)
        } else {
            self.fuse.start(image, request)
        }
    }

    fn stop(&self, handle: &ExportHandle) -> Result<(), ExportError> {
        match handle.kind {
            ExportKind::Nbd => self.nbd.stop(handle),
            ExportKind::Fuse => self.fuse.stop(handle),
        }
    }

    fn find(&self, export_path: &Path) -> Option<u32> {
        if is_link(export_path) {
            self.nbd.find(export_path)
        } else {
            self.fuse.find(export_path)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cacheos_core::drive::Backing;

    #[test]
    fn args_describe_the_image_as_json_and_refuse_embedded_backing_files() {
        let req = ExportRequest {
            format: ImageFormat::Qcow2,
            writable: false,
            export_path: "/run/cacheos/exports/x.raw".into(),
            backing: None,
        };
        let a = nbd_args(&req, Path::new("/dev/nbd3"));
        assert_eq!(a[0], "--connect=/dev/nbd3");
        assert!(a.contains(&"--read-only".to_string()));
        let spec: serde_json::Value = serde_json::from_str(a.last().unwrap().strip_prefix("json:").unwrap()).unwrap();
        assert_eq!(spec["driver"], "qcow2");
        assert!(spec["backing"].is_null() && spec.get("backing").is_some());
        assert_eq!(spec["file"]["filename"], "/proc/self/fd/0");

        let overlay = ExportRequest {
            writable: true,
            backing: Some(Backing {
                path: "/proc/1/fd/7".into(),
                format: ImageFormat::Vdi,
            }),
            ..req
        };
        let a = nbd_args(&overlay, Path::new("/dev/nbd0"));
        assert!(!a.contains(&"--read-only".to_string()));
        let spec: serde_json::Value = serde_json::from_str(a.last().unwrap().strip_prefix("json:").unwrap()).unwrap();
        assert_eq!(spec["backing"]["driver"], "vdi");
        assert_eq!(spec["backing"]["file"]["filename"], "/proc/1/fd/7");
    }

    #[test]
    fn a_host_without_nbd_falls_back_to_fuse() {
        let dir = tempfile::tempdir().unwrap();
        let auto = AutoExport {
            nbd: NbdExport {
                sys_block: dir.path().to_owned(),
                ..NbdExport::default()
            },
            fuse: QsdFuseExport::default(),
        };
        assert!(!auto.uses_nbd());
        fs::create_dir(dir.path().join("nbd0")).unwrap();
        assert!(auto.uses_nbd());
        assert_eq!(auto.nbd.free_device().as_deref(), Some("nbd0"));
        fs::write(dir.path().join("nbd0/pid"), "42\n").unwrap();
        assert_eq!(auto.nbd.free_device(), None);
    }
}
