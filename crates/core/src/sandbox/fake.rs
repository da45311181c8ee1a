//! Recording fakes of [`RootPreparer`] and [`ContainerRunner`]: each call is recorded as a typed value so tests can
//! assert the exact plan, results can be scripted, and what is held (running containers, prepared roots,
//! persistent data) is tracked so tests can assert that nothing is left behind.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;

/// Where fake runtime roots live.
pub const FAKE_RUN_DIR: &str = "/run/cacheos/sandboxes";
/// Where fake persistent data lives.
pub const FAKE_STATE_DIR: &str = "/var/lib/cacheos/sandboxes";

/// One recorded call, in the order they happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    Prepare {
        name: String,
        template: String,
        ephemeral: bool,
    },
    Release {
        name: String,
    },
    RemoveData {
        name: String,
    },
    Prepared,
    Start(StartRequest),
    Stop {
        name: String,
        timeout: Duration,
    },
    Status {
        name: String,
    },
    Running,
    Exec {
        name: String,
        argv: Vec<String>,
    },
    Stats {
        name: String,
    },
    Logs {
        name: String,
        lines: usize,
    },
    CopyIn {
        name: String,
        bytes: u64,
        inside: PathBuf,
    },
    CopyOut {
        name: String,
        inside: PathBuf,
    },
    Shell {
        name: String,
        term: String,
    },
    Forget {
        name: String,
    },
}

fn render_root(root: &PreparedRoot) -> String {
    let (kind, path) = match &root.source {
        RootSource::Directory(p) => ("directory", p),
        RootSource::Image(p) => ("image", p),
    };
    let volatile = match root.volatile {
        Volatile::No => "",
        Volatile::Yes => " volatile=yes",
        Volatile::Overlay => " volatile=overlay",
    };
    format!("{kind} {}{volatile}", path.display())
}

impl fmt::Display for Call {
    /// A one-line plan step, e.g. `start box from directory /run/x/root, network none, memory 67108864`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Call::Prepare {
                name,
                template,
                ephemeral,
            } => write!(
                f,
                "prepare root of {name} from template {template} ({})",
                if *ephemeral { "ephemeral" } else { "persistent" }
            ),
            Call::Release { name } => write!(f, "release root of {name}"),
            Call::RemoveData { name } => write!(f, "remove data of {name}"),
            Call::Prepared => write!(f, "list prepared roots"),
            Call::Start(r) => {
                write!(
                    f,
                    "start {} from {}, network {}",
                    r.name,
                    render_root(&r.root),
                    r.network.as_str()
                )?;
                if let Some(cpu) = r.limits.cpu {
                    write!(f, ", cpu {cpu}")?;
                }
                if let Some(m) = r.limits.memory_max {
                    write!(f, ", memory {m}")?;
                }
                if let Some(t) = r.limits.tasks_max {
                    write!(f, ", tasks {t}")?;
                }
                for b in &r.binds {
                    let mode = if b.read_write { "rw" } else { "ro" };
                    write!(f, ", bind {} at {} {mode}", b.source.display(), b.target.display())?;
                }
                match &r.command {
                    Some(argv) => write!(f, ", command {}", argv.join(" ")),
                    None => write!(f, ", boot"),
                }
            }
            Call::Stop { name, timeout } => write!(f, "stop {name} (timeout {} s)", timeout.as_secs()),
            Call::Status { name } => write!(f, "status of {name}"),
            Call::Running => write!(f, "list running containers"),
            Call::Exec { name, argv } => write!(f, "exec in {name}: {}", argv.join(" ")),
            Call::Stats { name } => write!(f, "stats of {name}"),
            Call::Logs { name, lines } => write!(f, "logs of {name} ({lines} lines)"),
            Call::CopyIn { name, bytes, inside } => {
                write!(f, "copy {bytes} bytes into {name} at {}", inside.display())
            }
            Call::CopyOut { name, inside } => write!(f, "copy {} out of {name}", inside.display()),
            Call::Shell { name, term } => write!(f, "shell in {name} ({term})"),
            Call::Forget { name } => write!(f, "forget {name}"),
        }
    }
}

/// A call that should fail the next time it is made (see [`FakeSandboxes::fail_next`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOn {
    Prepare,
    Release,
    RemoveData,
    Start,
    Stop,
    Exec,
    CopyIn,
}

/// A scripted exec result.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Script {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    exit_code: i32,
}

