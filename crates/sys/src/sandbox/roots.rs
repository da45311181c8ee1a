//! Sandbox roots ([`OverlayRoots`]): an overlayfs over a directory template (or over a squashfs/erofs template image
//! mounted read-only for the sandbox), a small writable skeleton root with the appliance's `/usr` bound read-only
//! for the host template, nspawn's overlay mode for disk images; runtime state under a run directory and persistent
//! data under a state directory.
//!
//! Layout for sandbox `NAME`:
//! - `<run_dir>/NAME/`: exists while a root is prepared (its presence is what [`RootPreparer::prepared`] lists);
//!   `root/` is the overlay mount point (directory and image templates) or the skeleton root of an ephemeral
//!   host-template sandbox; `upper/` and `work/` hold the writable layer of an ephemeral sandbox; `lower/` is where a
//!   file system image template is mounted (read-only, from an auto-clearing loop device).
//! - `<state_dir>/NAME/`: persistent data: `upper/` + `work/` (directory and image templates) or `root/` (the
//!   skeleton root of a host-template sandbox, everything but `/usr`).
//!
//! The host template's skeleton holds what a merged-/usr system keeps outside `/usr`: the `bin`/`lib`/… links of
//! the template, an `/etc` with `os-release`, `passwd`, `group`, `hostname`, `hosts`, `nsswitch.conf`, and empty
//! `root`, `home`, `srv`, `tmp`, `var`. None of the appliance's own `/etc` or `/var` (its state and secrets) is
//! visible inside; `/usr` appears read-only and owned by `nobody` (it is not ID-mapped).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use cacheos_core::sandbox::{
    Bind, PreparedRoot, RootError, RootPreparer, RootSource, Template, TemplateKind, Volatile,
};
use rustix::mount::{MountFlags, UnmountFlags};

use crate::drive::mount::parse_mountinfo;
use crate::sandbox::templates::{attach_fs_image, fs_image_type};

/// Default run directory of sandbox roots.
pub const RUN_DIR: &str = "/run/cacheos/sandboxes";
/// Default state directory of persistent sandbox data.
pub const STATE_DIR: &str = "/var/lib/cacheos/sandboxes";

/// Real [`RootPreparer`].
#[derive(Debug, Clone)]
pub struct OverlayRoots {
    run_dir: PathBuf,
    state_dir: PathBuf,
}

impl Default for OverlayRoots {
    fn default() -> Self {
        Self::new(RUN_DIR, STATE_DIR)
    }
}

fn mounts_under(prefix: &Path) -> io::Result<Vec<PathBuf>> {
    let text = fs::read_to_string("/proc/self/mountinfo")?;
    Ok(parse_mountinfo(&text)
        .into_iter()
        .map(|m| m.target)
        .filter(|t| t.starts_with(prefix))
        .collect())
}

fn create_dir(path: &Path) -> Result<(), RootError> {
    fs::create_dir_all(path).map_err(|source| RootError::CreateDir {
        path: path.to_owned(),
        source,
    })
}

/// Removes a directory tree, refusing while anything is mounted below it (a recursive delete through a mounted
/// overlay would delete the template).
fn remove_tree(path: &Path) -> Result<(), RootError> {
    let mounted = mounts_under(path).map_err(|source| RootError::Remove {
        path: path.to_owned(),
        source,
    })?;
    if let Some(m) = mounted.first() {
        return Err(RootError::Remove {
            path: path.to_owned(),
            source: io::Error::new(io::ErrorKind::ResourceBusy, format!("{} is still mounted", m.display())),
        });
    }
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(RootError::Remove {
            path: path.to_owned(),
            source,
        }),
    }
}

/// The overlayfs mount options; `None` when a path contains a character the option syntax reserves.
pub fn overlay_options(lower: &Path, upper: &Path, work: &Path) -> Option<String> {
    let paths = [lower, upper, work];
    if paths
        .iter()
        .any(|p| p.to_str().is_none_or(|s| s.contains([',', ':', '\\', '\n'])))
    {
        return None;
    }
    Some(format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        upper.display(),
        work.display()
    ))
}

/// Writes `contents` to `path` unless it exists (a persistent sandbox keeps its own edits).
fn write_new(path: &Path, contents: &str) -> Result<(), RootError> {
    if path.symlink_metadata().is_ok() {
        return Ok(());
    }
    fs::write(path, contents).map_err(|source| RootError::CreateDir {
        path: path.to_owned(),
        source,
    })
}

/// Makes `link` a symbolic link to `target` unless something exists there.
fn link_new(target: &Path, link: &Path) -> Result<(), RootError> {
    if link.symlink_metadata().is_ok() {
        return Ok(());
    }
    std::os::unix::fs::symlink(target, link).map_err(|source| RootError::CreateDir {
        path: link.to_owned(),
        source,
    })
}

