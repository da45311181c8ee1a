//! Host tests of file system image templates: squashfs and erofs images built by the test (squashfs-tools,
//! erofs-utils) are found and probed for an init by `templates::scan_dir` and mounted by `OverlayRoots` from an auto-clearing read-only loop device under a writable
//! overlay; release leaves no mount and no loop device behind. They need root and run only with
//! CACHEOS_INTEGRATION=1; with it set and no root they fail instead of skipping.

use std::fs;
use std::path::Path;
use std::process::Command;

use cacheos_core::sandbox::{RootPreparer, RootSource, TemplateKind, Volatile};
use cacheos_sys::drive::mount::parse_mountinfo;
use cacheos_sys::sandbox::templates::scan_dir;
use cacheos_sys::sandbox::OverlayRoots;

fn enabled(name: &str) -> bool {
    if std::env::var_os("CACHEOS_INTEGRATION").is_none() {
        eprintln!("{name}: skipped; set CACHEOS_INTEGRATION=1 (scripts/test does) to run host template tests");
        return false;
    }
    assert!(
        rustix::process::geteuid().is_root(),
        "{name}: host template tests need root (CACHEOS_INTEGRATION is set)"
    );
    true
}

/// (target, fs type, source) of every mount below `prefix`.
fn mounts_below(prefix: &Path) -> Vec<(String, String, String)> {
    parse_mountinfo(&fs::read_to_string("/proc/self/mountinfo").unwrap())
        .into_iter()
        .filter(|m| m.target.starts_with(prefix))
        .map(|m| (m.target.display().to_string(), m.fs_type, m.source))
        .collect()
}

/// Loop devices whose backing file is `image`.
fn loops_of(image: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in fs::read_dir("/sys/block").unwrap().flatten() {
        let backing = e.path().join("loop/backing_file");
        if let Ok(b) = fs::read_to_string(&backing) {
            if Path::new(b.trim_end()) == image {
                out.push(e.file_name().to_string_lossy().into_owned());
            }
        }
    }
    out
}

#[test]
fn squashfs_templates_are_mounted_under_an_overlay_and_released() {
    if !enabled("squashfs_templates_are_mounted_under_an_overlay_and_released") {
        return;
    }
    let dir = tempfile::Builder::new().prefix("cacheos-template-").tempdir().unwrap();
    let base = dir.path().canonicalize().unwrap();
    let tree = base.join("tree");
    fs::create_dir_all(tree.join("usr/bin")).unwrap();
    fs::create_dir_all(tree.join("etc")).unwrap();
    fs::write(tree.join("etc/os-release"), "ID=test\n").unwrap();
    let templates = base.join("templates");
    fs::create_dir(&templates).unwrap();
    let image = templates.join("deb.squashfs");
    let status = Command::new("mksquashfs")
        .arg(&tree)
        .arg(&image)
        .args(["-noappend", "-quiet", "-no-progress", "-comp", "xz"])
        .status()
        .expect("mksquashfs (squashfs-tools) must be installed");
    assert!(status.success());
    fs::write(templates.join("deb.description"), "a test tree\n").unwrap();

    // Probed: no init in the tree, so it runs sleep; the probe mount is gone again.
    let probe = base.join("probe");
    let found = scan_dir(&templates, Some(&probe));
    assert_eq!(found.len(), 1, "{found:?}");
    let template = &found[0];
    assert_eq!((template.name.as_str(), template.kind), ("deb", TemplateKind::FsImage));
    assert!(
        template.description.starts_with("a test tree (squashfs, "),
        "{}",
        template.description
    );
    assert_eq!(template.command.as_ref().map(|c| c[0].as_str()), Some("/usr/bin/sleep"));
    assert!(mounts_below(&probe).is_empty());
    assert!(loops_of(&image).is_empty());

    // An image with systemd as init is booted.
    let booted_tree = base.join("booted-tree");
    fs::create_dir_all(booted_tree.join("usr/lib/systemd")).unwrap();
    fs::write(booted_tree.join("usr/lib/systemd/systemd"), "").unwrap();
    let booted_dir = base.join("booted");
    fs::create_dir(&booted_dir).unwrap();
    let booted = booted_dir.join("os.erofs");
    let status = Command::new("mkfs.erofs")
        .arg(&booted)
        .arg(&booted_tree)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("mkfs.erofs (erofs-utils) must be installed");
    assert!(status.success());
    let found = scan_dir(&booted_dir, Some(&probe));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].command, None, "booted: {found:?}");
    assert!(found[0].description.contains("(erofs, "), "{}", found[0].description);
    assert!(mounts_below(&probe).is_empty());
    assert!(loops_of(&booted).is_empty());

    let (run, state) = (base.join("run"), base.join("state"));
    let roots = OverlayRoots::new(&run, &state);
    for (name, ephemeral) in [("eph", true), ("keep", false)] {
        let prepared = roots.prepare(name, template, ephemeral).unwrap();
        let root = run.join(name).join("root");
        assert_eq!(prepared.source, RootSource::Directory(root.clone()));
        assert_eq!(prepared.volatile, Volatile::No);
        let mounts = mounts_below(&run.join(name));
        assert_eq!(mounts.len(), 2, "{mounts:?}");
        assert_eq!(mounts[0].0, run.join(name).join("lower").display().to_string());
        assert_eq!(mounts[0].1, "squashfs");
        assert!(mounts[0].2.starts_with("/dev/loop"), "{mounts:?}");
        assert_eq!(mounts[1].1, "overlay");
        assert_eq!(fs::read_to_string(root.join("etc/os-release")).unwrap(), "ID=test\n");
        // Writable through the overlay; the image and the lower mount stay as they were.
        fs::write(root.join("etc/hostname"), "box\n").unwrap();
        assert!(fs::write(run.join(name).join("lower/etc/x"), "").is_err());
        assert_eq!(loops_of(&image).len(), 1);

        roots.release(name).unwrap();
        assert!(mounts_below(&run).is_empty());
        assert!(!run.join(name).exists());
        assert!(
            loops_of(&image).is_empty(),
            "the loop device is auto-cleared with its mount"
        );
        // A persistent sandbox keeps its writable layer.
        assert_eq!(state.join(name).join("upper/etc/hostname").exists(), !ephemeral);
    }
    roots.remove_data("keep").unwrap();
    assert!(!state.join("keep").exists());

    // A file that is not an image is refused, with nothing left behind.
    let bogus = templates.join("bogus.squashfs");
    fs::write(&bogus, vec![0u8; 8192]).unwrap();
    let mut t = template.clone();
    t.path = bogus;
    let err = roots.prepare("bad", &t, true).unwrap_err();
    assert!(err.to_string().contains("squashfs or erofs image"), "{err}");
    assert!(!run.join("bad").exists());
    assert!(mounts_below(&run).is_empty());
}
