//! The one vocabulary of operations. Every front end produces these values; the executor handles them.
//!
//! Each operation has a stable dotted name (`system.status`, `audit.query`, ...) used alike in the audit log, the
//! OpenAPI operation ids, the D-Bus documentation, the CLI and the chat engine. Its preconditions are documented on
//! the variant and summarised in [`OPERATIONS`].

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::audit::AuditFilter;
use crate::diagnose::{DiagnoseArgs, JournalQuery, ServiceRef};
use crate::drive::{AttachArgs, CommitArgs, CreateArgs, DetachArgs, DriveRef, FilesArgs, PersistArgs, UploadArgs};
use crate::license::{DisclosureArgs, JobRef, LicenseScanArgs, ProofVerifyArgs, SbomArgs, SourceArgs};
use crate::sandbox::ops::{
    SandboxCopyArgs, SandboxCreateArgs, SandboxExecArgs, SandboxLogsArgs, SandboxRef, SandboxRemoveArgs,
    SandboxRunArgs, SandboxShellArgs,
};

/// How much an operation changes. Chat asks for confirmation of destructive ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Risk {
    /// Reads state only.
    ReadOnly,
    /// Changes state in a way that can be undone.
    Changing,
    /// Removes data or interrupts work; needs an explicit confirmation in chat.
    Destructive,
}

/// Who may run an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Privilege {
    /// Any local user or authenticated web client.
    Anyone,
    /// Root, members of group `cacheos`, web token holders.
    Operator,
}

/// Static facts about an operation, in one table for documentation, policy and front ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct OpInfo {
    /// Stable dotted name.
    pub name: &'static str,
    /// One line saying what it does.
    pub summary: &'static str,
    /// Risk class.
    pub risk: Risk,
    /// Who may run it.
    pub privilege: Privilege,
}

