//! cacheosd, the CacheOS supervisor: loads configuration, opens the store, wires the core to its front ends
//! (D-Bus, web port) and workers, supervises them, talks to systemd (READY, WATCHDOG, STOPPING) and shuts down
//! cleanly on SIGTERM.

mod config;
mod supervisor;
mod web_tls;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use cacheos_core::drive::{DriveConfig, DriveManager};
use cacheos_core::sandbox::{ManagerConfig, SandboxManager, Template, TemplateKind};
use cacheos_core::{
    Caller, Clock, Core, CoreDeps, DaemonState, EventBus, Frontend, GroupPolicy, Operation, Principal, SystemClock,
    SystemProbe,
};
use cacheos_dbus::Bus;
use cacheos_store::RedbStore;
use cacheos_sys::accounts::SystemAccounts;
use cacheos_sys::probe::HostProbe;
use clap::Parser;
use sd_notify::NotifyState;
use tokio::signal::unix::{signal, SignalKind};

use crate::config::Config;
use crate::supervisor::Supervisor;

/// The CacheOS supervisor daemon.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Args {
    /// Development mode: session bus, web port on 127.0.0.1:8080 unless --listen says otherwise, fault injection
    /// on, and the system configuration files are not read (only --config). Needs --state-dir.
    #[arg(long)]
    dev: bool,
    /// Directory for the store and the web token (overrides `state_dir`).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Web port address (overrides `web.listen`).
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<SocketAddr>,
    /// An extra configuration file read after the system ones.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Bus to serve on (overrides `dbus.bus`).
    #[arg(long, value_parser = ["system", "session"])]
    bus: Option<String>,
    /// Development mode only: drives and sandboxes over the core's recording fakes instead of loop devices, mounts
    /// and containers (nothing on the host is touched; what was "attached" is forgotten at exit). For fuzzers and
    /// crash tests that send changing operations.
    #[arg(long, requires = "dev")]
    fake_side_effects: bool,
}

fn init_logging() {
    use tracing_subscriber::prelude::*;
    let filter = tracing_subscriber::EnvFilter::try_from_env("CACHEOS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // systemd connects stdout/stderr to the journal and says so in JOURNAL_STREAM.
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        if let Ok(journald) = tracing_journald::layer() {
            tracing_subscriber::registry()
                .with(filter)
                .with(journald.with_syslog_identifier("cacheosd".into()))
                .init();
            return;
        }
    }
    tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .init();
}

fn load_config(args: &Args) -> anyhow::Result<Config> {
    let mut files: Vec<&Path> = Vec::new();
    if !args.dev {
        files.push(Path::new(config::VENDOR_CONFIG));
        files.push(Path::new(config::ADMIN_CONFIG));
    }
    if let Some(c) = &args.config {
        anyhow::ensure!(c.exists(), "configuration file {} does not exist", c.display());
        files.push(c);
    }
    let mut cfg = config::load(&files)?;
    if args.dev {
        anyhow::ensure!(args.state_dir.is_some(), "--dev needs --state-dir DIR");
        cfg.dbus.bus = "session".into();
        cfg.web.listen = "127.0.0.1:8080".parse().unwrap();
        cfg.supervisor.fault_injection = true;
    }
    if let Some(d) = &args.state_dir {
        cfg.state_dir = std::path::absolute(d).with_context(|| format!("invalid --state-dir {}", d.display()))?;
    }
    if let Some(l) = args.listen {
        cfg.web.listen = l;
    }
    if let Some(b) = &args.bus {
        cfg.dbus.bus = b.clone();
    }
    cfg.validate()?;
    Ok(cfg)
}

