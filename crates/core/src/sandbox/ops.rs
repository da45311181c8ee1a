//! Arguments and results of the `sandbox.*` operations, as front ends send and receive them. Drive binds name a
//! drive; the executor resolves each to the drive's mount point before the [`super::SandboxManager`] sees it.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Limits, Network};

/// `sandbox.info`, `sandbox.start`, `sandbox.stop`, `sandbox.restart`: one sandbox by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SandboxRef {
    /// Sandbox name.
    pub name: String,
}

/// A drive to bind into a new sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BindArgs {
    /// Name of an attached drive with a mounted file system (its first mount is bound).
    pub drive: String,
    /// Writable inside the sandbox; read-only by default.
    #[serde(default)]
    pub read_write: bool,
    /// Where it appears inside (absolute); `/mnt/<drive>` by default.
    #[serde(default)]
    pub target: Option<String>,
}

impl BindArgs {
    /// The target inside the sandbox, defaulted.
    pub fn target_path(&self) -> String {
        self.target.clone().unwrap_or_else(|| format!("/mnt/{}", self.drive))
    }
}

/// `sandbox.create`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SandboxCreateArgs {
    /// Lowercase letters, digits and dashes, starting with a letter, at most 32 characters.
    pub name: String,
    /// Name of a template (`sandbox.templates`).
    pub template: String,
    /// Resource limits (`cpu`, `memory_max`, `tasks_max`).
    #[serde(default, flatten)]
    pub limits: Limits,
    /// `none` (loopback only, default) or `nat`.
    #[serde(default)]
    pub network: Network,
    /// Drives bound into the sandbox.
    #[serde(default)]
    pub binds: Vec<BindArgs>,
    /// Environment as name/value pairs.
    #[serde(default)]
    #[schema(value_type = Vec<Vec<String>>)]
    pub env: Vec<(String, String)>,
    /// Removed with its data when it stops.
    #[serde(default)]
    pub ephemeral: bool,
}

impl SandboxCreateArgs {
    /// Arguments with defaults: no limits, no network, no binds, persistent.
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

/// `sandbox.remove`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SandboxRemoveArgs {
    /// Sandbox name.
    pub name: String,
    /// Must be true: removing deletes the sandbox's writable data.
    #[serde(default)]
    pub confirm: bool,
}

/// `sandbox.exec`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SandboxExecArgs {
    /// Sandbox name.
    pub name: String,
    /// The command; `argv[0]` is looked up in the sandbox's `PATH`.
    #[schema(min_items = 1)]
    pub argv: Vec<String>,
    /// Kill the command after this many seconds.
    #[serde(default)]
    pub timeout_secs: Option<u64>,
}

/// `sandbox.logs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SandboxLogsArgs {
    /// Sandbox name.
    pub name: String,
    /// How many of the last lines; 200 by default.
    #[serde(default)]
    pub lines: Option<usize>,
}

/// What `sandbox.exec` returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ExecResult {
    /// The command's exit code (127: not found inside; 128 + n: killed by signal n).
    pub exit_code: i32,
    /// Whether the time limit killed it.
    pub timed_out: bool,
    /// Collected standard output (lossy UTF-8; empty when the output was streamed).
    pub stdout: String,
    /// Collected standard error (lossy UTF-8; empty when the output was streamed).
    pub stderr: String,
}

/// What `sandbox.logs` returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SandboxLogs {
    /// Sandbox name.
    pub name: String,
    /// The last lines of its console output, oldest first.
    pub lines: Vec<String>,
}

/// `sandbox.shell`: an interactive login shell as root in a running sandbox, on a pseudo-terminal whose controller
/// side goes to the caller (D-Bus passes it as a file descriptor; `cacheosctl sandbox shell NAME`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SandboxShellArgs {
    /// Sandbox name.
    pub name: String,
    /// The terminal type (`TERM`) of the caller's terminal; `vt220` by default.
    #[serde(default)]
    pub term: Option<String>,
}

/// `sandbox.copy-in` and `sandbox.copy-out`: a file (or, with `archive`, a directory as a tar stream) in a running
/// sandbox; the bytes travel as the operation's input or output stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SandboxCopyArgs {
    /// Sandbox name.
    pub name: String,
    /// Absolute path inside the sandbox (resolved inside its root).
    pub path: String,
    /// The stream is a tar archive of the directory `path` (packed and unpacked by the sandbox's own `tar`).
    #[serde(default)]
    pub archive: bool,
}

/// What `sandbox.copy-in` and `sandbox.copy-out` return.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Copied {
    /// Sandbox name.
    pub name: String,
    /// The path inside the sandbox.
    pub path: String,
    /// Bytes written (copy-in of a file) or sent (copy-out); 0 for an unpacked archive.
    pub bytes: u64,
    /// Whether the stream was a tar archive of a directory.
    pub archive: bool,
}

/// What `sandbox.shell` returns besides the terminal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ShellOpened {
    /// Sandbox name.
    pub name: String,
    /// The terminal type the shell was given.
    pub term: String,
}

/// `sandbox.run`: a command in a new ephemeral sandbox that is gone when the command ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SandboxRunArgs {
    /// Name of a template (`sandbox.templates`).
    pub template: String,
    /// The command; `argv[0]` is looked up in the sandbox's `PATH`.
    #[schema(min_items = 1)]
    pub argv: Vec<String>,
    /// The sandbox's name; `run-N` (the first free) by default.
    #[serde(default)]
    pub name: Option<String>,
    /// Resource limits (`cpu`, `memory_max`, `tasks_max`).
    #[serde(default, flatten)]
    pub limits: Limits,
    /// `none` (loopback only, default) or `nat`.
    #[serde(default)]
    pub network: Network,
    /// Drives bound into the sandbox.
    #[serde(default)]
    pub binds: Vec<BindArgs>,
    /// Environment as name/value pairs.
    #[serde(default)]
    #[schema(value_type = Vec<Vec<String>>)]
    pub env: Vec<(String, String)>,
    /// Kill the command after this many seconds.
    #[serde(default)]
    pub timeout_secs: Option<u64>,
}
