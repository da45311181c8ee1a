//! Virtual drives: the plain types and the narrow, synchronous traits behind every drive side effect (image
//! inspection, loop devices, file system probing, mounts, block exports), plus recording fakes in [`fake`].
//!
//! The core plans an attach as a sequence of calls on these traits and releases in reverse order; the real
//! implementations live in `cacheos-sys` (`cacheos_sys::drive`). Every trait takes an [`OpenImage`], never a bare
//! path, where it touches the image: the image is opened once (after the core checked where it lives) and that
//! descriptor is what gets inspected, attached or exported, so a file swapped after the check is never used.

use std::fmt;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The container format of an image file, detected by content (never by file name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ImageFormat {
    /// A plain disk or file-system image; attached straight to a loop device.
    Raw,
    /// An ISO 9660 (or hybrid ISO/UDF) image; raw bytes, attached straight to a loop device.
    Iso9660,
    /// QEMU copy-on-write v2/v3.
    Qcow2,
    /// VMware disk (monolithic sparse `KDMV` or a text descriptor).
    Vmdk,
    /// VirtualBox disk image.
    Vdi,
    /// Hyper-V VHDX.
    Vhdx,
    /// Virtual PC / Hyper-V VHD (QEMU's `vpc` driver).
    Vpc,
}

impl ImageFormat {
    /// Whether a loop device can attach the image file directly (no block export needed).
    pub fn is_raw(self) -> bool {
        matches!(self, Self::Raw | Self::Iso9660)
    }

    /// QEMU's block driver name for the format.
    pub fn qemu_driver(self) -> &'static str {
        match self {
            Self::Raw | Self::Iso9660 => "raw",
            Self::Qcow2 => "qcow2",
            Self::Vmdk => "vmdk",
            Self::Vdi => "vdi",
            Self::Vhdx => "vhdx",
            Self::Vpc => "vpc",
        }
    }

    /// The serde (kebab-case) name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::Iso9660 => "iso9660",
            Self::Qcow2 => "qcow2",
            Self::Vmdk => "vmdk",
            Self::Vdi => "vdi",
            Self::Vhdx => "vhdx",
            Self::Vpc => "vpc",
        }
    }
}

impl fmt::Display for ImageFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A file system CacheOS recognises and may mount. Anything else is reported as unknown, never guessed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum FsType {
    Iso9660,
    Udf,
    Vfat,
    Exfat,
    Ext2,
    Ext3,
    Ext4,
    Xfs,
    Btrfs,
    Squashfs,
    Erofs,
    Ntfs,
}

impl FsType {
    /// Every variant, in declaration order.
    pub const ALL: [FsType; 12] = [
        Self::Iso9660,
        Self::Udf,
        Self::Vfat,
        Self::Exfat,
        Self::Ext2,
        Self::Ext3,
        Self::Ext4,
        Self::Xfs,
        Self::Btrfs,
        Self::Squashfs,
        Self::Erofs,
        Self::Ntfs,
    ];

    /// The serde (kebab-case) name, which is also libblkid's `TYPE` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Iso9660 => "iso9660",
            Self::Udf => "udf",
            Self::Vfat => "vfat",
            Self::Exfat => "exfat",
            Self::Ext2 => "ext2",
            Self::Ext3 => "ext3",
            Self::Ext4 => "ext4",
            Self::Xfs => "xfs",
            Self::Btrfs => "btrfs",
            Self::Squashfs => "squashfs",
            Self::Erofs => "erofs",
            Self::Ntfs => "ntfs",
        }
    }

    /// The type from libblkid's `TYPE` value; `None` for anything CacheOS does not mount.
    pub fn from_blkid(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// The file system type name passed to mount(2).
    pub fn kernel_name(self) -> &'static str {
        match self {
            // The in-kernel read-write NTFS driver; the old `ntfs` driver is gone from current kernels.
            Self::Ntfs => "ntfs3",
            other => other.as_str(),
        }
    }

    /// Whether the kernel driver can only mount it read-only.
    pub fn read_only_only(self) -> bool {
        matches!(self, Self::Iso9660 | Self::Squashfs | Self::Erofs)
    }
}

impl fmt::Display for FsType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An image file opened once by the core; its descriptor is what every trait below works on.
#[derive(Debug)]
pub struct OpenImage {
    /// The path it was opened from (for messages, records and `backing_file` matching).
    pub path: PathBuf,
    /// The open file: read-only unless the drive is attached read-write.
    pub file: File,
}

impl OpenImage {
    /// Opens `path` read-only or read-write, refusing anything but a regular file.
    pub fn open(path: &Path, writable: bool) -> Result<Self, ImageError> {
        Self::open_if(path, writable, |m| m.is_file())
    }

    /// Opens `path` and keeps it when `accept` says yes to its metadata.
    fn open_if(path: &Path, writable: bool, accept: impl Fn(&std::fs::Metadata) -> bool) -> Result<Self, ImageError> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(writable)
            .open(path)
            .map_err(|source| ImageError::Open {
                path: path.to_owned(),
                source,
            })?;
        let meta = file.metadata().map_err(|source| ImageError::Read {
            path: path.to_owned(),
            source,
        })?;
        if !accept(&meta) {
            return Err(ImageError::NotRegularFile { path: path.to_owned() });
        }
        Ok(Self {
            path: path.to_owned(),
            file,
        })
    }
}

impl OpenImage {
    /// Opens the raw view of a block export: a regular file (FUSE export) or, through a symbolic link the export
    /// made, a block device (nbd). Nothing else is accepted.
    pub fn open_view(path: &Path, writable: bool) -> Result<Self, ImageError> {
        use std::os::unix::fs::FileTypeExt;
        Self::open_if(path, writable, |m| m.is_file() || m.file_type().is_block_device())
    }
}

/// What [`ImageInspector::inspect`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageInfo {
    pub format: ImageFormat,
    /// The size of the disk the image represents, in bytes.
    pub virtual_size: u64,
    /// The size of the image file, in bytes.
    pub file_size: u64,
}

/// Errors of [`OpenImage::open`] and [`ImageInspector`].
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("cannot open image {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("image {path} is not a regular file")]
    NotRegularFile { path: PathBuf },
    #[error("cannot read image {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("image {path} is empty")]
    Empty { path: PathBuf },
    #[error("image {path} looks like {format} but its header is invalid: {reason}")]
    Corrupt {
        path: PathBuf,
        format: ImageFormat,
        reason: String,
    },
    #[error("cannot determine the virtual size of {format} image {path}: {reason}")]
    Size {
        path: PathBuf,
        format: ImageFormat,
        reason: String,
    },
}

/// Detects an image's format by content and reads its virtual size.
pub trait ImageInspector: Send + Sync {
    /// Inspects the open image (reads by offset; the file position is not used).
    fn inspect(&self, image: &OpenImage) -> Result<ImageInfo, ImageError>;
}

