//! Monitoring and error diagnosis (`system.diagnose`, `journal.query`, `service.list`, `service.restart`).
//!
//! Fixed rules find the fault from systemd's own facts — unit properties ([`UnitSource`]: `LoadState`, `Result`,
//! `ExecMainCode`/`ExecMainStatus`, `NRestarts`, the dependency chain, cgroup `memory.events`) and journal entries
//! ([`JournalSource`], by `MESSAGE_ID` and by the unit's own messages) — and name a cause class, the evidence (journal
//! lines with time and cursor, repeats folded) and a fix: an operation plan where one exists, otherwise a concrete
//! instruction. A language model, when one is configured, may only explain a [`Finding`]; it never finds one.
//! The real sources live in `cacheos-sys` (systemd over D-Bus, `journalctl -o json`); [`fake`] has recording fakes
//! that load the recorded fixtures under `crates/core/tests/fixtures/diagnose/`.

pub mod fake;
pub mod journal;
pub mod metrics;
pub mod rules;
pub mod watch;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use journal::{Evidence, JournalEntry, JournalQuery};
pub use rules::{exit_status_name, signal_name};

/// A unit's properties as systemd reports them (`org.freedesktop.systemd1.Unit` and `.Service`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UnitProperties {
    /// `Id`, e.g. `nginx.service`.
    pub id: String,
    /// `Description`.
    pub description: String,
    /// `LoadState`: loaded, not-found, bad-setting, error, masked.
    pub load_state: String,
    /// `LoadError`'s message (`(name, message)` on D-Bus), when loading failed.
    pub load_error: Option<String>,
    /// `ActiveState`: active, reloading, inactive, failed, activating, deactivating.
    pub active_state: String,
    /// `SubState`.
    pub sub_state: String,
    /// `Result` (services, mounts, sockets …): success, exit-code, signal, core-dump, timeout, watchdog,
    /// start-limit-hit, resources, oom-kill, protocol.
    pub result: String,
    /// `ExecMainCode`: 0 none, 1 exited, 2 killed, 3 dumped (`CLD_*`).
    pub exec_main_code: i32,
    /// `ExecMainStatus`: the exit status or signal number.
    pub exec_main_status: i32,
    /// `NRestarts`.
    pub n_restarts: u32,
    /// `Requires` + `BindsTo` + `Requisite`: units whose failure stops this one.
    pub requires: Vec<String>,
    /// `After`.
    pub after: Vec<String>,
    /// `TriggeredBy`: the socket (or path, timer) units that start this one on demand.
    #[serde(default)]
    pub triggered_by: Vec<String>,
    /// `FragmentPath` (empty for transient units without one).
    pub fragment_path: String,
    /// `MemoryMax` in bytes, when limited.
    pub memory_max: Option<u64>,
    /// `ControlGroup`, e.g. `/system.slice/nginx.service` (empty when the unit has no cgroup now).
    pub control_group: String,
    /// `What` of a mount unit.
    pub what: String,
    /// `Where` of a mount unit.
    pub mount_where: String,
    /// `StateChangeTimestamp` (ms since the Unix epoch), 0 when unknown.
    pub state_change_ms: u64,
}

impl UnitProperties {
    /// Parses `systemctl show UNIT` output (`Key=Value` lines), the format the recorded fixtures use.
    pub fn from_systemctl_show(text: &str) -> Self {
        let mut p = Self::default();
        let list = |v: &str| v.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
        for line in text.lines() {
            let Some((k, v)) = line.split_once('=') else { continue };
            match k {
                "Id" => p.id = v.into(),
                "Description" => p.description = v.into(),
                "LoadState" => p.load_state = v.into(),
                "LoadError" => {
                    // `systemctl show` prints `LoadError=org.freedesktop.systemd1.X "message"`.
                    let msg = v.split_once(' ').map_or("", |(_, m)| m).trim_matches('"');
                    p.load_error = (!msg.is_empty()).then(|| msg.to_owned());
                }
                "ActiveState" => p.active_state = v.into(),
                "SubState" => p.sub_state = v.into(),
                "Result" => p.result = v.into(),
                "ExecMainCode" => p.exec_main_code = v.parse().unwrap_or(0),
                "ExecMainStatus" => p.exec_main_status = v.parse().unwrap_or(0),
                "NRestarts" => p.n_restarts = v.parse().unwrap_or(0),
                "Requires" | "BindsTo" | "Requisite" => p.requires.extend(list(v)),
                "After" => p.after = list(v),
                "TriggeredBy" => p.triggered_by = list(v),
                "FragmentPath" => p.fragment_path = v.into(),
                "MemoryMax" => p.memory_max = v.parse().ok(),
                "ControlGroup" => p.control_group = v.into(),
                "What" => p.what = v.into(),
                "Where" => p.mount_where = v.into(),
                _ => {}
            }
        }
        p
    }