/// Creates (or completes) the skeleton root of a host-template sandbox at `root`: the top-level links of `template`
/// that point into `usr/` (merged /usr), the directories a system expects, and a minimal `/etc` naming the sandbox.
/// Existing entries are left alone. Everything is created by the appliance's root; nspawn maps it into the
/// container's user range.
pub fn host_skeleton(root: &Path, template: &Path, name: &str) -> Result<(), RootError> {
    use std::os::unix::fs::PermissionsExt;
    create_dir(root)?;
    let entries = fs::read_dir(template).map_err(|source| RootError::List {
        path: template.to_owned(),
        source,
    })?;
    for entry in entries.filter_map(Result::ok) {
        let Ok(target) = fs::read_link(entry.path()) else {
            continue;
        };
        if target.starts_with("usr") || target.starts_with("/usr") {
            link_new(&target, &root.join(entry.file_name()))?;
        }
    }
    for (dir, mode) in [
        ("usr", 0o755),
        ("etc", 0o755),
        ("root", 0o700),
        ("home", 0o755),
        ("srv", 0o755),
        ("mnt", 0o755),
        ("opt", 0o755),
        ("tmp", 0o1777),
        ("var", 0o755),
        ("var/tmp", 0o1777),
        ("var/lib", 0o755),
        ("var/log", 0o755),
        ("var/cache", 0o755),
    ] {
        let path = root.join(dir);
        if path.symlink_metadata().is_err() {
            create_dir(&path)?;
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).map_err(|source| RootError::CreateDir {
                path: path.clone(),
                source,
            })?;
        }
    }
    let etc = root.join("etc");
    link_new("../usr/lib/os-release".as_ref(), &etc.join("os-release"))?;
    link_new("../proc/self/mounts".as_ref(), &etc.join("mtab"))?;
    write_new(&etc.join("hostname"), &format!("{name}\n"))?;
    write_new(
        &etc.join("hosts"),
        &format!("127.0.0.1\tlocalhost\n::1\t\tlocalhost\n127.0.1.1\t{name}\n"),
    )?;
    write_new(
        &etc.join("passwd"),
        "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
    )?;
    write_new(&etc.join("group"), "root:x:0:\nnogroup:x:65534:\n")?;
    write_new(
        &etc.join("nsswitch.conf"),
        "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n",
    )?;
    write_new(&etc.join("shells"), "/bin/sh\n/bin/bash\n/usr/bin/sh\n/usr/bin/bash\n")?;
    write_new(
        &etc.join("profile"),
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\nexport PATH\nPS1='\\u@\\h:\\w\\$ '\n",
    )?;
    Ok(())
}

/// Mounts the squashfs or erofs image `image` read-only at `target` (an existing directory) from a read-only,
/// auto-clearing loop device: unmounting `target` also frees the device, so [`RootPreparer::release`] needs nothing
/// but its usual unmount of everything below the sandbox's run directory.
fn mount_fs_image(image: &Path, target: &Path) -> Result<(), RootError> {
    let bad = || RootError::BadTemplate {
        path: image.to_owned(),
        kind: "squashfs or erofs image",
    };
    if !image.is_file() {
        return Err(bad());
    }
    let fs_type = match fs_image_type(image) {
        Ok(Some(t)) => t.fs_type(),
        Ok(None) => return Err(bad()),
        Err(source) => {
            return Err(RootError::Mount {
                target: target.to_owned(),
                source,
            })
        }
    };
    let mount_err = |source: io::Error| RootError::Mount {
        target: target.to_owned(),
        source,
    };
    // The guard keeps the device attached until the mount holds it; dropped on every path below.
    let (device, _guard) = attach_fs_image(image).map_err(mount_err)?;
    rustix::mount::mount(
        &device,
        target,
        fs_type,
        MountFlags::RDONLY | MountFlags::NODEV | MountFlags::NOSUID,
        None,
    )
    .map_err(|e| mount_err(e.into()))?;
    tracing::debug!(image = %image.display(), device = %device.display(), target = %target.display(), "template image mounted");
    Ok(())
}

impl OverlayRoots {
    pub fn new(run_dir: impl Into<PathBuf>, state_dir: impl Into<PathBuf>) -> Self {
        Self {
            run_dir: run_dir.into(),
            state_dir: state_dir.into(),
        }
    }

    /// `<run_dir>/NAME`.
    pub fn run_path(&self, name: &str) -> PathBuf {
        self.run_dir.join(name)
    }

    /// `<state_dir>/NAME`.
    pub fn data_path(&self, name: &str) -> PathBuf {
        self.state_dir.join(name)
    }

