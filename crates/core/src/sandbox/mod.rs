//! Sandboxes (systemd-nspawn containers): plain types, validation, the narrow synchronous traits behind every
//! sandbox side effect ([`RootPreparer`], [`ContainerRunner`]), their typed errors, the [`SandboxManager`] that plans
//! lifecycles over them and the store, and recording fakes in [`fake`].
//!
//! The real implementations live in `cacheos-sys` (`cacheos_sys::sandbox`). The manager never learns how a container
//! is run (transient systemd unit or a directly spawned nspawn) nor how a root is assembled (overlay mount, nspawn's
//! volatile modes): it only asks for a root by sandbox name, starts a container on it, and releases both by name, so
//! that a restarted daemon can release what a killed one acquired.

use std::fmt;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

mod manager;

pub mod fake;
pub mod ops;

pub use manager::{
    drives_bound_by_active_sandboxes, record_uses_drive, ManagerConfig, ReconcileReport, SandboxError,
    SandboxErrorKind, SandboxManager, SandboxRecord, RECORD_KIND,
};

/// Longest sandbox name (it becomes a machine name, a unit name and a directory name).
pub const NAME_MAX: usize = 32;
/// CPU quota range, in cores.
pub const CPU_MIN: f64 = 0.01;
/// CPU quota range, in cores.
pub const CPU_MAX: f64 = 64.0;
/// Memory limit range, in bytes (32 MiB).
pub const MEMORY_MIN: u64 = 32 << 20;
/// Memory limit range, in bytes (1 TiB).
pub const MEMORY_MAX: u64 = 1 << 40;
/// Task limit range.
pub const TASKS_MIN: u64 = 8;
/// Task limit range.
pub const TASKS_MAX: u64 = 100_000;

/// Network of a sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Network {
    /// Only a loopback interface (nspawn `--private-network`).
    #[default]
    None,
    /// A veth pair to the appliance, which hands out an address and masquerades (`--network-veth`).
    Nat,
}

impl Network {
    /// The serde (kebab-case) name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Nat => "nat",
        }
    }
}

/// A drive's mount bound into a sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Bind {
    /// The attached drive's name (what the drive manager checks before detaching).
    pub drive: String,
    /// Where the drive is mounted on the appliance, resolved by the caller.
    #[schema(value_type = String)]
    pub source: PathBuf,
    /// Where it appears inside the sandbox (absolute).
    #[schema(value_type = String)]
    pub target: PathBuf,
    /// Writable inside the sandbox; read-only by default.
    #[serde(default)]
    pub read_write: bool,
}

/// Resource limits; `None` leaves a limit unset.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize, ToSchema)]
pub struct Limits {
    /// CPU quota as a fraction of cores (0.5 = half a core, 2 = two cores).
    #[serde(default)]
    pub cpu: Option<f64>,
    /// Memory limit in bytes (`MemoryMax=`).
    #[serde(default)]
    pub memory_max: Option<u64>,
    /// Maximum number of tasks (processes and threads; `TasksMax=`).
    #[serde(default)]
    pub tasks_max: Option<u64>,
}

/// What to create.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SandboxSpec {
    /// Lowercase letters, digits and dashes, starting with a letter, at most [`NAME_MAX`] characters.
    pub name: String,
    /// Name of a [`Template`].
    pub template: String,
    #[serde(default, flatten)]
    pub limits: Limits,
    #[serde(default)]
    pub network: Network,
    #[serde(default)]
    pub binds: Vec<Bind>,
    /// Environment of the sandbox's main command and of every exec, as name/value pairs.
    #[serde(default)]
    #[schema(value_type = Vec<Vec<String>>)]
    pub env: Vec<(String, String)>,
    /// Gone at stop: its record and writable data are removed when it stops.
    #[serde(default)]
    pub ephemeral: bool,
}

impl SandboxSpec {
    /// A spec with defaults: no limits, no network, no binds, persistent.
    pub fn new(name: impl Into<String>, template: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            template: template.into(),
            limits: Limits::default(),
            network: Network::None,
            binds: Vec::new(),
            env: Vec::new(),
            ephemeral: false,
        }
    }
}

