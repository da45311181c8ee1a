//! Host tests of the real drive implementations against the kernel: loop devices, superblock probing, mounts and
//! qemu-storage-daemon FUSE exports, on images each test builds itself. They need root and run only with
//! CACHEOS_INTEGRATION=1 (scripts/test sets it); with it set and no root they fail instead of skipping.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use cacheos_core::drive::{
    BlockExport, ExportError, ExportHandle, ExportRequest, FsProbe, FsType, ImageError, ImageFormat, ImageInspector,
    LoopControl, LoopError, LoopOptions, MountError, MountRequest, Mounter, OpenImage, PartitionTableReader,
    UnmountMode,
};
use cacheos_sys::drive::{BlkidProbe, KernelLoops, KernelMounter, MagicInspector, QsdFuseExport, SfdiskTable};

const EROFS: i32 = 30;
const EACCES: i32 = 13;

/// Whether host tests are enabled; they fail rather than skip when enabled without root.
fn enabled(name: &str) -> bool {
    if std::env::var_os("CACHEOS_INTEGRATION").is_none() {
        eprintln!("{name}: skipped; set CACHEOS_INTEGRATION=1 (scripts/test does) to run host drive tests");
        return false;
    }
    assert!(
        rustix::process::geteuid().is_root(),
        "{name}: host drive tests need root (CACHEOS_INTEGRATION is set)"
    );
    true
}

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A unique scratch directory (canonical, so it matches the kernel's `backing_file`), with a file tree to put into
/// images. On drop it checks nothing of it is left in the kernel only after the test's guards have run.
struct Scratch {
    dir: tempfile::TempDir,
    name: String,
}

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix(&format!("cacheos-drive-{name}-"))
            .tempdir()
            .unwrap();
        let scratch = Self {
            dir,
            name: name.to_owned(),
        };
        let tree = scratch.path().join("tree");
        fs::create_dir(&tree).unwrap();
        fs::write(tree.join("hello.txt"), format!("hello from {name}\n")).unwrap();
        fs::write(tree.join("run.sh"), "#!/bin/sh\necho ran\n").unwrap();
        fs::set_permissions(tree.join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
        scratch
    }

    fn path(&self) -> PathBuf {
        self.dir.path().canonicalize().unwrap()
    }

    fn tree(&self) -> PathBuf {
        self.path().join("tree")
    }

    /// Builds a file-system image of the scratch tree.
    fn fs_image(&self, fs_type: FsType, label: &str) -> PathBuf {
        let img = self.path().join(format!("{fs_type}.img"));
        let (img_s, tree) = (s(&img).to_owned(), s(&self.tree()).to_owned());
        match fs_type {
            FsType::Ext4 => run("mkfs.ext4", &["-q", "-F", "-L", label, "-d", &tree, &img_s, "16M"]),
            FsType::Btrfs => {
                fs::File::create(&img).unwrap().set_len(128 << 20).unwrap();
                run("mkfs.btrfs", &["-q", "-f", "-L", label, "--rootdir", &tree, &img_s]);
            }
            FsType::Xfs => {
                // mkfs.xfs cannot populate from a directory; tests fill it through a read-write attach.
                fs::File::create(&img).unwrap().set_len(300 << 20).unwrap();
                run("mkfs.xfs", &["-q", "-f", "-L", label, &img_s]);
            }
            FsType::Squashfs => run("mksquashfs", &[&tree, &img_s, "-quiet", "-noappend", "-no-progress"]),
            FsType::Erofs => run("mkfs.erofs", &["-d0", &img_s, &tree]), // bookworm's 1.5 has no label option
            other => panic!("no builder for {other}"),
        }
        img
    }

    /// Converts a raw image with qemu-img.
    fn convert(&self, raw: &Path, format: &str) -> PathBuf {
        let out = self.path().join(format!("disk.{format}"));
        run(
            "qemu-img",
            &["convert", "-q", "-f", "raw", "-O", format, s(raw), s(&out)],
        );
        out
    }

    /// What of this scratch directory the kernel still holds: loop devices, mounts, processes naming it.
    fn leftovers(&self) -> Vec<String> {
        let dir = self.path();
        let needle = dir.to_string_lossy().into_owned();
        let mut out = Vec::new();
        let losetup = Command::new("losetup").arg("-a").output().unwrap();
        out.extend(
            String::from_utf8_lossy(&losetup.stdout)
                .lines()
                .filter(|l| l.contains(&needle))
                .map(|l| format!("loop: {l}")),
        );
        for m in KernelMounter.mounts_under(Path::new("/")).unwrap() {
            if m.target.starts_with(&dir) || m.source.contains(&needle) {
                out.push(format!("mount: {} on {}", m.source, m.target.display()));
            }
        }
        for entry in fs::read_dir("/proc").unwrap().flatten() {
            let Ok(cmdline) = fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(&needle) {
                out.push(format!("process {}: {cmdline}", entry.file_name().to_string_lossy()));
            }
        }
        out
    }

    fn assert_clean(&self) {
        let left = self.leftovers();
        assert!(left.is_empty(), "left behind: {left:#?}");
    }
}