    /// The unit type: the suffix after the last dot (`service`, `mount`, `socket` …).
    pub fn unit_type(&self) -> &str {
        self.id.rsplit_once('.').map_or("", |(_, t)| t)
    }

    /// Whether systemd considers the unit failed.
    pub fn is_failed(&self) -> bool {
        self.active_state == "failed"
    }
}

/// One line of `service.list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UnitSummary {
    /// Unit name.
    pub name: String,
    /// Description.
    pub description: String,
    /// `LoadState`.
    pub load_state: String,
    /// `ActiveState`.
    pub active_state: String,
    /// `SubState`.
    pub sub_state: String,
}

/// Counters of a cgroup's `memory.events`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MemoryEvents {
    /// Times usage hit `memory.high`.
    pub high: u64,
    /// Times usage hit `memory.max`.
    pub max: u64,
    /// Times the OOM condition was reached.
    pub oom: u64,
    /// Processes killed by the OOM killer.
    pub oom_kill: u64,
}

impl MemoryEvents {
    /// Parses the `memory.events` file.
    pub fn parse(text: &str) -> Self {
        let mut m = Self::default();
        for line in text.lines() {
            let mut it = line.split_whitespace();
            let (Some(k), Some(v)) = (it.next(), it.next().and_then(|v| v.parse().ok())) else {
                continue;
            };
            match k {
                "high" => m.high = v,
                "max" => m.max = v,
                "oom" => m.oom = v,
                "oom_kill" => m.oom_kill = v,
                _ => {}
            }
        }
        m
    }
}

/// Why a diagnosis source could not be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum DiagnoseError {
    /// systemd (the service manager) could not be asked.
    #[error("cannot ask systemd for {what}")]
    Systemd {
        /// What was asked (a unit, the unit list).
        what: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The journal could not be read.
    #[error("cannot read the journal")]
    Journal(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// There is no service manager on this machine (systemd is not PID 1).
    #[error("systemd is not running on this machine, so there are no units to diagnose")]
    NoSystemd,
    /// The unit is not known; `close` lists names that are.
    #[error("unit {name:?} not found{}", close_suffix(close))]
    UnknownUnit {
        /// The name asked for.
        name: String,
        /// Known names close to it.
        close: Vec<String>,
    },
}

fn close_suffix(close: &[String]) -> String {
    if close.is_empty() {
        String::new()
    } else {
        format!(" (did you mean {}?)", close.join(", "))
    }
}

/// Reads systemd's units and acts on them.
pub trait UnitSource: Send + Sync {
    /// The units systemd has loaded.
    fn list(&self) -> Result<Vec<UnitSummary>, DiagnoseError>;
    /// A unit's properties (systemd answers `LoadState=not-found` for names it cannot load).
    fn properties(&self, unit: &str) -> Result<UnitProperties, DiagnoseError>;
    /// The unit's cgroup `memory.events`, when it has a cgroup now.
    fn memory_events(&self, unit: &UnitProperties) -> Option<MemoryEvents>;
    /// Clears a failed state (`ResetFailedUnit`, so a unit that hit its start limit may start again) and restarts
    /// the unit (`RestartUnit`, mode `replace`), waiting for the job to finish.
    fn restart(&self, unit: &str) -> Result<(), DiagnoseError>;
}

/// Reads the journal of the current boot.
pub trait JournalSource: Send + Sync {
    /// Entries about `unit` (or all when `None`) matching `query`, oldest first, at most `query.limit()` — the
    /// newest ones.
    fn entries(&self, unit: Option<&str>, query: &JournalQuery) -> Result<Vec<JournalEntry>, DiagnoseError>;
}

/// The cause class of a finding: what kind of fault the rules found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CauseClass {
    /// The executable named in `ExecStart=` does not exist (203/EXEC, ENOENT).
    MissingExecutable,
    /// The unit file has a setting systemd refused (`LoadState=bad-setting`).
    BadSetting,
    /// The program could not open a file it needs (a configuration file, usually).
    MissingFile,
    /// The address or port the program wanted is held by another process.
    PortInUse,
    /// The kernel's OOM killer killed a process of the unit (its memory limit or the machine's memory).
    OutOfMemory,
    /// The program crashed with a core dump.
    CoreDump,
    /// A unit this one requires failed.
    DependencyFailed,
    /// A mount failed.
    MountFailed,
    /// Permission was denied (on the executable: 203/EXEC with EACCES; or a file the program needs).
    PermissionDenied,
    /// The unit was restarted too often and systemd gave up (`start-limit-hit`).
    RestartLoop,
    /// A sandbox's processes were killed by its memory limit (cgroup `memory.events` `oom_kill`).
    SandboxOutOfMemory,
    /// The program exited with a failure status and said nothing the rules recognise.
    ExitCode,
    /// The program was killed by a signal.
    Signal,
    /// Start or stop took longer than the unit allows.
    Timeout,
    /// The program stopped answering its watchdog.
    Watchdog,
    /// systemd could not set up the unit's resources.
    Resources,
    /// A file system is nearly full.
    DiskFull,
    /// The machine is short of memory.
    MemoryPressure,
    /// An internal task of cacheosd is restarting.
    TaskDegraded,
    /// A sandbox failed to start for a reason the rules do not recognise.
    SandboxFailed,
    /// Nothing is wrong.
    Healthy,
}

