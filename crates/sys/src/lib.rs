//! Real side effects behind the core's traits: reading the machine (procfs, statvfs, systemd), the user database,
//! and secrets on disk. Later: loop devices, mounts, image formats, nspawn.

pub mod accounts;
pub mod probe;
pub mod token;

/// Whether systemd is PID 1 (the `sd_booted()` test: `/run/systemd/system` exists).
pub fn systemd_booted() -> bool {
    std::path::Path::new("/run/systemd/system").is_dir()
}