/// Every operation the core knows, in the order of [`Operation`]'s variants.
pub const OPERATIONS: &[OpInfo] = &[
    OpInfo {
        name: "system.status",
        summary: "host name, OS, kernel, uptime, load, CPU, memory, disks and failed units",
        risk: Risk::ReadOnly,
        privilege: Privilege::Anyone,
    },
    OpInfo {
        name: "supervisor.status",
        summary: "daemon version, uptime, state and the health of each internal task",
        risk: Risk::ReadOnly,
        privilege: Privilege::Anyone,
    },
    OpInfo {
        name: "supervisor.kill-task",
        summary: "abort an internal task so the supervisor restarts it (fault injection; dev mode or when enabled)",
        risk: Risk::Destructive,
        privilege: Privilege::Operator,
    },
    OpInfo {
        name: "audit.query",
        summary: "audit log entries, newest first, filtered by time, front end, operation and outcome",
        risk: Risk::ReadOnly,
        privilege: Privilege::Anyone,
    },
    OpInfo {
        name: "web.token",
        summary: "the bearer token that web clients other than loopback must present",
        risk: Risk::ReadOnly,
        privilege: Privilege::Operator,
    },
    OpInfo {
        name: "drive.list",
        summary: "every virtual drive with image, format, loop devices, partitions, mounts, usage and users",
        risk: Risk::ReadOnly,
        privilege: Privilege::Anyone,
    },
    OpInfo {
        name: "drive.info",
        summary: "one virtual drive in detail",
        risk: Risk::ReadOnly,
        privilege: Privilege::Anyone,
    },
    OpInfo {
        name: "drive.images",
        summary: "image files in the images directory, with their format and the drive they are attached as",
        risk: Risk::ReadOnly,
        privilege: Privilege::Anyone,
    },
    OpInfo {
        name: "drive.files",
        summary: "a directory listing of a mounted drive (symlinks are never followed)",
        risk: Risk::ReadOnly,
        privilege: Privilege::Operator,
    },
    OpInfo {
        name: "drive.attach",
        summary:
            "attach an image (iso, raw, qcow2, vmdk, vdi, vhdx, vhd) read-only or read-write and mount its file systems",
        risk: Risk::Changing,
        privilege: Privilege::Operator,
    },
    OpInfo {
        name: "drive.detach",
        summary: "unmount a drive and release its loop devices and export; force detaches lazily even when busy",
        risk: Risk::Changing,
        privilege: Privilege::Operator,
    },
    OpInfo {
        name: "drive.create",
        summary: "create a blank raw or qcow2 image with an optional file system, and optionally attach it",
        risk: Risk::Changing,
        privilege: Privilege::Operator,
    },
    OpInfo {
        name: "drive.snapshot",
        summary: "put a writable layer over a drive; the image stays untouched until a commit",
        risk: Risk::Changing,
        privilege: Privilege::Operator,
    },
    OpInfo {
        name: "drive.discard",
        summary: "throw a drive's snapshot away and attach the unchanged image again",
        risk: Risk::Destructive,
        privilege: Privilege::Operator,
    },
    OpInfo {
        name: "drive.commit",
        summary: "write a drive's snapshot into its image (read-write drives only; needs confirm)",
        risk: Risk::Destructive,
        privilege: Privilege::Operator,
    },
    OpInfo {
        name: "drive.persist",
        summary: "mark a drive to be attached again at boot, or not",
        risk: Risk::Changing,
        privilege: Privilege::Operator,
    },
    OpInfo {
        name: "drive.reconcile",
        summary: "compare drive records with the kernel and repair either side (runs at every start)",
        risk: Risk::Changing,
        privilege: Privilege::Operator,
    },
    OpInfo {
        name: "sandbox.list",
        summary: "every sandbox with template, state, limits, binds and resource use",
        risk: Risk::ReadOnly,
        privilege: Privilege::Anyone,
    },
    OpInfo {
        name: "sandbox.info",
        summary: "one sandbox in detail",
        risk: Risk::ReadOnly,
        privilege: Privilege::Anyone,
    },
    OpInfo {
        name: "sandbox.templates",
        summary: "the templates sandboxes can be created from",
        risk: Risk::ReadOnly,
        privilege: Privilege::Anyone,
    },
    OpInfo {
        name: "sandbox.create",
        summary: "create a sandbox from a template with limits, network, drive binds and environment",
        risk: Risk::Changing,
        privilege: Privilege::Operator,
    },
    OpInfo {
        name: "sandbox.start",
        summary: "start a sandbox's container",
        risk: Risk::Changing,
        privilege: Privilege::Operator,
    },
    OpInfo {
        name: "sandbox.stop",
        summary: "stop a sandbox's container (an ephemeral sandbox is removed)",
        risk: Risk::Changing,
        privilege: Privilege::Operator,
    },
    OpInfo {
        name: "sandbox.restart",
        summary: "stop a running sandbox and start it again",
        risk: Risk::Changing,
        privilege: Privilege::Operator,
    },
    OpInfo {
        name: "sandbox.remove",
        summary: "stop a sandbox and remove it with its writable data (needs confirm)",
        risk: Risk::Destructive,
        privilege: Privilege::Operator,
    },
    OpInfo {
        name: "sandbox.exec",
        summary: "run a command inside a running sandbox and return its exit code and output",
        risk: Risk::Changing,
        privilege: Privilege::Operator,
    },
    OpInfo {
        name: "sandbox.logs",
        summary: "the last lines of a sandbox's console output",
        risk: Risk::ReadOnly,
        privilege: Privilege::Operator,
    },
    OpInfo {
        name: "sandbox.reconcile",
        summary: "compare sandbox records with running containers and repair either side (runs at every start)",
        risk: Risk::Changing,
        privilege: Privilege::Operator,
    },
    OpInfo {
        name: "system.history",
        summary: "CPU, memory, disk and load samples of the last hour (or since a time), oldest first",
        risk: Risk::ReadOnly,
        privilege: Privilege::Anyone,
    },
    OpInfo {
        name: "drive.upload",
        summary: "store an uploaded file in the images directory (size-limited, never overwriting) with its SHA-256",
        risk: Risk::Changing,
        privilege: Privilege::Operator,
    },
    OpInfo {
        name: "sandbox.shell",
        summary: "open an interactive login shell as root in a running sandbox on a new pseudo-terminal",
        risk: Risk::Changing,
        privilege: Privilege::Operator,
    },
    OpInfo {
        name: "sandbox.copy-in",
        summary: "write a file (or unpack a directory's tar stream) into a running sandbox",
        risk: Risk::Changing,
        privilege: Privilege::Operator,
    },
    OpInfo {
        name: "sandbox.copy-out",
        summary: "read a file (or a directory as a tar stream) out of a running sandbox",
        risk: Risk::ReadOnly,
        privilege: Privilege::Operator,
    },
    OpInfo {
        name: "sandbox.run",
        summary: "run a command in a new ephemeral sandbox that is removed when the command ends",
        risk: Risk::Changing,
        privilege: Privilege::Operator,
    },
    // issue 17 (kb)
    OpInfo {
        name: "kb.index",
        summary: "index a drive (or a path below it) or the appliance's documentation for search, as a background job",
        risk: Risk::Changing,
        privilege: Privilege::Operator,
    },
    OpInfo {
        name: "kb.sources",
        summary: "the indexed sources with documents, passages, size, last update and state",
        risk: Risk::ReadOnly,
        privilege: Privilege::Anyone,
    },
    OpInfo {
        name: "kb.search",
        summary: "ranked passages for a query, each with its citation (file, heading or page, line range)",
        risk: Risk::ReadOnly,
        privilege: Privilege::Anyone,
    },
    OpInfo {
        name: "kb.ask",
        summary: "answer a question from the indexed documents: the best passages quoted with numbered citations",
        risk: Risk::ReadOnly,
        privilege: Privilege::Anyone,
    },
    OpInfo {
        name: "kb.remove",
        summary: "forget an indexed source and its passages (the files themselves stay)",
        risk: Risk::Changing,
        privilege: Privilege::Operator,
    },
    OpInfo {
        name: "kb.cancel",
        summary: "stop a running indexing job; what was indexed until then stays searchable",
        risk: Risk::Changing,
        privilege: Privilege::Operator,
    },
    // issue 18 (licences)
    OpInfo {
        name: "license.scan",
        summary: "per file the SPDX licences of a drive's or sandbox's files and where each came from, a summary and compatibility notes (a job with progress events)",
        risk: Risk::ReadOnly,
        privilege: Privilege::Operator,
    },
    OpInfo {
        name: "license.cancel",
        summary: "stop a running licence scan, SBOM or proof job",
        risk: Risk::Changing,
        privilege: Privilege::Operator,
    },
    OpInfo {
        name: "sbom.create",
        summary: "an SPDX 2.3 and a CycloneDX 1.5 SBOM of a sandbox, a drive path or the appliance, with licences",
        risk: Risk::ReadOnly,
        privilege: Privilege::Operator,
    },
    OpInfo {
        name: "notice.create",
        summary: "a third-party notice: the components of a sandbox, drive path or the appliance with licence texts grouped by licence",
        risk: Risk::ReadOnly,
        privilege: Privilege::Operator,
    },
    OpInfo {
        name: "proof.create",
        summary: "a signed proof of existence: every file's size and SHA-256, their Merkle root and the time, signed with the appliance's ed25519 key",
        risk: Risk::Changing,
        privilege: Privilege::Operator,
    },
    OpInfo {
        name: "proof.verify",
        summary: "check a proof: which files changed since, whether root, signature, key and time stamp hold",
        risk: Risk::ReadOnly,
        privilege: Privilege::Operator,
    },
    OpInfo {
        name: "disclosure.draft",
        summary: "draft an invention disclosure (Markdown, German or English) citing the newest proof, with the filing steps at DPMA, EPO and WIPO; CacheOS files nothing",
        risk: Risk::ReadOnly,
        privilege: Privilege::Operator,
    },
    // issue 16 (diagnose)
    OpInfo {
        name: "system.diagnose",
        summary: "why a unit, sandbox or drive failed (or, without a target, everything that is wrong): cause class, \
                  journal evidence and a fix",
        risk: Risk::ReadOnly,
        privilege: Privilege::Operator,
    },
    OpInfo {
        name: "journal.query",
        summary:
            "journal entries of this boot by unit or sandbox, priority, time and text, newest last, repeats folded",
        risk: Risk::ReadOnly,
        privilege: Privilege::Operator,
    },
    OpInfo {
        name: "service.list",
        summary: "the appliance's services and mounts with their state, failed ones first",
        risk: Risk::ReadOnly,
        privilege: Privilege::Anyone,
    },
    OpInfo {
        name: "service.restart",
        summary: "clear a unit's failed state and restart it",
        risk: Risk::Changing,
        privilege: Privilege::Operator,
    },
    // issue 15 (software)
    OpInfo {
        name: "software.search",
        summary: "packages for a name or a wish from Debian, PyPI and npm (and the alias table), with version, size and a description",
        risk: Risk::ReadOnly,
        privilege: Privilege::Anyone,
    },
    OpInfo {
        name: "software.plan",
        summary: "what an install would do: the sandbox (or a new one), exact versions, download sizes, starters and every command",
        risk: Risk::ReadOnly,
        privilege: Privilege::Operator,
    },
    OpInfo {
        name: "software.install",
        summary: "install packages (apt, pip into a venv, npm into the project) inside a sandbox as a job; confirmed in chat first",
        risk: Risk::Destructive,
        privilege: Privilege::Operator,
    },
    OpInfo {
        name: "software.list",
        summary: "what CacheOS installed in a sandbox, from its lockfile (dpkg versions, pip freeze, package-lock.json)",
        risk: Risk::ReadOnly,
        privilege: Privilege::Anyone,
    },
    OpInfo {
        name: "software.remove",
        summary: "remove packages CacheOS installed from a sandbox",
        risk: Risk::Destructive,
        privilege: Privilege::Operator,
    },
    OpInfo {
        name: "software.job",
        summary: "an install job's state, step, last output lines, error and URLs",
        risk: Risk::ReadOnly,
        privilege: Privilege::Operator,
    },
    OpInfo {
        name: "software.cancel",
        summary: "stop an install job after its current command",
        risk: Risk::Changing,
        privilege: Privilege::Operator,
    },
    OpInfo {
        name: "sandbox.expose",
        summary: "make a port of a NAT sandbox reachable on the appliance's address (nftables DNAT)",
        risk: Risk::Changing,
        privilege: Privilege::Operator,
    },
    OpInfo {
        name: "sandbox.unexpose",
        summary: "stop forwarding a port of a sandbox from the appliance",
        risk: Risk::Changing,
        privilege: Privilege::Operator,
    },
    OpInfo {
        name: "sandbox.service",
        summary: "keep a command running in a sandbox (restarted on failure, started with the sandbox); an empty command removes it",
        risk: Risk::Changing,
        privilege: Privilege::Operator,
    },
    // issue 14 (models)
    OpInfo {
        name: "model.list",
        summary: "the language-model backends and the GGUF files found (size, quantisation, context length), and which is active",
        risk: Risk::ReadOnly,
        privilege: Privilege::Anyone,
    },
    OpInfo {
        name: "model.use",
        summary: "use a GGUF file (a path or a drive's file) or an OpenAI-compatible endpoint (URL, model, API key) for what the chat does not understand",
        risk: Risk::Changing,
        privilege: Privilege::Operator,
    },
    OpInfo {
        name: "model.status",
        summary: "the active language model: loaded, memory, last tokens per second, whether questions leave the appliance",
        risk: Risk::ReadOnly,
        privilege: Privilege::Anyone,
    },
    OpInfo {
        name: "model.unload",
        summary: "stop using the language model: unload it, free its memory and forget the endpoint's API key",
        risk: Risk::Changing,
        privilege: Privilege::Operator,
    },
    OpInfo {
        name: "model.test",
        summary: "run a fixed prompt on the active model: time to first token and tokens per second",
        risk: Risk::ReadOnly,
        privilege: Privilege::Operator,
    },
    OpInfo {
        name: "privacy.channels",
        summary: "every part of CacheOS that can send data off the appliance (model endpoint, sandboxes with NAT, the web port beyond loopback), its state and the operation that switches it",
        risk: Risk::ReadOnly,
        privilege: Privilege::Anyone,
    },
    // issue 19 (trust)
    OpInfo {
        name: "web.cert",
        summary: "the web port's TLS certificate: SHA-256 fingerprint, where it is kept, whether plain HTTP is redirected",
        risk: Risk::ReadOnly,
        privilege: Privilege::Anyone,
    },
];

