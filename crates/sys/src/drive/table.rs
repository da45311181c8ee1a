//! Partition tables read in user space with `sfdisk --json` (fixed argv) ([`SfdiskTable`]).

use std::path::Path;
use std::process::Command;

use cacheos_core::drive::{PartitionError, PartitionTable, PartitionTableReader, TableEntry};
use serde::Deserialize;

/// Runs `sfdisk --json -- DEVICE` (read-only; works on image files and block devices).
#[derive(Debug, Clone, Default)]
pub struct SfdiskTable;

#[derive(Deserialize)]
struct Doc {
    partitiontable: Table,
}

#[derive(Deserialize)]
struct Table {
    label: String,
    #[serde(default = "default_sector")]
    sectorsize: u64,
    #[serde(default)]
    partitions: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    node: String,
    start: u64,
    size: u64,
    #[serde(rename = "type")]
    type_id: String,
    uuid: Option<String>,
    name: Option<String>,
}

fn default_sector() -> u64 {
    512
}

/// Parses `sfdisk --json` output. The partition number is the trailing digits of each entry's node name.
pub fn parse_sfdisk_json(text: &str) -> Result<PartitionTable, serde_json::Error> {
    let doc: Doc = serde_json::from_str(text)?;
    let t = doc.partitiontable;
    let partitions = t
        .partitions
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            let digits: String = e.node.chars().rev().take_while(char::is_ascii_digit).collect();
            let number = digits.chars().rev().collect::<String>().parse().unwrap_or(i as u32 + 1);
            TableEntry {
                number,
                start: e.start * t.sectorsize,
                size: e.size * t.sectorsize,
                type_id: e.type_id,
                name: e.name.filter(|n| !n.is_empty()),
                uuid: e.uuid,
            }
        })
        .collect();
    Ok(PartitionTable {
        label: t.label,
        partitions,
    })
}

impl PartitionTableReader for SfdiskTable {
    fn read_table(&self, device: &Path) -> Result<Option<PartitionTable>, PartitionError> {
        let out = Command::new("sfdisk")
            .args(["--json", "--"])
            .arg(device)
            .output()
            .map_err(|source| PartitionError::Run {
                device: device.to_owned(),
                source,
            })?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            if stderr.contains("does not contain a recognized partition table") {
                return Ok(None);
            }
            return Err(PartitionError::Failed {
                device: device.to_owned(),
                message: stderr.trim().to_owned(),
            });
        }
        parse_sfdisk_json(&String::from_utf8_lossy(&out.stdout))
            .map(Some)
            .map_err(|e| PartitionError::Failed {
                device: device.to_owned(),
                message: format!("unreadable output: {e}"),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_gpt_and_dos() {
        let gpt = r#"{"partitiontable": {"label": "gpt", "id": "X", "device": "/dev/loop0", "unit": "sectors",
            "firstlba": 34, "lastlba": 131038, "sectorsize": 512, "partitions": [
            {"node": "/dev/loop0p1", "start": 2048, "size": 32768, "type": "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
             "uuid": "A5615C76-713A-4A5C-A5ED-009EA0EB1041", "name": "alpha"},
            {"node": "/dev/loop0p12", "start": 34816, "size": 32768, "type": "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
             "uuid": "DC721FA8-D2EB-427E-93EE-69C8DFB68C2B"}]}}"#;
        let t = parse_sfdisk_json(gpt).unwrap();
        assert_eq!(t.label, "gpt");
        assert_eq!(t.partitions[0].number, 1);
        assert_eq!((t.partitions[0].start, t.partitions[0].size), (2048 * 512, 16 << 20));
        assert_eq!(t.partitions[0].name.as_deref(), Some("alpha"));
        assert_eq!(t.partitions[1].number, 12);
        assert_eq!(t.partitions[1].name, None);
        let dos = r#"{"partitiontable": {"label": "dos", "id": "0x1", "device": "/x.img", "unit": "sectors",
            "sectorsize": 4096, "partitions": [{"node": "/x.img1", "start": 256, "size": 1024, "type": "83"}]}}"#;
        let t = parse_sfdisk_json(dos).unwrap();
        assert_eq!(
            (t.partitions[0].start, t.partitions[0].type_id.as_str()),
            (256 * 4096, "83")
        );
    }
}