/// How to attach an image to a loop device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LoopOptions {
    /// Read-only (the default for drives). The image must then be open read-only too.
    pub read_only: bool,
    /// Let the kernel scan the partition table (`/dev/loopNpK`).
    pub partscan: bool,
    /// Bytes to skip at the start of the backing file.
    pub offset: u64,
    /// Maximum size in bytes from `offset`; `None` for up to the end of the file.
    pub size_limit: Option<u64>,
}

impl LoopOptions {
    /// Read-only, no partition scan, whole file.
    pub fn read_only() -> Self {
        Self {
            read_only: true,
            ..Self::default()
        }
    }
}

/// A partition the kernel found on a loop device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partition {
    /// 1-based partition number.
    pub number: u32,
    /// `/dev/loopNpK`.
    pub device: PathBuf,
    /// Start, in bytes from the start of the disk.
    pub start: u64,
    /// Size in bytes.
    pub size: u64,
    /// The GPT partition name, when there is one.
    pub name: Option<String>,
}

/// What the kernel reports about an attached loop device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoopInfo {
    /// `/dev/loopN`.
    pub device: PathBuf,
    /// The backing file as the kernel recorded it at attach time (may end in ` (deleted)`).
    pub backing_file: PathBuf,
    pub offset: u64,
    /// 0 for no limit.
    pub size_limit: u64,
    pub read_only: bool,
    pub partscan: bool,
    pub autoclear: bool,
}

/// Errors of [`LoopControl`].
#[derive(Debug, thiserror::Error)]
pub enum LoopError {
    #[error("cannot open the loop control device {path}")]
    Control {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot attach {image} to a loop device ({device})")]
    Attach {
        image: PathBuf,
        device: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("read-only loop device requested for {image}, but the image is open for writing")]
    WritableFd { image: PathBuf },
    #[error("read-write loop device requested for {image}, but the image is open read-only")]
    ReadOnlyFd { image: PathBuf },
    #[error("no free loop device for {image} after {attempts} attempts")]
    NoFreeDevice { image: PathBuf, attempts: u32 },
    #[error("{device} is not a loop device")]
    NotLoop { device: PathBuf },
    #[error("cannot detach {device}")]
    Detach {
        device: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{device} is still in use; the kernel will detach it when the last user closes it")]
    Busy { device: PathBuf },
    #[error("cannot read loop state from {path}")]
    Sysfs {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Loop devices: attach by descriptor, list partitions, detach, find by backing file.
pub trait LoopControl: Send + Sync {
    /// Attaches the open image to a free loop device and returns its path (`/dev/loopN`).
    fn attach(&self, image: &OpenImage, options: &LoopOptions) -> Result<PathBuf, LoopError>;
    /// The partitions the kernel created for `device` (empty without partscan or partition table).
    fn partitions(&self, device: &Path) -> Result<Vec<Partition>, LoopError>;
    /// Detaches `device`. [`LoopError::Busy`] when it is still held (mounted, or open elsewhere); the device is then
    /// left as it was, except when it was opened between the check and the detach: the kernel then sets autoclear.
    fn detach(&self, device: &Path) -> Result<(), LoopError>;
    /// Every attached loop device whose backing file is `backing_file`, from `/sys/block/loop*/loop/`.
    fn find_by_backing_file(&self, backing_file: &Path) -> Result<Vec<LoopInfo>, LoopError>;
}

/// A partition table read from a disk in user space (works also where the kernel has no parser for it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionTable {
    /// `gpt` or `dos`.
    pub label: String,
    pub partitions: Vec<TableEntry>,
}

/// One entry of a [`PartitionTable`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableEntry {
    /// 1-based partition number.
    pub number: u32,
    /// Start, in bytes from the start of the disk (for [`LoopOptions::offset`]).
    pub start: u64,
    /// Size in bytes (for [`LoopOptions::size_limit`]).
    pub size: u64,
    /// GPT type GUID or MBR type byte (`83`).
    pub type_id: String,
    /// GPT partition name.
    pub name: Option<String>,
    /// GPT partition UUID.
    pub uuid: Option<String>,
}

/// Errors of [`PartitionTableReader`].
#[derive(Debug, thiserror::Error)]
pub enum PartitionError {
    #[error("cannot read the partition table of {device}")]
    Run {
        device: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("reading the partition table of {device} failed: {message}")]
    Failed { device: PathBuf, message: String },
}

/// Reads a disk's partition table without the kernel: the kernel's own partition scan depends on its configuration
/// (the development host's kernel has no partition parsers at all), so the core can attach each partition as its own
/// loop device with offset and size limit instead.
pub trait PartitionTableReader: Send + Sync {
    /// `Ok(None)` when the disk has no recognised partition table.
    fn read_table(&self, device: &Path) -> Result<Option<PartitionTable>, PartitionError>;
}

/// A file system found on a block device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FsInfo {
    pub fs_type: FsType,
    pub label: Option<String>,
    pub uuid: Option<String>,
}

/// Errors of [`FsProbe`].
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("cannot probe {device}")]
    Run {
        device: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{device} carries conflicting file system signatures; refusing to guess")]
    Ambivalent { device: PathBuf },
    #[error("probing {device} failed: {message}")]
    Failed { device: PathBuf, message: String },
}

/// Detects the file system on a block device by its superblock.
pub trait FsProbe: Send + Sync {
    /// `Ok(None)` when no signature is found or it is not a file system CacheOS mounts (swap, LUKS, a partition
    /// table, anything unknown): such devices are reported, never mounted with a guessed type.
    fn probe(&self, device: &Path) -> Result<Option<FsInfo>, ProbeError>;
}

/// A mount to perform. The flags are explicit: `nosuid,nodev` always, `noexec` unless `exec`, `ro` unless `read_write`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountRequest {
    pub source: PathBuf,
    /// Created (with missing parents) when absent; removed again if the mount fails.
    pub target: PathBuf,
    pub fs_type: FsType,
    pub read_write: bool,
    pub exec: bool,
}

impl MountRequest {
    /// A read-only, non-executable mount.
    pub fn read_only(source: impl Into<PathBuf>, target: impl Into<PathBuf>, fs_type: FsType) -> Self {
        Self {
            source: source.into(),
            target: target.into(),
            fs_type,
            read_write: false,
            exec: false,
        }
    }

    /// The generic mount flags in the order mount(8) prints them, e.g. `["nosuid", "nodev", "noexec", "ro"]`.
    pub fn flags(&self) -> Vec<&'static str> {
        let mut flags = vec!["nosuid", "nodev"];
        if !self.exec {
            flags.push("noexec");
        }
        flags.push(if self.read_write { "rw" } else { "ro" });
        flags
    }
}

/// How to unmount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnmountMode {
    /// Fails with [`MountError::Busy`] when something is still open.
    Normal,
    /// `MNT_DETACH`: detach now, finish when the last user goes.
    Lazy,
}

