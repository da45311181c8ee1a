//! Block exports through qemu-storage-daemon's FUSE export: the image (opened by the core) is handed to the daemon
//! as its standard input and presented as a raw file that a loop device can attach ([`QsdFuseExport`]).
//!
//! qemu-nbd (`/dev/nbdN`) is the alternative where the nbd module exists; it is not implemented yet.

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cacheos_core::drive::{
    Backing, BlockExport, ExportError, ExportHandle, ExportKind, ExportRequest, ImageFormat, OpenImage,
};
use rustix::mount::UnmountFlags;
use rustix::process::{Pid, Signal};
use serde_json::json;

use super::mount::parse_mountinfo;

const PROGRAM: &str = "qemu-storage-daemon";

/// qemu-storage-daemon with one FUSE export per image.
#[derive(Debug, Clone)]
pub struct QsdFuseExport {
    program: String,
    ready_timeout: Duration,
    stop_timeout: Duration,
}

impl Default for QsdFuseExport {
    fn default() -> Self {
        Self {
            program: PROGRAM.into(),
            ready_timeout: Duration::from_secs(30),
            stop_timeout: Duration::from_secs(10),
        }
    }
}

/// Where the daemon's stdout and stderr go: `<export_path>.log`, removed with the export.
pub fn log_path(export_path: &Path) -> PathBuf {
    let mut s = export_path.as_os_str().to_owned();
    s.push(".log");
    PathBuf::from(s)
}

/// The daemon's arguments, JSON so that no path needs escaping. The image is `/proc/self/fd/0` (the descriptor the
/// core opened). qcow2 and vmdk get `backing: null`: a backing file named inside an untrusted image is never opened.
pub fn qsd_args(format: ImageFormat, writable: bool, export_path: &Path) -> Vec<String> {
    qsd_args_with_backing(format, writable, export_path, None)
}

/// [`qsd_args`] for a CacheOS snapshot overlay (qcow2) whose backing image is given explicitly: the base is
/// opened read-only through `backing.path` (a `/proc/<pid>/fd/<n>` link to the descriptor the core checked).
pub fn qsd_args_with_backing(
    format: ImageFormat,
    writable: bool,
    export_path: &Path,
    backing: Option<&Backing>,
) -> Vec<String> {
    let ro = !writable;
    let file = json!({
        "driver": "file", "node-name": "file", "filename": "/proc/self/fd/0", "read-only": ro,
    });
    let mut disk = json!({
        "driver": format.qemu_driver(), "node-name": "disk", "file": "file", "read-only": ro,
    });
    match backing {
        Some(b) if format == ImageFormat::Qcow2 => {
            disk["backing"] = json!({
                "driver": b.format.qemu_driver(),
                "read-only": true,
                "file": {"driver": "file", "filename": b.path.to_string_lossy(), "read-only": true},
            });
        }
        _ if matches!(format, ImageFormat::Qcow2 | ImageFormat::Vmdk) => {
            disk["backing"] = serde_json::Value::Null;
        }
        _ => {}
    }
    let export = json!({
        "type": "fuse", "id": "export", "node-name": "disk", "mountpoint": export_path.to_string_lossy(),
        "writable": writable, "allow-other": "off",
    });
    vec![
        "--blockdev".into(),
        file.to_string(),
        "--blockdev".into(),
        disk.to_string(),
        "--export".into(),
        export.to_string(),
    ]
}

fn is_fuse_mounted(path: &Path) -> bool {
    fs::read_to_string("/proc/self/mountinfo")
        .map(|t| {
            parse_mountinfo(&t)
                .iter()
                .any(|m| m.target == path && m.fs_type.starts_with("fuse"))
        })
        .unwrap_or(false)
}

fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Whether `pid` is a qemu-storage-daemon exporting at `export_path` (guards against a reused pid).
fn is_our_export(pid: u32, export_path: &Path) -> bool {
    let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let program_ok = args
        .first()
        .and_then(|a| Path::new(OsStr::new(std::str::from_utf8(a).unwrap_or(""))).file_name())
        .is_some_and(|n| n == PROGRAM);
    let needle = serde_json::to_string(&export_path.to_string_lossy()).unwrap_or_default();
    program_ok && args.iter().any(|a| String::from_utf8_lossy(a).contains(&needle))
}

