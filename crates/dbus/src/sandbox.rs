//! One D-Bus object per sandbox: `/org/cacheos/CacheOS1/sandbox/<escaped name>` with interface
//! `org.cacheos.CacheOS1.Sandbox` (read-only properties with change signals). Objects follow the core's sandbox
//! events; they only present what `sandbox.list` would return and never act.

use std::collections::BTreeMap;
use std::sync::Arc;

use cacheos_core::sandbox::SandboxInfo;
use cacheos_core::Core;
use tokio::sync::Mutex;
use zbus::object_server::SignalEmitter;
use zbus::{interface, Connection};

use crate::OBJECT_PATH;

/// The object path of a sandbox: bytes other than ASCII letters and digits are escaped as `_xx` (hex), like
/// systemd's unit object paths.
pub fn sandbox_path(name: &str) -> String {
    let mut p = format!("{OBJECT_PATH}/sandbox/");
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() {
            p.push(b as char);
        } else {
            p.push_str(&format!("_{b:02x}"));
        }
    }
    p
}

/// A sandbox object.
pub struct SandboxObject {
    info: SandboxInfo,
}

/// A sandbox (operation sandbox.info; see the Manager's sandbox methods to act on it).
#[interface(name = "org.cacheos.CacheOS1.Sandbox")]
impl SandboxObject {
    /// Sandbox name.
    #[zbus(property(emits_changed_signal = "const"))]
    fn name(&self) -> String {
        self.info.name.clone()
    }
    /// The template it was created from.
    #[zbus(property(emits_changed_signal = "const"))]
    fn template(&self) -> String {
        self.info.template.clone()
    }
    /// created, starting, running, stopping, stopped or failed.
    #[zbus(property)]
    fn state(&self) -> String {
        self.info.state.as_str().to_owned()
    }
    /// The container's init process as the appliance sees it; 0 when not running.
    #[zbus(property)]
    fn main_pid(&self) -> u32 {
        self.info.main_pid.unwrap_or(0)
    }
    /// The whole sandbox as JSON (schema SandboxInfo).
    #[zbus(property)]
    fn json(&self) -> String {
        serde_json::to_string(&self.info).unwrap_or_default()
    }
}

impl SandboxObject {
    async fn changed(&self, e: &SignalEmitter<'_>) -> zbus::Result<()> {
        self.state_changed(e).await?;
        self.main_pid_changed(e).await?;
        self.json_changed(e).await
    }
}

/// Keeps one object per sandbox in step with the sandbox manager.
pub struct SandboxObjects {
    core: Arc<Core>,
    served: Mutex<BTreeMap<String, String>>,
}

impl SandboxObjects {
    pub fn new(core: Arc<Core>) -> Self {
        Self {
            core,
            served: Mutex::default(),
        }
    }

    /// Adds, updates (emitting property changes) and removes sandbox objects to match the sandbox list.
    pub async fn sync(&self, conn: &Connection) {
        let Some(sandboxes) = self.core.sandboxes().cloned() else {
            return;
        };
        let list = match tokio::task::spawn_blocking(move || sandboxes.list()).await {
            Ok(Ok(l)) => l,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot list sandboxes for D-Bus objects");
                return;
            }
            Err(_) => return,
        };
        let server = conn.object_server();
        let mut served = self.served.lock().await;
        let mut keep = BTreeMap::new();
        for info in list {
            let path = sandbox_path(&info.name);
            let name = info.name.clone();
            if served.contains_key(&name) {
                if let Ok(iface) = server.interface::<_, SandboxObject>(path.as_str()).await {
                    iface.get_mut().await.info = info;
                    let obj = iface.get().await;
                    if let Err(e) = obj.changed(iface.signal_emitter()).await {
                        tracing::warn!(error = %e, "cannot signal sandbox property changes");
                    }
                }
            } else if let Err(e) = server.at(path.as_str(), SandboxObject { info }).await {
                tracing::warn!(error = %e, path, "cannot serve sandbox object");
            }
            keep.insert(name, path);
        }
        for (name, path) in served.iter() {
            if !keep.contains_key(name) {
                let _ = server.remove::<SandboxObject, _>(path.as_str()).await;
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
        assert_eq!(sandbox_path("web-1"), "/org/cacheos/CacheOS1/sandbox/web_2d1");
        assert!(zbus::zvariant::ObjectPath::try_from(sandbox_path("a_b").as_str()).is_ok());
    }
}
