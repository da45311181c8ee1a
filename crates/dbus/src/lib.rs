//! The D-Bus front end: service `org.cacheos.CacheOS1`, object `/org/cacheos/CacheOS1`, interface
//! `org.cacheos.CacheOS1.Manager`, plus the client proxy `cacheosctl` uses.
//!
//! Structured results are returned as JSON strings with exactly the shape of the REST API's responses (schemas in
//! `/api/v1/openapi.json`), so every client sees one representation. Errors are typed D-Bus errors named
//! `org.cacheos.CacheOS1.Error.<Code>`.

pub mod client;
mod drive;
mod error;
mod manager;
mod sandbox;

pub use error::Error;
pub use manager::{serve, Manager};

/// Well-known bus name.
pub const BUS_NAME: &str = "org.cacheos.CacheOS1";
/// Root object path.
pub const OBJECT_PATH: &str = "/org/cacheos/CacheOS1";
/// Manager interface name.
pub const MANAGER_INTERFACE: &str = "org.cacheos.CacheOS1.Manager";

/// Which bus to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bus {
    /// The system bus (honours `DBUS_SYSTEM_BUS_ADDRESS`).
    System,
    /// The session bus (`DBUS_SESSION_BUS_ADDRESS`); development mode.
    Session,
    /// An explicit address such as `unix:path=/run/x`.
    Address(String),
}

impl Bus {
    /// A connection builder for this bus.
    pub fn builder(&self) -> zbus::Result<zbus::connection::Builder<'static>> {
        Ok(match self {
            Bus::System => zbus::connection::Builder::system()?,
            Bus::Session => zbus::connection::Builder::session()?,
            Bus::Address(a) => zbus::connection::Builder::address(a.as_str())?,
        })
    }
}
