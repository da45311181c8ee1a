//! The planner: a wish and/or explicit packages → a [`SoftwarePlan`] with exact versions and sizes, the sandbox
//! (an existing one, or a new one from the debian template with NAT), starters, and the argv of every step. It
//! only reads (resolvers, the sandbox's facts, the download cache); nothing is changed before a plan is confirmed.

use std::collections::BTreeSet;

use super::aliases::{self, Wish};
use super::install::{SandboxAccess, SandboxFacts};
use super::resolve::Resolvers;
use super::{
    index, starters, validate_name, validate_version, Candidate, Ecosystem, NewSandbox, SoftwareError,
    SoftwareInstallArgs, SoftwarePlan, DEFAULT_TEMPLATE, NPM_DIR, VENV_DIR,
};

/// One step of an install, as it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Create the sandbox and start it.
    Create(NewSandbox),
    /// Start the existing sandbox.
    Start,
    /// Wait until the sandbox resolves a name (the network is up).
    WaitNetwork,
    /// A command inside the sandbox.
    Run {
        argv: Vec<String>,
        cwd: Option<String>,
        /// The ecosystem whose errors it explains.
        eco: Ecosystem,
    },
    /// Set up a starter (files, service, port).
    Starter(String),
    /// Write the lockfile.
    Lock,
}

impl Step {
    /// How it reads in a plan.
    pub fn render(&self) -> String {
        match self {
            Step::Create(n) => format!(
                "create sandbox {} from template {} with network {} and start it",
                n.name,
                n.template,
                n.network.as_str()
            ),
            Step::Start => "start the sandbox".into(),
            Step::WaitNetwork => "wait for the sandbox's network".into(),
            Step::Run { argv, cwd, .. } => match cwd {
                Some(c) => format!("(in {c}) {}", argv.join(" ")),
                None => argv.join(" "),
            },
            Step::Starter(k) => format!("set up the {k} starter (files, service, port)"),
            Step::Lock => "record the installed versions (lockfile)".into(),
        }
    }
}

fn argv(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// The steps that run a plan, in order.
pub fn steps(plan: &SoftwarePlan, facts: Option<&SandboxFacts>) -> Vec<Step> {
    let mut out = Vec::new();
    match (&plan.create, facts) {
        (Some(n), _) => out.push(Step::Create(n.clone())),
        (None, Some(f)) if !f.running => out.push(Step::Start),
        _ => {}
    }
    let spec = |c: &Candidate| match c.version.as_str() {
        "" => c.name.clone(),
        v => match c.ecosystem {
            Ecosystem::Apt => format!("{}={v}", c.name),
            Ecosystem::Pip => format!("{}=={v}", c.name),
            Ecosystem::Npm => format!("{}@{v}", c.name),
        },
    };
    let of = |e: Ecosystem| {
        plan.packages
            .iter()
            .filter(|c| c.ecosystem == e)
            .map(spec)
            .collect::<Vec<_>>()
    };
    let (apt, pip, npm) = (of(Ecosystem::Apt), of(Ecosystem::Pip), of(Ecosystem::Npm));
    if !plan.packages.is_empty() {
        out.push(Step::WaitNetwork);
    }
    if !apt.is_empty() {
        out.push(Step::Run {
            argv: argv(&["apt-get", "update"]),
            cwd: None,
            eco: Ecosystem::Apt,
        });
        let mut a = argv(&["apt-get", "install", "-y", "--no-install-recommends", "--"]);
        a.extend(apt);
        out.push(Step::Run {
            argv: a,
            cwd: None,
            eco: Ecosystem::Apt,
        });
    }
    if !pip.is_empty() {
        out.push(Step::Run {
            argv: argv(&["python3", "-m", "venv", VENV_DIR]),
            cwd: None,
            eco: Ecosystem::Pip,
        });
        let mut a = vec![
            format!("{VENV_DIR}/bin/pip"),
            "install".into(),
            "--no-input".into(),
            "--".into(),
        ];
        a.extend(pip);
        out.push(Step::Run {
            argv: a,
            cwd: None,
            eco: Ecosystem::Pip,
        });
    }
    if !npm.is_empty() {
        out.push(Step::Run {
            argv: argv(&["mkdir", "-p", NPM_DIR]),
            cwd: None,
            eco: Ecosystem::Npm,
        });
        let mut a = argv(&["npm", "install", "--no-audit", "--no-fund", "--save", "--"]);
        a.extend(npm);
        out.push(Step::Run {
            argv: a,
            cwd: Some(NPM_DIR.into()),
            eco: Ecosystem::Npm,
        });
    }
    for s in &plan.starters {
        out.push(Step::Starter(s.key.clone()));
    }
    out.push(Step::Lock);
    out
}

/// Where the planner looks.
pub struct PlanContext<'a> {
    pub resolvers: &'a Resolvers,
    pub sandboxes: &'a dyn SandboxAccess,
    /// apt packages whose .deb the shared cache holds: (name, version).
    pub cached: Vec<(String, String)>,
    /// The caller's utterance (for `request: ""`).
    pub utterance: Option<String>,
}

