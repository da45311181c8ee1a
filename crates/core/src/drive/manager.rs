//! The drive manager: attach, mount, list, detach, create, snapshot, commit, persist and reconcile virtual drives,
//! as plans over the narrow traits of [`super`]. Pure logic: every side effect goes through a trait.
//!
//! Crash safety: a drive's record is written (state `attaching`) before anything is acquired and rewritten after
//! each acquisition (export, loop device, mount), and set to `detaching` before anything is released. Whatever a
//! crash interrupts, [`DriveManager::reconcile`] finds in the record (and in the kernel, by backing file and the
//! deterministic export path) and releases at the next start.

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;
use utoipa::ToSchema;

use super::model::*;
use super::*;
use crate::clock::Clock;
use crate::event::{DriveAction, EventBus, EventKind};
use crate::store::{Store, StoreError};

/// Where drives live. Paths are absolute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriveConfig {
    /// Bare file names resolve here; `drive.images` lists it.
    pub images_dir: PathBuf,
    /// Places images may be attached from (the images directory among them). Mount points of attached drives
    /// (below `mount_dir`) are always allowed too.
    pub allowed: Vec<PathBuf>,
    /// Mount points: `<mount_dir>/<drive>/<partition-or-label>`.
    pub mount_dir: PathBuf,
    /// Raw views of exported images: `<export_dir>/<drive>.raw`.
    pub export_dir: PathBuf,
    /// Snapshot overlays: `<snapshot_dir>/<drive>.qcow2`.
    pub snapshot_dir: PathBuf,
    /// Test hook (development mode only): at these named points the manager writes the point's name to
    /// `pause_marker` and stops making progress, so a test can SIGKILL the daemon at an exact step.
    pub pause_points: Vec<String>,
    /// See `pause_points`.
    pub pause_marker: Option<PathBuf>,
    /// Largest file `drive.upload` accepts, in bytes.
    pub max_upload_bytes: u64,
}

/// The default of [`DriveConfig::max_upload_bytes`]: 16 GiB.
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 16 << 30;

/// Longest name `drive.upload` accepts, in bytes.
pub const UPLOAD_NAME_MAX: usize = 128;

impl DriveConfig {
    /// The appliance's defaults below `state_dir` (`/var/lib/cacheos`) and `run_dir` (`/run/cacheos`).
    pub fn new(state_dir: &Path, run_dir: &Path) -> Self {
        let images_dir = state_dir.join("images");
        Self {
            allowed: vec![images_dir.clone(), "/media".into(), "/run/media".into()],
            images_dir,
            mount_dir: run_dir.join("drives"),
            export_dir: run_dir.join("exports"),
            snapshot_dir: state_dir.join("snapshots"),
            pause_points: Vec::new(),
            pause_marker: None,
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
        }
    }
}

/// The side effects the manager plans over.
#[derive(Clone)]
pub struct DriveDeps {
    pub paths: Arc<dyn SafePaths>,
    pub inspector: Arc<dyn ImageInspector>,
    pub loops: Arc<dyn LoopControl>,
    pub tables: Arc<dyn PartitionTableReader>,
    pub probe: Arc<dyn FsProbe>,
    pub mounter: Arc<dyn Mounter>,
    pub exporter: Arc<dyn BlockExport>,
    pub tool: Arc<dyn ImageTool>,
}

impl DriveDeps {
    /// Every trait backed by one set of recording fakes (and [`fake::PlainPaths`]).
    pub fn fake(f: &fake::FakeDrives) -> Self {
        Self {
            paths: Arc::new(fake::PlainPaths),
            inspector: Arc::new(f.inspector()),
            loops: Arc::new(f.loops()),
            tables: Arc::new(f.tables()),
            probe: Arc::new(f.probe()),
            mounter: Arc::new(f.mounter()),
            exporter: Arc::new(f.exporter()),
            tool: Arc::new(f.tool()),
        }
    }
}

/// Why a drive operation did not succeed. Variants name the drive, path or device involved.
#[derive(Debug, thiserror::Error)]
pub enum DriveError {
    #[error("invalid {field}: {reason}")]
    InvalidArgument { field: &'static str, reason: String },
    #[error("drive {name:?} not found")]
    NotFound { name: String },
    #[error("a drive named {name:?} already exists")]
    Exists { name: String },
    #[error("{path} is already attached as drive {name:?}")]
    AlreadyAttached { path: PathBuf, name: String },
    #[error("drive {name:?} is busy: {reason}")]
    Busy { name: String, reason: String },
    #[error("{0}")]
    FailedPrecondition(String),
    #[error(
        "no file system CacheOS can mount was found on {path} ({found}); attach with mount off to use the raw device"
    )]
    NoFileSystem { path: PathBuf, found: String },
    #[error(transparent)]
    Path(#[from] PathError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Loop(#[from] LoopError),
    #[error(transparent)]
    Partition(#[from] PartitionError),
    #[error(transparent)]
    Probe(#[from] ProbeError),
    #[error(transparent)]
    Mount(#[from] MountError),
    #[error(transparent)]
    Export(#[from] ExportError),
    #[error(transparent)]
    Tool(#[from] ToolError),
    #[error("cannot write {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What [`DriveManager::reconcile`] found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
#[schema(as = DriveReconcileReport)]
pub struct ReconcileReport {
    /// Drives found intact and kept (the daemon restarted without a reboot).
    pub kept: Vec<String>,
    /// Persistent drives attached again.
    pub reattached: Vec<String>,
    /// Drives found gone or half-attached; their leftovers were released and their records removed.
    pub removed: Vec<String>,
    /// Persistent drives that could not be attached again (the reason is in their notes).
    pub failed: Vec<String>,
    /// Mounts, loop devices and exports that belonged to no record, released.
    pub orphans: Vec<String>,
}

/// A created image (`drive.create`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Created {
    pub image: ImageFile,
    /// The drive, when it was attached afterwards.
    pub drive: Option<DriveInfo>,
}

enum Source<'a> {
    Image(&'a OpenImage),
    Overlay {
        overlay: &'a OpenImage,
        base: &'a OpenImage,
    },
}

/// The drive manager. Mutating operations are serialised; reads are not.
pub struct DriveManager {
    cfg: DriveConfig,
    deps: DriveDeps,
    store: Arc<dyn Store>,
    events: EventBus,
    clock: Arc<dyn Clock>,
    lock: Mutex<()>,
}

const MAX_NAME: usize = 48;
const MIN_CREATE: u64 = 1 << 20;
const MAX_CREATE: u64 = 16 << 40;

/// Checks a drive name: lowercase letters, digits, `-`, `_`, `.`; starting with a letter or digit; at most 48.
pub fn validate_name(name: &str) -> Result<(), DriveError> {
    let bad = |reason: String| DriveError::InvalidArgument { field: "name", reason };
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(bad(format!("{name:?} must be 1 to {MAX_NAME} characters")));
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit()) {
        return Err(bad(format!("{name:?} must start with a lowercase letter or digit")));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.')))
    {
        return Err(bad(format!(
            "{name:?} contains {c:?}; use lowercase letters, digits, '-', '_' and '.'"
        )));
    }
    Ok(())
}

/// A drive name from an image file name: `Debian-12.5.0-amd64-netinst.iso` becomes `debian-12.5.0-amd64-netinst`.
pub fn name_from_path(path: &Path) -> String {
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let lower = file.to_lowercase();
    let stem = [
        ".iso", ".img", ".raw", ".qcow2", ".vmdk", ".vdi", ".vhdx", ".vhd", ".bin",
    ]
    .iter()
    .find_map(|ext| lower.strip_suffix(ext))
    .unwrap_or(&lower);
    let mut out = String::new();
    for c in stem.chars() {
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.') {
            c
        } else {
            '-'
        };
        if !(c == '-' && (out.is_empty() || out.ends_with('-'))) {
            out.push(c);
        }
    }
    let mut out: String = out
        .trim_matches(|c| c == '-' || c == '.')
        .chars()
        .take(MAX_NAME)
        .collect();
    while out.ends_with(['-', '.']) {
        out.pop();
    }
    if out.is_empty() || validate_name(&out).is_err() {
        "drive".into()
    } else {
        out
    }
}

fn mount_dir_name(v: &Volume, used: &BTreeSet<String>) -> String {
    let label = v.fs.as_ref().and_then(|f| f.label.as_deref()).map(|l| {
        l.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                    c
                } else {
                    '_'
                }
            })
            .collect::<String>()
    });
    let fallback = match v.number {
        Some(n) => format!("p{n}"),
        None => "fs".into(),
    };
    let base = match label {
        Some(l) if !l.is_empty() && l != "." && l != ".." && !l.starts_with('.') => l,
        _ => fallback.clone(),
    };
    if !used.contains(&base) {
        base
    } else if !used.contains(&fallback) {
        fallback
    } else {
        format!("{base}-{}", used.len() + 1)
    }
}

/// What kind of export left `path` behind: nbd exports are symbolic links to their device.
fn export_kind(path: &Path) -> ExportKind {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => ExportKind::Nbd,
        _ => ExportKind::Fuse,
    }
}

