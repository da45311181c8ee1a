//! The executor's arms for the licence operations (issue 18): resolve the source, run the work from
//! `cacheos-license` as a job with progress events and cancel, keep the proofs this appliance made.

use std::sync::atomic::AtomicBool;

use cacheos_license::{docs, proof, sbom, scan, SourceTree};

use super::{Core, Output};
use crate::error::CoreError;
use crate::event::EventKind;
use crate::license::{tree_error, Licensing, SourceArgs, Tree, PROOF_RECORD};
use crate::operation::Operation;

/// Progress events are published at most this often (files).
const EVERY: u64 = 1024;

impl Core {
    fn licensing(&self) -> Result<&Licensing, CoreError> {
        self.licensing
            .get()
            .map(|l| l.as_ref())
            .ok_or_else(|| CoreError::FailedPrecondition("licence tools are not available in this daemon".into()))
    }

    /// Opens the tree a source names: a drive's first mounted file system or a running sandbox's root.
    fn source_tree(&self, l: &Licensing, s: &SourceArgs) -> Result<Tree, CoreError> {
        s.validate()?;
        let label = s.label();
        if let Some(d) = &s.drive {
            let info = self.drive_manager()?.info(d)?;
            let mount = info
                .partitions
                .iter()
                .find_map(|p| p.mount_point.clone())
                .ok_or_else(|| CoreError::FailedPrecondition(format!("drive {d} has no mounted file system")))?;
            return Ok(Box::new(
                cacheos_license::BeneathTree::open(&mount, &s.path).map_err(|e| tree_error(&label, e))?,
            ));
        }
        let name = s.sandbox.as_deref().unwrap_or_default();
        let info = self.sandbox_manager()?.info(name)?;
        let pid = info
            .main_pid
            .ok_or_else(|| CoreError::FailedPrecondition(format!("sandbox {name} is not running; start it first")))?;
        Ok(Box::new(
            l.sandbox_tree(pid, &s.path).map_err(|e| tree_error(&label, e))?,
        ))
    }

    fn job_event(&self, job: &str, operation: &str, files: u64, bytes: u64, state: &str) {
        self.deps.events.publish(EventKind::LicenseJob {
            job: job.to_owned(),
            operation: operation.to_owned(),
            files,
            bytes,
            state: state.to_owned(),
        });
    }

    /// Runs `f` as a job named `job` (or `kind-N`): a `started` event, progress events, `done`/`cancelled`/`failed`.
    fn as_job<T>(
        &self,
        l: &Licensing,
        job: Option<&str>,
        op: &str,
        f: impl FnOnce(&AtomicBool, &mut dyn FnMut(u64, u64)) -> Result<T, CoreError>,
    ) -> Result<T, CoreError> {
        let kind = op.split('.').next().unwrap_or("job");
        let g = l.start_job(job, kind)?;
        self.job_event(&g.name, op, 0, 0, "started");
        let mut last = 0;
        let mut tick = |files: u64, bytes: u64| {
            if files >= last + EVERY {
                last = files;
                self.job_event(&g.name, op, files, bytes, "running");
            }
        };
        let r = f(&g.flag, &mut tick);
        let state = match &r {
            Ok(_) => "done",
            Err(_) if g.flag.load(std::sync::atomic::Ordering::Relaxed) => "cancelled",
            Err(_) => "failed",
        };
        self.job_event(&g.name, op, last, 0, state);
        r
    }

    fn components(
        &self,
        l: &Licensing,
        a: &crate::license::SbomArgs,
        cancel: &AtomicBool,
    ) -> Result<(String, Vec<sbom::Component>), CoreError> {
        if a.appliance {
            let root = l.appliance_root();
            let t = cacheos_license::BeneathTree::open(root, "").map_err(|e| tree_error("the appliance", e))?;
            let mut c = Vec::new();
            if let Ok(b) = t.read("var/lib/dpkg/status", 64 << 20) {
                c.extend(sbom::components_of(
                    &t,
                    "var/lib/dpkg/status",
                    &String::from_utf8_lossy(&b),
                ));
            }
            // CacheOS's own crates, written at image build time (image/sbom).
            if let Ok(b) = t.read("usr/share/cacheos/sbom/crates.json", 64 << 20) {
                if let Ok(v) = serde_json::from_slice::<Vec<sbom::Component>>(&b) {
                    c.extend(v);
                }
            }
            if c.is_empty() {
                return Err(CoreError::FailedPrecondition(
                    "the appliance has no dpkg status and no build-time SBOM to describe".into(),
                ));
            }
            return Ok(("the appliance".into(), c));
        }
        let t = self.source_tree(l, &a.source)?;
        let label = a.source.label();
        let c = sbom::collect(t.as_ref(), cancel).map_err(|e| tree_error(&label, e))?;
        Ok((label, c))
    }

