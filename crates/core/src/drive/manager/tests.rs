//! Tests of the drive manager against the recording fakes: exact plans, errors naming what was wrong, nothing
//! left behind on any failure path, and reconciliation after crashes and reboots.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::*;
use crate::clock::FakeClock;
use crate::drive::fake::{Call, FailOn, FakeDrives};
use crate::store::MemoryStore;

struct Rig {
    _dir: tempfile::TempDir,
    root: PathBuf,
    fake: FakeDrives,
    store: Arc<MemoryStore>,
    mgr: DriveManager,
    events: EventBus,
}

fn rig() -> Rig {
    rig_with(|_| {})
}

fn rig_with(f: impl FnOnce(&mut DriveConfig)) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let mut cfg = DriveConfig::new(&root.join("state"), &root.join("run"));
    f(&mut cfg);
    std::fs::create_dir_all(&cfg.images_dir).unwrap();
    let fake = FakeDrives::new();
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(FakeClock::at(1_000));
    let events = EventBus::new(64, clock.clone());
    let mgr = DriveManager::new(cfg, DriveDeps::fake(&fake), store.clone(), events.clone(), clock);
    Rig {
        _dir: dir,
        root,
        fake,
        store,
        mgr,
        events,
    }
}

impl Rig {
    fn image(&self, name: &str, len: u64) -> PathBuf {
        let p = self.mgr.config().images_dir.join(name);
        std::fs::File::create(&p).unwrap().set_len(len).unwrap();
        p
    }
    fn ext4(&self, device: &str, label: Option<&str>) {
        self.fake.set_filesystem(
            device,
            FsInfo {
                fs_type: FsType::Ext4,
                label: label.map(str::to_owned),
                uuid: Some("u-1".into()),
            },
        );
    }
    fn mounts(&self) -> PathBuf {
        self.mgr.config().mount_dir.clone()
    }
    fn assert_clean(&self) {
        assert_eq!(self.fake.leftovers(), Vec::<String>::new());
        assert!(self.store.list_records(RECORD_KIND).unwrap().is_empty(), "records left");
    }
    fn plan_since(&self, start: usize) -> Vec<String> {
        self.fake.plan()[start..].to_vec()
    }
}

fn rel(r: &Rig, p: &str) -> String {
    p.replace(&r.root.display().to_string(), "")
}

#[test]
fn attach_raw_plans_read_only_noexec_mount_and_records_it() {
    let r = rig();
    let img = r.image("Debian 12.iso", 4 << 20);
    r.ext4("/dev/loop0", Some("DATA"));
    let mut rx = r.events.subscribe();
    let info = r.mgr.attach("uid 0", &AttachArgs::new("Debian 12.iso")).unwrap();
    assert_eq!(info.name, "debian-12");
    let plan: Vec<String> = r.fake.plan().iter().map(|p| rel(&r, p)).collect();
    assert_eq!(
        plan,
        vec![
            "inspect /state/images/Debian 12.iso",
            "attach /state/images/Debian 12.iso to /dev/loop0 ro",
            "read partition table of /dev/loop0",
            "probe /dev/loop0",
            "mount /dev/loop0 at /run/drives/debian-12/DATA (ext4) with nosuid,nodev,noexec,ro",
        ]
    );
    assert_eq!(info.image, img);
    assert_eq!(info.state, DriveState::Attached);
    assert_eq!(info.attached_by, "uid 0");
    assert_eq!(info.partitions[0].mount_point, Some(r.mounts().join("debian-12/DATA")));
    assert_eq!(info.partitions[0].fs_type.as_deref(), Some("ext4"));
    assert_eq!(info.partitions[0].free, Some(99 << 20));
    let e1 = rx.try_recv().unwrap();
    assert!(matches!(
        e1.kind,
        EventKind::Drive {
            action: DriveAction::Attached,
            ..
        }
    ));
    let e2 = rx.try_recv().unwrap();
    assert!(matches!(
        e2.kind,
        EventKind::Drive {
            action: DriveAction::Mounted,
            ..
        }
    ));
    assert_eq!(r.mgr.list().unwrap().len(), 1);

    // The same inode under another name (a hard link) is refused, and so is the same name.
    std::fs::hard_link(&img, r.mgr.config().images_dir.join("link.img")).unwrap();
    let e = r.mgr.attach("uid 0", &AttachArgs::new("link.img")).unwrap_err();
    assert!(e.to_string().contains("already attached as drive \"debian-12\""), "{e}");
    let other = r.image("other.img", 1 << 20);
    let mut a = AttachArgs::new(other.to_string_lossy());
    a.name = Some("debian-12".into());
    let e = r.mgr.attach("uid 0", &a).unwrap_err();
    assert_eq!(e.to_string(), "a drive named \"debian-12\" already exists");

    let start = r.fake.calls().len();
    let msg = r
        .mgr
        .detach(&DetachArgs {
            name: "debian-12".into(),
            force: false,
        })
        .unwrap();
    assert_eq!(msg, "drive debian-12 detached");
    let plan: Vec<String> = r.plan_since(start).iter().map(|p| rel(&r, p)).collect();
    assert_eq!(plan, vec!["unmount /run/drives/debian-12/DATA", "detach /dev/loop0"]);
    r.assert_clean();
}