/// What a test acquired, released in reverse order by [`Held::release`] (asserting success) or, on a failing test,
/// by `Drop` (lazily, ignoring errors).
#[derive(Default)]
struct Held {
    stack: Vec<Resource>,
}

enum Resource {
    Loop(PathBuf),
    Mount(PathBuf),
    Export(ExportHandle),
}

impl Held {
    fn attach(&mut self, image: &OpenImage, options: &LoopOptions) -> PathBuf {
        let device = KernelLoops::default().attach(image, options).expect("attach");
        self.stack.push(Resource::Loop(device.clone()));
        device
    }

    fn mount(&mut self, request: &MountRequest) {
        KernelMounter.mount(request).expect("mount");
        self.stack.push(Resource::Mount(request.target.clone()));
    }

    fn export(&mut self, image: &OpenImage, request: &ExportRequest) -> ExportHandle {
        let handle = QsdFuseExport::default().start(image, request).expect("export");
        self.stack.push(Resource::Export(handle.clone()));
        handle
    }

    fn release_one(resource: &Resource, lazy: bool) -> Result<(), String> {
        match resource {
            Resource::Mount(target) => {
                let mode = if lazy { UnmountMode::Lazy } else { UnmountMode::Normal };
                KernelMounter.unmount(target, mode).map_err(|e| e.to_string())
            }
            Resource::Loop(device) => KernelLoops::default().detach(device).map_err(|e| e.to_string()),
            Resource::Export(handle) => QsdFuseExport::default().stop(handle).map_err(|e| e.to_string()),
        }
    }

    fn release(&mut self) {
        while let Some(r) = self.stack.pop() {
            Self::release_one(&r, false).unwrap();
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        while let Some(r) = self.stack.pop() {
            if let Err(e) = Self::release_one(&r, true) {
                eprintln!("cleanup after a failed test: {e}");
            }
        }
    }
}

fn errno(e: &io::Error) -> Option<i32> {
    e.raw_os_error()
}

/// Checks a read-only, nosuid/nodev/noexec mount of the scratch tree: content, EROFS on write, EACCES on exec.
fn check_read_only_mount(target: &Path, name: &str) {
    let hello = fs::read_to_string(target.join("hello.txt")).unwrap();
    assert_eq!(hello, format!("hello from {name}\n"));
    let write = fs::write(target.join("new.txt"), b"x").unwrap_err();
    assert_eq!(errno(&write), Some(EROFS), "write on a read-only mount: {write}");
    let exec = Command::new(target.join("run.sh")).output().unwrap_err();
    assert_eq!(errno(&exec), Some(EACCES), "exec on a noexec mount: {exec}");
    let entry = KernelMounter.mounts_under(target).unwrap().pop().expect("mount listed");
    for option in ["ro", "nosuid", "nodev", "noexec"] {
        assert!(entry.has_option(option), "{option} missing in {:?}", entry.options);
    }
}

/// Attaches a raw file-system image read-only, probes it, mounts it and checks the mount, then releases all.
fn attach_probe_mount(scratch: &Scratch, img: &Path, fs_type: FsType, label: Option<&str>) {
    let image = OpenImage::open(img, false).unwrap();
    let info = MagicInspector.inspect(&image).unwrap();
    assert_eq!(info.format, ImageFormat::Raw);
    assert_eq!(info.virtual_size, fs::metadata(img).unwrap().len());
    let mut held = Held::default();
    let device = held.attach(&image, &LoopOptions::read_only());
    let found = KernelLoops::default().find_by_backing_file(img).unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].device, device);
    assert!(found[0].read_only);
    let probed = BlkidProbe::default()
        .probe(&device)
        .unwrap()
        .expect("file system found");
    assert_eq!(probed.fs_type, fs_type);
    assert_eq!(probed.label.as_deref(), label);
    let target = scratch.path().join("drives/x/p1");
    held.mount(&MountRequest::read_only(&device, &target, fs_type));
    check_read_only_mount(&target, &scratch.name);
    // Busy: a mounted device is refused without side effects.
    assert!(matches!(
        KernelLoops::default().detach(&device),
        Err(LoopError::Busy { .. })
    ));
    assert!(!KernelLoops::default().find_by_backing_file(img).unwrap()[0].autoclear);
    held.release();
    assert!(!target.exists(), "mount point removed");
    scratch.assert_clean();
}

