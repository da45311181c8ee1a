//! Recording fakes for software tests: [`FakeResolver`] (a package table per ecosystem; can be made unreachable),
//! [`FakeSandboxes`] (sandboxes with facts and files, exec scripted by argv prefix, every call recorded) and
//! [`FakeForwarder`] (the sets of forwards applied).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::expose::{Forward, PortForwarder};
use super::install::{SandboxAccess, SandboxFacts};
use super::resolve::{Resolver, Resolvers};
use super::{close_names, validate_name, validate_version, Candidate, Ecosystem, NewSandbox, SoftwareError};
use crate::sandbox::Network;

/// A version: (version, size, description).
type Version = (String, u64, String);

/// A registry of one ecosystem: name → versions (oldest first) with size and description.
#[derive(Default)]
pub struct FakeResolver {
    pub eco: Option<Ecosystem>,
    packages: Mutex<BTreeMap<String, Vec<Version>>>,
    /// When set, every call fails as unreachable (offline) or unavailable (index missing).
    pub down: Mutex<Option<SoftwareError>>,
    pub lookups: Mutex<Vec<String>>,
}

impl FakeResolver {
    pub fn new(eco: Ecosystem) -> Self {
        Self {
            eco: Some(eco),
            ..Default::default()
        }
    }

    /// Adds a version.
    pub fn add(&self, name: &str, version: &str, size: u64, description: &str) -> &Self {
        self.packages
            .lock()
            .unwrap()
            .entry(name.into())
            .or_default()
            .push((version.into(), size, description.into()));
        self
    }

    /// Makes it fail like an offline registry.
    pub fn go_offline(&self) {
        *self.down.lock().unwrap() = Some(SoftwareError::Unreachable {
            registry: self.eco().registry(),
            reason: "Could not resolve host".into(),
        });
    }

    fn eco(&self) -> Ecosystem {
        self.eco.unwrap_or(Ecosystem::Apt)
    }
}

impl Resolver for FakeResolver {
    fn ecosystem(&self) -> Ecosystem {
        self.eco()
    }

    fn lookup(&self, name: &str, version: Option<&str>) -> Result<Candidate, SoftwareError> {
        validate_name(self.eco(), name)?;
        if let Some(v) = version {
            validate_version(self.eco(), v)?;
        }
        self.lookups.lock().unwrap().push(name.to_string());
        if let Some(e) = self.down.lock().unwrap().clone() {
            return Err(e);
        }
        let p = self.packages.lock().unwrap();
        let Some(versions) = p.get(name) else {
            return Err(SoftwareError::NotFound {
                ecosystem: self.eco(),
                name: name.into(),
                close: close_names(name, p.keys().map(String::as_str), 5),
            });
        };
        let pick = match version {
            Some(v) => versions.iter().find(|x| x.0 == v),
            None => versions.last(),
        };
        match pick {
            Some((v, size, d)) => Ok(Candidate {
                ecosystem: self.eco(),
                name: name.into(),
                version: v.clone(),
                size: Some(*size),
                description: d.clone(),
                via: None,
            }),
            None => Err(SoftwareError::NoSuchVersion {
                ecosystem: self.eco(),
                name: name.into(),
                version: version.unwrap_or_default().into(),
                available: versions.iter().map(|x| x.0.clone()).collect(),
            }),
        }
    }

    fn search(&self, query: &str, limit: usize) -> Result<Vec<Candidate>, SoftwareError> {
        if let Some(e) = self.down.lock().unwrap().clone() {
            return Err(e);
        }
        let names: Vec<String> = {
            let p = self.packages.lock().unwrap();
            p.keys()
                .filter(|n| n.contains(&query.to_lowercase()))
                .take(limit)
                .cloned()
                .collect()
        };
        names.iter().map(|n| self.lookup(n, None)).collect()
    }
}