#[test]
fn partitions_are_offset_loops_and_unknown_file_systems_are_reported() {
    let r = rig();
    r.image("disk.img", 64 << 20);
    r.fake.set_table(
        "/dev/loop0",
        PartitionTable {
            label: "gpt".into(),
            partitions: vec![
                TableEntry {
                    number: 1,
                    start: 1 << 20,
                    size: 8 << 20,
                    type_id: "esp".into(),
                    name: Some("EFI".into()),
                    uuid: None,
                },
                TableEntry {
                    number: 2,
                    start: 9 << 20,
                    size: 8 << 20,
                    type_id: "linux".into(),
                    name: None,
                    uuid: None,
                },
                TableEntry {
                    number: 3,
                    start: 17 << 20,
                    size: 8 << 20,
                    type_id: "swap".into(),
                    name: None,
                    uuid: None,
                },
            ],
        },
    );
    r.fake.set_filesystem(
        "/dev/loop1",
        FsInfo {
            fs_type: FsType::Vfat,
            label: Some("ESP".into()),
            uuid: None,
        },
    );
    r.ext4("/dev/loop2", None);
    let mut a = AttachArgs::new("disk.img");
    a.read_write = true;
    let info = r.mgr.attach("uid 0", &a).unwrap();
    let plan: Vec<String> = r.fake.plan().iter().map(|p| rel(&r, p)).collect();
    assert!(plan.contains(&"attach /state/images/disk.img to /dev/loop1 rw,offset=1048576,sizelimit=8388608".into()));
    assert!(plan.contains(&"mount /dev/loop1 at /run/drives/disk/ESP (vfat) with nosuid,nodev,noexec,rw".into()));
    assert!(plan.contains(&"mount /dev/loop2 at /run/drives/disk/p2 (ext4) with nosuid,nodev,noexec,rw".into()));
    assert_eq!(info.loop_devices.len(), 4);
    let swap = &info.partitions[2];
    assert_eq!((swap.number, swap.mount_point.as_ref()), (Some(3), None));
    assert_eq!(swap.note.as_deref(), Some("no file system CacheOS recognises"));
    r.mgr
        .detach(&DetachArgs {
            name: "disk".into(),
            force: false,
        })
        .unwrap();
    r.assert_clean();
}