/// Lifecycle state of a sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SandboxState {
    /// Recorded, never started (or a start was refused before anything was acquired).
    Created,
    /// A start is in progress (recorded before anything is acquired).
    Starting,
    /// The container runs.
    Running,
    /// A stop is in progress.
    Stopping,
    /// Not running; the writable data of a persistent sandbox is kept.
    Stopped,
    /// The last start failed; everything it acquired was released.
    Failed,
}

impl SandboxState {
    /// The serde (kebab-case) name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Stopping => "stopping",
            Self::Stopped => "stopped",
            Self::Failed => "failed",
        }
    }

    /// Whether a container may exist in this state (so binds are in use and the sandbox needs a stop).
    pub fn is_active(self) -> bool {
        matches!(self, Self::Starting | Self::Running | Self::Stopping)
    }
}

impl fmt::Display for SandboxState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a template's root comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TemplateKind {
    /// The appliance's own `/usr`, read-only, under a fresh writable root.
    Host,
    /// An OS tree in a directory (for example on an attached drive), read-only under a writable overlay.
    Directory,
    /// A disk image with an OS, read-only under a volatile overlay (ephemeral sandboxes only).
    Image,
    /// A compressed file system image (squashfs or erofs) holding an OS tree, such as the `debian` template the
    /// appliance ships: mounted read-only for each running sandbox and used like a directory template, under a
    /// writable overlay (persistent and ephemeral sandboxes).
    FsImage,
}

/// A named source of sandbox roots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Template {
    pub name: String,
    pub kind: TemplateKind,
    /// `/` for the host template, the tree or the image file otherwise.
    #[schema(value_type = String)]
    pub path: PathBuf,
    pub description: String,
    /// The container's main command; `None` boots the tree's init (nspawn `--boot`).
    #[serde(default)]
    pub command: Option<Vec<String>>,
}

/// What [`SandboxManager::info`] and [`SandboxManager::list`] report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SandboxInfo {
    pub name: String,
    pub state: SandboxState,
    pub template: String,
    pub ephemeral: bool,
    pub network: Network,
    pub limits: Limits,
    pub binds: Vec<Bind>,
    /// Who created it (a principal's display name).
    pub created_by: String,
    /// When, in milliseconds since the Unix epoch.
    pub created_ms: u64,
    /// Seconds since the container started, while running.
    pub uptime_seconds: Option<u64>,
    /// The container's init process as the appliance sees it, while running.
    pub main_pid: Option<u32>,
    /// The systemd unit (or, without systemd, the nspawn process label) running it.
    pub unit: Option<String>,
    /// IPv4 address inside the sandbox, when networked and running.
    pub ip: Option<String>,
    /// CPU time used, in nanoseconds, while running and when measurable.
    pub cpu_time_ns: Option<u64>,
    pub memory_current: Option<u64>,
    pub memory_peak: Option<u64>,
    pub tasks_current: Option<u64>,
    /// Why the last start or stop failed.
    pub last_error: Option<String>,
    /// Exposed ports, their URLs and services kept running (issue 15; `sandbox.info` only, when there are any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software: Option<crate::software::expose::SandboxNetworkInfo>,
}

/// A root file system prepared for one sandbox, as nspawn gets it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreparedRoot {
    /// nspawn `--directory=` or `--image=`.
    pub source: RootSource,
    /// nspawn `--volatile=`.
    pub volatile: Volatile,
    /// Extra writable binds the preparer provides (for example persistent data of a host-template sandbox).
    pub binds: Vec<Bind>,
}

/// What nspawn boots from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RootSource {
    Directory(PathBuf),
    Image(PathBuf),
}

/// nspawn's volatile mode for a root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Volatile {
    /// The root as given (an overlay the preparer mounted, or a plain tree).
    No,
    /// A tmpfs root with only the tree's `/usr`, read-only (`--volatile=yes`).
    Yes,
    /// The tree read-only under a tmpfs overlay (`--volatile=overlay`).
    Overlay,
}

