//! Template discovery: the OS trees and compressed file system images (squashfs, erofs) in a templates directory
//! become [`Template`]s ([`scan_dir`]; an image is mounted briefly to see whether it has an init), and
//! [`attach_fs_image`] puts such an image on a read-only, auto-clearing loop device for [`super::OverlayRoots`] to
//! mount.

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use cacheos_core::sandbox::{validate_name, Template, TemplateKind, TemplateSource};
use rustix::mount::{MountFlags, UnmountFlags};

/// The main command of a template that is not booted: it keeps the container alive for `sandbox exec`.
const SLEEP_FOREVER: &str = "2147483647";
/// How often a free loop device is looked for when another process takes it between `LOOP_CTL_GET_FREE` and attach.
const ATTACH_ATTEMPTS: u32 = 16;

/// A read-only file system image format a template can be packed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsImageType {
    Squashfs,
    Erofs,
}

impl FsImageType {
    /// The kernel's file system type name (`mount -t`).
    pub fn fs_type(self) -> &'static str {
        match self {
            Self::Squashfs => "squashfs",
            Self::Erofs => "erofs",
        }
    }
}

/// The file extensions of file system image templates, checked against the content by [`fs_image_type`].
pub const FS_IMAGE_EXTENSIONS: [&str; 2] = ["squashfs", "erofs"];

/// The format of a file system image by its magic number (squashfs: `hsqs` at 0; erofs: `0xE0F5E1E2`
/// little-endian at 1024); `None` for anything else, including files too short to tell.
pub fn fs_image_type(path: &Path) -> io::Result<Option<FsImageType>> {
    let mut head = Vec::with_capacity(1028);
    File::open(path)?.take(1028).read_to_end(&mut head)?;
    if head.starts_with(b"hsqs") {
        return Ok(Some(FsImageType::Squashfs));
    }
    if head.get(1024..1028) == Some(&0xE0F5_E1E2u32.to_le_bytes()[..]) {
        return Ok(Some(FsImageType::Erofs));
    }
    Ok(None)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / 1048576.0)
}

/// The paths whose presence makes a tree bootable (nspawn `--boot` runs its init).
const INITS: [&str; 3] = ["sbin/init", "usr/sbin/init", "usr/lib/systemd/systemd"];

/// Whether a tree has an init. Only regular files count for the image probe (an absolute symbolic link such as
/// `/sbin/init -> /lib/systemd/systemd` would be resolved on the appliance, not in the image).
fn has_init(tree: &Path) -> bool {
    INITS.iter().any(|p| tree.join(p).exists())
}

/// Mounts `image` read-only at a fresh `<probe_dir>/<name>` and tells whether it has an init; unmounts again (which
/// frees the loop device) and removes the directory on every path.
fn probe_boots(image: &Path, fs_type: FsImageType, probe_dir: &Path, name: &str) -> io::Result<bool> {
    let target = probe_dir.join(name);
    fs::create_dir_all(&target)?;
    let result = (|| {
        let (device, _guard) = attach_fs_image(image)?;
        rustix::mount::mount(
            &device,
            &target,
            fs_type.fs_type(),
            MountFlags::RDONLY | MountFlags::NODEV | MountFlags::NOSUID | MountFlags::NOEXEC,
            None,
        )?;
        let boots = INITS
            .iter()
            .any(|p| fs::symlink_metadata(target.join(p)).is_ok_and(|m| m.is_file()));
        rustix::mount::unmount(&target, UnmountFlags::DETACH)?;
        Ok(boots)
    })();
    let _ = fs::remove_dir(&target);
    result
}

/// The template a directory entry stands for, or `None` (with the reason) when it is not one.
fn template_for(path: &Path, probe_dir: Option<&Path>) -> Result<Template, String> {
    let file_name = path.file_name().and_then(|n| n.to_str()).ok_or("not a UTF-8 name")?;
    if path.is_dir() {
        let name = file_name.to_owned();
        validate_name(&name).map_err(|e| e.to_string())?;
        return tree_template(name, path);
    }
    let (stem, ext) = file_name.rsplit_once('.').ok_or("neither a tree nor an image")?;
    if !FS_IMAGE_EXTENSIONS.contains(&ext) {
        return Err("neither a tree nor an image".into());
    }
    validate_name(stem).map_err(|e| e.to_string())?;
    fs_image_template(stem, path, probe_dir)
}