/// Waits for `pid` to exit: reaps it when it is our child, polls `/proc` otherwise.
pub(crate) fn wait_gone(pid: u32, timeout: Duration) -> bool {
    let end = Instant::now() + timeout;
    let Some(p) = Pid::from_raw(pid as i32) else {
        return true;
    };
    loop {
        match rustix::process::waitpid(Some(p), rustix::process::WaitOptions::NOHANG) {
            Ok(Some(_)) => return true,
            Ok(None) => {}
            // Not our child (started by an earlier cacheosd): watch /proc instead.
            Err(_) if !process_exists(pid) => return true,
            Err(_) => {}
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn remove_quietly(path: &Path) {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(path = %path.display(), error = %e, "cannot remove export file"),
    }
}

/// Releases everything a (possibly half-started) export holds: the process, a FUSE mount left behind, the files.
fn release(pid: Option<u32>, export_path: &Path, stop_timeout: Duration) -> io::Result<()> {
    let mut result = Ok(());
    if let Some(pid) = pid {
        if let Some(p) = Pid::from_raw(pid as i32) {
            let _ = rustix::process::kill_process(p, Signal::TERM);
            if !wait_gone(pid, stop_timeout) {
                let _ = rustix::process::kill_process(p, Signal::KILL);
                if !wait_gone(pid, stop_timeout) {
                    result = Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "process did not exit after SIGKILL",
                    ));
                }
            }
        }
    }
    // The daemon unmounts its export on a clean exit; after a crash or SIGKILL the mount may remain.
    if is_fuse_mounted(export_path) {
        let _ = rustix::mount::unmount(export_path, UnmountFlags::DETACH | UnmountFlags::NOFOLLOW);
    }
    remove_quietly(export_path);
    remove_quietly(&log_path(export_path));
    result
}

impl QsdFuseExport {
    /// Uses `program` instead of `qemu-storage-daemon` from `PATH`.
    pub fn with_program(program: impl Into<String>) -> Self {
        Self {
            program: program.into(),
            ..Self::default()
        }
    }

