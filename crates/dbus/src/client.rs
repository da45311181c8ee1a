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
    /// Core events.
    #[zbus(signal)]
    fn event(&self, kind: String, json: String) -> zbus::Result<()>;
    /// CacheOS version.
    #[zbus(property)]
    fn version(&self) -> zbus::Result<String>;
    /// Daemon state.
    #[zbus(property)]
    fn state(&self) -> zbus::Result<String>;
}