#[test]
fn every_failure_path_releases_what_was_acquired() {
    type Setup = fn(&Rig);
    let cases: Vec<(&str, Setup, &str)> = vec![
        (
            "mount failure",
            |r| {
                r.ext4("/dev/loop0", None);
                r.fake.fail_next(FailOn::Mount, "EINVAL");
            },
            "cannot mount /dev/loop0 (ext4)",
        ),
        (
            "probe failure",
            |r| r.fake.fail_next(FailOn::Probe, "blkid crashed"),
            "probing /dev/loop0 failed",
        ),
        (
            "table failure",
            |r| r.fake.fail_next(FailOn::ReadTable, "sfdisk"),
            "reading the partition table",
        ),
        (
            "loop failure",
            |r| r.fake.fail_next(FailOn::LoopAttach, "EBUSY"),
            "cannot attach",
        ),
        (
            "unknown file system",
            |_| {},
            "no file system CacheOS can mount was found",
        ),
        (
            "export failure",
            |r| {
                r.fake.set_image(
                    r.mgr.config().images_dir.join("a.img"),
                    ImageInfo {
                        format: ImageFormat::Qcow2,
                        virtual_size: 1 << 30,
                        file_size: 8 << 20,
                    },
                );
                r.fake.fail_next(FailOn::ExportStart, "qsd died");
            },
            "export of",
        ),
        (
            "second partition fails",
            |r| {
                let e = |n, start| TableEntry {
                    number: n,
                    start,
                    size: 1 << 20,
                    type_id: "83".into(),
                    name: None,
                    uuid: None,
                };
                r.fake.set_table(
                    "/dev/loop0",
                    PartitionTable {
                        label: "dos".into(),
                        partitions: vec![e(1, 1 << 20), e(2, 2 << 20)],
                    },
                );
                r.ext4("/dev/loop1", None);
                r.fake.fail_next(FailOn::Mount, "EIO");
            },
            "cannot mount /dev/loop1",
        ),
        (
            "inspect failure",
            |r| r.fake.fail_next(FailOn::Inspect, "EIO"),
            "cannot read image",
        ),
    ];
    for (what, setup, msg) in cases {
        let r = rig();
        r.image("a.img", 8 << 20);
        setup(&r);
        let e = r.mgr.attach("uid 0", &AttachArgs::new("a.img")).unwrap_err();
        assert!(e.to_string().contains(msg), "{what}: {e}");
        r.assert_clean();
        let exports: Vec<_> = std::fs::read_dir(&r.mgr.config().export_dir)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(exports.is_empty(), "{what}: export files left: {exports:?}");
    }
}

#[test]
fn bad_paths_and_names_are_refused_naming_the_problem() {
    let r = rig();
    std::fs::create_dir(r.mgr.config().images_dir.join("dir.iso")).unwrap();
    let outside = r.root.join("outside.img");
    std::fs::write(&outside, b"x").unwrap();
    let cases = [
        (AttachArgs::new("missing.iso"), "does not exist"),
        (AttachArgs::new("dir.iso"), "is a directory"),
        (
            AttachArgs::new(outside.to_string_lossy()),
            "is not inside an allowed place",
        ),
        (AttachArgs::new("rel/x.img"), "must be absolute or a bare file name"),
        (AttachArgs::new("/media/../etc/passwd"), "must not contain '..'"),
    ];
    for (args, msg) in cases {
        let e = r.mgr.attach("uid 0", &args).unwrap_err();
        assert!(e.to_string().contains(msg), "{}: {e}", args.path);
    }
    r.image("ok.img", 1 << 20);
    let mut a = AttachArgs::new("ok.img");
    a.name = Some("Bad Name".into());
    let e = r.mgr.attach("uid 0", &a).unwrap_err();
    assert!(e.to_string().starts_with("invalid name: \"Bad Name\""), "{e}");
    let mut a = AttachArgs::new("ok.img");
    a.offset = 2 << 20;
    let e = r.mgr.attach("uid 0", &a).unwrap_err();
    assert!(e.to_string().starts_with("invalid offset"), "{e}");
    r.assert_clean();
    assert!(r.fake.calls().iter().all(|c| !matches!(c, Call::LoopAttach { .. })));
}

#[test]
fn names_derive_from_file_names() {
    assert_eq!(
        name_from_path(Path::new("/x/Debian-12.5.0-amd64-netinst.iso")),
        "debian-12.5.0-amd64-netinst"
    );
    assert_eq!(name_from_path(Path::new("/x/My Disk (copy).VDI")), "my-disk-copy");
    assert_eq!(name_from_path(Path::new("/x/___.img")), "drive");
    assert_eq!(name_from_path(Path::new("/x/.img")), "drive");
    assert_eq!(name_from_path(Path::new("/x/Ünïcode.qcow2")), "n-code");
    assert!(validate_name("a").is_ok());
    assert!(validate_name("-a").is_err());
    assert!(validate_name(&"a".repeat(49)).is_err());
}

fn attach_ext4(r: &Rig, name: &str, rw: bool) -> DriveInfo {
    let img = r.image(&format!("{name}.img"), 8 << 20);
    r.fake.set_content(
        img,
        0,
        FsInfo {
            fs_type: FsType::Ext4,
            label: None,
            uuid: None,
        },
    );
    let mut a = AttachArgs::new(format!("{name}.img"));
    a.read_write = rw;
    r.mgr.attach("uid 0", &a).unwrap()
}

