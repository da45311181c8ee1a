//! Virtual drives as the core records and reports them: operation arguments, the stored [`DriveRecord`] (the
//! intent and every resource acquired for it) and the [`DriveInfo`] that `drive.list` / `drive.info` return.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{DirEntry, ExportHandle, FsInfo, ImageFormat, NewFs};

/// The store record kind of drives.
pub const RECORD_KIND: &str = "drive";

fn yes() -> bool {
    true
}

/// Arguments of `drive.attach`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttachArgs {
    /// Absolute path of the image, or a bare file name in the images directory.
    pub path: String,
    /// Drive name (lowercase letters, digits, `-`, `_`, `.`; at most 48); default derived from the file name.
    #[serde(default)]
    pub name: Option<String>,
    /// Attach read-write. Read-only is the default.
    #[serde(default)]
    pub read_write: bool,
    /// Let the kernel scan the partition table too (`/dev/loopNpK`); partitions are always attached and mounted
    /// as their own loop devices.
    #[serde(default)]
    pub partscan: bool,
    /// Bytes to skip at the start of a raw image.
    #[serde(default)]
    pub offset: u64,
    /// Bytes to use from `offset` of a raw image; default up to the end.
    #[serde(default)]
    pub size: Option<u64>,
    /// Mount every recognised file system (default true).
    #[serde(default = "yes")]
    pub mount: bool,
    /// Allow executing programs from the mounts (`noexec` otherwise).
    #[serde(default)]
    pub exec: bool,
}

impl AttachArgs {
    /// Read-only, mounted, everything else default.
    pub fn new(path: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            name: None,
            read_write: false,
            partscan: false,
            offset: 0,
            size: None,
            mount: true,
            exec: false,
        }
    }
}

/// Arguments of operations on one drive (`drive.info`, `drive.snapshot`, `drive.discard`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DriveRef {
    /// Drive name.
    pub name: String,
}

/// Arguments of `drive.detach`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DetachArgs {
    /// Drive name.
    pub name: String,
    /// Unmount lazily and detach even when busy or holding an uncommitted snapshot (which is discarded).
    #[serde(default)]
    pub force: bool,
}

/// Arguments of `drive.commit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommitArgs {
    /// Drive name.
    pub name: String,
    /// Must be true: committing overwrites the image.
    #[serde(default)]
    pub confirm: bool,
}

/// Arguments of `drive.persist`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PersistArgs {
    /// Drive name.
    pub name: String,
    /// Re-attach at boot (true) or not (false).
    #[serde(default = "yes")]
    pub persistent: bool,
}

/// Format of a new blank image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum NewFormat {
    #[default]
    Raw,
    Qcow2,
}

/// Arguments of `drive.create`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateArgs {
    /// Absolute path of the new image, or a bare file name in the images directory. Never overwritten.
    pub path: String,
    /// Virtual size in bytes (1 MiB to 16 TiB).
    #[schema(minimum = 1048576, maximum = 17592186044416_u64)]
    pub size: u64,
    /// Container format.
    #[serde(default)]
    pub format: NewFormat,
    /// File system to create on the whole drive; none leaves it blank.
    #[serde(default)]
    pub fs: Option<NewFs>,
    /// File system label.
    #[serde(default)]
    pub label: Option<String>,
    /// Attach (read-write, mounted) afterwards.
    #[serde(default)]
    pub attach: bool,
    /// Drive name when attaching; default derived from the file name.
    #[serde(default)]
    pub name: Option<String>,
}

/// Arguments of `drive.upload` (the file's bytes come as the operation's input stream, not in the arguments).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UploadArgs {
    /// File name in the images directory: no `/`, not starting with `.`, at most 128 bytes. Never overwritten.
    pub name: String,
    /// The announced length in bytes (HTTP `Content-Length`), when known; the upload must have exactly this many.
    #[serde(default)]
    pub size: Option<u64>,
}

/// What `drive.upload` returns: the new file in the images directory with its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Uploaded {
    /// File name.
    pub name: String,
    /// Absolute path.
    #[schema(value_type = String)]
    pub path: PathBuf,
    /// Bytes written.
    pub size: u64,
    pub modified_ms: u64,
    /// SHA-256 of the content, lowercase hex.
    pub sha256: String,
    /// Format by content; none when it is not an image CacheOS can attach.
    pub format: Option<ImageFormat>,
}

/// Arguments of `drive.files`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FilesArgs {
    /// Drive name.
    pub name: String,
    /// Directory relative to the mount point (empty for the top level). Symlinks are never followed.
    #[serde(default)]
    pub path: String,
    /// Which mounted file system (its mount directory name, e.g. `p1` or a label); default the first one.
    #[serde(default)]
    pub volume: Option<String>,
}

/// Where a drive is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DriveState {
    /// Resources are being acquired (a record in this state after a crash is cleaned up at start).
    Attaching,
    /// Attached (and mounted as requested).
    Attached,
    /// Resources are being released.
    Detaching,
    /// Not attached; only persistent drives keep a record in this state, to be re-attached.
    Detached,
}