/// A name `drive.upload` may create: a plain file name (no `/`, no NUL or control characters), not hidden (no
/// leading `.`), at most [`UPLOAD_NAME_MAX`] bytes.
fn validate_upload_name(name: &str) -> Result<(), DriveError> {
    let bad = |reason: &str| DriveError::InvalidArgument {
        field: "name",
        reason: format!("{name:?} {reason}"),
    };
    if name.is_empty() || name.len() > UPLOAD_NAME_MAX {
        return Err(bad(&format!("must be 1 to {UPLOAD_NAME_MAX} bytes")));
    }
    if name.contains('/') || name.chars().any(char::is_control) {
        return Err(bad("must be a plain file name (no '/' or control characters)"));
    }
    if name.starts_with('.') {
        return Err(bad("must not start with '.'"));
    }
    Ok(())
}

fn sandbox_active(v: &serde_json::Value) -> bool {
    matches!(
        v.get("state").and_then(|s| s.as_str()),
        Some("running" | "starting" | "stopping")
    )
}

impl DriveManager {
    pub fn new(
        cfg: DriveConfig,
        deps: DriveDeps,
        store: Arc<dyn Store>,
        events: EventBus,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            cfg,
            deps,
            store,
            events,
            clock,
            lock: Mutex::new(()),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &DriveConfig {
        &self.cfg
    }

    fn serialise(&self) -> MutexGuard<'_, ()> {
        self.lock.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn pause_point(&self, point: &str) {
        if !self.cfg.pause_points.iter().any(|p| p == point) {
            return;
        }
        tracing::warn!(point, "test pause point reached; waiting to be killed");
        if let Some(marker) = &self.cfg.pause_marker {
            let _ = std::fs::write(marker, point);
        }
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }

    fn publish(&self, name: &str, action: DriveAction, detail: Option<String>) {
        self.events.publish(EventKind::Drive {
            name: name.to_owned(),
            action,
            detail,
        });
    }

    fn roots(&self) -> Vec<PathBuf> {
        let mut r = self.cfg.allowed.clone();
        r.push(self.cfg.mount_dir.clone());
        r
    }

    /// An absolute path, or a bare file name in the images directory.
    fn resolve(&self, path: &str) -> Result<PathBuf, DriveError> {
        let bad = |reason: &str| DriveError::InvalidArgument {
            field: "path",
            reason: format!("{path:?} {reason}"),
        };
        if path.is_empty() || path.contains('\0') {
            return Err(bad("is empty or contains a NUL byte"));
        }
        let p = Path::new(path);
        let p = if !path.contains('/') {
            self.cfg.images_dir.join(p)
        } else if p.is_absolute() {
            p.to_owned()
        } else {
            return Err(bad("must be absolute or a bare file name in the images directory"));
        };
        if p.components().any(|c| matches!(c, Component::ParentDir)) {
            return Err(bad("must not contain '..'"));
        }
        // The kernel's limits (NAME_MAX, PATH_MAX): beyond them open(2) fails with ENAMETOOLONG, which is the
        // caller's mistake, not a drive failure (issue 19: schemathesis sent a 300-byte name and got a 500).
        if p.as_os_str().len() >= 4096 || p.components().any(|c| c.as_os_str().len() > 255) {
            return Err(bad("is too long (at most 255 bytes per name, 4095 in all)"));
        }
        Ok(p)
    }

    fn save(&self, rec: &DriveRecord) -> Result<(), DriveError> {
        let v = serde_json::to_value(rec).map_err(|e| StoreError::backend("encode drive record", e))?;
        self.store.put_record(RECORD_KIND, &rec.name, &v)?;
        Ok(())
    }

    fn records(&self) -> Result<Vec<DriveRecord>, DriveError> {
        let mut out = Vec::new();
        for (key, v) in self.store.list_records(RECORD_KIND)? {
            match serde_json::from_value(v) {
                Ok(r) => out.push(r),
                Err(e) => tracing::error!(drive = key, error = %e, "unreadable drive record ignored"),
            }
        }
        Ok(out)
    }

    fn get(&self, name: &str) -> Result<DriveRecord, DriveError> {
        match self.store.get_record(RECORD_KIND, name)? {
            Some(v) => {
                serde_json::from_value(v).map_err(|e| DriveError::Store(StoreError::backend("decode drive record", e)))
            }
            None => Err(DriveError::NotFound { name: name.to_owned() }),
        }
    }

    fn attached(&self, name: &str) -> Result<DriveRecord, DriveError> {
        let rec = self.get(name)?;
        if rec.state != DriveState::Attached {
            return Err(DriveError::FailedPrecondition(format!(
                "drive {name:?} is {}, not attached",
                serde_json::to_value(rec.state)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            )));
        }
        Ok(rec)
    }

    /// Every sandbox record (name, JSON), read once per request.
    fn sandbox_records(&self) -> Result<Vec<(String, serde_json::Value)>, DriveError> {
        Ok(self.store.list_records("sandbox")?)
    }

    /// The sandboxes among `sandboxes` that bind drive `name`: all of them, and the active ones.
    fn sandboxes_using(name: &str, sandboxes: &[(String, serde_json::Value)]) -> (Vec<String>, Vec<String>) {
        let mut all = Vec::new();
        let mut active = Vec::new();
        for (key, v) in sandboxes
            .iter()
            .filter(|(_, v)| crate::sandbox::record_uses_drive(v, name))
        {
            if sandbox_active(v) {
                active.push(key.clone());
            }
            all.push(key.clone());
        }
        (all, active)
    }

    /// Refuses when a running sandbox binds the drive or a process holds something below its mounts.
    fn check_idle(&self, rec: &DriveRecord) -> Result<(), DriveError> {
        let (_, active) = Self::sandboxes_using(&rec.name, &self.sandbox_records()?);
        if !active.is_empty() {
            return Err(DriveError::Busy {
                name: rec.name.clone(),
                reason: format!("bound into running sandbox {}; stop it first", active.join(", ")),
            });
        }
        let holders: Vec<Holder> = rec
            .volumes
            .iter()
            .filter_map(|v| v.mount_point.as_deref())
            .flat_map(|mp| self.deps.mounter.holders(mp))
            .collect();
        if !holders.is_empty() {
            let list: Vec<String> = holders.iter().take(5).map(ToString::to_string).collect();
            return Err(DriveError::Busy {
                name: rec.name.clone(),
                reason: format!("{}; close them or use force", list.join(", ")),
            });
        }
        Ok(())
    }

    fn image_file(
        path: &Path,
        meta: &std::fs::Metadata,
        format: Option<ImageFormat>,
        records: &[DriveRecord],
    ) -> ImageFile {
        let attached_as = records
            .iter()
            .find(|r| r.dev == meta.dev() && r.ino == meta.ino())
            .map(|r| r.name.clone());
        ImageFile {
            name: path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default(),
            path: path.to_owned(),
            size: meta.len(),
            modified_ms: meta.modified().ok().map(crate::clock::system_time_ms).unwrap_or(0),
            format,
            attached_as,
        }
    }

    fn info_of(&self, rec: &DriveRecord) -> DriveInfo {
        self.info_with(rec, &self.sandbox_records().unwrap_or_default())
    }

    fn info_with(&self, rec: &DriveRecord, sandboxes: &[(String, serde_json::Value)]) -> DriveInfo {
        let (used_by, _) = Self::sandboxes_using(&rec.name, sandboxes);
        let partitions = rec
            .volumes
            .iter()
            .map(|v| {
                let usage = v.mount_point.as_deref().and_then(|mp| self.deps.mounter.usage(mp));
                PartitionInfo {
                    number: v.number,
                    device: v.device.clone(),
                    start: v.start,
                    size: v.size,
                    type_id: v.type_id.clone(),
                    part_name: v.part_name.clone(),
                    fs_type: v.fs.as_ref().map(|f| f.fs_type.as_str().to_owned()),
                    label: v.fs.as_ref().and_then(|f| f.label.clone()),
                    uuid: v.fs.as_ref().and_then(|f| f.uuid.clone()),
                    mount_point: v.mount_point.clone(),
                    used: usage.map(|u| u.used_bytes),
                    free: usage.map(|u| u.free_bytes),
                    note: v.note.clone(),
                }
            })
            .collect();
        DriveInfo {
            name: rec.name.clone(),
            image: rec.image.clone(),
            format: rec.format,
            virtual_size: rec.virtual_size,
            file_size: rec.file_size,
            read_write: rec.read_write,
            exec: rec.exec,
            state: rec.state,
            persistent: rec.persistent,
            attached_by: rec.attached_by.clone(),
            attached_ms: rec.attached_ms,
            loop_devices: rec.loops.clone(),
            export_pid: rec.export.as_ref().map(|e| e.pid),
            partitions,
            snapshot: rec.snapshot.clone(),
            used_by,
            notes: rec.notes.clone(),
        }
    }

    fn export_path(&self, name: &str) -> PathBuf {
        self.cfg.export_dir.join(format!("{name}.raw"))
    }

    fn ensure_dir(dir: &Path) -> Result<(), DriveError> {
        std::fs::create_dir_all(dir).map_err(|source| DriveError::Io {
            path: dir.to_owned(),
            source,
        })
    }

    /// Acquires export, loop devices and mounts for `rec` from `src`, recording each as soon as it is held.
    /// On error, what was acquired is in `rec` for the caller to release.
    fn bring_up(&self, rec: &mut DriveRecord, src: Source<'_>) -> Result<(), DriveError> {
        let writable = match src {
            Source::Image(_) => rec.read_write,
            Source::Overlay { .. } => true,
        };
        let request = match src {
            Source::Image(img) if rec.format.is_raw() => {
                let _ = img;
                None
            }
            Source::Image(img) => Some((
                img,
                ExportRequest {
                    format: rec.format,
                    writable,
                    export_path: self.export_path(&rec.name),
                    backing: None,
                },
            )),
            Source::Overlay { overlay, base } => Some((
                overlay,
                ExportRequest {
                    format: ImageFormat::Qcow2,
                    writable: true,
                    export_path: self.export_path(&rec.name),
                    backing: Some(Backing {
                        path: proc_fd_path(base),
                        format: rec.format,
                    }),
                },
            )),
        };
        let exported;
        let view: &OpenImage = match (request, &src) {
            (Some((img, req)), _) => {
                Self::ensure_dir(&self.cfg.export_dir)?;
                self.pause_point("attach.export");
                let handle = self.deps.exporter.start(img, &req)?;
                rec.export = Some(handle);
                self.save(rec)?;
                exported = OpenImage::open_view(&req.export_path, writable)?;
                &exported
            }
            (None, Source::Image(img)) => img,
            (None, Source::Overlay { overlay, .. }) => overlay,
        };
        let options = LoopOptions {
            read_only: !writable,
            partscan: rec.partscan,
            offset: rec.offset,
            size_limit: rec.size_limit,
        };
        self.pause_point("attach.loop");
        let whole = self.deps.loops.attach(view, &options)?;
        rec.loops.push(whole.clone());
        self.save(rec)?;
        let disk_size = rec.size_limit.unwrap_or(rec.virtual_size.saturating_sub(rec.offset));
        rec.volumes.clear();
        match self.deps.tables.read_table(&whole)? {
            Some(table) if !table.partitions.is_empty() => {
                for e in table.partitions {
                    let dev = self.deps.loops.attach(
                        view,
                        &LoopOptions {
                            read_only: !writable,
                            partscan: false,
                            offset: rec.offset + e.start,
                            size_limit: Some(e.size),
                        },
                    )?;
                    rec.loops.push(dev.clone());
                    self.save(rec)?;
                    let (fs, note) = self.probe(&dev)?;
                    rec.volumes.push(Volume {
                        number: Some(e.number),
                        device: dev,
                        start: e.start,
                        size: e.size,
                        type_id: Some(e.type_id),
                        part_name: e.name,
                        fs,
                        mount_point: None,
                        note,
                    });
                }
            }
            _ => {
                let (fs, note) = self.probe(&whole)?;
                rec.volumes.push(Volume {
                    number: None,
                    device: whole.clone(),
                    start: 0,
                    size: disk_size,
                    type_id: None,
                    part_name: None,
                    fs,
                    mount_point: None,
                    note,
                });
            }
        }
        self.save(rec)?;
        if !rec.mount {
            return Ok(());
        }
        let base = self.cfg.mount_dir.join(&rec.name);
        let mut used = BTreeSet::new();
        for i in 0..rec.volumes.len() {
            let v = &rec.volumes[i];
            let Some(fs) = v.fs.clone() else { continue };
            let dir = mount_dir_name(v, &used);
            used.insert(dir.clone());
            let request = MountRequest {
                source: v.device.clone(),
                target: base.join(&dir),
                fs_type: fs.fs_type,
                read_write: writable && !fs.fs_type.read_only_only(),
                exec: rec.exec,
            };
            self.pause_point("attach.mount");
            self.deps.mounter.mount(&request)?;
            rec.volumes[i].mount_point = Some(request.target);
            self.save(rec)?;
        }
        if used.is_empty() {
            let found: Vec<String> = rec
                .volumes
                .iter()
                .map(|v| {
                    format!(
                        "{}: {}",
                        v.device.display(),
                        v.note.as_deref().unwrap_or("no file system")
                    )
                })
                .collect();
            return Err(DriveError::NoFileSystem {
                path: rec.image.clone(),
                found: found.join("; "),
            });
        }
        Ok(())
    }

    fn probe(&self, device: &Path) -> Result<(Option<FsInfo>, Option<String>), DriveError> {
        match self.deps.probe.probe(device) {
            Ok(Some(fs)) => Ok((Some(fs), None)),
            Ok(None) => Ok((None, Some("no file system CacheOS recognises".into()))),
            Err(e @ ProbeError::Ambivalent { .. }) => Ok((None, Some(e.to_string()))),
            Err(e) => Err(e.into()),
        }
    }

    /// Releases mounts, loop devices and the export of `rec`, in reverse order, recording each release. `Normal`
    /// stops at the first failure (leaving the rest held and recorded); `Lazy` goes on and lets the kernel finish.
    fn take_down(&self, rec: &mut DriveRecord, mode: UnmountMode) -> Result<(), DriveError> {
        let mut first: Option<DriveError> = None;
        for i in (0..rec.volumes.len()).rev() {
            let Some(mp) = rec.volumes[i].mount_point.clone() else {
                continue;
            };
            match self.deps.mounter.unmount(&mp, mode) {
                Ok(()) | Err(MountError::NotMounted { .. }) => {
                    rec.volumes[i].mount_point = None;
                    self.save(rec)?;
                }
                Err(e) => {
                    if mode == UnmountMode::Normal {
                        return Err(e.into());
                    }
                    first.get_or_insert(e.into());
                }
            }
        }
        for dev in rec.loops.clone().iter().rev() {
            match self.deps.loops.detach(dev) {
                Ok(()) | Err(LoopError::NotLoop { .. }) => {}
                // Lazily unmounted file systems keep the device busy; the kernel detaches it when they go.
                Err(LoopError::Busy { .. }) if mode == UnmountMode::Lazy => {}
                Err(e) => {
                    if mode == UnmountMode::Normal {
                        return Err(e.into());
                    }
                    first.get_or_insert(e.into());
                    continue;
                }
            }
            rec.loops.retain(|d| d != dev);
            self.save(rec)?;
        }
        if let Some(h) = rec.export.clone() {
            match self.deps.exporter.stop(&h) {
                Ok(()) => {
                    rec.export = None;
                    self.save(rec)?;
                }
                Err(e) => {
                    first.get_or_insert(e.into());
                }
            }
        }
        let _ = std::fs::remove_dir(self.cfg.mount_dir.join(&rec.name));
        match first {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Releases everything of a failed attach and forgets it.
    fn abandon(&self, rec: &mut DriveRecord) {
        if let Err(e) = self.take_down(rec, UnmountMode::Normal) {
            tracing::warn!(drive = rec.name, error = %e, "release after failed attach; retrying lazily");
            if let Err(e) = self.take_down(rec, UnmountMode::Lazy) {
                tracing::error!(drive = rec.name, error = %e, "leftovers after failed attach");
            }
        }
        if let Err(e) = self.store.delete_record(RECORD_KIND, &rec.name) {
            tracing::error!(drive = rec.name, error = %e, "cannot delete record of failed attach");
        }
    }

    fn open_checked(&self, rec: &DriveRecord, writable: bool) -> Result<OpenImage, DriveError> {
        let img = self.deps.paths.open_image(&rec.image, &self.roots(), writable)?;
        let meta = img.file.metadata().map_err(|source| ImageError::Read {
            path: rec.image.clone(),
            source,
        })?;
        if (meta.dev(), meta.ino()) != (rec.dev, rec.ino) {
            return Err(DriveError::FailedPrecondition(format!(
                "{} was replaced by another file since drive {:?} was attached",
                rec.image.display(),
                rec.name
            )));
        }
        Ok(img)
    }

    // ----- operations -----

    /// `drive.attach`.
    pub fn attach(&self, by: &str, args: &AttachArgs) -> Result<DriveInfo, DriveError> {
        let _g = self.serialise();
        self.attach_locked(by, args)
    }

    fn attach_locked(&self, by: &str, args: &AttachArgs) -> Result<DriveInfo, DriveError> {
        if let Some(n) = &args.name {
            validate_name(n)?;
        }
        if args.size == Some(0) {
            return Err(DriveError::InvalidArgument {
                field: "size",
                reason: "must be greater than 0".into(),
            });
        }
        let path = self.resolve(&args.path)?;
        let img = self.deps.paths.open_image(&path, &self.roots(), args.read_write)?;
        let meta = img.file.metadata().map_err(|source| ImageError::Read {
            path: path.clone(),
            source,
        })?;
        let records = self.records()?;
        if let Some(other) = records
            .iter()
            .find(|r| r.dev == meta.dev() && r.ino == meta.ino() && r.state != DriveState::Detached)
        {
            return Err(DriveError::AlreadyAttached {
                path,
                name: other.name.clone(),
            });
        }
        let name = match &args.name {
            Some(n) if records.iter().any(|r| &r.name == n) => return Err(DriveError::Exists { name: n.clone() }),
            Some(n) => n.clone(),
            None => {
                let base = name_from_path(&path);
                let taken = |n: &str| records.iter().any(|r| r.name == n);
                let mut n = base.clone();
                let mut i = 2;
                while taken(&n) {
                    n = format!("{}-{i}", base.chars().take(MAX_NAME - 4).collect::<String>());
                    i += 1;
                }
                n
            }
        };
        let info = self.deps.inspector.inspect(&img)?;
        if (args.offset != 0 || args.size.is_some()) && !info.format.is_raw() {
            return Err(DriveError::InvalidArgument {
                field: "offset",
                reason: format!(
                    "only raw images take an offset or size; {} is {}",
                    path.display(),
                    info.format
                ),
            });
        }
        if args.offset != 0 && args.offset >= info.file_size {
            return Err(DriveError::InvalidArgument {
                field: "offset",
                reason: format!(
                    "{} is beyond the end of the image ({} bytes)",
                    args.offset, info.file_size
                ),
            });
        }
        if let Some(size) = args.size {
            if args.offset.saturating_add(size) > info.file_size {
                return Err(DriveError::InvalidArgument {
                    field: "size",
                    reason: format!(
                        "offset {} + size {size} is beyond the end of the image ({} bytes)",
                        args.offset, info.file_size
                    ),
                });
            }
        }
        let mut rec = DriveRecord {
            name,
            image: path,
            dev: meta.dev(),
            ino: meta.ino(),
            format: info.format,
            virtual_size: info.virtual_size,
            file_size: info.file_size,
            read_write: args.read_write,
            exec: args.exec,
            partscan: args.partscan,
            offset: args.offset,
            size_limit: args.size,
            mount: args.mount,
            state: DriveState::Attaching,
            persistent: false,
            attached_by: by.to_owned(),
            attached_ms: self.clock.now_ms(),
            export: None,
            loops: Vec::new(),
            volumes: Vec::new(),
            snapshot: None,
            notes: Vec::new(),
        };
        self.save(&rec)?;
        self.pause_point("attach.recorded");
        if let Err(e) = self.bring_up(&mut rec, Source::Image(&img)) {
            self.abandon(&mut rec);
            return Err(e);
        }
        rec.state = DriveState::Attached;
        self.save(&rec)?;
        self.publish(&rec.name, DriveAction::Attached, Some(rec.image.display().to_string()));
        let mounts: Vec<String> = rec
            .volumes
            .iter()
            .filter_map(|v| v.mount_point.as_ref().map(|m| m.display().to_string()))
            .collect();
        if !mounts.is_empty() {
            self.publish(&rec.name, DriveAction::Mounted, Some(mounts.join(" ")));
        }
        Ok(self.info_of(&rec))
    }

    /// `drive.detach`. Returns a one-line summary.
    pub fn detach(&self, args: &DetachArgs) -> Result<String, DriveError> {
        let _g = self.serialise();
        let mut rec = self.get(&args.name)?;
        if rec.state == DriveState::Detached {
            self.store.delete_record(RECORD_KIND, &rec.name)?;
            self.publish(&rec.name, DriveAction::Detached, Some("forgotten".into()));
            return Ok(format!("drive {} forgotten (it was not attached)", rec.name));
        }
        let mut held = Vec::new();
        if !args.force {
            self.check_idle(&rec)?;
            if rec.snapshot.is_some() {
                return Err(DriveError::FailedPrecondition(format!(
                    "drive {:?} has an uncommitted snapshot; commit or discard it first, or detach with force to \
                     discard it",
                    rec.name
                )));
            }
        } else {
            held = rec
                .volumes
                .iter()
                .filter_map(|v| v.mount_point.as_deref())
                .flat_map(|mp| self.deps.mounter.holders(mp))
                .collect();
        }
        rec.state = DriveState::Detaching;
        self.save(&rec)?;
        self.pause_point("detach.recorded");
        let mode = if args.force {
            UnmountMode::Lazy
        } else {
            UnmountMode::Normal
        };
        if let Err(e) = self.take_down(&mut rec, mode) {
            if !args.force {
                rec.state = DriveState::Attached;
                self.save(&rec)?;
                return Err(e);
            }
            tracing::warn!(drive = rec.name, error = %e, "forced detach left something to the kernel");
        }
        if let Some(s) = rec.snapshot.take() {
            let _ = self.deps.paths.remove(&s.overlay);
        }
        self.store.delete_record(RECORD_KIND, &rec.name)?;
        self.publish(&rec.name, DriveAction::Detached, None);
        Ok(if args.force && !held.is_empty() {
            format!(
                "drive {} detached lazily: {} still held files and keep them until they close ({})",
                rec.name,
                held.len(),
                held.iter()
                    .take(3)
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        } else if args.force {
            format!("drive {} detached (forced, lazily)", rec.name)
        } else {
            format!("drive {} detached", rec.name)
        })
    }

    /// `drive.list`.
    pub fn list(&self) -> Result<Vec<DriveInfo>, DriveError> {
        let sandboxes = self.sandbox_records()?;
        Ok(self.records()?.iter().map(|r| self.info_with(r, &sandboxes)).collect())
    }

    /// `drive.info`.
    pub fn info(&self, name: &str) -> Result<DriveInfo, DriveError> {
        Ok(self.info_of(&self.get(name)?))
    }

    /// `drive.persist`.
    pub fn persist(&self, args: &PersistArgs) -> Result<DriveInfo, DriveError> {
        let _g = self.serialise();
        let mut rec = self.get(&args.name)?;
        rec.persistent = args.persistent;
        self.save(&rec)?;
        self.publish(
            &rec.name,
            DriveAction::PersistenceChanged,
            Some(
                if args.persistent {
                    "persistent"
                } else {
                    "not persistent"
                }
                .into(),
            ),
        );
        Ok(self.info_of(&rec))
    }

    /// `drive.files`.
    pub fn files(&self, args: &FilesArgs) -> Result<FileListing, DriveError> {
        let rec = self.attached(&args.name)?;
        let rel = Path::new(&args.path);
        if args.path.contains('\0')
            || rel.is_absolute()
            || rel
                .components()
                .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
        {
            return Err(DriveError::InvalidArgument {
                field: "path",
                reason: format!("{:?} must be relative to the mount point, without '..'", args.path),
            });
        }
        let mounted: Vec<&PathBuf> = rec.volumes.iter().filter_map(|v| v.mount_point.as_ref()).collect();
        let mp = match &args.volume {
            Some(vol) => mounted
                .iter()
                .find(|m| m.file_name().is_some_and(|f| f == vol.as_str()))
                .ok_or_else(|| DriveError::InvalidArgument {
                    field: "volume",
                    reason: format!("drive {:?} has no mounted file system {vol:?}", rec.name),
                })?,
            None => mounted.first().ok_or_else(|| {
                DriveError::FailedPrecondition(format!("drive {:?} has no mounted file system", rec.name))
            })?,
        };
        let entries = self.deps.paths.list_dir(mp, rel)?;
        Ok(FileListing {
            drive: rec.name.clone(),
            mount_point: (*mp).clone(),
            path: args.path.clone(),
            entries,
        })
    }

    /// The names of the drives (no kernel or file system access): for presentation, e.g. the chat's context.
    pub fn names(&self) -> Vec<String> {
        self.records()
            .map(|rs| rs.into_iter().map(|r| r.name).collect())
            .unwrap_or_default()
    }

    /// The file names in the images directory, without opening them (unlike [`DriveManager::images`]).
    pub fn image_names(&self) -> Vec<String> {
        self.deps
            .paths
            .list_dir(&self.cfg.images_dir, Path::new(""))
            .map(|es| {
                es.into_iter()
                    .filter(|e| e.kind == EntryKind::File && !e.name.starts_with('.'))
                    .map(|e| e.name)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `drive.images`: the files in the images directory, with their format when they are images.
    pub fn images(&self) -> Result<Vec<ImageFile>, DriveError> {
        let dir = &self.cfg.images_dir;
        let entries = match self.deps.paths.list_dir(dir, Path::new("")) {
            Ok(e) => e,
            Err(PathError::Missing { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let records = self.records()?;
        let mut out = Vec::new();
        // Hidden files (uploads in progress among them) are not offered.
        for e in entries
            .into_iter()
            .filter(|e| e.kind == EntryKind::File && !e.name.starts_with('.'))
        {
            let path = dir.join(&e.name);
            let Ok(img) = self.deps.paths.open_image(&path, std::slice::from_ref(dir), false) else {
                continue;
            };
            let Ok(meta) = img.file.metadata() else { continue };
            let format = self.deps.inspector.inspect(&img).ok().map(|i| i.format);
            out.push(Self::image_file(&path, &meta, format, &records));
        }
        Ok(out)
    }

    /// `drive.upload`: copies `input` into a new file `<images_dir>/<name>` while computing its SHA-256. The bytes go
    /// to a hidden `.upload-<name>-<unique>` file first, which is renamed to the name (never replacing a file)
    /// only when everything arrived; on any failure (the input fails or ends early, the size limit is exceeded, the
    /// name was taken meanwhile) it is removed, so a failed upload leaves nothing behind.
    pub fn upload(&self, by: &str, args: &UploadArgs, input: &mut dyn std::io::Read) -> Result<Uploaded, DriveError> {
        use sha2::Digest;
        use std::io::Write;

        validate_upload_name(&args.name)?;
        let max = self.cfg.max_upload_bytes;
        let too_big = |n: u64| DriveError::InvalidArgument {
            field: "size",
            reason: format!("{n} bytes is more than the upload limit of {max} bytes ([drives] max_upload_bytes)"),
        };
        if let Some(n) = args.size.filter(|&n| n > max) {
            return Err(too_big(n));
        }
        let dir = &self.cfg.images_dir;
        Self::ensure_dir(dir)?;
        let roots = std::slice::from_ref(dir);
        let dest = dir.join(&args.name);
        if dest.symlink_metadata().is_ok() {
            return Err(PathError::Exists { path: dest }.into());
        }
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let unique = format!(
            "{}-{}-{}",
            std::process::id(),
            self.clock.now_ms(),
            SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let tmp = dir.join(format!(".upload-{}-{unique}", args.name));
        let img = self.deps.paths.create_image(&tmp, roots)?;
        let io_err = |source: std::io::Error| DriveError::Io {
            path: tmp.clone(),
            source,
        };
        let copied = (|| {
            let mut file = &img.file;
            let mut hasher = sha2::Sha256::new();
            let mut buf = vec![0u8; 256 * 1024];
            let mut total: u64 = 0;
            loop {
                let n = match input.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(io_err(e)),
                };
                total += n as u64;
                if total > max {
                    return Err(too_big(total));
                }
                if args.size.is_some_and(|s| total > s) {
                    return Err(DriveError::InvalidArgument {
                        field: "size",
                        reason: format!("more bytes arrived than the announced {}", args.size.unwrap_or(0)),
                    });
                }
                hasher.update(&buf[..n]);
                file.write_all(&buf[..n]).map_err(io_err)?;
            }
            if let Some(s) = args.size.filter(|&s| s != total) {
                return Err(DriveError::InvalidArgument {
                    field: "size",
                    reason: format!("the upload ended after {total} of {s} bytes"),
                });
            }
            img.file.sync_all().map_err(io_err)?;
            let sha256: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
            Ok(sha256)
        })();
        let published = copied.and_then(|sha| {
            self.deps.paths.publish(&tmp, &dest, roots)?;
            Ok(sha)
        });
        let sha256 = match published {
            Ok(s) => s,
            Err(e) => {
                drop(img);
                if let Err(e2) = self.deps.paths.remove(&tmp) {
                    tracing::error!(path = %tmp.display(), error = %e2, "cannot remove a failed upload");
                }
                return Err(e);
            }
        };
        let meta = img.file.metadata().map_err(|source| ImageError::Read {
            path: dest.clone(),
            source,
        })?;
        drop(img);
        let format = self
            .deps
            .paths
            .open_image(&dest, roots, false)
            .ok()
            .and_then(|i| self.deps.inspector.inspect(&i).ok())
            .map(|i| i.format);
        tracing::info!(by, path = %dest.display(), size = meta.len(), "image uploaded");
        self.publish(&args.name, DriveAction::Created, Some(dest.display().to_string()));
        Ok(Uploaded {
            name: args.name.clone(),
            path: dest,
            size: meta.len(),
            modified_ms: meta.modified().ok().map(crate::clock::system_time_ms).unwrap_or(0),
            sha256,
            format,
        })
    }

    /// `drive.create`: a blank image, optionally with a file system, optionally attached read-write.
    pub fn create(&self, by: &str, args: &CreateArgs) -> Result<Created, DriveError> {
        let _g = self.serialise();
        if !(MIN_CREATE..=MAX_CREATE).contains(&args.size) {
            return Err(DriveError::InvalidArgument {
                field: "size",
                reason: format!("{} bytes is outside 1 MiB to 16 TiB", args.size),
            });
        }
        if let Some(fs) = args.fs {
            if args.size < fs.min_size() {
                return Err(DriveError::InvalidArgument {
                    field: "size",
                    reason: format!("{} needs at least {} MiB", fs.as_str(), fs.min_size() >> 20),
                });
            }
        }
        if let Some(label) = &args.label {
            let max = args.fs.map(NewFs::max_label).unwrap_or(0);
            if args.fs.is_none() {
                return Err(DriveError::InvalidArgument {
                    field: "label",
                    reason: "a label needs a file system (fs)".into(),
                });
            }
            if label.is_empty() || label.len() > max || label.chars().any(|c| c.is_control() || c == '/') {
                return Err(DriveError::InvalidArgument {
                    field: "label",
                    reason: format!("{label:?} must be 1 to {max} printable characters without '/'"),
                });
            }
        }
        if let Some(n) = &args.name {
            validate_name(n)?;
            if !args.attach {
                return Err(DriveError::InvalidArgument {
                    field: "name",
                    reason: "a drive name needs attach".into(),
                });
            }
        }
        let path = self.resolve(&args.path)?;
        if path.starts_with(&self.cfg.images_dir) {
            Self::ensure_dir(&self.cfg.images_dir)?;
        }
        let img = self.deps.paths.create_image(&path, &self.roots())?;
        if let Err(e) = self.fill_new_image(&img, args) {
            drop(img);
            if let Err(e2) = self.deps.paths.remove(&path) {
                tracing::error!(path = %path.display(), error = %e2, "cannot remove failed new image");
            }
            return Err(e);
        }
        let meta = img.file.metadata().map_err(|source| ImageError::Read {
            path: path.clone(),
            source,
        })?;
        drop(img);
        let format = Some(match args.format {
            NewFormat::Raw => ImageFormat::Raw,
            NewFormat::Qcow2 => ImageFormat::Qcow2,
        });
        let image = Self::image_file(&path, &meta, format, &self.records()?);
        self.publish(&image.name, DriveAction::Created, Some(path.display().to_string()));
        let drive = if args.attach {
            let mut a = AttachArgs::new(path.to_string_lossy());
            a.name = args.name.clone();
            a.read_write = true;
            a.mount = args.fs.is_some();
            Some(self.attach_locked(by, &a)?)
        } else {
            None
        };
        Ok(Created { image, drive })
    }

    fn fill_new_image(&self, img: &OpenImage, args: &CreateArgs) -> Result<(), DriveError> {
        match args.format {
            NewFormat::Raw => img.file.set_len(args.size).map_err(|source| DriveError::Io {
                path: img.path.clone(),
                source,
            })?,
            NewFormat::Qcow2 => self.deps.tool.create_qcow2(img, args.size)?,
        }
        let Some(fs) = args.fs else { return Ok(()) };
        // Format through a temporary read-write loop device (and export, for qcow2).
        let mut export = None;
        let exported;
        let view = match args.format {
            NewFormat::Raw => img,
            NewFormat::Qcow2 => {
                Self::ensure_dir(&self.cfg.export_dir)?;
                let req = ExportRequest {
                    format: ImageFormat::Qcow2,
                    writable: true,
                    export_path: self.cfg.export_dir.join(format!(
                        ".create-{}-{}.raw",
                        std::process::id(),
                        self.clock.now_ms()
                    )),
                    backing: None,
                };
                let h = self.deps.exporter.start(img, &req)?;
                export = Some(h);
                match OpenImage::open_view(&req.export_path, true) {
                    Ok(v) => {
                        exported = v;
                        &exported
                    }
                    Err(e) => {
                        let _ = self
                            .deps
                            .exporter
                            .stop(export.as_ref().unwrap_or_else(|| unreachable!()));
                        return Err(e.into());
                    }
                }
            }
        };
        let result = (|| {
            let dev = self.deps.loops.attach(
                view,
                &LoopOptions {
                    read_only: false,
                    ..LoopOptions::default()
                },
            )?;
            let made = self.deps.tool.mkfs(&dev, fs, args.label.as_deref());
            let detached = self.deps.loops.detach(&dev);
            made?;
            detached?;
            Ok::<(), DriveError>(())
        })();
        if let Some(h) = export {
            let stopped = self.deps.exporter.stop(&h);
            result?;
            stopped?;
            return Ok(());
        }
        result
    }

    /// `drive.snapshot`: a writable qcow2 layer over the drive; the image is not touched until a commit.
    pub fn snapshot(&self, name: &str) -> Result<DriveInfo, DriveError> {
        let _g = self.serialise();
        let mut rec = self.attached(name)?;
        if rec.snapshot.is_some() {
            return Err(DriveError::FailedPrecondition(format!(
                "drive {name:?} already has a snapshot; commit or discard it first"
            )));
        }
        self.check_idle(&rec)?;
        let base = self.open_checked(&rec, rec.read_write)?;
        Self::ensure_dir(&self.cfg.snapshot_dir)?;
        let overlay_path = self.cfg.snapshot_dir.join(format!("{name}.qcow2"));
        let overlay = self
            .deps
            .paths
            .create_image(&overlay_path, std::slice::from_ref(&self.cfg.snapshot_dir))?;
        let drop_overlay = |ov: OpenImage| {
            drop(ov);
            let _ = self.deps.paths.remove(&overlay_path);
        };
        if let Err(e) = self.deps.tool.create_overlay(&overlay, rec.virtual_size) {
            drop_overlay(overlay);
            return Err(e.into());
        }
        if let Err(e) = self.take_down(&mut rec, UnmountMode::Normal) {
            drop_overlay(overlay);
            self.recover(&mut rec, &base)?;
            return Err(e);
        }
        rec.snapshot = Some(SnapshotRecord {
            overlay: overlay_path.clone(),
            created_ms: self.clock.now_ms(),
        });
        self.save(&rec)?;
        if let Err(e) = self.bring_up(
            &mut rec,
            Source::Overlay {
                overlay: &overlay,
                base: &base,
            },
        ) {
            let _ = self.take_down(&mut rec, UnmountMode::Lazy);
            rec.snapshot = None;
            drop_overlay(overlay);
            self.recover(&mut rec, &base)?;
            return Err(e);
        }
        self.save(&rec)?;
        self.publish(
            name,
            DriveAction::SnapshotCreated,
            Some(overlay_path.display().to_string()),
        );
        Ok(self.info_of(&rec))
    }

    /// After a failed change, attaches the drive again as it was (from `base`, or its snapshot); when that fails
    /// too, the drive is released and forgotten, and the error says so.
    fn recover(&self, rec: &mut DriveRecord, base: &OpenImage) -> Result<(), DriveError> {
        let _ = self.take_down(rec, UnmountMode::Lazy);
        let result = match rec.snapshot.clone() {
            None => self.bring_up(rec, Source::Image(base)),
            Some(s) => match OpenImage::open(&s.overlay, true) {
                Ok(ov) => self.bring_up(rec, Source::Overlay { overlay: &ov, base }),
                Err(e) => Err(e.into()),
            },
        };
        match result {
            Ok(()) => self.save(rec),
            Err(e) => {
                self.abandon(rec);
                self.publish(&rec.name, DriveAction::Detached, Some(e.to_string()));
                Err(DriveError::FailedPrecondition(format!(
                    "drive {:?} could not be attached again and was detached: {e}",
                    rec.name
                )))
            }
        }
    }

    /// `drive.discard`: drops the snapshot and attaches the unchanged image again.
    pub fn discard(&self, name: &str) -> Result<DriveInfo, DriveError> {
        let _g = self.serialise();
        let mut rec = self.attached(name)?;
        let Some(snap) = rec.snapshot.clone() else {
            return Err(DriveError::FailedPrecondition(format!(
                "drive {name:?} has no snapshot"
            )));
        };
        self.check_idle(&rec)?;
        let base = self.open_checked(&rec, rec.read_write)?;
        self.take_down(&mut rec, UnmountMode::Normal)?;
        rec.snapshot = None;
        self.save(&rec)?;
        self.deps.paths.remove(&snap.overlay)?;
        if let Err(e) = self.bring_up(&mut rec, Source::Image(&base)) {
            let _ = self.take_down(&mut rec, UnmountMode::Lazy);
            self.recover(&mut rec, &base)?;
            return Err(e);
        }
        self.save(&rec)?;
        self.publish(name, DriveAction::SnapshotDiscarded, None);
        Ok(self.info_of(&rec))
    }

    /// `drive.commit`: writes the snapshot into the image (drive attached read-write, `confirm` set).
    pub fn commit(&self, args: &CommitArgs) -> Result<DriveInfo, DriveError> {
        let _g = self.serialise();
        let name = &args.name;
        let mut rec = self.attached(name)?;
        let Some(snap) = rec.snapshot.clone() else {
            return Err(DriveError::FailedPrecondition(format!(
                "drive {name:?} has no snapshot"
            )));
        };
        if !rec.read_write {
            return Err(DriveError::FailedPrecondition(format!(
                "drive {name:?} is attached read-only, so its image may not be written; discard the snapshot, or \
                 detach and attach it read-write first"
            )));
        }
        if !args.confirm {
            return Err(DriveError::InvalidArgument {
                field: "confirm",
                reason: format!("must be true: committing overwrites {}", rec.image.display()),
            });
        }
        self.check_idle(&rec)?;
        let base = self.open_checked(&rec, true)?;
        let overlay = OpenImage::open(&snap.overlay, true)?;
        self.take_down(&mut rec, UnmountMode::Normal)?;
        if let Err(e) = self.deps.tool.commit_overlay(&overlay, &base, rec.format) {
            self.recover(&mut rec, &base)?;
            return Err(e.into());
        }
        drop(overlay);
        rec.snapshot = None;
        self.save(&rec)?;
        self.deps.paths.remove(&snap.overlay)?;
        if let Err(e) = self.bring_up(&mut rec, Source::Image(&base)) {
            self.recover(&mut rec, &base)?;
            return Err(e);
        }
        self.save(&rec)?;
        self.publish(
            name,
            DriveAction::SnapshotCommitted,
            Some(rec.image.display().to_string()),
        );
        Ok(self.info_of(&rec))
    }

    // ----- reconcile -----

    /// Loop devices whose backing file is `path`, or what `path` links to (an nbd export's device).
    fn loops_of(&self, path: &Path) -> Vec<LoopInfo> {
        let mut out = self.deps.loops.find_by_backing_file(path).unwrap_or_default();
        if let Ok(target) = std::fs::read_link(path) {
            out.extend(self.deps.loops.find_by_backing_file(&target).unwrap_or_default());
        }
        out
    }

    fn world_intact(&self, rec: &DriveRecord) -> bool {
        let loops = self.loops_of(&rec.loop_backing());
        let loops_ok = !rec.loops.is_empty() && rec.loops.iter().all(|d| loops.iter().any(|l| &l.device == d));
        let mounts = self
            .deps
            .mounter
            .mounts_under(&self.cfg.mount_dir.join(&rec.name))
            .unwrap_or_default();
        let mounts_ok = rec
            .volumes
            .iter()
            .filter_map(|v| v.mount_point.as_ref())
            .all(|mp| mounts.iter().any(|m| &m.target == mp));
        let export_ok = rec
            .export
            .as_ref()
            .is_none_or(|e| self.deps.exporter.find(&e.export_path) == Some(e.pid));
        loops_ok && mounts_ok && export_ok
    }

    /// Releases whatever of `rec` is still held: what the record lists and what the kernel shows for its backing
    /// file, mount directory and export path.
    fn sweep(&self, rec: &mut DriveRecord) {
        let export_path = self.export_path(&rec.name);
        if rec.export.is_none() {
            if let Some(pid) = self.deps.exporter.find(&export_path) {
                rec.export = Some(ExportHandle {
                    kind: export_kind(&export_path),
                    export_path: export_path.clone(),
                    pid,
                    writable: false,
                });
            }
        }
        // Only devices still backed by this drive's files are released: after a reboot or a crash the recorded
        // /dev/loopN may have been freed and taken by someone else, who must keep it.
        let ours: Vec<PathBuf> = [rec.image.clone(), export_path]
            .iter()
            .flat_map(|backing| self.loops_of(backing))
            .map(|l| l.device)
            .collect();
        rec.loops.retain(|d| ours.contains(d));
        for d in ours {
            if !rec.loops.contains(&d) {
                rec.loops.push(d);
            }
        }
        let recorded: Vec<PathBuf> = rec.volumes.iter().filter_map(|v| v.mount_point.clone()).collect();
        let mounts = self
            .deps
            .mounter
            .mounts_under(&self.cfg.mount_dir.join(&rec.name))
            .unwrap_or_default();
        for m in mounts.iter().rev() {
            if !recorded.contains(&m.target) {
                let _ = self.deps.mounter.unmount(&m.target, UnmountMode::Lazy);
            }
        }
        if let Err(e) = self.take_down(rec, UnmountMode::Lazy) {
            tracing::warn!(drive = rec.name, error = %e, "reconcile: release incomplete");
        }
        rec.loops.clear();
        rec.export = None;
        for v in &mut rec.volumes {
            v.mount_point = None;
        }
    }

    fn reattach(&self, rec: &mut DriveRecord) -> Result<(), DriveError> {
        rec.state = DriveState::Attaching;
        rec.volumes.clear();
        self.save(rec)?;
        let base = self.open_checked(rec, rec.read_write)?;
        let result = match rec.snapshot.clone() {
            None => self.bring_up(rec, Source::Image(&base)),
            Some(s) => {
                let ov = OpenImage::open(&s.overlay, true)?;
                self.bring_up(
                    rec,
                    Source::Overlay {
                        overlay: &ov,
                        base: &base,
                    },
                )
            }
        };
        if let Err(e) = result {
            self.sweep(rec);
            return Err(e);
        }
        rec.state = DriveState::Attached;
        self.save(rec)
    }

    /// Makes records and kernel agree (run at start, before anything else touches drives): intact drives are
    /// kept; half-attached, half-detached and vanished ones are released and forgotten, except persistent ones,
    /// which are attached again; mounts, loop devices and exports in CacheOS's directories that no record owns
    /// are released.
    pub fn reconcile(&self) -> Result<ReconcileReport, DriveError> {
        let _g = self.serialise();
        let mut report = ReconcileReport::default();
        for mut rec in self.records()? {
            let name = rec.name.clone();
            let intact = rec.state == DriveState::Attached && self.world_intact(&rec);
            if intact {
                report.kept.push(name);
                continue;
            }
            let was = rec.state;
            if was != DriveState::Detached {
                self.sweep(&mut rec);
            }
            if rec.persistent && was != DriveState::Detaching {
                match self.reattach(&mut rec) {
                    Ok(()) => {
                        self.publish(&name, DriveAction::Attached, Some("re-attached at start".into()));
                        report.reattached.push(name);
                    }
                    Err(e) => {
                        rec.state = DriveState::Detached;
                        rec.notes.push(format!("could not be attached at start: {e}"));
                        self.save(&rec)?;
                        report.failed.push(name);
                    }
                }
            } else {
                self.store.delete_record(RECORD_KIND, &name)?;
                self.publish(
                    &name,
                    DriveAction::Detached,
                    Some("found gone or incomplete at start".into()),
                );
                report.removed.push(name);
            }
        }
        // Leftovers no record owns.
        let owned: Vec<DriveRecord> = self.records()?;
        let owned_mounts: BTreeSet<PathBuf> = owned
            .iter()
            .flat_map(|r| r.volumes.iter().filter_map(|v| v.mount_point.clone()))
            .collect();
        let mounts = self.deps.mounter.mounts_under(&self.cfg.mount_dir).unwrap_or_default();
        for m in mounts.iter().rev() {
            if m.target != self.cfg.mount_dir
                && !owned_mounts.contains(&m.target)
                && self.deps.mounter.unmount(&m.target, UnmountMode::Lazy).is_ok()
            {
                report.orphans.push(format!("mount {}", m.target.display()));
            }
        }
        let owned_exports: BTreeSet<PathBuf> = owned
            .iter()
            .filter_map(|r| r.export.as_ref().map(|e| e.export_path.clone()))
            .collect();
        if let Ok(entries) = std::fs::read_dir(&self.cfg.export_dir) {
            for e in entries.flatten() {
                let path = e.path();
                if owned_exports.contains(&path) || path.extension().is_some_and(|x| x == "log") {
                    continue;
                }
                for l in self.loops_of(&path) {
                    if self.deps.loops.detach(&l.device).is_ok() {
                        report.orphans.push(format!("loop {}", l.device.display()));
                    }
                }
                let pid = self.deps.exporter.find(&path).unwrap_or(0);
                let h = ExportHandle {
                    kind: export_kind(&path),
                    export_path: path.clone(),
                    pid,
                    writable: false,
                };
                if pid != 0 {
                    if self.deps.exporter.stop(&h).is_ok() {
                        report.orphans.push(format!("export {} (pid {pid})", path.display()));
                    }
                } else {
                    let _ = std::fs::remove_file(&path);
                    let mut log = path.clone().into_os_string();
                    log.push(".log");
                    let _ = std::fs::remove_file(log);
                }
            }
        }
        if let Ok(entries) = std::fs::read_dir(&self.cfg.mount_dir) {
            for e in entries.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if !owned.iter().any(|r| r.name == n) {
                    let _ = std::fs::remove_dir(e.path().join("fs"));
                    for sub in std::fs::read_dir(e.path()).into_iter().flatten().flatten() {
                        let _ = std::fs::remove_dir(sub.path());
                    }
                    let _ = std::fs::remove_dir(e.path());
                }
            }
        }
        if !(report.removed.is_empty() && report.orphans.is_empty() && report.reattached.is_empty()) {
            tracing::info!(?report, "drives reconciled");
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests;