struct Want {
    eco: Ecosystem,
    name: String,
    version: Option<String>,
    via: Option<String>,
    prefix: Option<String>,
    /// Asked for explicitly: errors are errors, not notes.
    explicit: bool,
    /// Another ecosystem's packages to use when this registry cannot be reached.
    fallback: Option<(Ecosystem, Vec<String>)>,
}

fn invalid(reason: String) -> SoftwareError {
    SoftwareError::Invalid(reason)
}

/// Chooses the ecosystem of an alias: the preferred one when the alias has it, else apt, pip, npm.
fn choose(a: &aliases::Alias, prefer: Option<Ecosystem>) -> Option<Ecosystem> {
    if let Some(p) = prefer {
        if !a.packages(p).is_empty() {
            return Some(p);
        }
    }
    Ecosystem::ALL.into_iter().find(|e| !a.packages(*e).is_empty())
}

/// Makes the plan.
pub fn plan(args: &SoftwareInstallArgs, ctx: &PlanContext<'_>) -> Result<SoftwarePlan, SoftwareError> {
    let names = ctx.sandboxes.names();
    let text = match &args.request {
        Some(r) if r.trim().is_empty() => ctx.utterance.clone(),
        Some(r) => Some(r.clone()),
        None => None,
    };
    let wish = text
        .as_deref()
        .map(|t| aliases::understand(t, &names))
        .unwrap_or_default();
    plan_wish(args, &wish, ctx)
}