/// One line of `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountEntry {
    pub mount_id: u32,
    pub source: String,
    pub target: PathBuf,
    pub fs_type: String,
    /// Per-mount options (`ro`, `nosuid`, `nodev`, `noexec`, ...).
    pub options: Vec<String>,
}

impl MountEntry {
    /// Whether the per-mount options contain `option`.
    pub fn has_option(&self, option: &str) -> bool {
        self.options.iter().any(|o| o == option)
    }
}

/// Errors of [`Mounter`].
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("cannot create mount point {target}")]
    CreateTarget {
        target: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot mount {source_path} ({fs_type}) at {target}")]
    Mount {
        source_path: PathBuf,
        target: PathBuf,
        fs_type: FsType,
        #[source]
        source: io::Error,
    },
    #[error("{target} is busy")]
    Busy { target: PathBuf },
    #[error("{target} is not mounted")]
    NotMounted { target: PathBuf },
    #[error("cannot unmount {target}")]
    Unmount {
        target: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read the mount table {path}")]
    MountInfo {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Mounts, unmounts and lists mounts.
pub trait Mounter: Send + Sync {
    fn mount(&self, request: &MountRequest) -> Result<(), MountError>;
    /// Unmounts `target` and removes the (then empty) mount point directory.
    fn unmount(&self, target: &Path, mode: UnmountMode) -> Result<(), MountError>;
    /// Every mount whose target is `prefix` or below it, from `/proc/self/mountinfo`, in mount order.
    fn mounts_under(&self, prefix: &Path) -> Result<Vec<MountEntry>, MountError>;
    /// Processes with an open file, working directory or root at or below `target`.
    fn holders(&self, target: &Path) -> Vec<Holder>;
    /// Space on the file system mounted at `target`.
    fn usage(&self, target: &Path) -> Option<Usage>;
}

/// How a block export presents the image as raw bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExportKind {
    /// qemu-storage-daemon's FUSE export onto a regular file, which a loop device then attaches.
    Fuse,
    /// qemu-nbd connected to a `/dev/nbdN` device (where the kernel has nbd); the export path is a symbolic link to
    /// that device, and the loop device is attached to the device.
    Nbd,
}

/// A block export to start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportRequest {
    /// The image format (not raw: raw images need no export).
    pub format: ImageFormat,
    pub writable: bool,
    /// Where the raw view appears: an empty regular file is created there, and removed on stop.
    pub export_path: PathBuf,
    /// The backing image of a CacheOS snapshot overlay, given explicitly; without it a backing file named inside
    /// the image is never opened.
    #[serde(default)]
    pub backing: Option<Backing>,
}

/// An explicitly chosen backing image for a qcow2 overlay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backing {
    /// A path the export process opens, normally `/proc/<pid>/fd/<n>` of a descriptor the core checked.
    pub path: PathBuf,
    pub format: ImageFormat,
}

/// A running export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportHandle {
    pub kind: ExportKind,
    /// The raw view of the image, for [`LoopControl::attach`].
    pub export_path: PathBuf,
    /// The export process.
    pub pid: u32,
    pub writable: bool,
}

/// Errors of [`BlockExport`].
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{format} images need no block export ({image})")]
    NotNeeded { image: PathBuf, format: ImageFormat },
    #[error("cannot prepare export file {path}")]
    ExportFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot start {program} for {image}")]
    Spawn {
        program: String,
        image: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("export of {image} failed to start: {message}")]
    Start { image: PathBuf, message: String },
    #[error("export of {image} did not become ready within {seconds} s")]
    Timeout { image: PathBuf, seconds: u64 },
    #[error("process {pid} is not the export at {export_path}")]
    NotOurProcess { pid: u32, export_path: PathBuf },
    #[error("cannot stop export process {pid} ({export_path})")]
    Stop {
        pid: u32,
        export_path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Presents a qcow2/vmdk/vdi/vhdx/vpc image as raw bytes that a loop device can attach.
pub trait BlockExport: Send + Sync {
    fn start(&self, image: &OpenImage, request: &ExportRequest) -> Result<ExportHandle, ExportError>;
    /// Stops the export process, waits for it, and removes the export file.
    fn stop(&self, handle: &ExportHandle) -> Result<(), ExportError>;
    /// The pid of a running export process serving `export_path`, found in the process table (for reconciling
    /// after a crash between starting an export and recording it).
    fn find(&self, export_path: &Path) -> Option<u32>;
}

/// A process that holds something open below a mount point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Holder {
    pub pid: u32,
    /// The process name (`/proc/PID/comm`).
    pub command: String,
    /// What it holds: an open file, its working directory or root.
    #[schema(value_type = String)]
    pub path: PathBuf,
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pid {} ({}) holds {}", self.pid, self.command, self.path.display())
    }
}

/// Space on a mounted file system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Usage {
    pub total_bytes: u64,
    pub used_bytes: u64,
    pub free_bytes: u64,
}

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DirEntry {
    pub name: String,
    pub kind: EntryKind,
    /// Size in bytes (regular files; 0 otherwise).
    pub size: u64,
    /// Modification time, ms since the Unix epoch.
    pub modified_ms: u64,
}

/// What a directory entry is. Symlinks are reported, never followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    Other,
}

/// Errors of [`SafePaths`].
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    #[error("{path} is not inside an allowed place for images ({allowed})")]
    NotAllowed { path: PathBuf, allowed: String },
    #[error("{path} leaves {root} (through a symbolic link or ..)")]
    Escapes { path: PathBuf, root: PathBuf },
    #[error("{path} does not exist")]
    Missing { path: PathBuf },
    #[error("{path} already exists")]
    Exists { path: PathBuf },
    #[error("{path} is a directory, not an image file")]
    IsDirectory { path: PathBuf },
    #[error("{path} is not a regular file")]
    NotRegularFile { path: PathBuf },
    #[error("permission denied opening {path}")]
    PermissionDenied { path: PathBuf },
    #[error("cannot open {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Opens, creates and lists files strictly below a set of allowed roots, without following symbolic links out of
/// them (the real implementation uses `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)` from each root).
pub trait SafePaths: Send + Sync {
    /// Opens an existing regular file below one of `roots`; `path` is absolute.
    fn open_image(&self, path: &Path, roots: &[PathBuf], writable: bool) -> Result<OpenImage, PathError>;
    /// Creates a new file (never replacing one) below one of `roots`, open read-write, mode 0640.
    fn create_image(&self, path: &Path, roots: &[PathBuf]) -> Result<OpenImage, PathError>;
    /// Lists the directory `rel` (relative, may be empty) below `root`, sorted by name.
    fn list_dir(&self, root: &Path, rel: &Path) -> Result<Vec<DirEntry>, PathError>;
    /// Removes a file this process created (a failed create); `path` is absolute.
    fn remove(&self, path: &Path) -> Result<(), PathError>;
    /// Renames `from` to `to`, both directly in the same one of `roots`, never replacing an existing `to`
    /// (`renameat2(RENAME_NOREPLACE)`; [`PathError::Exists`] when `to` exists).
    fn publish(&self, from: &Path, to: &Path, roots: &[PathBuf]) -> Result<(), PathError>;
}

