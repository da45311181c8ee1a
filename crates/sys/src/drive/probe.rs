//! File system detection through libblkid's low-level superblock probe (`blkid -p`, fixed argv) ([`BlkidProbe`]).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use cacheos_core::drive::{FsInfo, FsProbe, FsType, ProbeError};

/// Runs `blkid -p -o export -- DEVICE`: superblock probing that bypasses the blkid cache and reports conflicting
/// signatures (exit status 8) instead of picking one.
#[derive(Debug, Clone)]
pub struct BlkidProbe {
    program: String,
}

impl Default for BlkidProbe {
    fn default() -> Self {
        Self {
            program: "blkid".into(),
        }
    }
}

/// Parses `blkid -o export` output (`KEY=value` lines, shell-escaped values) into a map.
pub fn parse_export(out: &str) -> BTreeMap<String, String> {
    out.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let mut value = String::with_capacity(v.len());
            let mut chars = v.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    if let Some(next) = chars.next() {
                        value.push(next);
                    }
                } else {
                    value.push(c);
                }
            }
            (k.to_owned(), value)
        })
        .collect()
}

/// The file system described by blkid's export map; `None` for no `TYPE` or one CacheOS does not mount.
pub fn fs_info(map: &BTreeMap<String, String>) -> Option<FsInfo> {
    let fs_type = FsType::from_blkid(map.get("TYPE")?)?;
    let nonempty = |k: &str| map.get(k).filter(|v| !v.is_empty()).cloned();
    Some(FsInfo {
        fs_type,
        label: nonempty("LABEL"),
        uuid: nonempty("UUID"),
    })
}

impl FsProbe for BlkidProbe {
    fn probe(&self, device: &Path) -> Result<Option<FsInfo>, ProbeError> {
        let out = Command::new(&self.program)
            .args(["-p", "-o", "export", "--"])
            .arg(device)
            .output()
            .map_err(|source| ProbeError::Run {
                device: device.to_owned(),
                source,
            })?;
        match out.status.code() {
            Some(0) => {
                let map = parse_export(&String::from_utf8_lossy(&out.stdout));
                let info = fs_info(&map);
                if info.is_none() {
                    tracing::debug!(device = %device.display(), r#type = ?map.get("TYPE"), "no mountable file system");
                }
                Ok(info)
            }
            // Nothing recognised.
            Some(2) => Ok(None),
            Some(8) => Err(ProbeError::Ambivalent {
                device: device.to_owned(),
            }),
            _ => Err(ProbeError::Failed {
                device: device.to_owned(),
                message: format!(
                    "blkid exited with {}: {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_blkid_export() {
        let out = "DEVNAME=/dev/loop3\nLABEL=my\\ disk\nUUID=1234-ABCD\nBLOCK_SIZE=512\nTYPE=vfat\nSEC_TYPE=msdos\n";
        let info = fs_info(&parse_export(out)).unwrap();
        assert_eq!(
            info,
            FsInfo {
                fs_type: FsType::Vfat,
                label: Some("my disk".into()),
                uuid: Some("1234-ABCD".into())
            }
        );
        // Not a file system CacheOS mounts, or no TYPE at all (a partition table): not guessed.
        assert_eq!(fs_info(&parse_export("TYPE=swap\nUUID=x\n")), None);
        assert_eq!(fs_info(&parse_export("PTUUID=abc\nPTTYPE=gpt\n")), None);
        assert_eq!(fs_info(&parse_export("TYPE=ext4\nLABEL=\n")).unwrap().label, None);
    }

    #[test]
    fn missing_program_is_a_typed_error() {
        let probe = BlkidProbe {
            program: "/nonexistent/blkid".into(),
        };
        let err = probe.probe(Path::new("/dev/loop0")).unwrap_err();
        assert!(matches!(err, ProbeError::Run { ref device, .. } if device == Path::new("/dev/loop0")));
    }
}
