//! The real [`UnitSource`]: systemd's manager over the system bus with zbus (`org.freedesktop.systemd1`:
//! `ListUnits`, `LoadUnit`, `ResetFailedUnit`, `RestartUnit`, and the `Unit` + type-specific interface's
//! properties), and cgroup v2 `memory.events` from `/sys/fs/cgroup`.
//!
//! The core's traits are synchronous and the executor runs on tokio's blocking threads, so each call is driven on
//! the daemon's runtime with [`tokio::runtime::Handle::block_on`] (allowed from blocking threads, never from a task).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use cacheos_core::diagnose::{DiagnoseError, MemoryEvents, UnitProperties, UnitSource, UnitSummary};
use zbus::zvariant::{OwnedObjectPath, OwnedValue};

const DEST: &str = "org.freedesktop.systemd1";

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Manager",
    default_service = "org.freedesktop.systemd1",
    default_path = "/org/freedesktop/systemd1"
)]
trait SystemdManager {
    #[allow(clippy::type_complexity)]
    fn list_units(
        &self,
    ) -> zbus::Result<
        Vec<(
            String,
            String,
            String,
            String,
            String,
            String,
            OwnedObjectPath,
            u32,
            String,
            OwnedObjectPath,
        )>,
    >;
    fn load_unit(&self, name: &str) -> zbus::Result<OwnedObjectPath>;
    fn reset_failed_unit(&self, name: &str) -> zbus::Result<()>;
    fn restart_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
}

fn err(what: impl Into<String>) -> impl FnOnce(zbus::Error) -> DiagnoseError {
    let what = what.into();
    move |e| DiagnoseError::Systemd {
        what,
        source: Box::new(e),
    }
}

/// systemd over the system bus.
pub struct SystemdUnits {
    conn: zbus::Connection,
    rt: tokio::runtime::Handle,
    cgroup_root: std::path::PathBuf,
}

impl std::fmt::Debug for SystemdUnits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SystemdUnits")
    }
}

impl SystemdUnits {
    /// Connects to the system bus; call inside the daemon's runtime.
    pub async fn connect() -> Result<Self, DiagnoseError> {
        let conn = zbus::Connection::system()
            .await
            .map_err(err("a system bus connection"))?;
        Ok(Self {
            conn,
            rt: tokio::runtime::Handle::current(),
            cgroup_root: "/sys/fs/cgroup".into(),
        })
    }

    fn block<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        self.rt.block_on(f)
    }

    async fn manager(&self) -> Result<SystemdManagerProxy<'_>, DiagnoseError> {
        SystemdManagerProxy::new(&self.conn)
            .await
            .map_err(err("the manager object"))
    }

    async fn props_of(
        &self,
        path: &OwnedObjectPath,
        iface: &str,
    ) -> Result<HashMap<String, OwnedValue>, DiagnoseError> {
        let p = zbus::fdo::PropertiesProxy::builder(&self.conn)
            .destination(DEST)
            .map_err(err("a properties proxy"))?
            .path(path.clone())
            .map_err(err("a properties proxy"))?
            .build()
            .await
            .map_err(err("a properties proxy"))?;
        let name = zbus::names::InterfaceName::try_from(iface).map_err(|e| err(iface)(e.into()))?;
        p.get_all(name)
            .await
            .map_err(|e| err(format!("the properties of {path} ({iface})"))(e.into()))
    }

    async fn properties_async(&self, unit: &str) -> Result<UnitProperties, DiagnoseError> {
        let m = self.manager().await?;
        let path = m.load_unit(unit).await.map_err(err(format!("unit {unit}")))?;
        let mut all = self.props_of(&path, "org.freedesktop.systemd1.Unit").await?;
        let typed = match unit.rsplit_once('.').map(|(_, t)| t) {
            Some("service") => Some("Service"),
            Some("mount") => Some("Mount"),
            Some("socket") => Some("Socket"),
            Some("swap") => Some("Swap"),
            Some("timer") => Some("Timer"),
            Some("path") => Some("Path"),
            Some("automount") => Some("Automount"),
            _ => None,
        };
        if let Some(t) = typed {
            if all.get("LoadState").and_then(str_of).as_deref() == Some("loaded") {
                // Properties of the type-specific interface win (Result lives there).
                all.extend(self.props_of(&path, &format!("org.freedesktop.systemd1.{t}")).await?);
            }
        }
        Ok(from_props(unit, &all))
    }
}

fn str_of(v: &OwnedValue) -> Option<String> {
    v.try_clone().ok().and_then(|v| String::try_from(v).ok())
}

fn strs_of(v: &OwnedValue) -> Vec<String> {
    v.try_clone()
        .ok()
        .and_then(|v| Vec::<String>::try_from(v).ok())
        .unwrap_or_default()
}

fn i32_of(v: &OwnedValue) -> Option<i32> {
    v.try_clone().ok().and_then(|v| i32::try_from(v).ok())
}

fn u32_of(v: &OwnedValue) -> Option<u32> {
    v.try_clone().ok().and_then(|v| u32::try_from(v).ok())
}

