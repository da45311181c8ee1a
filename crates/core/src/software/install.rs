//! Running plans: [`SandboxAccess`] (the narrow view of sandboxes an install needs: facts, create+start, exec with
//! argv, files; [`ManagedSandboxes`] over the sandbox manager, a recording fake in [`super::fake`]), and
//! [`Software`], which runs install and remove jobs on a thread each (progress as `software-job` events, cancel
//! between steps), explains failures, writes the lockfile and keeps exposed ports and services.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::expose::{
    ExposedPort, Exposures, Forward, PortForwarder, SandboxNetworkInfo, SandboxService, Services, EXPOSE_KIND,
    SERVICE_KIND,
};
use super::plan::{self, PlanContext, Step};
use super::resolve::{cached_debs, Resolvers};
use super::{
    starters, Ecosystem, JobState, LockedPackage, Lockfile, NewSandbox, SoftwareError, SoftwareInstallArgs,
    SoftwareJob, SoftwarePlan, LOCK_KIND, NPM_DIR, VENV_DIR,
};
use crate::event::{EventBus, EventKind};
use crate::sandbox::{ExecSpec, Network, OutputChunk, SandboxManager, SandboxSpec, TemplateKind};
use crate::store::{Durability, Store};

/// What an install needs to know of a sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxFacts {
    pub name: String,
    pub running: bool,
    pub template: String,
    pub network: Network,
    /// Its address, while running.
    pub ip: Option<String>,
    /// Whether packages can be installed into it (an OS tree booted with its own init, so apt and systemd are
    /// there), else why not.
    pub installable: Result<(), String>,
}

/// The sandboxes as an install sees them. Every command is argv; nothing goes through a shell.
pub trait SandboxAccess: Send + Sync {
    /// Names of all sandboxes.
    fn names(&self) -> Vec<String>;
    /// Facts of a sandbox, `None` when there is none of that name.
    fn facts(&self, name: &str) -> Result<Option<SandboxFacts>, String>;
    /// Whether a template exists and packages can be installed into its sandboxes, else why not.
    fn template_installable(&self, template: &str) -> Result<(), String>;
    /// Creates and starts a sandbox.
    fn create_and_start(&self, new: &NewSandbox, by: &str) -> Result<(), String>;
    /// Starts an existing sandbox.
    fn start(&self, name: &str) -> Result<(), String>;
    /// Removes a sandbox this job created (after a failure: nothing left behind).
    fn remove(&self, name: &str) -> Result<(), String>;
    /// Runs argv inside; each output line goes to `line`. Returns the exit code.
    fn exec(
        &self,
        name: &str,
        argv: &[String],
        env: &[(String, String)],
        cwd: Option<&str>,
        timeout: Duration,
        line: &mut dyn FnMut(&str),
    ) -> Result<i32, String>;
    /// Writes a file inside (absolute path).
    fn write_file(&self, name: &str, path: &str, bytes: &[u8]) -> Result<(), String>;
    /// Reads a file inside; `None` when it does not exist.
    fn read_file(&self, name: &str, path: &str) -> Result<Option<Vec<u8>>, String>;
}

/// [`SandboxAccess`] over the sandbox manager.
pub struct ManagedSandboxes(pub Arc<SandboxManager>);

fn installable(t: &crate::sandbox::Template) -> Result<(), String> {
    if t.kind == TemplateKind::Host {
        return Err(format!(
            "template {} shares the appliance's read-only /usr and has no package manager of its own; \
             software goes into sandboxes from the debian template",
            t.name
        ));
    }
    if t.command.is_some() {
        return Err(format!(
            "template {} does not boot an init (no systemd, so no services) and may lack apt; \
             software goes into sandboxes from the debian template",
            t.name
        ));
    }
    if t.kind == TemplateKind::Image {
        return Err(format!(
            "template {} is a disk image (ephemeral sandboxes only)",
            t.name
        ));
    }
    Ok(())
}

impl SandboxAccess for ManagedSandboxes {
    fn names(&self) -> Vec<String> {
        self.0.names()
    }