    fn wait_ready(&self, child: &mut Child, image: &OpenImage, export_path: &Path) -> Result<(), ExportError> {
        let end = Instant::now() + self.ready_timeout;
        loop {
            if is_fuse_mounted(export_path) {
                return Ok(());
            }
            match child.try_wait() {
                Ok(Some(status)) => {
                    let log = fs::read_to_string(log_path(export_path)).unwrap_or_default();
                    return Err(ExportError::Start {
                        image: image.path.clone(),
                        message: format!("{PROGRAM} exited with {status}: {}", log.trim()),
                    });
                }
                Ok(None) => {}
                Err(e) => {
                    return Err(ExportError::Start {
                        image: image.path.clone(),
                        message: e.to_string(),
                    })
                }
            }
            if Instant::now() >= end {
                return Err(ExportError::Timeout {
                    image: image.path.clone(),
                    seconds: self.ready_timeout.as_secs(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl BlockExport for QsdFuseExport {
    fn start(&self, image: &OpenImage, request: &ExportRequest) -> Result<ExportHandle, ExportError> {
        if request.format.is_raw() {
            return Err(ExportError::NotNeeded {
                image: image.path.clone(),
                format: request.format,
            });
        }
        let export_path = &request.export_path;
        let file_err = |source| ExportError::ExportFile {
            path: export_path.clone(),
            source,
        };
        // The FUSE export needs an existing regular file as its mount point; create_new refuses to reuse anything.
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(export_path)
            .map_err(file_err)?;
        let log = match File::create(log_path(export_path)) {
            Ok(log) => log,
            Err(source) => {
                remove_quietly(export_path);
                return Err(ExportError::ExportFile {
                    path: log_path(export_path),
                    source,
                });
            }
        };
        let spawned = (|| -> io::Result<Child> {
            let stdin = image.file.try_clone()?;
            let stderr = log.try_clone()?;
            Command::new(&self.program)
                .args(qsd_args_with_backing(
                    request.format,
                    request.writable,
                    export_path,
                    request.backing.as_ref(),
                ))
                .stdin(Stdio::from(stdin))
                .stdout(Stdio::from(log))
                .stderr(Stdio::from(stderr))
                .spawn()
        })();
        let mut child = match spawned {
            Ok(child) => child,
            Err(source) => {
                let _ = release(None, export_path, self.stop_timeout);
                return Err(ExportError::Spawn {
                    program: self.program.clone(),
                    image: image.path.clone(),
                    source,
                });
            }
        };
        let pid = child.id();
        if let Err(e) = self.wait_ready(&mut child, image, export_path) {
            // A child that already exited was reaped by try_wait: its pid may belong to someone else by now.
            let running = !matches!(child.try_wait(), Ok(Some(_)));
            let _ = release(running.then_some(pid), export_path, self.stop_timeout);
            return Err(e);
        }
        tracing::debug!(image = %image.path.display(), export = %export_path.display(), pid, "export started");
        // The child is reaped by stop(); dropping the handle neither kills nor waits.
        drop(child);
        Ok(ExportHandle {
            kind: ExportKind::Fuse,
            export_path: export_path.clone(),
            pid,
            writable: request.writable,
        })
    }

    fn stop(&self, handle: &ExportHandle) -> Result<(), ExportError> {
        let pid = handle.pid;
        let running = process_exists(pid);
        if running && !is_our_export(pid, &handle.export_path) {
            // A zombie child of ours has no cmdline; reap it.
            if !wait_gone(pid, Duration::ZERO) {
                return Err(ExportError::NotOurProcess {
                    pid,
                    export_path: handle.export_path.clone(),
                });
            }
        }
        release(running.then_some(pid), &handle.export_path, self.stop_timeout).map_err(|source| {
            ExportError::Stop {
                pid,
                export_path: handle.export_path.clone(),
                source,
            }
        })?;
        tracing::debug!(export = %handle.export_path.display(), pid, "export stopped");
        Ok(())
    }

    fn find(&self, export_path: &Path) -> Option<u32> {
        fs::read_dir("/proc")
            .ok()?
            .flatten()
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
            .find(|pid| is_our_export(*pid, export_path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_are_json_and_never_open_backing_files() {
        let args = qsd_args(ImageFormat::Qcow2, false, Path::new("/run/x, y/e.raw"));
        assert_eq!(args[0], "--blockdev");
        let disk: serde_json::Value = serde_json::from_str(&args[3]).unwrap();
        assert_eq!(disk["driver"], "qcow2");
        assert!(disk.get("backing").is_some_and(|b| b.is_null()));
        assert_eq!(disk["read-only"], true);
        let export: serde_json::Value = serde_json::from_str(&args[5]).unwrap();
        assert_eq!(export["mountpoint"], "/run/x, y/e.raw");
        assert_eq!(export["writable"], false);
        let vdi: serde_json::Value =
            serde_json::from_str(&qsd_args(ImageFormat::Vdi, true, Path::new("/e"))[3]).unwrap();
        assert!(vdi.get("backing").is_none());
        assert_eq!(vdi["read-only"], false);
    }

    #[test]
    fn missing_program_releases_the_export_file() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("a.qcow2");
        fs::write(&img, b"QFI\xfb").unwrap();
        let image = OpenImage::open(&img, false).unwrap();
        let export_path = dir.path().join("a.raw");
        let request = ExportRequest {
            format: ImageFormat::Qcow2,
            writable: false,
            export_path: export_path.clone(),
            backing: None,
        };
        let err = QsdFuseExport::with_program("/nonexistent/qsd")
            .start(&image, &request)
            .unwrap_err();
        assert!(matches!(err, ExportError::Spawn { .. }), "{err:?}");
        assert!(!export_path.exists());
        assert!(!log_path(&export_path).exists());
        let raw = ExportRequest {
            format: ImageFormat::Raw,
            ..request
        };
        assert!(matches!(
            QsdFuseExport::default().start(&image, &raw),
            Err(ExportError::NotNeeded { .. })
        ));
    }
}
