//! Real side effects behind the core's traits: reading the machine (procfs, statvfs, systemd), the user database,
//! secrets on disk, and virtual drives (loop devices, mounts, image formats, block exports), and sandboxes (overlay roots, systemd-nspawn),
//! and diagnosis (systemd's units over D-Bus, the journal through journalctl).

pub mod accounts;
pub mod drive;
pub mod journal;
pub mod probe;
pub mod sandbox;
pub mod software;
pub mod systemd;
pub mod tls;
pub mod token;

/// Whether systemd is PID 1 (the `sd_booted()` test: `/run/systemd/system` exists).
pub fn systemd_booted() -> bool {
    std::path::Path::new("/run/systemd/system").is_dir()
}
