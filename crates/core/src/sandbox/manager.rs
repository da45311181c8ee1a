//! The sandbox manager: lifecycle rules over [`RootPreparer`], [`ContainerRunner`] and the store's `sandbox` records.
//!
//! Every lifecycle step records its intent (`starting`, `stopping`) before it acquires anything, and releases in
//! reverse order on every failure path, so that [`SandboxManager::reconcile`] can repair what a killed daemon left.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{
    validate_argv, validate_binds, validate_env, validate_limits, validate_name, Bind, ContainerRunner, ExecOutcome,
    ExecSpec, FieldError, Limits, Network, OutputChunk, RootError, RootPreparer, RunnerError, SandboxInfo, SandboxSpec,
    SandboxState, StartRequest, StopOutcome, Template, TemplateKind,
};
use crate::clock::Clock;
use crate::store::{Store, StoreError};

/// The store record kind of sandboxes (key: the sandbox name).
pub const RECORD_KIND: &str = "sandbox";

/// A sandbox as recorded in the store (`kind = "sandbox"`, key = name). The drive manager reads `name`, `state` and
/// `binds[].drive` / `binds[].read_write` of these records; those field names are part of the contract.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SandboxRecord {
    pub name: String,
    pub state: SandboxState,
    pub template: String,
    pub binds: Vec<Bind>,
    pub limits: Limits,
    pub network: Network,
    pub env: Vec<(String, String)>,
    pub ephemeral: bool,
    pub created_by: String,
    pub created_ms: u64,
    /// When the running container started.
    #[serde(default)]
    pub started_ms: Option<u64>,
    #[serde(default)]
    pub unit: Option<String>,
    #[serde(default)]
    pub main_pid: Option<u32>,
    #[serde(default)]
    pub last_error: Option<String>,
}

impl SandboxRecord {
    fn info(&self, now_ms: u64) -> SandboxInfo {
        let running = self.state == SandboxState::Running;
        SandboxInfo {
            name: self.name.clone(),
            state: self.state,
            template: self.template.clone(),
            ephemeral: self.ephemeral,
            network: self.network,
            limits: self.limits,
            binds: self.binds.clone(),
            created_by: self.created_by.clone(),
            created_ms: self.created_ms,
            uptime_seconds: self
                .started_ms
                .filter(|_| running)
                .map(|s| now_ms.saturating_sub(s) / 1000),
            main_pid: self.main_pid.filter(|_| running),
            unit: self.unit.clone().filter(|_| running),
            ip: None,
            cpu_time_ns: None,
            memory_current: None,
            memory_peak: None,
            tasks_current: None,
            last_error: self.last_error.clone(),
            software: None,
        }
    }
}

/// Whether a sandbox record (as stored) binds `drive` or is made from a template on it (`drive:NAME…`).
pub fn record_uses_drive(record: &serde_json::Value, drive: &str) -> bool {
    record
        .get("binds")
        .and_then(|b| b.as_array())
        .is_some_and(|b| b.iter().any(|b| b.get("drive").and_then(|d| d.as_str()) == Some(drive)))
        || record
            .get("template")
            .and_then(|t| t.as_str())
            .and_then(super::template_drive)
            == Some(drive)
}

/// Names of sandboxes whose container may be running (starting, running, stopping) with `drive` bound, or made from
/// a template on it (`drive:NAME…`), read from the records alone. For the drive manager, which refuses to detach such a drive.
pub fn drives_bound_by_active_sandboxes(store: &dyn Store, drive: &str) -> Result<Vec<String>, StoreError> {
    let mut out = Vec::new();
    for (key, value) in store.list_records(RECORD_KIND)? {
        let active = value
            .get("state")
            .and_then(|s| serde_json::from_value::<SandboxState>(s.clone()).ok())
            .is_none_or(SandboxState::is_active);
        if active && record_uses_drive(&value, drive) {
            out.push(key);
        }
    }
    Ok(out)
}

/// Tunables of the manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagerConfig {
    /// How long a stop waits for the container to exit before killing it.
    pub stop_timeout: Duration,
    /// Development mode only: steps (`create.recorded`, `start.recorded`, `start.prepared`, `start.running`,
    /// `restart.stopped`) at which the manager writes the step's name to `pause_marker` and stops making progress,
    /// so a test can SIGKILL the daemon at an exact step.
    pub pause_points: Vec<String>,
    /// See `pause_points`.
    pub pause_marker: Option<std::path::PathBuf>,
}

impl Default for ManagerConfig {
    fn default() -> Self {
        Self {
            stop_timeout: Duration::from_secs(10),
            pause_points: Vec::new(),
            pause_marker: None,
        }
    }
}