#[test]
fn busy_drives_are_refused_naming_the_holder_and_force_detaches_lazily() {
    let r = rig();
    let info = attach_ext4(&r, "data", false);
    let mp = info.partitions[0].mount_point.clone().unwrap();
    r.fake.set_holders(
        &mp,
        vec![Holder {
            pid: 4242,
            command: "bash".into(),
            path: mp.clone(),
        }],
    );
    let detach = |force| DetachArgs {
        name: "data".into(),
        force,
    };
    let e = r.mgr.detach(&detach(false)).unwrap_err();
    assert!(e.to_string().contains("pid 4242 (bash) holds"), "{e}");
    assert_eq!(r.fake.leftovers().len(), 2, "nothing released");
    assert_eq!(r.mgr.info("data").unwrap().state, DriveState::Attached);

    // A running sandbox binding the drive blocks it too.
    r.fake.set_holders(&mp, vec![]);
    r.store
        .put_record(
            "sandbox",
            "py",
            &serde_json::json!({"name": "py", "state": "running", "binds": [{"drive": "data", "read_write": false}]}),
        )
        .unwrap();
    let e = r.mgr.detach(&detach(false)).unwrap_err();
    assert!(e.to_string().contains("bound into running sandbox py"), "{e}");
    assert_eq!(r.mgr.info("data").unwrap().used_by, vec!["py".to_string()]);

    let start = r.fake.calls().len();
    let msg = r.mgr.detach(&detach(true)).unwrap();
    assert!(msg.contains("forced"), "{msg}");
    assert!(r.plan_since(start)[0].ends_with("lazily"), "{:?}", r.plan_since(start));
    r.assert_clean();
}

#[test]
fn snapshot_writes_an_overlay_and_discard_restores_the_read_only_image() {
    let r = rig();
    let info = attach_ext4(&r, "base", false);
    let start = r.fake.calls().len();
    let snap = r.mgr.snapshot("base").unwrap();
    let plan = r.plan_since(start);
    let overlay = r.mgr.config().snapshot_dir.join("base.qcow2");
    assert!(plan[0].starts_with("create overlay"), "{plan:?}");
    assert!(plan.iter().any(|p| p.starts_with("unmount")), "{plan:?}");
    let export = r
        .fake
        .calls()
        .into_iter()
        .find_map(|c| match c {
            Call::ExportStart { image, request } => Some((image, request)),
            _ => None,
        })
        .unwrap();
    assert_eq!(export.0, overlay);
    assert!(export.1.writable);
    let backing = export.1.backing.unwrap();
    assert!(
        backing.path.starts_with(format!("/proc/{}/fd/", std::process::id())),
        "{backing:?}"
    );
    assert_eq!(backing.format, ImageFormat::Raw);
    assert!(
        plan.iter().any(|p| p.ends_with("(ext4) with nosuid,nodev,noexec,rw")),
        "{plan:?}"
    );
    assert!(snap.snapshot.is_some() && !snap.read_write);
    assert!(overlay.exists());

    // Committing needs a read-write drive.
    let e = r
        .mgr
        .commit(&CommitArgs {
            name: "base".into(),
            confirm: true,
        })
        .unwrap_err();
    assert!(e.to_string().contains("attached read-only"), "{e}");
    // Detach refuses to lose the snapshot silently.
    let e = r
        .mgr
        .detach(&DetachArgs {
            name: "base".into(),
            force: false,
        })
        .unwrap_err();
    assert!(e.to_string().contains("uncommitted snapshot"), "{e}");

    let back = r.mgr.discard("base").unwrap();
    assert!(back.snapshot.is_none());
    assert!(!overlay.exists());
    assert_eq!(back.partitions[0].mount_point, info.partitions[0].mount_point);
    assert!(r.fake.plan().last().unwrap().ends_with("noexec,ro"));
    assert_eq!(r.fake.leftovers().len(), 2);
}

#[test]
fn commit_needs_confirmation_and_writes_into_the_image() {
    let r = rig();
    attach_ext4(&r, "rw", true);
    r.mgr.snapshot("rw").unwrap();
    let e = r
        .mgr
        .commit(&CommitArgs {
            name: "rw".into(),
            confirm: false,
        })
        .unwrap_err();
    assert!(e.to_string().starts_with("invalid confirm"), "{e}");
    let start = r.fake.calls().len();
    let info = r
        .mgr
        .commit(&CommitArgs {
            name: "rw".into(),
            confirm: true,
        })
        .unwrap();
    assert!(info.snapshot.is_none());
    assert!(r.plan_since(start).iter().any(|p| p.starts_with("commit overlay")));
    assert!(!r.mgr.config().snapshot_dir.join("rw.qcow2").exists());
}

