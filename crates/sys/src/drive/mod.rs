//! Real implementations of the core's drive traits (`cacheos_core::drive`): image inspection by magic bytes,
//! loop devices (loopdev-3), file system probing (libblkid), partition tables (sfdisk), mounts (rustix) and qemu-storage-daemon FUSE exports.

pub mod export;
pub mod image;
pub mod loops;
pub mod mount;
pub mod nbd;
pub mod paths;
pub mod probe;
pub mod table;
pub mod tool;

pub use export::QsdFuseExport;
pub use image::MagicInspector;
pub use loops::KernelLoops;
pub use mount::KernelMounter;
pub use nbd::{AutoExport, NbdExport};
pub use paths::BeneathPaths;
pub use probe::BlkidProbe;
pub use table::SfdiskTable;
pub use tool::QemuImgTool;