/// Arguments of `system.history`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HistoryArgs {
    /// Only samples taken at or after this time (ms since the Unix epoch); all kept samples when absent.
    #[serde(default)]
    pub since_ms: Option<u64>,
    /// The resolution; when absent, the finest one that reaches back to `since_ms` (every sample for the last
    /// hour, one-minute means for the last day, one-hour means for the last 30 days).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<crate::metrics_history::Resolution>,
}

/// Arguments of `supervisor.kill-task`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct KillTaskArgs {
    /// Name of the internal task, as listed by `supervisor.status`.
    pub task: String,
}

/// A request to the core. Serialised as `{"op": "<dotted name>", "args": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", content = "args")]
pub enum Operation {
    /// `system.status`: always valid; anyone may call it.
    #[serde(rename = "system.status")]
    SystemStatus,
    /// `supervisor.status`: always valid; anyone may call it.
    #[serde(rename = "supervisor.status")]
    SupervisorStatus,
    /// `supervisor.kill-task`: valid only when fault injection is enabled (dev mode, or
    /// `supervisor.fault_injection = true`); operators only. The task is aborted and restarted with backoff.
    #[serde(rename = "supervisor.kill-task")]
    SupervisorKillTask(KillTaskArgs),
    /// `audit.query`: always valid; anyone may call it. `limit` must be 1..=10000.
    #[serde(rename = "audit.query")]
    AuditQuery(AuditFilter),
    /// `web.token`: valid when the web port is configured; operators only.
    #[serde(rename = "web.token")]
    WebToken,
    /// `drive.list`: always valid; anyone.
    #[serde(rename = "drive.list")]
    DriveList,
    /// `drive.info`: the drive must exist; anyone.
    #[serde(rename = "drive.info")]
    DriveInfo(DriveRef),
    /// `drive.images`: always valid; anyone.
    #[serde(rename = "drive.images")]
    DriveImages,
    /// `drive.files`: the drive must be attached with a mounted file system; operators.
    #[serde(rename = "drive.files")]
    DriveFiles(FilesArgs),
    /// `drive.attach`: the image must be a regular file inside an allowed place, not attached already, and the
    /// name free; operators.
    #[serde(rename = "drive.attach")]
    DriveAttach(AttachArgs),
    /// `drive.detach`: the drive must exist; without force it must be idle (no holders, no running sandbox
    /// binding it, no uncommitted snapshot); operators. Forced detaches count as destructive.
    #[serde(rename = "drive.detach")]
    DriveDetach(DetachArgs),
    /// `drive.create`: the path must be new and inside an allowed place; operators.
    #[serde(rename = "drive.create")]
    DriveCreate(CreateArgs),
    /// `drive.snapshot`: the drive must be attached, idle and without a snapshot; operators.
    #[serde(rename = "drive.snapshot")]
    DriveSnapshot(DriveRef),
    /// `drive.discard`: the drive must be attached, idle and have a snapshot; operators; destructive.
    #[serde(rename = "drive.discard")]
    DriveDiscard(DriveRef),
    /// `drive.commit`: the drive must be attached read-write, idle, have a snapshot, and `confirm` be true;
    /// operators; destructive.
    #[serde(rename = "drive.commit")]
    DriveCommit(CommitArgs),
    /// `drive.persist`: the drive must exist; operators.
    #[serde(rename = "drive.persist")]
    DrivePersist(PersistArgs),
    /// `drive.reconcile`: always valid; operators.
    #[serde(rename = "drive.reconcile")]
    DriveReconcile,
    /// `sandbox.list`: always valid; anyone.
    #[serde(rename = "sandbox.list")]
    SandboxList,
    /// `sandbox.info`: the sandbox must exist; anyone.
    #[serde(rename = "sandbox.info")]
    SandboxInfo(SandboxRef),
    /// `sandbox.templates`: always valid; anyone.
    #[serde(rename = "sandbox.templates")]
    SandboxTemplates,
    /// `sandbox.create`: the name must be free, the template known and every bound drive attached with a mounted
    /// file system; operators.
    #[serde(rename = "sandbox.create")]
    SandboxCreate(SandboxCreateArgs),
    /// `sandbox.start`: the sandbox must exist and not run; operators.
    #[serde(rename = "sandbox.start")]
    SandboxStart(SandboxRef),
    /// `sandbox.stop`: the sandbox must exist; stopping a stopped one is a no-op; operators.
    #[serde(rename = "sandbox.stop")]
    SandboxStop(SandboxRef),
    /// `sandbox.restart`: the sandbox must exist and be settled (not starting or stopping); operators.
    #[serde(rename = "sandbox.restart")]
    SandboxRestart(SandboxRef),
    /// `sandbox.remove`: the sandbox must exist and be settled, and `confirm` be true; operators; destructive.
    #[serde(rename = "sandbox.remove")]
    SandboxRemove(SandboxRemoveArgs),
    /// `sandbox.exec`: the sandbox must be running and argv non-empty; operators.
    #[serde(rename = "sandbox.exec")]
    SandboxExec(SandboxExecArgs),
    /// `sandbox.logs`: the sandbox must exist; operators (console output may hold secrets).
    #[serde(rename = "sandbox.logs")]
    SandboxLogs(SandboxLogsArgs),
    /// `sandbox.reconcile`: always valid; operators.
    #[serde(rename = "sandbox.reconcile")]
    SandboxReconcile,
    /// `system.history`: always valid (empty until the metrics worker has sampled); anyone may call it. The daemon
    /// keeps every sample for an hour, minute means for a day and hour means for 30 days, in the store.
    #[serde(rename = "system.history")]
    SystemHistory(HistoryArgs),
    /// `drive.upload`: the name must be a plain file name not yet in the images directory, and the bytes (the
    /// input stream of [`crate::Core::execute_with_input`]) at most `max_upload_bytes`; operators. A failed upload
    /// leaves no file behind.
    #[serde(rename = "drive.upload")]
    DriveUpload(UploadArgs),
    /// `sandbox.shell`: the sandbox must be running; operators. Only through a front end that can hand over a
    /// terminal (D-Bus, [`crate::Core::execute_shell`]).
    #[serde(rename = "sandbox.shell")]
    SandboxShell(SandboxShellArgs),
    /// `sandbox.copy-in`: the sandbox must be running and the path absolute; the bytes are the input stream
    /// ([`crate::Core::execute_with_input`]); operators.
    #[serde(rename = "sandbox.copy-in")]
    SandboxCopyIn(SandboxCopyArgs),
    /// `sandbox.copy-out`: the sandbox must be running and the path absolute; the bytes go to the output stream
    /// ([`crate::Core::execute_with_output`]); operators.
    #[serde(rename = "sandbox.copy-out")]
    SandboxCopyOut(SandboxCopyArgs),
    /// `sandbox.run`: the template must exist, argv be non-empty, limits and binds valid as for create; operators.
    /// Output streams like `sandbox.exec`.
    #[serde(rename = "sandbox.run")]
    SandboxRun(SandboxRunArgs),
    // issue 17 (kb)
    /// `kb.index`: the source is `docs` or an attached drive with a mounted file system, the path relative and
    /// below it, and no job for the source running; operators. Returns at once; progress comes as `kb-index`
    /// events.
    #[serde(rename = "kb.index")]
    KbIndex(crate::kb::KbIndexArgs),
    /// `kb.sources`: always valid; anyone (drive sources are listed to operators only).
    #[serde(rename = "kb.sources")]
    KbSources,
    /// `kb.search`: the query must have a word (an empty one means the caller's utterance, for the chat), limit
    /// 1..=50; anyone (passages from drives go to operators only, as `drive.files` does).
    #[serde(rename = "kb.search")]
    KbSearch(crate::kb::KbSearchArgs),
    /// `kb.ask`: the question must have a word (an empty one means the caller's utterance, for the chat); anyone
    /// (drive passages as for `kb.search`).
    #[serde(rename = "kb.ask")]
    KbAsk(crate::kb::KbAskArgs),
    /// `kb.remove`: the source must be indexed and no job for it running; operators.
    #[serde(rename = "kb.remove")]
    KbRemove(crate::kb::KbSourceRef),
    /// `kb.cancel`: a job for the source must be running; operators.
    #[serde(rename = "kb.cancel")]
    KbCancel(crate::kb::KbSourceRef),
    // issue 18 (licences)
    /// `license.scan`: exactly one of drive (attached, with a mounted file system) or sandbox (running); the path
    /// relative and below its root (symbolic links are never followed); operators. Runs as a job: progress in
    /// `license-job` events, `license.cancel` stops it.
    #[serde(rename = "license.scan")]
    LicenseScan(LicenseScanArgs),
    /// `license.cancel`: the job must be running; operators.
    #[serde(rename = "license.cancel")]
    LicenseCancel(JobRef),
    /// `sbom.create`: a source as for `license.scan`, or `appliance`; operators.
    #[serde(rename = "sbom.create")]
    SbomCreate(SbomArgs),
    /// `notice.create`: as `sbom.create`; operators.
    #[serde(rename = "notice.create")]
    NoticeCreate(SbomArgs),
    /// `proof.create`: a source as for `license.scan`; operators. The manifest is kept (record kind `proof`).
    #[serde(rename = "proof.create")]
    ProofCreate(SourceArgs),
    /// `proof.verify`: a manifest, or the root of a kept proof, or none for the newest; operators.
    #[serde(rename = "proof.verify")]
    ProofVerify(ProofVerifyArgs),
    /// `disclosure.draft`: a title; operators. Never sends anything anywhere.
    #[serde(rename = "disclosure.draft")]
    DisclosureDraft(DisclosureArgs),
    // issue 16 (diagnose)
    /// `system.diagnose`: at most one of unit, sandbox, drive; the target must exist (an unknown unit's error names
    /// close ones); operators (evidence quotes the journal).
    #[serde(rename = "system.diagnose")]
    SystemDiagnose(DiagnoseArgs),
    /// `journal.query`: not both unit and sandbox; limit 1..=10000, priority 0..=7, since before until; operators.
    #[serde(rename = "journal.query")]
    JournalQuery(JournalQuery),
    /// `service.list`: valid where systemd runs; anyone.
    #[serde(rename = "service.list")]
    ServiceList,
    /// `service.restart`: the unit must be known to systemd; operators. Clears a failed state first, so a unit that
    /// hit its start limit starts again.
    #[serde(rename = "service.restart")]
    ServiceRestart(ServiceRef),
    // issue 15 (software)
    /// `software.search`: a query with a word (empty means the caller's utterance); anyone.
    #[serde(rename = "software.search")]
    SoftwareSearch(crate::software::SoftwareSearchArgs),
    /// `software.plan`: packages valid for their ecosystem's grammar and existing in their versions, or a wish the
    /// alias table resolves; a given sandbox must exist and have a template with a package manager and NAT;
    /// operators. Changes nothing.
    #[serde(rename = "software.plan")]
    SoftwarePlan(crate::software::SoftwareInstallArgs),
    /// `software.install`: as `software.plan`, and no other job installing into the sandbox; operators. Returns
    /// the job at once; progress comes as `software-job` events.
    #[serde(rename = "software.install")]
    SoftwareInstall(crate::software::SoftwareInstallArgs),
    /// `software.list`: anyone.
    #[serde(rename = "software.list")]
    SoftwareList(crate::software::SoftwareListArgs),
    /// `software.remove`: packages CacheOS installed there, the sandbox running; operators.
    #[serde(rename = "software.remove")]
    SoftwareRemove(crate::software::SoftwareRemoveArgs),
    /// `software.job`: the job must exist; operators.
    #[serde(rename = "software.job")]
    SoftwareJob(crate::software::SoftwareJobRef),
    /// `software.cancel`: the job must be running; operators.
    #[serde(rename = "software.cancel")]
    SoftwareCancel(crate::software::SoftwareJobRef),
    /// `sandbox.expose`: a NAT sandbox, ports 1..=65535, a host port not reserved or used by another sandbox;
    /// operators.
    #[serde(rename = "sandbox.expose")]
    SandboxExpose(crate::software::expose::ExposeArgs),
    /// `sandbox.unexpose`: the port must be exposed; operators.
    #[serde(rename = "sandbox.unexpose")]
    SandboxUnexpose(crate::software::expose::UnexposeArgs),
    /// `sandbox.service`: a running sandbox booted with systemd, argv without NUL or control characters;
    /// operators.
    #[serde(rename = "sandbox.service")]
    SandboxService(crate::software::expose::ServiceArgs),
    // issue 14 (models)
    /// `model.list`: always valid; anyone (files on drives are listed to operators only).
    #[serde(rename = "model.list")]
    ModelList,
    /// `model.use`: exactly one of path, drive, url; a path must be absolute and end in `.gguf`, a drive be
    /// attached with a mounted file system, a URL be http(s) without credentials; `model` and `api_key` only with
    /// `url`, `threads` 1..=256 only with a file; operators. The API key is never echoed or audited.
    #[serde(rename = "model.use")]
    ModelUse(crate::model::ModelUseArgs),
    /// `model.status`: always valid; anyone.
    #[serde(rename = "model.status")]
    ModelStatus,
    /// `model.unload`: always valid (no model: a no-op); operators.
    #[serde(rename = "model.unload")]
    ModelUnload,
    /// `model.test`: a model must be in use; operators (the prompt goes to the model).
    #[serde(rename = "model.test")]
    ModelTest,
    /// `privacy.channels`: always valid; anyone.
    #[serde(rename = "privacy.channels")]
    PrivacyChannels,
    // issue 19 (trust)
    /// `web.cert`: valid when the web port serves TLS; anyone (every TLS client sees the certificate anyway).
    #[serde(rename = "web.cert")]
    WebCert,
}

