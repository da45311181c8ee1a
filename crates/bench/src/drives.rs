//! cacheos-bench-drives (root): latency of attach+mount and unmount+detach of a raw ext4 image and of a qcow2
//! through CacheOS's drive manager (real loop devices, mounts, exports and a redb store, as cacheosd uses them),
//! against the same work done with commands in the same run: `losetup --find --show` + `mount`, then `umount` +
//! `losetup -d` (for qcow2, `qemu-storage-daemon` FUSE export first and its stop last). Prints medians and ratios.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use cacheos_core::drive::{AttachArgs, DetachArgs, DriveConfig, DriveManager};
use cacheos_core::{EventBus, SystemClock};
use clap::Parser;

/// Drive attach/detach latency against plain commands.
#[derive(Debug, Parser)]
struct Args {
    /// Repetitions per measurement.
    #[arg(long, default_value_t = 15)]
    runs: usize,
}

fn run(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program}"))?;
    if !out.status.success() {
        bail!("{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn manager(state: &Path) -> anyhow::Result<DriveManager> {
    let cfg = DriveConfig::new(state, &state.join("run"));
    std::fs::create_dir_all(&cfg.images_dir)?;
    let store = Arc::new(cacheos_store::RedbStore::open(&state.join("cacheos.redb"), 10_000)?);
    let clock = Arc::new(SystemClock);
    let deps = cacheos_sys::drive::kernel_deps();
    Ok(DriveManager::new(
        cfg,
        deps,
        store,
        EventBus::new(64, clock.clone()),
        clock,
    ))
}

struct Qsd(Child, PathBuf);
impl Drop for Qsd {
    fn drop(&mut self) {
        // SIGTERM lets the daemon unmount its FUSE export; SIGKILL would leave the mount behind.
        let _ = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
        let _ = self.0.wait();
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&self.1)
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_file(&self.1);
    }
}

/// The command baseline: (attach+mount, unmount+detach) for one image.
fn baseline(image: &Path, qcow2: bool, mnt: &Path) -> anyhow::Result<(Duration, Duration)> {
    let t0 = Instant::now();
    let mut qsd = None;
    let backing = if qcow2 {
        let export = mnt.with_extension("raw");
        std::fs::File::create(&export)?;
        let child = Command::new("qemu-storage-daemon")
            .args([
                "--blockdev",
                &format!("driver=file,node-name=f,filename={},read-only=on", image.display()),
                "--blockdev",
                "driver=qcow2,node-name=d,file=f,read-only=on",
                "--export",
                &format!(
                    "type=fuse,id=e,node-name=d,mountpoint={},writable=off",
                    export.display()
                ),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let q = Qsd(child, export.clone());
        let deadline = Instant::now() + Duration::from_secs(10);
        while !std::fs::read_to_string("/proc/self/mountinfo")?.contains(export.to_str().unwrap_or("")) {
            if Instant::now() > deadline {
                bail!("qemu-storage-daemon export did not appear");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        qsd = Some(q);
        export
    } else {
        image.to_owned()
    };
    let dev = run(
        "losetup",
        &["--find", "--show", "--read-only", backing.to_str().unwrap_or("")],
    )?;
    std::fs::create_dir_all(mnt)?;
    run(
        "mount",
        &["-o", "ro,nosuid,nodev,noexec", &dev, mnt.to_str().unwrap_or("")],
    )?;
    let attach = t0.elapsed();
    let t1 = Instant::now();
    run("umount", &[mnt.to_str().unwrap_or("")])?;
    run("losetup", &["-d", &dev])?;
    drop(qsd);
    Ok((attach, t1.elapsed()))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::Builder::new().prefix("cacheos-bench-drives-").tempdir()?;
    let state = dir.path().canonicalize()?;
    let mgr = manager(&state)?;
    let images = mgr.config().images_dir.clone();
    let raw = images.join("bench.img");
    std::fs::File::create(&raw)?.set_len(64 << 20)?;
    run("mkfs.ext4", &["-q", "-F", "-L", "BENCH", raw.to_str().unwrap_or("")])?;
    let qcow = images.join("bench.qcow2");
    run(
        "qemu-img",
        &[
            "convert",
            "-f",
            "raw",
            "-O",
            "qcow2",
            raw.to_str().unwrap_or(""),
            qcow.to_str().unwrap_or(""),
        ],
    )?;

    println!("drive attach+mount / unmount+detach, median of {} runs (ms)", args.runs);
    println!(
        "{:<8} {:>14} {:>14} {:>7} {:>14} {:>14} {:>7}",
        "image", "cacheos att", "commands att", "ratio", "cacheos det", "commands det", "ratio"
    );
    for (label, image, qcow2) in [("raw ext4", &raw, false), ("qcow2", &qcow, true)] {
        let (mut ca, mut cd, mut ba, mut bd) = (vec![], vec![], vec![], vec![]);
        for _ in 0..args.runs {
            let t = Instant::now();
            let info = mgr.attach("bench", &AttachArgs::new(image.to_string_lossy()))?;
            ca.push(t.elapsed());
            let t = Instant::now();
            mgr.detach(&DetachArgs {
                name: info.name,
                force: false,
            })?;
            cd.push(t.elapsed());
            let (a, d) = baseline(image, qcow2, &state.join("mnt"))?;
            ba.push(a);
            bd.push(d);
        }
        let (ca, cd, ba, bd) = (median(ca), median(cd), median(ba), median(bd));
        println!(
            "{label:<8} {:>14.1} {:>14.1} {:>7.2} {:>14.1} {:>14.1} {:>7.2}",
            ms(ca),
            ms(ba),
            ca.as_secs_f64() / ba.as_secs_f64(),
            ms(cd),
            ms(bd),
            cd.as_secs_f64() / bd.as_secs_f64()
        );
    }
    println!(
        "(cacheos includes format detection, partition table read, blkid probe and a durable store write per step)"
    );
    Ok(())
}
