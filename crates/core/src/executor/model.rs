//! The `model.*` and `privacy.channels` arms of the executor (issue 14): argument checks, resolving a drive's GGUF
//! file to a path below its mount point, keeping the active choice as a store record (without the API key), and the
//! list of channels by which data can leave the appliance.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Core, Output};
use crate::auth::Caller;
use crate::error::CoreError;
use crate::model::{
    check_endpoint_url, is_loopback_url, BackendKind, ModelChoice, ModelHost, ModelHostError, ModelList, ModelUseArgs,
    PrivacyChannel, PrivacyReport, MODEL_KEY, MODEL_KIND,
};
use crate::operation::Operation;

/// What the `model.*` operations and `privacy.channels` need, given once by the daemon with
/// [`Core::set_models`].
pub struct ModelDeps {
    /// The backends.
    pub host: Arc<dyn ModelHost>,
    /// The directory of GGUF files (`/var/lib/cacheos/models`); model paths must be below it or an attached drive.
    pub models_dir: PathBuf,
    /// The web port's listen address (none: disabled), for `privacy.channels`.
    pub web_listen: Option<std::net::SocketAddr>,
}

/// Most generation threads `model.use` accepts.
pub const MAX_THREADS: u32 = 256;

impl From<ModelHostError> for CoreError {
    fn from(e: ModelHostError) -> Self {
        match e {
            ModelHostError::Invalid { field, reason } => CoreError::InvalidArgument { field, reason },
            ModelHostError::NoModel => CoreError::FailedPrecondition(e.to_string()),
            ModelHostError::TooLarge { .. } => CoreError::FailedPrecondition(e.to_string()),
            ModelHostError::Unavailable(m) => CoreError::FailedPrecondition(m),
            ModelHostError::Failed(m) => CoreError::FailedPrecondition(format!("the model backend failed: {m}")),
        }
    }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> CoreError {
    CoreError::InvalidArgument {
        field,
        reason: reason.into(),
    }
}

/// The checks of `model.use` that need no state (run by `Core::validate`).
pub(super) fn validate_use(a: &ModelUseArgs) -> Result<(), CoreError> {
    let n = [&a.path, &a.drive, &a.url].iter().filter(|x| x.is_some()).count();
    if n != 1 {
        return Err(invalid(
            "url",
            "give exactly one of path (a GGUF file), drive (a drive's GGUF file) or url",
        ));
    }
    if let Some(u) = &a.url {
        check_endpoint_url(u).map_err(|r| invalid("url", r))?;
        if a.threads.is_some() {
            return Err(invalid("threads", "only for a GGUF file"));
        }
        if a.file.is_some() {
            return Err(invalid("file", "only with drive"));
        }
    } else {
        if a.model.is_some() {
            return Err(invalid("model", "only with url (a GGUF file is its own model)"));
        }
        if a.api_key.is_some() {
            return Err(invalid("api_key", "only with url"));
        }
    }
    if let Some(m) = &a.model {
        if m.is_empty() || m.len() > 256 || m.chars().any(|c| c.is_control()) {
            return Err(invalid("model", "1 to 256 printable characters"));
        }
    }
    if let Some(k) = &a.api_key {
        if k.len() > 4096 || k.chars().any(|c| c.is_control() || c == ' ') {
            return Err(invalid("api_key", "at most 4096 characters without spaces"));
        }
    }
    if let Some(t) = a.threads {
        if t == 0 || t > MAX_THREADS {
            return Err(invalid("threads", format!("{t} is outside 1..={MAX_THREADS}")));
        }
    }
    if let Some(p) = &a.path {
        let path = Path::new(p);
        if !path.is_absolute() {
            return Err(invalid("path", format!("{p:?} is not absolute")));
        }
        if path.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
            return Err(invalid("path", "must not contain .."));
        }
        if !p.to_ascii_lowercase().ends_with(".gguf") {
            return Err(invalid("path", format!("{p:?} is not a .gguf file")));
        }
    }
    if a.file.is_some() && a.drive.is_none() {
        return Err(invalid("file", "only with drive"));
    }
    if let Some(f) = &a.file {
        crate::kb::check_relative_path(f).map_err(|r| invalid("file", r))?;
        if !f.to_ascii_lowercase().ends_with(".gguf") {
            return Err(invalid("file", format!("{f:?} is not a .gguf file")));
        }
    }
    Ok(())
}

