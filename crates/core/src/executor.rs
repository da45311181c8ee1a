//! The executor: validate, authorise, run, audit, publish. The only path by which anything happens.

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use utoipa::ToSchema;

use crate::audit::{AuditFilter, AuditRecord, NewAuditRecord, Outcome};
use crate::auth::{Authorizer, Caller};
use crate::clock::Clock;
use crate::drive::manager::{Created, ReconcileReport};
use crate::drive::{DriveInfo, DriveManager, FileListing, ImageFile, Uploaded};
use crate::error::CoreError;
use crate::event::{EventBus, EventKind, SandboxAction};
use crate::operation::{Operation, Risk};
use crate::sandbox::ops::{BindArgs, ExecResult, SandboxLogs};
use crate::sandbox::ops::{Copied, ShellOpened};
use crate::sandbox::{
    Bind, ExecSpec, OutputChunk, ReconcileReport as SandboxReconcileReport, SandboxInfo, SandboxManager, SandboxSpec,
    Template,
};
use crate::store::{Durability, Store, StoreError, INTENT_KIND};
use crate::supervisor::{SupervisorControl, SupervisorStatus};
use crate::system::{SystemProbe, SystemStatus};

/// Error code of the audit record of an operation that a crash interrupted (see [`Core::settle_interrupted`]).
pub const INTERRUPTED: &str = "interrupted";

/// The result of an operation. Serialised without a tag: front ends know which variant an operation returns.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(untagged)]
pub enum Output {
    /// `system.status`.
    SystemStatus(SystemStatus),
    /// `supervisor.status`.
    SupervisorStatus(SupervisorStatus),
    /// `audit.query`.
    Audit(Vec<AuditRecord>),
    /// `web.token`.
    WebToken(WebToken),
    /// `drive.info`, `drive.attach`, `drive.snapshot`, `drive.discard`, `drive.commit`, `drive.persist`.
    Drive(DriveInfo),
    /// `drive.list`.
    Drives(Vec<DriveInfo>),
    /// `drive.images`.
    Images(Vec<ImageFile>),
    /// `drive.files`.
    Files(FileListing),
    /// `drive.create`.
    Created(Created),
    /// `drive.upload`.
    Uploaded(Uploaded),
    /// `drive.reconcile`.
    Reconciled(ReconcileReport),
    /// `sandbox.info`, `sandbox.create`, `sandbox.start`, `sandbox.stop`, `sandbox.restart`.
    Sandbox(SandboxInfo),
    /// `sandbox.list`.
    Sandboxes(Vec<SandboxInfo>),
    /// `sandbox.templates`.
    Templates(Vec<Template>),
    /// `sandbox.exec`.
    Exec(ExecResult),
    /// `sandbox.copy-in`, `sandbox.copy-out`.
    Copied(Copied),
    /// `sandbox.shell`.
    ShellOpened(ShellOpened),
    /// `sandbox.logs`.
    SandboxLogs(SandboxLogs),
    /// `sandbox.reconcile`.
    SandboxReconciled(SandboxReconcileReport),
    /// `system.history`.
    SystemHistory(Vec<crate::system::MetricSample>),
    /// Operations that return nothing but success.
    Done(Done),
    // issue 17 (kb)
    /// `kb.index`.
    KbJob(crate::kb::KbJob),
    /// `kb.sources`.
    KbSources(Vec<crate::kb::KbSource>),
    /// `kb.search`.
    KbSearch(crate::kb::KbSearchResult),
    /// `kb.ask`.
    KbAnswer(crate::kb::KbAnswer),
    // issue 18 (licences)
    /// `license.scan`.
    LicenseScan(Box<cacheos_license::ScanReport>),
    /// `sbom.create`.
    Sbom(Box<cacheos_license::SbomDocuments>),
    /// `notice.create`.
    Notice(cacheos_license::Notice),
    /// `proof.create`.
    Proof(Box<cacheos_license::ProofManifest>),
    /// `proof.verify`.
    ProofVerified(cacheos_license::Verification),
    /// `disclosure.draft`.
    Disclosure(cacheos_license::Disclosure),
    // issue 16 (diagnose)
    /// `system.diagnose`.
    Diagnosis(crate::diagnose::Diagnosis),
    /// `journal.query`.
    Journal(crate::diagnose::JournalPage),
    /// `service.list`.
    Services(Vec<crate::diagnose::ServiceInfo>),
    /// `service.restart`.
    Service(crate::diagnose::ServiceInfo),
    // issue 15 (software)
    /// `software.search`.
    SoftwareSearch(crate::software::SearchResult),
    /// `software.plan`.
    SoftwarePlan(crate::software::SoftwarePlan),
    /// `software.install`, `software.job`.
    SoftwareJob(crate::software::SoftwareJob),
    /// `software.list`, `software.remove`.
    SoftwareLock(crate::software::Lockfile),
    /// `sandbox.expose`, `sandbox.unexpose`, `sandbox.service`.
    SandboxNetwork(crate::software::expose::SandboxNetworkInfo),
    // issue 14 (models)
    /// `model.list`.
    ModelList(crate::model::ModelList),
    /// `model.use`, `model.status`, `model.unload`.
    ModelStatus(crate::model::ModelStatus),
    /// `model.test`.
    ModelTest(crate::model::ModelTestResult),
    /// `privacy.channels`.
    Privacy(crate::model::PrivacyReport),
    // issue 19 (trust)
    /// `web.cert`.
    WebCert(crate::web_cert::WebCert),
}

/// The web token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct WebToken {
    /// Bearer token for `Authorization: Bearer <token>`.
    pub token: String,
}

/// Success without data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Done {
    /// What was done, in one line.
    pub message: String,
}

/// Everything the core needs from the outside world.
pub struct CoreDeps {
    /// Durable state.
    pub store: Arc<dyn Store>,
    /// Reads the machine.
    pub probe: Arc<dyn SystemProbe>,
    /// The supervisor.
    pub supervisor: Arc<dyn SupervisorControl>,
    /// Who may do what.
    pub authorizer: Arc<dyn Authorizer>,
    /// Wall clock.
    pub clock: Arc<dyn Clock>,
    /// Event bus.
    pub events: EventBus,
    /// The web token, when the web port is configured.
    pub web_token: Option<String>,
    /// Virtual drives, when this daemon manages them.
    pub drives: Option<Arc<DriveManager>>,
    /// Sandboxes, when this daemon manages them.
    pub sandboxes: Option<Arc<SandboxManager>>,
    /// Metric samples, filled by the daemon's metrics worker.
    pub metrics: Arc<crate::system::MetricsHistory>,
}

/// Where the output of a streamed `sandbox.exec` goes, chunk by chunk.
pub type OutputSink<'a> = &'a mut (dyn FnMut(OutputChunk) + Send);