impl Operation {
    /// Static facts about this operation.
    pub fn info(&self) -> &'static OpInfo {
        let i = match self {
            Operation::SystemStatus => 0,
            Operation::SupervisorStatus => 1,
            Operation::SupervisorKillTask(_) => 2,
            Operation::AuditQuery(_) => 3,
            Operation::WebToken => 4,
            Operation::DriveList => 5,
            Operation::DriveInfo(_) => 6,
            Operation::DriveImages => 7,
            Operation::DriveFiles(_) => 8,
            Operation::DriveAttach(_) => 9,
            Operation::DriveDetach(_) => 10,
            Operation::DriveCreate(_) => 11,
            Operation::DriveSnapshot(_) => 12,
            Operation::DriveDiscard(_) => 13,
            Operation::DriveCommit(_) => 14,
            Operation::DrivePersist(_) => 15,
            Operation::DriveReconcile => 16,
            Operation::SandboxList => 17,
            Operation::SandboxInfo(_) => 18,
            Operation::SandboxTemplates => 19,
            Operation::SandboxCreate(_) => 20,
            Operation::SandboxStart(_) => 21,
            Operation::SandboxStop(_) => 22,
            Operation::SandboxRestart(_) => 23,
            Operation::SandboxRemove(_) => 24,
            Operation::SandboxExec(_) => 25,
            Operation::SandboxLogs(_) => 26,
            Operation::SandboxReconcile => 27,
            Operation::SystemHistory(_) => 28,
            Operation::DriveUpload(_) => 29,
            Operation::SandboxShell(_) => 30,
            Operation::SandboxCopyIn(_) => 31,
            Operation::SandboxCopyOut(_) => 32,
            Operation::SandboxRun(_) => 33,
            // issue 17 (kb)
            Operation::KbIndex(_) => 34,
            Operation::KbSources => 35,
            Operation::KbSearch(_) => 36,
            Operation::KbAsk(_) => 37,
            Operation::KbRemove(_) => 38,
            Operation::KbCancel(_) => 39,
            // issue 18 (licences)
            Operation::LicenseScan(_) => 40,
            Operation::LicenseCancel(_) => 41,
            Operation::SbomCreate(_) => 42,
            Operation::NoticeCreate(_) => 43,
            Operation::ProofCreate(_) => 44,
            Operation::ProofVerify(_) => 45,
            Operation::DisclosureDraft(_) => 46,
            // issue 16 (diagnose)
            Operation::SystemDiagnose(_) => 47,
            Operation::JournalQuery(_) => 48,
            Operation::ServiceList => 49,
            Operation::ServiceRestart(_) => 50,
            // issue 15 (software)
            Operation::SoftwareSearch(_) => 51,
            Operation::SoftwarePlan(_) => 52,
            Operation::SoftwareInstall(_) => 53,
            Operation::SoftwareList(_) => 54,
            Operation::SoftwareRemove(_) => 55,
            Operation::SoftwareJob(_) => 56,
            Operation::SoftwareCancel(_) => 57,
            Operation::SandboxExpose(_) => 58,
            Operation::SandboxUnexpose(_) => 59,
            Operation::SandboxService(_) => 60,
            // issue 14 (models)
            Operation::ModelList => 61,
            Operation::ModelUse(_) => 62,
            Operation::ModelStatus => 63,
            Operation::ModelUnload => 64,
            Operation::ModelTest => 65,
            Operation::PrivacyChannels => 66,
            // issue 19 (trust)
            Operation::WebCert => 67,
        };
        &OPERATIONS[i]
    }

    /// The risk of this request: the operation's class, raised to destructive where the arguments make it so
    /// (a forced detach).
    pub fn risk(&self) -> Risk {
        match self {
            Operation::DriveDetach(a) if a.force => Risk::Destructive,
            _ => self.info().risk,
        }
    }

    /// The stable dotted name.
    pub fn name(&self) -> &'static str {
        self.info().name
    }

    /// The arguments as JSON, exactly as the REST API takes them (`null` when there are none).
    pub fn args_json(&self) -> serde_json::Value {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(mut m)) => m.remove("args").unwrap_or(serde_json::Value::Null),
            _ => serde_json::Value::Null,
        }
    }

    /// The arguments as the audit log and displays keep them: [`Operation::args_json`] with secrets (a model
    /// endpoint's API key) replaced by `"(set)"`.
    pub fn audit_args(&self) -> serde_json::Value {
        match self {
            Operation::ModelUse(a) => serde_json::to_value(a.redacted()).unwrap_or(serde_json::Value::Null),
            _ => self.args_json(),
        }
    }

    /// Looks up an operation's facts by dotted name.
    pub fn lookup(name: &str) -> Option<&'static OpInfo> {
        OPERATIONS.iter().find(|i| i.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_dotted_and_match_serde() {
        let ops = [
            Operation::SystemStatus,
            Operation::SupervisorStatus,
            Operation::SupervisorKillTask(KillTaskArgs { task: "web".into() }),
            Operation::AuditQuery(AuditFilter::default()),
            Operation::WebToken,
            Operation::DriveList,
            Operation::DriveInfo(DriveRef { name: "d".into() }),
            Operation::DriveImages,
            Operation::DriveFiles(FilesArgs {
                name: "d".into(),
                path: String::new(),
                volume: None,
            }),
            Operation::DriveAttach(AttachArgs::new("x.iso")),
            Operation::DriveDetach(DetachArgs {
                name: "d".into(),
                force: false,
            }),
            Operation::DriveCreate(CreateArgs {
                path: "n.img".into(),
                size: 1 << 30,
                format: Default::default(),
                fs: None,
                label: None,
                attach: false,
                name: None,
            }),
            Operation::DriveSnapshot(DriveRef { name: "d".into() }),
            Operation::DriveDiscard(DriveRef { name: "d".into() }),
            Operation::DriveCommit(CommitArgs {
                name: "d".into(),
                confirm: true,
            }),
            Operation::DrivePersist(PersistArgs {
                name: "d".into(),
                persistent: true,
            }),
            Operation::DriveReconcile,
            Operation::SandboxList,
            Operation::SandboxInfo(SandboxRef { name: "s".into() }),
            Operation::SandboxTemplates,
            Operation::SandboxCreate(SandboxCreateArgs::new("s", "host")),
            Operation::SandboxStart(SandboxRef { name: "s".into() }),
            Operation::SandboxStop(SandboxRef { name: "s".into() }),
            Operation::SandboxRestart(SandboxRef { name: "s".into() }),
            Operation::SandboxRemove(SandboxRemoveArgs {
                name: "s".into(),
                confirm: true,
            }),
            Operation::SandboxExec(SandboxExecArgs {
                name: "s".into(),
                argv: vec!["true".into()],
                timeout_secs: Some(5),
            }),
            Operation::SandboxLogs(SandboxLogsArgs {
                name: "s".into(),
                lines: None,
            }),
            Operation::SandboxReconcile,
            Operation::SystemHistory(HistoryArgs {
                since_ms: Some(1),
                resolution: Some(crate::metrics_history::Resolution::Minute),
            }),
            Operation::DriveUpload(UploadArgs {
                name: "u.img".into(),
                size: Some(3),
            }),
            Operation::SandboxShell(SandboxShellArgs {
                name: "s".into(),
                term: Some("xterm".into()),
            }),
            Operation::SandboxCopyIn(SandboxCopyArgs {
                name: "s".into(),
                path: "/root/a".into(),
                archive: false,
            }),
            Operation::SandboxCopyOut(SandboxCopyArgs {
                name: "s".into(),
                path: "/root".into(),
                archive: true,
            }),
            Operation::SandboxRun(SandboxRunArgs {
                template: "host".into(),
                argv: vec!["true".into()],
                name: None,
                limits: Default::default(),
                network: Default::default(),
                binds: vec![],
                env: vec![],
                timeout_secs: Some(5),
            }),
            // issue 17 (kb)
            Operation::KbIndex(crate::kb::KbIndexArgs {
                source: "data".into(),
                path: Some("docs".into()),
            }),
            Operation::KbSources,
            Operation::KbSearch(crate::kb::KbSearchArgs {
                query: "iso".into(),
                limit: Some(3),
            }),
            Operation::KbAsk(crate::kb::KbAskArgs {
                question: "wie?".into(),
            }),
            Operation::KbRemove(crate::kb::KbSourceRef { source: "data".into() }),
            Operation::KbCancel(crate::kb::KbSourceRef { source: "data".into() }),
            // issue 18 (licences)
            Operation::LicenseScan(LicenseScanArgs {
                source: SourceArgs {
                    drive: Some("data".into()),
                    sandbox: None,
                    path: "src".into(),
                },
                job: None,
            }),
            Operation::LicenseCancel(JobRef { job: "scan-1".into() }),
            Operation::SbomCreate(SbomArgs {
                source: SourceArgs {
                    drive: None,
                    sandbox: Some("web".into()),
                    path: String::new(),
                },
                appliance: false,
            }),
            Operation::NoticeCreate(SbomArgs {
                source: SourceArgs::default(),
                appliance: true,
            }),
            Operation::ProofCreate(SourceArgs {
                drive: Some("data".into()),
                sandbox: None,
                path: String::new(),
            }),
            Operation::ProofVerify(ProofVerifyArgs::default()),
            Operation::DisclosureDraft(DisclosureArgs {
                title: "t".into(),
                text: "x".into(),
                language: None,
                proof: None,
            }),
            Operation::SystemDiagnose(DiagnoseArgs {
                unit: Some("nginx".into()),
                ..Default::default()
            }),
            Operation::JournalQuery(JournalQuery {
                priority: Some(3),
                ..Default::default()
            }),
            Operation::ServiceList,
            Operation::ServiceRestart(ServiceRef { unit: "nginx".into() }),
            // issue 15 (software)
            Operation::SoftwareSearch(crate::software::SoftwareSearchArgs {
                query: "flask".into(),
                ecosystem: None,
            }),
            Operation::SoftwarePlan(crate::software::SoftwareInstallArgs {
                request: Some("ich brauche Flask".into()),
                ..Default::default()
            }),
            Operation::SoftwareInstall(crate::software::SoftwareInstallArgs {
                sandbox: Some("web".into()),
                packages: vec![crate::software::PackageRequest {
                    ecosystem: crate::software::Ecosystem::Apt,
                    name: "htop".into(),
                    version: Some("3.2.2-2".into()),
                }],
                ..Default::default()
            }),
            Operation::SoftwareList(crate::software::SoftwareListArgs { sandbox: "web".into() }),
            Operation::SoftwareRemove(crate::software::SoftwareRemoveArgs {
                sandbox: "web".into(),
                packages: vec![],
            }),
            Operation::SoftwareJob(crate::software::SoftwareJobRef {
                job: "software-1".into(),
            }),
            Operation::SoftwareCancel(crate::software::SoftwareJobRef {
                job: "software-1".into(),
            }),
            Operation::SandboxExpose(crate::software::expose::ExposeArgs {
                name: "web".into(),
                port: 5000,
                host_port: None,
            }),
            Operation::SandboxUnexpose(crate::software::expose::UnexposeArgs {
                name: "web".into(),
                port: 5000,
            }),
            Operation::SandboxService(crate::software::expose::ServiceArgs {
                name: "web".into(),
                command: vec!["sleep".into(), "1".into()],
                service: None,
            }),
            // issue 14 (models)
            Operation::ModelList,
            Operation::ModelUse(crate::model::ModelUseArgs {
                url: Some("http://192.168.1.5:8080".into()),
                ..Default::default()
            }),
            Operation::ModelStatus,
            Operation::ModelUnload,
            Operation::ModelTest,
            Operation::PrivacyChannels,
            Operation::WebCert,
        ];
        assert_eq!(ops.len(), OPERATIONS.len());
        for op in &ops {
            let v = serde_json::to_value(op).unwrap();
            assert_eq!(v["op"], op.name(), "serde name of {op:?}");
            let back: Operation = serde_json::from_value(v).unwrap();
            assert_eq!(&back, op);
            assert!(op.name().contains('.'));
        }
        let mut names: Vec<_> = OPERATIONS.iter().map(|i| i.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), OPERATIONS.len());
    }

    #[test]
    fn args_json_is_the_rest_body() {
        let op = Operation::SupervisorKillTask(KillTaskArgs { task: "metrics".into() });
        assert_eq!(op.args_json(), serde_json::json!({"task": "metrics"}));
        assert_eq!(Operation::SystemStatus.args_json(), serde_json::Value::Null);
    }
}