#[test]
fn create_formats_through_a_temporary_loop_and_attaches() {
    let r = rig();
    r.ext4("/dev/loop1", Some("WORK"));
    let created = r
        .mgr
        .create(
            "uid 0",
            &CreateArgs {
                path: "work.img".into(),
                size: 64 << 20,
                format: NewFormat::Raw,
                fs: Some(NewFs::Ext4),
                label: Some("WORK".into()),
                attach: true,
                name: None,
            },
        )
        .unwrap();
    assert_eq!(created.image.size, 64 << 20);
    let plan: Vec<String> = r.fake.plan().iter().map(|p| rel(&r, p)).collect();
    assert_eq!(plan[0], "attach /state/images/work.img to /dev/loop0 rw");
    assert_eq!(plan[1], "mkfs ext4 on /dev/loop0 labelled WORK");
    assert_eq!(plan[2], "detach /dev/loop0");
    let drive = created.drive.unwrap();
    assert!(drive.read_write);
    assert_eq!(drive.partitions[0].mount_point, Some(r.mounts().join("work/WORK")));

    // An existing file is never overwritten; a failed mkfs removes the new file.
    let e = r
        .mgr
        .create(
            "uid 0",
            &CreateArgs {
                path: "work.img".into(),
                size: 1 << 20,
                format: NewFormat::Raw,
                fs: None,
                label: None,
                attach: false,
                name: None,
            },
        )
        .unwrap_err();
    assert!(e.to_string().contains("already exists"), "{e}");
    r.fake.fail_next(FailOn::Tool, "mkfs.xfs: bad");
    let e = r
        .mgr
        .create(
            "uid 0",
            &CreateArgs {
                path: "bad.qcow2".into(),
                size: 512 << 20,
                format: NewFormat::Qcow2,
                fs: Some(NewFs::Xfs),
                label: None,
                attach: false,
                name: None,
            },
        )
        .unwrap_err();
    assert!(e.to_string().contains("bad.qcow2"), "{e}");
    assert!(!r.mgr.config().images_dir.join("bad.qcow2").exists());
    assert_eq!(r.fake.leftovers().len(), 2, "only the attached work drive remains");
    let e = r
        .mgr
        .create(
            "uid 0",
            &CreateArgs {
                path: "small.img".into(),
                size: 10 << 20,
                format: NewFormat::Raw,
                fs: Some(NewFs::Xfs),
                label: None,
                attach: false,
                name: None,
            },
        )
        .unwrap_err();
    assert_eq!(e.to_string(), "invalid size: xfs needs at least 300 MiB");
}

#[test]
fn reconcile_cleans_half_attached_keeps_intact_and_reattaches_persistent_drives() {
    let r = rig();
    attach_ext4(&r, "keep", false);
    attach_ext4(&r, "pers", false);
    r.mgr
        .persist(&PersistArgs {
            name: "pers".into(),
            persistent: true,
        })
        .unwrap();
    // A crash during attach: the record says attaching; a loop device is held but not yet recorded.
    let half = r.image("half.img", 8 << 20);
    let img = OpenImage::open(&half, false).unwrap();
    let dev = r.fake.loops().attach(&img, &LoopOptions::read_only()).unwrap();
    let meta = img.file.metadata().unwrap();
    let rec = DriveRecord {
        name: "half".into(),
        image: half.clone(),
        dev: meta.dev(),
        ino: meta.ino(),
        format: ImageFormat::Raw,
        virtual_size: 8 << 20,
        file_size: 8 << 20,
        read_write: false,
        exec: false,
        partscan: false,
        offset: 0,
        size_limit: None,
        mount: true,
        state: DriveState::Attaching,
        persistent: false,
        attached_by: "uid 0".into(),
        attached_ms: 1,
        export: None,
        loops: vec![],
        volumes: vec![],
        snapshot: None,
        notes: vec![],
    };
    r.store
        .put_record(RECORD_KIND, "half", &serde_json::to_value(&rec).unwrap())
        .unwrap();
    let report = r.mgr.reconcile().unwrap();
    assert_eq!(report.kept, vec!["keep".to_string(), "pers".to_string()]);
    assert_eq!(report.removed, vec!["half".to_string()]);
    assert!(!r.fake.leftovers().contains(&format!("loop {}", dev.display())));

    // After a reboot nothing is attached: the plain drive is forgotten, the persistent one comes back.
    r.fake.reboot();
    let report = r.mgr.reconcile().unwrap();
    assert_eq!(report.removed, vec!["keep".to_string()]);
    assert_eq!(report.reattached, vec!["pers".to_string()]);
    let pers = r.mgr.info("pers").unwrap();
    assert_eq!(pers.state, DriveState::Attached);
    assert!(pers.partitions[0].mount_point.is_some());
    assert_eq!(r.fake.leftovers().len(), 2);

    // A persistent drive whose image went away stays recorded as detached, with the reason.
    r.fake.reboot();
    std::fs::remove_file(r.mgr.config().images_dir.join("pers.img")).unwrap();
    let report = r.mgr.reconcile().unwrap();
    assert_eq!(report.failed, vec!["pers".to_string()]);
    let pers = r.mgr.info("pers").unwrap();
    assert_eq!(pers.state, DriveState::Detached);
    assert!(pers.notes[0].contains("does not exist"), "{:?}", pers.notes);
    r.mgr
        .detach(&DetachArgs {
            name: "pers".into(),
            force: false,
        })
        .unwrap();
    r.assert_clean();
}