impl Core {
    /// Gives the core its model backends (once; later calls are ignored). Without them `model.*` operations fail
    /// as not available, and `privacy.channels` lists sandboxes only.
    pub fn set_models(&self, deps: ModelDeps) {
        let _ = self.models.set(deps);
    }

    fn model_deps(&self) -> Result<&ModelDeps, CoreError> {
        self.models
            .get()
            .ok_or_else(|| CoreError::FailedPrecondition("language models are not available in this daemon".into()))
    }

    /// The active choice kept in the store.
    fn stored_choice(&self) -> Result<Option<ModelChoice>, CoreError> {
        Ok(self
            .deps
            .store
            .get_record(MODEL_KIND, MODEL_KEY)?
            .and_then(|v| serde_json::from_value(v).ok()))
    }

    /// Re-activates the stored choice after a restart (the daemon calls it once; no audit record, as nothing new
    /// is decided). Returns why not, if it failed; the choice stays recorded.
    pub fn restore_model(&self) -> Option<String> {
        let deps = self.models.get()?;
        let choice = self.stored_choice().ok()??;
        deps.host.activate(&choice, None).err().map(|e| e.to_string())
    }

    /// Attached drives with their first mounted file system.
    fn drive_roots(&self) -> Vec<(String, PathBuf)> {
        let Some(d) = self.deps.drives.as_deref() else {
            return vec![];
        };
        d.list()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|i| {
                let m = i.partitions.iter().find_map(|p| p.mount_point.clone())?;
                Some((i.name, m))
            })
            .collect()
    }

    /// Resolves `model.use` into a choice: a drive's file below its mount point, a path below the models directory
    /// or a drive.
    fn resolve_choice(&self, deps: &ModelDeps, a: &ModelUseArgs) -> Result<ModelChoice, CoreError> {
        if let Some(u) = &a.url {
            return Ok(ModelChoice {
                backend: BackendKind::Openai,
                target: check_endpoint_url(u).map_err(|r| invalid("url", r))?,
                model: a.model.clone(),
                threads: None,
                drive: None,
            });
        }
        let roots = self.drive_roots();
        let (path, drive) = if let Some(drive) = &a.drive {
            let Some((_, root)) = roots.iter().find(|(n, _)| n == drive) else {
                return Err(CoreError::NotFound {
                    kind: "attached drive with a mounted file system",
                    name: drive.clone(),
                });
            };
            match &a.file {
                Some(f) => (root.join(f), Some(drive.clone())),
                None => {
                    let found: Vec<_> = deps
                        .host
                        .files(&[(drive.clone(), root.clone())])
                        .into_iter()
                        .filter(|f| f.drive.as_deref() == Some(drive.as_str()))
                        .collect();
                    match found.as_slice() {
                        [one] => (PathBuf::from(&one.path), Some(drive.clone())),
                        [] => {
                            return Err(CoreError::FailedPrecondition(format!(
                                "drive {drive} holds no .gguf file at its top level or one level below"
                            )))
                        }
                        many => {
                            return Err(invalid(
                                "file",
                                format!(
                                    "drive {drive} holds {} GGUF files; name one: {}",
                                    many.len(),
                                    many.iter()
                                        .filter_map(|f| Path::new(&f.path).strip_prefix(root).ok())
                                        .map(|p| p.display().to_string())
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                ),
                            ))
                        }
                    }
                }
            }
        } else {
            let p = PathBuf::from(a.path.as_deref().unwrap_or_default());
            let drive = roots.iter().find(|(_, r)| p.starts_with(r)).map(|(n, _)| n.clone());
            if drive.is_none() && !p.starts_with(&deps.models_dir) {
                return Err(invalid(
                    "path",
                    format!(
                        "{} is neither below {} nor on an attached drive",
                        p.display(),
                        deps.models_dir.display()
                    ),
                ));
            }
            (p, drive)
        };
        Ok(ModelChoice {
            backend: BackendKind::Gguf,
            model: path.file_name().map(|f| f.to_string_lossy().into_owned()),
            target: path.to_string_lossy().into_owned(),
            threads: a.threads,
            drive,
        })
    }

    pub(super) fn run_model(&self, caller: &Caller, op: &Operation) -> Result<Output, CoreError> {
        if let Operation::PrivacyChannels = op {
            return Ok(Output::Privacy(self.privacy_channels()?));
        }
        let deps = self.model_deps()?;
        Ok(match op {
            Operation::ModelList => {
                let active = self.stored_choice()?;
                let may_read_drives = Operation::lookup("drive.files")
                    .is_some_and(|info| self.deps.authorizer.authorize(caller, info).is_ok());
                let roots = if may_read_drives { self.drive_roots() } else { vec![] };
                let mut files = deps.host.files(&roots);
                for f in &mut files {
                    f.active = active
                        .as_ref()
                        .is_some_and(|a| a.backend == BackendKind::Gguf && a.target == f.path);
                }
                let mut backends = deps.host.backends();
                for b in &mut backends {
                    b.active = active.as_ref().is_some_and(|a| a.backend == b.kind);
                }
                Output::ModelList(ModelList {
                    backends,
                    files,
                    active,
                })
            }
            Operation::ModelUse(a) => {
                let choice = self.resolve_choice(deps, a)?;
                if !deps
                    .host
                    .backends()
                    .iter()
                    .any(|b| b.kind == choice.backend && b.available)
                {
                    return Err(CoreError::FailedPrecondition(format!(
                        "this build has no {} backend",
                        choice.backend.as_str()
                    )));
                }
                let done = deps.host.activate(&choice, a.api_key.as_deref())?;
                self.deps
                    .store
                    .put_record(MODEL_KIND, MODEL_KEY, &serde_json::to_value(&done).unwrap_or_default())?;
                Output::ModelStatus(deps.host.status())
            }
            Operation::ModelStatus => {
                let mut s = deps.host.status();
                if s.active.is_none() {
                    // Recorded but not active (the restore failed): say which one and why.
                    if let Some(c) = self.stored_choice()? {
                        s.last_error
                            .get_or_insert_with(|| format!("{} is recorded but not active", c.target));
                        s.active = Some(c);
                    }
                }
                Output::ModelStatus(s)
            }
            Operation::ModelUnload => {
                deps.host.unload()?;
                self.deps.store.delete_record(MODEL_KIND, MODEL_KEY)?;
                Output::ModelStatus(deps.host.status())
            }
            Operation::ModelTest => Output::ModelTest(deps.host.test()?),
            _ => unreachable!("run_model called for {}", op.name()),
        })
    }

    /// `privacy.channels`.
    fn privacy_channels(&self) -> Result<PrivacyReport, CoreError> {
        let mut channels = Vec::new();
        let deps = self.models.get();
        if let Some(deps) = deps {
            let st = deps.host.status();
            match st.active.as_ref().or(self.stored_choice()?.as_ref()) {
                Some(c) if c.backend == BackendKind::Openai => {
                    let local = is_loopback_url(&c.target);
                    channels.push(PrivacyChannel {
                        kind: "model-endpoint".into(),
                        name: c.target.clone(),
                        state: if local { "local" } else { "open" }.into(),
                        detail: format!(
                            "chat questions the rules do not understand, and the operation table, go to model {} at {}{}",
                            c.model.as_deref().unwrap_or("?"),
                            c.target,
                            if st.api_key_set { " with an API key" } else { "" }
                        ),
                        switch: "model.unload".into(),
                    });
                }
                Some(c) => channels.push(PrivacyChannel {
                    kind: "model".into(),
                    name: c.target.clone(),
                    state: "local".into(),
                    detail: "a GGUF model run inside the appliance; nothing leaves it".into(),
                    switch: "model.unload".into(),
                }),
                None => channels.push(PrivacyChannel {
                    kind: "model-endpoint".into(),
                    name: "none".into(),
                    state: "closed".into(),
                    detail: "no language model is in use".into(),
                    switch: "model.use {\"url\": …}".into(),
                }),
            }
            match deps.web_listen {
                Some(addr) => channels.push(PrivacyChannel {
                    kind: "web-port".into(),
                    name: addr.to_string(),
                    state: if addr.ip().is_loopback() { "local" } else { "open" }.into(),
                    detail: if addr.ip().is_loopback() {
                        format!("the web UI and REST API listen on {addr}, reachable from this machine only")
                    } else {
                        format!("the web UI and REST API listen on {addr}; whoever has the web token reads and controls the appliance")
                    },
                    switch: "web.listen in /etc/cacheos/cacheosd.toml (restart cacheosd)".into(),
                }),
                None => channels.push(PrivacyChannel {
                    kind: "web-port".into(),
                    name: "disabled".into(),
                    state: "closed".into(),
                    detail: "the web port is disabled".into(),
                    switch: "web.listen in /etc/cacheos/cacheosd.toml (restart cacheosd)".into(),
                }),
            }
        }
        if let Some(s) = self.deps.sandboxes.as_deref() {
            for i in s.list().unwrap_or_default() {
                if i.network == crate::sandbox::Network::Nat {
                    let open = i.state.is_active();
                    channels.push(PrivacyChannel {
                        kind: "sandbox-nat".into(),
                        name: i.name.clone(),
                        state: if open { "open" } else { "closed" }.into(),
                        detail: format!(
                            "sandbox {} has network nat: what runs in it can reach the LAN and the internet{}",
                            i.name,
                            if open { "" } else { " when it runs" }
                        ),
                        switch: format!("sandbox.stop {{\"name\": \"{}\"}}", i.name),
                    });
                }
            }
        }
        if let Some(l) = self.licensing.get() {
            if l.stamper().is_some() {
                channels.push(PrivacyChannel {
                    kind: "timestamp-authority".into(),
                    name: "RFC 3161".into(),
                    state: "open".into(),
                    detail: "proof.create sends the proof's root hash (not the files) to a time-stamping authority"
                        .into(),
                    switch: "the [license] configuration (restart cacheosd)".into(),
                });
            }
        }
        let rank = |s: &str| match s {
            "open" => 0,
            "local" => 1,
            _ => 2,
        };
        channels.sort_by_key(|c| rank(&c.state));
        let open = channels.iter().filter(|c| c.state == "open").count();
        Ok(PrivacyReport { channels, open })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Frontend, Principal};
    use crate::model::{FakeModels, ModelStatus};
    use crate::store::{MemoryStore, Store};
    use crate::Output;

    fn core() -> (Arc<Core>, Arc<MemoryStore>, Arc<FakeModels>) {
        let (core, store) = crate::testing::core();
        let fake = Arc::new(FakeModels::default());
        core.set_models(ModelDeps {
            host: fake.clone(),
            models_dir: "/var/lib/cacheos/models".into(),
            web_listen: Some("127.0.0.1:8080".parse().unwrap()),
        });
        (core, store, fake)
    }

    fn root() -> Caller {
        Caller::new(Frontend::Cli, Principal::Uid { uid: 0 })
    }

    fn status(o: Output) -> ModelStatus {
        match o {
            Output::ModelStatus(s) => s,
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn fresh_appliance_has_no_model_and_no_open_channel() {
        let (core, _, _) = core();
        let s = status(core.execute(&root(), Operation::ModelStatus).unwrap());
        assert!(s.active.is_none());
        let Output::Privacy(p) = core.execute(&root(), Operation::PrivacyChannels).unwrap() else {
            panic!()
        };
        assert_eq!(p.open, 0, "{p:?}");
        assert!(p
            .channels
            .iter()
            .any(|c| c.kind == "model-endpoint" && c.state == "closed"));
    }

    #[test]
    fn endpoint_use_keeps_the_key_out_of_audit_and_answers_and_opens_a_channel() {
        let (core, store, fake) = core();
        let op = Operation::ModelUse(ModelUseArgs {
            url: Some("http://192.168.1.5:8080/".into()),
            model: Some("qwen".into()),
            api_key: Some("sk-very-secret".into()),
            ..Default::default()
        });
        let out = core.execute(&root(), op).unwrap();
        let json = serde_json::to_string(&out).unwrap();
        assert!(!json.contains("sk-very-secret"), "{json}");
        let s = status(out);
        assert!(s.api_key_set && s.remote);
        assert_eq!(s.active.unwrap().target, "http://192.168.1.5:8080");
        assert_eq!(fake.key().as_deref(), Some("sk-very-secret"));
        let audit = serde_json::to_string(&store.query_audit(&Default::default()).unwrap()).unwrap();
        assert!(!audit.contains("sk-very-secret"), "{audit}");
        assert!(audit.contains("(set)"));
        let rec = store.get_record(MODEL_KIND, MODEL_KEY).unwrap().unwrap().to_string();
        assert!(!rec.contains("sk-very-secret"), "{rec}");
        let Output::Privacy(p) = core.execute(&root(), Operation::PrivacyChannels).unwrap() else {
            panic!()
        };
        assert_eq!(p.open, 1);
        assert_eq!(p.channels[0].kind, "model-endpoint");
        assert_eq!(p.channels[0].switch, "model.unload");

        status(core.execute(&root(), Operation::ModelUnload).unwrap());
        assert!(store.get_record(MODEL_KIND, MODEL_KEY).unwrap().is_none());
        assert!(fake.key().is_none());
        let Output::Privacy(p) = core.execute(&root(), Operation::PrivacyChannels).unwrap() else {
            panic!()
        };
        assert_eq!(p.open, 0);
    }

    #[test]
    fn arguments_are_validated_and_named() {
        let (core, _, fake) = core();
        let bad = [
            (ModelUseArgs::default(), "url"),
            (
                ModelUseArgs {
                    url: Some("ftp://x".into()),
                    ..Default::default()
                },
                "url",
            ),
            (
                ModelUseArgs {
                    path: Some("rel/m.gguf".into()),
                    ..Default::default()
                },
                "path",
            ),
            (
                ModelUseArgs {
                    path: Some("/var/lib/cacheos/models/m.bin".into()),
                    ..Default::default()
                },
                "path",
            ),
            (
                ModelUseArgs {
                    path: Some("/etc/m.gguf".into()),
                    ..Default::default()
                },
                "path",
            ),
            (
                ModelUseArgs {
                    path: Some("/var/lib/cacheos/models/m.gguf".into()),
                    api_key: Some("k".into()),
                    ..Default::default()
                },
                "api_key",
            ),
            (
                ModelUseArgs {
                    path: Some("/var/lib/cacheos/models/m.gguf".into()),
                    threads: Some(0),
                    ..Default::default()
                },
                "threads",
            ),
            (
                ModelUseArgs {
                    drive: Some("d".into()),
                    file: Some("../m.gguf".into()),
                    ..Default::default()
                },
                "file",
            ),
        ];
        for (a, field) in bad {
            match core.execute(&root(), Operation::ModelUse(a.clone())) {
                Err(CoreError::InvalidArgument { field: f, .. }) => assert_eq!(f, field, "{a:?}"),
                r => panic!("{a:?}: {r:?}"),
            }
        }
        assert!(fake.calls().is_empty(), "{:?}", fake.calls());
        let ok = ModelUseArgs {
            path: Some("/var/lib/cacheos/models/m.gguf".into()),
            threads: Some(2),
            ..Default::default()
        };
        let s = status(core.execute(&root(), Operation::ModelUse(ok)).unwrap());
        assert_eq!(s.active.unwrap().backend, BackendKind::Gguf);
        assert!(!s.remote);
    }

    #[test]
    fn a_failing_endpoint_is_not_recorded() {
        let (core, store, _) = core();
        let e = core
            .execute(
                &root(),
                Operation::ModelUse(ModelUseArgs {
                    url: Some("http://unreachable:1".into()),
                    ..Default::default()
                }),
            )
            .unwrap_err();
        assert!(e.to_string().contains("did not answer"), "{e}");
        assert!(store.get_record(MODEL_KIND, MODEL_KEY).unwrap().is_none());
    }

    #[test]
    fn others_may_look_but_not_switch() {
        let (core, _, _) = core();
        let user = Caller::new(Frontend::Cli, Principal::Uid { uid: 4242 });
        assert!(core.execute(&user, Operation::ModelStatus).is_ok());
        assert!(core.execute(&user, Operation::PrivacyChannels).is_ok());
        assert!(matches!(
            core.execute(&user, Operation::ModelUnload),
            Err(CoreError::PermissionDenied { .. })
        ));
    }
}