    fn prepare_inner(&self, name: &str, template: &Template, ephemeral: bool) -> Result<PreparedRoot, RootError> {
        let run = self.run_path(name);
        create_dir(&run)?;
        let data = self.data_path(name);
        match template.kind {
            TemplateKind::Host => {
                let usr = template.path.join("usr");
                if !usr.is_dir() {
                    return Err(RootError::BadTemplate {
                        path: usr,
                        kind: "directory",
                    });
                }
                let root = if ephemeral { run.join("root") } else { data.join("root") };
                host_skeleton(&root, &template.path, name)?;
                Ok(PreparedRoot {
                    source: RootSource::Directory(root),
                    volatile: Volatile::No,
                    binds: vec![Bind {
                        drive: String::new(),
                        source: usr,
                        target: "/usr".into(),
                        read_write: false,
                    }],
                })
            }
            TemplateKind::Image => {
                if !template.path.is_file() {
                    return Err(RootError::BadTemplate {
                        path: template.path.clone(),
                        kind: "file",
                    });
                }
                Ok(PreparedRoot {
                    source: RootSource::Image(template.path.clone()),
                    volatile: Volatile::Overlay,
                    binds: Vec::new(),
                })
            }
            TemplateKind::Directory | TemplateKind::FsImage => {
                let lower = if template.kind == TemplateKind::FsImage {
                    let lower = run.join("lower");
                    create_dir(&lower)?;
                    mount_fs_image(&template.path, &lower)?;
                    lower
                } else if template.path.is_dir() {
                    template.path.clone()
                } else {
                    return Err(RootError::BadTemplate {
                        path: template.path.clone(),
                        kind: "directory",
                    });
                };
                let layer = if ephemeral { &run } else { &data };
                let (upper, work, root) = (layer.join("upper"), layer.join("work"), run.join("root"));
                for d in [&upper, &work, &root] {
                    create_dir(d)?;
                }
                let options = overlay_options(&lower, &upper, &work).ok_or_else(|| RootError::Mount {
                    target: root.clone(),
                    source: io::Error::new(io::ErrorKind::InvalidInput, "a layer path contains ',', ':' or '\\'"),
                })?;
                // nspawn gives every container its own uid range; on an overlay it cannot use an idmapped mount and
                // chowns the tree instead. metacopy makes that copy up metadata only; kernels without it mount
                // without.
                let mount = |data: String| -> io::Result<()> {
                    let data =
                        std::ffi::CString::new(data).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
                    rustix::mount::mount("overlay", &root, "overlay", MountFlags::NODEV, Some(data.as_c_str()))?;
                    Ok(())
                };
                let mounted = mount(format!("{options},metacopy=on")).or_else(|_| mount(options));
                mounted.map_err(|source| RootError::Mount {
                    target: root.clone(),
                    source,
                })?;
                Ok(PreparedRoot {
                    source: RootSource::Directory(root),
                    volatile: Volatile::No,
                    binds: Vec::new(),
                })
            }
        }
    }
}

impl RootPreparer for OverlayRoots {
    fn prepare(&self, name: &str, template: &Template, ephemeral: bool) -> Result<PreparedRoot, RootError> {
        let data_existed = self.data_path(name).exists();
        self.prepare_inner(name, template, ephemeral).inspect_err(|_| {
            let _ = self.release(name);
            if !data_existed {
                let _ = remove_tree(&self.data_path(name));
            }
        })
    }

    fn release(&self, name: &str) -> Result<(), RootError> {
        let run = self.run_path(name);
        let mut targets = mounts_under(&run).map_err(|source| RootError::Unmount {
            target: run.clone(),
            source,
        })?;
        // Innermost first.
        targets.reverse();
        for target in targets {
            if let Err(e) = rustix::mount::unmount(&target, UnmountFlags::NOFOLLOW) {
                tracing::warn!(target = %target.display(), error = %e, "sandbox root busy; detaching lazily");
                rustix::mount::unmount(&target, UnmountFlags::NOFOLLOW | UnmountFlags::DETACH).map_err(|e| {
                    RootError::Unmount {
                        target: target.clone(),
                        source: e.into(),
                    }
                })?;
            }
        }
        remove_tree(&run)
    }

    fn remove_data(&self, name: &str) -> Result<(), RootError> {
        remove_tree(&self.data_path(name))
    }

    fn prepared(&self) -> Result<Vec<String>, RootError> {
        let entries = match fs::read_dir(&self.run_dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(RootError::List {
                    path: self.run_dir.clone(),
                    source,
                })
            }
        };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_options_refuse_reserved_characters() {
        assert_eq!(
            overlay_options("/t".as_ref(), "/u".as_ref(), "/w".as_ref()).unwrap(),
            "lowerdir=/t,upperdir=/u,workdir=/w"
        );
        assert!(overlay_options("/t,x".as_ref(), "/u".as_ref(), "/w".as_ref()).is_none());
        assert!(overlay_options("/t".as_ref(), "/u:x".as_ref(), "/w".as_ref()).is_none());
    }
}