#[test]
fn reconcile_after_a_reboot_leaves_a_reused_loop_device_to_its_new_owner() {
    let r = rig();
    attach_ext4(&r, "old", false);
    let recorded = r.mgr.info("old").unwrap();
    let before: Vec<String> = r.fake.leftovers();
    assert!(!before.is_empty());
    // A reboot frees every device; someone else then takes the same device number for an unrelated file.
    r.fake.reboot();
    let other = r.image("someone-else.img", 8 << 20);
    let img = OpenImage::open(&other, false).unwrap();
    let dev = r.fake.loops().attach(&img, &LoopOptions::read_only()).unwrap();
    assert!(
        before.iter().any(|l| l.contains(&dev.display().to_string())),
        "the fake reuses the device number: {before:?} vs {}",
        dev.display()
    );
    let report = r.mgr.reconcile().unwrap();
    assert_eq!(report.removed, vec!["old".to_string()], "{recorded:?}");
    assert_eq!(r.fake.leftovers(), vec![format!("loop {}", dev.display())]);
}

#[test]
fn files_lists_below_the_mount_point_only() {
    let r = rig();
    attach_ext4(&r, "f", false);
    let e = r
        .mgr
        .files(&FilesArgs {
            name: "f".into(),
            path: "../../etc".into(),
            volume: None,
        })
        .unwrap_err();
    assert!(e.to_string().contains("without '..'"), "{e}");
    let e = r
        .mgr
        .files(&FilesArgs {
            name: "f".into(),
            path: String::new(),
            volume: Some("nope".into()),
        })
        .unwrap_err();
    assert!(e.to_string().contains("no mounted file system \"nope\""), "{e}");
    let imgs = r.mgr.images().unwrap();
    assert_eq!(imgs.len(), 1);
    assert_eq!(imgs[0].attached_as.as_deref(), Some("f"));
}

fn upload_args(name: &str, size: Option<u64>) -> UploadArgs {
    UploadArgs {
        name: name.into(),
        size,
    }
}

