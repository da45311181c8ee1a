//! Licences, SBOMs and proofs of existence (issue 18): the arguments of `license.*`, `sbom.*`, `notice.*`,
//! `proof.*` and `disclosure.*`, and [`Licensing`], the state those operations need (the signing key, running
//! jobs, where sandboxes' roots are). The work itself is `cacheos-license`; sources are resolved here from a drive's
//! first mounted file system or a running sandbox's root, and read strictly below it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub use cacheos_license::proof::Change;
use cacheos_license::proof::TimeStamp;
pub use cacheos_license::Language;
use cacheos_license::{BeneathTree, ProofManifest, SourceTree, TreeError};
use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::CoreError;

/// Where a licence operation reads: a drive or a running sandbox, and a relative path below it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceArgs {
    /// An attached drive (its first mounted file system).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drive: Option<String>,
    /// A running sandbox (its root file system).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
    /// A relative path below the drive or sandbox root; the whole root when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
}

impl SourceArgs {
    /// `drive data:/src`, `sandbox web:/`.
    pub fn label(&self) -> String {
        match (&self.drive, &self.sandbox) {
            (Some(d), _) => format!("drive {d}:/{}", self.path),
            (None, Some(s)) => format!("sandbox {s}:/{}", self.path),
            _ => "nothing".into(),
        }
    }

    fn check(&self) -> Result<(), CoreError> {
        match (&self.drive, &self.sandbox) {
            (Some(_), Some(_)) => Err(CoreError::InvalidArgument {
                field: "drive",
                reason: "name either a drive or a sandbox, not both".into(),
            }),
            (None, None) => Err(CoreError::InvalidArgument {
                field: "drive",
                reason: "name a drive or a sandbox to read".into(),
            }),
            _ => cacheos_license::tree::clean_relative(&self.path)
                .map(|_| ())
                .map_err(|_| CoreError::InvalidArgument {
                    field: "path",
                    reason: format!(
                        "{:?} must be relative and stay below the root (no .., no leading /)",
                        self.path
                    ),
                }),
        }
    }
}

/// Arguments of `license.scan`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LicenseScanArgs {
    /// What to scan.
    #[serde(flatten)]
    pub source: SourceArgs,
    /// A name for the job, for `license.cancel` and the progress events (`scan-N` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
}

/// Arguments of `license.cancel`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobRef {
    /// The job's name, as in the progress events.
    pub job: String,
}

/// Arguments of `sbom.create` and `notice.create`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SbomArgs {
    /// What to describe (unless `appliance`).
    #[serde(flatten)]
    pub source: SourceArgs,
    /// Describe the appliance itself: its Debian packages and the SBOM of CacheOS's crates made at image build.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub appliance: bool,
}

/// Arguments of `proof.verify`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProofVerifyArgs {
    /// The manifest as `proof.create` returned it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<Box<ProofManifest>>,
    /// Or the root of a proof this appliance made; the newest one when neither is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
}

/// Arguments of `disclosure.draft`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisclosureArgs {
    /// Title of the invention or work.
    pub title: String,
    /// What the person said about it.
    #[serde(default)]
    pub text: String,
    /// `de` or `en` (default `en`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<Language>,
    /// Root of the proof to cite; the newest proof when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<String>,
}

/// Gets an RFC 3161 time stamp for a digest: a data channel to an outside service, off unless configured.
pub trait TimeStamper: Send + Sync {
    /// A token over `digest` (SHA-256 of the manifest's signed message).
    fn stamp(&self, digest: &[u8; 32]) -> Result<TimeStamp, String>;
}

/// What the licence operations need besides the drive and sandbox managers.
pub struct Licensing {
    key: SigningKey,
    proc_dir: PathBuf,
    appliance_root: PathBuf,
    jobs: Mutex<BTreeMap<String, Arc<AtomicBool>>>,
    next_job: AtomicU64,
    stamper: Option<Box<dyn TimeStamper>>,
}

impl std::fmt::Debug for Licensing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Licensing")
            .field("public_key", &self.public_key())
            .finish()
    }
}

/// Record kind of the proofs this appliance made (key = root).
pub const PROOF_RECORD: &str = "proof";

impl Licensing {
    /// Loads or creates the signing key at `key_path` (mode 0600). Sandbox roots are found as
    /// `<proc_dir>/<main pid>/root`; the appliance's own files below `appliance_root` (`/`).
    pub fn new(key_path: &Path, proc_dir: PathBuf, appliance_root: PathBuf) -> Result<Self, CoreError> {
        let key = cacheos_license::proof::load_or_create_key(key_path)
            .map_err(|e| CoreError::FailedPrecondition(cacheos_license::tree::error_chain(&e)))?;
        Ok(Self::with_key(key, proc_dir, appliance_root))
    }