/// Errors of [`ImageTool`].
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("cannot run {program}")]
    Spawn {
        program: String,
        #[source]
        source: io::Error,
    },
    #[error("{program} failed for {target}: {message}")]
    Failed {
        program: String,
        target: PathBuf,
        message: String,
    },
}

/// A file system to create on a blank drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum NewFs {
    Ext4,
    Xfs,
    Btrfs,
    Vfat,
}

impl NewFs {
    /// The serde name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ext4 => "ext4",
            Self::Xfs => "xfs",
            Self::Btrfs => "btrfs",
            Self::Vfat => "vfat",
        }
    }
    /// The smallest size the tool accepts, in bytes.
    pub fn min_size(self) -> u64 {
        match self {
            Self::Ext4 | Self::Vfat => 1 << 20,
            Self::Xfs => 300 << 20,
            Self::Btrfs => 114 << 20,
        }
    }
    /// The longest label the file system takes.
    pub fn max_label(self) -> usize {
        match self {
            Self::Ext4 => 16,
            Self::Xfs => 12,
            Self::Btrfs => 255,
            Self::Vfat => 11,
        }
    }
}

/// Image and file-system tools run as programs with fixed argument vectors (qemu-img, mkfs.*).
pub trait ImageTool: Send + Sync {
    /// Writes an empty qcow2 of `size` bytes into the open, empty `image`.
    fn create_qcow2(&self, image: &OpenImage, size: u64) -> Result<(), ToolError>;
    /// Writes an empty qcow2 overlay of `size` bytes into the open, empty `overlay`; its backing image is given
    /// explicitly whenever it is opened, so no backing name is recorded in it.
    fn create_overlay(&self, overlay: &OpenImage, size: u64) -> Result<(), ToolError>;
    /// Writes the overlay's data into `base` (opened read-write) and leaves the overlay empty.
    fn commit_overlay(&self, overlay: &OpenImage, base: &OpenImage, base_format: ImageFormat) -> Result<(), ToolError>;
    /// Creates a file system on a block device.
    fn mkfs(&self, device: &Path, fs: NewFs, label: Option<&str>) -> Result<(), ToolError>;
}

/// `/proc/<this pid>/fd/<n>` for an open image: a path another process (running as the same user) opens to reach
/// exactly the inode the core holds.
pub fn proc_fd_path(image: &OpenImage) -> PathBuf {
    use std::os::fd::AsRawFd;
    PathBuf::from(format!("/proc/{}/fd/{}", std::process::id(), image.file.as_raw_fd()))
}

pub mod manager;
pub mod model;

pub use manager::{DriveConfig, DriveDeps, DriveError, DriveManager};
pub use model::*;

pub mod fake {
    //! Recording fakes of the drive traits: each call is recorded as a typed value so tests can assert the exact
    //! plan, and results can be scripted (by default every call succeeds).

    use super::*;
    use std::collections::{BTreeMap, VecDeque};
    use std::sync::{Arc, Mutex};