    fn facts(&self, name: &str) -> Result<Option<SandboxFacts>, String> {
        let info = match self.0.info(name) {
            Ok(i) => i,
            Err(crate::sandbox::SandboxError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(crate::error::chain(&e)),
        };
        let inst = match self.0.template(&info.template) {
            Ok(t) => installable(&t),
            Err(e) => Err(e.to_string()),
        };
        Ok(Some(SandboxFacts {
            name: info.name,
            running: info.state == crate::sandbox::SandboxState::Running,
            template: info.template,
            network: info.network,
            ip: info.ip,
            installable: inst.map_err(|e| format!("sandbox {name}: {e}")),
        }))
    }

    fn template_installable(&self, template: &str) -> Result<(), String> {
        match self.0.template(template) {
            Ok(t) => installable(&t),
            Err(_) => Err(format!(
                "there is no {template} template in this daemon, so no sandbox for software can be created"
            )),
        }
    }

    fn create_and_start(&self, new: &NewSandbox, by: &str) -> Result<(), String> {
        let mut spec = SandboxSpec::new(&new.name, &new.template);
        spec.network = new.network;
        self.0.create(spec, by).map_err(|e| crate::error::chain(&e))?;
        if let Err(e) = self.0.start(&new.name) {
            let _ = self.0.remove(&new.name);
            return Err(crate::error::chain(&e));
        }
        Ok(())
    }

    fn start(&self, name: &str) -> Result<(), String> {
        self.0.start(name).map(|_| ()).map_err(|e| crate::error::chain(&e))
    }

    fn remove(&self, name: &str) -> Result<(), String> {
        self.0.remove(name).map_err(|e| crate::error::chain(&e))
    }

    fn exec(
        &self,
        name: &str,
        argv: &[String],
        env: &[(String, String)],
        cwd: Option<&str>,
        timeout: Duration,
        line: &mut dyn FnMut(&str),
    ) -> Result<i32, String> {
        let spec = ExecSpec {
            argv: argv.to_vec(),
            env: env.to_vec(),
            cwd: cwd.map(PathBuf::from),
            time_limit: Some(timeout),
        };
        let mut buf = Vec::new();
        let mut sink = |c: OutputChunk| {
            let b = match c {
                OutputChunk::Stdout(b) | OutputChunk::Stderr(b) => b,
            };
            buf.extend_from_slice(&b);
            while let Some(i) = buf.iter().position(|&c| c == b'\n' || c == b'\r') {
                let l: Vec<u8> = buf.drain(..=i).collect();
                let s = String::from_utf8_lossy(&l[..l.len() - 1]).into_owned();
                // dpkg redraws "(Reading database ... 45%" with carriage returns: only the last one counts.
                let progress = s.starts_with("(Reading database ...") && s.ends_with('%');
                if !s.trim().is_empty() && !progress {
                    line(&s);
                }
            }
        };
        let out = self
            .0
            .exec(name, &spec, &mut sink)
            .map_err(|e| crate::error::chain(&e))?;
        if !buf.is_empty() {
            line(&String::from_utf8_lossy(&buf));
        }
        if out.timed_out {
            return Err(format!(
                "`{}` did not finish within {} s",
                argv.join(" "),
                timeout.as_secs()
            ));
        }
        Ok(out.exit_code)
    }

    fn write_file(&self, name: &str, path: &str, bytes: &[u8]) -> Result<(), String> {
        let dir = Path::new(path)
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "/".into());
        let spec = ExecSpec {
            argv: vec!["mkdir".into(), "-p".into(), "--".into(), dir],
            env: Vec::new(),
            cwd: None,
            time_limit: Some(Duration::from_secs(30)),
        };
        self.0
            .exec(name, &spec, &mut |_| {})
            .map_err(|e| crate::error::chain(&e))?;
        self.0
            .copy_in(name, &mut &bytes[..], Path::new(path))
            .map(|_| ())
            .map_err(|e| crate::error::chain(&e))
    }

    fn read_file(&self, name: &str, path: &str) -> Result<Option<Vec<u8>>, String> {
        let mut out = Vec::new();
        match self.0.copy_out(name, Path::new(path), &mut out) {
            Ok(_) => Ok(Some(out)),
            Err(e) => {
                let msg = crate::error::chain(&e);
                if msg.contains("No such file") || msg.contains("not found") || msg.contains("os error 2") {
                    Ok(None)
                } else {
                    Err(msg)
                }
            }
        }
    }
}

/// Explains a failed command from its output: no network, not found, disk full, dependency conflict, busy.
pub fn explain(eco: Ecosystem, output: &[String], exit_code: i32) -> String {
    let text = output.join("\n");
    let has = |needles: &[&str]| needles.iter().any(|n| text.contains(n));
    let why = if has(&["No space left on device", "ENOSPC"]) {
        "the disk is full (no space left on the data partition)".to_string()
    } else if has(&[
        "Temporary failure resolving",
        "Could not resolve",
        "Network is unreachable",
        "Failed to establish a new connection",
        "ENOTFOUND",
        "EAI_AGAIN",
        "Name or service not known",
        "Could not connect to",
        "Connection timed out",
        "ETIMEDOUT",
    ]) {
        format!(
            "no network: the sandbox cannot reach {} (is the appliance online? the sandbox needs NAT)",
            eco.registry()
        )
    } else if has(&[
        "Unable to locate package",
        "No matching distribution found",
        "E404",
        "404 Not Found",
        "has no installation candidate",
    ]) {
        format!("a package was not found in {}", eco.registry())
    } else if has(&[
        "Unmet dependencies",
        "held broken packages",
        "ResolutionImpossible",
        "ERESOLVE",
        "conflicting dependencies",
        "Conflicts:",
        "Breaks:",
    ]) {
        "a dependency conflict: the packages asked for cannot be installed together".to_string()
    } else if has(&[
        "Could not get lock",
        "is held by process",
        "Unable to acquire the dpkg frontend lock",
    ]) {
        "another package manager runs in the sandbox; try again when it finished".to_string()
    } else if exit_code == 127 {
        format!(
            "the command is missing in the sandbox ({} is not installed there)",
            match eco {
                Ecosystem::Apt => "apt",
                Ecosystem::Pip => "python3",
                Ecosystem::Npm => "npm",
            }
        )
    } else {
        format!("it ended with exit code {exit_code}")
    };
    match output
        .iter()
        .rev()
        .find(|l| l.starts_with("E:") || l.contains("ERROR") || l.contains("ERR!"))
    {
        Some(l) => format!("{why} ({})", l.trim()),
        None => why,
    }
}

