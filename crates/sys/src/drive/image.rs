//! Image format detection by magic bytes and virtual size from the format's header ([`MagicInspector`]).

use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::{Command, Stdio};

use cacheos_core::drive::{ImageError, ImageFormat, ImageInfo, ImageInspector, OpenImage};

/// How many bytes from the start of the image detection reads (covers the ISO 9660 volume descriptor at 0x8001).
pub const HEAD_LEN: usize = 0x9000;
/// The size of a VHD footer.
pub const FOOTER_LEN: usize = 512;

/// Detects the format from magic bytes (qcow2, vmdk, vdi, vhdx, vpc, ISO 9660, else raw) and reads the virtual size
/// from the header. Only VHDX sizes (a metadata region lookup) come from `qemu-img info`, run with the image's
/// descriptor as its standard input so the same file is read.
#[derive(Debug, Clone, Default)]
pub struct MagicInspector;

/// What the header alone says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detected {
    pub format: ImageFormat,
    /// `None` when the header does not carry it (VHDX).
    pub virtual_size: Option<u64>,
}

fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn be_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}
fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn le_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Classifies an image from its first bytes (`head`, up to [`HEAD_LEN`]), its last 512 bytes (`footer`) and its
/// length. `Err` carries the format the magic claims and why its header is unusable.
pub fn detect(head: &[u8], footer: &[u8], file_len: u64) -> Result<Detected, (ImageFormat, String)> {
    let corrupt = |format, reason: &str| Err((format, reason.to_owned()));
    if head.starts_with(b"QFI\xfb") {
        let fmt = ImageFormat::Qcow2;
        let (Some(version), Some(size)) = (be_u32(head, 4), be_u64(head, 24)) else {
            return corrupt(fmt, "header truncated");
        };
        if !(2..=3).contains(&version) {
            return corrupt(fmt, &format!("unsupported version {version}"));
        }
        if head.len() < 72 {
            return corrupt(fmt, "header truncated");
        }
        return Ok(Detected {
            format: fmt,
            virtual_size: Some(size),
        });
    }
    if head.starts_with(b"vhdxfile") {
        return Ok(Detected {
            format: ImageFormat::Vhdx,
            virtual_size: None,
        });
    }
    if le_u32(head, 0x40) == Some(0xbeda_107f) {
        let fmt = ImageFormat::Vdi;
        let Some(size) = le_u64(head, 0x170) else {
            return corrupt(fmt, "header truncated");
        };
        return Ok(Detected {
            format: fmt,
            virtual_size: Some(size),
        });
    }
    if head.starts_with(b"KDMV") {
        let fmt = ImageFormat::Vmdk;
        let Some(sectors) = le_u64(head, 12) else {
            return corrupt(fmt, "header truncated");
        };
        return Ok(Detected {
            format: fmt,
            virtual_size: Some(sectors.saturating_mul(512)),
        });
    }
    if head.starts_with(b"# Disk DescriptorFile") {
        let fmt = ImageFormat::Vmdk;
        let text = String::from_utf8_lossy(head);
        return match vmdk_descriptor_sectors(&text) {
            Some(sectors) => Ok(Detected {
                format: fmt,
                virtual_size: Some(sectors.saturating_mul(512)),
            }),
            None => corrupt(fmt, "descriptor lists no extents"),
        };
    }
    // A dynamic VHD starts with a copy of its footer; a fixed one only has it at the end.
    for candidate in [head, footer] {
        if candidate.starts_with(b"conectix") {
            let fmt = ImageFormat::Vpc;
            let Some(size) = be_u64(candidate, 48) else {
                return corrupt(fmt, "footer truncated");
            };
            return Ok(Detected {
                format: fmt,
                virtual_size: Some(size),
            });
        }
    }
    if head.get(0x8001..0x8006) == Some(b"CD001") {
        return Ok(Detected {
            format: ImageFormat::Iso9660,
            virtual_size: Some(file_len),
        });
    }
    Ok(Detected {
        format: ImageFormat::Raw,
        virtual_size: Some(file_len),
    })
}