/// Resolvers over three fakes, returned with them.
pub fn resolvers() -> (Resolvers, Arc<FakeResolver>, Arc<FakeResolver>, Arc<FakeResolver>) {
    let apt = Arc::new(FakeResolver::new(Ecosystem::Apt));
    let pip = Arc::new(FakeResolver::new(Ecosystem::Pip));
    let npm = Arc::new(FakeResolver::new(Ecosystem::Npm));
    (
        Resolvers {
            apt: apt.clone(),
            pip: pip.clone(),
            npm: npm.clone(),
        },
        apt,
        pip,
        npm,
    )
}

/// What a fake exec of an argv prefix prints and returns.
#[derive(Debug, Clone)]
struct Script {
    prefix: Vec<String>,
    lines: Vec<String>,
    code: i32,
}

#[derive(Debug, Default)]
struct State {
    sandboxes: BTreeMap<String, SandboxFacts>,
    files: BTreeMap<(String, String), Vec<u8>>,
    calls: Vec<String>,
    scripts: Vec<Script>,
    templates: BTreeMap<String, Result<(), String>>,
    fail_create: Option<String>,
}

/// Sandboxes for software tests. Unscripted commands succeed silently; `dpkg-query` answers the versions of the
/// packages `apt-get install` was given.
#[derive(Debug, Clone, Default)]
pub struct FakeSandboxes(Arc<Mutex<State>>);

impl FakeSandboxes {
    /// With a `debian` template.
    pub fn new() -> Self {
        let f = Self::default();
        f.0.lock().unwrap().templates.insert("debian".into(), Ok(()));
        f
    }

    /// Adds a sandbox.
    pub fn add(&self, name: &str, template: &str, running: bool, network: Network) {
        let installable = if template == "host" {
            Err(format!("sandbox {name}: template host shares the appliance's read-only /usr and has no package manager of its own"))
        } else {
            Ok(())
        };
        self.0.lock().unwrap().sandboxes.insert(
            name.into(),
            SandboxFacts {
                name: name.into(),
                running,
                template: template.into(),
                network,
                ip: running.then(|| "10.0.0.2".to_string()),
                installable,
            },
        );
    }

    /// Makes commands starting with `prefix` print `lines` and exit with `code`.
    pub fn script(&self, prefix: &[&str], lines: &[&str], code: i32) {
        self.0.lock().unwrap().scripts.push(Script {
            prefix: prefix.iter().map(|s| s.to_string()).collect(),
            lines: lines.iter().map(|s| s.to_string()).collect(),
            code,
        });
    }

    /// Makes the next create fail.
    pub fn fail_create(&self, why: &str) {
        self.0.lock().unwrap().fail_create = Some(why.into());
    }

    /// Every call, rendered ("exec web: apt-get update").
    pub fn calls(&self) -> Vec<String> {
        self.0.lock().unwrap().calls.clone()
    }

    /// The sandboxes that exist.
    pub fn existing(&self) -> Vec<String> {
        self.0.lock().unwrap().sandboxes.keys().cloned().collect()
    }

    /// A file inside.
    pub fn file(&self, sandbox: &str, path: &str) -> Option<String> {
        self.0
            .lock()
            .unwrap()
            .files
            .get(&(sandbox.to_string(), path.to_string()))
            .map(|b| String::from_utf8_lossy(b).into_owned())
    }
}

impl SandboxAccess for FakeSandboxes {
    fn names(&self) -> Vec<String> {
        self.existing()
    }

    fn facts(&self, name: &str) -> Result<Option<SandboxFacts>, String> {
        Ok(self.0.lock().unwrap().sandboxes.get(name).cloned())
    }

    fn template_installable(&self, template: &str) -> Result<(), String> {
        self.0
            .lock()
            .unwrap()
            .templates
            .get(template)
            .cloned()
            .unwrap_or_else(|| Err(format!("there is no {template} template in this daemon")))
    }

    fn create_and_start(&self, new: &NewSandbox, _by: &str) -> Result<(), String> {
        let mut s = self.0.lock().unwrap();
        s.calls.push(format!(
            "create {} from {} network {}",
            new.name,
            new.template,
            new.network.as_str()
        ));
        if let Some(why) = s.fail_create.take() {
            return Err(why);
        }
        drop(s);
        self.add(&new.name, &new.template, true, new.network);
        Ok(())
    }

