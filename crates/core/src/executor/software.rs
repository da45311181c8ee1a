//! The `software.*`, `sandbox.expose`, `sandbox.unexpose` and `sandbox.service` arms of the executor (issue 15):
//! search, plan, install as a job, list, remove, job state and cancel, port forwards and services.

use std::sync::Arc;

use super::{Core, Done, Output};
use crate::auth::Caller;
use crate::error::CoreError;
use crate::operation::Operation;
use crate::software::install::Software;
use crate::software::{aliases, Candidate, Ecosystem, SearchResult, SoftwareError};

/// Fields a software error message may start with ("invalid sandbox: …").
const FIELDS: &[&str] = &[
    "sandbox",
    "port",
    "host_port",
    "name",
    "service",
    "command",
    "profile",
    "starters",
    "packages",
    "query",
];

impl From<SoftwareError> for CoreError {
    fn from(e: SoftwareError) -> Self {
        match e {
            SoftwareError::Invalid(m) => {
                for f in FIELDS {
                    if let Some(rest) = m.strip_prefix(&format!("invalid {f}: ")) {
                        return CoreError::InvalidArgument {
                            field: f,
                            reason: rest.to_string(),
                        };
                    }
                }
                CoreError::InvalidArgument {
                    field: "packages",
                    reason: m.strip_prefix("invalid packages: ").unwrap_or(&m).to_string(),
                }
            }
            e @ SoftwareError::NotFound { .. } => CoreError::InvalidArgument {
                field: "packages",
                reason: e.to_string(),
            },
            e @ SoftwareError::NoSuchVersion { .. } => CoreError::InvalidArgument {
                field: "version",
                reason: e.to_string(),
            },
            e @ (SoftwareError::Unreachable { .. } | SoftwareError::Unavailable(_)) => {
                CoreError::FailedPrecondition(e.to_string())
            }
        }
    }
}

impl Core {
    /// Gives the core its software service (once; later calls are ignored). Without it the software operations
    /// fail with a precondition error.
    pub fn set_software(&self, s: Arc<Software>) {
        let _ = self.software.set(s);
    }

    /// The software service, for front ends that wait for a job (the chat).
    pub fn software(&self) -> Option<&Arc<Software>> {
        self.software.get()
    }

    fn software_service(&self) -> Result<&Arc<Software>, CoreError> {
        self.software
            .get()
            .ok_or_else(|| CoreError::FailedPrecondition("software installs are not available in this daemon".into()))
    }

    /// After a sandbox started: its exposed ports point at its new address.
    pub(super) fn software_after_start(&self) {
        if let Some(s) = self.software.get() {
            if let Err(e) = s.sync_forwards() {
                tracing::warn!(error = %e, "cannot apply the exposed ports");
            }
        }
    }

    /// After a sandbox was removed: its lockfile, ports and services are forgotten.
    pub(super) fn software_after_remove(&self, name: &str) {
        if let Some(s) = self.software.get() {
            s.forget_sandbox(name);
        }
    }

    /// What `sandbox.info` adds: exposed ports, URLs and services.
    pub(super) fn software_info(&self, name: &str) -> Option<crate::software::expose::SandboxNetworkInfo> {
        let s = self.software.get()?;
        let n = s.network_info(name);
        (!n.exposed.is_empty() || !n.services.is_empty()).then_some(n)
    }

