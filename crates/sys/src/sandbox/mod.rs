//! Real implementations of the core's sandbox traits (`cacheos_core::sandbox`): sandbox roots ([`OverlayRoots`])
//! and systemd-nspawn containers ([`NspawnRunner`], as transient units under systemd or spawned directly).

pub mod roots;
pub mod runner;

pub use roots::OverlayRoots;
pub use runner::{Mode, NspawnRunner};
