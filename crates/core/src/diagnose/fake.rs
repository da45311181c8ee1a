//! Recording fakes of the diagnosis sources, and the loader of recorded fixtures (a directory with `units.show`:
//! `systemctl show` output of each unit, separated by blank lines; `journal.json`: `journalctl -o json` output;
//! optionally `memory.events` of the fixture's first unit).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use super::{
    DiagnoseError, JournalEntry, JournalQuery, JournalSource, MemoryEvents, UnitProperties, UnitSource, UnitSummary,
};

/// Units as a fake systemd knows them; records restarts.
#[derive(Debug, Default)]
pub struct FakeUnits {
    units: Mutex<BTreeMap<String, UnitProperties>>,
    memory: Mutex<BTreeMap<String, MemoryEvents>>,
    restarted: Mutex<Vec<String>>,
    no_systemd: bool,
}

impl FakeUnits {
    /// A fake whose every call fails as if systemd were not PID 1.
    pub fn without_systemd() -> Self {
        Self {
            no_systemd: true,
            ..Default::default()
        }
    }

    /// Adds (or replaces) a unit.
    pub fn add(&self, p: UnitProperties) {
        self.units.lock().unwrap().insert(p.id.clone(), p);
    }

    /// Sets a unit's cgroup memory counters.
    pub fn set_memory_events(&self, unit: &str, m: MemoryEvents) {
        self.memory.lock().unwrap().insert(unit.to_owned(), m);
    }

    /// The units restarted so far, in order.
    pub fn restarted(&self) -> Vec<String> {
        self.restarted.lock().unwrap().clone()
    }
}

impl UnitSource for FakeUnits {
    fn list(&self) -> Result<Vec<UnitSummary>, DiagnoseError> {
        if self.no_systemd {
            return Err(DiagnoseError::NoSystemd);
        }
        Ok(self
            .units
            .lock()
            .unwrap()
            .values()
            .map(|p| UnitSummary {
                name: p.id.clone(),
                description: p.description.clone(),
                load_state: p.load_state.clone(),
                active_state: p.active_state.clone(),
                sub_state: p.sub_state.clone(),
            })
            .collect())
    }

    fn properties(&self, unit: &str) -> Result<UnitProperties, DiagnoseError> {
        if self.no_systemd {
            return Err(DiagnoseError::NoSystemd);
        }
        Ok(self
            .units
            .lock()
            .unwrap()
            .get(unit)
            .cloned()
            .unwrap_or_else(|| UnitProperties {
                id: unit.to_owned(),
                load_state: "not-found".into(),
                active_state: "inactive".into(),
                sub_state: "dead".into(),
                result: "success".into(),
                ..Default::default()
            }))
    }

    fn memory_events(&self, unit: &UnitProperties) -> Option<MemoryEvents> {
        self.memory.lock().unwrap().get(&unit.id).copied()
    }

    fn restart(&self, unit: &str) -> Result<(), DiagnoseError> {
        if self.no_systemd {
            return Err(DiagnoseError::NoSystemd);
        }
        self.restarted.lock().unwrap().push(unit.to_owned());
        if let Some(p) = self.units.lock().unwrap().get_mut(unit) {
            p.active_state = "active".into();
            p.sub_state = "running".into();
            p.result = "success".into();
        }
        Ok(())
    }
}

/// A journal held in memory, filtered like `journalctl -u UNIT`.
#[derive(Debug, Default)]
pub struct FakeJournal {
    entries: Mutex<Vec<JournalEntry>>,
    queries: Mutex<Vec<(Option<String>, JournalQuery)>>,
}

impl FakeJournal {
    /// Appends entries (oldest first).
    pub fn extend(&self, es: impl IntoIterator<Item = JournalEntry>) {
        self.entries.lock().unwrap().extend(es);
    }

    /// The queries asked so far.
    pub fn queries(&self) -> Vec<(Option<String>, JournalQuery)> {
        self.queries.lock().unwrap().clone()
    }
}

impl JournalSource for FakeJournal {
    fn entries(&self, unit: Option<&str>, q: &JournalQuery) -> Result<Vec<JournalEntry>, DiagnoseError> {
        self.queries.lock().unwrap().push((unit.map(str::to_owned), q.clone()));
        let all = self.entries.lock().unwrap();
        let mut v: Vec<JournalEntry> = all
            .iter()
            .filter(|e| unit.is_none_or(|u| e.unit.as_deref() == Some(u)))
            .filter(|e| q.matches(e))
            .cloned()
            .collect();
        let limit = q.limit();
        if v.len() > limit {
            v.drain(..v.len() - limit);
        }
        Ok(v)
    }
}

/// A recorded fault: the units (first is the one the fault is about), the journal and the memory counters.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// Directory name.
    pub name: String,
    /// Units, the faulty one first.
    pub units: Vec<UnitProperties>,
    /// Journal entries, oldest first.
    pub journal: Vec<JournalEntry>,
    /// `memory.events` of the first unit.
    pub memory: Option<MemoryEvents>,
}

impl Fixture {
    /// Loads a fixture directory.
    pub fn load(dir: &Path) -> std::io::Result<Self> {
        let show = std::fs::read_to_string(dir.join("units.show"))?;
        let units = show
            .split("\n\n")
            .filter(|b| !b.trim().is_empty())
            .map(UnitProperties::from_systemctl_show)
            .collect();
        let (journal, bad) = JournalEntry::parse_all(&std::fs::read_to_string(dir.join("journal.json"))?);
        if bad > 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {bad} journal lines are not entries", dir.display()),
            ));
        }
        let memory = std::fs::read_to_string(dir.join("memory.events"))
            .ok()
            .map(|t| MemoryEvents::parse(&t));
        Ok(Self {
            name: dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            units,
            journal,
            memory,
        })
    }

    /// Fakes loaded with this fixture.
    pub fn fakes(&self) -> (FakeUnits, FakeJournal) {
        let units = FakeUnits::default();
        for u in &self.units {
            units.add(u.clone());
        }
        if let (Some(m), Some(u)) = (self.memory, self.units.first()) {
            units.set_memory_events(&u.id, m);
        }
        let journal = FakeJournal::default();
        journal.extend(self.journal.iter().cloned());
        (units, journal)
    }
}

/// The directory of the recorded fixtures in the source tree.
pub fn fixtures_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/diagnose")
}