#[derive(Debug, Default)]
struct State {
    calls: Vec<Call>,
    /// name -> prepared runtime root
    roots: BTreeMap<String, PreparedRoot>,
    /// names with persistent data
    data: BTreeSet<String>,
    /// name -> leader pid
    running: BTreeMap<String, u32>,
    logs: BTreeMap<String, Vec<String>>,
    scripts: BTreeMap<String, Script>,
    next_pid: u32,
    failures: VecDeque<(FailOn, String)>,
    /// (sandbox, path inside) -> contents written by copy-in
    files: BTreeMap<(String, PathBuf), Vec<u8>>,
}

/// One set of recording fakes sharing a call log and a simulated system. Leaders are numbered from pid 4000.
/// By default every call succeeds and an exec of an unscripted command behaves like "not found" (exit code 127).
#[derive(Debug, Clone, Default)]
pub struct FakeSandboxes {
    state: Arc<Mutex<State>>,
}

impl FakeSandboxes {
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Makes the next call of that kind fail with an error carrying `message`.
    pub fn fail_next(&self, on: FailOn, message: impl Into<String>) {
        self.with(|s| s.failures.push_back((on, message.into())));
    }

    /// What an exec of `argv0` prints and returns.
    pub fn script_exec(&self, argv0: &str, stdout: &str, stderr: &str, exit_code: i32) {
        self.with(|s| {
            s.scripts.insert(
                argv0.to_owned(),
                Script {
                    stdout: stdout.as_bytes().to_vec(),
                    stderr: stderr.as_bytes().to_vec(),
                    exit_code,
                },
            )
        });
    }

    /// Simulates a container killed behind CacheOS's back (no call recorded).
    pub fn kill_behind_back(&self, name: &str) {
        self.with(|s| s.running.remove(name));
    }

    /// Simulates a container (and its root) that runs without CacheOS having recorded it.
    pub fn add_stray(&self, name: &str) {
        self.with(|s| {
            s.next_pid += 1;
            let pid = 4000 + s.next_pid;
            s.running.insert(name.to_owned(), pid);
            s.roots.insert(
                name.to_owned(),
                PreparedRoot {
                    source: RootSource::Directory(Path::new(FAKE_RUN_DIR).join(name).join("root")),
                    volatile: Volatile::No,
                    binds: Vec::new(),
                },
            );
        });
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.with(|s| s.calls.clone())
    }

    /// Every call so far as plan steps (see [`Call`]'s `Display`).
    pub fn plan(&self) -> Vec<String> {
        self.calls().iter().map(ToString::to_string).collect()
    }

    /// Forgets the calls so far (to assert the plan of the next step alone).
    pub fn clear_calls(&self) {
        self.with(|s| s.calls.clear());
    }

    /// What is still held: `container NAME`, `root NAME`, `data NAME`.
    pub fn leftovers(&self) -> Vec<String> {
        self.with(|s| {
            let mut out: Vec<String> = s.running.keys().map(|n| format!("container {n}")).collect();
            out.extend(s.roots.keys().map(|n| format!("root {n}")));
            out.extend(s.data.iter().map(|n| format!("data {n}")));
            out
        })
    }

    pub fn roots(&self) -> FakeRoots {
        FakeRoots(self.clone())
    }

    pub fn runner(&self) -> FakeRunner {
        FakeRunner(self.clone())
    }

    fn take_failure(s: &mut State, on: FailOn) -> Option<String> {
        let pos = s.failures.iter().position(|(f, _)| *f == on)?;
        s.failures.remove(pos).map(|(_, m)| m)
    }
}

fn injected(message: String) -> io::Error {
    io::Error::other(message)
}

/// Recording [`RootPreparer`].
#[derive(Debug, Clone)]
pub struct FakeRoots(FakeSandboxes);

/// Recording [`ContainerRunner`].
#[derive(Debug, Clone)]
pub struct FakeRunner(FakeSandboxes);

impl RootPreparer for FakeRoots {
    fn prepare(&self, name: &str, template: &Template, ephemeral: bool) -> Result<PreparedRoot, RootError> {
        self.0.with(|s| {
            s.calls.push(Call::Prepare {
                name: name.to_owned(),
                template: template.name.clone(),
                ephemeral,
            });
            let run = Path::new(FAKE_RUN_DIR).join(name);
            if let Some(message) = FakeSandboxes::take_failure(s, FailOn::Prepare) {
                return Err(RootError::Mount {
                    target: run.join("root"),
                    source: injected(message),
                });
            }
            let data = Path::new(FAKE_STATE_DIR).join(name);
            let root = match template.kind {
                TemplateKind::Host => PreparedRoot {
                    source: RootSource::Directory(if ephemeral { run.join("root") } else { data.join("root") }),
                    volatile: Volatile::No,
                    binds: vec![Bind {
                        drive: String::new(),
                        source: template.path.join("usr"),
                        target: "/usr".into(),
                        read_write: false,
                    }],
                },
                TemplateKind::Directory | TemplateKind::FsImage => PreparedRoot {
                    source: RootSource::Directory(run.join("root")),
                    volatile: Volatile::No,
                    binds: Vec::new(),
                },
                TemplateKind::Image => PreparedRoot {
                    source: RootSource::Image(template.path.clone()),
                    volatile: Volatile::Overlay,
                    binds: Vec::new(),
                },
            };
            if !ephemeral {
                s.data.insert(name.to_owned());
            }
            s.roots.insert(name.to_owned(), root.clone());
            Ok(root)
        })
    }