/// A file system (whole device or partition) of a drive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Volume {
    /// Partition number; none for the whole device.
    pub number: Option<u32>,
    /// The loop device carrying it.
    #[schema(value_type = String)]
    pub device: PathBuf,
    /// Start in bytes from the start of the disk.
    pub start: u64,
    /// Size in bytes.
    pub size: u64,
    /// GPT type GUID or MBR type byte.
    pub type_id: Option<String>,
    /// GPT partition name.
    pub part_name: Option<String>,
    /// The file system found, if CacheOS recognises it.
    #[schema(value_type = Option<Object>)]
    pub fs: Option<FsInfo>,
    /// Where it is mounted.
    #[schema(value_type = Option<String>)]
    pub mount_point: Option<PathBuf>,
    /// Why it is not mounted, when it is not.
    pub note: Option<String>,
}

/// A writable layer over a drive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SnapshotRecord {
    /// The qcow2 overlay file.
    #[schema(value_type = String)]
    pub overlay: PathBuf,
    /// When it was taken (ms since the Unix epoch).
    pub created_ms: u64,
}

/// What the store keeps per drive: the intent and each resource as soon as it is acquired.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriveRecord {
    pub name: String,
    pub image: PathBuf,
    pub dev: u64,
    pub ino: u64,
    pub format: ImageFormat,
    pub virtual_size: u64,
    pub file_size: u64,
    pub read_write: bool,
    pub exec: bool,
    pub partscan: bool,
    pub offset: u64,
    pub size_limit: Option<u64>,
    pub mount: bool,
    pub state: DriveState,
    pub persistent: bool,
    pub attached_by: String,
    pub attached_ms: u64,
    /// The running block export (non-raw formats and snapshots).
    pub export: Option<ExportHandle>,
    /// Loop devices in attach order (the whole disk first).
    pub loops: Vec<PathBuf>,
    pub volumes: Vec<Volume>,
    pub snapshot: Option<SnapshotRecord>,
    /// What happened to it outside a request (e.g. found gone at start).
    #[serde(default)]
    pub notes: Vec<String>,
}

impl DriveRecord {
    /// The file the loop devices are attached to: the export's raw view, or the image itself.
    pub fn loop_backing(&self) -> PathBuf {
        self.export
            .as_ref()
            .map(|e| e.export_path.clone())
            .unwrap_or_else(|| self.image.clone())
    }
}

/// A partition or whole-device file system as reported to clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PartitionInfo {
    /// Partition number; none for the whole device.
    pub number: Option<u32>,
    #[schema(value_type = String)]
    pub device: PathBuf,
    pub start: u64,
    pub size: u64,
    pub type_id: Option<String>,
    pub part_name: Option<String>,
    /// File system type (`ext4`, `iso9660`, ...), none when not recognised.
    pub fs_type: Option<String>,
    pub label: Option<String>,
    pub uuid: Option<String>,
    #[schema(value_type = Option<String>)]
    pub mount_point: Option<PathBuf>,
    /// Bytes used and free on the mounted file system.
    pub used: Option<u64>,
    pub free: Option<u64>,
    pub note: Option<String>,
}

/// `drive.list` / `drive.info`: everything about a drive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DriveInfo {
    pub name: String,
    /// The backing image file.
    #[schema(value_type = String)]
    pub image: PathBuf,
    pub format: ImageFormat,
    /// Size of the disk the image represents.
    pub virtual_size: u64,
    /// Size of the image file.
    pub file_size: u64,
    /// Attached read-write (false: read-only, the default).
    pub read_write: bool,
    /// Mounted without `noexec`.
    pub exec: bool,
    pub state: DriveState,
    /// Re-attached at boot.
    pub persistent: bool,
    /// Who attached it (`uid 0`, `web token`, ...).
    pub attached_by: String,
    /// When (ms since the Unix epoch).
    pub attached_ms: u64,
    /// Loop devices, the whole disk first.
    #[schema(value_type = Vec<String>)]
    pub loop_devices: Vec<PathBuf>,
    /// The block export process, for formats that need one.
    pub export_pid: Option<u32>,
    pub partitions: Vec<PartitionInfo>,
    /// The writable layer, when one was taken.
    pub snapshot: Option<SnapshotRecord>,
    /// Sandboxes that bind it.
    pub used_by: Vec<String>,
    pub notes: Vec<String>,
}

/// `drive.files`: a directory of a mounted drive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FileListing {
    pub drive: String,
    /// The mount point listed under.
    #[schema(value_type = String)]
    pub mount_point: PathBuf,
    /// The directory, relative to the mount point.
    pub path: String,
    pub entries: Vec<DirEntry>,
}

/// An image file in the images directory (`drive.images`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ImageFile {
    /// File name.
    pub name: String,
    /// Absolute path.
    #[schema(value_type = String)]
    pub path: PathBuf,
    pub size: u64,
    pub modified_ms: u64,
    /// Format by content; none when it is not an image CacheOS can attach.
    pub format: Option<ImageFormat>,
    /// The drive it is attached as, if any.
    pub attached_as: Option<String>,
}