/// The byte streams an operation may use besides its arguments.
enum Streams<'a> {
    None,
    /// Where `sandbox.exec` sends output as it comes.
    Sink(OutputSink<'a>),
    /// What `drive.upload` stores and `sandbox.copy-in` writes.
    Input(&'a mut (dyn std::io::Read + Send)),
    /// Where `sandbox.copy-out` writes.
    Output(&'a mut (dyn std::io::Write + Send)),
    /// Where `sandbox.shell` puts the terminal's controller side.
    Terminal(&'a mut Option<std::os::fd::OwnedFd>),
}

impl<'a> Streams<'a> {
    /// The one stream given, in its slot: (sink, input, output, terminal).
    #[allow(clippy::type_complexity)]
    fn split(
        self,
    ) -> (
        Option<OutputSink<'a>>,
        Option<&'a mut (dyn std::io::Read + Send)>,
        Option<&'a mut (dyn std::io::Write + Send)>,
        Option<&'a mut Option<std::os::fd::OwnedFd>>,
    ) {
        match self {
            Streams::None => (None, None, None, None),
            Streams::Sink(s) => (Some(s), None, None, None),
            Streams::Input(i) => (None, Some(i), None, None),
            Streams::Output(o) => (None, None, Some(o), None),
            Streams::Terminal(t) => (None, None, None, Some(t)),
        }
    }
}

/// Runs an exec-like call with a sink that streams to `sink` when there is one and otherwise collects the output
/// into the returned [`ExecResult`].
fn exec_result(
    sink: Option<OutputSink<'_>>,
    call: impl FnOnce(&mut dyn FnMut(OutputChunk)) -> Result<crate::sandbox::ExecOutcome, crate::sandbox::SandboxError>,
) -> Result<ExecResult, crate::sandbox::SandboxError> {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let outcome = match sink {
        Some(sink) => call(&mut |c| sink(c))?,
        None => call(&mut |c| match c {
            OutputChunk::Stdout(b) => out.extend_from_slice(&b),
            OutputChunk::Stderr(b) => err.extend_from_slice(&b),
        })?,
    };
    Ok(ExecResult {
        exit_code: outcome.exit_code,
        timed_out: outcome.timed_out,
        stdout: String::from_utf8_lossy(&out).into_owned(),
        stderr: String::from_utf8_lossy(&err).into_owned(),
    })
}

/// The core. Cheap to share behind an `Arc`; `execute` is synchronous and may block on I/O, so async front ends
/// call it from a blocking thread.
pub struct Core {
    deps: CoreDeps,
    kb: std::sync::OnceLock<KbDeps>,
    /// The licence tools (issue 18), set once by the daemon.
    licensing: std::sync::OnceLock<Arc<crate::license::Licensing>>,
    diagnostics: Option<Arc<crate::diagnose::Diagnostics>>,
    stats: crate::diagnose::metrics::OperationStats,
    /// Software installs (issue 15), set once by the daemon.
    software: std::sync::OnceLock<Arc<crate::software::install::Software>>,
    /// The model backends (issue 14), set once by the daemon.
    models: std::sync::OnceLock<model::ModelDeps>,
    /// The web port's certificate (issue 19), set once by the daemon.
    web_cert: std::sync::OnceLock<crate::web_cert::WebCert>,
    /// Makes intent keys unique within a millisecond.
    intent_seq: std::sync::atomic::AtomicU64,
    /// What was failed at the last [`Core::check_failures`].
    failures: crate::diagnose::watch::FailureWatch,
}

/// What the `kb.*` operations need: the jobs over the index and where the appliance's documentation is.
pub struct KbDeps {
    /// Indexing jobs over the index.
    pub jobs: crate::kb::KbJobs,
    /// The directory of the `docs` source (`/usr/share/cacheos/doc` in the appliance).
    pub docs_dir: std::path::PathBuf,
}

mod license;
pub mod model;
pub use model::ModelDeps;

impl Core {
    /// A core over these dependencies.
    pub fn new(deps: CoreDeps) -> Self {
        Self {
            deps,
            kb: std::sync::OnceLock::new(),
            licensing: std::sync::OnceLock::new(),
            diagnostics: None,
            stats: Default::default(),
            software: std::sync::OnceLock::new(),
            models: std::sync::OnceLock::new(),
            web_cert: std::sync::OnceLock::new(),
            intent_seq: std::sync::atomic::AtomicU64::new(0),
            failures: Default::default(),
        }
    }

    /// Looks for units and sandboxes that failed since the last check and publishes a
    /// [`EventKind::ServiceFailed`] for each (the daemon calls it with every metrics sample). Returns how many.
    /// Without systemd only sandboxes are watched; a unit list that cannot be read leaves the units as they were.
    pub fn check_failures(&self) -> usize {
        use crate::diagnose::TargetKind;
        let mut failed = Vec::new();
        let units = self.diagnostics.as_deref().map(|d| d.units().list());
        match units {
            Some(Ok(list)) => failed.extend(
                list.into_iter()
                    .filter(|u| u.active_state == "failed" && !u.name.starts_with("cacheos-sandbox-"))
                    .map(|u| (TargetKind::Unit, u.name, None)),
            ),
            Some(Err(crate::diagnose::DiagnoseError::NoSystemd)) | None => {}
            Some(Err(e)) => {
                tracing::debug!(error = %e, "failure watch: units not listed");
                return 0;
            }
        }
        if let Some(s) = self.sandboxes() {
            match s.list() {
                Ok(list) => failed.extend(
                    list.into_iter()
                        .filter(|i| i.state == crate::sandbox::SandboxState::Failed)
                        .map(|i| (TargetKind::Sandbox, i.name, i.last_error)),
                ),
                Err(e) => {
                    tracing::debug!(error = %e, "failure watch: sandboxes not listed");
                    return 0;
                }
            }
        }
        let events = self.failures.check(failed);
        let n = events.len();
        for e in events {
            self.events().publish(e);
        }
        n
    }

    pub(crate) fn web_cert_slot(&self) -> &std::sync::OnceLock<crate::web_cert::WebCert> {
        &self.web_cert
    }

    /// Adds the diagnosis sources (systemd units and the journal) behind `system.diagnose`, `journal.query`,
    /// `service.list` and `service.restart`; without them those operations fail as not available.
    pub fn with_diagnostics(mut self, d: Arc<crate::diagnose::Diagnostics>) -> Self {
        self.diagnostics = Some(d);
        self
    }

    /// Counts and durations of the operations run so far, by name and outcome (for `/metrics`).
    pub fn operation_stats(&self) -> &crate::diagnose::metrics::OperationStats {
        &self.stats
    }

    /// What `/metrics` shows: the machine, operation counters, sandboxes, drives, the audit store and the
    /// supervisor's tasks. Reads state directly (no operation, no audit record per scrape); the web front end puts
    /// it behind the API's access rules.
    pub fn scrape(&self) -> crate::diagnose::metrics::Scrape {
        use crate::diagnose::metrics::{SandboxSeries, Scrape};
        let sandboxes = self
            .deps
            .sandboxes
            .as_deref()
            .and_then(|m| m.list().ok())
            .unwrap_or_default()
            .into_iter()
            .map(|s| SandboxSeries {
                state: s.state.as_str(),
                cpu_seconds: s.cpu_time_ns.map(|n| n as f64 / 1e9),
                memory_bytes: s.memory_current,
                memory_max_bytes: s.limits.memory_max,
                name: s.name,
            })
            .collect();
        let drives = self
            .deps
            .drives
            .as_deref()
            .and_then(|m| m.list().ok())
            .unwrap_or_default()
            .into_iter()
            .map(|d| (d.name, format!("{:?}", d.state).to_lowercase(), d.virtual_size))
            .collect();
        Scrape {
            status: self.deps.probe.status().ok(),
            cpus: self.deps.probe.cpu_times(),
            operations: self.stats.snapshot(),
            sandboxes,
            drives,
            audit_records: self.deps.store.audit_len().ok(),
            tasks: self
                .deps
                .supervisor
                .status()
                .tasks
                .into_iter()
                .map(|t| (t.name, t.state == crate::supervisor::TaskState::Running, t.restarts))
                .collect(),
        }
    }

    fn diagnostics(&self) -> Result<&crate::diagnose::Diagnostics, CoreError> {
        self.diagnostics.as_deref().ok_or_else(|| {
            CoreError::FailedPrecondition(
                "diagnosis (systemd units and the journal) is not available in this daemon".into(),
            )
        })
    }

    /// Gives the core its licence tools (signing key, sandbox roots); without them the licence operations fail
    /// with a precondition error. Only the first call counts.
    pub fn set_licensing(&self, l: Arc<crate::license::Licensing>) {
        let _ = self.licensing.set(l);
    }

    /// The licence tools, when set (for front ends that show the public key).
    pub fn licensing_tools(&self) -> Option<&Arc<crate::license::Licensing>> {
        self.licensing.get()
    }

    /// Gives the core its knowledge base (once; later calls are ignored). Without one, `kb.*` operations fail
    /// with a precondition error.
    pub fn set_kb(&self, kb: KbDeps) {
        let _ = self.kb.set(kb);
    }

    /// The event bus, for front ends that subscribe.
    pub fn events(&self) -> &EventBus {
        &self.deps.events
    }

    /// Validates, authorises, runs and audits `op` on behalf of `caller`.
    pub fn execute(&self, caller: &Caller, op: Operation) -> Result<Output, CoreError> {
        self.execute_inner(caller, op, Streams::None)
    }

    /// Like [`Core::execute`], but a `sandbox.exec` sends its output to `sink` as it comes instead of collecting it
    /// (the returned [`ExecResult`] then has empty `stdout` and `stderr`). Other operations ignore the sink.
    pub fn execute_streaming(&self, caller: &Caller, op: Operation, sink: OutputSink<'_>) -> Result<Output, CoreError> {
        self.execute_inner(caller, op, Streams::Sink(sink))
    }

    /// Like [`Core::execute`] for an operation that consumes a byte stream (`drive.upload` reads the file from
    /// `input`); validated, authorised, audited and published exactly like every other operation. Other operations
    /// ignore the input; `drive.upload` through [`Core::execute`] is refused.
    pub fn execute_with_input(
        &self,
        caller: &Caller,
        op: Operation,
        input: &mut (dyn std::io::Read + Send),
    ) -> Result<Output, CoreError> {
        self.execute_inner(caller, op, Streams::Input(input))
    }

    /// Like [`Core::execute`] for an operation that produces a byte stream (`sandbox.copy-out` writes the file or
    /// archive to `output`). Other operations ignore the output.
    pub fn execute_with_output(
        &self,
        caller: &Caller,
        op: Operation,
        output: &mut (dyn std::io::Write + Send),
    ) -> Result<Output, CoreError> {
        self.execute_inner(caller, op, Streams::Output(output))
    }

    /// Like [`Core::execute`] for `sandbox.shell`: on success `terminal` holds the controller side of the shell's
    /// pseudo-terminal, which the front end hands to its caller. Through [`Core::execute`] the shell is refused.
    pub fn execute_shell(
        &self,
        caller: &Caller,
        op: Operation,
        terminal: &mut Option<std::os::fd::OwnedFd>,
    ) -> Result<Output, CoreError> {
        self.execute_inner(caller, op, Streams::Terminal(terminal))
    }

    fn execute_inner(&self, caller: &Caller, op: Operation, streams: Streams<'_>) -> Result<Output, CoreError> {
        let info = op.info();
        let span =
            tracing::info_span!("op", name = info.name, frontend = %caller.frontend, principal = %caller.principal);
        let _g = span.enter();
        let started = Instant::now();
        let time_ms = self.deps.clock.now_ms();

        // An operation that changes something leaves a durable intent before it acts: the audit record it gets if
        // it never finishes (a crash, SIGKILL, power loss). Its real audit record replaces it in the same commit.
        let mut intent = None;
        let result = self
            .validate(&op)
            .and_then(|()| {
                self.deps
                    .authorizer
                    .authorize(caller, info)
                    .map_err(|reason| CoreError::PermissionDenied {
                        operation: info.name,
                        reason,
                    })
            })
            .and_then(|()| {
                if op.risk() != Risk::ReadOnly {
                    intent = Some(self.record_intent(caller, &op, time_ms)?);
                }
                self.run(caller, &op, streams)
            });

        let outcome = match &result {
            Ok(_) => Outcome::Ok,
            Err(CoreError::PermissionDenied { .. }) => Outcome::Denied,
            Err(_) => Outcome::Error,
        };
        let (error_code, error) = match &result {
            Ok(_) => (None, None),
            Err(e) => (Some(e.code().to_string()), Some(e.full_message())),
        };
        match &result {
            Ok(_) => tracing::debug!("operation succeeded"),
            Err(e) => tracing::info!(code = e.code(), error = %e.full_message(), "operation failed"),
        }
        // A successful read-only operation changed nothing: its audit record may wait for the next group commit's
        // fsync, and it is not published (subscribers react to changes and failures; publishing every read cost a
        // D-Bus signal per request and made web pages that reload on `operation-finished` reload themselves).
        let read_ok = op.risk() == Risk::ReadOnly && outcome == Outcome::Ok;
        let durability = if read_ok {
            Durability::Eventual
        } else {
            Durability::Immediate
        };
        let rec = NewAuditRecord {
            time_ms,
            frontend: caller.frontend,
            principal: caller.principal.clone(),
            operation: info.name.to_string(),
            args: op.audit_args(),
            outcome,
            error_code,
            error,
            duration_us: {
                let us = started.elapsed().as_micros() as u64;
                self.stats.record(info.name, outcome, us);
                us
            },
            session: caller.session.clone(),
            utterance: caller.utterance.clone(),
        };
        let appended = match &intent {
            Some(key) => self.deps.store.append_audit_closing(rec, durability, key),
            None => self.deps.store.append_audit(rec, durability),
        };
        let audit_id = match appended {
            Ok(r) => Some(r.id),
            Err(e) => {
                tracing::error!(error = %e, "audit record could not be written");
                None
            }
        };
        if !read_ok {
            self.deps.events.publish(EventKind::OperationFinished {
                operation: info.name.to_string(),
                frontend: caller.frontend,
                outcome,
                audit_id,
            });
        }
        result
    }

    /// Writes the intent of `op` (kind [`INTENT_KIND`]): the audit record it gets when it is interrupted.
    fn record_intent(&self, caller: &Caller, op: &Operation, time_ms: u64) -> Result<String, CoreError> {
        let seq = self.intent_seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let key = format!("{time_ms:016}-{seq:06}");
        let rec = NewAuditRecord {
            time_ms,
            frontend: caller.frontend,
            principal: caller.principal.clone(),
            operation: op.name().to_string(),
            args: op.audit_args(),
            outcome: Outcome::Error,
            error_code: Some(INTERRUPTED.to_string()),
            error: Some(
                "interrupted: cacheosd ended while this operation ran (crash, kill or power loss); \
                 what it had done was reconciled at the next start"
                    .into(),
            ),
            duration_us: 0,
            session: caller.session.clone(),
            utterance: caller.utterance.clone(),
        };
        let value = serde_json::to_value(&rec).map_err(|e| StoreError::backend("encode intent", e))?;
        self.deps.store.put_record(INTENT_KIND, &key, &value)?;
        Ok(key)
    }

    /// At start, before anything else runs: turns every intent left by operations a crash interrupted into its
    /// audit record (outcome `error`, code `interrupted`) and publishes it. Returns those records, oldest first.
    /// An intent that cannot be read is dropped with a warning (it names no operation that could be recorded).
    pub fn settle_interrupted(&self) -> Result<Vec<AuditRecord>, CoreError> {
        let mut out = Vec::new();
        for (key, value) in self.deps.store.list_records(INTENT_KIND)? {
            let rec: NewAuditRecord = match serde_json::from_value(value) {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(intent = %key, error = %e, "unreadable operation intent dropped");
                    self.deps.store.delete_record(INTENT_KIND, &key)?;
                    continue;
                }
            };
            tracing::warn!(operation = %rec.operation, intent = %key, "operation was interrupted by the last stop");
            let r = self.deps.store.append_audit_closing(rec, Durability::Immediate, &key)?;
            self.deps.events.publish(EventKind::OperationFinished {
                operation: r.record.operation.clone(),
                frontend: r.record.frontend,
                outcome: r.record.outcome,
                audit_id: Some(r.id),
            });
            out.push(r);
        }
        Ok(out)
    }

    fn validate(&self, op: &Operation) -> Result<(), CoreError> {
        match op {
            Operation::AuditQuery(f) => {
                if let Some(l) = f.limit {
                    if l == 0 || l > AuditFilter::MAX_LIMIT {
                        return Err(CoreError::InvalidArgument {
                            field: "limit",
                            reason: format!("{l} is outside 1..={}", AuditFilter::MAX_LIMIT),
                        });
                    }
                }
                if let (Some(s), Some(u)) = (f.since_ms, f.until_ms) {
                    if s >= u {
                        return Err(CoreError::InvalidArgument {
                            field: "since_ms",
                            reason: format!("since ({s}) must be before until ({u})"),
                        });
                    }
                }
                if let Some(name) = &f.operation {
                    let known = crate::operation::OPERATIONS
                        .iter()
                        .any(|i| i.name == name || (name.ends_with('.') && i.name.starts_with(name.as_str())));
                    if !known {
                        return Err(CoreError::InvalidArgument {
                            field: "operation",
                            reason: format!("{name:?} is not an operation name or prefix"),
                        });
                    }
                }
                Ok(())
            }
            Operation::SupervisorKillTask(a) if a.task.is_empty() => Err(CoreError::InvalidArgument {
                field: "task",
                reason: "must not be empty".into(),
            }),
            Operation::SandboxRemove(a) if !a.confirm => Err(CoreError::InvalidArgument {
                field: "confirm",
                reason: format!("removing sandbox {} deletes its data; set confirm to true", a.name),
            }),
            Operation::SandboxExec(a) if a.argv.is_empty() => Err(CoreError::InvalidArgument {
                field: "argv",
                reason: "must not be empty".into(),
            }),
            Operation::SandboxRun(a) if a.argv.is_empty() => Err(CoreError::InvalidArgument {
                field: "argv",
                reason: "must not be empty".into(),
            }),
            Operation::SandboxRun(a) if a.timeout_secs == Some(0) => Err(CoreError::InvalidArgument {
                field: "timeout_secs",
                reason: "must be at least 1".into(),
            }),
            Operation::SandboxExec(a) if a.timeout_secs == Some(0) => Err(CoreError::InvalidArgument {
                field: "timeout_secs",
                reason: "must be at least 1".into(),
            }),
            // issue 16 (diagnose)
            Operation::SystemDiagnose(a) => {
                let n = [&a.unit, &a.sandbox, &a.drive].iter().filter(|x| x.is_some()).count();
                if n > 1 {
                    return Err(CoreError::InvalidArgument {
                        field: "unit",
                        reason: "give at most one of unit, sandbox and drive".into(),
                    });
                }
                Ok(())
            }
            Operation::JournalQuery(q) => {
                if q.unit.is_some() && q.sandbox.is_some() {
                    return Err(CoreError::InvalidArgument {
                        field: "unit",
                        reason: "give unit or sandbox, not both".into(),
                    });
                }
                if let Some(l) = q.limit {
                    if l == 0 || l > crate::diagnose::JournalQuery::MAX_LIMIT {
                        return Err(CoreError::InvalidArgument {
                            field: "limit",
                            reason: format!("{l} is outside 1..={}", crate::diagnose::JournalQuery::MAX_LIMIT),
                        });
                    }
                }
                if q.priority.is_some_and(|p| p > 7) {
                    return Err(CoreError::InvalidArgument {
                        field: "priority",
                        reason: "must be 0 (emerg) ..= 7 (debug)".into(),
                    });
                }
                if let (Some(s), Some(u)) = (q.since_ms, q.until_ms) {
                    if s >= u {
                        return Err(CoreError::InvalidArgument {
                            field: "since_ms",
                            reason: format!("since ({s}) must be before until ({u})"),
                        });
                    }
                }
                Ok(())
            }
            // issue 14 (models)
            Operation::ModelUse(a) => model::validate_use(a),
            _ => Ok(()),
        }
    }

    /// `system.diagnose`.
    fn diagnose(&self, a: &crate::diagnose::DiagnoseArgs) -> Result<crate::diagnose::Diagnosis, CoreError> {
        use crate::diagnose::{Diagnosis, SweepFacts};
        let d = self.diagnostics()?;
        if let Some(u) = &a.unit {
            let f = d.unit(u)?;
            return Ok(Diagnosis {
                scope: format!("unit {}", f.target),
                checked: vec![format!(
                    "unit {} and its journal ({} entries)",
                    f.target, f.entries_seen
                )],
                findings: vec![f],
            });
        }
        if let Some(s) = &a.sandbox {
            let info = self.sandbox_manager()?.info(s)?;
            let f = d.sandbox(&info)?;
            return Ok(Diagnosis {
                scope: format!("sandbox {s}"),
                checked: vec![format!("sandbox {s}, its unit, journal and memory.events")],
                findings: vec![f],
            });
        }
        if let Some(name) = &a.drive {
            let info = self.drive_manager()?.info(name)?;
            return Ok(Diagnosis {
                scope: format!("drive {name}"),
                checked: vec![format!("drive {name}: state and file system use")],
                findings: vec![crate::diagnose::rules::diagnose_drive(&info)],
            });
        }
        let facts = SweepFacts {
            tasks: self.deps.supervisor.status().tasks,
            status: self.deps.probe.status().ok(),
            sandboxes: match self.deps.sandboxes.as_deref() {
                Some(m) => m.list()?,
                None => Vec::new(),
            },
        };
        Ok(d.sweep(&facts)?)
    }

    /// `journal.query`.
    fn journal(&self, q: &crate::diagnose::JournalQuery) -> Result<crate::diagnose::JournalPage, CoreError> {
        let d = self.diagnostics()?;
        let unit = match (&q.unit, &q.sandbox) {
            (Some(u), _) => Some(d.resolve(u)?.id),
            (_, Some(s)) => {
                if let Some(m) = self.deps.sandboxes.as_deref() {
                    m.info(s)?;
                }
                Some(crate::diagnose::sandbox_unit(s))
            }
            _ => None,
        };
        Ok(d.journal(unit.as_deref(), q)?)
    }

    /// The drive manager, for front ends that show drive objects (D-Bus).
    pub fn drives(&self) -> Option<&Arc<DriveManager>> {
        self.deps.drives.as_ref()
    }

    fn drive_manager(&self) -> Result<&DriveManager, CoreError> {
        self.deps
            .drives
            .as_deref()
            .ok_or_else(|| CoreError::FailedPrecondition("virtual drives are not available in this daemon".into()))
    }

    /// The sandbox manager, for front ends that show sandbox objects (D-Bus).
    pub fn sandboxes(&self) -> Option<&Arc<SandboxManager>> {
        self.deps.sandboxes.as_ref()
    }

    fn sandbox_manager(&self) -> Result<&SandboxManager, CoreError> {
        self.deps
            .sandboxes
            .as_deref()
            .ok_or_else(|| CoreError::FailedPrecondition("sandboxes are not available in this daemon".into()))
    }

    /// Resolves a drive bind to the drive's first mounted file system.
    fn resolve_binds(&self, binds: &[BindArgs]) -> Result<Vec<Bind>, CoreError> {
        binds.iter().map(|b| self.resolve_bind(b)).collect()
    }

    fn resolve_bind(&self, b: &BindArgs) -> Result<Bind, CoreError> {
        let drives = self.deps.drives.as_deref().ok_or_else(|| {
            CoreError::FailedPrecondition(format!(
                "cannot bind drive {}: virtual drives are not available in this daemon",
                b.drive
            ))
        })?;
        let info = match drives.info(&b.drive) {
            Ok(i) => i,
            Err(crate::drive::DriveError::NotFound { .. }) => {
                return Err(CoreError::InvalidArgument {
                    field: "binds",
                    reason: format!("drive {} is not attached", b.drive),
                })
            }
            Err(e) => return Err(e.into()),
        };
        let source = info
            .partitions
            .iter()
            .find_map(|p| p.mount_point.clone())
            .ok_or_else(|| CoreError::FailedPrecondition(format!("drive {} has no mounted file system", b.drive)))?;
        Ok(Bind {
            drive: b.drive.clone(),
            source,
            target: b.target_path().into(),
            read_write: b.read_write,
        })
    }

    fn sandbox_event(&self, name: &str, action: SandboxAction, detail: Option<String>) {
        self.deps.events.publish(EventKind::Sandbox {
            name: name.to_owned(),
            action,
            detail,
        });
    }

    fn run_sandbox(&self, by: &str, op: &Operation, sink: Option<OutputSink<'_>>) -> Result<Output, CoreError> {
        let m = self.sandbox_manager()?;
        let changed = |info: &SandboxInfo, action| {
            self.sandbox_event(&info.name, action, Some(info.state.as_str().to_owned()));
        };
        Ok(match op {
            Operation::SandboxList => Output::Sandboxes(m.list()?),
            Operation::SandboxInfo(a) => {
                let mut info = m.info(&a.name)?;
                info.software = self.software_info(&a.name);
                Output::Sandbox(info)
            }
            Operation::SandboxTemplates => Output::Templates(m.templates()),
            Operation::SandboxCreate(a) => {
                let binds = self.resolve_binds(&a.binds)?;
                let spec = SandboxSpec {
                    name: a.name.clone(),
                    template: a.template.clone(),
                    limits: a.limits,
                    network: a.network,
                    binds,
                    env: a.env.clone(),
                    ephemeral: a.ephemeral,
                };
                let info = m.create(spec, by)?;
                changed(&info, SandboxAction::Created);
                Output::Sandbox(info)
            }
            Operation::SandboxStart(a) => {
                let r = m.start(&a.name);
                self.after_lifecycle(m, &a.name, &r, SandboxAction::Started);
                self.software_after_start();
                Output::Sandbox(r?)
            }
            Operation::SandboxStop(a) => {
                let r = m.stop(&a.name);
                self.after_lifecycle(m, &a.name, &r, SandboxAction::Stopped);
                Output::Sandbox(r?)
            }
            Operation::SandboxRestart(a) => {
                let r = m.restart(&a.name);
                self.after_lifecycle(m, &a.name, &r, SandboxAction::Restarted);
                self.software_after_start();
                Output::Sandbox(r?)
            }
            Operation::SandboxRemove(a) => {
                m.remove(&a.name)?;
                self.sandbox_event(&a.name, SandboxAction::Removed, None);
                self.software_after_remove(&a.name);
                Output::Done(Done {
                    message: format!("sandbox {} removed", a.name),
                })
            }
            Operation::SandboxRun(a) => {
                let binds = self.resolve_binds(&a.binds)?;
                let name = match &a.name {
                    Some(n) => n.clone(),
                    None => m.unused_name("run")?,
                };
                let spec = SandboxSpec {
                    name: name.clone(),
                    template: a.template.clone(),
                    limits: a.limits,
                    network: a.network,
                    binds,
                    env: a.env.clone(),
                    ephemeral: true,
                };
                let exec = ExecSpec {
                    argv: a.argv.clone(),
                    env: Vec::new(),
                    cwd: None,
                    time_limit: a.timeout_secs.map(std::time::Duration::from_secs),
                };
                self.sandbox_event(&name, SandboxAction::Created, Some("run".into()));
                let result = exec_result(sink, |sink| m.run(spec, by, &exec, sink));
                self.sandbox_event(&name, SandboxAction::Removed, None);
                Output::Exec(result?)
            }
            Operation::SandboxExec(a) => {
                let spec = ExecSpec {
                    argv: a.argv.clone(),
                    env: Vec::new(),
                    cwd: None,
                    time_limit: a.timeout_secs.map(std::time::Duration::from_secs),
                };
                Output::Exec(exec_result(sink, |sink| m.exec(&a.name, &spec, sink))?)
            }
            Operation::SandboxLogs(a) => Output::SandboxLogs(SandboxLogs {
                name: a.name.clone(),
                lines: m.logs(&a.name, a.lines.unwrap_or(200))?,
            }),
            Operation::SandboxReconcile => {
                let report = m.reconcile()?;
                let touched = report
                    .marked_stopped
                    .iter()
                    .chain(&report.cleaned_ephemeral)
                    .chain(&report.interrupted)
                    .chain(&report.kept_running);
                for name in touched {
                    self.sandbox_event(name, SandboxAction::Reconciled, None);
                }
                Output::SandboxReconciled(report)
            }
            _ => unreachable!("run_sandbox is only called for sandbox operations"),
        })
    }

    /// Publishes the new state of a sandbox after a start, stop or restart, also when it failed (it may now be
    /// failed), and its removal when it is gone (an ephemeral sandbox that stopped).
    fn after_lifecycle(
        &self,
        m: &SandboxManager,
        name: &str,
        r: &Result<SandboxInfo, crate::sandbox::SandboxError>,
        action: SandboxAction,
    ) {
        match (r, m.info(name)) {
            (Ok(info), Ok(_)) => self.sandbox_event(name, action, Some(info.state.as_str().to_owned())),
            (Err(_), Ok(now)) => self.sandbox_event(name, SandboxAction::Stopped, Some(now.state.as_str().to_owned())),
            (Ok(_), Err(_)) => {
                self.sandbox_event(name, action, None);
                self.sandbox_event(name, SandboxAction::Removed, None);
            }
            (Err(_), Err(_)) => {}
        }
    }

    fn run(&self, caller: &Caller, op: &Operation, streams: Streams<'_>) -> Result<Output, CoreError> {
        let by = caller.principal.to_string();
        let (sink, input, output, terminal) = streams.split();
        Ok(match op {
            Operation::SandboxList
            | Operation::SandboxInfo(_)
            | Operation::SandboxTemplates
            | Operation::SandboxCreate(_)
            | Operation::SandboxStart(_)
            | Operation::SandboxStop(_)
            | Operation::SandboxRestart(_)
            | Operation::SandboxRemove(_)
            | Operation::SandboxExec(_)
            | Operation::SandboxLogs(_)
            | Operation::SandboxRun(_)
            | Operation::SandboxReconcile => return self.run_sandbox(&by, op, sink),
            Operation::SandboxShell(a) => {
                let Some(slot) = terminal else {
                    return Err(CoreError::InvalidArgument {
                        field: "terminal",
                        reason: "sandbox.shell needs a front end that hands over a terminal (D-Bus OpenSandboxShell, \
                                 cacheosctl sandbox shell)"
                            .into(),
                    });
                };
                let term = a.term.clone().unwrap_or_else(|| "vt220".into());
                *slot = Some(self.sandbox_manager()?.shell(&a.name, &term)?);
                Output::ShellOpened(ShellOpened {
                    name: a.name.clone(),
                    term,
                })
            }
            Operation::SandboxCopyIn(a) => {
                let Some(input) = input else {
                    return Err(CoreError::InvalidArgument {
                        field: "input",
                        reason: "sandbox.copy-in needs the bytes to write (D-Bus CopyIntoSandbox, cacheosctl)".into(),
                    });
                };
                let m = self.sandbox_manager()?;
                let path = std::path::Path::new(&a.path);
                let bytes = if a.archive {
                    m.copy_in_archive(&a.name, input, path)?;
                    0
                } else {
                    m.copy_in(&a.name, input, path)?
                };
                Output::Copied(Copied {
                    name: a.name.clone(),
                    path: a.path.clone(),
                    bytes,
                    archive: a.archive,
                })
            }
            Operation::SandboxCopyOut(a) => {
                let Some(output) = output else {
                    return Err(CoreError::InvalidArgument {
                        field: "output",
                        reason: "sandbox.copy-out needs somewhere to write (D-Bus CopyFromSandbox, cacheosctl)".into(),
                    });
                };
                let m = self.sandbox_manager()?;
                let path = std::path::Path::new(&a.path);
                let bytes = if a.archive {
                    m.copy_out_archive(&a.name, path, output)?
                } else {
                    m.copy_out(&a.name, path, output)?
                };
                Output::Copied(Copied {
                    name: a.name.clone(),
                    path: a.path.clone(),
                    bytes,
                    archive: a.archive,
                })
            }
            Operation::DriveList => Output::Drives(self.drive_manager()?.list()?),
            Operation::DriveInfo(a) => Output::Drive(self.drive_manager()?.info(&a.name)?),
            Operation::DriveImages => Output::Images(self.drive_manager()?.images()?),
            Operation::DriveFiles(a) => Output::Files(self.drive_manager()?.files(a)?),
            Operation::DriveAttach(a) => Output::Drive(self.drive_manager()?.attach(&by, a)?),
            Operation::DriveDetach(a) => Output::Done(Done {
                message: self.drive_manager()?.detach(a)?,
            }),
            Operation::DriveCreate(a) => Output::Created(self.drive_manager()?.create(&by, a)?),
            Operation::DriveSnapshot(a) => Output::Drive(self.drive_manager()?.snapshot(&a.name)?),
            Operation::DriveDiscard(a) => Output::Drive(self.drive_manager()?.discard(&a.name)?),
            Operation::DriveCommit(a) => Output::Drive(self.drive_manager()?.commit(a)?),
            Operation::DrivePersist(a) => Output::Drive(self.drive_manager()?.persist(a)?),
            Operation::DriveReconcile => Output::Reconciled(self.drive_manager()?.reconcile()?),
            Operation::SystemStatus => Output::SystemStatus(self.deps.probe.status()?),
            Operation::SupervisorStatus => Output::SupervisorStatus(self.deps.supervisor.status()),
            Operation::SupervisorKillTask(a) => {
                self.deps.supervisor.kill_task(&a.task)?;
                Output::Done(Done {
                    message: format!("task {} aborted; the supervisor restarts it", a.task),
                })
            }
            Operation::AuditQuery(f) => Output::Audit(self.deps.store.query_audit(f)?),
            Operation::WebToken => match &self.deps.web_token {
                Some(t) => Output::WebToken(WebToken { token: t.clone() }),
                None => return Err(CoreError::FailedPrecondition("the web port is disabled".into())),
            },
            Operation::SystemHistory(a) => Output::SystemHistory(self.deps.metrics.query(a.since_ms, a.resolution)),
            Operation::DriveUpload(a) => {
                let Some(input) = input else {
                    return Err(CoreError::InvalidArgument {
                        field: "input",
                        reason: "drive.upload needs the file's bytes (REST: PUT /api/v1/images/{name})".into(),
                    });
                };
                Output::Uploaded(self.drive_manager()?.upload(&by, a, input)?)
            }
            // issue 17 (kb)
            Operation::KbIndex(_)
            | Operation::KbSources
            | Operation::KbSearch(_)
            | Operation::KbAsk(_)
            | Operation::KbRemove(_)
            | Operation::KbCancel(_) => return self.run_kb(caller, op),
            // issue 18 (licences)
            Operation::LicenseScan(_)
            | Operation::LicenseCancel(_)
            | Operation::SbomCreate(_)
            | Operation::NoticeCreate(_)
            | Operation::ProofCreate(_)
            | Operation::ProofVerify(_)
            | Operation::DisclosureDraft(_) => return self.run_license(op),
            // issue 16 (diagnose)
            Operation::SystemDiagnose(a) => Output::Diagnosis(self.diagnose(a)?),
            Operation::JournalQuery(q) => Output::Journal(self.journal(q)?),
            Operation::ServiceList => Output::Services(self.diagnostics()?.services()?),
            Operation::ServiceRestart(a) => Output::Service(self.diagnostics()?.restart(&a.unit)?),
            // issue 15 (software)
            Operation::SoftwareSearch(_)
            | Operation::SoftwarePlan(_)
            | Operation::SoftwareInstall(_)
            | Operation::SoftwareList(_)
            | Operation::SoftwareRemove(_)
            | Operation::SoftwareJob(_)
            | Operation::SoftwareCancel(_)
            | Operation::SandboxExpose(_)
            | Operation::SandboxUnexpose(_)
            | Operation::SandboxService(_) => return self.run_software(caller, op),
            // issue 14 (models)
            Operation::ModelList
            | Operation::ModelUse(_)
            | Operation::ModelStatus
            | Operation::ModelUnload
            | Operation::ModelTest
            | Operation::PrivacyChannels => return self.run_model(caller, op),
            // issue 19 (trust)
            Operation::WebCert => return self.run_web_cert(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Frontend, GroupPolicy, Principal, StaticAccounts};
    use crate::clock::FakeClock;
    use crate::operation::KillTaskArgs;
    use crate::store::MemoryStore;
    use crate::supervisor::{DaemonState, SupervisorError};
    use crate::system::FixedProbe;
    use std::sync::Mutex;

    #[derive(Default)]
    struct FakeSupervisor {
        killed: Mutex<Vec<String>>,
    }
    impl SupervisorControl for FakeSupervisor {
        fn status(&self) -> SupervisorStatus {
            SupervisorStatus {
                version: "t".into(),
                state: DaemonState::Running,
                started_ms: 0,
                uptime_seconds: 1.0,
                dev_mode: true,
                tasks: vec![],
            }
        }
        fn kill_task(&self, name: &str) -> Result<(), SupervisorError> {
            if name != "web" {
                return Err(SupervisorError::UnknownTask(name.into()));
            }
            self.killed.lock().unwrap().push(name.into());
            Ok(())
        }
    }

    fn core() -> (Core, Arc<MemoryStore>, Arc<FakeSupervisor>) {
        let store = Arc::new(MemoryStore::new());
        let sup = Arc::new(FakeSupervisor::default());
        (core_over(store.clone(), sup.clone()), store, sup)
    }

    fn core_over(store: Arc<MemoryStore>, sup: Arc<dyn SupervisorControl>) -> Core {
        let clock = Arc::new(FakeClock::at(5_000));
        Core::new(CoreDeps {
            store,
            probe: Arc::new(FixedProbe(SystemStatus {
                hostname: "box".into(),
                ..Default::default()
            })),
            supervisor: sup.clone(),
            authorizer: Arc::new(GroupPolicy::new(
                StaticAccounts(vec![(1000, "cacheos".into())]),
                "cacheos",
            )),
            events: EventBus::new(16, clock.clone()),
            clock,
            web_token: Some("secret".into()),
            drives: None,
            sandboxes: None,
            metrics: Arc::new(crate::system::MetricsHistory::new(4)),
        })
    }

    /// A supervisor whose kill-task dies half-way (like a daemon killed mid-operation), after noting the intents
    /// the store held at that moment.
    struct DiesMidway {
        store: Arc<MemoryStore>,
        seen: Mutex<Vec<(String, serde_json::Value)>>,
    }

    impl SupervisorControl for DiesMidway {
        fn status(&self) -> SupervisorStatus {
            FakeSupervisor::default().status()
        }
        fn kill_task(&self, _: &str) -> Result<(), SupervisorError> {
            *self.seen.lock().unwrap() = self.store.list_records(INTENT_KIND).unwrap();
            panic!("killed mid-operation");
        }
    }

    #[test]
    fn a_changing_operation_leaves_an_intent_until_audited_and_an_interrupted_one_is_settled_at_start() {
        // Finished: no intent remains, one audit record.
        let (core, store, _) = core();
        let kill = Operation::SupervisorKillTask(KillTaskArgs { task: "web".into() });
        core.execute(&user(0), kill.clone()).unwrap();
        assert!(store.list_records(INTENT_KIND).unwrap().is_empty());
        assert_eq!(store.audit_len().unwrap(), 1);
        // Reads and refused operations write none.
        core.execute(&user(4242), Operation::SystemStatus).unwrap();
        core.execute(&user(4242), kill.clone()).unwrap_err();
        assert!(store.list_records(INTENT_KIND).unwrap().is_empty());

        // Interrupted: the intent was durable before the operation acted and is all that is left.
        let store = Arc::new(MemoryStore::new());
        let sup = Arc::new(DiesMidway {
            store: store.clone(),
            seen: Mutex::default(),
        });
        let core = core_over(store.clone(), sup.clone());
        let died = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| core.execute(&user(0), kill.clone())));
        assert!(died.is_err());
        let seen = sup.seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!(seen[0].1["operation"], "supervisor.kill-task");
        assert_eq!(store.audit_len().unwrap(), 0);
        assert_eq!(store.list_records(INTENT_KIND).unwrap(), seen);

        // The next start: a new core over the same store settles it into one audit record, published.
        let core = core_over(store.clone(), Arc::new(FakeSupervisor::default()));
        let mut rx = core.events().subscribe();
        let settled = core.settle_interrupted().unwrap();
        assert_eq!(settled.len(), 1);
        let r = &settled[0].record;
        assert_eq!(
            (r.operation.as_str(), r.outcome, r.error_code.as_deref(), r.frontend),
            (
                "supervisor.kill-task",
                Outcome::Error,
                Some(INTERRUPTED),
                Frontend::Dbus
            )
        );
        assert_eq!(r.principal, Principal::Uid { uid: 0 });
        assert_eq!(r.args, serde_json::json!({"task": "web"}));
        assert!(r.error.as_deref().unwrap().starts_with("interrupted: "), "{r:?}");
        assert_eq!(store.query_audit(&AuditFilter::default()).unwrap(), settled);
        assert!(store.list_records(INTENT_KIND).unwrap().is_empty());
        assert!(matches!(
            rx.try_recv().unwrap().kind,
            EventKind::OperationFinished {
                outcome: Outcome::Error,
                ..
            }
        ));
        // Settling again finds nothing.
        assert!(core.settle_interrupted().unwrap().is_empty());
        assert_eq!(store.audit_len().unwrap(), 1);
    }

    fn user(uid: u32) -> Caller {
        Caller::new(Frontend::Dbus, Principal::Uid { uid })
    }

    #[test]
    fn status_is_run_and_audited_but_not_published_while_changes_and_failures_are() {
        let (core, store, _) = core();
        let mut rx = core.events().subscribe();
        let out = core.execute(&user(4242), Operation::SystemStatus).unwrap();
        assert!(matches!(out, Output::SystemStatus(s) if s.hostname == "box"));
        let recs = store.query_audit(&AuditFilter::default()).unwrap();
        assert_eq!(recs.len(), 1);
        let r = &recs[0].record;
        assert_eq!(
            (r.operation.as_str(), r.frontend, r.outcome),
            ("system.status", Frontend::Dbus, Outcome::Ok)
        );
        assert_eq!(r.principal, Principal::Uid { uid: 4242 });
        assert_eq!(r.time_ms, 5_000);
        assert!(rx.try_recv().is_err(), "a successful read is audited, not published");

        // A denied operation and a changing one are published, each with its audit id.
        let kill = Operation::SupervisorKillTask(KillTaskArgs { task: "web".into() });
        core.execute(&user(4242), kill.clone()).unwrap_err();
        core.execute(&user(0), kill).unwrap();
        let recs = store.query_audit(&AuditFilter::default()).unwrap();
        for (outcome, rec) in [(Outcome::Denied, &recs[1]), (Outcome::Ok, &recs[0])] {
            assert_eq!(
                rx.try_recv().unwrap().kind,
                EventKind::OperationFinished {
                    operation: "supervisor.kill-task".into(),
                    frontend: Frontend::Dbus,
                    outcome,
                    audit_id: Some(rec.id)
                }
            );
        }
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn operator_operations_need_root_or_group() {
        let (core, store, sup) = core();
        let kill = Operation::SupervisorKillTask(KillTaskArgs { task: "web".into() });
        let err = core.execute(&user(4242), kill.clone()).unwrap_err();
        assert_eq!(err.code(), "permission-denied");
        assert!(err.to_string().contains("uid 4242"), "{err}");
        assert!(sup.killed.lock().unwrap().is_empty(), "denied operation must not run");
        core.execute(&user(1000), kill.clone()).unwrap();
        core.execute(&user(0), kill.clone()).unwrap();
        core.execute(&Caller::new(Frontend::Rest, Principal::WebToken), kill)
            .unwrap();
        assert_eq!(sup.killed.lock().unwrap().len(), 3);
        let denied = store
            .query_audit(&AuditFilter {
                outcome: Some(Outcome::Denied),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(denied.len(), 1);
        assert_eq!(denied[0].record.args, serde_json::json!({"task": "web"}));
        assert!(core.execute(&user(4242), Operation::WebToken).is_err());
        assert!(
            matches!(core.execute(&user(0), Operation::WebToken).unwrap(), Output::WebToken(t) if t.token == "secret")
        );
    }

    #[test]
    fn bad_arguments_are_named_and_audited_as_errors() {
        let (core, store, _) = core();
        let cases = [
            (
                AuditFilter {
                    limit: Some(0),
                    ..Default::default()
                },
                "invalid limit",
            ),
            (
                AuditFilter {
                    since_ms: Some(5),
                    until_ms: Some(4),
                    ..Default::default()
                },
                "invalid since_ms",
            ),
            (
                AuditFilter {
                    operation: Some("nope".into()),
                    ..Default::default()
                },
                "invalid operation",
            ),
        ];
        for (f, msg) in cases {
            let e = core.execute(&user(0), Operation::AuditQuery(f)).unwrap_err();
            assert!(e.to_string().starts_with(msg), "{e}");
            assert_eq!(e.code(), "invalid-argument");
        }
        let e = core
            .execute(
                &user(0),
                Operation::SupervisorKillTask(KillTaskArgs { task: "nope".into() }),
            )
            .unwrap_err();
        assert_eq!(
            (e.code(), e.to_string().as_str()),
            ("not-found", "task \"nope\" not found")
        );
        let errs = store
            .query_audit(&AuditFilter {
                outcome: Some(Outcome::Error),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(errs.len(), 4);
        assert!(errs
            .iter()
            .all(|r| r.record.error_code.is_some() && r.record.error.is_some()));
    }

    #[test]
    fn chat_context_is_recorded() {
        let (core, store, _) = core();
        let mut c = Caller::new(Frontend::Chat, Principal::Uid { uid: 1000 });
        c.session = Some("s1".into());
        c.utterance = Some("zeig mir den Systemstatus".into());
        core.execute(&c, Operation::SystemStatus).unwrap();
        let r = &store.query_audit(&AuditFilter::default()).unwrap()[0].record;
        assert_eq!(r.utterance.as_deref(), Some("zeig mir den Systemstatus"));
        assert_eq!(r.session.as_deref(), Some("s1"));
    }
}

mod kb;
#[cfg(test)]
mod sandbox_tests;
mod software;
