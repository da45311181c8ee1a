//! The `org.cacheos.CacheOS1.Manager` interface: thin methods that build an operation, run it through the core
//! and return JSON, plus the task that forwards core events as signals and property changes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cacheos_chat::ChatService;
use cacheos_core::audit::{AuditFilter, Outcome};
use cacheos_core::drive::{CommitArgs, DetachArgs, DriveRef, FilesArgs, PersistArgs};
use cacheos_core::operation::KillTaskArgs;
use cacheos_core::sandbox::ops::{
    SandboxCopyArgs, SandboxCreateArgs, SandboxExecArgs, SandboxLogsArgs, SandboxRef, SandboxRemoveArgs,
    SandboxRunArgs, SandboxShellArgs,
};
use cacheos_core::{Caller, Core, CoreError, DaemonState, EventKind, Frontend, Operation, Output, Principal};
use futures_util::StreamExt;
use zbus::message::Header;
use zbus::object_server::SignalEmitter;
use zbus::{fdo, interface, Connection};

use crate::error::Error;
use crate::{Bus, BUS_NAME, OBJECT_PATH};

#[derive(Debug, Clone, Copy)]
struct Client {
    uid: u32,
    frontend: Frontend,
}

/// The Manager object. Structured results are JSON documents identical to the REST API's responses.
pub struct Manager {
    core: Arc<Core>,
    chat: Arc<ChatService>,
    clients: Arc<Mutex<HashMap<String, Client>>>,
    state: Arc<Mutex<DaemonState>>,
}

impl Manager {
    /// A manager over `core`, reporting `state` until the first state event.
    pub fn new(core: Arc<Core>, chat: Arc<ChatService>, state: DaemonState) -> Self {
        Self {
            core,
            chat,
            clients: Arc::default(),
            state: Arc::new(Mutex::new(state)),
        }
    }

    async fn caller(&self, hdr: &Header<'_>, conn: &Connection) -> Result<Caller, Error> {
        let sender = hdr
            .sender()
            .ok_or_else(|| Error::Internal("message without sender".into()))?
            .to_string();
        if let Some(c) = self.clients.lock().unwrap().get(&sender).copied() {
            return Ok(Caller::new(c.frontend, Principal::Uid { uid: c.uid }));
        }
        let dbus = fdo::DBusProxy::new(conn).await?;
        let name = zbus::names::BusName::try_from(sender.as_str()).map_err(zbus::Error::from)?;
        let uid = dbus
            .get_connection_unix_user(name)
            .await
            .map_err(|e| Error::Internal(format!("cannot identify caller {sender}: {e}")))?;
        let mut clients = self.clients.lock().unwrap();
        let c = *clients.entry(sender).or_insert(Client {
            uid,
            frontend: Frontend::Dbus,
        });
        Ok(Caller::new(c.frontend, Principal::Uid { uid: c.uid }))
    }

    async fn run(&self, hdr: &Header<'_>, conn: &Connection, op: Operation) -> Result<Output, Error> {
        let caller = self.caller(hdr, conn).await?;
        let core = self.core.clone();
        tokio::task::spawn_blocking(move || core.execute(&caller, op))
            .await
            .map_err(|e| Error::Internal(format!("operation task failed: {e}")))?
            .map_err(Error::from)
    }

    /// Runs sandbox.copy-in (reading from `data`) or sandbox.copy-out (writing to `data`); returns the JSON result.
    async fn run_copy(
        &self,
        hdr: &Header<'_>,
        conn: &Connection,
        op: Operation,
        data: zbus::zvariant::OwnedFd,
    ) -> Result<String, Error> {
        let caller = self.caller(hdr, conn).await?;
        let core = self.core.clone();
        let mut file = std::fs::File::from(std::os::fd::OwnedFd::from(data));
        let out = tokio::task::spawn_blocking(move || match op {
            Operation::SandboxCopyOut(_) => core.execute_with_output(&caller, op, &mut file),
            _ => core.execute_with_input(&caller, op, &mut file),
        })
        .await
        .map_err(|e| Error::Internal(format!("operation task failed: {e}")))?
        .map_err(Error::from)?;
        serde_json::to_string(&out).map_err(|e| Error::Internal(format!("cannot encode result: {e}")))
    }

    async fn run_json(&self, hdr: &Header<'_>, conn: &Connection, op: Operation) -> Result<String, Error> {
        let out = self.run(hdr, conn, op).await?;
        serde_json::to_string(&out).map_err(|e| Error::Internal(format!("cannot encode result: {e}")))
    }
}

/// CacheOS manager. Methods run core operations (their dotted names are given in each description) and are
/// audited with front end `dbus`, or `cli` for connections that called RegisterClient("cli").
#[interface(name = "org.cacheos.CacheOS1.Manager")]
impl Manager {
    /// Operation system.status: host name, OS, kernel, uptime, load, CPU, memory, disks and failed units, as a
    /// JSON object (schema SystemStatus in the OpenAPI document). Anyone may call it.
    #[zbus(out_args("json"))]
    async fn get_system_status(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        self.run_json(&hdr, conn, Operation::SystemStatus).await
    }

    /// Operation system.history: CPU, memory, disk and load samples kept by the daemon, oldest first, at the finest resolution that reaches
    /// back to `since_ms` (every sample for an hour, minute means for a day, hour means for 30 days), as a
    /// JSON array (schema MetricSample); `since_ms` > 0 returns only samples from then on. Anyone may call it.
    #[zbus(out_args("json"))]
    async fn get_system_history(
        &self,
        since_ms: u64,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        let args = cacheos_core::operation::HistoryArgs {
            since_ms: (since_ms > 0).then_some(since_ms),
            ..Default::default()
        };
        self.run_json(&hdr, conn, Operation::SystemHistory(args)).await
    }