/// The class of a [`SandboxError`], for mapping to HTTP statuses and D-Bus error names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxErrorKind {
    NotFound,
    InvalidArgument,
    FailedPrecondition,
    Busy,
    Internal,
}

/// Why a sandbox operation did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("sandbox {name} not found")]
    NotFound { name: String },
    #[error("template {template} not found")]
    TemplateNotFound { template: String },
    #[error("invalid {field}: {reason}")]
    InvalidArgument { field: &'static str, reason: String },
    #[error("sandbox {name} already exists")]
    AlreadyExists { name: String },
    #[error("sandbox {name} is {state}; {operation} needs it {needed}")]
    WrongState {
        name: String,
        state: SandboxState,
        operation: &'static str,
        needed: &'static str,
    },
    #[error("sandbox {name} is busy ({state}); try again after it settled")]
    Busy { name: String, state: SandboxState },
    #[error("cannot {operation} of sandbox {name}")]
    Root {
        name: String,
        operation: &'static str,
        #[source]
        source: RootError,
    },
    #[error("cannot {operation} sandbox {name}")]
    Runner {
        name: String,
        operation: &'static str,
        #[source]
        source: RunnerError,
    },
    #[error("sandbox store access failed")]
    Store(#[from] StoreError),
    #[error("record of sandbox {name} is unreadable")]
    Record {
        name: String,
        #[source]
        source: serde_json::Error,
    },
}

impl SandboxError {
    /// The class, for front ends.
    pub fn kind(&self) -> SandboxErrorKind {
        match self {
            Self::NotFound { .. } | Self::TemplateNotFound { .. } => SandboxErrorKind::NotFound,
            Self::InvalidArgument { .. } => SandboxErrorKind::InvalidArgument,
            Self::AlreadyExists { .. } | Self::WrongState { .. } => SandboxErrorKind::FailedPrecondition,
            Self::Busy { .. } => SandboxErrorKind::Busy,
            Self::Root { .. } | Self::Runner { .. } | Self::Store(_) | Self::Record { .. } => {
                SandboxErrorKind::Internal
            }
        }
    }

    /// The offending argument of an [`SandboxError::InvalidArgument`].
    pub fn field(&self) -> Option<&'static str> {
        match self {
            Self::InvalidArgument { field, .. } => Some(field),
            _ => None,
        }
    }
}

impl From<FieldError> for SandboxError {
    fn from(e: FieldError) -> Self {
        Self::InvalidArgument {
            field: e.field,
            reason: e.reason,
        }
    }
}

/// What [`SandboxManager::reconcile`] did, by sandbox name.
/// (Schema name `SandboxReconcileReport`: the drive manager's report is another type of the same Rust name, and
/// one hid the other in the OpenAPI document until schemathesis noticed, issue 19.)
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = SandboxReconcileReport)]
pub struct ReconcileReport {
    /// Recorded running and found running.
    pub kept_running: Vec<String>,
    /// Recorded running but gone (killed behind CacheOS's back): now stopped, root released.
    pub marked_stopped: Vec<String>,
    /// Ephemeral sandboxes found not running: record, data and root removed.
    pub cleaned_ephemeral: Vec<String>,
    /// A start or stop was interrupted: container stopped, root released.
    pub interrupted: Vec<String>,
    /// Containers running without (or against) a record: stopped.
    pub stray_containers: Vec<String>,
    /// Runtime roots of non-running sandboxes: released.
    pub released_roots: Vec<String>,
    /// What could not be repaired (full messages); retried at the next reconcile.
    pub errors: Vec<String>,
}

fn full_message(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(e) = src {
        s.push_str(": ");
        s.push_str(&e.to_string());
        src = e.source();
    }
    s
}

/// Sandboxes: validation, lifecycle and records. Lifecycle operations (create, start, stop, restart, remove,
/// reconcile) are serialised by one lock; reads, exec, logs and copies do not take it.
pub struct SandboxManager {
    store: Arc<dyn Store>,
    roots: Arc<dyn RootPreparer>,
    runner: Arc<dyn ContainerRunner>,
    clock: Arc<dyn Clock>,
    templates: RwLock<Vec<Template>>,
    sources: Vec<Arc<dyn super::TemplateSource>>,
    config: ManagerConfig,
    lifecycle: Mutex<()>,
}

