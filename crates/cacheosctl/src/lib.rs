//! Code shared by the `cacheosctl` and `cacheos-console` binaries: connecting to cacheosd, D-Bus failures with
//! their exit codes, and the chat conversation ([`chat`]).

pub mod chat;
pub mod notice;
pub mod shell;

use cacheos_dbus::client::ManagerProxy;
use cacheos_dbus::Bus;
use serde_json::Value;

/// A failure with its exit code (see cacheosctl's `--help`).
#[derive(Debug)]
pub struct Failure {
    /// Process exit code: 1 failed, 2 usage, 3 unreachable, 4 denied, 5 not found, 6 invalid argument.
    pub code: u8,
    /// What went wrong (empty: already said).
    pub message: String,
}

/// Maps a D-Bus error to a failure with its exit code.
pub fn failure(e: zbus::Error) -> Failure {
    if let zbus::Error::MethodError(name, msg, _) = &e {
        let short = name.as_str().rsplit('.').next().unwrap_or("");
        let code = match short {
            "PermissionDenied" | "AccessDenied" => 4,
            "NotFound" => 5,
            "InvalidArgument" => 6,
            "AlreadyExists" | "Busy" | "FailedPrecondition" => 1,
            "ServiceUnknown" | "NameHasNoOwner" => 3,
            _ => 1,
        };
        let message = msg.clone().unwrap_or_else(|| name.to_string());
        let message = if code == 3 {
            format!("cacheosd is not running on this bus ({message})")
        } else {
            message
        };
        return Failure { code, message };
    }
    let code = match e {
        zbus::Error::InputOutput(_) | zbus::Error::Address(_) | zbus::Error::Handshake(_) => 3,
        _ => 1,
    };
    Failure {
        code,
        message: if code == 3 {
            format!("cannot reach the D-Bus bus: {e}")
        } else {
            e.to_string()
        },
    }
}

/// Parses a JSON document cacheosd sent.
pub fn parse_json(s: &str) -> Result<Value, Failure> {
    serde_json::from_str(s).map_err(|e| Failure {
        code: 1,
        message: format!("cacheosd sent invalid JSON: {e}"),
    })
}

/// Connects to `bus` and labels the connection as the command-line client for the audit log.
pub async fn connect(bus: &Bus) -> Result<ManagerProxy<'static>, Failure> {
    let unreachable = |e: zbus::Error| Failure {
        code: 3,
        message: format!("cannot reach the D-Bus {} bus: {e}", bus_name(bus)),
    };
    let conn = bus.builder().map_err(unreachable)?.build().await.map_err(unreachable)?;
    let proxy = ManagerProxy::new(&conn).await.map_err(failure)?;
    proxy.register_client("cli").await.map_err(failure)?;
    Ok(proxy)
}

fn bus_name(bus: &Bus) -> &str {
    match bus {
        Bus::System => "system",
        Bus::Session => "session",
        Bus::Address(a) => a,
    }
}

/// The chat session a user's command-line and console conversations share: `cli-<uid>`.
pub fn default_session() -> String {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(0);
    format!("cli-{uid}")
}