    fn stored_proof(&self, root: Option<&str>) -> Result<proof::ProofManifest, CoreError> {
        let recs = self.deps.store.list_records(PROOF_RECORD)?;
        let pick = match root {
            Some(r) => recs
                .into_iter()
                .find(|(k, _)| k == r || (r.len() >= 8 && k.starts_with(r))),
            None => recs
                .into_iter()
                .max_by_key(|(_, v)| v["created_ms"].as_u64().unwrap_or(0)),
        };
        let (_, v) = pick.ok_or_else(|| CoreError::NotFound {
            kind: "proof",
            name: root.unwrap_or("(newest)").to_owned(),
        })?;
        serde_json::from_value(v).map_err(|e| CoreError::FailedPrecondition(format!("stored proof is unreadable: {e}")))
    }

    /// `license.*`, `sbom.*`, `notice.*`, `proof.*`, `disclosure.*`.
    pub(super) fn run_license(&self, op: &Operation) -> Result<Output, CoreError> {
        let l = self.licensing()?;
        let now = self.deps.clock.now_ms();
        Ok(match op {
            Operation::LicenseScan(a) => {
                let t = self.source_tree(l, &a.source)?;
                let label = a.source.label();
                let r = self.as_job(l, a.job.as_deref(), "license.scan", |cancel, tick| {
                    scan::scan(t.as_ref(), &label, cancel, &mut |p| tick(p.files, p.bytes))
                        .map_err(|e| tree_error(&label, e))
                })?;
                Output::LicenseScan(Box::new(r))
            }
            Operation::LicenseCancel(a) => {
                l.cancel(&a.job)?;
                Output::Done(super::Done {
                    message: format!("job {} asked to stop", a.job),
                })
            }
            Operation::SbomCreate(a) => {
                let (label, c) = self.as_job(l, None, "sbom.create", |cancel, _| self.components(l, a, cancel))?;
                Output::Sbom(Box::new(sbom::documents(&label, c, now, crate::VERSION)))
            }
            Operation::NoticeCreate(a) => {
                let (label, c) = self.as_job(l, None, "notice.create", |cancel, _| self.components(l, a, cancel))?;
                Output::Notice(docs::notice(&label, &c))
            }
            Operation::ProofCreate(a) => {
                let t = self.source_tree(l, a)?;
                let label = a.label();
                let mut m = self.as_job(l, None, "proof.create", |cancel, tick| {
                    proof::create(t.as_ref(), &label, l.key(), now, cancel, &mut |n| tick(n, 0))
                        .map_err(|e| tree_error(&label, e))
                })?;
                if let Some(s) = l.stamper() {
                    let digest: [u8; 32] =
                        sha2::Digest::finalize(sha2::Digest::chain_update(sha2::Sha256::default(), m.message())).into();
                    match s.stamp(&digest) {
                        Ok(ts) => m.timestamp = Some(ts),
                        Err(e) => tracing::warn!(error = %e, "time stamp not obtained; the proof has none"),
                    }
                }
                let v = serde_json::to_value(&m).map_err(|e| CoreError::FailedPrecondition(e.to_string()))?;
                self.deps.store.put_record(PROOF_RECORD, &m.root, &v)?;
                Output::Proof(Box::new(m))
            }
            Operation::ProofVerify(a) => {
                let m = match (&a.manifest, &a.root) {
                    (Some(m), _) => (**m).clone(),
                    (None, r) => self.stored_proof(r.as_deref())?,
                };
                // The files are compared when the manifest's source can be read again.
                let source = parse_label(&m.source);
                let tree = source.as_ref().and_then(|s| self.source_tree(l, s).ok());
                let cancel = AtomicBool::new(false);
                let v = proof::verify(
                    &m,
                    &l.key().verifying_key(),
                    tree.as_deref().map(|t| t as &dyn SourceTree),
                    &cancel,
                )
                .map_err(|e| CoreError::InvalidArgument {
                    field: "manifest",
                    reason: cacheos_license::tree::error_chain(&e),
                })?;
                Output::ProofVerified(v)
            }
            Operation::DisclosureDraft(a) => {
                let p = match self.stored_proof(a.proof.as_deref()) {
                    Ok(m) => Some(docs::ProofRef {
                        root: m.root,
                        source: m.source,
                        created_ms: m.created_ms,
                        files: m.files.len() as u64,
                        public_key: m.public_key,
                    }),
                    Err(CoreError::NotFound { .. }) if a.proof.is_none() => None,
                    Err(e) => return Err(e),
                };
                Output::Disclosure(docs::disclosure(
                    &a.title,
                    &a.text,
                    a.language.unwrap_or_default(),
                    p,
                    now,
                ))
            }
            _ => unreachable!("run_license is only called for licence operations"),
        })
    }
}