fn u64_of(v: &OwnedValue) -> Option<u64> {
    v.try_clone().ok().and_then(|v| u64::try_from(v).ok())
}

/// Unit properties from the `GetAll` answers (the `Unit` interface merged with the type-specific one).
pub fn from_props(unit: &str, p: &HashMap<String, OwnedValue>) -> UnitProperties {
    let s = |k: &str| p.get(k).and_then(str_of).unwrap_or_default();
    let list = |k: &str| p.get(k).map(strs_of).unwrap_or_default();
    let load_error = p
        .get("LoadError")
        .and_then(|v| v.try_clone().ok())
        .and_then(|v| <(String, String)>::try_from(v).ok())
        .map(|(_, msg)| msg)
        .filter(|m| !m.is_empty());
    let mut requires = list("Requires");
    requires.extend(list("BindsTo"));
    requires.extend(list("Requisite"));
    UnitProperties {
        id: Some(s("Id"))
            .filter(|i| !i.is_empty())
            .unwrap_or_else(|| unit.to_owned()),
        description: s("Description"),
        load_state: s("LoadState"),
        load_error,
        active_state: s("ActiveState"),
        sub_state: s("SubState"),
        result: s("Result"),
        exec_main_code: p.get("ExecMainCode").and_then(i32_of).unwrap_or(0),
        exec_main_status: p.get("ExecMainStatus").and_then(i32_of).unwrap_or(0),
        n_restarts: p.get("NRestarts").and_then(u32_of).unwrap_or(0),
        requires,
        after: list("After"),
        triggered_by: list("TriggeredBy"),
        fragment_path: s("FragmentPath"),
        memory_max: p.get("MemoryMax").and_then(u64_of).filter(|m| *m != u64::MAX),
        control_group: s("ControlGroup"),
        what: s("What"),
        mount_where: s("Where"),
        state_change_ms: p.get("StateChangeTimestamp").and_then(u64_of).unwrap_or(0) / 1000,
    }
}

impl UnitSource for SystemdUnits {
    fn list(&self) -> Result<Vec<UnitSummary>, DiagnoseError> {
        self.block(async {
            let units = self.manager().await?.list_units().await.map_err(err("the unit list"))?;
            Ok(units
                .into_iter()
                .map(|u| UnitSummary {
                    name: u.0,
                    description: u.1,
                    load_state: u.2,
                    active_state: u.3,
                    sub_state: u.4,
                })
                .collect())
        })
    }

    fn properties(&self, unit: &str) -> Result<UnitProperties, DiagnoseError> {
        self.block(self.properties_async(unit))
    }

    fn memory_events(&self, unit: &UnitProperties) -> Option<MemoryEvents> {
        if unit.control_group.is_empty() {
            return None;
        }
        let path = self
            .cgroup_root
            .join(unit.control_group.trim_start_matches('/'))
            .join("memory.events");
        std::fs::read_to_string(path).ok().map(|t| MemoryEvents::parse(&t))
    }