/// A template named `name` (for example `drive:work/rootfs`) made from whatever `path` holds: an OS tree, a
/// squashfs/erofs image, or a raw disk image with an OS (booted by nspawn `--image`; ephemeral sandboxes only).
/// Images in formats nspawn cannot open are refused with what to do instead.
pub fn template_at(name: &str, path: &Path, probe_dir: Option<&Path>) -> Result<Template, String> {
    let meta = fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.is_dir() {
        return tree_template(name.to_owned(), path);
    }
    if !meta.is_file() {
        return Err(format!("{} is neither a directory nor a regular file", path.display()));
    }
    if fs_image_type(path).map_err(|e| e.to_string())?.is_some() {
        return fs_image_template(name, path, probe_dir);
    }
    let mut head = [0u8; 4];
    let n = File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .map_err(|e| e.to_string())?;
    if n == 4 && (&head == b"QFI\xfb" || &head == b"KDMV" || &head == b"<<< " || &head == b"vhdx") {
        return Err(format!(
            "{} is a virtual disk (qcow2, vmdk, vdi or vhdx): attach it as a drive first and use drive:NAME, the \
             root file system it mounts",
            path.display()
        ));
    }
    Ok(Template {
        name: name.to_owned(),
        kind: TemplateKind::Image,
        description: format!("disk image {} ({})", path.display(), mib(meta.len())),
        path: path.to_owned(),
        command: None,
    })
}

/// An OS tree as a template: booted when it has an init, else running `sleep`.
fn tree_template(name: String, path: &Path) -> Result<Template, String> {
    if !(path.join("usr").is_dir() || path.join("bin").exists()) {
        return Err("no usr/ or bin/ in the tree".into());
    }
    let boots = has_init(path);
    let command = (!boots).then(|| {
        let sleep = if path.join("bin/sleep").exists() {
            "/bin/sleep"
        } else {
            "/usr/bin/sleep"
        };
        vec![sleep.to_owned(), SLEEP_FOREVER.to_owned()]
    });
    Ok(Template {
        description: format!("directory tree {}", path.display()),
        name,
        kind: TemplateKind::Directory,
        path: path.to_owned(),
        command,
    })
}

/// A squashfs or erofs image as a template named `stem`, probed for an init below `probe_dir`.
fn fs_image_template(stem: &str, path: &Path, probe_dir: Option<&Path>) -> Result<Template, String> {
    let meta = fs::metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    let kind = fs_image_type(path)
        .map_err(|e| e.to_string())?
        .ok_or("neither a squashfs nor an erofs image")?;
    // Probed below a directory named like the template, with the characters of `drive:NAME/PATH` names replaced.
    let probe_name: String = stem
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let boots = match probe_dir.map(|d| probe_boots(path, kind, d, &probe_name)) {
        Some(Ok(b)) => b,
        Some(Err(e)) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot look into the template image; it will not be booted");
            false
        }
        None => false,
    };
    // `<name>.description` next to the image: one line shown by `template list`.
    let file_stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or(stem);
    let text = fs::read_to_string(path.with_file_name(format!("{file_stem}.description")))
        .ok()
        .and_then(|t| t.lines().next().map(str::trim).map(str::to_owned))
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| format!("file system image {}", path.display()));
    Ok(Template {
        name: stem.to_owned(),
        kind: TemplateKind::FsImage,
        description: format!("{text} ({}, {})", kind.fs_type(), mib(meta.len())),
        path: path.to_owned(),
        // Without an init (or unprobed) it runs `sleep` and commands are exec'd into it; usr-merged trees, as every
        // current distribution's, have /usr/bin/sleep.
        command: (!boots).then(|| vec!["/usr/bin/sleep".to_owned(), SLEEP_FOREVER.to_owned()]),
    })
}