/// Errors of [`RootPreparer`].
#[derive(Debug, thiserror::Error)]
pub enum RootError {
    #[error("cannot create {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("template root {path} does not exist or is not a {kind}")]
    BadTemplate { path: PathBuf, kind: &'static str },
    #[error("cannot mount the overlay root at {target}")]
    Mount {
        target: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot unmount {target}")]
    Unmount {
        target: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot remove {path}")]
    Remove {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot list {path}")]
    List {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Assembles and releases sandbox roots. Everything is keyed by sandbox name, so a release needs no handle and is
/// idempotent: releasing a name with nothing prepared succeeds.
pub trait RootPreparer: Send + Sync {
    /// Prepares the root for a start: the runtime part (overlay mount, ephemeral upper layer) and, the first time,
    /// the persistent writable data of a non-ephemeral sandbox. On error nothing new is left behind.
    fn prepare(&self, name: &str, template: &Template, ephemeral: bool) -> Result<PreparedRoot, RootError>;
    /// Releases the runtime part (unmounts, removes the runtime directory); persistent data stays.
    fn release(&self, name: &str) -> Result<(), RootError>;
    /// Removes the persistent writable data too (after [`RootPreparer::release`]).
    fn remove_data(&self, name: &str) -> Result<(), RootError>;
    /// Names that have a runtime part prepared (for reconcile).
    fn prepared(&self) -> Result<Vec<String>, RootError>;
}

/// Everything the runner needs to start one container.
#[derive(Debug, Clone, PartialEq)]
pub struct StartRequest {
    pub name: String,
    pub root: PreparedRoot,
    pub limits: Limits,
    pub network: Network,
    /// The spec's binds followed by the root's own.
    pub binds: Vec<Bind>,
    pub env: Vec<(String, String)>,
    /// The main command; `None` boots the tree's init.
    pub command: Option<Vec<String>>,
}

/// A started container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerHandle {
    pub name: String,
    /// The systemd unit, or `nspawn:<pid>` for a directly spawned nspawn.
    pub unit: String,
    /// The container's init (PID 1 inside), as the appliance sees it.
    pub leader: u32,
}

/// A container the runner finds running.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunningContainer {
    pub name: String,
    pub leader: u32,
    /// Seconds since the Unix epoch when it started, when known.
    pub started_ms: Option<u64>,
}

/// How a stop went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StopOutcome {
    /// It exited within the timeout.
    Graceful,
    /// It was killed after the timeout.
    Killed,
    /// Nothing was running.
    NotRunning,
}

/// A piece of output of an exec'd command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputChunk {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
}

/// How an exec'd command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ExecOutcome {
    /// The exit code; 128 + n when killed by signal n; 127 when the command was not found inside.
    pub exit_code: i32,
    /// Whether the time limit was reached (the command was then killed).
    pub timed_out: bool,
}

/// Resource use read from a container's cgroup.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ContainerStats {
    pub cpu_time_ns: Option<u64>,
    pub memory_current: Option<u64>,
    pub memory_peak: Option<u64>,
    pub tasks_current: Option<u64>,
    /// The limits as enforced (read back), for checks.
    pub memory_max: Option<u64>,
    pub tasks_max: Option<u64>,
    pub ip: Option<String>,
}