    /// Over a given key (tests).
    pub fn with_key(key: SigningKey, proc_dir: PathBuf, appliance_root: PathBuf) -> Self {
        Self {
            key,
            proc_dir,
            appliance_root,
            jobs: Mutex::new(BTreeMap::new()),
            next_job: AtomicU64::new(1),
            stamper: None,
        }
    }

    /// Adds a time-stamp service (configured by the operator; never by default).
    pub fn with_stamper(mut self, s: Box<dyn TimeStamper>) -> Self {
        self.stamper = Some(s);
        self
    }

    /// The public key proofs are signed with, hex.
    pub fn public_key(&self) -> String {
        cacheos_license::util::hex(self.key.verifying_key().as_bytes())
    }

    pub(crate) fn key(&self) -> &SigningKey {
        &self.key
    }

    pub(crate) fn stamper(&self) -> Option<&dyn TimeStamper> {
        self.stamper.as_deref()
    }

    pub(crate) fn appliance_root(&self) -> &Path {
        &self.appliance_root
    }

    /// Registers a job; the guard removes it again.
    pub(crate) fn start_job(&self, name: Option<&str>, kind: &str) -> Result<JobGuard<'_>, CoreError> {
        let name = match name {
            Some(n)
                if !n.is_empty()
                    && n.len() <= 64
                    && n.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) =>
            {
                n.to_owned()
            }
            Some(n) => {
                return Err(CoreError::InvalidArgument {
                    field: "job",
                    reason: format!("{n:?}: use 1-64 letters, digits, '-', '_' or '.'"),
                })
            }
            None => format!("{kind}-{}", self.next_job.fetch_add(1, Ordering::Relaxed)),
        };
        let flag = Arc::new(AtomicBool::new(false));
        let mut jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        if jobs.contains_key(&name) {
            return Err(CoreError::AlreadyExists(format!("job {name} is running")));
        }
        jobs.insert(name.clone(), flag.clone());
        Ok(JobGuard {
            owner: self,
            name,
            flag,
        })
    }

    /// Asks a running job to stop.
    pub(crate) fn cancel(&self, job: &str) -> Result<(), CoreError> {
        let jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        match jobs.get(job) {
            Some(f) => {
                f.store(true, Ordering::Relaxed);
                Ok(())
            }
            None => Err(CoreError::NotFound {
                kind: "job",
                name: job.to_owned(),
            }),
        }
    }

    /// Names of the running jobs.
    pub fn running_jobs(&self) -> Vec<String> {
        self.jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    /// The tree of a running sandbox's root with process id `pid`.
    pub(crate) fn sandbox_tree(&self, pid: u32, path: &str) -> Result<BeneathTree, TreeError> {
        BeneathTree::open(&self.proc_dir.join(pid.to_string()).join("root"), path)
    }
}

/// A running job; dropping it unregisters the job.
pub(crate) struct JobGuard<'a> {
    owner: &'a Licensing,
    pub(crate) name: String,
    pub(crate) flag: Arc<AtomicBool>,
}

impl Drop for JobGuard<'_> {
    fn drop(&mut self) {
        self.owner
            .jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.name);
    }
}

/// Maps a tree error to the core's error.
pub(crate) fn tree_error(what: &str, e: TreeError) -> CoreError {
    match e {
        TreeError::Outside(p) => CoreError::InvalidArgument {
            field: "path",
            reason: format!("{p:?} leads outside {what} (symbolic links are not followed)"),
        },
        TreeError::Cancelled => CoreError::FailedPrecondition(format!("reading {what} was cancelled")),
        e @ TreeError::Open { .. } => CoreError::FailedPrecondition(format!(
            "cannot read {what}: {}",
            cacheos_license::tree::error_chain(&e)
        )),
    }
}

/// Re-exported so front ends need not depend on `cacheos-license` for the result types.
pub use cacheos_license::{Disclosure, Notice, ProofManifest as Manifest, SbomDocuments, ScanReport, Verification};

/// The tree type the executor hands to the license crate.
pub(crate) type Tree = Box<dyn SourceTree>;

impl SourceArgs {
    pub(crate) fn validate(&self) -> Result<(), CoreError> {
        self.check()
    }
}
