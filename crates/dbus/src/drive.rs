//! One D-Bus object per virtual drive: `/org/cacheos/CacheOS1/drive/<escaped name>` with interface
//! `org.cacheos.CacheOS1.Drive` (read-only properties with change signals). Objects follow the core's drive
//! events; they only present what `drive.list` would return and never act.

use std::collections::BTreeMap;
use std::sync::Arc;

use cacheos_core::drive::DriveInfo;
use cacheos_core::Core;
use tokio::sync::Mutex;
use zbus::object_server::SignalEmitter;
use zbus::{interface, Connection};

use crate::OBJECT_PATH;

/// The object path of a drive: bytes other than ASCII letters and digits are escaped as `_xx` (hex), like
/// systemd's unit object paths.
pub fn drive_path(name: &str) -> String {
    let mut p = format!("{OBJECT_PATH}/drive/");
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() {
            p.push(b as char);
        } else {
            p.push_str(&format!("_{b:02x}"));
        }
    }
    p
}

/// A drive object.
pub struct DriveObject {
    info: DriveInfo,
}

/// A virtual drive (operation drive.info; see the Manager's drive methods to act on it).
#[interface(name = "org.cacheos.CacheOS1.Drive")]
impl DriveObject {
    /// Drive name.
    #[zbus(property(emits_changed_signal = "const"))]
    fn name(&self) -> String {
        self.info.name.clone()
    }
    /// Backing image file.
    #[zbus(property(emits_changed_signal = "const"))]
    fn image(&self) -> String {
        self.info.image.display().to_string()
    }
    /// Image format (raw, iso9660, qcow2, vmdk, vdi, vhdx, vpc).
    #[zbus(property(emits_changed_signal = "const"))]
    fn format(&self) -> String {
        self.info.format.to_string()
    }
    /// Virtual size in bytes.
    #[zbus(property(emits_changed_signal = "const"))]
    fn virtual_size(&self) -> u64 {
        self.info.virtual_size
    }
    /// attaching, attached, detaching or detached.
    #[zbus(property)]
    fn state(&self) -> String {
        serde_json::to_value(self.info.state)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }
    /// Attached read-write (false: read-only).
    #[zbus(property)]
    fn read_write(&self) -> bool {
        self.info.read_write
    }
    /// Attached again at boot.
    #[zbus(property)]
    fn persistent(&self) -> bool {
        self.info.persistent
    }
    /// A writable snapshot layer is in place.
    #[zbus(property)]
    fn has_snapshot(&self) -> bool {
        self.info.snapshot.is_some()
    }
    /// Mount points of its file systems.
    #[zbus(property)]
    fn mount_points(&self) -> Vec<String> {
        self.info
            .partitions
            .iter()
            .filter_map(|p| p.mount_point.as_ref().map(|m| m.display().to_string()))
            .collect()
    }
    /// Loop devices, the whole disk first.
    #[zbus(property)]
    fn loop_devices(&self) -> Vec<String> {
        self.info.loop_devices.iter().map(|d| d.display().to_string()).collect()
    }
    /// Who attached it.
    #[zbus(property(emits_changed_signal = "const"))]
    fn attached_by(&self) -> String {
        self.info.attached_by.clone()
    }
    /// When it was attached (ms since the Unix epoch).
    #[zbus(property(emits_changed_signal = "const"))]
    fn attached_ms(&self) -> u64 {
        self.info.attached_ms
    }
    /// Sandboxes binding it.
    #[zbus(property)]
    fn used_by(&self) -> Vec<String> {
        self.info.used_by.clone()
    }
    /// The whole drive as JSON (schema DriveInfo).
    #[zbus(property)]
    fn json(&self) -> String {
        serde_json::to_string(&self.info).unwrap_or_default()
    }
}

impl DriveObject {
    async fn changed(&self, e: &SignalEmitter<'_>) -> zbus::Result<()> {
        self.state_changed(e).await?;
        self.read_write_changed(e).await?;
        self.persistent_changed(e).await?;
        self.has_snapshot_changed(e).await?;
        self.mount_points_changed(e).await?;
        self.loop_devices_changed(e).await?;
        self.used_by_changed(e).await?;
        self.json_changed(e).await
    }
}

/// Keeps one object per drive in step with the drive manager.
pub struct DriveObjects {
    core: Arc<Core>,
    served: Mutex<BTreeMap<String, String>>,
}

impl DriveObjects {
    pub fn new(core: Arc<Core>) -> Self {
        Self {
            core,
            served: Mutex::default(),
        }
    }

    /// Adds, updates (emitting property changes) and removes drive objects to match the drive list.
    pub async fn sync(&self, conn: &Connection) {
        let Some(drives) = self.core.drives().cloned() else {
            return;
        };
        let list = match tokio::task::spawn_blocking(move || drives.list()).await {
            Ok(Ok(l)) => l,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot list drives for D-Bus objects");
                return;
            }
            Err(_) => return,
        };
        let server = conn.object_server();
        let mut served = self.served.lock().await;
        let mut keep = BTreeMap::new();
        for info in list {
            let path = drive_path(&info.name);
            let name = info.name.clone();
            if served.contains_key(&name) {
                if let Ok(iface) = server.interface::<_, DriveObject>(path.as_str()).await {
                    iface.get_mut().await.info = info;
                    let obj = iface.get().await;
                    if let Err(e) = obj.changed(iface.signal_emitter()).await {
                        tracing::warn!(error = %e, "cannot signal drive property changes");
                    }
                }
            } else if let Err(e) = server.at(path.as_str(), DriveObject { info }).await {
                tracing::warn!(error = %e, path, "cannot serve drive object");
            }
            keep.insert(name, path);
        }
        for (name, path) in served.iter() {
            if !keep.contains_key(name) {
                let _ = server.remove::<DriveObject, _>(path.as_str()).await;
            }
        }
        *served = keep;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_escape_everything_but_letters_and_digits() {
        assert_eq!(drive_path("debian-12.5"), "/org/cacheos/CacheOS1/drive/debian_2d12_2e5");
        assert!(zbus::zvariant::ObjectPath::try_from(drive_path("a_b").as_str()).is_ok());
    }
}