/// The templates in `dir`, sorted by name: every `<dir>/<name>/` holding an OS tree (with `usr/` or `bin/`) and every
/// `<dir>/<name>.squashfs` or `<name>.erofs` image (described by `<dir>/<name>.description` when present). A tree
/// with an init is booted, any other runs `sleep`; an image is mounted read-only at `<probe_dir>/<name>` for a moment
/// to see which (needs root; without `probe_dir`, or when that fails, it runs `sleep`). A missing directory has none;
/// entries that are neither, or whose name is not a valid template name, are logged and skipped.
pub fn scan_dir(dir: &Path, probe_dir: Option<&Path>) -> Vec<Template> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot read the templates directory");
            return Vec::new();
        }
    };
    let mut found: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    found.sort();
    let mut out = Vec::new();
    for path in found {
        if path.extension().is_some_and(|e| e == "description") {
            continue;
        }
        match template_for(&path, probe_dir) {
            Ok(t) => out.push(t),
            Err(reason) => tracing::warn!(path = %path.display(), %reason, "not a usable template; skipped"),
        }
    }
    out
}

/// The templates of several directories as a [`TemplateSource`]: scanned again (with [`scan_dir`], images probed)
/// only when a directory's entries or modification time changed (an entry added, removed or renamed; the names are
/// compared too, as time stamps are coarse). The first directory's template of a name wins.
#[derive(Debug)]
pub struct DirTemplates {
    dirs: Vec<PathBuf>,
    probe_dir: Option<PathBuf>,
    cache: std::sync::Mutex<Option<(Vec<DirStamp>, Vec<Template>)>>,
}

/// What a templates directory looked like at a scan: its modification time and entry names.
type DirStamp = (Option<std::time::SystemTime>, Vec<std::ffi::OsString>);

impl DirTemplates {
    pub fn new(dirs: Vec<PathBuf>, probe_dir: Option<PathBuf>) -> Self {
        Self {
            dirs,
            probe_dir,
            cache: std::sync::Mutex::new(None),
        }
    }
}

impl TemplateSource for DirTemplates {
    fn templates(&self) -> Vec<Template> {
        let stamps: Vec<_> = self
            .dirs
            .iter()
            .map(|d| {
                let mut names: Vec<_> = fs::read_dir(d)
                    .map(|e| e.filter_map(Result::ok).map(|e| e.file_name()).collect())
                    .unwrap_or_default();
                names.sort();
                (fs::metadata(d).and_then(|m| m.modified()).ok(), names)
            })
            .collect();
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((seen, templates)) = cache.as_ref() {
            if *seen == stamps {
                return templates.clone();
            }
        }
        let mut out: Vec<Template> = Vec::new();
        for dir in &self.dirs {
            for t in scan_dir(dir, self.probe_dir.as_deref()) {
                if out.iter().any(|o| o.name == t.name) {
                    tracing::warn!(path = %t.path.display(), template = %t.name, "template name already taken; skipped");
                    continue;
                }
                out.push(t);
            }
        }
        tracing::info!(templates = out.len(), "template directories scanned");
        *cache = Some((stamps, out.clone()));
        out
    }
}