fn images_dir_names(r: &Rig) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(&r.mgr.config().images_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn upload_stores_the_bytes_with_their_sha256_and_is_listed() {
    let r = rig();
    let mut rx = r.events.subscribe();
    let data = b"abc".repeat(100_000);
    let up = r
        .mgr
        .upload(
            "web token",
            &upload_args("disk.img", Some(data.len() as u64)),
            &mut &data[..],
        )
        .unwrap();
    assert_eq!((up.name.as_str(), up.size), ("disk.img", 300_000));
    assert_eq!(up.path, r.mgr.config().images_dir.join("disk.img"));
    assert_eq!(std::fs::read(&up.path).unwrap(), data);
    // `python3 -c 'import hashlib; print(hashlib.sha256(b"abc" * 100000).hexdigest())'`
    assert_eq!(
        up.sha256,
        "a77aedfe2e4a7232ea628a71745a966224c4521d93134b993cde5b65ea2f6e3c"
    );
    // An empty input hashes to the well-known empty digest.
    let empty = r
        .mgr
        .upload("web token", &upload_args("empty.img", None), &mut &b""[..])
        .unwrap();
    assert_eq!(
        empty.sha256,
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(images_dir_names(&r), ["disk.img", "empty.img"]);
    let listed: Vec<String> = r.mgr.images().unwrap().into_iter().map(|i| i.name).collect();
    assert_eq!(listed, ["disk.img", "empty.img"]);
    assert!(matches!(
        rx.try_recv().unwrap().kind,
        EventKind::Drive {
            action: DriveAction::Created,
            ..
        }
    ));
}

#[test]
fn upload_over_the_limit_leaves_no_file() {
    let r = rig_with(|c| c.max_upload_bytes = 1000);
    let data = vec![7u8; 1001];
    // Announced too big: refused before anything is written.
    let e = r
        .mgr
        .upload("t", &upload_args("big.img", Some(1001)), &mut &data[..])
        .unwrap_err();
    assert!(e.to_string().contains("upload limit of 1000 bytes"), "{e}");
    // Not announced: refused when the 1001st byte arrives.
    let e = r
        .mgr
        .upload("t", &upload_args("big.img", None), &mut &data[..])
        .unwrap_err();
    assert!(matches!(e, DriveError::InvalidArgument { field: "size", .. }), "{e}");
    assert_eq!(images_dir_names(&r), Vec::<String>::new());
    // Exactly the limit is fine.
    r.mgr
        .upload("t", &upload_args("ok.img", None), &mut &data[..1000])
        .unwrap();
    assert_eq!(images_dir_names(&r), ["ok.img"]);
}

/// A reader that gives some bytes and then fails, like a client that goes away.
struct Aborting(usize);

impl std::io::Read for Aborting {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.0 == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "client went away",
            ));
        }
        let n = self.0.min(buf.len()).min(4096);
        buf[..n].fill(1);
        self.0 -= n;
        Ok(n)
    }
}

#[test]
fn upload_interrupted_or_short_leaves_no_file() {
    let r = rig();
    let e = r
        .mgr
        .upload("t", &upload_args("part.img", None), &mut Aborting(50_000))
        .unwrap_err();
    assert!(matches!(e, DriveError::Io { .. }), "{e}");
    // The body ended before the announced length.
    let e = r
        .mgr
        .upload("t", &upload_args("part.img", Some(10)), &mut &b"12345"[..])
        .unwrap_err();
    assert!(e.to_string().contains("ended after 5 of 10 bytes"), "{e}");
    assert_eq!(images_dir_names(&r), Vec::<String>::new());
}

#[test]
fn upload_never_replaces_a_file_and_checks_the_name() {
    let r = rig();
    r.image("taken.img", 4096);
    let e = r
        .mgr
        .upload("t", &upload_args("taken.img", None), &mut &b"new"[..])
        .unwrap_err();
    assert!(matches!(e, DriveError::Path(PathError::Exists { .. })), "{e}");
    assert_eq!(
        std::fs::metadata(r.mgr.config().images_dir.join("taken.img"))
            .unwrap()
            .len(),
        4096
    );
    assert_eq!(images_dir_names(&r), ["taken.img"]);
    let long = "x".repeat(129);
    for bad in ["", "../x.img", "a/b.img", ".hidden", long.as_str(), "tab\t.img"] {
        let e = r.mgr.upload("t", &upload_args(bad, None), &mut &b"x"[..]).unwrap_err();
        assert!(
            matches!(e, DriveError::InvalidArgument { field: "name", .. }),
            "{bad:?}: {e}"
        );
    }
    assert_eq!(images_dir_names(&r), ["taken.img"]);
}

#[test]
fn publish_refuses_to_replace_in_plain_paths() {
    let r = rig();
    let dir = r.mgr.config().images_dir.clone();
    std::fs::write(dir.join("a"), "a").unwrap();
    std::fs::write(dir.join("b"), "b").unwrap();
    let roots = std::slice::from_ref(&dir);
    let e = fake::PlainPaths
        .publish(&dir.join("a"), &dir.join("b"), roots)
        .unwrap_err();
    assert!(matches!(e, PathError::Exists { .. }), "{e}");
    assert_eq!(std::fs::read_to_string(dir.join("b")).unwrap(), "b");
    fake::PlainPaths.publish(&dir.join("a"), &dir.join("c"), roots).unwrap();
    assert_eq!(images_dir_names(&r), ["b", "c"]);
}