impl CauseClass {
    /// The serde (kebab-case) name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MissingExecutable => "missing-executable",
            Self::BadSetting => "bad-setting",
            Self::MissingFile => "missing-file",
            Self::PortInUse => "port-in-use",
            Self::OutOfMemory => "out-of-memory",
            Self::CoreDump => "core-dump",
            Self::DependencyFailed => "dependency-failed",
            Self::MountFailed => "mount-failed",
            Self::PermissionDenied => "permission-denied",
            Self::RestartLoop => "restart-loop",
            Self::SandboxOutOfMemory => "sandbox-out-of-memory",
            Self::ExitCode => "exit-code",
            Self::Signal => "signal",
            Self::Timeout => "timeout",
            Self::Watchdog => "watchdog",
            Self::Resources => "resources",
            Self::DiskFull => "disk-full",
            Self::MemoryPressure => "memory-pressure",
            Self::TaskDegraded => "task-degraded",
            Self::SandboxFailed => "sandbox-failed",
            Self::Healthy => "healthy",
        }
    }
}

/// What a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TargetKind {
    /// A systemd unit.
    Unit,
    /// A sandbox.
    Sandbox,
    /// A virtual drive.
    Drive,
    /// A mounted file system.
    FileSystem,
    /// The machine's memory.
    Memory,
    /// An internal task of cacheosd.
    Task,
}

/// An operation that fixes (or is the next step to fix) the fault, in the `{op, args}` form of [`crate::Operation`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FixPlan {
    /// Dotted operation name.
    pub op: String,
    /// Its arguments as REST takes them.
    #[schema(value_type = Object)]
    pub args: serde_json::Value,
}

impl FixPlan {
    /// The plan as an operation, to be confirmed and run like any other.
    pub fn operation(&self) -> Option<crate::Operation> {
        serde_json::from_value(serde_json::json!({"op": self.op, "args": self.args})).ok()
    }
}

/// How to fix a fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Fix {
    /// A concrete instruction in English (the chat renders its own German and English text from the cause class
    /// and `subject`).
    pub instruction: String,
    /// The operation to run, when one exists (confirmed like any other).
    pub plan: Option<FixPlan>,
}