/// Attaches the file system image at `path` to a free loop device, read-only and auto-clearing (the kernel detaches
/// it once the last user, normally the mount made from it, is gone). Mount from the returned device while the
/// returned guard is held; dropping the guard without a mount detaches the device.
pub fn attach_fs_image(path: &Path) -> io::Result<(PathBuf, loopdev::LoopDevice)> {
    let file = File::open(path)?;
    let control = loopdev::LoopControl::open()?;
    for _ in 0..ATTACH_ATTEMPTS {
        let device = control.next_free()?;
        let dev_path = device
            .path()
            .ok_or_else(|| io::Error::other("the loop device has no path"))?;
        match device
            .with()
            .read_only(true)
            .autoclear(true)
            .attach_fd(file.as_raw_fd())
        {
            Ok(()) => return Ok((dev_path, device)),
            // Another process took this device between LOOP_CTL_GET_FREE and LOOP_SET_FD: try the next one.
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::BUSY.raw_os_error()) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::ResourceBusy,
        format!("no free loop device after {ATTACH_ATTEMPTS} attempts"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn squashfs_header() -> Vec<u8> {
        let mut b = b"hsqs".to_vec();
        b.resize(4096, 0);
        b
    }

    fn erofs_header() -> Vec<u8> {
        let mut b = vec![0u8; 4096];
        b[1024..1028].copy_from_slice(&0xE0F5_E1E2u32.to_le_bytes());
        b
    }

    #[test]
    fn detects_image_types_by_content() {
        let dir = tempfile::tempdir().unwrap();
        let (sq, ero, other, short) = (
            dir.path().join("a"),
            dir.path().join("b"),
            dir.path().join("c"),
            dir.path().join("d"),
        );
        fs::write(&sq, squashfs_header()).unwrap();
        fs::write(&ero, erofs_header()).unwrap();
        fs::write(&other, vec![0u8; 4096]).unwrap();
        fs::write(&short, b"hs").unwrap();
        assert_eq!(fs_image_type(&sq).unwrap(), Some(FsImageType::Squashfs));
        assert_eq!(fs_image_type(&ero).unwrap(), Some(FsImageType::Erofs));
        assert_eq!(fs_image_type(&other).unwrap(), None);
        assert_eq!(fs_image_type(&short).unwrap(), None);
        assert_eq!(FsImageType::Erofs.fs_type(), "erofs");
    }

    #[test]
    fn scans_trees_and_images() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // A tree with an init is booted, one without runs sleep.
        fs::create_dir_all(d.join("booted/usr/lib/systemd")).unwrap();
        fs::write(d.join("booted/usr/lib/systemd/systemd"), "").unwrap();
        fs::create_dir_all(d.join("bb/bin")).unwrap();
        fs::write(d.join("bb/bin/sleep"), "").unwrap();
        // Images: described by a side file or by their path.
        fs::write(d.join("debian.squashfs"), squashfs_header()).unwrap();
        fs::write(d.join("debian.description"), "Debian 12 (bookworm) minimal\nignored\n").unwrap();
        fs::write(d.join("fedora.erofs"), erofs_header()).unwrap();
        // Not templates: an empty directory, a mislabelled image, an unknown file, a bad name.
        fs::create_dir(d.join("empty")).unwrap();
        fs::write(d.join("fake.squashfs"), vec![0u8; 4096]).unwrap();
        fs::write(d.join("notes.txt"), "").unwrap();
        fs::write(d.join("Bad Name.squashfs"), squashfs_header()).unwrap();

        let found = scan_dir(d, None);
        let names: Vec<_> = found.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["bb", "booted", "debian", "fedora"]);

        assert_eq!(found[0].kind, TemplateKind::Directory);
        assert_eq!(
            found[0].command,
            Some(vec!["/bin/sleep".to_owned(), SLEEP_FOREVER.to_owned()])
        );
        assert_eq!(found[1].command, None);

        let debian = &found[2];
        assert_eq!(debian.kind, TemplateKind::FsImage);
        assert_eq!(debian.path, d.join("debian.squashfs"));
        assert_eq!(debian.description, "Debian 12 (bookworm) minimal (squashfs, 0.0 MiB)");
        assert_eq!(
            debian.command,
            Some(vec!["/usr/bin/sleep".to_owned(), SLEEP_FOREVER.to_owned()])
        );
        assert_eq!(
            found[3].description,
            format!(
                "file system image {} (erofs, 0.0 MiB)",
                d.join("fedora.erofs").display()
            )
        );
    }

    #[test]
    fn a_missing_directory_has_no_templates() {
        assert!(scan_dir(Path::new("/nonexistent/cacheos/templates"), None).is_empty());
    }
}