struct JobEntry {
    job: SoftwareJob,
    cancel: Arc<AtomicBool>,
}

/// The software service of the core.
pub struct Software {
    pub resolvers: Resolvers,
    pub sandboxes: Arc<dyn SandboxAccess>,
    pub forwarder: Arc<dyn PortForwarder>,
    pub store: Arc<dyn Store>,
    pub events: EventBus,
    pub clock: Arc<dyn crate::clock::Clock>,
    /// The shared apt download cache on the appliance (`/var/cache/apt/archives` of debian sandboxes).
    pub apt_archives: PathBuf,
    /// The appliance's address for URLs (`http://ADDR:PORT`).
    pub address: Arc<dyn Fn() -> Option<String> + Send + Sync>,
    /// Longest time of one command.
    pub step_timeout: Duration,
    /// How long an install waits for the sandbox's network before going on with the cache.
    pub network_wait_secs: u32,
    jobs: Mutex<BTreeMap<String, JobEntry>>,
    next: Mutex<u64>,
}

const OUTPUT_LINES: usize = 40;

impl Software {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        resolvers: Resolvers,
        sandboxes: Arc<dyn SandboxAccess>,
        forwarder: Arc<dyn PortForwarder>,
        store: Arc<dyn Store>,
        events: EventBus,
        clock: Arc<dyn crate::clock::Clock>,
        apt_archives: PathBuf,
        address: Arc<dyn Fn() -> Option<String> + Send + Sync>,
    ) -> Self {
        Self {
            resolvers,
            sandboxes,
            forwarder,
            store,
            events,
            clock,
            apt_archives,
            address,
            step_timeout: Duration::from_secs(1800),
            network_wait_secs: std::env::var("CACHEOS_SOFTWARE_NETWORK_WAIT")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(30),
            jobs: Mutex::new(BTreeMap::new()),
            next: Mutex::new(0),
        }
    }

    /// Makes a plan (reads only).
    pub fn plan(&self, args: &SoftwareInstallArgs, utterance: Option<String>) -> Result<SoftwarePlan, SoftwareError> {
        let ctx = PlanContext {
            resolvers: &self.resolvers,
            sandboxes: &*self.sandboxes,
            cached: cached_debs(&self.apt_archives),
            utterance,
        };
        plan::plan(args, &ctx)
    }

    /// A job by id.
    pub fn job(&self, id: &str) -> Option<SoftwareJob> {
        self.jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .map(|j| j.job.clone())
    }

    /// Asks a running job to stop after its current command; false when no such job runs.
    pub fn cancel(&self, id: &str) -> bool {
        let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        match jobs.get(id) {
            Some(j) if j.job.state == JobState::Running => {
                j.cancel.store(true, Ordering::SeqCst);
                true
            }
            _ => false,
        }
    }

    /// Waits until the job ended or `timeout` passed; the job as it is then.
    pub fn wait(&self, id: &str, timeout: Duration) -> Option<SoftwareJob> {
        let end = std::time::Instant::now() + timeout;
        loop {
            let j = self.job(id)?;
            if j.state != JobState::Running || std::time::Instant::now() >= end {
                return Some(j);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn running_in(&self, sandbox: &str) -> Option<String> {
        let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        jobs.values()
            .find(|j| j.job.sandbox == sandbox && j.job.state == JobState::Running)
            .map(|j| j.job.job.clone())
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut SoftwareJob)) -> SoftwareJob {
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        let j = jobs.get_mut(id).expect("a job updates only itself");
        f(&mut j.job);
        j.job.clone()
    }

    fn publish(&self, j: &SoftwareJob, line: Option<String>) {
        self.events.publish(EventKind::SoftwareJob {
            job: j.job.clone(),
            sandbox: j.sandbox.clone(),
            state: j.state,
            step: j.step,
            steps: j.plan.steps.len(),
            line,
        });
    }

    /// Starts a job running `plan` (made just now from the same arguments); returns it at once.
    pub fn start_install(self: &Arc<Self>, plan: SoftwarePlan, by: &str) -> Result<SoftwareJob, SoftwareError> {
        if let Some(j) = self.running_in(&plan.sandbox) {
            return Err(SoftwareError::Invalid(format!(
                "invalid sandbox: job {j} is installing into {} now; wait for it or cancel it",
                plan.sandbox
            )));
        }
        let facts = self
            .sandboxes
            .facts(&plan.sandbox)
            .map_err(SoftwareError::Unavailable)?;
        let steps = plan::steps(&plan, facts.as_ref());
        let id = {
            let mut n = self.next.lock().unwrap_or_else(|e| e.into_inner());
            *n += 1;
            format!("software-{n}")
        };
        let job = SoftwareJob {
            job: id.clone(),
            sandbox: plan.sandbox.clone(),
            state: JobState::Running,
            plan,
            step: 0,
            output: Vec::new(),
            error: None,
            urls: Vec::new(),
        };
        let cancel = Arc::new(AtomicBool::new(false));
        self.jobs.lock().unwrap_or_else(|e| e.into_inner()).insert(
            id.clone(),
            JobEntry {
                job: job.clone(),
                cancel: cancel.clone(),
            },
        );
        self.publish(&job, None);
        let me = self.clone();
        let by = by.to_string();
        std::thread::Builder::new()
            .name(format!("cacheos-{id}"))
            .spawn(move || me.run_job(&id, steps, &cancel, &by))
            .map_err(|e| SoftwareError::Unavailable(format!("cannot start the install job: {e}")))?;
        Ok(job)
    }

    fn run_job(&self, id: &str, steps: Vec<Step>, cancel: &AtomicBool, by: &str) {
        let plan = self.job(id).map(|j| j.plan).expect("the job exists");
        let sandbox = plan.sandbox.clone();
        let mut created = false;
        let result = (|| -> Result<(), String> {
            for (i, step) in steps.iter().enumerate() {
                if cancel.load(Ordering::SeqCst) {
                    return Err("cancelled".into());
                }
                let j = self.update(id, |j| {
                    j.step = i;
                });
                self.publish(&j, Some(step.render()));
                self.run_step(id, &plan, step, by, &mut created)?;
            }
            Ok(())
        })();
        let urls = self.urls(&sandbox);
        let cancelled = cancel.load(Ordering::SeqCst);
        if result.is_err() && created {
            // A sandbox this job made is removed again: a failed install leaves nothing behind.
            if let Err(e) = self.sandboxes.remove(&sandbox) {
                tracing::warn!(sandbox = %sandbox, error = %e, "cannot remove the sandbox of a failed install");
            }
        }
        let j = self.update(id, |j| match result {
            Ok(()) => {
                j.state = JobState::Done;
                j.step = j.plan.steps.len();
                j.urls = urls;
            }
            Err(e) => {
                j.state = if cancelled {
                    JobState::Cancelled
                } else {
                    JobState::Failed
                };
                j.error = Some(e);
            }
        });
        self.publish(&j, j.error.clone());
    }

    fn push_line(&self, id: &str, line: &str) {
        let j = self.update(id, |j| {
            j.output.push(line.to_string());
            let skip = j.output.len().saturating_sub(OUTPUT_LINES);
            j.output.drain(..skip);
        });
        self.publish(&j, Some(line.to_string()));
    }

    fn exec_logged(
        &self,
        id: &str,
        sandbox: &str,
        argv: &[String],
        cwd: Option<&str>,
        eco: Ecosystem,
    ) -> Result<(), String> {
        let env = vec![
            ("DEBIAN_FRONTEND".to_string(), "noninteractive".to_string()),
            ("PIP_DISABLE_PIP_VERSION_CHECK".to_string(), "1".to_string()),
            ("PIP_PROGRESS_BAR".to_string(), "off".to_string()),
            ("NPM_CONFIG_UPDATE_NOTIFIER".to_string(), "false".to_string()),
            ("NPM_CONFIG_PROGRESS".to_string(), "false".to_string()),
        ];
        let mut lines = Vec::new();
        let code = self
            .sandboxes
            .exec(sandbox, argv, &env, cwd, self.step_timeout, &mut |l| {
                lines.push(l.to_string());
                self.push_line(id, l);
            })?;
        if code != 0 {
            return Err(format!("`{}` failed: {}", argv.join(" "), explain(eco, &lines, code)));
        }
        Ok(())
    }

    fn run_step(&self, id: &str, plan: &SoftwarePlan, step: &Step, by: &str, created: &mut bool) -> Result<(), String> {
        let sb = plan.sandbox.as_str();
        match step {
            Step::Create(n) => {
                self.sandboxes.create_and_start(n, by)?;
                *created = true;
            }
            Step::Start => self.sandboxes.start(sb)?,
            Step::WaitNetwork => {
                let argv: Vec<String> = ["getent", "hosts", "deb.debian.org"]
                    .iter()
                    .map(|s| s.to_string())
                    .collect();
                let mut ok = false;
                for _ in 0..self.network_wait_secs.max(1) {
                    if self
                        .sandboxes
                        .exec(sb, &argv, &[], None, Duration::from_secs(10), &mut |_| {})?
                        == 0
                    {
                        ok = true;
                        break;
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
                if !ok {
                    // Offline: what the shared cache holds can still be installed; the commands explain the rest.
                    self.push_line(
                        id,
                        &format!(
                            "no network: sandbox {sb} cannot resolve deb.debian.org after {} s; going on with the \
                             download cache",
                            self.network_wait_secs
                        ),
                    );
                }
            }
            Step::Run { argv, cwd, eco } => {
                if *eco == Ecosystem::Npm && argv.first().map(String::as_str) == Some("npm") {
                    // npm needs a project: a package.json is written when there is none.
                    let pj = format!("{NPM_DIR}/package.json");
                    if self.sandboxes.read_file(sb, &pj)?.is_none() {
                        self.sandboxes.write_file(
                            sb,
                            &pj,
                            b"{\n  \"name\": \"app\",\n  \"version\": \"1.0.0\",\n  \"private\": true\n}\n",
                        )?;
                    }
                }
                if *eco == Ecosystem::Pip && argv.get(1).map(String::as_str) == Some("-m") {
                    // The venv exists already after an earlier install.
                    if self
                        .sandboxes
                        .read_file(sb, &format!("{VENV_DIR}/pyvenv.cfg"))?
                        .is_some()
                    {
                        return Ok(());
                    }
                }
                match self.exec_logged(id, sb, argv, cwd.as_deref(), *eco) {
                    // Offline with a package index in the shared cache: install from what the cache holds.
                    Err(e) if argv[..] == ["apt-get", "update"] && e.contains("no network") && self.have_lists() => {
                        self.push_line(id, "offline: using the package index and downloads in the shared cache");
                    }
                    r => r?,
                }
            }
            Step::Starter(key) => {
                let s = plan.starters.iter().find(|s| &s.key == key).ok_or("starter vanished")?;
                let eco = plan
                    .packages
                    .iter()
                    .find(|c| c.via.as_deref() == Some(key.as_str()))
                    .map(|c| c.ecosystem)
                    .unwrap_or(Ecosystem::Apt);
                let (files, command, port) = starters::starter(key, eco).ok_or("starter vanished")?;
                for (path, content) in files {
                    if self.sandboxes.read_file(sb, &path)?.is_none() {
                        self.sandboxes.write_file(sb, &path, content.as_bytes())?;
                    }
                }
                if !command.is_empty() {
                    self.set_service(sb, key, &command)?;
                }
                if let Some(p) = port.or(s.port) {
                    self.expose(sb, p, None).map_err(|e| e.to_string())?;
                }
            }
            Step::Lock => self.write_lock(sb, plan)?,
        }
        Ok(())
    }

    /// Whether the shared cache holds a Debian package index (next to the download cache).
    fn have_lists(&self) -> bool {
        let lists = self.apt_archives.parent().map(|p| p.join("lists")).unwrap_or_default();
        std::fs::read_dir(lists)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().contains("_Packages"))
    }

    /// The lockfile of a sandbox.
    pub fn lockfile(&self, sandbox: &str) -> Result<Lockfile, String> {
        Ok(self
            .store
            .get_record(LOCK_KIND, sandbox)
            .map_err(|e| e.to_string())?
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_else(|| Lockfile {
                sandbox: sandbox.to_string(),
                ..Default::default()
            }))
    }

    fn save_lock(&self, lock: &Lockfile) -> Result<(), String> {
        self.store
            .put_record(
                LOCK_KIND,
                &lock.sandbox,
                &serde_json::to_value(lock).unwrap_or_default(),
            )
            .map_err(|e| e.to_string())?;
        let _ = Durability::Immediate;
        Ok(())
    }

    /// Reads the installed versions (dpkg, pip freeze, package-lock.json) into the lockfile.
    fn write_lock(&self, sb: &str, plan: &SoftwarePlan) -> Result<(), String> {
        let mut lock = self.lockfile(sb)?;
        for c in &plan.packages {
            if !lock
                .packages
                .iter()
                .any(|p| p.ecosystem == c.ecosystem && p.name == c.name)
            {
                lock.packages.push(LockedPackage {
                    ecosystem: c.ecosystem,
                    name: c.name.clone(),
                    version: c.version.clone(),
                    requested: true,
                });
            }
        }
        let apt: Vec<String> = lock
            .packages
            .iter()
            .filter(|p| p.ecosystem == Ecosystem::Apt && p.requested)
            .map(|p| p.name.clone())
            .collect();
        if !apt.is_empty() {
            let mut argv = vec![
                "dpkg-query".to_string(),
                "-W".into(),
                "-f=${Package}\t${Version}\n".into(),
                "--".into(),
            ];
            argv.extend(apt);
            let mut out = Vec::new();
            let _ = self
                .sandboxes
                .exec(sb, &argv, &[], None, Duration::from_secs(60), &mut |l| {
                    out.push(l.to_string())
                })?;
            for l in out {
                if let Some((n, v)) = l.split_once('\t') {
                    if let Some(p) = lock
                        .packages
                        .iter_mut()
                        .find(|p| p.ecosystem == Ecosystem::Apt && p.name == n)
                    {
                        p.version = v.trim().to_string();
                    }
                }
            }
        }
        if lock.packages.iter().any(|p| p.ecosystem == Ecosystem::Pip) {
            let mut out = Vec::new();
            let argv = vec![format!("{VENV_DIR}/bin/pip"), "freeze".into()];
            if self
                .sandboxes
                .exec(sb, &argv, &[], None, Duration::from_secs(60), &mut |l| {
                    out.push(l.to_string())
                })?
                == 0
            {
                lock.packages.retain(|p| p.ecosystem != Ecosystem::Pip || p.requested);
                for l in &out {
                    if let Some((n, v)) = l.split_once("==") {
                        let norm = super::pypi_normalize(n);
                        match lock
                            .packages
                            .iter_mut()
                            .find(|p| p.ecosystem == Ecosystem::Pip && super::pypi_normalize(&p.name) == norm)
                        {
                            Some(p) => p.version = v.trim().to_string(),
                            None => lock.packages.push(LockedPackage {
                                ecosystem: Ecosystem::Pip,
                                name: n.to_string(),
                                version: v.trim().to_string(),
                                requested: false,
                            }),
                        }
                    }
                }
                lock.pip_freeze = Some(out.join("\n") + "\n");
            }
        }
        if lock.packages.iter().any(|p| p.ecosystem == Ecosystem::Npm) {
            if let Some(b) = self.sandboxes.read_file(sb, &format!("{NPM_DIR}/package-lock.json"))? {
                let text = String::from_utf8_lossy(&b).into_owned();
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
                    for p in lock.packages.iter_mut().filter(|p| p.ecosystem == Ecosystem::Npm) {
                        if let Some(ver) = v["packages"][format!("node_modules/{}", p.name)]["version"].as_str() {
                            p.version = ver.to_string();
                        }
                    }
                }
                lock.package_lock = Some(text);
            }
        }
        for s in &plan.starters {
            if !lock.starters.contains(&s.key) {
                lock.starters.push(s.key.clone());
            }
        }
        lock.updated_ms = self.clock.now_ms();
        self.save_lock(&lock)
    }

    /// Removes packages CacheOS installed (apt purge, pip uninstall, npm uninstall), synchronously.
    pub fn remove(&self, sandbox: &str, packages: &[super::PackageRequest]) -> Result<Lockfile, SoftwareError> {
        let mut lock = self.lockfile(sandbox).map_err(SoftwareError::Unavailable)?;
        for p in packages {
            super::validate_name(p.ecosystem, &p.name)?;
            if !lock
                .packages
                .iter()
                .any(|l| l.ecosystem == p.ecosystem && l.name == p.name && l.requested)
            {
                let have: Vec<&str> = lock
                    .packages
                    .iter()
                    .filter(|l| l.requested)
                    .map(|l| l.name.as_str())
                    .collect();
                return Err(SoftwareError::NotFound {
                    ecosystem: p.ecosystem,
                    name: format!("{} (not installed by CacheOS in {sandbox})", p.name),
                    close: super::close_names(&p.name, have, 5),
                });
            }
        }
        if let Some(j) = self.running_in(sandbox) {
            return Err(SoftwareError::Invalid(format!(
                "invalid sandbox: job {j} is installing into {sandbox} now"
            )));
        }
        let facts = self
            .sandboxes
            .facts(sandbox)
            .map_err(SoftwareError::Unavailable)?
            .ok_or_else(|| SoftwareError::Invalid(format!("invalid sandbox: {sandbox} does not exist")))?;
        if !facts.running {
            return Err(SoftwareError::Unavailable(format!(
                "sandbox {sandbox} must be running to remove software"
            )));
        }
        let of = |e: Ecosystem| {
            packages
                .iter()
                .filter(|p| p.ecosystem == e)
                .map(|p| p.name.clone())
                .collect::<Vec<_>>()
        };
        let runs: Vec<(Ecosystem, Vec<String>, Option<&str>)> = vec![
            (
                Ecosystem::Apt,
                [
                    vec!["apt-get".into(), "purge".into(), "-y".into(), "--".into()],
                    of(Ecosystem::Apt),
                ]
                .concat(),
                None,
            ),
            (
                Ecosystem::Pip,
                [
                    vec![
                        format!("{VENV_DIR}/bin/pip"),
                        "uninstall".into(),
                        "-y".into(),
                        "--".into(),
                    ],
                    of(Ecosystem::Pip),
                ]
                .concat(),
                None,
            ),
            (
                Ecosystem::Npm,
                [
                    vec![
                        "npm".into(),
                        "uninstall".into(),
                        "--no-audit".into(),
                        "--no-fund".into(),
                        "--".into(),
                    ],
                    of(Ecosystem::Npm),
                ]
                .concat(),
                Some(NPM_DIR),
            ),
        ];
        for (eco, argv, cwd) in runs {
            if of(eco).is_empty() {
                continue;
            }
            let mut lines = Vec::new();
            let env = vec![("DEBIAN_FRONTEND".to_string(), "noninteractive".to_string())];
            let code = self
                .sandboxes
                .exec(sandbox, &argv, &env, cwd, self.step_timeout, &mut |l| {
                    lines.push(l.to_string())
                })
                .map_err(SoftwareError::Unavailable)?;
            if code != 0 {
                return Err(SoftwareError::Unavailable(format!(
                    "`{}` failed: {}",
                    argv.join(" "),
                    explain(eco, &lines, code)
                )));
            }
            lock.packages
                .retain(|l| !(l.ecosystem == eco && of(eco).contains(&l.name)));
        }
        if lock.packages.iter().all(|p| p.ecosystem != Ecosystem::Pip) {
            lock.pip_freeze = None;
        }
        lock.updated_ms = self.clock.now_ms();
        self.save_lock(&lock).map_err(SoftwareError::Unavailable)?;
        Ok(lock)
    }

    // --- exposed ports and services

    fn exposures(&self, sandbox: &str) -> Exposures {
        self.store
            .get_record(EXPOSE_KIND, sandbox)
            .ok()
            .flatten()
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_else(|| Exposures {
                sandbox: sandbox.to_string(),
                ports: Vec::new(),
            })
    }

    fn services(&self, sandbox: &str) -> Services {
        self.store
            .get_record(SERVICE_KIND, sandbox)
            .ok()
            .flatten()
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_else(|| Services {
                sandbox: sandbox.to_string(),
                services: Vec::new(),
            })
    }

    /// Applies every recorded exposure of running sandboxes (after an expose, an unexpose, a sandbox start).
    pub fn sync_forwards(&self) -> Result<(), String> {
        let mut forwards = Vec::new();
        for (key, v) in self.store.list_records(EXPOSE_KIND).map_err(|e| e.to_string())? {
            let Ok(e) = serde_json::from_value::<Exposures>(v) else {
                continue;
            };
            let Ok(Some(f)) = self.sandboxes.facts(&key) else {
                continue;
            };
            let Some(ip) = f.ip.filter(|ip| super::expose::valid_ipv4(ip) && f.running) else {
                continue;
            };
            for p in e.ports {
                forwards.push(Forward {
                    sandbox: key.clone(),
                    ip: ip.clone(),
                    port: p.port,
                    host_port: p.host_port,
                });
            }
        }
        forwards.sort();
        self.forwarder.apply(&forwards)
    }

    /// `sandbox.expose`.
    pub fn expose(
        &self,
        sandbox: &str,
        port: u16,
        host_port: Option<u16>,
    ) -> Result<SandboxNetworkInfo, SoftwareError> {
        let host_port = host_port.unwrap_or(port);
        if port == 0 || host_port == 0 {
            return Err(SoftwareError::Invalid("invalid port: must be 1..=65535".into()));
        }
        if super::expose::RESERVED_HOST_PORTS.contains(&host_port) {
            return Err(SoftwareError::Invalid(format!(
                "invalid host_port: {host_port} is reserved on the appliance; choose another (host_port)"
            )));
        }
        let f = self
            .sandboxes
            .facts(sandbox)
            .map_err(SoftwareError::Unavailable)?
            .ok_or_else(|| SoftwareError::Invalid(format!("invalid name: sandbox {sandbox} does not exist")))?;
        if f.network != Network::Nat {
            return Err(SoftwareError::Invalid(format!(
                "invalid name: sandbox {sandbox} has no network (NAT); only a NAT sandbox's port can be exposed"
            )));
        }
        for (key, v) in self
            .store
            .list_records(EXPOSE_KIND)
            .map_err(|e| SoftwareError::Unavailable(e.to_string()))?
        {
            let Ok(e) = serde_json::from_value::<Exposures>(v) else {
                continue;
            };
            if key != sandbox && e.ports.iter().any(|p| p.host_port == host_port) {
                return Err(SoftwareError::Invalid(format!(
                    "invalid host_port: {host_port} is exposed for sandbox {key} already"
                )));
            }
        }
        let mut e = self.exposures(sandbox);
        let before = e.clone();
        e.ports.retain(|p| p.port != port && p.host_port != host_port);
        e.ports.push(ExposedPort { port, host_port });
        e.ports.sort_by_key(|p| p.port);
        self.put(EXPOSE_KIND, sandbox, &e)?;
        if let Err(why) = self.sync_forwards() {
            self.put(EXPOSE_KIND, sandbox, &before)?;
            let _ = self.sync_forwards();
            return Err(SoftwareError::Unavailable(format!(
                "cannot set up the port forward: {why}"
            )));
        }
        Ok(self.network_info(sandbox))
    }

    /// `sandbox.unexpose`.
    pub fn unexpose(&self, sandbox: &str, port: u16) -> Result<SandboxNetworkInfo, SoftwareError> {
        let mut e = self.exposures(sandbox);
        if !e.ports.iter().any(|p| p.port == port) {
            let have: Vec<String> = e.ports.iter().map(|p| p.port.to_string()).collect();
            return Err(SoftwareError::Invalid(format!(
                "invalid port: {port} of sandbox {sandbox} is not exposed{}",
                if have.is_empty() {
                    String::new()
                } else {
                    format!(" (exposed: {})", have.join(", "))
                }
            )));
        }
        e.ports.retain(|p| p.port != port);
        if e.ports.is_empty() {
            self.store
                .delete_record(EXPOSE_KIND, sandbox)
                .map_err(|e| SoftwareError::Unavailable(e.to_string()))?;
        } else {
            self.put(EXPOSE_KIND, sandbox, &e)?;
        }
        self.sync_forwards().map_err(SoftwareError::Unavailable)?;
        Ok(self.network_info(sandbox))
    }

    fn put<T: serde::Serialize>(&self, kind: &str, key: &str, v: &T) -> Result<(), SoftwareError> {
        self.store
            .put_record(kind, key, &serde_json::to_value(v).unwrap_or_default())
            .map_err(|e| SoftwareError::Unavailable(e.to_string()))
    }

    /// Writes and enables a service unit inside the sandbox (restarted on failure, started with the sandbox).
    fn set_service(&self, sandbox: &str, service: &str, command: &[String]) -> Result<(), String> {
        starters::validate_service_name(service)?;
        let unit = starters::unit_name(service);
        let text = starters::unit_file(service, command, None)?;
        self.sandboxes
            .write_file(sandbox, &format!("/etc/systemd/system/{unit}"), text.as_bytes())?;
        for argv in [
            vec!["systemctl".to_string(), "daemon-reload".into()],
            vec!["systemctl".into(), "enable".into(), "--now".into(), unit.clone()],
            vec!["systemctl".into(), "restart".into(), unit.clone()],
        ] {
            let mut lines = Vec::new();
            let code = self
                .sandboxes
                .exec(sandbox, &argv, &[], None, Duration::from_secs(60), &mut |l| {
                    lines.push(l.to_string())
                })?;
            if code != 0 {
                return Err(format!("`{}` failed ({code}): {}", argv.join(" "), lines.join(" ")));
            }
        }
        let mut s = self.services(sandbox);
        s.services.retain(|x| x.service != service);
        s.services.push(SandboxService {
            service: service.to_string(),
            unit,
            command: command.to_vec(),
        });
        self.put(SERVICE_KIND, sandbox, &s).map_err(|e| e.to_string())
    }

    /// `sandbox.service`: an empty command stops and removes the service.
    pub fn service(
        &self,
        sandbox: &str,
        service: Option<&str>,
        command: &[String],
    ) -> Result<SandboxNetworkInfo, SoftwareError> {
        let service = service.unwrap_or("main");
        starters::validate_service_name(service)
            .map_err(|e| SoftwareError::Invalid(format!("invalid service: {e}")))?;
        crate::sandbox::validate_argv(command)
            .or_else(|e| if command.is_empty() { Ok(()) } else { Err(e) })
            .map_err(|e| SoftwareError::Invalid(e.to_string()))?;
        let f = self
            .sandboxes
            .facts(sandbox)
            .map_err(SoftwareError::Unavailable)?
            .ok_or_else(|| SoftwareError::Invalid(format!("invalid name: sandbox {sandbox} does not exist")))?;
        if let Err(why) = &f.installable {
            return Err(SoftwareError::Invalid(format!("invalid name: {why}")));
        }
        if !f.running {
            return Err(SoftwareError::Unavailable(format!(
                "sandbox {sandbox} must be running to set up a service"
            )));
        }
        if command.is_empty() {
            let unit = starters::unit_name(service);
            let mut s = self.services(sandbox);
            if !s.services.iter().any(|x| x.service == service) {
                return Err(SoftwareError::Invalid(format!(
                    "invalid service: {service} is not set up in {sandbox}"
                )));
            }
            let argv = vec!["systemctl".to_string(), "disable".into(), "--now".into(), unit.clone()];
            self.sandboxes
                .exec(sandbox, &argv, &[], None, Duration::from_secs(60), &mut |_| {})
                .map_err(SoftwareError::Unavailable)?;
            let rm = vec![
                "rm".to_string(),
                "-f".into(),
                "--".into(),
                format!("/etc/systemd/system/{unit}"),
            ];
            self.sandboxes
                .exec(sandbox, &rm, &[], None, Duration::from_secs(60), &mut |_| {})
                .map_err(SoftwareError::Unavailable)?;
            s.services.retain(|x| x.service != service);
            self.put(SERVICE_KIND, sandbox, &s)?;
        } else {
            starters::unit_file(service, command, None)
                .map_err(|e| SoftwareError::Invalid(format!("invalid command: {e}")))?;
            self.set_service(sandbox, service, command)
                .map_err(SoftwareError::Unavailable)?;
        }
        Ok(self.network_info(sandbox))
    }

    /// URLs of a sandbox's exposed ports on the appliance.
    pub fn urls(&self, sandbox: &str) -> Vec<String> {
        let addr = (self.address)().unwrap_or_else(|| "localhost".into());
        self.exposures(sandbox)
            .ports
            .iter()
            .map(|p| format!("http://{addr}:{}", p.host_port))
            .collect()
    }

    /// Exposed ports, URLs and services of a sandbox (for `sandbox.info` and the replies).
    pub fn network_info(&self, sandbox: &str) -> SandboxNetworkInfo {
        let ip = self.sandboxes.facts(sandbox).ok().flatten().and_then(|f| f.ip);
        SandboxNetworkInfo {
            sandbox: sandbox.to_string(),
            ip,
            exposed: self.exposures(sandbox).ports,
            urls: self.urls(sandbox),
            services: self.services(sandbox).services,
        }
    }

    /// Forgets the records of a removed sandbox and drops its forwards.
    pub fn forget_sandbox(&self, sandbox: &str) {
        for kind in [EXPOSE_KIND, SERVICE_KIND, LOCK_KIND] {
            let _ = self.store.delete_record(kind, sandbox);
        }
        let _ = self.sync_forwards();
    }
}