/// One diagnosed fault (or a clean bill of health for a target).
/// (Schema name `DiagnosisFinding`: the licence scanner has a `Finding` too, issue 19.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = DiagnosisFinding)]
pub struct Finding {
    /// What kind of thing.
    pub target_kind: TargetKind,
    /// Its name (unit, sandbox, drive, mount point, task).
    pub target: String,
    /// The cause class.
    pub cause: CauseClass,
    /// The thing the cause names: the missing path, the port, the failed dependency, the signal, the mount
    /// point, the memory limit …
    pub subject: Option<String>,
    /// One line in English saying what happened.
    pub summary: String,
    /// The unit's state as systemd reports it, e.g. `failed (exit-code, 203/EXEC)`.
    pub state: Option<String>,
    /// Journal lines that show it, oldest first, repeats folded (at most [`Finding::MAX_EVIDENCE`]).
    pub evidence: Vec<Evidence>,
    /// How many journal entries were looked at for this finding (all of them are in `journal.query` with
    /// `unit`).
    pub entries_seen: u32,
    /// How to fix it.
    pub fix: Fix,
    /// The finding of the unit that caused this one (a failed dependency), when the rules followed the chain.
    #[schema(no_recursion)]
    pub because: Option<Box<Finding>>,
}

impl Finding {
    /// Most evidence lines a finding carries.
    pub const MAX_EVIDENCE: usize = 12;
}

/// The answer of `system.diagnose`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Diagnosis {
    /// What was asked about (`unit X`, `sandbox X`, `drive X`, or `everything`).
    pub scope: String,
    /// Faults found, most serious first (a targeted diagnosis of a healthy thing has one `healthy` finding).
    pub findings: Vec<Finding>,
    /// What was checked, in words (`12 failed units`, `sandboxes`, `file systems` …).
    pub checked: Vec<String>,
}

/// Arguments of `system.diagnose`: at most one target; none means "is anything wrong?".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DiagnoseArgs {
    /// A systemd unit (`nginx` means `nginx.service`).
    #[serde(default)]
    pub unit: Option<String>,
    /// A sandbox.
    #[serde(default)]
    pub sandbox: Option<String>,
    /// A virtual drive.
    #[serde(default)]
    pub drive: Option<String>,
}

/// Arguments of `service.restart`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceRef {
    /// Unit name (`nginx` means `nginx.service`).
    pub unit: String,
}

/// A unit of `service.list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ServiceInfo {
    /// Unit name.
    pub name: String,
    /// Description.
    pub description: String,
    /// `ActiveState`.
    pub active_state: String,
    /// `SubState`.
    pub sub_state: String,
    /// `LoadState`.
    pub load_state: String,
    /// Whether systemd considers it failed.
    pub failed: bool,
}

/// The answer of `journal.query`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JournalPage {
    /// Entries, oldest first.
    pub entries: Vec<JournalEntry>,
    /// The same entries folded (repeats as one line with a count).
    pub folded: Vec<Evidence>,
}

/// The unit name a user's word means: `nginx` → `nginx.service`; names with a known suffix stay.
pub fn unit_name(name: &str) -> String {
    const SUFFIXES: &[&str] = &[
        ".service",
        ".mount",
        ".socket",
        ".target",
        ".timer",
        ".path",
        ".slice",
        ".scope",
        ".device",
        ".swap",
        ".automount",
    ];
    let n = name.trim();
    if SUFFIXES.iter().any(|s| n.ends_with(s)) {
        n.to_owned()
    } else {
        format!("{n}.service")
    }
}

/// The unit that runs a sandbox in systemd mode.
pub fn sandbox_unit(name: &str) -> String {
    format!("cacheos-sandbox-{name}.service")
}

/// Damerau-free Levenshtein distance (names are short).
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Names among `known` close to `name` (by edit distance of the part before the suffix, or containing it), best
/// first, at most 3.
pub fn close_names(name: &str, known: &[String]) -> Vec<String> {
    let stem = |n: &str| n.rsplit_once('.').map_or(n, |(s, _)| s).to_owned();
    let want = stem(name);
    let mut scored: Vec<(usize, &String)> = known
        .iter()
        .filter_map(|k| {
            let s = stem(k);
            let d = distance(&want, &s);
            let limit = (want.chars().count() / 3).max(2);
            if d <= limit {
                Some((d, k))
            } else if want.len() >= 3 && s.contains(&want) {
                Some((limit + 1, k))
            } else {
                None
            }
        })
        .collect();
    scored.sort();
    scored.into_iter().take(3).map(|(_, k)| k.clone()).collect()
}

