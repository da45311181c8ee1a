//! The real system probe: procfs, statvfs, os-release and systemd's failed-unit count.

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

use cacheos_core::system::{DiskUsage, LoadAvg, Memory, OsRelease, ProbeError, SystemProbe, SystemStatus};
use cacheos_core::{Clock, SystemClock};
use procfs::{Current, CurrentSI};

fn perr(what: &str) -> impl FnOnce(procfs::ProcError) -> ProbeError + '_ {
    move |e| ProbeError {
        what: what.to_string(),
        source: e.into(),
    }
}

#[derive(Debug, Clone, Copy)]
struct CpuSample {
    busy: u64,
    total: u64,
}

/// Reads the machine. CPU use and failed units are refreshed by [`SystemProbe::sample`].
#[derive(Debug)]
pub struct HostProbe {
    last_cpu: Mutex<Option<CpuSample>>,
    cpu_percent: Mutex<Option<f64>>,
    failed_units: Mutex<Option<u32>>,
    systemd: bool,
    os_release: OsRelease,
}

impl Default for HostProbe {
    fn default() -> Self {
        Self::new()
    }
}

impl HostProbe {
    /// A probe; reads os-release once.
    pub fn new() -> Self {
        Self {
            last_cpu: Mutex::new(None),
            cpu_percent: Mutex::new(None),
            failed_units: Mutex::new(None),
            systemd: crate::systemd_booted(),
            os_release: read_os_release(),
        }
    }

    fn cpu_sample() -> Result<CpuSample, ProbeError> {
        let ks = procfs::KernelStats::current().map_err(perr("/proc/stat"))?;
        let t = ks.total;
        let idle = t.idle + t.iowait.unwrap_or(0);
        let busy = t.user + t.nice + t.system + t.irq.unwrap_or(0) + t.softirq.unwrap_or(0) + t.steal.unwrap_or(0);
        Ok(CpuSample {
            busy,
            total: busy + idle,
        })
    }
}

/// Parses os-release text (`KEY=value`, values optionally quoted).
pub fn parse_os_release(text: &str) -> OsRelease {
    let mut r = OsRelease::default();
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else { continue };
        let v = v.trim().trim_matches('"').trim_matches('\'').to_string();
        match k.trim() {
            "PRETTY_NAME" => r.pretty_name = v,
            "ID" => r.id = v,
            "VERSION_ID" => r.version_id = v,
            _ => {}
        }
    }
    if r.pretty_name.is_empty() {
        r.pretty_name = if r.id.is_empty() { "Linux".into() } else { r.id.clone() };
    }
    r
}

fn read_os_release() -> OsRelease {
    ["/etc/os-release", "/usr/lib/os-release"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|t| parse_os_release(&t))
        .unwrap_or_else(|| parse_os_release(""))
}

/// File system types that never represent storage a person cares about.
const PSEUDO_FS: &[&str] = &[
    "proc",
    "sysfs",
    "devtmpfs",
    "devpts",
    "cgroup",
    "cgroup2",
    "securityfs",
    "debugfs",
    "tracefs",
    "pstore",
    "bpf",
    "mqueue",
    "hugetlbfs",
    "configfs",
    "fusectl",
    "autofs",
    "binfmt_misc",
    "efivarfs",
    "rpc_pipefs",
    "nsfs",
    "ramfs",
];

fn disks() -> Result<Vec<DiskUsage>, ProbeError> {
    let me = procfs::process::Process::myself().map_err(perr("/proc/self"))?;
    let infos = me.mountinfo().map_err(perr("/proc/self/mountinfo"))?;
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for m in infos {
        let mp = m.mount_point.to_string_lossy().into_owned();
        let source = m.mount_source.clone().unwrap_or_default();
        if PSEUDO_FS.contains(&m.fs_type.as_str()) {
            continue;
        }
        let interesting = source.starts_with("/dev/")
            || mp == "/"
            || mp.starts_with("/var/lib/cacheos")
            || mp.starts_with("/run/cacheos/drives");
        if !interesting || !seen.insert(mp.clone()) {
            continue;
        }
        let Ok(st) = rustix::fs::statvfs(Path::new(&mp)) else {
            continue;
        };
        let frsize = st.f_frsize.max(1);
        let total = st.f_blocks * frsize;
        if total == 0 {
            continue;
        }
        out.push(DiskUsage {
            mount_point: mp,
            source,
            fs_type: m.fs_type.clone(),
            total_bytes: total,
            used_bytes: (st.f_blocks - st.f_bfree) * frsize,
            available_bytes: st.f_bavail * frsize,
            read_only: m.mount_options.contains_key("ro"),
        });
    }
    Ok(out)
}

fn failed_units() -> Result<u32, ProbeError> {
    let out = Command::new("systemctl")
        .args(["show", "--property=NFailedUnits", "--value"])
        .output()
        .map_err(|e| ProbeError {
            what: "systemctl show NFailedUnits".into(),
            source: e.into(),
        })?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|e: std::num::ParseIntError| ProbeError {
            what: "systemctl show NFailedUnits".into(),
            source: e.into(),
        })
}

/// Counts the CPUs in a kernel CPU list such as `0-3,6,8-9` (`/sys/devices/system/cpu/online`).
pub fn parse_cpu_list(text: &str) -> Option<u32> {
    let mut n = 0;
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        n += match part.split_once('-') {
            Some((a, b)) => b.parse::<u32>().ok()?.checked_sub(a.parse::<u32>().ok()?)? + 1,
            None => part.parse::<u32>().map(|_| 1).ok()?,
        };
    }
    (n > 0).then_some(n)
}