    fn start(&self, name: &str) -> Result<(), String> {
        let mut s = self.0.lock().unwrap();
        s.calls.push(format!("start {name}"));
        let f = s.sandboxes.get_mut(name).ok_or("no such sandbox")?;
        f.running = true;
        f.ip = Some("10.0.0.2".into());
        Ok(())
    }

    fn remove(&self, name: &str) -> Result<(), String> {
        let mut s = self.0.lock().unwrap();
        s.calls.push(format!("remove {name}"));
        s.sandboxes.remove(name);
        s.files.retain(|(sb, _), _| sb != name);
        Ok(())
    }

    fn exec(
        &self,
        name: &str,
        argv: &[String],
        _env: &[(String, String)],
        cwd: Option<&str>,
        _timeout: Duration,
        line: &mut dyn FnMut(&str),
    ) -> Result<i32, String> {
        let (lines, code) = {
            let mut s = self.0.lock().unwrap();
            let cwd = cwd.map(|c| format!(" (in {c})")).unwrap_or_default();
            s.calls.push(format!("exec {name}{cwd}: {}", argv.join(" ")));
            match s.sandboxes.get(name) {
                Some(f) if f.running => {}
                _ => return Err(format!("sandbox {name} is not running")),
            }
            let script = s
                .scripts
                .iter()
                .rev()
                .find(|sc| argv.len() >= sc.prefix.len() && argv[..sc.prefix.len()] == sc.prefix[..])
                .cloned();
            match script {
                Some(sc) => (sc.lines, sc.code),
                None if argv[0] == "dpkg-query" => {
                    // The versions apt-get install was given, as dpkg would list them.
                    let installed: Vec<String> = s
                        .calls
                        .iter()
                        .filter_map(|c| {
                            c.split_once(": apt-get install -y --no-install-recommends -- ")
                                .map(|(_, r)| r.to_string())
                        })
                        .flat_map(|r| r.split(' ').map(str::to_string).collect::<Vec<_>>())
                        .collect();
                    let lines = argv[4..]
                        .iter()
                        .filter_map(|n| {
                            installed.iter().find_map(|i| {
                                i.split_once('=')
                                    .filter(|(a, _)| a == n)
                                    .map(|(_, v)| format!("{n}\t{v}"))
                            })
                        })
                        .collect();
                    (lines, 0)
                }
                None => (Vec::new(), 0),
            }
        };
        for l in &lines {
            line(l);
        }
        Ok(code)
    }

    fn write_file(&self, name: &str, path: &str, bytes: &[u8]) -> Result<(), String> {
        let mut s = self.0.lock().unwrap();
        s.calls.push(format!("write {name}:{path}"));
        s.files.insert((name.into(), path.into()), bytes.to_vec());
        Ok(())
    }

    fn read_file(&self, name: &str, path: &str) -> Result<Option<Vec<u8>>, String> {
        Ok(self
            .0
            .lock()
            .unwrap()
            .files
            .get(&(name.to_string(), path.to_string()))
            .cloned())
    }
}

/// Records each applied set of forwards.
#[derive(Debug, Default)]
pub struct FakeForwarder {
    pub applied: Mutex<Vec<Vec<Forward>>>,
    pub fail: Mutex<Option<String>>,
}

impl FakeForwarder {
    /// The forwards active now.
    pub fn active(&self) -> Vec<Forward> {
        self.applied.lock().unwrap().last().cloned().unwrap_or_default()
    }
}

impl PortForwarder for FakeForwarder {
    fn apply(&self, forwards: &[Forward]) -> Result<(), String> {
        if let Some(e) = self.fail.lock().unwrap().take() {
            return Err(e);
        }
        self.applied.lock().unwrap().push(forwards.to_vec());
        Ok(())
    }
}