/// The diagnosis sources together: what the executor asks.
pub struct Diagnostics {
    units: Arc<dyn UnitSource>,
    journal: Arc<dyn JournalSource>,
}

impl std::fmt::Debug for Diagnostics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Diagnostics")
    }
}

/// Facts from the rest of the core that the everything-sweep also checks.
#[derive(Debug, Default)]
pub struct SweepFacts {
    /// The supervisor's tasks.
    pub tasks: Vec<crate::supervisor::TaskStatus>,
    /// The machine (disks, memory), when it could be read.
    pub status: Option<crate::system::SystemStatus>,
    /// Sandboxes.
    pub sandboxes: Vec<crate::sandbox::SandboxInfo>,
}

impl Diagnostics {
    /// Diagnostics over these sources.
    pub fn new(units: Arc<dyn UnitSource>, journal: Arc<dyn JournalSource>) -> Self {
        Self { units, journal }
    }

    /// The unit source.
    pub fn units(&self) -> &dyn UnitSource {
        &*self.units
    }

    /// A known unit's properties, or an error naming close known names.
    pub fn resolve(&self, name: &str) -> Result<UnitProperties, DiagnoseError> {
        let unit = unit_name(name);
        let props = self.units.properties(&unit)?;
        if props.load_state == "not-found" && !props.is_failed() {
            let known: Vec<String> = self.units.list()?.into_iter().map(|u| u.name).collect();
            return Err(DiagnoseError::UnknownUnit {
                name: name.to_owned(),
                close: close_names(&unit, &known),
            });
        }
        Ok(props)
    }

    /// The entries the rules read for a unit: this boot's, every priority, the newest 2000.
    fn unit_entries(&self, unit: &str) -> Result<Vec<JournalEntry>, DiagnoseError> {
        self.journal.entries(
            Some(unit),
            &JournalQuery {
                limit: Some(2000),
                ..Default::default()
            },
        )
    }

    /// Diagnoses one unit, following a failed dependency one level down the chain (and further while it names
    /// another failed one, at most 4 levels).
    pub fn unit(&self, name: &str) -> Result<Finding, DiagnoseError> {
        let props = self.resolve(name)?;
        self.unit_props(props, 0)
    }

    fn unit_props(&self, props: UnitProperties, depth: usize) -> Result<Finding, DiagnoseError> {
        let entries = self.unit_entries(&props.id)?;
        let mem = self.units.memory_events(&props);
        let mut f = rules::diagnose_unit(&props, &entries, mem);
        if f.cause == CauseClass::DependencyFailed && depth < 4 {
            let failed_dep = props
                .requires
                .iter()
                .filter_map(|d| self.units.properties(d).ok())
                .find(|d| d.is_failed() || matches!(d.load_state.as_str(), "bad-setting" | "error" | "masked"));
            if let Some(dep) = failed_dep {
                f.subject = Some(dep.id.clone());
                f.summary = format!("{} did not start because {} failed", props.id, dep.id);
                f.fix.instruction = format!("fix {} first (see below), then start {} again", dep.id, props.id);
                f.because = Some(Box::new(self.unit_props(dep, depth + 1)?));
            }
        }
        // A socket-activated service is not failed itself when its socket could not listen (port in use, bad
        // address): it is just never started. Name the socket and diagnose it.
        if f.cause == CauseClass::Healthy && depth < 4 && props.unit_type() == "service" {
            let failed_socket = props
                .triggered_by
                .iter()
                .filter(|t| t.ends_with(".socket"))
                .filter_map(|t| self.units.properties(t).ok())
                .find(|s| s.is_failed());
            if let Some(sock) = failed_socket {
                let inner = self.unit_props(sock.clone(), depth + 1)?;
                f.cause = CauseClass::DependencyFailed;
                f.subject = Some(sock.id.clone());
                f.summary = format!(
                    "{} is not running: it is started by {}, which failed ({})",
                    props.id,
                    sock.id,
                    inner.cause.as_str()
                );
                f.fix.instruction = format!("fix {} first (see below); it starts {} on demand", sock.id, props.id);
                f.fix.plan = inner.fix.plan.clone();
                f.evidence = inner.evidence.clone();
                f.because = Some(Box::new(inner));
            }
        }
        Ok(f)
    }

