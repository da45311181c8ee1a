//! Client proxy for `org.cacheos.CacheOS1.Manager`, used by `cacheosctl`, the benchmark and tests.

/// Proxy of the Manager interface. Methods return JSON documents as described on [`crate::Manager`].
#[zbus::proxy(
    interface = "org.cacheos.CacheOS1.Manager",
    default_service = "org.cacheos.CacheOS1",
    default_path = "/org/cacheos/CacheOS1"
)]
pub trait Manager {
    /// `system.status` as JSON.
    fn get_system_status(&self) -> zbus::Result<String>;
    /// `system.history` as JSON; `since_ms` 0 means every kept sample.
    fn get_system_history(&self, since_ms: u64) -> zbus::Result<String>;
    /// `supervisor.status` as JSON.
    fn get_supervisor_status(&self) -> zbus::Result<String>;
    /// `audit.query`; zero and empty arguments mean "no filter".
    #[allow(clippy::too_many_arguments)]
    fn query_audit(
        &self,
        since_ms: u64,
        until_ms: u64,
        frontend: &str,
        operation: &str,
        outcome: &str,
        limit: u32,
    ) -> zbus::Result<String>;
    /// `supervisor.kill-task`.
    fn kill_task(&self, task: &str) -> zbus::Result<String>;
    /// `web.token`.
    fn get_web_token(&self) -> zbus::Result<String>;
    /// Labels this connection's calls with a front end (`cli`).
    fn register_client(&self, kind: &str) -> zbus::Result<()>;
    /// Chat without executing.
    fn interpret(&self, text: &str, session: &str) -> zbus::Result<String>;
    /// Chat.
    fn chat(&self, text: &str, session: &str) -> zbus::Result<String>;
    /// A session's history.
    fn chat_history(&self, session: &str) -> zbus::Result<String>;
    /// Deletes a session's history.
    fn clear_chat_history(&self, session: &str) -> zbus::Result<()>;
    /// `drive.list`.
    fn list_drives(&self) -> zbus::Result<String>;
    /// `drive.info`.
    fn get_drive(&self, name: &str) -> zbus::Result<String>;
    /// `drive.images`.
    fn list_images(&self) -> zbus::Result<String>;
    /// `drive.files`.
    fn list_drive_files(&self, name: &str, path: &str, volume: &str) -> zbus::Result<String>;
    /// `drive.attach` with the REST body as JSON.
    fn attach_drive(&self, args: &str) -> zbus::Result<String>;
    /// `drive.detach`.
    fn detach_drive(&self, name: &str, force: bool) -> zbus::Result<String>;
    /// `drive.create` with the REST body as JSON.
    fn create_drive(&self, args: &str) -> zbus::Result<String>;
    /// `drive.snapshot`.
    fn snapshot_drive(&self, name: &str) -> zbus::Result<String>;
    /// `drive.discard`.
    fn discard_snapshot(&self, name: &str) -> zbus::Result<String>;
    /// `drive.commit`.
    fn commit_snapshot(&self, name: &str, confirm: bool) -> zbus::Result<String>;
    /// `drive.persist`.
    fn set_drive_persistent(&self, name: &str, persistent: bool) -> zbus::Result<String>;
    /// `drive.reconcile`.
    fn reconcile_drives(&self) -> zbus::Result<String>;
    /// `sandbox.list`.
    fn list_sandboxes(&self) -> zbus::Result<String>;
    /// `sandbox.info`.
    fn get_sandbox(&self, name: &str) -> zbus::Result<String>;
    /// `sandbox.templates`.
    fn list_templates(&self) -> zbus::Result<String>;
    /// `sandbox.create` with the REST body as JSON.
    fn create_sandbox(&self, args: &str) -> zbus::Result<String>;
    /// `sandbox.start`.
    fn start_sandbox(&self, name: &str) -> zbus::Result<String>;
    /// `sandbox.stop`.
    fn stop_sandbox(&self, name: &str) -> zbus::Result<String>;
    /// `sandbox.restart`.
    fn restart_sandbox(&self, name: &str) -> zbus::Result<String>;
    /// `sandbox.remove`.
    fn remove_sandbox(&self, name: &str, confirm: bool) -> zbus::Result<String>;
    /// `sandbox.exec`; timeout_secs 0 means no limit.
    fn exec_sandbox(&self, name: &str, argv: &[&str], timeout_secs: u64) -> zbus::Result<String>;
    /// `sandbox.logs`; 0 lines means the default.
    fn get_sandbox_logs(&self, name: &str, lines: u32) -> zbus::Result<String>;
    /// `sandbox.reconcile`.
    fn reconcile_sandboxes(&self) -> zbus::Result<String>;
    // issue 17 (kb)
    /// `kb.index`; `path` "" means the whole drive.
    fn kb_index(&self, source: &str, path: &str) -> zbus::Result<String>;
    /// `kb.sources`.
    fn kb_sources(&self) -> zbus::Result<String>;
    /// `kb.search`; `limit` 0 means the default.
    fn kb_search(&self, query: &str, limit: u32) -> zbus::Result<String>;
    /// `kb.ask`.
    fn kb_ask(&self, question: &str) -> zbus::Result<String>;
    /// `kb.remove`.
    fn kb_remove(&self, source: &str) -> zbus::Result<String>;
    /// `kb.cancel`.
    fn kb_cancel(&self, source: &str) -> zbus::Result<String>;
    /// `sandbox.run` with the REST body as JSON.
    fn run_in_sandbox(&self, args: &str) -> zbus::Result<String>;
    /// `sandbox.shell`: the terminal's controller side and JSON.
    fn open_sandbox_shell(&self, name: &str, term: &str) -> zbus::Result<(zbus::zvariant::OwnedFd, String)>;
    /// `sandbox.copy-in`, the bytes read from `data`.
    fn copy_into_sandbox(
        &self,
        name: &str,
        path: &str,
        archive: bool,
        data: zbus::zvariant::Fd<'_>,
    ) -> zbus::Result<String>;
    /// `sandbox.copy-out`, the bytes written to `data`.
    fn copy_from_sandbox(
        &self,
        name: &str,
        path: &str,
        archive: bool,
        data: zbus::zvariant::Fd<'_>,
    ) -> zbus::Result<String>;
    // issue 18 (licences)
    /// `license.scan` with the REST body as JSON.
    fn scan_licenses(&self, args: &str) -> zbus::Result<String>;
    /// `sbom.create` with the REST body as JSON.
    fn create_sbom(&self, args: &str) -> zbus::Result<String>;
    /// `notice.create` with the REST body as JSON.
    fn create_notice(&self, args: &str) -> zbus::Result<String>;
    /// `proof.create` with the REST body as JSON.
    fn create_proof(&self, args: &str) -> zbus::Result<String>;
    /// `proof.verify` with the REST body as JSON.
    fn verify_proof(&self, args: &str) -> zbus::Result<String>;
    /// `disclosure.draft` with the REST body as JSON.
    fn draft_disclosure(&self, args: &str) -> zbus::Result<String>;
    /// `license.cancel`.
    fn cancel_license_job(&self, job: &str) -> zbus::Result<String>;
    /// Core events.
    #[zbus(signal)]
    fn event(&self, kind: String, json: String) -> zbus::Result<()>;
    /// A language model's words while a Chat call of this connection waits.
    #[zbus(signal)]
    fn chat_token(&self, seq: u64, text: String) -> zbus::Result<()>;
    /// CacheOS version.
    #[zbus(property)]
    fn version(&self) -> zbus::Result<String>;
    /// Daemon state.
    #[zbus(property)]
    fn state(&self) -> zbus::Result<String>;
    // issue 16 (diagnose)
    /// `system.diagnose`; empty strings mean "not given".
    fn diagnose(&self, unit: &str, sandbox: &str, drive: &str) -> zbus::Result<String>;
    /// `journal.query` with the REST query as JSON.
    fn query_journal(&self, args: &str) -> zbus::Result<String>;
    /// `service.list`.
    fn list_services(&self) -> zbus::Result<String>;
    /// `service.restart`.
    fn restart_service(&self, unit: &str) -> zbus::Result<String>;
    // issue 15 (software)
    /// `software.search`; `ecosystem` "" means all.
    fn search_software(&self, query: &str, ecosystem: &str) -> zbus::Result<String>;
    /// `software.plan` with the REST body as JSON.
    fn plan_software(&self, args: &str) -> zbus::Result<String>;
    /// `software.install` with the REST body as JSON; returns the job at once.
    fn install_software(&self, args: &str) -> zbus::Result<String>;
    /// `software.list`.
    fn list_software(&self, sandbox: &str) -> zbus::Result<String>;
    /// `software.remove` with the REST body as JSON.
    fn remove_software(&self, args: &str) -> zbus::Result<String>;
    /// `software.job`.
    fn get_software_job(&self, job: &str) -> zbus::Result<String>;
    /// `software.cancel`.
    fn cancel_software_job(&self, job: &str) -> zbus::Result<String>;
    /// `sandbox.expose`; `host_port` 0 means the same port.
    fn expose_sandbox_port(&self, name: &str, port: u16, host_port: u16) -> zbus::Result<String>;
    /// `sandbox.unexpose`.
    fn unexpose_sandbox_port(&self, name: &str, port: u16) -> zbus::Result<String>;
    /// `sandbox.service`; an empty command removes the service.
    fn set_sandbox_service(&self, name: &str, service: &str, command: &[&str]) -> zbus::Result<String>;
    // issue 14 (models)
    /// `model.list`.
    fn list_models(&self) -> zbus::Result<String>;
    /// `model.use` with the REST body as JSON.
    fn use_model(&self, args: &str) -> zbus::Result<String>;
    /// `model.status`.
    fn get_model_status(&self) -> zbus::Result<String>;
    /// `model.unload`.
    fn unload_model(&self) -> zbus::Result<String>;
    /// `model.test`.
    fn test_model(&self) -> zbus::Result<String>;
    /// Stops the running generations.
    fn stop_model(&self) -> zbus::Result<()>;
    /// `privacy.channels`.
    fn get_privacy_channels(&self) -> zbus::Result<String>;
    // issue 19 (trust)
    /// `web.cert`.
    fn get_web_cert(&self) -> zbus::Result<String>;
}
