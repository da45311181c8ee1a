//! [`QemuImgTool`]: the real [`ImageTool`]: `qemu-img` for qcow2 images, overlays and commits, `mkfs.*` for file
//! systems. Fixed argument vectors; images are named as `/proc/<pid>/fd/<n>` of descriptors the core opened, and
//! qemu block options are JSON, so no path is ever parsed as an option.

use std::path::Path;
use std::process::{Command, Stdio};

use cacheos_core::drive::{proc_fd_path, ImageFormat, ImageTool, NewFs, OpenImage, ToolError};
use serde_json::json;

/// The real [`ImageTool`].
#[derive(Debug, Clone)]
pub struct QemuImgTool {
    qemu_img: String,
}

impl Default for QemuImgTool {
    fn default() -> Self {
        Self {
            qemu_img: "qemu-img".into(),
        }
    }
}

fn run(program: &str, args: &[String], target: &Path) -> Result<(), ToolError> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| ToolError::Spawn {
            program: program.into(),
            source,
        })?;
    if out.status.success() {
        return Ok(());
    }
    let mut message = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    if message.is_empty() {
        message = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    }
    if message.is_empty() {
        message = out.status.to_string();
    }
    Err(ToolError::Failed {
        program: program.into(),
        target: target.to_owned(),
        message,
    })
}

/// The mkfs program and arguments for `fs` on `device`.
pub fn mkfs_argv(device: &Path, fs: NewFs, label: Option<&str>) -> (String, Vec<String>) {
    let dev = device.to_string_lossy().into_owned();
    let mut args: Vec<String> = Vec::new();
    let program = match fs {
        NewFs::Ext4 => {
            args.extend(["-q".into(), "-F".into()]);
            if let Some(l) = label {
                args.extend(["-L".into(), l.into()]);
            }
            "mkfs.ext4"
        }
        NewFs::Xfs => {
            args.push("-q".into());
            if let Some(l) = label {
                args.extend(["-L".into(), l.into()]);
            }
            "mkfs.xfs"
        }
        NewFs::Btrfs => {
            args.push("-q".into());
            if let Some(l) = label {
                args.extend(["-L".into(), l.into()]);
            }
            "mkfs.btrfs"
        }
        NewFs::Vfat => {
            if let Some(l) = label {
                args.extend(["-n".into(), l.to_uppercase()]);
            }
            "mkfs.vfat"
        }
    };
    // `--` ends options: the device path is never taken for one.
    args.push("--".into());
    args.push(dev);
    (program.into(), args)
}

impl ImageTool for QemuImgTool {
    fn create_qcow2(&self, image: &OpenImage, size: u64) -> Result<(), ToolError> {
        let args = vec![
            "create".into(),
            "-q".into(),
            "-f".into(),
            "qcow2".into(),
            proc_fd_path(image).to_string_lossy().into_owned(),
            size.to_string(),
        ];
        run(&self.qemu_img, &args, &image.path)
    }

    fn create_overlay(&self, overlay: &OpenImage, size: u64) -> Result<(), ToolError> {
        // No -b: the backing image is supplied explicitly whenever the overlay is opened.
        self.create_qcow2(overlay, size)
    }

    fn commit_overlay(&self, overlay: &OpenImage, base: &OpenImage, base_format: ImageFormat) -> Result<(), ToolError> {
        let spec = json!({
            "driver": "qcow2",
            "file": {"driver": "file", "filename": proc_fd_path(overlay).to_string_lossy()},
            "backing": {
                "driver": base_format.qemu_driver(),
                "file": {"driver": "file", "filename": proc_fd_path(base).to_string_lossy()},
            },
        });
        let args = vec!["commit".into(), "-q".into(), format!("json:{spec}")];
        run(&self.qemu_img, &args, &base.path)
    }

    fn mkfs(&self, device: &Path, fs: NewFs, label: Option<&str>) -> Result<(), ToolError> {
        let (program, args) = mkfs_argv(device, fs, label);
        run(&program, &args, device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mkfs_argv_ends_options_before_the_device() {
        let (p, a) = mkfs_argv(Path::new("/dev/loop3"), NewFs::Vfat, Some("usb"));
        assert_eq!(p, "mkfs.vfat");
        assert_eq!(a, ["-n", "USB", "--", "/dev/loop3"]);
        let (p, a) = mkfs_argv(Path::new("/dev/loop3"), NewFs::Ext4, Some("-rf"));
        assert_eq!(p, "mkfs.ext4");
        assert_eq!(a, ["-q", "-F", "-L", "-rf", "--", "/dev/loop3"]);
    }
}