    fn release(&self, name: &str) -> Result<(), RootError> {
        self.0.with(|s| {
            s.calls.push(Call::Release { name: name.to_owned() });
            if let Some(message) = FakeSandboxes::take_failure(s, FailOn::Release) {
                return Err(RootError::Unmount {
                    target: Path::new(FAKE_RUN_DIR).join(name).join("root"),
                    source: injected(message),
                });
            }
            s.roots.remove(name);
            Ok(())
        })
    }

    fn remove_data(&self, name: &str) -> Result<(), RootError> {
        self.0.with(|s| {
            s.calls.push(Call::RemoveData { name: name.to_owned() });
            if let Some(message) = FakeSandboxes::take_failure(s, FailOn::RemoveData) {
                return Err(RootError::Remove {
                    path: Path::new(FAKE_STATE_DIR).join(name),
                    source: injected(message),
                });
            }
            s.data.remove(name);
            Ok(())
        })
    }

    fn prepared(&self) -> Result<Vec<String>, RootError> {
        self.0.with(|s| {
            s.calls.push(Call::Prepared);
            Ok(s.roots.keys().cloned().collect())
        })
    }
}

impl ContainerRunner for FakeRunner {
    fn start(&self, request: &StartRequest) -> Result<ContainerHandle, RunnerError> {
        self.0.with(|s| {
            s.calls.push(Call::Start(request.clone()));
            let name = request.name.clone();
            if let Some(message) = FakeSandboxes::take_failure(s, FailOn::Start) {
                return Err(RunnerError::Start { name, message });
            }
            if s.running.contains_key(&name) {
                return Err(RunnerError::AlreadyRunning { name });
            }
            s.next_pid += 1;
            let leader = 4000 + s.next_pid;
            s.running.insert(name.clone(), leader);
            s.logs.entry(name.clone()).or_default().push(format!("started {name}"));
            Ok(ContainerHandle {
                unit: format!("cacheos-sandbox-{name}.service"),
                name,
                leader,
            })
        })
    }

    fn stop(&self, name: &str, timeout: Duration) -> Result<StopOutcome, RunnerError> {
        self.0.with(|s| {
            s.calls.push(Call::Stop {
                name: name.to_owned(),
                timeout,
            });
            if let Some(message) = FakeSandboxes::take_failure(s, FailOn::Stop) {
                return Err(RunnerError::Stop {
                    name: name.to_owned(),
                    source: injected(message),
                });
            }
            Ok(match s.running.remove(name) {
                Some(_) => StopOutcome::Graceful,
                None => StopOutcome::NotRunning,
            })
        })
    }

    fn status(&self, name: &str) -> Result<Option<RunningContainer>, RunnerError> {
        self.0.with(|s| {
            s.calls.push(Call::Status { name: name.to_owned() });
            Ok(s.running.get(name).map(|&leader| RunningContainer {
                name: name.to_owned(),
                leader,
                started_ms: None,
            }))
        })
    }

    fn running(&self) -> Result<Vec<RunningContainer>, RunnerError> {
        self.0.with(|s| {
            s.calls.push(Call::Running);
            Ok(s.running
                .iter()
                .map(|(name, &leader)| RunningContainer {
                    name: name.clone(),
                    leader,
                    started_ms: None,
                })
                .collect())
        })
    }