/// Errors of [`ContainerRunner`].
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("cannot run {program} for sandbox {name}")]
    Spawn {
        name: String,
        program: String,
        #[source]
        source: io::Error,
    },
    #[error("sandbox {name} failed to start: {message}")]
    Start { name: String, message: String },
    #[error("sandbox {name} did not come up within {seconds} s")]
    StartTimeout { name: String, seconds: u64 },
    #[error("sandbox {name} is not running")]
    NotRunning { name: String },
    #[error("sandbox {name} is already running")]
    AlreadyRunning { name: String },
    #[error("cannot stop sandbox {name}")]
    Stop {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot set up the cgroup of sandbox {name} at {path}")]
    Cgroup {
        name: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("exec in sandbox {name} failed")]
    Exec {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot copy {from} to {to} for sandbox {name}")]
    Copy {
        name: String,
        from: PathBuf,
        to: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot open a shell in sandbox {name}")]
    Shell {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot read the state of sandbox {name}")]
    Status {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot list running sandboxes")]
    List {
        #[source]
        source: io::Error,
    },
}

/// One command to run inside a running container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecSpec {
    /// argv; `argv[0]` is looked up in the container's `PATH`.
    pub argv: Vec<String>,
    /// Extra environment on top of the sandbox's own.
    pub env: Vec<(String, String)>,
    /// Working directory inside; `/` when `None`.
    pub cwd: Option<PathBuf>,
    /// Killed (and [`ExecOutcome::timed_out`] set) after this long.
    pub time_limit: Option<Duration>,
}

/// Where templates beyond the fixed ones come from (for example the templates directories); asked on every lookup,
/// so templates added or removed while the daemon runs are seen. An implementation caches what is costly to find.
pub trait TemplateSource: Send + Sync {
    /// The templates it offers now.
    fn templates(&self) -> Vec<Template>;
    /// The names of those templates, as cheaply as the source can tell them (for the chat's context, asked for every
    /// message); by default those of [`TemplateSource::templates`].
    fn names(&self) -> Vec<String> {
        self.templates().into_iter().map(|t| t.name).collect()
    }
    /// A template that is not listed but can be made on demand from its name (for example `drive:NAME/PATH`, an OS
    /// tree or image on an attached drive): `None` when the name is not this source's, else the template or why
    /// it cannot be used.
    fn resolve(&self, _name: &str) -> Option<Result<Template, String>> {
        None
    }
}

/// The prefix of templates on attached drives: `drive:NAME` (the drive's first mounted file system as an OS tree)
/// or `drive:NAME/PATH` (a tree or image below it).
pub const DRIVE_TEMPLATE_PREFIX: &str = "drive:";

/// The drive a `drive:NAME[/PATH]` template name refers to.
pub fn template_drive(template: &str) -> Option<&str> {
    let rest = template.strip_prefix(DRIVE_TEMPLATE_PREFIX)?;
    Some(rest.split('/').next().unwrap_or(rest))
}

/// Runs containers. Every method is keyed by sandbox name; the runner finds a running container by name alone (from
/// systemd or the process table), so nothing of a handle must survive a daemon restart.
pub trait ContainerRunner: Send + Sync {
    /// Starts a container and returns once its init runs. On error nothing is left running.
    fn start(&self, request: &StartRequest) -> Result<ContainerHandle, RunnerError>;
    /// Asks the container to stop, waits up to `timeout`, then kills it. Not running is not an error.
    fn stop(&self, name: &str, timeout: Duration) -> Result<StopOutcome, RunnerError>;
    /// The container of `name`, if it runs.
    fn status(&self, name: &str) -> Result<Option<RunningContainer>, RunnerError>;
    /// Every container this runner started that still runs (for reconcile).
    fn running(&self) -> Result<Vec<RunningContainer>, RunnerError>;
    /// Runs argv inside the running container, streaming its output to `sink`, and returns how it ended. A command
    /// that is not found inside ends with exit code 127 (not an error).
    fn exec(
        &self,
        name: &str,
        env: &[(String, String)],
        spec: &ExecSpec,
        stdin: Option<&mut (dyn Read + Send)>,
        sink: &mut dyn FnMut(OutputChunk),
    ) -> Result<ExecOutcome, RunnerError>;
    /// Resource use from the container's cgroup.
    fn stats(&self, name: &str) -> Result<ContainerStats, RunnerError>;
    /// The last `lines` lines of the container's console/journal output (running or not, while kept).
    fn logs(&self, name: &str, lines: usize) -> Result<Vec<String>, RunnerError>;
    /// Writes the bytes of `source` as a regular file at `inside_target` in the running container (owned by the
    /// container's root, mode 0644; the path is resolved inside the container's root). Returns the bytes written.
    fn copy_in(&self, name: &str, source: &mut dyn Read, inside_target: &Path) -> Result<u64, RunnerError>;
    /// Streams the regular file `inside_source` of the running container into `sink`. Returns the bytes copied.
    fn copy_out(&self, name: &str, inside_source: &Path, sink: &mut dyn Write) -> Result<u64, RunnerError>;
    /// Starts an interactive login shell (`bash`, else `sh`) as root inside the running container on a new
    /// pseudo-terminal with `TERM=term`, and returns the terminal's controller side. The shell ends when the
    /// controller side is closed (hang-up); the runner reaps it.
    fn shell(&self, name: &str, env: &[(String, String)], term: &str) -> Result<OwnedFd, RunnerError>;
    /// Forgets what the runner kept of a stopped container (its log, cgroup directories).
    fn forget(&self, name: &str) -> Result<(), RunnerError>;
}

/// Why a field is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {reason}")]
pub struct FieldError {
    pub field: &'static str,
    pub reason: String,
}

fn field(field: &'static str, reason: impl Into<String>) -> FieldError {
    FieldError {
        field,
        reason: reason.into(),
    }
}

/// Checks a sandbox name: lowercase letters, digits and dashes, starting with a letter, at most [`NAME_MAX`].
pub fn validate_name(name: &str) -> Result<(), FieldError> {
    if name.is_empty() {
        return Err(field("name", "must not be empty"));
    }
    if name.len() > NAME_MAX {
        return Err(field("name", format!("{name:?} is longer than {NAME_MAX} characters")));
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(field("name", format!("{name:?} must start with a lowercase letter")));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(field(
            "name",
            format!("{name:?} contains {c:?}; only lowercase letters, digits and dashes are allowed"),
        ));
    }
    Ok(())
}

/// Checks the limits against [`CPU_MIN`]..=[`CPU_MAX`], [`MEMORY_MIN`]..=[`MEMORY_MAX`], [`TASKS_MIN`]..=[`TASKS_MAX`].
pub fn validate_limits(limits: &Limits) -> Result<(), FieldError> {
    if let Some(cpu) = limits.cpu {
        if !cpu.is_finite() || !(CPU_MIN..=CPU_MAX).contains(&cpu) {
            return Err(field("cpu", format!("{cpu} is outside {CPU_MIN}..={CPU_MAX} cores")));
        }
    }
    if let Some(m) = limits.memory_max {
        if !(MEMORY_MIN..=MEMORY_MAX).contains(&m) {
            return Err(field(
                "memory_max",
                format!("{m} bytes is outside {MEMORY_MIN}..={MEMORY_MAX} (32 MiB..=1 TiB)"),
            ));
        }
    }
    if let Some(t) = limits.tasks_max {
        if !(TASKS_MIN..=TASKS_MAX).contains(&t) {
            return Err(field("tasks_max", format!("{t} is outside {TASKS_MIN}..={TASKS_MAX}")));
        }
    }
    Ok(())
}

fn is_clean_absolute(path: &Path) -> bool {
    path.is_absolute()
        && path
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
        && !path.as_os_str().as_encoded_bytes().contains(&b':')
}

/// Checks binds: a drive name, clean absolute paths (no `..`, no `:`, which nspawn's `--bind` syntax reserves), no
/// bind over `/` or the API file systems, no two binds at one target.
pub fn validate_binds(binds: &[Bind]) -> Result<(), FieldError> {
    let mut targets: Vec<&Path> = Vec::new();
    for b in binds {
        if b.drive.is_empty() {
            return Err(field("binds", "a bind names no drive"));
        }
        if !is_clean_absolute(&b.source) {
            return Err(field(
                "binds",
                format!(
                    "source {} of drive {} must be a clean absolute path",
                    b.source.display(),
                    b.drive
                ),
            ));
        }
        if !is_clean_absolute(&b.target) || b.target == Path::new("/") {
            return Err(field(
                "binds",
                format!(
                    "target {} of drive {} must be a clean absolute path below /",
                    b.target.display(),
                    b.drive
                ),
            ));
        }
        if ["/proc", "/sys", "/dev", "/run", "/usr"]
            .iter()
            .any(|p| b.target.starts_with(p))
        {
            return Err(field(
                "binds",
                format!("target {} of drive {} is reserved", b.target.display(), b.drive),
            ));
        }
        if targets.contains(&b.target.as_path()) {
            return Err(field("binds", format!("two binds target {}", b.target.display())));
        }
        targets.push(&b.target);
    }
    Ok(())
}

/// Checks environment names (`[A-Za-z_][A-Za-z0-9_]*`) and values (no NUL).
pub fn validate_env(env: &[(String, String)]) -> Result<(), FieldError> {
    for (k, v) in env {
        let ok = k.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok {
            return Err(field("env", format!("{k:?} is not a valid variable name")));
        }
        if v.contains('\0') {
            return Err(field("env", format!("the value of {k} contains a NUL byte")));
        }
    }
    Ok(())
}

/// Checks an exec argv: not empty, no NUL bytes.
pub fn validate_argv(argv: &[String]) -> Result<(), FieldError> {
    if argv.is_empty() || argv[0].is_empty() {
        return Err(field("argv", "no command given"));
    }
    if argv.iter().any(|a| a.contains('\0')) {
        return Err(field("argv", "an argument contains a NUL byte"));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