macro_rules! fs_test {
    ($name:ident, $fs:expr, $label:expr) => {
        #[test]
        fn $name() {
            if !enabled(stringify!($name)) {
                return;
            }
            let scratch = Scratch::new(stringify!($name));
            let img = scratch.fs_image($fs, "CACHEOS");
            attach_probe_mount(&scratch, &img, $fs, $label);
        }
    };
}

fs_test!(ext4, FsType::Ext4, Some("CACHEOS"));
fs_test!(btrfs, FsType::Btrfs, Some("CACHEOS"));
fs_test!(squashfs, FsType::Squashfs, None);
fs_test!(erofs, FsType::Erofs, None);

#[test]
fn xfs() {
    if !enabled("xfs") {
        return;
    }
    let scratch = Scratch::new("xfs");
    let img = scratch.fs_image(FsType::Xfs, "CACHEOS");
    {
        // Fill it through a read-write attach and mount.
        let image = OpenImage::open(&img, true).unwrap();
        let mut held = Held::default();
        let device = held.attach(&image, &LoopOptions::default());
        assert!(!KernelLoops::default().find_by_backing_file(&img).unwrap()[0].read_only);
        let target = scratch.path().join("fill");
        held.mount(&MountRequest {
            read_write: true,
            ..MountRequest::read_only(&device, &target, FsType::Xfs)
        });
        for f in ["hello.txt", "run.sh"] {
            fs::copy(scratch.tree().join(f), target.join(f)).unwrap();
        }
        held.release();
    }
    attach_probe_mount(&scratch, &img, FsType::Xfs, Some("CACHEOS"));
}

/// Whether the running kernel parses GPT (`CONFIG_EFI_PARTITION`); the development host's kernel has no partition
/// parsers at all, the appliance's has. Unknown (no /proc/config.gz) counts as yes.
fn kernel_parses_gpt() -> bool {
    match Command::new("zcat").arg("/proc/config.gz").output() {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l == "CONFIG_EFI_PARTITION=y"),
        _ => true,
    }
}