/// The machine's online CPUs: one small sysfs read per status. (`std::thread::available_parallelism` also parses
/// `/proc/self/mountinfo` and the cgroup files on every call; it was the largest single cost of `system.status`.)
fn online_cpus() -> u32 {
    std::fs::read_to_string("/sys/devices/system/cpu/online")
        .ok()
        .and_then(|t| parse_cpu_list(&t))
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get() as u32)
                .unwrap_or(1)
        })
}

fn round2(x: f32) -> f64 {
    (x as f64 * 100.0).round() / 100.0
}

impl SystemProbe for HostProbe {
    fn status(&self) -> Result<SystemStatus, ProbeError> {
        let uname = rustix::system::uname();
        let mem = procfs::Meminfo::current().map_err(perr("/proc/meminfo"))?;
        let load = procfs::LoadAverage::current().map_err(perr("/proc/loadavg"))?;
        let uptime = procfs::Uptime::current().map_err(perr("/proc/uptime"))?;
        let available = mem.mem_available.unwrap_or(mem.mem_free + mem.cached);
        let failed = if self.systemd {
            let cached = *self.failed_units.lock().unwrap();
            match cached {
                Some(n) => Some(n),
                None => failed_units().ok(),
            }
        } else {
            None
        };
        Ok(SystemStatus {
            hostname: uname.nodename().to_string_lossy().into_owned(),
            kernel: uname.release().to_string_lossy().into_owned(),
            os_release: self.os_release.clone(),
            uptime_seconds: uptime.uptime,
            load: LoadAvg {
                one: round2(load.one),
                five: round2(load.five),
                fifteen: round2(load.fifteen),
            },
            cpu_count: online_cpus(),
            cpu_percent: *self.cpu_percent.lock().unwrap(),
            memory: Memory {
                total_bytes: mem.mem_total,
                available_bytes: available,
                used_bytes: mem.mem_total.saturating_sub(available),
                swap_total_bytes: mem.swap_total,
                swap_used_bytes: mem.swap_total.saturating_sub(mem.swap_free),
            },
            disks: disks()?,
            failed_units: failed,
            time_ms: SystemClock.now_ms(),
        })
    }

    fn cpu_times(&self) -> Vec<cacheos_core::diagnose::metrics::CpuTimes> {
        let Ok(ks) = procfs::KernelStats::current() else {
            return Vec::new();
        };
        let hz = procfs::ticks_per_second().max(1) as f64;
        ks.cpu_time
            .iter()
            .enumerate()
            .map(|(i, c)| cacheos_core::diagnose::metrics::CpuTimes {
                cpu: i as u32,
                modes: vec![
                    ("user", c.user as f64 / hz),
                    ("nice", c.nice as f64 / hz),
                    ("system", c.system as f64 / hz),
                    ("idle", c.idle as f64 / hz),
                    ("iowait", c.iowait.unwrap_or(0) as f64 / hz),
                    ("irq", c.irq.unwrap_or(0) as f64 / hz),
                    ("softirq", c.softirq.unwrap_or(0) as f64 / hz),
                    ("steal", c.steal.unwrap_or(0) as f64 / hz),
                ],
            })
            .collect()
    }

    fn sample(&self) -> Result<(), ProbeError> {
        let now = Self::cpu_sample()?;
        let mut last = self.last_cpu.lock().unwrap();
        if let Some(prev) = *last {
            let dt = now.total.saturating_sub(prev.total);
            if dt > 0 {
                let pct = 100.0 * now.busy.saturating_sub(prev.busy) as f64 / dt as f64;
                *self.cpu_percent.lock().unwrap() = Some((pct * 10.0).round() / 10.0);
            }
        }
        *last = Some(now);
        drop(last);
        if self.systemd {
            match failed_units() {
                Ok(n) => *self.failed_units.lock().unwrap() = Some(n),
                Err(e) => tracing::warn!(error = %e, "cannot count failed units"),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_are_counted() {
        assert_eq!(parse_cpu_list("0-1\n"), Some(2));
        assert_eq!(parse_cpu_list("0-3,6,8-9"), Some(7));
        assert_eq!(parse_cpu_list("5"), Some(1));
        assert_eq!(parse_cpu_list(""), None);
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("x"), None);
    }

    #[test]
    fn os_release_parsing() {
        let r = parse_os_release("NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n# c\n");
        assert_eq!(r.pretty_name, "Debian GNU/Linux 12 (bookworm)");
        assert_eq!((r.id.as_str(), r.version_id.as_str()), ("debian", "12"));
        assert_eq!(parse_os_release("ID=arch").pretty_name, "arch");
    }

    #[test]
    fn reads_this_machine() {
        let p = HostProbe::new();
        let s = p.status().unwrap();
        assert!(!s.hostname.is_empty() && !s.kernel.is_empty());
        assert!(s.memory.total_bytes > 0 && s.memory.used_bytes <= s.memory.total_bytes);
        assert!(s.uptime_seconds > 0.0);
        assert!(s.disks.iter().any(|d| d.mount_point == "/"), "{:?}", s.disks);
        assert_eq!(s.cpu_percent, None, "no CPU figure before two samples");
        p.sample().unwrap();
        let mut x = 0u64;
        for i in 0..3_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        std::thread::sleep(std::time::Duration::from_millis(30));
        p.sample().unwrap();
        let c = p.status().unwrap().cpu_percent.expect("cpu after two samples");
        assert!((0.0..=100.0).contains(&c), "{c}");
    }
}