    /// Diagnoses a sandbox: its unit (when systemd runs it) and its cgroup's `memory.events`.
    pub fn sandbox(&self, info: &crate::sandbox::SandboxInfo) -> Result<Finding, DiagnoseError> {
        let unit = info
            .unit
            .clone()
            .filter(|u| u.ends_with(".service"))
            .unwrap_or_else(|| sandbox_unit(&info.name));
        // Sandbox units are collected once they stop (`--collect`); their journal stays.
        let props = self
            .units
            .properties(&unit)
            .ok()
            .filter(|p| p.load_state != "not-found");
        let entries = self.unit_entries(&unit)?;
        let mem = props.as_ref().and_then(|p| self.units.memory_events(p));
        Ok(rules::diagnose_sandbox(info, props.as_ref(), &entries, mem))
    }

    /// Everything that is wrong: failed units, failed or OOM-killed sandboxes, restarting supervisor tasks, nearly
    /// full file systems and memory pressure.
    pub fn sweep(&self, facts: &SweepFacts) -> Result<Diagnosis, DiagnoseError> {
        let mut findings = Vec::new();
        let mut checked = Vec::new();
        match self.units.list() {
            Ok(units) => {
                let failed: Vec<_> = units.iter().filter(|u| u.active_state == "failed").collect();
                checked.push(format!("{} units ({} failed)", units.len(), failed.len()));
                for u in failed {
                    if u.name.starts_with("cacheos-sandbox-") {
                        continue; // reported with its sandbox below
                    }
                    let props = self.units.properties(&u.name)?;
                    findings.push(self.unit_props(props, 0)?);
                }
            }
            Err(DiagnoseError::NoSystemd) => checked.push("no systemd units (systemd is not PID 1)".into()),
            Err(e) => return Err(e),
        }
        checked.push(format!("{} sandboxes", facts.sandboxes.len()));
        for s in &facts.sandboxes {
            let f = self.sandbox(s)?;
            if f.cause != CauseClass::Healthy {
                findings.push(f);
            }
        }
        checked.push(format!("{} internal tasks", facts.tasks.len()));
        findings.extend(rules::diagnose_tasks(&facts.tasks));
        if let Some(st) = &facts.status {
            checked.push(format!("{} file systems and memory", st.disks.len()));
            findings.extend(rules::diagnose_resources(st));
        }
        Ok(Diagnosis {
            scope: "everything".into(),
            findings,
            checked,
        })
    }

    /// `journal.query` for a unit (already resolved) or for everything.
    pub fn journal(&self, unit: Option<&str>, q: &JournalQuery) -> Result<JournalPage, DiagnoseError> {
        let entries = self.journal.entries(unit, q)?;
        let refs: Vec<&JournalEntry> = entries.iter().collect();
        let folded = journal::fold(&refs);
        Ok(JournalPage { entries, folded })
    }

    /// `service.list`: services and mounts, failed ones first, then by name.
    pub fn services(&self) -> Result<Vec<ServiceInfo>, DiagnoseError> {
        let mut v: Vec<ServiceInfo> = self
            .units
            .list()?
            .into_iter()
            .filter(|u| u.active_state == "failed" || u.name.ends_with(".service") || u.name.ends_with(".mount"))
            .map(|u| ServiceInfo {
                failed: u.active_state == "failed",
                name: u.name,
                description: u.description,
                active_state: u.active_state,
                sub_state: u.sub_state,
                load_state: u.load_state,
            })
            .collect();
        v.sort_by(|a, b| b.failed.cmp(&a.failed).then_with(|| a.name.cmp(&b.name)));
        Ok(v)
    }

    /// `service.restart`: resolves the name, clears a failed state and restarts; answers the unit's state after.
    pub fn restart(&self, name: &str) -> Result<ServiceInfo, DiagnoseError> {
        let props = self.resolve(name)?;
        self.units.restart(&props.id)?;
        let after = self.units.properties(&props.id)?;
        Ok(ServiceInfo {
            failed: after.is_failed(),
            name: after.id,
            description: after.description,
            active_state: after.active_state,
            sub_state: after.sub_state,
            load_state: after.load_state,
        })
    }
}

#[cfg(test)]
mod tests;