#[test]
fn gpt_partitions() {
    if !enabled("gpt_partitions") {
        return;
    }
    let scratch = Scratch::new("gpt");
    let img = scratch.path().join("gpt.img");
    fs::File::create(&img).unwrap().set_len(64 << 20).unwrap();
    #[rustfmt::skip]
    let args = ["-n", "1:2048:+16M", "-c", "1:alpha", "-n", "2:0:+16M", "-c", "2:beta", "-n", "3:0:0", "-c", "3:gamma"];
    let mut argv: Vec<&str> = args.to_vec();
    argv.push(s(&img));
    run("sgdisk", &argv);
    let table = SfdiskTable.read_table(&img).unwrap().expect("a partition table");
    assert_eq!(table.label, "gpt");
    let names: Vec<_> = table
        .partitions
        .iter()
        .map(|p| (p.number, p.name.clone().unwrap_or_default()))
        .collect();
    assert_eq!(
        names,
        [(1, "alpha".to_owned()), (2, "beta".to_owned()), (3, "gamma".to_owned())]
    );
    assert_eq!(
        (table.partitions[0].start, table.partitions[0].size),
        (2048 * 512, 16 << 20)
    );
    {
        // File systems on the first two partitions, through read-write loop devices with offset and size limit.
        let image = OpenImage::open(&img, true).unwrap();
        let mut held = Held::default();
        for (p, label) in table.partitions.iter().zip(["ALPHA", "BETA"]) {
            let options = LoopOptions {
                offset: p.start,
                size_limit: Some(p.size),
                ..LoopOptions::default()
            };
            let device = held.attach(&image, &options);
            run(
                "mkfs.ext4",
                &["-q", "-F", "-L", label, "-d", s(&scratch.tree()), s(&device)],
            );
        }
        held.release();
    }
    let image = OpenImage::open(&img, false).unwrap();
    let mut held = Held::default();
    // The whole disk with partscan: the kernel's partitions where it parses GPT; the table read from the device.
    let disk = held.attach(
        &image,
        &LoopOptions {
            partscan: true,
            ..LoopOptions::read_only()
        },
    );
    assert!(KernelLoops::default().find_by_backing_file(&img).unwrap()[0].partscan);
    let kernel_parts = KernelLoops::default().partitions(&disk).unwrap();
    if kernel_parses_gpt() {
        let seen: Vec<_> = kernel_parts
            .iter()
            .map(|p| (p.number, p.start, p.size, p.name.clone()))
            .collect();
        let want: Vec<_> = table
            .partitions
            .iter()
            .map(|p| (p.number, p.start, p.size, p.name.clone()))
            .collect();
        assert_eq!(seen, want);
    } else {
        assert!(kernel_parts.is_empty(), "{kernel_parts:?}");
    }
    assert_eq!(SfdiskTable.read_table(&disk).unwrap().as_ref(), Some(&table));
    // The whole disk carries a partition table, not a file system; the empty partition is unknown, not guessed.
    assert_eq!(BlkidProbe::default().probe(&disk).unwrap(), None);
    for p in &table.partitions {
        let options = LoopOptions {
            offset: p.start,
            size_limit: Some(p.size),
            ..LoopOptions::read_only()
        };
        let device = held.attach(&image, &options);
        let Some(fs) = BlkidProbe::default().probe(&device).unwrap() else {
            assert_eq!(p.number, 3, "only the third partition is empty");
            continue;
        };
        assert_eq!(
            (fs.fs_type, fs.label.as_deref()),
            (FsType::Ext4, Some(["ALPHA", "BETA"][p.number as usize - 1]))
        );
        assert!(fs.uuid.is_some());
        let target = scratch.path().join(format!("drives/gpt/p{}", p.number));
        held.mount(&MountRequest::read_only(&device, &target, fs.fs_type));
        check_read_only_mount(&target, "gpt");
    }
    assert_eq!(KernelLoops::default().find_by_backing_file(&img).unwrap().len(), 4);
    assert_eq!(
        KernelMounter
            .mounts_under(&scratch.path().join("drives/gpt"))
            .unwrap()
            .len(),
        2
    );
    held.release();
    scratch.assert_clean();
}