/// The source a label (`drive data:/src`, `sandbox web:/`) names.
fn parse_label(label: &str) -> Option<SourceArgs> {
    let (kind, rest) = label.split_once(' ')?;
    let (name, path) = rest.split_once(":/")?;
    let mut s = SourceArgs {
        path: path.to_owned(),
        ..Default::default()
    };
    match kind {
        "drive" => s.drive = Some(name.to_owned()),
        "sandbox" => s.sandbox = Some(name.to_owned()),
        _ => return None,
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Caller, Frontend, GroupPolicy, Principal, StaticAccounts};
    use crate::clock::FakeClock;
    use crate::event::EventBus;
    use crate::sandbox::fake::FakeSandboxes;
    use crate::sandbox::ops::{SandboxCreateArgs, SandboxRef};
    use crate::sandbox::{ManagerConfig, SandboxManager, Template, TemplateKind};
    use crate::store::MemoryStore;
    use crate::system::FixedProbe;
    use crate::testing::FakeSupervisor;
    use crate::CoreDeps;
    use std::sync::Arc;

    /// A core with a running fake sandbox `web` whose root is a temporary directory laid out as `/proc/PID/root`.
    fn rig() -> (tempfile::TempDir, Core, EventBus, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(MemoryStore::new());
        let clock = Arc::new(FakeClock::at(1_796_219_314_000));
        let events = EventBus::new(256, clock.clone());
        let fakes = FakeSandboxes::new();
        let sandboxes = Arc::new(SandboxManager::new(
            store.clone(),
            Arc::new(fakes.roots()),
            Arc::new(fakes.runner()),
            clock.clone(),
            vec![Template {
                name: "bb".into(),
                kind: TemplateKind::Directory,
                path: "/srv/templates/bb".into(),
                description: "busybox".into(),
                command: Some(vec!["/bin/sleep".into(), "1000".into()]),
            }],
            ManagerConfig::default(),
        ));
        let core = Core::new(CoreDeps {
            store,
            probe: Arc::new(FixedProbe(Default::default())),
            supervisor: Arc::new(FakeSupervisor::default()),
            authorizer: Arc::new(GroupPolicy::new(StaticAccounts(vec![]), "cacheos")),
            events: events.clone(),
            clock,
            web_token: None,
            drives: None,
            sandboxes: Some(sandboxes),
            metrics: Arc::new(crate::system::MetricsHistory::new(4)),
        });
        let proc_dir = dir.path().join("proc");
        let key = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
        core.set_licensing(Arc::new(Licensing::with_key(
            key,
            proc_dir.clone(),
            dir.path().join("appliance"),
        )));
        core.execute(&root(), Operation::SandboxCreate(SandboxCreateArgs::new("web", "bb")))
            .unwrap();
        let Output::Sandbox(info) = core
            .execute(&root(), Operation::SandboxStart(SandboxRef { name: "web".into() }))
            .unwrap()
        else {
            panic!()
        };
        let sroot = proc_dir.join(info.main_pid.unwrap().to_string()).join("root");
        std::fs::create_dir_all(sroot.join("srv/app")).unwrap();
        std::fs::write(
            sroot.join("srv/app/Cargo.lock"),
            "version = 3\n[[package]]\nname = \"serde\"\nversion = \"1.0.0\"\n",
        )
        .unwrap();
        std::fs::write(sroot.join("srv/app/main.rs"), "// SPDX-License-Identifier: MIT\n").unwrap();
        (dir, core, events, sroot)
    }

    fn root() -> Caller {
        Caller::new(Frontend::Cli, Principal::Uid { uid: 0 })
    }

    fn web(path: &str) -> SourceArgs {
        SourceArgs {
            drive: None,
            sandbox: Some("web".into()),
            path: path.into(),
        }
    }

    #[test]
    fn scan_sbom_proof_verify_and_disclosure_through_the_executor() {
        let (_d, core, events, sroot) = rig();
        let mut rx = events.subscribe();
        let op = Operation::LicenseScan(crate::license::LicenseScanArgs {
            source: web("srv"),
            job: Some("j1".into()),
        });
        let Output::LicenseScan(r) = core.execute(&root(), op).unwrap() else {
            panic!()
        };
        assert_eq!(r.findings[0].path, "app/main.rs");
        let mut states = vec![];
        while let Ok(e) = rx.try_recv() {
            if let EventKind::LicenseJob { job, state, .. } = e.kind {
                assert_eq!(job, "j1");
                states.push(state);
            }
        }
        assert_eq!(states, ["started", "done"]);

        let sb = crate::license::SbomArgs {
            source: web(""),
            appliance: false,
        };
        let Output::Sbom(d) = core.execute(&root(), Operation::SbomCreate(sb)).unwrap() else {
            panic!()
        };
        assert_eq!(d.components[0].name, "serde");

        let Output::Proof(m) = core.execute(&root(), Operation::ProofCreate(web("srv"))).unwrap() else {
            panic!()
        };
        assert_eq!(m.files.len(), 2);
        let verify = |core: &Core| match core
            .execute(&root(), Operation::ProofVerify(Default::default()))
            .unwrap()
        {
            Output::ProofVerified(v) => v,
            _ => panic!(),
        };
        assert!(verify(&core).intact);
        std::fs::write(
            sroot.join("srv/app/main.rs"),
            "// SPDX-License-Identifier: GPL-3.0-only\n",
        )
        .unwrap();
        let v = verify(&core);
        assert!(!v.intact && v.files_checked);
        assert_eq!(v.changes[0].path, "app/main.rs");

        let a = crate::license::DisclosureArgs {
            title: "X".into(),
            text: "y".into(),
            language: None,
            proof: None,
        };
        let Output::Disclosure(d) = core.execute(&root(), Operation::DisclosureDraft(a)).unwrap() else {
            panic!()
        };
        assert!(d.markdown.contains(&m.root));
    }

    #[test]
    fn bad_sources_are_refused_with_the_field_named() {
        let (_d, core, _e, sroot) = rig();
        std::os::unix::fs::symlink("/etc", sroot.join("etc-link")).unwrap();
        let scan = |s: SourceArgs| {
            core.execute(
                &root(),
                Operation::LicenseScan(crate::license::LicenseScanArgs { source: s, job: None }),
            )
        };
        assert!(matches!(
            scan(web("../..")),
            Err(CoreError::InvalidArgument { field: "path", .. })
        ));
        assert!(matches!(
            scan(web("etc-link")),
            Err(CoreError::InvalidArgument { field: "path", .. })
        ));
        assert!(matches!(
            scan(SourceArgs::default()),
            Err(CoreError::InvalidArgument { field: "drive", .. })
        ));
        let gone = SourceArgs {
            sandbox: Some("nope".into()),
            ..Default::default()
        };
        assert!(scan(gone).is_err());
        assert!(matches!(
            core.execute(
                &root(),
                Operation::LicenseCancel(crate::license::JobRef { job: "none".into() })
            ),
            Err(CoreError::NotFound { .. })
        ));
    }

    #[test]
    fn labels_round_trip() {
        let s = SourceArgs {
            drive: Some("data".into()),
            sandbox: None,
            path: "src/x".into(),
        };
        assert_eq!(parse_label(&s.label()), Some(s));
        assert_eq!(parse_label("the appliance"), None);
    }
}