/// The drive manager over the real side effects. In development mode the runtime directory is below the state
/// directory, and `CACHEOS_TEST_PAUSE_AT` (comma-separated step names) makes drive operations stop at those steps
/// so tests can kill the daemon there (the step name is written to `<state_dir>/paused`).
fn drive_manager(
    cfg: &Config,
    dev: bool,
    fakes: bool,
    store: Arc<RedbStore>,
    events: EventBus,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<DriveManager> {
    let run_dir = if dev {
        cfg.state_dir.join("run")
    } else {
        cfg.drives.run_dir.clone()
    };
    let mut dc = DriveConfig::new(&cfg.state_dir, &run_dir);
    dc.max_upload_bytes = cfg.drives.max_upload_bytes;
    if !cfg.drives.images_dir.as_os_str().is_empty() {
        dc.images_dir = cfg.drives.images_dir.clone();
    }
    dc.allowed = std::iter::once(dc.images_dir.clone())
        .chain(cfg.drives.allowed.iter().cloned())
        .collect();
    for dir in [&dc.images_dir, &dc.mount_dir, &dc.export_dir] {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    if dev {
        if let Ok(points) = std::env::var("CACHEOS_TEST_PAUSE_AT") {
            dc.pause_points = points.split(',').map(str::to_owned).collect();
            dc.pause_marker = Some(cfg.state_dir.join("paused"));
        }
    }
    let deps = if fakes {
        cacheos_core::drive::DriveDeps::fake(&cacheos_core::drive::fake::FakeDrives::new())
    } else {
        cacheos_sys::drive::kernel_deps()
    };
    Ok(DriveManager::new(dc, deps, store, events, clock))
}

/// The templates sandboxes can be made from: the appliance's own `/usr` as `host` (when enabled; never booted, it
/// runs `sleep` so commands can be exec'd into it), then the OS trees
/// and squashfs/erofs images in the templates directory, then those in the system templates directory (the image's
/// own, such as `debian`; not in development mode). The first of a name wins. Images are probed for an init below
/// `probe_dir`. The directories are scanned again whenever an entry was added or removed (see `DirTemplates`).
fn sandbox_templates(
    cfg: &Config,
    templates_dir: &Path,
    probe_dir: &Path,
    dev: bool,
) -> (Vec<Template>, cacheos_sys::sandbox::templates::DirTemplates) {
    let mut fixed = Vec::new();
    if cfg.sandboxes.host_template {
        fixed.push(Template {
            name: "host".into(),
            kind: TemplateKind::Host,
            path: "/".into(),
            description: "the appliance's own /usr, read-only, under a fresh root with a minimal /etc".into(),
            // Not booted: the appliance's units (cacheosd itself among them) have no business inside a sandbox.
            command: Some(vec!["/usr/bin/sleep".to_owned(), "2147483647".to_owned()]),
        });
    }
    let system = (!dev && !cfg.sandboxes.system_templates_dir.as_os_str().is_empty())
        .then(|| cfg.sandboxes.system_templates_dir.clone());
    let dirs = std::iter::once(templates_dir.to_path_buf()).chain(system).collect();
    (
        fixed,
        cacheos_sys::sandbox::templates::DirTemplates::new(dirs, Some(probe_dir.to_path_buf())),
    )
}

/// Templates on attached drives (`drive:NAME`, `drive:NAME/PATH`): `template list` shows `drive:NAME` for every
/// attached drive whose first mounted file system is an OS tree; any `drive:NAME/PATH` below a drive's mount is made
/// into a template when asked for (a tree, a squashfs/erofs image or a raw disk image). The drive stays read-only
/// underneath: sandboxes write to their own overlay.
struct DriveTemplates {
    drives: Arc<DriveManager>,
    probe_dir: PathBuf,
}

impl DriveTemplates {
    fn mount_of(&self, drive: &str) -> Result<PathBuf, String> {
        let info = self.drives.info(drive).map_err(|e| e.to_string())?;
        info.partitions
            .iter()
            .find_map(|p| p.mount_point.clone())
            .ok_or_else(|| format!("drive {drive} has no mounted file system"))
    }
}

impl cacheos_core::sandbox::TemplateSource for DriveTemplates {
    fn templates(&self) -> Vec<Template> {
        let Ok(drives) = self.drives.list() else {
            return Vec::new();
        };
        drives
            .iter()
            .filter_map(|d| {
                let mount = d.partitions.iter().find_map(|p| p.mount_point.clone())?;
                let name = format!("{}{}", cacheos_core::sandbox::DRIVE_TEMPLATE_PREFIX, d.name);
                cacheos_sys::sandbox::templates::template_at(&name, &mount, None).ok()
            })
            .collect()
    }

    /// None for the chat's context: drive templates are named `drive:…`, which is not how people talk, and telling
    /// which drives hold an OS tree means reading every mount.
    fn names(&self) -> Vec<String> {
        Vec::new()
    }

    fn resolve(&self, name: &str) -> Option<Result<Template, String>> {
        let rest = name.strip_prefix(cacheos_core::sandbox::DRIVE_TEMPLATE_PREFIX)?;
        Some((|| {
            let (drive, rel) = rest.split_once('/').unwrap_or((rest, ""));
            let rel = Path::new(rel);
            if rel.components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
                return Err(format!("{} must be a plain path below the drive", rel.display()));
            }
            let mount = self.mount_of(drive)?;
            let path = mount
                .join(rel)
                .canonicalize()
                .map_err(|e| format!("{}: {e}", rel.display()))?;
            let root = mount.canonicalize().map_err(|e| e.to_string())?;
            if !path.starts_with(&root) {
                return Err(format!("{} leads outside drive {drive}", rel.display()));
            }
            cacheos_sys::sandbox::templates::template_at(name, &path, Some(&self.probe_dir))
        })())
    }
}

/// The sandbox manager over the real side effects (overlay roots, nspawn as a transient unit when systemd is PID 1
/// and spawned directly otherwise). In development mode every directory is below the state directory.
fn sandbox_manager(
    cfg: &Config,
    dev: bool,
    fakes: bool,
    store: Arc<RedbStore>,
    clock: Arc<dyn Clock>,
    drives: Option<Arc<DriveManager>>,
) -> anyhow::Result<SandboxManager> {
    use cacheos_sys::sandbox::{Mode, NspawnRunner, OverlayRoots};
    let or_state = |p: &Path, default: &str| {
        if p.as_os_str().is_empty() {
            cfg.state_dir.join(default)
        } else {
            p.to_path_buf()
        }
    };
    let run_dir = if dev {
        cfg.state_dir.join("run/sandboxes")
    } else {
        cfg.sandboxes.run_dir.clone()
    };
    let data_dir = or_state(&cfg.sandboxes.data_dir, "sandboxes");
    let templates_dir = or_state(&cfg.sandboxes.templates_dir, "templates");
    let (roots_dir, runner_dir) = (run_dir.join("roots"), run_dir.join("runner"));
    for dir in [&roots_dir, &runner_dir, &data_dir, &templates_dir] {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mode = if cacheos_sys::systemd_booted() {
        Mode::Systemd
    } else {
        Mode::Direct
    };
    let (templates, scanned) = sandbox_templates(cfg, &templates_dir, &run_dir.join("probe"), dev);
    let mut pause = ManagerConfig::default();
    if dev {
        if let Ok(points) = std::env::var("CACHEOS_TEST_PAUSE_AT") {
            pause.pause_points = points.split(',').map(str::to_owned).collect();
            pause.pause_marker = Some(cfg.state_dir.join("paused"));
        }
    }
    if fakes {
        // The recording fakes with one directory template: nothing is prepared, started or bound on the host.
        let f = cacheos_core::sandbox::fake::FakeSandboxes::new();
        let template = Template {
            name: "busybox".into(),
            kind: TemplateKind::Directory,
            path: templates_dir.join("busybox"),
            description: "a fake busybox tree (--fake-side-effects)".into(),
            command: Some(vec!["/bin/sleep".to_owned(), "2147483647".to_owned()]),
        };
        tracing::info!("sandboxes over the recording fakes");
        return Ok(SandboxManager::new(
            store,
            Arc::new(f.roots()),
            Arc::new(f.runner()),
            clock,
            vec![template],
            pause,
        ));
    }
    let manager = SandboxManager::new(
        store,
        // issue 15: debian sandboxes share one apt download cache and package index on the data partition.
        Arc::new(cacheos_sys::software::SharedAptCache::new(
            Arc::new(OverlayRoots::new(roots_dir, data_dir)),
            cfg.state_dir.join("software/apt"),
        )),
        Arc::new(NspawnRunner::new(mode, runner_dir)),
        clock,
        templates,
        ManagerConfig {
            stop_timeout: Duration::from_secs(cfg.sandboxes.stop_timeout_secs),
            ..pause
        },
    )
    .with_template_source(Arc::new(scanned));
    let manager = match drives {
        Some(drives) => manager.with_template_source(Arc::new(DriveTemplates {
            drives,
            probe_dir: run_dir.join("probe"),
        })),
        None => manager,
    };
    tracing::info!(?mode, templates = manager.templates().len(), "sandboxes ready");
    Ok(manager)
}

fn notify(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::warn!(error = %e, "sd_notify failed");
    }
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    init_logging();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cacheosd: cannot start runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("cacheosd: error: {e:#}");
            notify(&[NotifyState::Status(&format!("failed: {e:#}"))]);
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let cfg = load_config(&args)?;
    let dev = args.dev;
    tracing::info!(version = cacheos_core::VERSION, state_dir = %cfg.state_dir.display(), dev, "cacheosd starting");
    std::fs::create_dir_all(&cfg.state_dir)
        .with_context(|| format!("cannot create state directory {}", cfg.state_dir.display()))?;

    let store = Arc::new(RedbStore::open(
        &cfg.state_dir.join("cacheos.redb"),
        cfg.audit.max_records,
    )?);
    let token = if cfg.web.enabled {
        Some(cacheos_sys::token::load_or_create(&cfg.state_dir.join("web-token"))?)
    } else {
        None
    };

    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let events = EventBus::new(1024, clock.clone());
    let clock_for_chat = clock.clone();
    let sup = Supervisor::new(events.clone(), clock.clone(), cfg.supervisor.clone(), dev);
    let probe = Arc::new(HostProbe::new());
    let drives = if cfg.drives.enabled {
        Some(Arc::new(drive_manager(
            &cfg,
            dev,
            args.fake_side_effects,
            store.clone(),
            events.clone(),
            clock.clone(),
        )?))
    } else {
        None
    };
    let sandboxes = if cfg.sandboxes.enabled {
        Some(Arc::new(sandbox_manager(
            &cfg,
            dev,
            args.fake_side_effects,
            store.clone(),
            clock.clone(),
            drives.clone(),
        )?))
    } else {
        None
    };
    // The metrics history for `system.history` (every sample for an hour, minutes for a day, hours for 30 days),
    // kept in the store across restarts and filled by the metrics task below.
    let metrics = Arc::new(cacheos_core::MetricsHistory::persistent(
        store.clone(),
        cfg.metrics.sample_interval_secs,
    )?);
    let core = Arc::new(
        Core::new(CoreDeps {
            store: store.clone(),
            probe: probe.clone(),
            supervisor: sup.clone(),
            authorizer: Arc::new(GroupPolicy::new(SystemAccounts, cfg.operator_group.clone())),
            clock,
            events,
            web_token: token.clone(),
            drives: drives.clone(),
            sandboxes: sandboxes.clone(),
            metrics: metrics.clone(),
        })
        .with_diagnostics(diagnostics(dev, args.fake_side_effects).await),
    );
    // issue 18 (licences): the proof-signing key is made on first start and kept in the state directory (0600).
    let key_path = cfg.state_dir.join("proof-signing.key");
    match cacheos_core::license::Licensing::new(&key_path, "/proc".into(), "/".into()) {
        Ok(l) => {
            tracing::info!(public_key = %l.public_key(), key = %key_path.display(), "proof signing key loaded");
            core.set_licensing(Arc::new(l));
        }
        Err(e) => tracing::error!(error = %e, "licence tools disabled: the proof signing key is unusable"),
    }

    // issue 15 (software): installs into sandboxes; the Debian index is the one debian sandboxes share.
    if let Some(m) = &sandboxes {
        use cacheos_core::software::{install, resolve};
        let apt_dir = cfg.state_dir.join("software/apt");
        let http: Arc<dyn resolve::HttpGet> = Arc::new(cacheos_sys::software::CurlGet::default());
        let forwarder: Arc<dyn cacheos_core::software::expose::PortForwarder> = if dev {
            // Development hosts keep their firewall: forwards are only recorded.
            Arc::new(cacheos_core::software::fake::FakeForwarder::default())
        } else {
            Arc::new(cacheos_sys::software::NftForwarder::default())
        };
        let software = Arc::new(install::Software::new(
            resolve::Resolvers {
                apt: Arc::new(resolve::DebianLists::new(apt_dir.join("lists"))),
                pip: Arc::new(resolve::Pypi::new(http.clone())),
                npm: Arc::new(resolve::Npm::new(http)),
            },
            Arc::new(install::ManagedSandboxes(m.clone())),
            forwarder,
            store.clone(),
            core.events().clone(),
            Arc::new(SystemClock),
            apt_dir.join("archives"),
            Arc::new(cacheos_sys::software::primary_address),
        ));
        if let Err(e) = software.sync_forwards() {
            tracing::warn!(error = %e, "exposed sandbox ports could not be applied");
        }
        core.set_software(software);
    }

    // issue 17 (kb): the knowledge base, on the data partition; the docs are (re)indexed in the background.
    if cfg.kb.enabled {
        let dir = if cfg.kb.dir.as_os_str().is_empty() {
            cfg.state_dir.join("kb")
        } else {
            cfg.kb.dir.clone()
        };
        let docs_dir = if dev && cfg.kb.docs_dir == config::KbConfig::default().docs_dir {
            cfg.state_dir.join("doc")
        } else {
            cfg.kb.docs_dir.clone()
        };
        let kb_config = cacheos_kb::KbConfig {
            max_file_bytes: cfg.kb.max_file_bytes,
            ..Default::default()
        };
        match cacheos_kb::TantivyKb::open(&dir, kb_config) {
            Ok(kb) => {
                let jobs = cacheos_core::kb::KbJobs::new(Arc::new(kb), core.events().clone());
                core.set_kb(cacheos_core::executor::KbDeps {
                    jobs,
                    docs_dir: docs_dir.clone(),
                });
                if docs_dir.is_dir() {
                    let op = Operation::KbIndex(cacheos_core::kb::KbIndexArgs {
                        source: cacheos_core::kb::DOCS_SOURCE.into(),
                        path: None,
                    });
                    if let Err(e) = core.execute(&Caller::new(Frontend::Internal, Principal::Internal), op) {
                        tracing::warn!(error = %e.full_message(), "indexing the documentation did not start");
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %cacheos_core::error::chain(&e), dir = %dir.display(), "knowledge base unavailable")
            }
        }
    }

    // issue 14 (models): the language-model backends. Nothing is active on a fresh appliance; a choice made with
    // model.use is kept in the store and re-activated here in the background (an endpoint may be slow to answer).
    let models = Arc::new(
        cacheos_model::ModelManager::new(&cfg.state_dir.join("models"), &cfg.state_dir).with_gguf(cfg.models.gguf()),
    );
    core.set_models(cacheos_core::executor::ModelDeps {
        host: models.clone(),
        models_dir: cfg.state_dir.join("models"),
        web_listen: cfg.web.enabled.then_some(cfg.web.listen),
    });
    {
        let core = core.clone();
        tokio::task::spawn_blocking(move || {
            if let Some(e) = core.restore_model() {
                tracing::warn!(error = %e, "the chosen language model could not be re-activated");
            }
        });
    }

    // Operations the last run did not finish (SIGKILL, crash, power loss) get their audit record first (outcome
    // error, code `interrupted`), so the log says what was cut off before reconciling repairs what it left.
    {
        let core = core.clone();
        match tokio::task::spawn_blocking(move || core.settle_interrupted()).await? {
            Ok(settled) if !settled.is_empty() => {
                let names: Vec<&str> = settled.iter().map(|r| r.record.operation.as_str()).collect();
                tracing::warn!(operations = ?names, "operations interrupted by the last stop were recorded");
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e.full_message(), "recording interrupted operations failed"),
        }
    }

    // Make drive records and the kernel agree before any front end can touch drives, then sandbox records and the
    // running containers (sandboxes bind drives, so drives come first).
    let reconciles = [
        (drives.is_some(), Operation::DriveReconcile, "drives"),
        (sandboxes.is_some(), Operation::SandboxReconcile, "sandboxes"),
    ];
    for (enabled, op, what) in reconciles {
        if !enabled {
            continue;
        }
        let core = core.clone();
        let report = tokio::task::spawn_blocking(move || {
            core.execute(&Caller::new(Frontend::Internal, Principal::Internal), op)
        })
        .await?;
        if let Err(e) = report {
            tracing::error!(error = %e.full_message(), "reconciling {what} failed");
        }
    }

    // The chat service, shared by every chat front end.
    let sup_for_known = sup.clone();
    let known_clock = clock_for_chat.clone();
    // Names the chat may refer to. Read straight from the managers without auditing: they only shape the
    // interpretation (presentation); whatever the chat then proposes runs through `Core::execute`.
    let (drives_for_known, sandboxes_for_known) = (drives.clone(), sandboxes.clone());
    let chat = Arc::new(
        cacheos_chat::ChatService::new(
            core.clone(),
            store.clone(),
            Box::new(move || cacheos_chat::Known {
                tasks: cacheos_core::SupervisorControl::status(sup_for_known.as_ref())
                    .tasks
                    .into_iter()
                    .map(|t| t.name)
                    .collect(),
                now_ms: known_clock.now_ms(),
                // Names only: this runs for every chat message, so nothing is probed or opened.
                drives: drives_for_known.as_ref().map(|d| d.names()).unwrap_or_default(),
                images: drives_for_known.as_ref().map(|d| d.image_names()).unwrap_or_default(),
                sandboxes: sandboxes_for_known.as_ref().map(|s| s.names()).unwrap_or_default(),
                templates: sandboxes_for_known
                    .as_ref()
                    .map(|s| s.template_names())
                    .unwrap_or_default(),
            }),
        )
        .with_model(models),
    );

    // Workers.
    let interval = Duration::from_secs(cfg.metrics.sample_interval_secs);
    let p = probe.clone();
    let core_for_metrics = core.clone();
    sup.spawn("metrics", move |ctx| {
        let (p, core, metrics) = (p.clone(), core_for_metrics.clone(), metrics.clone());
        async move {
            let mut tick = tokio::time::interval(interval);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = ctx.shutdown.cancelled() => return Ok(()),
                }
                let (p, c, m) = (p.clone(), core.clone(), metrics.clone());
                let sample = tokio::task::spawn_blocking(move || {
                    p.sample()?;
                    let sample = cacheos_core::MetricSample::of(&p.status()?);
                    // Kept for `system.history` (written to the store) and published for live charts below.
                    m.push(sample.clone());
                    // Units and sandboxes that failed since the last sample go out as `service-failed`.
                    c.check_failures();
                    anyhow::Ok(sample)
                })
                .await??;
                core.events()
                    .publish(cacheos_core::EventKind::MetricsSampled { sample });
                ctx.ready();
            }
        }
    });

    // D-Bus.
    let bus = match (&cfg.dbus.address, cfg.dbus.bus.as_str()) {
        (Some(a), _) => Bus::Address(a.clone()),
        (None, "session") => Bus::Session,
        _ => Bus::System,
    };
    let c = core.clone();
    let ch = chat.clone();
    let sup_for_state = sup.clone();
    sup.spawn("dbus", move |ctx| {
        let (c, ch, bus) = (c.clone(), ch.clone(), bus.clone());
        let state = cacheos_core::SupervisorControl::status(sup_for_state.as_ref()).state;
        async move {
            tokio::select! {
                r = cacheos_dbus::serve(c, ch, &bus, state, || ctx.ready()) => {
                    r.with_context(|| format!("D-Bus service on {bus:?}"))
                }
                _ = ctx.shutdown.cancelled() => Ok(()),
            }
        }
    });

    // Web port.
    if let Some(token) = token {
        let access = cacheos_web::WebAccess {
            trust_loopback: cfg.web.trust_loopback,
            token,
            max_failures: cfg.web.max_auth_failures,
            failure_window: Duration::from_secs(cfg.web.auth_failure_window_secs),
            ..cacheos_web::WebAccess::new(String::new())
        };
        let app = cacheos_web::router(core.clone(), chat.clone(), access);
        let listen = cfg.web.listen;
        // issue 19: TLS on the same port.
        let tls = if cfg.web.tls {
            Some(web_tls::setup(&cfg, &core, dev)?)
        } else {
            None
        };
        sup.spawn("web", move |ctx| {
            let (app, tls) = (app.clone(), tls.clone());
            async move {
                let listener = tokio::net::TcpListener::bind(listen)
                    .await
                    .with_context(|| format!("cannot listen on {listen}"))?;
                tracing::info!(%listen, tls = tls.is_some(), "web port ready");
                ctx.ready();
                let shutdown = ctx.shutdown.clone();
                cacheos_web::tls::serve(listener, app, tls, async move { shutdown.cancelled().await })
                    .await
                    .context("web server")
            }
        });
    }

    let missing = sup
        .wait_ready(Duration::from_secs(cfg.supervisor.startup_timeout_secs))
        .await;
    if missing.is_empty() {
        sup.set_state(DaemonState::Running);
    } else {
        tracing::warn!(?missing, "not every task came up in time");
        sup.set_state(DaemonState::Degraded);
    }
    notify(&[NotifyState::Ready, NotifyState::Status("running")]);
    tracing::info!("cacheosd ready");

    let mut usec = 0u64;
    let watchdog = sd_notify::watchdog_enabled(false, &mut usec).then(|| Duration::from_micros(usec / 2));
    let mut wd_tick = tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3600)));
    let mut term = signal(SignalKind::terminate()).context("cannot install SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot install SIGINT handler")?;
    loop {
        tokio::select! {
            _ = term.recv() => { tracing::info!("SIGTERM: shutting down"); break; }
            _ = int.recv() => { tracing::info!("SIGINT: shutting down"); break; }
            _ = wd_tick.tick() => {
                if watchdog.is_some() {
                    notify(&[NotifyState::Watchdog]);
                }
            }
        }
    }
    notify(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    sup.shutdown(Duration::from_secs(10)).await;
    store.flush()?;
    tracing::info!("cacheosd stopped");
    Ok(())
}

/// The diagnosis sources: systemd over the system bus and journalctl where systemd is PID 1; elsewhere (and when
/// the system bus cannot be reached, and with --fake-side-effects) every diagnosis operation answers that systemd is not running.
async fn diagnostics(dev: bool, fakes: bool) -> Arc<cacheos_core::diagnose::Diagnostics> {
    use cacheos_core::diagnose::{Diagnostics, UnitSource};
    // With --fake-side-effects no unit of the host may be restarted by a fuzzer: no units at all.
    let units: Arc<dyn UnitSource> = if cacheos_sys::systemd_booted() && !fakes {
        match cacheos_sys::systemd::SystemdUnits::connect().await {
            Ok(u) => Arc::new(u),
            Err(e) => {
                tracing::warn!(error = %e, "diagnosis without systemd units");
                Arc::new(cacheos_sys::systemd::NoSystemd)
            }
        }
    } else {
        if !dev {
            tracing::warn!("systemd is not PID 1: system.diagnose and service.* have no units to read");
        }
        Arc::new(cacheos_sys::systemd::NoSystemd)
    };
    Arc::new(Diagnostics::new(
        units,
        Arc::new(cacheos_sys::journal::Journalctl::default()),
    ))
}