#[test]
fn offset_and_size_limit() {
    if !enabled("offset_and_size_limit") {
        return;
    }
    let scratch = Scratch::new("offset");
    let inner = fs::read(scratch.fs_image(FsType::Ext4, "INNER")).unwrap();
    let img = scratch.path().join("embedded.bin");
    let mut bytes = vec![0xa5u8; 1 << 20];
    bytes.extend_from_slice(&inner);
    bytes.extend(std::iter::repeat_n(0x5au8, 1 << 20));
    fs::write(&img, &bytes).unwrap();
    let image = OpenImage::open(&img, false).unwrap();
    let options = LoopOptions {
        offset: 1 << 20,
        size_limit: Some(inner.len() as u64),
        ..LoopOptions::read_only()
    };
    let mut held = Held::default();
    let device = held.attach(&image, &options);
    let info = KernelLoops::default().find_by_backing_file(&img).unwrap().remove(0);
    assert_eq!((info.offset, info.size_limit), (1 << 20, inner.len() as u64));
    let name = device.file_name().unwrap().to_str().unwrap().to_owned();
    let sectors: u64 = fs::read_to_string(format!("/sys/block/{name}/size"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(sectors * 512, inner.len() as u64);
    let fs = BlkidProbe::default().probe(&device).unwrap().unwrap();
    assert_eq!((fs.fs_type, fs.label.as_deref()), (FsType::Ext4, Some("INNER")));
    let target = scratch.path().join("drives/offset/p1");
    held.mount(&MountRequest::read_only(&device, &target, FsType::Ext4));
    check_read_only_mount(&target, "offset");
    held.release();
    scratch.assert_clean();
}

/// Exports a converted image through qemu-storage-daemon, attaches the export, mounts and reads it.
fn export_and_mount(scratch: &Scratch, qemu_format: &str, format: ImageFormat) {
    let raw = scratch.fs_image(FsType::Ext4, "EXPORTED");
    let raw_len = fs::metadata(&raw).unwrap().len();
    let img = scratch.convert(&raw, qemu_format);
    let image = OpenImage::open(&img, false).unwrap();
    let info = MagicInspector.inspect(&image).unwrap();
    assert_eq!(info.format, format);
    // VHD rounds the size up to its CHS geometry.
    if format == ImageFormat::Vpc {
        assert!(
            info.virtual_size >= raw_len && info.virtual_size < raw_len + (1 << 20),
            "{info:?}"
        );
    } else {
        assert_eq!(info.virtual_size, raw_len, "{qemu_format}");
    }
    let mut held = Held::default();
    let export_path = scratch.path().join(format!("{qemu_format}.raw"));
    let request = ExportRequest {
        format,
        writable: false,
        export_path: export_path.clone(),
        backing: None,
    };
    let handle = held.export(&image, &request);
    assert!(Path::new(&format!("/proc/{}", handle.pid)).exists());
    assert_eq!(fs::metadata(&export_path).unwrap().len(), info.virtual_size);
    let exported = OpenImage::open(&export_path, false).unwrap();
    let device = held.attach(&exported, &LoopOptions::read_only());
    let fs = BlkidProbe::default().probe(&device).unwrap().unwrap();
    assert_eq!((fs.fs_type, fs.label.as_deref()), (FsType::Ext4, Some("EXPORTED")));
    let target = scratch.path().join(format!("drives/{qemu_format}/p1"));
    held.mount(&MountRequest::read_only(&device, &target, FsType::Ext4));
    check_read_only_mount(&target, &scratch.name);
    drop(exported);
    held.release();
    assert!(!export_path.exists(), "export file removed");
    assert!(
        !Path::new(&format!("/proc/{}", handle.pid)).exists(),
        "export process gone"
    );
    scratch.assert_clean();
}

#[test]
fn qcow2_through_fuse_export() {
    if enabled("qcow2_through_fuse_export") {
        export_and_mount(&Scratch::new("qcow2"), "qcow2", ImageFormat::Qcow2);
    }
}

#[test]
fn vmdk_through_fuse_export() {
    if enabled("vmdk_through_fuse_export") {
        export_and_mount(&Scratch::new("vmdk"), "vmdk", ImageFormat::Vmdk);
    }
}

#[test]
fn vdi_vhdx_vpc_through_fuse_export() {
    if !enabled("vdi_vhdx_vpc_through_fuse_export") {
        return;
    }
    for (q, f) in [
        ("vdi", ImageFormat::Vdi),
        ("vhdx", ImageFormat::Vhdx),
        ("vpc", ImageFormat::Vpc),
    ] {
        export_and_mount(&Scratch::new(q), q, f);
    }
}

#[test]
fn failure_paths_leave_nothing_behind() {
    if !enabled("failure_paths_leave_nothing_behind") {
        return;
    }
    let scratch = Scratch::new("failures");
    let dir = scratch.path();

    // Missing file and directory: refused before anything is acquired.
    let missing = dir.join("missing.img");
    assert!(matches!(OpenImage::open(&missing, false), Err(ImageError::Open { path, .. }) if path == missing));
    assert!(matches!(OpenImage::open(&dir, false), Err(ImageError::NotRegularFile { path }) if path == dir));

    // Not an image / unknown file system: raw bytes attach, probe finds nothing, detach.
    let noise = dir.join("noise.bin");
    fs::write(
        &noise,
        (0..(4u32 << 20))
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let image = OpenImage::open(&noise, false).unwrap();
    assert_eq!(MagicInspector.inspect(&image).unwrap().format, ImageFormat::Raw);
    let mut held = Held::default();
    let device = held.attach(&image, &LoopOptions::read_only());
    assert_eq!(BlkidProbe::default().probe(&device).unwrap(), None);
    held.release();
    assert!(matches!(
        KernelLoops::default().detach(&device),
        Err(LoopError::NotLoop { .. })
    ));

    // A descriptor open for writing is refused for a read-only attach (the kernel would make it writable).
    let writable = OpenImage::open(&noise, true).unwrap();
    assert!(matches!(
        KernelLoops::default().attach(&writable, &LoopOptions::read_only()),
        Err(LoopError::WritableFd { .. })
    ));
    assert!(matches!(
        KernelLoops::default().attach(&image, &LoopOptions::default()),
        Err(LoopError::ReadOnlyFd { .. })
    ));
    scratch.assert_clean();

    // Mount failure (wrong type): the loop device stays for the caller to release; the mount point is removed.
    let ext4 = scratch.fs_image(FsType::Ext4, "X");
    let image = OpenImage::open(&ext4, false).unwrap();
    let mut held = Held::default();
    let device = held.attach(&image, &LoopOptions::read_only());
    let target = dir.join("drives/bad/p1");
    let err = KernelMounter
        .mount(&MountRequest::read_only(&device, &target, FsType::Squashfs))
        .unwrap_err();
    assert!(
        matches!(err, MountError::Mount { ref target, .. } if target == &dir.join("drives/bad/p1")),
        "{err:?}"
    );
    assert!(!target.exists());
    let err = KernelMounter.unmount(&target, UnmountMode::Normal).unwrap_err();
    assert!(matches!(err, MountError::NotMounted { .. }), "{err:?}");
    held.release();
    scratch.assert_clean();

    // Truncated qcow2: a header cut short is refused by the inspector; one cut after the header fails to export.
    let qcow2 = scratch.convert(&ext4, "qcow2");
    let bytes = fs::read(&qcow2).unwrap();
    let short = dir.join("short.qcow2");
    fs::write(&short, &bytes[..20]).unwrap();
    assert!(matches!(
        MagicInspector.inspect(&OpenImage::open(&short, false).unwrap()),
        Err(ImageError::Corrupt {
            format: ImageFormat::Qcow2,
            ..
        })
    ));
    // Truncated qcow2 (cut after the header and the first tables): qemu opens it and reads the missing clusters as
    // zeros, so the export may start but no file system is found; either way everything is released.
    let truncated = dir.join("truncated.qcow2");
    fs::write(&truncated, &bytes[..512]).unwrap();
    // Corrupt qcow2: an impossible cluster size (2^3 bytes); qemu refuses to open it.
    let corrupt = dir.join("corrupt.qcow2");
    let mut bad = bytes.clone();
    bad[20..24].copy_from_slice(&3u32.to_be_bytes());
    fs::write(&corrupt, &bad).unwrap();
    for (img, must_fail) in [(&truncated, false), (&corrupt, true)] {
        let image = OpenImage::open(img, false).unwrap();
        assert_eq!(MagicInspector.inspect(&image).unwrap().format, ImageFormat::Qcow2);
        let export_path = dir.join("bad.raw");
        let request = ExportRequest {
            format: ImageFormat::Qcow2,
            writable: false,
            export_path: export_path.clone(),
            backing: None,
        };
        let mut held = Held::default();
        match QsdFuseExport::default().start(&image, &request) {
            Err(err) => {
                assert!(matches!(err, ExportError::Start { .. }), "{}: {err:?}", img.display());
                assert!(!export_path.exists(), "export file removed after failure");
            }
            Ok(handle) => {
                held.stack.push(Resource::Export(handle));
                assert!(!must_fail, "{} was exported", img.display());
                let exported = OpenImage::open(&export_path, false).unwrap();
                let device = held.attach(&exported, &LoopOptions::read_only());
                assert!(
                    !matches!(BlkidProbe::default().probe(&device), Ok(Some(_))),
                    "{}",
                    img.display()
                );
                drop(exported);
                held.release();
            }
        }
        scratch.assert_clean();
    }
    scratch.assert_clean();
}

fn kernel_has(fs: &str) -> bool {
    fs::read_to_string("/proc/filesystems")
        .unwrap()
        .lines()
        .any(|l| l.split_whitespace().last() == Some(fs))
}

/// vfat and ISO 9660 are detected by their superblocks even where the kernel cannot mount them (this host); there
/// the mount fails with a typed error and leaves nothing, elsewhere the mount is checked like the others.
#[test]
fn vfat_and_iso9660() {
    if !enabled("vfat_and_iso9660") {
        return;
    }
    let scratch = Scratch::new("iso");
    let vfat = scratch.path().join("vfat.img");
    run("mkfs.vfat", &["-n", "CACHEOS", "-C", s(&vfat), "8192"]);
    let iso = scratch.path().join("cd.iso");
    run(
        "xorriso",
        &[
            "-as",
            "mkisofs",
            "-quiet",
            "-V",
            "CACHEOS",
            "-o",
            s(&iso),
            s(&scratch.tree()),
        ],
    );
    for (img, format, fs_type) in [
        (&vfat, ImageFormat::Raw, FsType::Vfat),
        (&iso, ImageFormat::Iso9660, FsType::Iso9660),
    ] {
        let image = OpenImage::open(img, false).unwrap();
        assert_eq!(MagicInspector.inspect(&image).unwrap().format, format);
        let mut held = Held::default();
        let device = held.attach(&image, &LoopOptions::read_only());
        let fs = BlkidProbe::default().probe(&device).unwrap().expect("detected");
        assert_eq!((fs.fs_type, fs.label.as_deref()), (fs_type, Some("CACHEOS")));
        let target = scratch.path().join(format!("drives/{fs_type}/p1"));
        let request = MountRequest::read_only(&device, &target, fs_type);
        if kernel_has(fs_type.kernel_name()) {
            held.mount(&request);
            if fs_type == FsType::Iso9660 {
                check_read_only_mount(&target, "iso");
            }
        } else {
            let err = KernelMounter.mount(&request).unwrap_err();
            assert!(
                matches!(err, MountError::Mount { fs_type: t, .. } if t == fs_type),
                "{err:?}"
            );
            assert!(!target.exists());
        }
        held.release();
        scratch.assert_clean();
    }
}

/// A writable qcow2 export, attached and mounted read-write: a file written there is in the image afterwards.
#[test]
fn qcow2_read_write_export() {
    if !enabled("qcow2_read_write_export") {
        return;
    }
    let scratch = Scratch::new("qcow2rw");
    let raw = scratch.fs_image(FsType::Ext4, "RW");
    let img = scratch.convert(&raw, "qcow2");
    let export_path = scratch.path().join("rw.raw");
    for writable in [true, false] {
        let image = OpenImage::open(&img, writable).unwrap();
        let mut held = Held::default();
        let request = ExportRequest {
            format: ImageFormat::Qcow2,
            writable,
            export_path: export_path.clone(),
            backing: None,
        };
        held.export(&image, &request);
        let exported = OpenImage::open(&export_path, writable).unwrap();
        let options = LoopOptions {
            read_only: !writable,
            ..LoopOptions::default()
        };
        let device = held.attach(&exported, &options);
        let target = scratch.path().join("drives/rw/p1");
        held.mount(&MountRequest {
            read_write: writable,
            ..MountRequest::read_only(&device, &target, FsType::Ext4)
        });
        if writable {
            fs::write(target.join("written.txt"), b"kept\n").unwrap();
        } else {
            assert_eq!(fs::read_to_string(target.join("written.txt")).unwrap(), "kept\n");
            check_read_only_mount(&target, "qcow2rw");
        }
        drop(exported);
        held.release();
        scratch.assert_clean();
    }
    run("qemu-img", &["check", "-q", s(&img)]);
}
