//! Real implementations of the core's sandbox traits (`cacheos_core::sandbox`): sandbox roots ([`OverlayRoots`])
//! and systemd-nspawn containers ([`NspawnRunner`], as transient units under systemd or spawned directly), and
//! template discovery ([`templates::scan_dir`]).

pub mod roots;
pub mod runner;
pub mod templates;

pub use roots::OverlayRoots;
pub use runner::{Mode, NspawnRunner};