    fn restart(&self, unit: &str) -> Result<(), DiagnoseError> {
        self.block(async {
            let m = self.manager().await?;
            // A unit that is not failed answers NotFound-ish errors here; only a real bus failure matters later.
            let _ = m.reset_failed_unit(unit).await;
            m.restart_unit(unit, "replace")
                .await
                .map_err(err(format!("a restart of {unit}")))?;
            // Wait (at most 30 s) until the unit settles.
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let p = self.properties_async(unit).await?;
                if !matches!(p.active_state.as_str(), "activating" | "deactivating" | "reloading")
                    || Instant::now() > deadline
                {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    }
}

/// The source used where systemd is not PID 1 (development hosts, containers): every call says so.
#[derive(Debug, Default)]
pub struct NoSystemd;

impl UnitSource for NoSystemd {
    fn list(&self) -> Result<Vec<UnitSummary>, DiagnoseError> {
        Err(DiagnoseError::NoSystemd)
    }
    fn properties(&self, _: &str) -> Result<UnitProperties, DiagnoseError> {
        Err(DiagnoseError::NoSystemd)
    }
    fn memory_events(&self, _: &UnitProperties) -> Option<MemoryEvents> {
        None
    }
    fn restart(&self, _: &str) -> Result<(), DiagnoseError> {
        Err(DiagnoseError::NoSystemd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zbus::zvariant::Value;

    /// A property value as `busctl --json=short` prints it (`{"type": SIG, "data": …}`), for the types unit
    /// properties use; other types are left out (the rules read none of them).
    fn from_busctl(sig: &str, data: &serde_json::Value) -> Option<OwnedValue> {
        let val: Value<'static> = match sig {
            "s" => Value::from(data.as_str()?.to_owned()),
            "o" => Value::from(zbus::zvariant::ObjectPath::try_from(data.as_str()?.to_owned()).ok()?),
            "b" => Value::from(data.as_bool()?),
            "y" => Value::from(u8::try_from(data.as_u64()?).ok()?),
            "q" => Value::from(u16::try_from(data.as_u64()?).ok()?),
            "n" => Value::from(i16::try_from(data.as_i64()?).ok()?),
            "u" => Value::from(u32::try_from(data.as_u64()?).ok()?),
            "i" => Value::from(i32::try_from(data.as_i64()?).ok()?),
            "t" => Value::from(data.as_u64()?),
            "x" => Value::from(data.as_i64()?),
            "as" => Value::from(
                data.as_array()?
                    .iter()
                    .map(|x| x.as_str().map(str::to_owned))
                    .collect::<Option<Vec<String>>>()?,
            ),
            "(ss)" => {
                let a = data.as_array()?;
                Value::from(zbus::zvariant::Structure::from((
                    a.first()?.as_str()?.to_owned(),
                    a.get(1)?.as_str()?.to_owned(),
                )))
            }
            _ => return None,
        };
        OwnedValue::try_from(val).ok()
    }

    /// The properties of `GetAll` answers recorded with `busctl --json=short call … GetAll s IFACE` (one JSON
    /// document per line, several interfaces of one unit), merged as [`SystemdUnits`] merges them.
    fn recorded_props(text: &str) -> HashMap<String, OwnedValue> {
        let mut all = HashMap::new();
        for line in text.lines().filter(|l| l.trim_start().starts_with('{')) {
            let doc: serde_json::Value = serde_json::from_str(line).expect("busctl JSON");
            for map in doc["data"].as_array().into_iter().flatten() {
                for (k, v) in map.as_object().into_iter().flatten() {
                    if let Some(x) = v["type"].as_str().and_then(|t| from_busctl(t, &v["data"])) {
                        all.insert(k.clone(), x);
                    }
                }
            }
        }
        all
    }

    fn v<'a>(x: impl Into<Value<'a>>) -> OwnedValue {
        OwnedValue::try_from(x.into()).unwrap()
    }

    /// The real path end to end on what systemd 252 answered in the appliance VM: the `GetAll` answers of the
    /// `Unit` and `Service` interfaces of the missing-executable fault (recorded with busctl) through
    /// [`from_props`], and the journal the guest printed for it, through the rules.
    #[test]
    fn recorded_dbus_properties_and_journal_reach_the_rules() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(dir.join("tests/fixtures/getall-missing-exec.json")).unwrap();
        let u = from_props("cacheos-fault-exec.service", &recorded_props(&text));
        assert_eq!(u.id, "cacheos-fault-exec.service");
        assert_eq!((u.load_state.as_str(), u.active_state.as_str()), ("loaded", "failed"));
        assert_eq!(u.result, "exit-code");
        assert_eq!((u.exec_main_code, u.exec_main_status), (1, 203));
        assert!(u.requires.contains(&"sysinit.target".to_owned()), "{:?}", u.requires);
        assert!(u.state_change_ms > 1_700_000_000_000);
        let journal =
            std::fs::read_to_string(dir.join("../core/tests/fixtures/diagnose/recorded-252-missing-exec/journal.json"))
                .unwrap();
        let (entries, bad) = cacheos_core::diagnose::JournalEntry::parse_all(&journal);
        assert_eq!(bad, 0);
        let f = cacheos_core::diagnose::rules::diagnose_unit(&u, &entries, None);
        assert_eq!(f.cause, cacheos_core::diagnose::CauseClass::MissingExecutable, "{f:#?}");
        assert_eq!(f.subject.as_deref(), Some("/usr/bin/cacheos-does-not-exist"));
    }

    #[test]
    fn properties_map_onto_unit_properties() {
        let mut p = HashMap::new();
        p.insert("Id".to_owned(), v("a.service"));
        p.insert("LoadState".to_owned(), v("bad-setting"));
        p.insert(
            "LoadError".to_owned(),
            v(Value::from(zbus::zvariant::Structure::from((
                "org.freedesktop.systemd1.BadUnitSetting",
                "Unit a.service has a bad unit file setting.",
            )))),
        );
        p.insert("ActiveState".to_owned(), v("failed"));
        p.insert("Result".to_owned(), v("exit-code"));
        p.insert("ExecMainCode".to_owned(), v(1i32));
        p.insert("ExecMainStatus".to_owned(), v(203i32));
        p.insert("NRestarts".to_owned(), v(2u32));
        p.insert("MemoryMax".to_owned(), v(u64::MAX));
        p.insert("Requires".to_owned(), v(vec!["b.service".to_owned()]));
        p.insert("BindsTo".to_owned(), v(vec!["c.mount".to_owned()]));
        p.insert("StateChangeTimestamp".to_owned(), v(1_700_000_000_000_000u64));
        let u = from_props("a.service", &p);
        assert_eq!(
            u.load_error.as_deref(),
            Some("Unit a.service has a bad unit file setting.")
        );
        assert_eq!((u.exec_main_code, u.exec_main_status, u.n_restarts), (1, 203, 2));
        assert_eq!(u.memory_max, None, "infinity is no limit");
        assert_eq!(u.requires, vec!["b.service", "c.mount"]);
        assert_eq!(u.state_change_ms, 1_700_000_000_000);
        assert!(u.is_failed());
    }
}