    /// Operation supervisor.status: version, uptime, state and task health as a JSON object
    /// (schema SupervisorStatus). Anyone may call it.
    #[zbus(out_args("json"))]
    async fn get_supervisor_status(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        self.run_json(&hdr, conn, Operation::SupervisorStatus).await
    }

    /// Operation audit.query: audit records, newest first, as a JSON array (schema AuditRecord). Zero times, empty
    /// strings and a zero limit mean "no filter". outcome is ok, error or denied; frontend is dbus, rest, cli,
    /// chat or internal; operation is a dotted name or a prefix ending in a dot.
    #[allow(clippy::too_many_arguments)]
    #[zbus(out_args("json"))]
    async fn query_audit(
        &self,
        since_ms: u64,
        until_ms: u64,
        frontend: &str,
        operation: &str,
        outcome: &str,
        limit: u32,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        let frontend = match frontend {
            "" => None,
            f => Some(Frontend::parse(f).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "invalid frontend: {f:?} is not dbus, rest, cli, chat or internal"
                ))
            })?),
        };
        let outcome =
            match outcome {
                "" => None,
                o => Some(Outcome::parse(o).ok_or_else(|| {
                    Error::InvalidArgument(format!("invalid outcome: {o:?} is not ok, error or denied"))
                })?),
            };
        let filter = AuditFilter {
            since_ms: (since_ms > 0).then_some(since_ms),
            until_ms: (until_ms > 0).then_some(until_ms),
            frontend,
            operation: (!operation.is_empty()).then(|| operation.to_string()),
            outcome,
            before_id: None,
            limit: (limit > 0).then_some(limit),
        };
        self.run_json(&hdr, conn, Operation::AuditQuery(filter)).await
    }

    /// Operation supervisor.kill-task: aborts an internal task so the supervisor restarts it with backoff. Only
    /// when fault injection is enabled (development mode); root and group cacheos only. Returns a message.
    #[zbus(out_args("message"))]
    async fn kill_task(
        &self,
        task: &str,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        match self
            .run(
                &hdr,
                conn,
                Operation::SupervisorKillTask(KillTaskArgs { task: task.into() }),
            )
            .await?
        {
            Output::Done(d) => Ok(d.message),
            _ => Err(Error::Internal("unexpected result".into())),
        }
    }

    /// Operation web.token: the bearer token web clients other than loopback must send. Root and group cacheos
    /// only.
    #[zbus(out_args("token"))]
    async fn get_web_token(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        match self.run(&hdr, conn, Operation::WebToken).await? {
            Output::WebToken(t) => Ok(t.token),
            _ => Err(Error::Internal("unexpected result".into())),
        }
    }

    /// Labels the calling connection's later calls in the audit log. kind must be "cli" (cacheosctl calls it).
    /// The identity (uid) always comes from the bus, never from this label.
    async fn register_client(
        &self,
        kind: &str,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(), Error> {
        let frontend = match kind {
            "cli" => Frontend::Cli,
            other => {
                return Err(Error::InvalidArgument(format!(
                    "invalid kind: {other:?} (expected \"cli\")"
                )))
            }
        };
        let caller = self.caller(&hdr, conn).await?;
        let sender = hdr.sender().map(|s| s.to_string()).unwrap_or_default();
        if let Some(uid) = caller.principal.uid() {
            self.clients.lock().unwrap().insert(sender, Client { uid, frontend });
        }
        Ok(())
    }

    /// Chat, without executing: what the message would do, as JSON {"session", "interpretation"}; the
    /// interpretation names the operation with its REST arguments, risk class and whether it needs confirmation,
    /// or is a question, a chat action or "not understood". An empty session starts a new one. Anyone may call it.
    #[zbus(out_args("json"))]
    async fn interpret(
        &self,
        text: &str,
        session: &str,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        let caller = self.caller(&hdr, conn).await?;
        let (chat, text, session) = (self.chat.clone(), text.to_string(), session.to_string());
        let (id, interp) = tokio::task::spawn_blocking(move || {
            chat.interpret(
                &caller.principal,
                Some(session.as_str()).filter(|s| !s.is_empty()),
                &text,
            )
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))?
        .map_err(|e| Error::from(CoreError::from(e)))?;
        Ok(serde_json::json!({"session": id, "interpretation": interp}).to_string())
    }

    /// Chat: interprets and acts on a message in a session, as JSON {"session", "interpretation", "executed",
    /// "reply"}. Operations run with the caller's own rights and are audited with front end chat and the
    /// utterance; destructive ones only run after "ja"/"yes" in the same session. While a language model writes
    /// an answer, its words arrive as ChatToken signals sent to the caller only. Anyone may call it.
    #[zbus(out_args("json"))]
    async fn chat(
        &self,
        text: &str,
        session: &str,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
    ) -> Result<String, Error> {
        let caller = self.caller(&hdr, conn).await?;
        let (chat, text, session) = (self.chat.clone(), text.to_string(), session.to_string());
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let work = tokio::task::spawn_blocking(move || {
            chat.chat_streaming(
                &caller.principal,
                Some(session.as_str()).filter(|s| !s.is_empty()),
                &text,
                &mut |ev| {
                    if let cacheos_chat::service::ChatEvent::Token(t) = ev {
                        let _ = tx.send(t);
                    }
                },
            )
        });
        // Unicast: another user's chat must not see these words.
        let to_caller = match hdr.sender() {
            Some(s) => emitter.set_destination(zbus::names::BusName::Unique(s.to_owned())),
            None => emitter,
        };
        let mut n = 0u64;
        while let Some(t) = rx.recv().await {
            n += 1;
            let _ = Manager::chat_token(&to_caller, n, &t).await;
        }
        let reply = work
            .await
            .map_err(|e| Error::Internal(e.to_string()))?
            .map_err(|e| Error::from(CoreError::from(e)))?;
        serde_json::to_string(&reply).map_err(|e| Error::Internal(e.to_string()))
    }

    /// Words of a language model's answer while it writes them, in order (seq from 1), sent only to the caller of
    /// the Chat method that asked; the method's reply is the validated whole.
    #[zbus(signal)]
    async fn chat_token(emitter: &SignalEmitter<'_>, seq: u64, text: &str) -> zbus::Result<()>;

    /// A chat session's history as a JSON array, oldest first (only the session's owner may read it).
    #[zbus(out_args("json"))]
    async fn chat_history(
        &self,
        session: &str,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        let caller = self.caller(&hdr, conn).await?;
        let h = self
            .chat
            .history(&caller.principal, session)
            .map_err(|e| Error::from(CoreError::from(e)))?;
        serde_json::to_string(&h).map_err(|e| Error::Internal(e.to_string()))
    }

    /// Deletes a chat session's history (only the session's owner may).
    async fn clear_chat_history(
        &self,
        session: &str,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(), Error> {
        let caller = self.caller(&hdr, conn).await?;
        self.chat
            .clear_history(&caller.principal, session)
            .map_err(|e| Error::from(CoreError::from(e)))
    }

    /// Operation drive.list: every virtual drive as a JSON array (schema DriveInfo). Anyone may call it. Each
    /// drive is also an object /org/cacheos/CacheOS1/drive/<name> with interface org.cacheos.CacheOS1.Drive.
    #[zbus(out_args("json"))]
    async fn list_drives(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        self.run_json(&hdr, conn, Operation::DriveList).await
    }

    /// Operation drive.info: one drive as a JSON object (schema DriveInfo). Anyone may call it.
    #[zbus(out_args("json"))]
    async fn get_drive(
        &self,
        name: &str,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        self.run_json(&hdr, conn, Operation::DriveInfo(DriveRef { name: name.into() }))
            .await
    }

    /// Operation drive.images: the image files in the images directory as a JSON array (schema ImageFile).
    /// Anyone may call it.
    #[zbus(out_args("json"))]
    async fn list_images(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        self.run_json(&hdr, conn, Operation::DriveImages).await
    }

    /// Operation drive.files: a directory (path relative to the mount point, "" for the top) of a mounted drive
    /// as JSON (schema FileListing); volume "" means the first mounted file system. Root and group cacheos only.
    #[zbus(out_args("json"))]
    async fn list_drive_files(
        &self,
        name: &str,
        path: &str,
        volume: &str,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        let op = Operation::DriveFiles(FilesArgs {
            name: name.into(),
            path: path.into(),
            volume: (!volume.is_empty()).then(|| volume.to_string()),
        });
        self.run_json(&hdr, conn, op).await
    }

    /// Operation drive.attach: args is the JSON body of POST /api/v1/drives ({"path", "name", "read_write",
    /// "partscan", "offset", "size", "mount", "exec"}; only path is required; read-only by default). Returns the
    /// drive as JSON (schema DriveInfo). Root and group cacheos only.
    #[zbus(out_args("json"))]
    async fn attach_drive(
        &self,
        args: &str,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        self.run_json(&hdr, conn, Operation::DriveAttach(parse_args(args)?))
            .await
    }

    /// Operation drive.detach: unmounts and releases the drive; refused while busy unless force (which detaches
    /// lazily and discards an uncommitted snapshot). Returns a message. Root and group cacheos only.
    #[zbus(out_args("message"))]
    async fn detach_drive(
        &self,
        name: &str,
        force: bool,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        let op = Operation::DriveDetach(DetachArgs {
            name: name.into(),
            force,
        });
        match self.run(&hdr, conn, op).await? {
            Output::Done(d) => Ok(d.message),
            _ => Err(Error::Internal("unexpected result".into())),
        }
    }

    /// Operation drive.create: args is the JSON body of POST /api/v1/drives/create ({"path", "size", "format",
    /// "fs", "label", "attach", "name"}). Returns JSON (schema Created). Root and group cacheos only.
    #[zbus(out_args("json"))]
    async fn create_drive(
        &self,
        args: &str,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        self.run_json(&hdr, conn, Operation::DriveCreate(parse_args(args)?))
            .await
    }

    /// Operation drive.snapshot: puts a writable layer over the drive (the image is untouched). Returns the drive
    /// as JSON. Root and group cacheos only.
    #[zbus(out_args("json"))]
    async fn snapshot_drive(
        &self,
        name: &str,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        self.run_json(&hdr, conn, Operation::DriveSnapshot(DriveRef { name: name.into() }))
            .await
    }

    /// Operation drive.discard: throws the drive's snapshot away. Returns the drive as JSON. Root and group
    /// cacheos only.
    #[zbus(out_args("json"))]
    async fn discard_snapshot(
        &self,
        name: &str,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        self.run_json(&hdr, conn, Operation::DriveDiscard(DriveRef { name: name.into() }))
            .await
    }

    /// Operation drive.commit: writes the snapshot into the image; the drive must be read-write and confirm
    /// true. Returns the drive as JSON. Root and group cacheos only.
    #[zbus(out_args("json"))]
    async fn commit_snapshot(
        &self,
        name: &str,
        confirm: bool,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        let op = Operation::DriveCommit(CommitArgs {
            name: name.into(),
            confirm,
        });
        self.run_json(&hdr, conn, op).await
    }

    /// Operation drive.persist: whether the drive is attached again at boot. Returns the drive as JSON. Root and
    /// group cacheos only.
    #[zbus(out_args("json"))]
    async fn set_drive_persistent(
        &self,
        name: &str,
        persistent: bool,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        let op = Operation::DrivePersist(PersistArgs {
            name: name.into(),
            persistent,
        });
        self.run_json(&hdr, conn, op).await
    }

    /// Operation drive.reconcile: compares drive records with the kernel and repairs either side. Returns a JSON
    /// report (schema ReconcileReport). Root and group cacheos only.
    #[zbus(out_args("json"))]
    async fn reconcile_drives(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        self.run_json(&hdr, conn, Operation::DriveReconcile).await
    }

    /// Operation sandbox.list: every sandbox as a JSON array (schema SandboxInfo). Anyone may call it. Each sandbox
    /// is also an object /org/cacheos/CacheOS1/sandbox/<name> with interface org.cacheos.CacheOS1.Sandbox.
    #[zbus(out_args("json"))]
    async fn list_sandboxes(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        self.run_json(&hdr, conn, Operation::SandboxList).await
    }

    /// Operation sandbox.info: one sandbox as a JSON object (schema SandboxInfo). Anyone may call it.
    #[zbus(out_args("json"))]
    async fn get_sandbox(
        &self,
        name: &str,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        self.run_json(&hdr, conn, Operation::SandboxInfo(SandboxRef { name: name.into() }))
            .await
    }

    /// Operation sandbox.templates: the templates as a JSON array (schema Template). Anyone may call it.
    #[zbus(out_args("json"))]
    async fn list_templates(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        self.run_json(&hdr, conn, Operation::SandboxTemplates).await
    }

    /// Operation sandbox.create: args is the REST body as JSON (schema SandboxCreateArgs: name, template, cpu,
    /// memory_max, tasks_max, network, binds, env, ephemeral). Returns the sandbox (schema SandboxInfo). Root and
    /// group cacheos only.
    #[zbus(out_args("json"))]
    async fn create_sandbox(
        &self,
        args: &str,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        let args: SandboxCreateArgs = parse_args(args)?;
        self.run_json(&hdr, conn, Operation::SandboxCreate(args)).await
    }

    /// Operation sandbox.start: starts the sandbox's container; returns it (schema SandboxInfo). Root and group
    /// cacheos only.
    #[zbus(out_args("json"))]
    async fn start_sandbox(
        &self,
        name: &str,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        self.run_json(&hdr, conn, Operation::SandboxStart(SandboxRef { name: name.into() }))
            .await
    }

    /// Operation sandbox.stop: stops the sandbox's container (an ephemeral one is then removed); returns it
    /// (schema SandboxInfo). Root and group cacheos only.
    #[zbus(out_args("json"))]
    async fn stop_sandbox(
        &self,
        name: &str,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        self.run_json(&hdr, conn, Operation::SandboxStop(SandboxRef { name: name.into() }))
            .await
    }

    /// Operation sandbox.restart: stops the sandbox when it runs and starts it again; returns it (schema
    /// SandboxInfo). Root and group cacheos only.
    #[zbus(out_args("json"))]
    async fn restart_sandbox(
        &self,
        name: &str,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        self.run_json(&hdr, conn, Operation::SandboxRestart(SandboxRef { name: name.into() }))
            .await
    }

    /// Operation sandbox.remove: stops the sandbox and deletes it with its writable data; confirm must be true.
    /// Returns a message. Root and group cacheos only.
    #[zbus(out_args("message"))]
    async fn remove_sandbox(
        &self,
        name: &str,
        confirm: bool,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        let op = Operation::SandboxRemove(SandboxRemoveArgs {
            name: name.into(),
            confirm,
        });
        match self.run(&hdr, conn, op).await? {
            Output::Done(d) => Ok(d.message),
            _ => Err(Error::Internal("unexpected result".into())),
        }
    }

    /// Operation sandbox.exec: runs argv in the running sandbox and returns, when it ended, a JSON object
    /// {"exit_code", "timed_out", "stdout", "stderr"} (schema ExecResult). timeout_secs 0 means no limit. A command
    /// not found inside ends with exit code 127. Root and group cacheos only.
    #[zbus(out_args("json"))]
    async fn exec_sandbox(
        &self,
        name: &str,
        argv: Vec<String>,
        timeout_secs: u64,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        let op = Operation::SandboxExec(SandboxExecArgs {
            name: name.into(),
            argv,
            timeout_secs: (timeout_secs > 0).then_some(timeout_secs),
        });
        self.run_json(&hdr, conn, op).await
    }

    /// Operation sandbox.run: `args` is the REST body as JSON ({"template", "argv", "name"?, "cpu"?, "memory_max"?,
    /// "tasks_max"?, "network"?, "binds"?, "env"?, "timeout_secs"?}); runs argv in a new ephemeral sandbox that is
    /// removed when it ends and returns, then, JSON {"exit_code", "timed_out", "stdout", "stderr"}. Root and group
    /// cacheos only.
    #[zbus(out_args("json"))]
    async fn run_in_sandbox(
        &self,
        args: &str,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        let a: SandboxRunArgs = parse_args(args)?;
        self.run_json(&hdr, conn, Operation::SandboxRun(a)).await
    }

    /// Operation sandbox.shell: opens an interactive login shell as root in the running sandbox on a new
    /// pseudo-terminal with TERM=term ("" means vt220) and returns the terminal's controller side as a file
    /// descriptor, and JSON {"name", "term"}. The caller puts its own terminal in raw mode, relays bytes both ways
    /// and sets the window size on the descriptor (TIOCSWINSZ); closing it hangs the shell up. Root and group
    /// cacheos only.
    #[zbus(out_args("terminal", "json"))]
    async fn open_sandbox_shell(
        &self,
        name: &str,
        term: &str,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(zbus::zvariant::OwnedFd, String), Error> {
        let caller = self.caller(&hdr, conn).await?;
        let core = self.core.clone();
        let op = Operation::SandboxShell(SandboxShellArgs {
            name: name.into(),
            term: (!term.is_empty()).then(|| term.to_owned()),
        });
        let (out, fd) = tokio::task::spawn_blocking(move || {
            let mut slot = None;
            let out = core.execute_shell(&caller, op, &mut slot);
            (out, slot)
        })
        .await
        .map_err(|e| Error::Internal(format!("operation task failed: {e}")))?;
        let out = out.map_err(Error::from)?;
        let fd = fd.ok_or_else(|| Error::Internal("no terminal was opened".into()))?;
        let json = serde_json::to_string(&out).map_err(|e| Error::Internal(format!("cannot encode result: {e}")))?;
        Ok((fd.into(), json))
    }

    /// Operation sandbox.copy-in: reads everything from the file descriptor `data` and writes it as the file `path`
    /// inside the running sandbox, or with `archive` unpacks it as a tar stream into the directory `path` (created
    /// if missing). Returns JSON {"name", "path", "bytes", "archive"} (schema Copied). Root and group cacheos only.
    #[zbus(out_args("json"))]
    async fn copy_into_sandbox(
        &self,
        name: &str,
        path: &str,
        archive: bool,
        data: zbus::zvariant::OwnedFd,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        let args = SandboxCopyArgs {
            name: name.into(),
            path: path.into(),
            archive,
        };
        self.run_copy(&hdr, conn, Operation::SandboxCopyIn(args), data).await
    }

    /// Operation sandbox.copy-out: writes the file `path` of the running sandbox (or with `archive` the directory
    /// `path` as a tar stream) to the file descriptor `data`, and returns JSON {"name", "path", "bytes",
    /// "archive"} once everything is written. Root and group cacheos only.
    #[zbus(out_args("json"))]
    async fn copy_from_sandbox(
        &self,
        name: &str,
        path: &str,
        archive: bool,
        data: zbus::zvariant::OwnedFd,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        let args = SandboxCopyArgs {
            name: name.into(),
            path: path.into(),
            archive,
        };
        self.run_copy(&hdr, conn, Operation::SandboxCopyOut(args), data).await
    }

    /// Operation sandbox.logs: the last lines of the sandbox's console output as JSON {"name", "lines"}; 0 lines
    /// means the default (200). Root and group cacheos only.
    #[zbus(out_args("json"))]
    async fn get_sandbox_logs(
        &self,
        name: &str,
        lines: u32,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        let op = Operation::SandboxLogs(SandboxLogsArgs {
            name: name.into(),
            lines: (lines > 0).then_some(lines as usize),
        });
        self.run_json(&hdr, conn, op).await
    }

    /// Operation sandbox.reconcile: compares sandbox records with the running containers and repairs either side.
    /// Returns a JSON report. Root and group cacheos only.
    #[zbus(out_args("json"))]
    async fn reconcile_sandboxes(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        self.run_json(&hdr, conn, Operation::SandboxReconcile).await
    }

    // issue 17 (kb)
    /// Operation kb.index: starts indexing a source in the background and returns at once with a JSON object
    /// (schema KbJob); progress comes as Event signals of kind kb-index. `source` is "docs" or an attached drive,
    /// `path` a relative path below the drive ("" for all of it). Root and group cacheos only.
    #[zbus(out_args("json"))]
    async fn kb_index(
        &self,
        source: String,
        path: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        let args = cacheos_core::kb::KbIndexArgs {
            source,
            path: (!path.is_empty()).then_some(path),
        };
        self.run_json(&hdr, conn, Operation::KbIndex(args)).await
    }

    /// Operation kb.sources: the indexed sources as a JSON array (schema KbSource). Anyone may call it; drive
    /// sources are listed to root and group cacheos only.
    #[zbus(out_args("json"))]
    async fn kb_sources(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        self.run_json(&hdr, conn, Operation::KbSources).await
    }

    /// Operation kb.search: ranked passages with citations as a JSON object (schema KbSearchResult); `limit` 0
    /// means the default (5). Anyone may call it; passages from drives go to root and group cacheos only.
    #[zbus(out_args("json"))]
    async fn kb_search(
        &self,
        query: String,
        limit: u32,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        let args = cacheos_core::kb::KbSearchArgs {
            query,
            limit: (limit > 0).then_some(limit as usize),
        };
        self.run_json(&hdr, conn, Operation::KbSearch(args)).await
    }

    /// Operation kb.ask: an extractive answer with numbered citations as a JSON object (schema KbAnswer; `found`
    /// is false when nothing relevant was found). Anyone may call it.
    #[zbus(out_args("json"))]
    async fn kb_ask(
        &self,
        question: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        let args = cacheos_core::kb::KbAskArgs { question };
        self.run_json(&hdr, conn, Operation::KbAsk(args)).await
    }

    /// Operation kb.remove: forgets a source and its passages; returns a message. Root and group cacheos only.
    #[zbus(out_args("json"))]
    async fn kb_remove(
        &self,
        source: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        let args = cacheos_core::kb::KbSourceRef { source };
        self.run_json(&hdr, conn, Operation::KbRemove(args)).await
    }

    /// Operation kb.cancel: stops a running indexing job; returns a message. Root and group cacheos only.
    #[zbus(out_args("json"))]
    async fn kb_cancel(
        &self,
        source: String,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        let args = cacheos_core::kb::KbSourceRef { source };
        self.run_json(&hdr, conn, Operation::KbCancel(args)).await
    }

    // issue 16 (diagnose)
    /// Operation system.diagnose: why a unit, sandbox or drive failed, or (all empty) everything that is wrong, as a
    /// JSON object (schema Diagnosis: findings with cause class, evidence lines and a fix). At most one of unit,
    /// sandbox and drive; operators only (evidence quotes the journal).
    #[zbus(out_args("json"))]
    async fn diagnose(
        &self,
        unit: &str,
        sandbox: &str,
        drive: &str,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        let some = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        let args = cacheos_core::diagnose::DiagnoseArgs {
            unit: some(unit),
            sandbox: some(sandbox),
            drive: some(drive),
        };
        self.run_json(&hdr, conn, Operation::SystemDiagnose(args)).await
    }

    /// Operation journal.query: args is the REST query as a JSON object ({unit, sandbox, priority, since_ms,
    /// until_ms, grep, limit}, all optional); returns schema JournalPage. Operators only.
    #[zbus(out_args("json"))]
    async fn query_journal(
        &self,
        args: &str,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        let q: cacheos_core::diagnose::JournalQuery =
            serde_json::from_str(if args.is_empty() { "{}" } else { args })
                .map_err(|e| Error::InvalidArgument(format!("invalid journal query: {e}")))?;
        self.run_json(&hdr, conn, Operation::JournalQuery(q)).await
    }

    /// Operation service.list: the appliance's services and mounts, failed first, as a JSON array (schema
    /// ServiceInfo). Anyone may call it.
    #[zbus(out_args("json"))]
    async fn list_services(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        self.run_json(&hdr, conn, Operation::ServiceList).await
    }

    /// Operation service.restart: clears the unit's failed state and restarts it; returns its state after (schema
    /// ServiceInfo). Operators only.
    #[zbus(out_args("json"))]
    async fn restart_service(
        &self,
        unit: &str,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        let op = Operation::ServiceRestart(cacheos_core::diagnose::ServiceRef { unit: unit.to_owned() });
        self.run_json(&hdr, conn, op).await
    }

    // issue 19 (trust)
    /// Operation web.cert: the web port's TLS certificate (schema WebCert: fingerprint_sha256, path,
    /// redirects_plain_http). Anyone.
    #[zbus(out_args("json"))]
    async fn get_web_cert(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        self.run_json(&hdr, conn, Operation::WebCert).await
    }

    /// A core event: kind is its type (operation-finished, task-state-changed, daemon-state-changed, drive, sandbox), json the
    /// whole event as a JSON object (schema Event).
    #[zbus(signal)]
    async fn event(emitter: &SignalEmitter<'_>, kind: &str, json: &str) -> zbus::Result<()>;

    // issue 18 (licences)
    /// Operation license.scan: args is the JSON body of POST /api/v1/license/scan ({"drive"|"sandbox", "path", "job"}). Returns JSON (schema ScanReport); progress arrives as Event("license-job", …) signals. Root and group cacheos only.
    #[zbus(out_args("json"))]
    async fn scan_licenses(
        &self,
        args: &str,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        self.run_json(&hdr, conn, Operation::LicenseScan(parse_args(args)?))
            .await
    }

    /// Operation sbom.create: args is the JSON body of POST /api/v1/sbom ({"drive"|"sandbox", "path"} or {"appliance": true}). Returns JSON (schema SbomDocuments: SPDX 2.3 and CycloneDX 1.5). Root and group cacheos only.
    #[zbus(out_args("json"))]
    async fn create_sbom(
        &self,
        args: &str,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        self.run_json(&hdr, conn, Operation::SbomCreate(parse_args(args)?))
            .await
    }

    /// Operation notice.create: args is the JSON body of POST /api/v1/notice (as CreateSbom). Returns JSON (schema Notice). Root and group cacheos only.
    #[zbus(out_args("json"))]
    async fn create_notice(
        &self,
        args: &str,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        self.run_json(&hdr, conn, Operation::NoticeCreate(parse_args(args)?))
            .await
    }

    /// Operation proof.create: args is the JSON body of POST /api/v1/proofs ({"drive"|"sandbox", "path"}). Returns the signed manifest as JSON. Root and group cacheos only.
    #[zbus(out_args("json"))]
    async fn create_proof(
        &self,
        args: &str,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        self.run_json(&hdr, conn, Operation::ProofCreate(parse_args(args)?))
            .await
    }

    /// Operation proof.verify: args is the JSON body of POST /api/v1/proofs/verify ({"manifest"} or {"root"} or {} for the newest). Returns JSON (schema Verification). Root and group cacheos only.
    #[zbus(out_args("json"))]
    async fn verify_proof(
        &self,
        args: &str,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        self.run_json(&hdr, conn, Operation::ProofVerify(parse_args(args)?))
            .await
    }

    /// Operation disclosure.draft: args is the JSON body of POST /api/v1/disclosures ({"title", "text", "language", "proof"}). Returns JSON (schema Disclosure); nothing is filed anywhere. Root and group cacheos only.
    #[zbus(out_args("json"))]
    async fn draft_disclosure(
        &self,
        args: &str,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        self.run_json(&hdr, conn, Operation::DisclosureDraft(parse_args(args)?))
            .await
    }

    /// Operation license.cancel: stops the running licence job `job` (named in the license-job events). Root and
    /// group cacheos only.
    #[zbus(out_args("json"))]
    async fn cancel_license_job(
        &self,
        job: &str,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        let op = Operation::LicenseCancel(cacheos_core::license::JobRef { job: job.to_owned() });
        self.run_json(&hdr, conn, op).await
    }

    // issue 15 (software)
    /// Operation software.search: packages for a name or wish from Debian, PyPI and npm as JSON (schema SearchResult); `ecosystem` "" means all (apt, pip, npm). Anyone may call it.
    #[zbus(out_args("json"))]
    async fn search_software(
        &self,
        query: &str,
        ecosystem: &str,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        self.run_json(
            &hdr,
            conn,
            Operation::SoftwareSearch(cacheos_core::software::SoftwareSearchArgs {
                query: query.to_owned(),
                ecosystem: if ecosystem.is_empty() {
                    None
                } else {
                    Some(parse_args(&format!("{ecosystem:?}"))?)
                },
            }),
        )
        .await
    }

    /// Operation software.plan: args is the JSON body of POST /api/v1/software/plan ({"sandbox", "packages": [{"ecosystem", "name", "version"}], "request", "profile", "starters"}). Returns the plan as JSON (schema SoftwarePlan); nothing is changed. Root and group cacheos only.
    #[zbus(out_args("json"))]
    async fn plan_software(
        &self,
        args: &str,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        self.run_json(&hdr, conn, Operation::SoftwarePlan(parse_args(args)?))
            .await
    }

    /// Operation software.install: args as for PlanSoftware. Starts the install job and returns it at once as JSON (schema SoftwareJob); progress arrives as Event("software-job", …) signals. Root and group cacheos only.
    #[zbus(out_args("json"))]
    async fn install_software(
        &self,
        args: &str,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        self.run_json(&hdr, conn, Operation::SoftwareInstall(parse_args(args)?))
            .await
    }

    /// Operation software.list: what CacheOS installed in a sandbox, as JSON (schema Lockfile). Anyone may call it.
    #[zbus(out_args("json"))]
    async fn list_software(
        &self,
        sandbox: &str,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        self.run_json(
            &hdr,
            conn,
            Operation::SoftwareList(cacheos_core::software::SoftwareListArgs {
                sandbox: sandbox.to_owned(),
            }),
        )
        .await
    }

    /// Operation software.remove: args is {"sandbox", "packages": [{"ecosystem", "name"}]}. Returns the lockfile after the removal (schema Lockfile). Root and group cacheos only.
    #[zbus(out_args("json"))]
    async fn remove_software(
        &self,
        args: &str,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        self.run_json(&hdr, conn, Operation::SoftwareRemove(parse_args(args)?))
            .await
    }

    /// Operation software.job: an install job's state as JSON (schema SoftwareJob). Root and group cacheos only.
    #[zbus(out_args("json"))]
    async fn get_software_job(
        &self,
        job: &str,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        self.run_json(
            &hdr,
            conn,
            Operation::SoftwareJob(cacheos_core::software::SoftwareJobRef { job: job.to_owned() }),
        )
        .await
    }

    /// Operation software.cancel: stops an install job after its current command; returns a message. Root and group cacheos only.
    #[zbus(out_args("json"))]
    async fn cancel_software_job(
        &self,
        job: &str,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        self.run_json(
            &hdr,
            conn,
            Operation::SoftwareCancel(cacheos_core::software::SoftwareJobRef { job: job.to_owned() }),
        )
        .await
    }

    /// Operation sandbox.expose: makes `port` of a NAT sandbox reachable on the appliance at `host_port` (0: the same port); returns JSON (schema SandboxNetworkInfo). Root and group cacheos only.
    #[zbus(out_args("json"))]
    async fn expose_sandbox_port(
        &self,
        name: &str,
        port: u16,
        host_port: u16,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        self.run_json(
            &hdr,
            conn,
            Operation::SandboxExpose(cacheos_core::software::expose::ExposeArgs {
                name: name.to_owned(),
                port,
                host_port: (host_port != 0).then_some(host_port),
            }),
        )
        .await
    }

    /// Operation sandbox.unexpose: stops forwarding `port` of a sandbox; returns JSON (schema SandboxNetworkInfo). Root and group cacheos only.
    #[zbus(out_args("json"))]
    async fn unexpose_sandbox_port(
        &self,
        name: &str,
        port: u16,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        self.run_json(
            &hdr,
            conn,
            Operation::SandboxUnexpose(cacheos_core::software::expose::UnexposeArgs {
                name: name.to_owned(),
                port,
            }),
        )
        .await
    }

    /// Operation sandbox.service: keeps `command` (argv) running in a sandbox as service `service` ("": main), restarted on failure and started with the sandbox; an empty command removes it. Returns JSON (schema SandboxNetworkInfo). Root and group cacheos only.
    #[zbus(out_args("json"))]
    async fn set_sandbox_service(
        &self,
        name: &str,
        service: &str,
        command: Vec<String>,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        self.run_json(
            &hdr,
            conn,
            Operation::SandboxService(cacheos_core::software::expose::ServiceArgs {
                name: name.to_owned(),
                command,
                service: (!service.is_empty()).then(|| service.to_owned()),
            }),
        )
        .await
    }

    // issue 14 (models)
    /// Operation model.list: the backends, the GGUF files in /var/lib/cacheos/models and on attached drives (size, quantisation, context length) and the active choice, as JSON (schema ModelList). Anyone may call it.
    #[zbus(out_args("json"))]
    async fn list_models(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        self.run_json(&hdr, conn, Operation::ModelList).await
    }

    /// Operation model.use: args is the JSON body of POST /api/v1/models/use: exactly one of {"path"}, {"drive", "file"} or {"url", "model", "api_key"} (the key is kept in a file of mode 0600 and never shown again), "threads" for a GGUF file. Returns the status as JSON (schema ModelStatus). Root and group cacheos only.
    #[zbus(out_args("json"))]
    async fn use_model(
        &self,
        args: &str,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        self.run_json(&hdr, conn, Operation::ModelUse(parse_args(args)?)).await
    }

    /// Operation model.status: the active model, whether it is loaded, its memory, the last tokens/s and whether questions leave the appliance, as JSON (schema ModelStatus). Anyone may call it.
    #[zbus(out_args("json"))]
    async fn get_model_status(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        self.run_json(&hdr, conn, Operation::ModelStatus).await
    }

    /// Operation model.unload: switches the model off and forgets the API key; the chat uses its own understanding only. Returns the status as JSON. Root and group cacheos only.
    #[zbus(out_args("json"))]
    async fn unload_model(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        self.run_json(&hdr, conn, Operation::ModelUnload).await
    }

    /// Operation model.test: a fixed prompt, with time to first token and tokens/s, as JSON (schema ModelTestResult). Root and group cacheos only.
    #[zbus(out_args("json"))]
    async fn test_model(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        self.run_json(&hdr, conn, Operation::ModelTest).await
    }

    /// Stops the language-model generations running now (the chat's Stop); the chats waiting for them answer that the model was stopped. Anyone may call it.
    async fn stop_model(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(), Error> {
        self.caller(&hdr, conn).await?;
        self.chat.stop_model();
        Ok(())
    }

    /// Operation privacy.channels: every part of CacheOS that can send data off the appliance (model endpoints, sandboxes with NAT, the web port), each with its state and the operation that switches it, as JSON (schema PrivacyReport). Anyone may call it.
    #[zbus(out_args("json"))]
    async fn get_privacy_channels(
        &self,
        #[zbus(header)] hdr: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, Error> {
        self.run_json(&hdr, conn, Operation::PrivacyChannels).await
    }

    /// CacheOS version.
    #[zbus(property(emits_changed_signal = "const"))]
    fn version(&self) -> String {
        cacheos_core::VERSION.to_string()
    }

    /// Daemon state: starting, running, degraded or stopping.
    #[zbus(property)]
    fn state(&self) -> String {
        self.state.lock().unwrap().as_str().to_string()
    }
}

fn parse_args<T: serde::de::DeserializeOwned>(json: &str) -> Result<T, Error> {
    serde_json::from_str(json).map_err(|e| Error::InvalidArgument(format!("invalid args: {e}")))
}

/// Connects to `bus`, serves the Manager, takes the bus name, then forwards core events as signals until the
/// connection fails. Calls `ready` once the name is taken. Returns only on error (the supervisor restarts it).
pub async fn serve(
    core: Arc<Core>,
    chat: Arc<ChatService>,
    bus: &Bus,
    state: DaemonState,
    ready: impl FnOnce(),
) -> zbus::Result<()> {
    let mut events = core.events().subscribe();
    let core_for_drives = core.clone();
    let core_for_sandboxes = core.clone();
    let manager = Manager::new(core, chat, state);
    let clients = manager.clients.clone();
    let state_cell = manager.state.clone();
    // Serve the object before taking the name, so no caller sees the name without the object.
    let conn = bus
        .builder()?
        .serve_at(OBJECT_PATH, manager)?
        .name(BUS_NAME)?
        .build()
        .await?;
    tracing::info!(name = BUS_NAME, "D-Bus service ready");
    let drives = crate::drive::DriveObjects::new(core_for_drives);
    drives.sync(&conn).await;
    let sandboxes = crate::sandbox::SandboxObjects::new(core_for_sandboxes);
    sandboxes.sync(&conn).await;
    ready();
    let iface = conn.object_server().interface::<_, Manager>(OBJECT_PATH).await?;
    let dbus = fdo::DBusProxy::new(&conn).await?;
    let mut owners = dbus.receive_name_owner_changed().await?;
    loop {
        tokio::select! {
            ev = events.next() => {
                let Some(ev) = ev else { return Err(zbus::Error::Failure("event bus closed".into())) };
                let json = serde_json::to_string(&ev).unwrap_or_default();
                Manager::event(iface.signal_emitter(), ev.kind.type_name(), &json).await?;
                if matches!(ev.kind, EventKind::Drive { .. }) {
                    drives.sync(&conn).await;
                }
                if matches!(ev.kind, EventKind::Sandbox { .. }) {
                    sandboxes.sync(&conn).await;
                }
                if let EventKind::DaemonStateChanged { state } = ev.kind {
                    *state_cell.lock().unwrap() = state;
                    iface.get().await.state_changed(iface.signal_emitter()).await?;
                }
            }
            change = owners.next() => {
                let Some(change) = change else { return Err(zbus::Error::Failure("bus connection closed".into())) };
                if let Ok(args) = change.args() {
                    if args.new_owner().is_none() {
                        clients.lock().unwrap().remove(args.name().as_str());
                    }
                }
            }
        }
    }
}
