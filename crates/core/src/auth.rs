//! Who is calling, through which front end, and the policy that decides what they may do.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::operation::{OpInfo, Privilege};

/// The front end an operation arrived through. Recorded in the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Frontend {
    /// A D-Bus client that did not say what it is (busctl, gdbus, another program).
    Dbus,
    /// The REST API on the web port.
    Rest,
    /// `cacheosctl` (over D-Bus; it registers itself as the CLI).
    Cli,
    /// The chat engine (console, web chat or `cacheosctl chat`).
    Chat,
    /// The daemon itself (reconciliation at start, scheduled work).
    Internal,
}

impl Frontend {
    /// The stable name used in the audit log, filters and documentation.
    pub fn as_str(self) -> &'static str {
        match self {
            Frontend::Dbus => "dbus",
            Frontend::Rest => "rest",
            Frontend::Cli => "cli",
            Frontend::Chat => "chat",
            Frontend::Internal => "internal",
        }
    }

    /// Parses a stable name; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "dbus" => Frontend::Dbus,
            "rest" => Frontend::Rest,
            "cli" => Frontend::Cli,
            "chat" => Frontend::Chat,
            "internal" => Frontend::Internal,
            _ => return None,
        })
    }
}

impl std::fmt::Display for Frontend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The authenticated identity behind a call, as established by the front end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Principal {
    /// A local user, identified by the kernel (D-Bus peer credentials).
    Uid {
        /// The numeric user id.
        uid: u32,
    },
    /// A web client that presented the web token.
    WebToken,
    /// A web client on the loopback interface, trusted by configuration.
    Loopback,
    /// The daemon itself.
    Internal,
}

impl Principal {
    /// The uid, where the principal is a local user.
    pub fn uid(&self) -> Option<u32> {
        match self {
            Principal::Uid { uid } => Some(*uid),
            _ => None,
        }
    }
}

impl std::fmt::Display for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Principal::Uid { uid } => write!(f, "uid {uid}"),
            Principal::WebToken => f.write_str("web token"),
            Principal::Loopback => f.write_str("loopback"),
            Principal::Internal => f.write_str("cacheosd"),
        }
    }
}

/// Everything the core knows about the origin of an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The front end it came through.
    pub frontend: Frontend,
    /// Who it is.
    pub principal: Principal,
    /// Chat session, where the operation came from a conversation.
    pub session: Option<String>,
    /// The original utterance, where the operation came from chat.
    pub utterance: Option<String>,
}

impl Caller {
    /// A caller without chat context.
    pub fn new(frontend: Frontend, principal: Principal) -> Self {
        Self {
            frontend,
            principal,
            session: None,
            utterance: None,
        }
    }

    /// The daemon itself.
    pub fn internal() -> Self {
        Self::new(Frontend::Internal, Principal::Internal)
    }
}

/// Account lookups the policy needs (a real one reads the system's user database).
pub trait Accounts: Send + Sync {
    /// Whether `uid` is a member (primary or supplementary) of the group called `group`.
    fn in_group(&self, uid: u32, group: &str) -> bool;
}

/// Decides whether a caller may run an operation.
pub trait Authorizer: Send + Sync {
    /// `Ok` when allowed; otherwise a short reason naming what is missing.
    fn authorize(&self, caller: &Caller, op: &OpInfo) -> Result<(), String>;
}

/// The default policy: everyone may read; root, members of the operator group, holders of the web token,
/// trusted loopback web clients and the daemon itself may do everything.
pub struct GroupPolicy<A> {
    accounts: A,
    group: String,
}

impl<A: Accounts> GroupPolicy<A> {
    /// A policy where `group` (normally `cacheos`) is the operator group.
    pub fn new(accounts: A, group: impl Into<String>) -> Self {
        Self {
            accounts,
            group: group.into(),
        }
    }
}

impl<A: Accounts> Authorizer for GroupPolicy<A> {
    fn authorize(&self, caller: &Caller, op: &OpInfo) -> Result<(), String> {
        if op.privilege == Privilege::Anyone {
            return Ok(());
        }
        match &caller.principal {
            Principal::Internal | Principal::WebToken | Principal::Loopback => Ok(()),
            Principal::Uid { uid: 0 } => Ok(()),
            Principal::Uid { uid } if self.accounts.in_group(*uid, &self.group) => Ok(()),
            Principal::Uid { uid } => Err(format!(
                "uid {uid} is neither root nor a member of group {}",
                self.group
            )),
        }
    }
}

/// Accounts for tests: a fixed list of (uid, group) memberships.
#[derive(Debug, Default, Clone)]
pub struct StaticAccounts(pub Vec<(u32, String)>);

impl Accounts for StaticAccounts {
    fn in_group(&self, uid: u32, group: &str) -> bool {
        self.0.iter().any(|(u, g)| *u == uid && g == group)
    }
}