    fn exec(
        &self,
        name: &str,
        _env: &[(String, String)],
        spec: &ExecSpec,
        stdin: Option<&mut (dyn std::io::Read + Send)>,
        sink: &mut dyn FnMut(OutputChunk),
    ) -> Result<ExecOutcome, RunnerError> {
        if let Some(stdin) = stdin {
            let _ = io::copy(stdin, &mut io::sink());
        }
        let script = self.0.with(|s| {
            s.calls.push(Call::Exec {
                name: name.to_owned(),
                argv: spec.argv.clone(),
            });
            if let Some(message) = FakeSandboxes::take_failure(s, FailOn::Exec) {
                return Err(RunnerError::Exec {
                    name: name.to_owned(),
                    source: injected(message),
                });
            }
            if !s.running.contains_key(name) {
                return Err(RunnerError::NotRunning { name: name.to_owned() });
            }
            Ok(s.scripts.get(&spec.argv[0]).cloned().unwrap_or_else(|| Script {
                stdout: Vec::new(),
                stderr: format!("{}: not found\n", spec.argv[0]).into_bytes(),
                exit_code: 127,
            }))
        })?;
        if !script.stdout.is_empty() {
            sink(OutputChunk::Stdout(script.stdout));
        }
        if !script.stderr.is_empty() {
            sink(OutputChunk::Stderr(script.stderr));
        }
        Ok(ExecOutcome {
            exit_code: script.exit_code,
            timed_out: false,
        })
    }

    fn stats(&self, name: &str) -> Result<ContainerStats, RunnerError> {
        self.0.with(|s| {
            s.calls.push(Call::Stats { name: name.to_owned() });
            if !s.running.contains_key(name) {
                return Err(RunnerError::NotRunning { name: name.to_owned() });
            }
            Ok(ContainerStats {
                cpu_time_ns: Some(1_000_000),
                memory_current: Some(4 << 20),
                memory_peak: Some(8 << 20),
                tasks_current: Some(1),
                ..ContainerStats::default()
            })
        })
    }

    fn logs(&self, name: &str, lines: usize) -> Result<Vec<String>, RunnerError> {
        self.0.with(|s| {
            s.calls.push(Call::Logs {
                name: name.to_owned(),
                lines,
            });
            let all = s.logs.get(name).cloned().unwrap_or_default();
            Ok(all[all.len().saturating_sub(lines)..].to_vec())
        })
    }

    fn copy_in(&self, name: &str, source: &mut dyn io::Read, inside_target: &Path) -> Result<u64, RunnerError> {
        let mut bytes = Vec::new();
        let read = source.read_to_end(&mut bytes);
        self.0.with(|s| {
            s.calls.push(Call::CopyIn {
                name: name.to_owned(),
                bytes: bytes.len() as u64,
                inside: inside_target.to_owned(),
            });
            let err = |source| RunnerError::Copy {
                name: name.to_owned(),
                from: "the input stream".into(),
                to: inside_target.to_owned(),
                source,
            };
            if let Some(message) = FakeSandboxes::take_failure(s, FailOn::CopyIn) {
                return Err(err(injected(message)));
            }
            read.map_err(err)?;
            if !s.running.contains_key(name) {
                return Err(RunnerError::NotRunning { name: name.to_owned() });
            }
            let n = bytes.len() as u64;
            s.files.insert((name.to_owned(), inside_target.to_owned()), bytes);
            Ok(n)
        })
    }

    fn copy_out(&self, name: &str, inside_source: &Path, sink: &mut dyn io::Write) -> Result<u64, RunnerError> {
        let bytes = self.0.with(|s| {
            s.calls.push(Call::CopyOut {
                name: name.to_owned(),
                inside: inside_source.to_owned(),
            });
            s.files
                .get(&(name.to_owned(), inside_source.to_owned()))
                .cloned()
                .ok_or_else(|| RunnerError::Copy {
                    name: name.to_owned(),
                    from: inside_source.to_owned(),
                    to: "the output stream".into(),
                    source: io::Error::new(io::ErrorKind::NotFound, "no such file"),
                })
        })?;
        sink.write_all(&bytes).map_err(|source| RunnerError::Copy {
            name: name.to_owned(),
            from: inside_source.to_owned(),
            to: "the output stream".into(),
            source,
        })?;
        Ok(bytes.len() as u64)
    }

    fn shell(&self, name: &str, _env: &[(String, String)], term: &str) -> Result<std::os::fd::OwnedFd, RunnerError> {
        self.0.with(|s| {
            s.calls.push(Call::Shell {
                name: name.to_owned(),
                term: term.to_owned(),
            });
            if !s.running.contains_key(name) {
                return Err(RunnerError::NotRunning { name: name.to_owned() });
            }
            let null = std::fs::File::open("/dev/null").map_err(|source| RunnerError::Shell {
                name: name.to_owned(),
                source,
            })?;
            Ok(null.into())
        })
    }

    fn forget(&self, name: &str) -> Result<(), RunnerError> {
        self.0.with(|s| {
            s.calls.push(Call::Forget { name: name.to_owned() });
            s.logs.remove(name);
            Ok(())
        })
    }
}