    pub(super) fn run_software(&self, caller: &Caller, op: &Operation) -> Result<Output, CoreError> {
        let s = self.software_service()?;
        let by = caller.principal.to_string();
        Ok(match op {
            Operation::SoftwareSearch(a) => {
                let query = if a.query.trim().is_empty() {
                    caller.utterance.clone().unwrap_or_default()
                } else {
                    a.query.clone()
                };
                if !query.chars().any(char::is_alphanumeric) {
                    return Err(CoreError::InvalidArgument {
                        field: "query",
                        reason: "must contain a word".into(),
                    });
                }
                Output::SoftwareSearch(search(s, &query, a.ecosystem))
            }
            Operation::SoftwarePlan(a) => Output::SoftwarePlan(s.plan(a, caller.utterance.clone())?),
            Operation::SoftwareInstall(a) => {
                let plan = s.plan(a, caller.utterance.clone())?;
                tracing::info!(sandbox = %plan.sandbox, plan = ?plan.to_args(), "software install planned");
                Output::SoftwareJob(s.start_install(plan, &by)?)
            }
            Operation::SoftwareList(a) => {
                if let Some(m) = self.deps.sandboxes.as_deref() {
                    m.info(&a.sandbox)?;
                }
                Output::SoftwareLock(s.lockfile(&a.sandbox).map_err(CoreError::FailedPrecondition)?)
            }
            Operation::SoftwareRemove(a) => {
                if a.packages.is_empty() {
                    return Err(CoreError::InvalidArgument {
                        field: "packages",
                        reason: "name at least one package to remove".into(),
                    });
                }
                Output::SoftwareLock(s.remove(&a.sandbox, &a.packages)?)
            }
            Operation::SoftwareJob(a) => Output::SoftwareJob(s.job(&a.job).ok_or_else(|| CoreError::NotFound {
                kind: "software job",
                name: a.job.clone(),
            })?),
            Operation::SoftwareCancel(a) => {
                if !s.cancel(&a.job) {
                    return Err(CoreError::FailedPrecondition(format!(
                        "no software job {} is running",
                        a.job
                    )));
                }
                Output::Done(Done {
                    message: format!("job {} stops after its current command", a.job),
                })
            }
            Operation::SandboxExpose(a) => Output::SandboxNetwork(s.expose(&a.name, a.port, a.host_port)?),
            Operation::SandboxUnexpose(a) => Output::SandboxNetwork(s.unexpose(&a.name, a.port)?),
            Operation::SandboxService(a) => {
                Output::SandboxNetwork(s.service(&a.name, a.service.as_deref(), &a.command)?)
            }
            _ => unreachable!("run_software only gets software operations"),
        })
    }
}

/// `software.search`: alias entries first (their packages looked up), then each registry's own search.
fn search(s: &Software, query: &str, only: Option<Ecosystem>) -> SearchResult {
    let wish = aliases::understand(query, &[]);
    let mut candidates: Vec<Candidate> = Vec::new();
    let mut unavailable = Vec::new();
    let wanted = |e: Ecosystem| only.is_none_or(|o| o == e);
    let note = |e: SoftwareError, unavailable: &mut Vec<String>| {
        let m = e.to_string();
        if !unavailable.contains(&m) {
            unavailable.push(m);
        }
    };
    let mut keys = wish.aliases.clone();
    if let Some(p) = &wish.profile {
        keys.insert(0, p.clone());
    }
    for key in &wish.aliases {
        let Some(a) = aliases::alias(key) else { continue };
        for eco in Ecosystem::ALL.into_iter().filter(|e| wanted(*e)) {
            for n in a.packages(eco) {
                match s.resolvers.get(eco).lookup(n, None) {
                    Ok(mut c) => {
                        c.via = Some(a.key.clone());
                        candidates.push(c);
                    }
                    Err(e @ (SoftwareError::Unreachable { .. } | SoftwareError::Unavailable(_))) => {
                        note(e, &mut unavailable);
                        candidates.push(Candidate {
                            ecosystem: eco,
                            name: n.clone(),
                            version: String::new(),
                            size: None,
                            description: a.description.clone(),
                            via: Some(a.key.clone()),
                        });
                    }
                    Err(_) => {}
                }
            }
        }
    }
    let text: String = if wish.rest.is_empty() && !wish.aliases.is_empty() {
        String::new()
    } else if wish.rest.is_empty() {
        query.trim().to_string()
    } else {
        wish.rest.join(" ")
    };
    if !text.is_empty() {
        for eco in Ecosystem::ALL.into_iter().filter(|e| wanted(*e)) {
            match s.resolvers.get(eco).search(&text, 8) {
                Ok(found) => {
                    for c in found {
                        if !candidates
                            .iter()
                            .any(|x| x.ecosystem == c.ecosystem && x.name == c.name)
                        {
                            candidates.push(c);
                        }
                    }
                }
                Err(e) => note(e, &mut unavailable),
            }
        }
    }
    SearchResult {
        query: query.to_string(),
        aliases: keys,
        candidates,
        unavailable,
    }
}