/// The sum of the extent sizes (in sectors) of a VMDK text descriptor (`RW 2048 FLAT "x-flat.vmdk" 0`).
pub fn vmdk_descriptor_sectors(text: &str) -> Option<u64> {
    let mut total = 0u64;
    let mut any = false;
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if matches!(words.next(), Some("RW" | "RDONLY" | "NOACCESS")) {
            total = total.checked_add(words.next()?.parse().ok()?)?;
            any = true;
        }
    }
    any.then_some(total)
}

fn read_at(image: &OpenImage, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0; len];
    let mut filled = 0;
    while filled < len {
        match image.file.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(filled);
    Ok(buf)
}

/// `qemu-img info` on the open image (its descriptor as standard input), returning `virtual-size`.
pub fn qemu_img_virtual_size(image: &OpenImage, format: ImageFormat) -> Result<u64, ImageError> {
    let size_err = |reason: String| ImageError::Size {
        path: image.path.clone(),
        format,
        reason,
    };
    let stdin = image.file.try_clone().map_err(|source| ImageError::Read {
        path: image.path.clone(),
        source,
    })?;
    let out = Command::new("qemu-img")
        .args([
            "info",
            "--force-share",
            "--output=json",
            "-f",
            format.qemu_driver(),
            "/dev/stdin",
        ])
        .stdin(Stdio::from(stdin))
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .output()
        .map_err(|e| size_err(format!("cannot run qemu-img: {e}")))?;
    if !out.status.success() {
        return Err(size_err(String::from_utf8_lossy(&out.stderr).trim().to_owned()));
    }
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| size_err(format!("unreadable qemu-img output: {e}")))?;
    v.get("virtual-size")
        .and_then(|s| s.as_u64())
        .ok_or_else(|| size_err("qemu-img reported no virtual-size".into()))
}

impl ImageInspector for MagicInspector {
    fn inspect(&self, image: &OpenImage) -> Result<ImageInfo, ImageError> {
        let path = &image.path;
        let read_err = |source| ImageError::Read {
            path: path.clone(),
            source,
        };
        let meta = image.file.metadata().map_err(read_err)?;
        if !meta.is_file() {
            return Err(ImageError::NotRegularFile { path: path.clone() });
        }
        let file_len = meta.len();
        if file_len == 0 {
            return Err(ImageError::Empty { path: path.clone() });
        }
        let head = read_at(image, 0, HEAD_LEN).map_err(read_err)?;
        let footer_at = file_len.saturating_sub(FOOTER_LEN as u64);
        let footer = read_at(image, footer_at, FOOTER_LEN).map_err(read_err)?;
        let detected = detect(&head, &footer, file_len).map_err(|(format, reason)| ImageError::Corrupt {
            path: path.clone(),
            format,
            reason,
        })?;
        let virtual_size = match detected.virtual_size {
            Some(size) => size,
            None => qemu_img_virtual_size(image, detected.format)?,
        };
        Ok(ImageInfo {
            format: detected.format,
            virtual_size,
            file_size: file_len,
        })
    }
}