impl std::fmt::Debug for SandboxManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxManager")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl SandboxManager {
    pub fn new(
        store: Arc<dyn Store>,
        roots: Arc<dyn RootPreparer>,
        runner: Arc<dyn ContainerRunner>,
        clock: Arc<dyn Clock>,
        templates: Vec<Template>,
        config: ManagerConfig,
    ) -> Self {
        Self {
            store,
            roots,
            runner,
            clock,
            templates: RwLock::new(templates),
            sources: Vec::new(),
            config,
            lifecycle: Mutex::new(()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, ()> {
        self.lifecycle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Also offers the templates of `source`, asked on every lookup (a fixed template, or one of a source added
    /// earlier, of the same name wins).
    pub fn with_template_source(mut self, source: Arc<dyn super::TemplateSource>) -> Self {
        self.sources.push(source);
        self
    }

    /// The known templates, by name: the fixed ones, then those of the source.
    pub fn templates(&self) -> Vec<Template> {
        let mut t = self.templates.read().unwrap_or_else(|e| e.into_inner()).clone();
        for source in &self.sources {
            for s in source.templates() {
                if !t.iter().any(|f| f.name == s.name) {
                    t.push(s);
                }
            }
        }
        t.sort_by(|a, b| a.name.cmp(&b.name));
        t
    }

    /// The names of the known templates, without asking sources for more than names (see
    /// [`super::TemplateSource::names`]).
    pub fn template_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .templates
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|t| t.name.clone())
            .collect();
        for source in &self.sources {
            names.extend(source.names());
        }
        names.sort();
        names.dedup();
        names
    }

    /// One template: a listed one, or one a source makes from its name (`drive:NAME/PATH`).
    pub fn template(&self, name: &str) -> Result<Template, SandboxError> {
        if let Some(t) = self.templates().into_iter().find(|t| t.name == name) {
            return Ok(t);
        }
        for source in &self.sources {
            match source.resolve(name) {
                Some(Ok(t)) => return Ok(t),
                Some(Err(reason)) => {
                    return Err(SandboxError::InvalidArgument {
                        field: "template",
                        reason: format!("{name}: {reason}"),
                    })
                }
                None => {}
            }
        }
        Err(SandboxError::TemplateNotFound {
            template: name.to_owned(),
        })
    }

    /// Adds or replaces a template (for example a directory on a newly attached drive).
    pub fn set_template(&self, template: Template) -> Result<(), SandboxError> {
        validate_name(&template.name).map_err(|e| SandboxError::InvalidArgument {
            field: "template",
            reason: e.reason,
        })?;
        let mut all = self.templates.write().unwrap_or_else(|e| e.into_inner());
        all.retain(|t| t.name != template.name);
        all.push(template);
        Ok(())
    }

    fn load(&self, name: &str) -> Result<SandboxRecord, SandboxError> {
        let value = self
            .store
            .get_record(RECORD_KIND, name)?
            .ok_or_else(|| SandboxError::NotFound { name: name.to_owned() })?;
        serde_json::from_value(value).map_err(|source| SandboxError::Record {
            name: name.to_owned(),
            source,
        })
    }

    fn save(&self, rec: &SandboxRecord) -> Result<(), SandboxError> {
        let value = serde_json::to_value(rec).map_err(|source| SandboxError::Record {
            name: rec.name.clone(),
            source,
        })?;
        self.store.put_record(RECORD_KIND, &rec.name, &value)?;
        Ok(())
    }

    fn records(&self) -> Result<Vec<SandboxRecord>, SandboxError> {
        self.store
            .list_records(RECORD_KIND)?
            .into_iter()
            .map(|(name, value)| serde_json::from_value(value).map_err(|source| SandboxError::Record { name, source }))
            .collect()
    }

    /// The names of the sandboxes, from their records only (no cgroup reads): for presentation, e.g. the chat's
    /// context.
    pub fn names(&self) -> Vec<String> {
        self.store
            .list_records(RECORD_KIND)
            .map(|rs| rs.into_iter().map(|(name, _)| name).collect())
            .unwrap_or_default()
    }

    /// Validates the spec and records a new sandbox in state `created`. Touches nothing on the system.
    pub fn create(&self, spec: SandboxSpec, created_by: &str) -> Result<SandboxInfo, SandboxError> {
        validate_name(&spec.name)?;
        let template = self.template(&spec.template)?;
        validate_limits(&spec.limits)?;
        validate_binds(&spec.binds)?;
        validate_env(&spec.env)?;
        if template.kind == TemplateKind::Image && !spec.ephemeral {
            return Err(SandboxError::InvalidArgument {
                field: "ephemeral",
                reason: format!(
                    "template {} is a disk image, which only ephemeral sandboxes can use",
                    template.name
                ),
            });
        }
        let _guard = self.lock();
        if self.store.get_record(RECORD_KIND, &spec.name)?.is_some() {
            return Err(SandboxError::AlreadyExists { name: spec.name });
        }
        let rec = SandboxRecord {
            name: spec.name,
            state: SandboxState::Created,
            template: spec.template,
            binds: spec.binds,
            limits: spec.limits,
            network: spec.network,
            env: spec.env,
            ephemeral: spec.ephemeral,
            created_by: created_by.to_owned(),
            created_ms: self.clock.now_ms(),
            started_ms: None,
            unit: None,
            main_pid: None,
            last_error: None,
        };
        self.save(&rec)?;
        self.pause_point("create.recorded");
        tracing::info!(sandbox = %rec.name, template = %rec.template, "sandbox created");
        Ok(rec.info(self.clock.now_ms()))
    }

    fn check_settled(rec: &SandboxRecord) -> Result<(), SandboxError> {
        if matches!(rec.state, SandboxState::Starting | SandboxState::Stopping) {
            return Err(SandboxError::Busy {
                name: rec.name.clone(),
                state: rec.state,
            });
        }
        Ok(())
    }

    /// Starts a created, stopped or failed sandbox.
    fn pause_point(&self, point: &str) {
        if !self.config.pause_points.iter().any(|p| p == point) {
            return;
        }
        tracing::warn!(point, "test pause point reached; waiting to be killed");
        if let Some(marker) = &self.config.pause_marker {
            let _ = std::fs::write(marker, point);
        }
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }

    pub fn start(&self, name: &str) -> Result<SandboxInfo, SandboxError> {
        let _guard = self.lock();
        let mut rec = self.load(name)?;
        Self::check_settled(&rec)?;
        if rec.state == SandboxState::Running {
            return Err(SandboxError::WrongState {
                name: name.to_owned(),
                state: rec.state,
                operation: "start",
                needed: "created, stopped or failed",
            });
        }
        self.do_start(&mut rec)?;
        Ok(rec.info(self.clock.now_ms()))
    }

    fn fail_start(&self, rec: &mut SandboxRecord, error: SandboxError) -> SandboxError {
        if let Err(e) = self.roots.release(&rec.name) {
            tracing::error!(sandbox = %rec.name, error = %full_message(&e), "cannot release root after a failed start");
        }
        rec.state = SandboxState::Failed;
        rec.started_ms = None;
        rec.unit = None;
        rec.main_pid = None;
        rec.last_error = Some(full_message(&error));
        if let Err(e) = self.save(rec) {
            tracing::error!(sandbox = %rec.name, error = %full_message(&e), "cannot record a failed start");
        }
        tracing::warn!(sandbox = %rec.name, error = %full_message(&error), "sandbox start failed");
        error
    }

    fn do_start(&self, rec: &mut SandboxRecord) -> Result<(), SandboxError> {
        let name = rec.name.clone();
        let template = self.template(&rec.template)?;
        rec.state = SandboxState::Starting;
        rec.last_error = None;
        self.save(rec)?;
        self.pause_point("start.recorded");
        let root = match self.roots.prepare(&name, &template, rec.ephemeral) {
            Ok(root) => root,
            Err(source) => {
                let e = SandboxError::Root {
                    name: name.clone(),
                    operation: "prepare the root",
                    source,
                };
                return Err(self.fail_start(rec, e));
            }
        };
        self.pause_point("start.prepared");
        let mut binds = rec.binds.clone();
        binds.extend(root.binds.iter().cloned());
        let request = StartRequest {
            name: name.clone(),
            root,
            limits: rec.limits,
            network: rec.network,
            binds,
            env: rec.env.clone(),
            command: template.command.clone(),
        };
        let handle = match self.runner.start(&request) {
            Ok(handle) => handle,
            Err(source) => {
                let e = SandboxError::Runner {
                    name: name.clone(),
                    operation: "start",
                    source,
                };
                return Err(self.fail_start(rec, e));
            }
        };
        self.pause_point("start.running");
        rec.state = SandboxState::Running;
        rec.started_ms = Some(self.clock.now_ms());
        rec.unit = Some(handle.unit);
        rec.main_pid = Some(handle.leader);
        if let Err(e) = self.save(rec) {
            // Nothing records the container: take it down again rather than leave it unrecorded.
            let _ = self.runner.stop(&name, self.config.stop_timeout);
            let _ = self.roots.release(&name);
            return Err(e);
        }
        tracing::info!(sandbox = %name, pid = rec.main_pid, "sandbox started");
        Ok(())
    }

    /// Stops a running sandbox (graceful, then killed after the stop timeout). An ephemeral sandbox is then removed
    /// (record and writable data); the returned info is its last state.
    pub fn stop(&self, name: &str) -> Result<SandboxInfo, SandboxError> {
        let _guard = self.lock();
        let mut rec = self.load(name)?;
        Self::check_settled(&rec)?;
        if rec.state != SandboxState::Running {
            return Err(SandboxError::WrongState {
                name: name.to_owned(),
                state: rec.state,
                operation: "stop",
                needed: "running",
            });
        }
        self.do_stop(&mut rec)?;
        if rec.ephemeral {
            self.do_remove(&rec)?;
        }
        Ok(rec.info(self.clock.now_ms()))
    }

    fn do_stop(&self, rec: &mut SandboxRecord) -> Result<StopOutcome, SandboxError> {
        let name = rec.name.clone();
        rec.state = SandboxState::Stopping;
        self.save(rec)?;
        let outcome = match self.runner.stop(&name, self.config.stop_timeout) {
            Ok(o) => o,
            Err(source) => {
                let e = SandboxError::Runner {
                    name: name.clone(),
                    operation: "stop",
                    source,
                };
                // Whether it still runs is unknown; the next reconcile finds out.
                rec.last_error = Some(full_message(&e));
                let _ = self.save(rec);
                return Err(e);
            }
        };
        rec.state = SandboxState::Stopped;
        rec.started_ms = None;
        rec.unit = None;
        rec.main_pid = None;
        if let Err(source) = self.roots.release(&name) {
            let e = SandboxError::Root {
                name: name.clone(),
                operation: "release the root",
                source,
            };
            rec.last_error = Some(full_message(&e));
            self.save(rec)?;
            return Err(e);
        }
        self.save(rec)?;
        tracing::info!(sandbox = %name, ?outcome, "sandbox stopped");
        Ok(outcome)
    }

    fn do_remove(&self, rec: &SandboxRecord) -> Result<(), SandboxError> {
        let name = &rec.name;
        let root = |operation, source| SandboxError::Root {
            name: name.clone(),
            operation,
            source,
        };
        self.roots.release(name).map_err(|e| root("release the root", e))?;
        self.roots.remove_data(name).map_err(|e| root("remove the data", e))?;
        self.runner.forget(name).map_err(|source| SandboxError::Runner {
            name: name.clone(),
            operation: "forget",
            source,
        })?;
        self.store.delete_record(RECORD_KIND, name)?;
        tracing::info!(sandbox = %name, "sandbox removed");
        Ok(())
    }

    /// Stops a running sandbox (kept, even when ephemeral) and starts it again; starts one that is not running.
    pub fn restart(&self, name: &str) -> Result<SandboxInfo, SandboxError> {
        let _guard = self.lock();
        let mut rec = self.load(name)?;
        Self::check_settled(&rec)?;
        if rec.state == SandboxState::Running {
            self.do_stop(&mut rec)?;
        }
        self.pause_point("restart.stopped");
        self.do_start(&mut rec)?;
        Ok(rec.info(self.clock.now_ms()))
    }

    /// Removes a sandbox: stops it when running, releases its root, removes its writable data, logs and record.
    pub fn remove(&self, name: &str) -> Result<(), SandboxError> {
        let _guard = self.lock();
        let mut rec = self.load(name)?;
        Self::check_settled(&rec)?;
        if rec.state == SandboxState::Running {
            self.do_stop(&mut rec)?;
        }
        self.do_remove(&rec)
    }

    fn running_record(&self, name: &str, operation: &'static str) -> Result<SandboxRecord, SandboxError> {
        let rec = self.load(name)?;
        if rec.state != SandboxState::Running {
            return Err(SandboxError::WrongState {
                name: name.to_owned(),
                state: rec.state,
                operation,
                needed: "running",
            });
        }
        Ok(rec)
    }

    /// The first of `PREFIX-1`, `PREFIX-2`, … that names no sandbox.
    pub fn unused_name(&self, prefix: &str) -> Result<String, SandboxError> {
        let taken: Vec<String> = self.records()?.into_iter().map(|r| r.name).collect();
        Ok((1..)
            .map(|i| format!("{prefix}-{i}"))
            .find(|n| !taken.contains(n))
            .expect("an unbounded range has a free name"))
    }

    /// Runs argv in a new ephemeral sandbox made from `spec` (forced ephemeral): create, start, exec, then stop,
    /// which removes it. Whatever happens to the command, nothing of the sandbox is left afterwards; the error of a
    /// failed teardown is returned only when the command itself got to run cleanly.
    pub fn run(
        &self,
        mut spec: SandboxSpec,
        created_by: &str,
        request: &ExecSpec,
        sink: &mut dyn FnMut(OutputChunk),
    ) -> Result<ExecOutcome, SandboxError> {
        validate_argv(&request.argv)?;
        validate_env(&request.env)?;
        spec.ephemeral = true;
        let name = spec.name.clone();
        self.create(spec, created_by)?;
        let result = self.start(&name).and_then(|_| self.exec(&name, request, sink));
        let teardown = match self.info(&name) {
            Ok(info) if info.state == SandboxState::Running => self.stop(&name).map(|_| ()),
            Ok(_) => self.remove(&name),
            Err(e) if e.kind() == SandboxErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        };
        match (result, teardown) {
            (Ok(outcome), Ok(())) => Ok(outcome),
            (Ok(_), Err(e)) => Err(e),
            (Err(e), teardown) => {
                if let Err(t) = teardown {
                    tracing::error!(sandbox = %name, error = %full_message(&t), "cannot tear down a run sandbox");
                }
                Err(e)
            }
        }
    }

    /// Runs argv inside a running sandbox, streaming output to `sink`. A command not found inside is exit code 127.
    pub fn exec(
        &self,
        name: &str,
        request: &ExecSpec,
        sink: &mut dyn FnMut(OutputChunk),
    ) -> Result<ExecOutcome, SandboxError> {
        self.exec_with_stdin(name, request, None, sink)
    }

    /// Like [`SandboxManager::exec`], with the command's standard input read from `stdin` (empty when `None`).
    pub fn exec_with_stdin(
        &self,
        name: &str,
        request: &ExecSpec,
        stdin: Option<&mut (dyn Read + Send)>,
        sink: &mut dyn FnMut(OutputChunk),
    ) -> Result<ExecOutcome, SandboxError> {
        validate_argv(&request.argv)?;
        validate_env(&request.env)?;
        if let Some(cwd) = &request.cwd {
            if !cwd.is_absolute() {
                return Err(SandboxError::InvalidArgument {
                    field: "cwd",
                    reason: format!("{} is not absolute", cwd.display()),
                });
            }
        }
        let rec = self.running_record(name, "exec")?;
        tracing::info!(sandbox = %name, argv0 = %request.argv[0], "exec");
        self.runner
            .exec(name, &rec.env, request, stdin, sink)
            .map_err(|source| SandboxError::Runner {
                name: name.to_owned(),
                operation: "exec in",
                source,
            })
    }

    /// The last `lines` lines of the sandbox's console output.
    pub fn logs(&self, name: &str, lines: usize) -> Result<Vec<String>, SandboxError> {
        self.load(name)?;
        self.runner.logs(name, lines).map_err(|source| SandboxError::Runner {
            name: name.to_owned(),
            operation: "read the logs of",
            source,
        })
    }

    fn check_inside(inside: &Path) -> Result<(), SandboxError> {
        if !inside.is_absolute() || inside == Path::new("/") {
            return Err(SandboxError::InvalidArgument {
                field: "path",
                reason: format!("{} is not an absolute path below /", inside.display()),
            });
        }
        if inside.to_str().is_none_or(|p| p.contains('\0')) {
            return Err(SandboxError::InvalidArgument {
                field: "path",
                reason: "must be UTF-8 without NUL".into(),
            });
        }
        Ok(())
    }

    /// Writes the bytes of `source` as the regular file `inside_target` of a running sandbox. Returns the size.
    pub fn copy_in(&self, name: &str, source: &mut dyn Read, inside_target: &Path) -> Result<u64, SandboxError> {
        Self::check_inside(inside_target)?;
        self.running_record(name, "copy-in")?;
        self.runner
            .copy_in(name, source, inside_target)
            .map_err(|source| SandboxError::Runner {
                name: name.to_owned(),
                operation: "copy into",
                source,
            })
    }

    /// Streams the regular file `inside_source` of a running sandbox into `sink`. Returns the size.
    pub fn copy_out(&self, name: &str, inside_source: &Path, sink: &mut dyn Write) -> Result<u64, SandboxError> {
        Self::check_inside(inside_source)?;
        self.running_record(name, "copy-out")?;
        self.runner
            .copy_out(name, inside_source, sink)
            .map_err(|source| SandboxError::Runner {
                name: name.to_owned(),
                operation: "copy out of",
                source,
            })
    }

    /// Runs `tar` inside a running sandbox on a directory (the sandbox's own tar unpacks or packs, with the
    /// sandbox's privileges only): `argv` is tar's arguments, `stdin`/`sink` the archive stream.
    fn tar(
        &self,
        name: &str,
        operation: &'static str,
        argv: Vec<String>,
        stdin: Option<&mut (dyn Read + Send)>,
        sink: &mut dyn FnMut(OutputChunk),
    ) -> Result<(), SandboxError> {
        let mut err = Vec::new();
        let spec = ExecSpec {
            argv,
            env: Vec::new(),
            cwd: None,
            time_limit: None,
        };
        let outcome = self.exec_with_stdin(name, &spec, stdin, &mut |c| match c {
            OutputChunk::Stderr(b) => err.extend_from_slice(&b),
            other => sink(other),
        })?;
        if outcome.exit_code != 0 {
            return Err(SandboxError::Runner {
                name: name.to_owned(),
                operation,
                source: RunnerError::Exec {
                    name: name.to_owned(),
                    source: std::io::Error::other(format!(
                        "tar inside the sandbox exited with {}: {}",
                        outcome.exit_code,
                        String::from_utf8_lossy(&err).trim()
                    )),
                },
            });
        }
        Ok(())
    }

    /// Unpacks the tar archive read from `source` into the directory `inside_dir` of a running sandbox (created if
    /// missing), with the sandbox's own `tar`.
    pub fn copy_in_archive(
        &self,
        name: &str,
        source: &mut (dyn Read + Send),
        inside_dir: &Path,
    ) -> Result<(), SandboxError> {
        Self::check_inside(inside_dir)?;
        let dir = inside_dir.to_string_lossy().into_owned();
        self.exec(
            name,
            &ExecSpec {
                argv: vec!["mkdir".into(), "-p".into(), "--".into(), dir.clone()],
                env: Vec::new(),
                cwd: None,
                time_limit: Some(Duration::from_secs(30)),
            },
            &mut |_| {},
        )?;
        let argv = ["tar", "-x", "-f", "-", "-C", &dir].map(str::to_owned).to_vec();
        self.tar(name, "copy into", argv, Some(source), &mut |_| {})
    }

    /// Streams the directory `inside_dir` of a running sandbox as a tar archive into `sink`, packed by the
    /// sandbox's own `tar`. Returns the archive's size.
    pub fn copy_out_archive(&self, name: &str, inside_dir: &Path, sink: &mut dyn Write) -> Result<u64, SandboxError> {
        Self::check_inside(inside_dir)?;
        let dir = inside_dir.to_string_lossy().into_owned();
        let argv = ["tar", "-c", "-f", "-", "-C", &dir, "."].map(str::to_owned).to_vec();
        let mut size = 0u64;
        let mut write_err = None;
        self.tar(name, "copy out of", argv, None, &mut |c| {
            if let OutputChunk::Stdout(b) = c {
                if write_err.is_none() {
                    match sink.write_all(&b) {
                        Ok(()) => size += b.len() as u64,
                        Err(e) => write_err = Some(e),
                    }
                }
            }
        })?;
        if let Some(e) = write_err {
            return Err(SandboxError::Runner {
                name: name.to_owned(),
                operation: "copy out of",
                source: RunnerError::Copy {
                    name: name.to_owned(),
                    from: inside_dir.to_owned(),
                    to: "the output stream".into(),
                    source: e,
                },
            });
        }
        Ok(size)
    }

    /// Opens an interactive login shell as root in a running sandbox; returns the pseudo-terminal's controller
    /// side (see [`ContainerRunner::shell`]). `term` must look like a terminal type (`xterm-256color`).
    pub fn shell(&self, name: &str, term: &str) -> Result<OwnedFd, SandboxError> {
        if term.is_empty() || term.len() > 64 || !term.chars().all(|c| c.is_ascii_alphanumeric() || "-_.+".contains(c))
        {
            return Err(SandboxError::InvalidArgument {
                field: "term",
                reason: format!("{term:?} is not a terminal type"),
            });
        }
        let rec = self.running_record(name, "shell")?;
        tracing::info!(sandbox = %name, "interactive shell");
        self.runner
            .shell(name, &rec.env, term)
            .map_err(|source| SandboxError::Runner {
                name: name.to_owned(),
                operation: "open a shell in",
                source,
            })
    }

    /// Every sandbox by name, with live cgroup figures (CPU time, memory, tasks, IP) for the running ones.
    pub fn list(&self) -> Result<Vec<SandboxInfo>, SandboxError> {
        Ok(self.records()?.iter().map(|r| self.live(r)).collect())
    }

    /// One sandbox, with live figures from its cgroup while it runs.
    pub fn info(&self, name: &str) -> Result<SandboxInfo, SandboxError> {
        Ok(self.live(&self.load(name)?))
    }

    /// A record's info, with live figures from its cgroup while it runs.
    fn live(&self, rec: &SandboxRecord) -> SandboxInfo {
        let name = rec.name.as_str();
        let mut info = rec.info(self.clock.now_ms());
        if rec.state == SandboxState::Running {
            match self.runner.stats(name) {
                Ok(s) => {
                    info.cpu_time_ns = s.cpu_time_ns;
                    info.memory_current = s.memory_current;
                    info.memory_peak = s.memory_peak;
                    info.tasks_current = s.tasks_current;
                    info.ip = s.ip;
                }
                Err(e) => tracing::warn!(sandbox = %name, error = %full_message(&e), "cannot read sandbox figures"),
            }
        }
        info
    }

    /// Repairs records and the system against each other (at daemon start, and whenever asked):
    /// a sandbox recorded running whose container is gone becomes `stopped` (ephemeral ones are removed);
    /// interrupted starts and stops are finished as stops; containers without a record are stopped; runtime roots
    /// of sandboxes that do not run are released. Failures are collected in the report, not returned.
    pub fn reconcile(&self) -> Result<ReconcileReport, SandboxError> {
        let _guard = self.lock();
        let mut report = ReconcileReport::default();
        let records = self.records()?;
        let running = self.runner.running().map_err(|source| SandboxError::Runner {
            name: "*".into(),
            operation: "list running",
            source,
        })?;
        let mut errors = Vec::new();
        let mut note = |r: Result<(), String>| {
            if let Err(e) = r {
                errors.push(e);
            }
        };
        for mut rec in records {
            let name = rec.name.clone();
            let live = running.iter().find(|c| c.name == name);
            match (rec.state, live) {
                (SandboxState::Running, Some(c)) => {
                    if rec.main_pid != Some(c.leader) {
                        rec.main_pid = Some(c.leader);
                        note(self.save(&rec).map_err(|e| full_message(&e)));
                    }
                    report.kept_running.push(name);
                    continue;
                }
                // Ephemeral ones are reported as cleaned below.
                (SandboxState::Running, None) if !rec.ephemeral => report.marked_stopped.push(name.clone()),
                (SandboxState::Starting | SandboxState::Stopping, _) if !rec.ephemeral => {
                    report.interrupted.push(name.clone())
                }
                (SandboxState::Running | SandboxState::Starting | SandboxState::Stopping, _) => {}
                (_, Some(_)) => report.stray_containers.push(name.clone()),
                (SandboxState::Created, None) => continue,
                (SandboxState::Stopped | SandboxState::Failed, None) if !rec.ephemeral => continue,
                (SandboxState::Stopped | SandboxState::Failed, None) => {}
            }
            // Also when nothing runs: the runner then releases what the dead container left (cgroups).
            {
                note(
                    self.runner
                        .stop(&name, self.config.stop_timeout)
                        .map(|_| ())
                        .map_err(|e| full_message(&e)),
                );
            }
            note(self.roots.release(&name).map_err(|e| full_message(&e)));
            if rec.ephemeral {
                match self.do_remove(&rec) {
                    Ok(()) => report.cleaned_ephemeral.push(name),
                    Err(e) => note(Err(full_message(&e))),
                }
                continue;
            }
            if rec.state == SandboxState::Running {
                rec.last_error = Some("the container stopped outside cacheos".into());
            }
            rec.state = SandboxState::Stopped;
            rec.started_ms = None;
            rec.unit = None;
            rec.main_pid = None;
            note(self.save(&rec).map_err(|e| full_message(&e)));
        }
        let known: Vec<String> = self.records()?.into_iter().map(|r| r.name).collect();
        for c in &running {
            if !known.contains(&c.name) {
                report.stray_containers.push(c.name.clone());
                note(
                    self.runner
                        .stop(&c.name, self.config.stop_timeout)
                        .map(|_| ())
                        .map_err(|e| full_message(&e)),
                );
                note(self.runner.forget(&c.name).map_err(|e| full_message(&e)));
                note(self.roots.release(&c.name).map_err(|e| full_message(&e)));
            }
        }
        match self.roots.prepared() {
            Ok(prepared) => {
                let running_now: Vec<String> = self
                    .records()?
                    .into_iter()
                    .filter(|r| r.state == SandboxState::Running)
                    .map(|r| r.name)
                    .collect();
                for name in prepared {
                    if !running_now.contains(&name) {
                        note(self.roots.release(&name).map_err(|e| full_message(&e)));
                        report.released_roots.push(name);
                    }
                }
            }
            Err(e) => note(Err(full_message(&e))),
        }
        report.errors = errors;
        if report != ReconcileReport::default() {
            tracing::info!(?report, "sandboxes reconciled");
        }
        Ok(report)
    }
}