    /// One recorded call on any drive fake, in the order they happened.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Call {
        Inspect {
            image: PathBuf,
        },
        LoopAttach {
            image: PathBuf,
            options: LoopOptions,
            device: PathBuf,
        },
        Partitions {
            device: PathBuf,
        },
        LoopDetach {
            device: PathBuf,
        },
        FindByBackingFile {
            backing_file: PathBuf,
        },
        Probe {
            device: PathBuf,
        },
        ReadTable {
            device: PathBuf,
        },
        Mount(MountRequest),
        Unmount {
            target: PathBuf,
            mode: UnmountMode,
        },
        MountsUnder {
            prefix: PathBuf,
        },
        ExportStart {
            image: PathBuf,
            request: ExportRequest,
        },
        ExportStop {
            export_path: PathBuf,
            pid: u32,
        },
        CreateQcow2 {
            image: PathBuf,
            size: u64,
        },
        CreateOverlay {
            overlay: PathBuf,
            size: u64,
        },
        CommitOverlay {
            overlay: PathBuf,
            base: PathBuf,
        },
        Mkfs {
            device: PathBuf,
            fs: NewFs,
            label: Option<String>,
        },
    }

    impl fmt::Display for Call {
        /// A one-line human-readable plan step, e.g. `mount /dev/loop3 at /x (ext4) with nosuid,nodev,noexec,ro`.
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                Call::Inspect { image } => write!(f, "inspect {}", image.display()),
                Call::LoopAttach { image, options, device } => {
                    write!(f, "attach {} to {}", image.display(), device.display())?;
                    write!(f, " {}", if options.read_only { "ro" } else { "rw" })?;
                    if options.partscan {
                        write!(f, ",partscan")?;
                    }
                    if options.offset != 0 {
                        write!(f, ",offset={}", options.offset)?;
                    }
                    if let Some(limit) = options.size_limit {
                        write!(f, ",sizelimit={limit}")?;
                    }
                    Ok(())
                }
                Call::Partitions { device } => write!(f, "partitions of {}", device.display()),
                Call::LoopDetach { device } => write!(f, "detach {}", device.display()),
                Call::FindByBackingFile { backing_file } => write!(f, "find loops of {}", backing_file.display()),
                Call::Probe { device } => write!(f, "probe {}", device.display()),
                Call::ReadTable { device } => write!(f, "read partition table of {}", device.display()),
                Call::Mount(r) => write!(
                    f,
                    "mount {} at {} ({}) with {}",
                    r.source.display(),
                    r.target.display(),
                    r.fs_type,
                    r.flags().join(",")
                ),
                Call::Unmount { target, mode } => match mode {
                    UnmountMode::Normal => write!(f, "unmount {}", target.display()),
                    UnmountMode::Lazy => write!(f, "unmount {} lazily", target.display()),
                },
                Call::MountsUnder { prefix } => write!(f, "list mounts under {}", prefix.display()),
                Call::ExportStart { image, request } => write!(
                    f,
                    "export {} ({}) at {} {}",
                    image.display(),
                    request.format,
                    request.export_path.display(),
                    if request.writable { "rw" } else { "ro" }
                ),
                Call::ExportStop { export_path, pid } => write!(f, "stop export {} (pid {pid})", export_path.display()),
                Call::CreateQcow2 { image, size } => write!(f, "create qcow2 {} of {size} bytes", image.display()),
                Call::CreateOverlay { overlay, size } => {
                    write!(f, "create overlay {} of {size} bytes", overlay.display())
                }
                Call::CommitOverlay { overlay, base } => {
                    write!(f, "commit overlay {} into {}", overlay.display(), base.display())
                }
                Call::Mkfs { device, fs, label } => match label {
                    Some(l) => write!(f, "mkfs {} on {} labelled {l}", fs.as_str(), device.display()),
                    None => write!(f, "mkfs {} on {}", fs.as_str(), device.display()),
                },
            }
        }
    }

    /// The shared call log and simulated kernel state behind all fakes made from one [`FakeDrives`].
    #[derive(Debug, Default)]
    struct State {
        calls: Vec<Call>,
        images: BTreeMap<PathBuf, ImageInfo>,
        filesystems: BTreeMap<PathBuf, FsInfo>,
        partitions: BTreeMap<PathBuf, Vec<Partition>>,
        tables: BTreeMap<PathBuf, PartitionTable>,
        /// device -> (backing path, options)
        loops: BTreeMap<PathBuf, (PathBuf, LoopOptions)>,
        mounts: Vec<MountEntry>,
        exports: BTreeMap<PathBuf, u32>,
        next_loop: u32,
        next_mount_id: u32,
        next_pid: u32,
        failures: VecDeque<(FailOn, String)>,
        holders: BTreeMap<PathBuf, Vec<Holder>>,
        /// (image path, byte offset) -> file system found there, whichever device shows it.
        contents: BTreeMap<(PathBuf, u64), FsInfo>,
        /// export path -> the image (or an overlay's base) it presents.
        aliases: BTreeMap<PathBuf, PathBuf>,
    }

    /// A call that should fail the next time it is made (see [`FakeDrives::fail_next`]).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum FailOn {
        Inspect,
        LoopAttach,
        LoopDetach,
        Probe,
        ReadTable,
        Mount,
        Unmount,
        ExportStart,
        ExportStop,
        Tool,
    }

    /// One set of recording fakes sharing a call log and a simulated kernel: loop devices are numbered from
    /// `/dev/loop0`, export pids from 1000, and what is attached, mounted or exported is tracked so tests can
    /// assert that nothing is left behind.
    #[derive(Debug, Clone, Default)]
    pub struct FakeDrives {
        state: Arc<Mutex<State>>,
    }

    impl FakeDrives {
        pub fn new() -> Self {
            Self::default()
        }

        fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
            f(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()))
        }

        /// What [`ImageInspector::inspect`] reports for an image opened from `path` (default: raw, file size).
        pub fn set_image(&self, path: impl Into<PathBuf>, info: ImageInfo) {
            self.with(|s| s.images.insert(path.into(), info));
        }

        /// What [`FsProbe::probe`] reports for `device` (default: nothing recognised).
        pub fn set_filesystem(&self, device: impl Into<PathBuf>, fs: FsInfo) {
            self.with(|s| s.filesystems.insert(device.into(), fs));
        }

        /// What [`FsProbe::probe`] reports for any loop device showing `image` at `offset`, also through exports
        /// and snapshot overlays (so it survives re-attaching).
        pub fn set_content(&self, image: impl Into<PathBuf>, offset: u64, fs: FsInfo) {
            self.with(|s| s.contents.insert((image.into(), offset), fs));
        }

        /// The partitions a partscan of the next attached device reveals, by their number.
        pub fn set_partitions(&self, device: impl Into<PathBuf>, partitions: Vec<Partition>) {
            self.with(|s| s.partitions.insert(device.into(), partitions));
        }

        /// What [`PartitionTableReader::read_table`] reports for `device` (default: no table).
        pub fn set_table(&self, device: impl Into<PathBuf>, table: PartitionTable) {
            self.with(|s| s.tables.insert(device.into(), table));
        }

        /// Makes the next call of that kind fail with an error carrying `message`.
        pub fn fail_next(&self, on: FailOn, message: impl Into<String>) {
            self.with(|s| s.failures.push_back((on, message.into())));
        }

        /// Every call so far.
        pub fn calls(&self) -> Vec<Call> {
            self.with(|s| s.calls.clone())
        }

        /// Every call so far as one-line plan steps (see [`Call`]'s `Display`).
        pub fn plan(&self) -> Vec<String> {
            self.calls().iter().map(ToString::to_string).collect()
        }

        /// Attached loop devices, mounts and exports still held: all empty when everything was released.
        pub fn leftovers(&self) -> Vec<String> {
            self.with(|s| {
                let mut out: Vec<String> = s.loops.keys().map(|d| format!("loop {}", d.display())).collect();
                out.extend(s.mounts.iter().map(|m| format!("mount {}", m.target.display())));
                out.extend(s.exports.keys().map(|p| format!("export {}", p.display())));
                out
            })
        }

        pub fn inspector(&self) -> FakeImageInspector {
            FakeImageInspector(self.clone())
        }
        pub fn loops(&self) -> FakeLoopControl {
            FakeLoopControl(self.clone())
        }
        pub fn probe(&self) -> FakeFsProbe {
            FakeFsProbe(self.clone())
        }
        pub fn tables(&self) -> FakePartitionTables {
            FakePartitionTables(self.clone())
        }
        pub fn mounter(&self) -> FakeMounter {
            FakeMounter(self.clone())
        }
        pub fn exporter(&self) -> FakeBlockExport {
            FakeBlockExport(self.clone())
        }
        pub fn tool(&self) -> FakeImageTool {
            FakeImageTool(self.clone())
        }

        /// Processes that [`Mounter::holders`] reports for mounts at or below `target`.
        pub fn set_holders(&self, target: impl Into<PathBuf>, holders: Vec<Holder>) {
            self.with(|s| s.holders.insert(target.into(), holders));
        }

        /// Forgets every loop device, mount and export, as a reboot would; device numbers start again at 0.
        pub fn reboot(&self) {
            self.with(|s| {
                s.next_loop = 0;
                s.loops.clear();
                s.mounts.clear();
                s.exports.clear();
            });
        }

        fn take_failure(s: &mut State, on: FailOn) -> Option<String> {
            let pos = s.failures.iter().position(|(f, _)| *f == on)?;
            s.failures.remove(pos).map(|(_, m)| m)
        }
    }

    fn injected(message: String) -> io::Error {
        io::Error::other(message)
    }

    /// Recording [`ImageInspector`].
    #[derive(Debug, Clone)]
    pub struct FakeImageInspector(FakeDrives);
    /// Recording [`LoopControl`].
    #[derive(Debug, Clone)]
    pub struct FakeLoopControl(FakeDrives);
    /// Recording [`FsProbe`].
    #[derive(Debug, Clone)]
    pub struct FakeFsProbe(FakeDrives);
    /// Recording [`PartitionTableReader`].
    #[derive(Debug, Clone)]
    pub struct FakePartitionTables(FakeDrives);
    /// Recording [`Mounter`].
    #[derive(Debug, Clone)]
    pub struct FakeMounter(FakeDrives);
    /// Recording [`BlockExport`].
    #[derive(Debug, Clone)]
    pub struct FakeBlockExport(FakeDrives);
    /// Recording [`ImageTool`].
    #[derive(Debug, Clone)]
    pub struct FakeImageTool(FakeDrives);

    impl ImageTool for FakeImageTool {
        fn create_qcow2(&self, image: &OpenImage, size: u64) -> Result<(), ToolError> {
            self.record(
                Call::CreateQcow2 {
                    image: image.path.clone(),
                    size,
                },
                &image.path,
            )
        }
        fn create_overlay(&self, overlay: &OpenImage, size: u64) -> Result<(), ToolError> {
            self.record(
                Call::CreateOverlay {
                    overlay: overlay.path.clone(),
                    size,
                },
                &overlay.path,
            )
        }
        fn commit_overlay(&self, overlay: &OpenImage, base: &OpenImage, _f: ImageFormat) -> Result<(), ToolError> {
            self.record(
                Call::CommitOverlay {
                    overlay: overlay.path.clone(),
                    base: base.path.clone(),
                },
                &base.path,
            )
        }
        fn mkfs(&self, device: &Path, fs: NewFs, label: Option<&str>) -> Result<(), ToolError> {
            self.record(
                Call::Mkfs {
                    device: device.to_owned(),
                    fs,
                    label: label.map(str::to_owned),
                },
                device,
            )
        }
    }

    impl FakeImageTool {
        fn record(&self, call: Call, target: &Path) -> Result<(), ToolError> {
            self.0.with(|s| {
                s.calls.push(call);
                match FakeDrives::take_failure(s, FailOn::Tool) {
                    Some(message) => Err(ToolError::Failed {
                        program: "fake".into(),
                        target: target.to_owned(),
                        message,
                    }),
                    None => Ok(()),
                }
            })
        }
    }

    /// A [`SafePaths`] over the real file system that checks roots lexically after canonicalising: enough for
    /// tests of the core's logic in temporary directories; the kernel-enforced version is in `cacheos-sys`.
    #[derive(Debug, Clone, Default)]
    pub struct PlainPaths;

    impl PlainPaths {
        fn check(path: &Path, roots: &[PathBuf]) -> Result<(), PathError> {
            let parent = path.parent().unwrap_or(path);
            let canon = parent
                .canonicalize()
                .map_err(|_| PathError::Missing { path: path.to_owned() })?;
            if roots
                .iter()
                .any(|r| r.canonicalize().is_ok_and(|r| canon.starts_with(r)))
            {
                Ok(())
            } else {
                Err(PathError::NotAllowed {
                    path: path.to_owned(),
                    allowed: roots
                        .iter()
                        .map(|r| r.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                })
            }
        }
        fn io(path: &Path, source: io::Error) -> PathError {
            match source.kind() {
                io::ErrorKind::NotFound => PathError::Missing { path: path.to_owned() },
                io::ErrorKind::AlreadyExists => PathError::Exists { path: path.to_owned() },
                io::ErrorKind::PermissionDenied => PathError::PermissionDenied { path: path.to_owned() },
                _ => PathError::Io {
                    path: path.to_owned(),
                    source,
                },
            }
        }
    }

    impl SafePaths for PlainPaths {
        fn open_image(&self, path: &Path, roots: &[PathBuf], writable: bool) -> Result<OpenImage, PathError> {
            Self::check(path, roots)?;
            let meta = std::fs::metadata(path).map_err(|e| Self::io(path, e))?;
            if meta.is_dir() {
                return Err(PathError::IsDirectory { path: path.to_owned() });
            }
            OpenImage::open(path, writable).map_err(|e| match e {
                ImageError::Open { source, .. } => Self::io(path, source),
                _ => PathError::NotRegularFile { path: path.to_owned() },
            })
        }
        fn create_image(&self, path: &Path, roots: &[PathBuf]) -> Result<OpenImage, PathError> {
            Self::check(path, roots)?;
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(path)
                .map_err(|e| Self::io(path, e))?;
            Ok(OpenImage {
                path: path.to_owned(),
                file,
            })
        }
        fn list_dir(&self, root: &Path, rel: &Path) -> Result<Vec<DirEntry>, PathError> {
            let dir = root.join(rel);
            let mut out = Vec::new();
            for e in std::fs::read_dir(&dir).map_err(|e| Self::io(&dir, e))? {
                let e = e.map_err(|e| Self::io(&dir, e))?;
                let m = e.path().symlink_metadata().map_err(|e| Self::io(&dir, e))?;
                let kind = if m.is_symlink() {
                    EntryKind::Symlink
                } else if m.is_dir() {
                    EntryKind::Dir
                } else if m.is_file() {
                    EntryKind::File
                } else {
                    EntryKind::Other
                };
                out.push(DirEntry {
                    name: e.file_name().to_string_lossy().into_owned(),
                    kind,
                    size: if m.is_file() { m.len() } else { 0 },
                    modified_ms: 0,
                });
            }
            out.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(out)
        }
        fn remove(&self, path: &Path) -> Result<(), PathError> {
            std::fs::remove_file(path).map_err(|e| Self::io(path, e))
        }
        fn publish(&self, from: &Path, to: &Path, roots: &[PathBuf]) -> Result<(), PathError> {
            Self::check(from, roots)?;
            Self::check(to, roots)?;
            // A hard link fails when `to` exists, like RENAME_NOREPLACE.
            std::fs::hard_link(from, to).map_err(|e| Self::io(to, e))?;
            std::fs::remove_file(from).map_err(|e| Self::io(from, e))
        }
    }

    impl ImageInspector for FakeImageInspector {
        fn inspect(&self, image: &OpenImage) -> Result<ImageInfo, ImageError> {
            self.0.with(|s| {
                s.calls.push(Call::Inspect {
                    image: image.path.clone(),
                });
                if let Some(message) = FakeDrives::take_failure(s, FailOn::Inspect) {
                    return Err(ImageError::Read {
                        path: image.path.clone(),
                        source: injected(message),
                    });
                }
                if let Some(info) = s.images.get(&image.path) {
                    return Ok(info.clone());
                }
                let size = image.file.metadata().map(|m| m.len()).unwrap_or(0);
                Ok(ImageInfo {
                    format: ImageFormat::Raw,
                    virtual_size: size,
                    file_size: size,
                })
            })
        }
    }

    impl LoopControl for FakeLoopControl {
        fn attach(&self, image: &OpenImage, options: &LoopOptions) -> Result<PathBuf, LoopError> {
            self.0.with(|s| {
                let device = PathBuf::from(format!("/dev/loop{}", s.next_loop));
                s.calls.push(Call::LoopAttach {
                    image: image.path.clone(),
                    options: *options,
                    device: device.clone(),
                });
                if let Some(message) = FakeDrives::take_failure(s, FailOn::LoopAttach) {
                    return Err(LoopError::Attach {
                        image: image.path.clone(),
                        device,
                        source: injected(message),
                    });
                }
                s.next_loop += 1;
                s.loops.insert(device.clone(), (image.path.clone(), *options));
                Ok(device)
            })
        }

        fn partitions(&self, device: &Path) -> Result<Vec<Partition>, LoopError> {
            self.0.with(|s| {
                s.calls.push(Call::Partitions {
                    device: device.to_owned(),
                });
                match s.loops.get(device) {
                    None => Err(LoopError::NotLoop {
                        device: device.to_owned(),
                    }),
                    Some((_, options)) if !options.partscan => Ok(Vec::new()),
                    Some(_) => Ok(s.partitions.get(device).cloned().unwrap_or_default()),
                }
            })
        }

        fn detach(&self, device: &Path) -> Result<(), LoopError> {
            self.0.with(|s| {
                s.calls.push(Call::LoopDetach {
                    device: device.to_owned(),
                });
                if let Some(message) = FakeDrives::take_failure(s, FailOn::LoopDetach) {
                    return Err(LoopError::Detach {
                        device: device.to_owned(),
                        source: injected(message),
                    });
                }
                let source = device.to_string_lossy().into_owned();
                let prefix = format!("{source}p");
                if s.mounts
                    .iter()
                    .any(|m| m.source == source || m.source.starts_with(&prefix))
                {
                    return Err(LoopError::Busy {
                        device: device.to_owned(),
                    });
                }
                match s.loops.remove(device) {
                    Some(_) => Ok(()),
                    None => Err(LoopError::NotLoop {
                        device: device.to_owned(),
                    }),
                }
            })
        }

        fn find_by_backing_file(&self, backing_file: &Path) -> Result<Vec<LoopInfo>, LoopError> {
            self.0.with(|s| {
                s.calls.push(Call::FindByBackingFile {
                    backing_file: backing_file.to_owned(),
                });
                Ok(s.loops
                    .iter()
                    .filter(|(_, (path, _))| path == backing_file)
                    .map(|(device, (path, o))| LoopInfo {
                        device: device.clone(),
                        backing_file: path.clone(),
                        offset: o.offset,
                        size_limit: o.size_limit.unwrap_or(0),
                        read_only: o.read_only,
                        partscan: o.partscan,
                        autoclear: false,
                    })
                    .collect())
            })
        }
    }

    impl FsProbe for FakeFsProbe {
        fn probe(&self, device: &Path) -> Result<Option<FsInfo>, ProbeError> {
            self.0.with(|s| {
                s.calls.push(Call::Probe {
                    device: device.to_owned(),
                });
                if let Some(message) = FakeDrives::take_failure(s, FailOn::Probe) {
                    return Err(ProbeError::Failed {
                        device: device.to_owned(),
                        message,
                    });
                }
                if let Some(fs) = s.filesystems.get(device) {
                    return Ok(Some(fs.clone()));
                }
                let Some((mut path, options)) = s.loops.get(device).cloned() else {
                    return Ok(None);
                };
                while let Some(p) = s.aliases.get(&path) {
                    path = p.clone();
                }
                Ok(s.contents.get(&(path, options.offset)).cloned())
            })
        }
    }

    impl PartitionTableReader for FakePartitionTables {
        fn read_table(&self, device: &Path) -> Result<Option<PartitionTable>, PartitionError> {
            self.0.with(|s| {
                s.calls.push(Call::ReadTable {
                    device: device.to_owned(),
                });
                if let Some(message) = FakeDrives::take_failure(s, FailOn::ReadTable) {
                    return Err(PartitionError::Failed {
                        device: device.to_owned(),
                        message,
                    });
                }
                Ok(s.tables.get(device).cloned())
            })
        }
    }

    impl Mounter for FakeMounter {
        fn mount(&self, request: &MountRequest) -> Result<(), MountError> {
            self.0.with(|s| {
                s.calls.push(Call::Mount(request.clone()));
                if let Some(message) = FakeDrives::take_failure(s, FailOn::Mount) {
                    return Err(MountError::Mount {
                        source_path: request.source.clone(),
                        target: request.target.clone(),
                        fs_type: request.fs_type,
                        source: injected(message),
                    });
                }
                s.next_mount_id += 1;
                let mount_id = s.next_mount_id;
                s.mounts.push(MountEntry {
                    mount_id,
                    source: request.source.to_string_lossy().into_owned(),
                    target: request.target.clone(),
                    fs_type: request.fs_type.kernel_name().to_owned(),
                    options: request.flags().into_iter().map(str::to_owned).collect(),
                });
                Ok(())
            })
        }

        fn unmount(&self, target: &Path, mode: UnmountMode) -> Result<(), MountError> {
            self.0.with(|s| {
                s.calls.push(Call::Unmount {
                    target: target.to_owned(),
                    mode,
                });
                if let Some(message) = FakeDrives::take_failure(s, FailOn::Unmount) {
                    return Err(MountError::Unmount {
                        target: target.to_owned(),
                        source: injected(message),
                    });
                }
                match s.mounts.iter().rposition(|m| m.target == target) {
                    Some(i) => {
                        s.mounts.remove(i);
                        Ok(())
                    }
                    None => Err(MountError::NotMounted {
                        target: target.to_owned(),
                    }),
                }
            })
        }

        fn mounts_under(&self, prefix: &Path) -> Result<Vec<MountEntry>, MountError> {
            self.0.with(|s| {
                s.calls.push(Call::MountsUnder {
                    prefix: prefix.to_owned(),
                });
                Ok(s.mounts
                    .iter()
                    .filter(|m| m.target.starts_with(prefix))
                    .cloned()
                    .collect())
            })
        }

        fn holders(&self, target: &Path) -> Vec<Holder> {
            self.0.with(|s| {
                s.holders
                    .iter()
                    .filter(|(t, _)| t.starts_with(target))
                    .flat_map(|(_, h)| h.clone())
                    .collect()
            })
        }

        fn usage(&self, target: &Path) -> Option<Usage> {
            self.0.with(|s| {
                s.mounts.iter().any(|m| m.target == target).then_some(Usage {
                    total_bytes: 100 << 20,
                    used_bytes: 1 << 20,
                    free_bytes: 99 << 20,
                })
            })
        }
    }

    impl BlockExport for FakeBlockExport {
        fn start(&self, image: &OpenImage, request: &ExportRequest) -> Result<ExportHandle, ExportError> {
            self.0.with(|s| {
                s.calls.push(Call::ExportStart {
                    image: image.path.clone(),
                    request: request.clone(),
                });
                if request.format.is_raw() {
                    return Err(ExportError::NotNeeded {
                        image: image.path.clone(),
                        format: request.format,
                    });
                }
                if let Some(message) = FakeDrives::take_failure(s, FailOn::ExportStart) {
                    return Err(ExportError::Start {
                        image: image.path.clone(),
                        message,
                    });
                }
                let pid = 1000 + s.next_pid;
                s.next_pid += 1;
                // Like the real export, the raw view appears as a file (here an empty one).
                let _ = std::fs::File::create(&request.export_path);
                let source = request
                    .backing
                    .as_ref()
                    .and_then(|b| std::fs::read_link(&b.path).ok())
                    .unwrap_or_else(|| image.path.clone());
                s.aliases.insert(request.export_path.clone(), source);
                s.exports.insert(request.export_path.clone(), pid);
                Ok(ExportHandle {
                    kind: ExportKind::Fuse,
                    export_path: request.export_path.clone(),
                    pid,
                    writable: request.writable,
                })
            })
        }

        fn stop(&self, handle: &ExportHandle) -> Result<(), ExportError> {
            self.0.with(|s| {
                s.calls.push(Call::ExportStop {
                    export_path: handle.export_path.clone(),
                    pid: handle.pid,
                });
                if let Some(message) = FakeDrives::take_failure(s, FailOn::ExportStop) {
                    return Err(ExportError::Stop {
                        pid: handle.pid,
                        export_path: handle.export_path.clone(),
                        source: injected(message),
                    });
                }
                match s.exports.get(&handle.export_path) {
                    Some(pid) if *pid == handle.pid => {
                        s.exports.remove(&handle.export_path);
                        let _ = std::fs::remove_file(&handle.export_path);
                        Ok(())
                    }
                    _ => Err(ExportError::NotOurProcess {
                        pid: handle.pid,
                        export_path: handle.export_path.clone(),
                    }),
                }
            })
        }

        fn find(&self, export_path: &Path) -> Option<u32> {
            self.0.with(|s| s.exports.get(export_path).copied())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::{Call, FailOn, FakeDrives};
    use super::*;

    fn temp_image(name: &str, len: u64) -> (PathBuf, OpenImage) {
        let dir = std::env::temp_dir().join(format!("cacheos-drive-core-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("disk.img");
        std::fs::File::create(&path).unwrap().set_len(len).unwrap();
        let image = OpenImage::open(&path, false).unwrap();
        (dir, image)
    }

    #[test]
    fn serde_names_are_kebab_case_and_match_as_str() {
        for t in FsType::ALL {
            assert_eq!(serde_json::to_value(t).unwrap(), serde_json::json!(t.as_str()));
            assert_eq!(FsType::from_blkid(t.as_str()), Some(t));
        }
        for f in [
            ImageFormat::Raw,
            ImageFormat::Iso9660,
            ImageFormat::Qcow2,
            ImageFormat::Vmdk,
            ImageFormat::Vdi,
            ImageFormat::Vhdx,
            ImageFormat::Vpc,
        ] {
            assert_eq!(serde_json::to_value(f).unwrap(), serde_json::json!(f.as_str()));
        }
        assert_eq!(FsType::from_blkid("swap"), None);
        assert_eq!(FsType::from_blkid("crypto_LUKS"), None);
        assert_eq!(FsType::Ntfs.kernel_name(), "ntfs3");
    }

    #[test]
    fn mount_flags_are_explicit() {
        let mut r = MountRequest::read_only("/dev/loop3", "/run/cacheos/drives/x/p1", FsType::Ext4);
        assert_eq!(r.flags(), ["nosuid", "nodev", "noexec", "ro"]);
        r.exec = true;
        assert_eq!(r.flags(), ["nosuid", "nodev", "ro"]);
        r.read_write = true;
        assert_eq!(r.flags(), ["nosuid", "nodev", "rw"]);
    }

    #[test]
    fn open_image_refuses_directories_and_missing_files() {
        let dir = std::env::temp_dir();
        assert!(matches!(OpenImage::open(&dir, false), Err(ImageError::NotRegularFile { path }) if path == dir));
        let missing = dir.join("cacheos-no-such-image");
        assert!(matches!(OpenImage::open(&missing, false), Err(ImageError::Open { path, .. }) if path == missing));
    }

    #[test]
    fn fakes_record_the_plan_and_track_leftovers() {
        let (dir, image) = temp_image("plan", 4096);
        let fakes = FakeDrives::new();
        fakes.set_filesystem(
            "/dev/loop0p1",
            FsInfo {
                fs_type: FsType::Ext4,
                label: None,
                uuid: None,
            },
        );
        fakes.set_partitions(
            "/dev/loop0",
            vec![Partition {
                number: 1,
                device: "/dev/loop0p1".into(),
                start: 1 << 20,
                size: 1 << 20,
                name: None,
            }],
        );
        let info = fakes.inspector().inspect(&image).unwrap();
        assert_eq!(info.format, ImageFormat::Raw);
        assert_eq!(info.virtual_size, 4096);
        let options = LoopOptions {
            partscan: true,
            ..LoopOptions::read_only()
        };
        let device = fakes.loops().attach(&image, &options).unwrap();
        let parts = fakes.loops().partitions(&device).unwrap();
        let fs = fakes.probe().probe(&parts[0].device).unwrap().unwrap();
        let target = PathBuf::from("/run/cacheos/drives/x/p1");
        fakes
            .mounter()
            .mount(&MountRequest::read_only(&parts[0].device, &target, fs.fs_type))
            .unwrap();
        assert!(matches!(fakes.loops().detach(&device), Err(LoopError::Busy { .. })));
        assert_eq!(fakes.leftovers(), ["loop /dev/loop0", "mount /run/cacheos/drives/x/p1"]);
        fakes.mounter().unmount(&target, UnmountMode::Normal).unwrap();
        fakes.loops().detach(&device).unwrap();
        assert!(fakes.leftovers().is_empty());
        let plan = fakes.plan();
        assert_eq!(
            plan[1],
            format!("attach {} to /dev/loop0 ro,partscan", image.path.display())
        );
        assert_eq!(
            plan[4],
            "mount /dev/loop0p1 at /run/cacheos/drives/x/p1 (ext4) with nosuid,nodev,noexec,ro"
        );
        assert_eq!(plan.last().unwrap(), "detach /dev/loop0");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn fakes_inject_failures_and_exports_are_tracked() {
        let (dir, image) = temp_image("fail", 512);
        let fakes = FakeDrives::new();
        fakes.fail_next(FailOn::ExportStart, "qcow2 header corrupt");
        let request = ExportRequest {
            format: ImageFormat::Qcow2,
            writable: false,
            export_path: "/run/cacheos/exports/a".into(),
            backing: None,
        };
        let err = fakes.exporter().start(&image, &request).unwrap_err();
        assert!(err.to_string().contains("qcow2 header corrupt"));
        let handle = fakes.exporter().start(&image, &request).unwrap();
        assert_eq!(handle.pid, 1000);
        assert_eq!(fakes.leftovers(), ["export /run/cacheos/exports/a"]);
        fakes.exporter().stop(&handle).unwrap();
        assert!(fakes.leftovers().is_empty());
        let raw = ExportRequest {
            format: ImageFormat::Raw,
            ..request
        };
        assert!(matches!(
            fakes.exporter().start(&image, &raw),
            Err(ExportError::NotNeeded { .. })
        ));
        assert!(matches!(fakes.calls()[0], Call::ExportStart { .. }));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