/// Convenience for tests and tools: opens `path` read-only and inspects it.
pub fn inspect_path(path: &Path) -> Result<ImageInfo, ImageError> {
    MagicInspector.inspect(&OpenImage::open(path, false)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head_with(at: usize, bytes: &[u8]) -> Vec<u8> {
        let mut h = vec![0u8; HEAD_LEN];
        h[at..at + bytes.len()].copy_from_slice(bytes);
        h
    }

    #[test]
    fn qcow2_header() {
        let mut h = head_with(0, b"QFI\xfb");
        h[4..8].copy_from_slice(&3u32.to_be_bytes());
        h[24..32].copy_from_slice(&(64u64 << 20).to_be_bytes());
        let d = detect(&h, &[], 1 << 20).unwrap();
        assert_eq!(
            d,
            Detected {
                format: ImageFormat::Qcow2,
                virtual_size: Some(64 << 20)
            }
        );
        // Truncated after the magic, and a nonsense version.
        assert_eq!(detect(&h[..20], &[], 20).unwrap_err().0, ImageFormat::Qcow2);
        h[4..8].copy_from_slice(&9u32.to_be_bytes());
        assert!(detect(&h, &[], 1 << 20).unwrap_err().1.contains("version 9"));
    }

    #[test]
    fn vmdk_sparse_and_descriptor() {
        let mut h = head_with(0, b"KDMV");
        h[12..20].copy_from_slice(&2048u64.to_le_bytes());
        assert_eq!(detect(&h, &[], 4096).unwrap().virtual_size, Some(1 << 20));
        let text = b"# Disk DescriptorFile\nversion=1\nCID=fffffffe\ncreateType=\"twoGbMaxExtentFlat\"\n\
RW 4096 FLAT \"a-f001.vmdk\" 0\nRW 2048 FLAT \"a-f002.vmdk\" 0\nddb.adapterType = \"ide\"\n";
        let d = detect(&head_with(0, text), &[], text.len() as u64).unwrap();
        assert_eq!(
            d,
            Detected {
                format: ImageFormat::Vmdk,
                virtual_size: Some(6144 * 512)
            }
        );
        let empty = b"# Disk DescriptorFile\nversion=1\n";
        assert_eq!(detect(&head_with(0, empty), &[], 40).unwrap_err().0, ImageFormat::Vmdk);
    }

    #[test]
    fn vdi_vhdx_vpc() {
        let mut h = head_with(0x40, &0xbeda_107fu32.to_le_bytes());
        h[0x170..0x178].copy_from_slice(&(32u64 << 20).to_le_bytes());
        assert_eq!(
            detect(&h, &[], 1 << 20).unwrap(),
            Detected {
                format: ImageFormat::Vdi,
                virtual_size: Some(32 << 20)
            }
        );
        assert_eq!(
            detect(&head_with(0, b"vhdxfile"), &[], 1 << 20).unwrap(),
            Detected {
                format: ImageFormat::Vhdx,
                virtual_size: None
            }
        );
        let mut footer = vec![0u8; FOOTER_LEN];
        footer[..8].copy_from_slice(b"conectix");
        footer[48..56].copy_from_slice(&(8u64 << 20).to_be_bytes());
        // Fixed VHD: footer at the end only.
        let fixed = detect(&vec![0u8; HEAD_LEN], &footer, (8 << 20) + 512).unwrap();
        assert_eq!(
            fixed,
            Detected {
                format: ImageFormat::Vpc,
                virtual_size: Some(8 << 20)
            }
        );
        // Dynamic VHD: a copy at the start.
        let mut dynamic = vec![0u8; HEAD_LEN];
        dynamic[..FOOTER_LEN].copy_from_slice(&footer);
        assert_eq!(detect(&dynamic, &[0; 512], 1 << 16).unwrap().format, ImageFormat::Vpc);
    }

    #[test]
    fn iso_and_raw() {
        let d = detect(&head_with(0x8001, b"CD001"), &[], 1 << 20).unwrap();
        assert_eq!(
            d,
            Detected {
                format: ImageFormat::Iso9660,
                virtual_size: Some(1 << 20)
            }
        );
        // CD001 at the wrong offset, or a short file, is raw.
        assert_eq!(
            detect(&head_with(0x8000, b"CD001"), &[], 1 << 20).unwrap().format,
            ImageFormat::Raw
        );
        assert_eq!(
            detect(b"hello", b"hello", 5).unwrap(),
            Detected {
                format: ImageFormat::Raw,
                virtual_size: Some(5)
            }
        );
    }

    #[test]
    fn inspects_files_by_content_not_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("looks-like.qcow2");
        std::fs::write(&path, vec![7u8; 4096]).unwrap();
        assert_eq!(inspect_path(&path).unwrap().format, ImageFormat::Raw);
        let empty = dir.path().join("empty.img");
        std::fs::write(&empty, b"").unwrap();
        assert!(matches!(inspect_path(&empty), Err(ImageError::Empty { path }) if path == empty));
        let trunc = dir.path().join("trunc.img");
        std::fs::write(&trunc, b"QFI\xfb\0\0\0\x03").unwrap();
        assert!(matches!(
            inspect_path(&trunc),
            Err(ImageError::Corrupt { format: ImageFormat::Qcow2, path, .. }) if path == trunc
        ));
    }
}
