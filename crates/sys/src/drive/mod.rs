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

/// Every drive trait backed by the real kernel and tools, as cacheosd uses them (nbd exports where the kernel has
/// nbd, FUSE exports otherwise).
pub fn kernel_deps() -> cacheos_core::drive::DriveDeps {
    use std::sync::Arc;
    cacheos_core::drive::DriveDeps {
        paths: Arc::new(BeneathPaths),
        inspector: Arc::new(MagicInspector),
        loops: Arc::new(KernelLoops::default()),
        tables: Arc::new(SfdiskTable),
        probe: Arc::new(BlkidProbe::default()),
        mounter: Arc::new(KernelMounter),
        exporter: Arc::new(AutoExport::default()),
        tool: Arc::new(QemuImgTool::default()),
    }
}