fn plan_wish(args: &SoftwareInstallArgs, wish: &Wish, ctx: &PlanContext<'_>) -> Result<SoftwarePlan, SoftwareError> {
    let names = ctx.sandboxes.names();
    let mut wants: Vec<Want> = Vec::new();
    let mut matched = Vec::new();
    let mut unresolved = Vec::new();
    let mut notes = Vec::new();
    for p in &args.packages {
        validate_name(p.ecosystem, &p.name)?;
        if let Some(v) = &p.version {
            validate_version(p.ecosystem, v)?;
        }
        wants.push(Want {
            eco: p.ecosystem,
            name: p.name.clone(),
            version: p.version.clone(),
            via: None,
            prefix: None,
            explicit: true,
            fallback: None,
        });
    }
    let version_of = |key: &str| wish.versions.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    let profile_key = args.profile.clone().or_else(|| wish.profile.clone());
    if let Some(k) = &profile_key {
        let p = aliases::profile(k).ok_or_else(|| {
            let keys: Vec<&str> = aliases::profiles().iter().map(|p| p.key.as_str()).collect();
            invalid(format!("invalid profile: {k:?} is not one of {}", keys.join(", ")))
        })?;
        matched.push(format!("profile {}", p.key));
        for (i, n) in p.apt.iter().enumerate() {
            wants.push(Want {
                eco: Ecosystem::Apt,
                name: n.clone(),
                version: None,
                via: Some(format!("profile {}", p.key)),
                prefix: if i == 0 { version_of(&p.key) } else { None },
                explicit: false,
                fallback: None,
            });
        }
    }
    let mut starter_keys: Vec<(String, Ecosystem)> = Vec::new();
    for key in &wish.aliases {
        let Some(a) = aliases::alias(key) else { continue };
        let Some(eco) = choose(a, wish.prefer) else {
            unresolved.push(format!(
                "{} ({}): no package in Debian, PyPI or npm that CacheOS knows",
                a.key, a.description
            ));
            continue;
        };
        matched.push(a.key.clone());
        let fallback = (eco != Ecosystem::Apt && !a.apt.is_empty()).then(|| (Ecosystem::Apt, a.apt.clone()));
        for (i, n) in a.packages(eco).iter().enumerate() {
            wants.push(Want {
                eco,
                name: n.clone(),
                version: None,
                via: Some(a.key.clone()),
                prefix: if i == 0 { version_of(&a.key) } else { None },
                explicit: false,
                fallback: fallback.clone(),
            });
        }
        if starters::plan(&a.key, eco).is_some() {
            starter_keys.push((a.key.clone(), eco));
        }
    }
    for k in &args.starters {
        if !starter_keys.iter().any(|(s, _)| s == k) {
            // The ecosystem of a confirmed plan's starter follows its packages.
            let eco = aliases::alias(k)
                .and_then(|a| {
                    Ecosystem::ALL.into_iter().find(|e| {
                        a.packages(*e)
                            .iter()
                            .any(|n| args.packages.iter().any(|p| &p.name == n && p.ecosystem == *e))
                    })
                })
                .unwrap_or(Ecosystem::Apt);
            if starters::plan(k, eco).is_none() {
                return Err(invalid(format!("invalid starters: {k:?} has no starter app")));
            }
            starter_keys.push((k.clone(), eco));
        }
    }
    // Words that are no alias: exact names in the preferred registry (Debian by default).
    for w in &wish.rest {
        let eco = wish.prefer.unwrap_or(Ecosystem::Apt);
        if validate_name(eco, w).is_err() {
            continue;
        }
        match ctx.resolvers.get(eco).lookup(w, None) {
            Ok(_) => wants.push(Want {
                eco,
                name: w.clone(),
                version: None,
                via: None,
                prefix: None,
                explicit: false,
                fallback: None,
            }),
            Err(SoftwareError::NotFound { close, .. }) => {
                let mut close = close;
                close.extend(
                    aliases::aliases()
                        .iter()
                        .flat_map(|a| a.words.iter())
                        .filter(|w2| w2.len() == 1 && super::distance(&w2[0], w) == 1)
                        .map(|w2| w2[0].clone()),
                );
                close.dedup();
                unresolved.push(if close.is_empty() {
                    format!("{w}: no {} package of that name", eco.registry())
                } else {
                    format!(
                        "{w}: no {} package of that name; close: {}",
                        eco.registry(),
                        close.join(", ")
                    )
                });
            }
            Err(_) => unresolved.push(format!(
                "{w}: could not be looked up ({} index unavailable)",
                eco.registry()
            )),
        }
    }
    // Runtimes of pip and npm installs.
    let needs = |e: Ecosystem| wants.iter().any(|w| w.eco == e);
    let mut runtime = Vec::new();
    if needs(Ecosystem::Pip) {
        runtime.extend(["python3-venv"]);
    }
    if needs(Ecosystem::Npm) {
        runtime.extend(["nodejs", "npm"]);
    }
    for r in runtime {
        wants.insert(
            0,
            Want {
                eco: Ecosystem::Apt,
                name: r.into(),
                version: None,
                via: Some("runtime".into()),
                prefix: None,
                explicit: false,
                fallback: None,
            },
        );
    }
    if wants.is_empty() && starter_keys.is_empty() {
        let mut msg = match &args.request {
            Some(_) => "the wish names no package CacheOS knows".to_string(),
            None => "no packages, wish or profile given".to_string(),
        };
        if !unresolved.is_empty() {
            msg.push_str(&format!(" ({})", unresolved.join("; ")));
        }
        return Err(SoftwareError::Invalid(msg));
    }

    // The sandbox.
    let target = args.sandbox.clone().or_else(|| wish.sandbox.clone());
    let facts = match &target {
        Some(n) => ctx.sandboxes.facts(n).map_err(SoftwareError::Unavailable)?,
        None => None,
    };
    let create = match (&target, &facts) {
        (Some(_), Some(f)) => {
            if let Err(why) = &f.installable {
                return Err(SoftwareError::Invalid(format!("invalid sandbox: {why}")));
            }
            if f.network == crate::sandbox::Network::None {
                return Err(SoftwareError::Invalid(format!(
                    "invalid sandbox: {} has no network (it was created without NAT), so nothing can be downloaded \
                     into it; leave the sandbox out to get a new one with NAT",
                    f.name
                )));
            }
            None
        }
        (Some(n), None) => {
            crate::sandbox::validate_name(n).map_err(|e| invalid(e.to_string()))?;
            Some(NewSandbox {
                name: n.clone(),
                template: DEFAULT_TEMPLATE.into(),
                network: crate::sandbox::Network::Nat,
            })
        }
        (None, _) => {
            let base = starter_keys
                .first()
                .map(|(k, _)| k.clone())
                .or_else(|| profile_key.as_ref().map(|p| format!("{p}-dev")))
                .or_else(|| matched.first().cloned())
                .unwrap_or_else(|| "software".into());
            let base: String = base
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_lowercase()
                    } else {
                        '-'
                    }
                })
                .collect();
            let base = if base.starts_with(|c: char| c.is_ascii_lowercase()) {
                base
            } else {
                format!("sw-{base}")
            };
            let mut name = base.clone();
            let mut n = 2;
            while names.contains(&name) {
                name = format!("{base}-{n}");
                n += 1;
            }
            Some(NewSandbox {
                name,
                template: DEFAULT_TEMPLATE.into(),
                network: crate::sandbox::Network::Nat,
            })
        }
    };
    if create.is_some() {
        if let Err(why) = ctx.sandboxes.template_installable(DEFAULT_TEMPLATE) {
            return Err(SoftwareError::Unavailable(why));
        }
    }
    let sandbox = create.as_ref().map(|c| c.name.clone()).or(target).unwrap_or_default();

    // Exact versions.
    let mut packages: Vec<Candidate> = Vec::new();
    let mut seen = BTreeSet::new();
    let mut queue: Vec<Want> = wants;
    queue.reverse();
    while let Some(w) = queue.pop() {
        if !seen.insert((w.eco, w.name.clone())) {
            continue;
        }
        match ctx.resolvers.get(w.eco).lookup(&w.name, w.version.as_deref()) {
            Ok(mut c) => {
                if let Some(p) = &w.prefix {
                    if !index::version_has_prefix(&c.version, p) {
                        return Err(SoftwareError::NoSuchVersion {
                            ecosystem: w.eco,
                            name: w.name.clone(),
                            version: p.clone(),
                            available: vec![c.version.clone()],
                        });
                    }
                }
                c.via = w.via.clone();
                packages.push(c);
            }
            Err(SoftwareError::Unavailable(why)) if w.eco == Ecosystem::Apt && !w.explicit => {
                if !notes.contains(&why) {
                    notes.push(why);
                }
                packages.push(Candidate {
                    ecosystem: Ecosystem::Apt,
                    name: w.name.clone(),
                    version: String::new(),
                    size: None,
                    description: String::new(),
                    via: w.via.clone(),
                });
            }
            Err(SoftwareError::Unreachable { registry, reason }) if !w.explicit && w.fallback.is_some() => {
                let (eco, names) = w.fallback.clone().unwrap_or((Ecosystem::Apt, Vec::new()));
                notes.push(format!(
                    "{registry} cannot be reached ({reason}); offering {} from {} instead",
                    names.join(" "),
                    eco.registry()
                ));
                for n in names.into_iter().rev() {
                    queue.push(Want {
                        eco,
                        name: n,
                        version: None,
                        via: w.via.clone(),
                        prefix: None,
                        explicit: false,
                        fallback: None,
                    });
                }
                if let Some(s) = starter_keys.iter_mut().find(|(k, _)| Some(k) == w.via.as_ref()) {
                    s.1 = eco;
                }
            }
            Err(e) => return Err(e),
        }
    }
    // Runtimes that are no longer needed after a fallback.
    let needs = |e: Ecosystem, p: &[Candidate]| p.iter().any(|c| c.ecosystem == e);
    let (pip, npm) = (needs(Ecosystem::Pip, &packages), needs(Ecosystem::Npm, &packages));
    packages.retain(|c| {
        c.via.as_deref() != Some("runtime") || (c.name == "python3-venv" && pip) || (c.name != "python3-venv" && npm)
    });
    packages.sort_by_key(|c| c.ecosystem);
    let cached: Vec<String> = packages
        .iter()
        .filter(|c| c.ecosystem == Ecosystem::Apt && ctx.cached.iter().any(|(n, v)| n == &c.name && v == &c.version))
        .map(|c| c.name.clone())
        .collect();
    let apt_names: Vec<String> = packages
        .iter()
        .filter(|c| c.ecosystem == Ecosystem::Apt)
        .map(|c| c.name.clone())
        .collect();
    let deps: Vec<(String, u64)> = ctx
        .resolvers
        .apt
        .dependencies(&apt_names)
        .into_iter()
        .filter(|(n, _)| !apt_names.contains(n))
        .collect();
    let download_bytes = packages
        .iter()
        .filter(|c| !cached.contains(&c.name))
        .filter_map(|c| c.size)
        .sum::<u64>()
        + deps
            .iter()
            .filter(|(n, _)| !ctx.cached.iter().any(|(c, _)| c == n))
            .map(|(_, s)| s)
            .sum::<u64>();
    let dependencies = deps.into_iter().map(|(n, _)| n).collect();
    let starters: Vec<_> = starter_keys.iter().filter_map(|(k, e)| starters::plan(k, *e)).collect();
    let mut plan = SoftwarePlan {
        sandbox,
        create,
        matched,
        unresolved,
        packages,
        starters,
        dependencies,
        download_bytes,
        cached,
        steps: Vec::new(),
        notes,
    };
    plan.steps = steps(&plan, facts.as_ref()).iter().map(Step::render).collect();
    Ok(plan)
}
