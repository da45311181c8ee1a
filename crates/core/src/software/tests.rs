//! Host tests of the software planner, installer, lockfile and port forwards over the recording fakes.

use std::sync::Arc;
use std::time::Duration;

use super::aliases::{self, understand};
use super::expose::{nft_ruleset, Forward};
use super::fake::{self, FakeForwarder, FakeSandboxes};
use super::index::{self, deb_cmp, DebIndex};
use super::install::{explain, Software};
use super::*;
use crate::clock::FakeClock;
use crate::event::EventBus;
use crate::sandbox::Network;
use crate::store::MemoryStore;

struct World {
    sw: Arc<Software>,
    sb: FakeSandboxes,
    fwd: Arc<FakeForwarder>,
    apt: Arc<fake::FakeResolver>,
    pip: Arc<fake::FakeResolver>,
    _npm: Arc<fake::FakeResolver>,
    _cache: tempfile::TempDir,
}

fn world() -> World {
    let (resolvers, apt, pip, npm) = fake::resolvers();
    apt.add(
        "python3-flask",
        "2.2.2-3",
        81_000,
        "micro web framework based on Werkzeug and Jinja2",
    )
    .add(
        "redis-server",
        "5:7.0.15-1~deb12u1",
        74_000,
        "Persistent key-value database with network interface",
    )
    .add("python3-venv", "3.11.2-1+b1", 1_200, "venv module for python3")
    .add(
        "nodejs",
        "18.19.0+dfsg-6~deb12u2",
        11_000_000,
        "evented I/O for V8 javascript - runtime executable",
    )
    .add("npm", "9.2.0~ds1-1", 2_000_000, "package manager for Node.js")
    .add(
        "node-express",
        "4.18.2+~cs8.4.6-1",
        120_000,
        "web framework for Node.js",
    )
    .add(
        "git",
        "1:2.39.5-0+deb12u1",
        7_000_000,
        "fast, scalable, distributed revision control system",
    )
    .add(
        "python3",
        "3.11.2-1+b1",
        26_000,
        "interactive high-level object-oriented language",
    )
    .add("python3-pip", "23.0.1+dfsg-1", 1_300_000, "Python package installer")
    .add(
        "python3-dev",
        "3.11.2-1+b1",
        26_000,
        "header files and a static library for Python",
    )
    .add("htop", "3.2.2-2", 150_000, "interactive processes viewer")
    .add("htop", "3.2.1-1", 150_000, "interactive processes viewer")
    .add(
        "openjdk-17-jdk",
        "17.0.13+11-2~deb12u1",
        2_000_000,
        "OpenJDK Development Kit (JDK)",
    );
    pip.add(
        "flask",
        "3.0.3",
        101_000,
        "A simple framework for building complex web applications.",
    )
    .add(
        "flask",
        "3.1.0",
        102_000,
        "A simple framework for building complex web applications.",
    );
    npm.add(
        "express",
        "4.21.1",
        220_000,
        "Fast, unopinionated, minimalist web framework",
    );
    let sb = FakeSandboxes::new();
    let fwd = Arc::new(FakeForwarder::default());
    let clock = Arc::new(FakeClock::at(1_000));
    let cache = tempfile::tempdir().unwrap();
    let sw = Arc::new(Software::new(
        resolvers,
        Arc::new(sb.clone()),
        fwd.clone(),
        Arc::new(MemoryStore::new()),
        EventBus::new(64, clock.clone()),
        clock,
        cache.path().to_path_buf(),
        Arc::new(|| Some("192.168.1.20".into())),
    ));
    World {
        sw,
        sb,
        fwd,
        apt,
        pip,
        _npm: npm,
        _cache: cache,
    }
}

fn wish(text: &str) -> SoftwareInstallArgs {
    SoftwareInstallArgs {
        request: Some(text.into()),
        ..Default::default()
    }
}

fn pkg(eco: Ecosystem, name: &str, version: Option<&str>) -> PackageRequest {
    PackageRequest {
        ecosystem: eco,
        name: name.into(),
        version: version.map(str::to_string),
    }
}

fn names(plan: &SoftwarePlan) -> Vec<String> {
    plan.packages
        .iter()
        .map(|c| format!("{}:{}={}", c.ecosystem, c.name, c.version))
        .collect()
}

#[test]
fn the_shipped_tables_parse_and_cover_the_common_wishes() {
    let a = aliases::aliases();
    assert!(a.len() >= 50, "{} aliases", a.len());
    for key in [
        "flask",
        "django",
        "fastapi",
        "jupyter",
        "node",
        "express",
        "react",
        "redis",
        "postgresql",
        "mariadb",
        "nginx",
        "git",
        "gcc",
        "rust",
        "go",
        "java",
    ] {
        assert!(aliases::alias(key).is_some(), "{key} missing");
    }
    let p = aliases::profiles();
    for key in ["python", "node", "c", "rust", "go", "java"] {
        assert!(p.iter().any(|x| x.key == key), "profile {key} missing");
    }
    // Every package name in the tables obeys its grammar.
    for al in a {
        for eco in Ecosystem::ALL {
            for n in al.packages(eco) {
                validate_name(eco, n).unwrap_or_else(|e| panic!("{}: {e}", al.key));
            }
        }
    }
    assert!(aliases::parse_aliases("x\tapp\tx\t-\t-\t-\t-\t-\n").is_err());
}

#[test]
fn wishes_are_read_in_german_and_english() {
    let w = understand("Ich möchte einen Python-Webserver mit Flask und Redis, bitte.", &[]);
    assert_eq!(w.aliases, ["flask", "redis"], "{w:?}");
    assert!(w.rest.is_empty(), "{w:?}");
    let w = understand("installiere nodejs und express in web", &["web".into()]);
    assert_eq!(w.sandbox.as_deref(), Some("web"));
    assert_eq!(w.aliases, ["express"], "{w:?}");
    let w = understand("richte mir eine Python-Entwicklungsumgebung ein", &[]);
    assert_eq!((w.profile.as_deref(), w.aliases.len()), (Some("python"), 0), "{w:?}");
    let w = understand("I need a Node 18 dev box", &[]);
    assert_eq!(w.profile.as_deref(), Some("node"));
    assert_eq!(w.versions, [("node".to_string(), "18".to_string())]);
    let w = understand("ich brauche Flask aus PyPI in einem venv", &[]);
    assert_eq!(
        (w.aliases.as_slice(), w.prefer),
        (&["flask".to_string()][..], Some(Ecosystem::Pip))
    );
    let w = understand("I need a web server", &[]);
    assert_eq!(w.aliases, ["webserver"]);
    let w = understand("ich brauche eine Datenbank und nginx", &[]);
    assert_eq!(w.aliases, ["nginx"], "a category only when nothing else matched: {w:?}");
    let w = understand("installiere htop und gcc", &[]);
    assert_eq!(
        (w.aliases.as_slice(), w.rest.as_slice()),
        (&["htop".to_string(), "gcc".to_string()][..], &[][..])
    );
    let w = understand("installiere cowsay", &[]);
    assert_eq!(w.rest, ["cowsay"]);
}

#[test]
fn flask_and_redis_plan_a_new_nat_sandbox_with_exact_versions() {
    let w = world();
    let plan =
        w.sw.plan(
            &wish("Ich möchte einen Python-Webserver mit Flask und Redis, bitte."),
            None,
        )
        .unwrap();
    assert_eq!(plan.sandbox, "flask");
    assert_eq!(
        plan.create,
        Some(NewSandbox {
            name: "flask".into(),
            template: "debian".into(),
            network: Network::Nat
        })
    );
    assert_eq!(
        names(&plan),
        ["apt:python3-flask=2.2.2-3", "apt:redis-server=5:7.0.15-1~deb12u1"]
    );
    assert_eq!(plan.download_bytes, 155_000);
    assert_eq!(plan.starters.len(), 1);
    assert_eq!(plan.starters[0].port, Some(5000));
    assert_eq!(plan.starters[0].command[0], "/usr/bin/flask");
    assert_eq!(
        plan.steps,
        [
            "create sandbox flask from template debian with network nat and start it",
            "wait for the sandbox's network",
            "apt-get update",
            "apt-get install -y --no-install-recommends -- python3-flask=2.2.2-3 redis-server=5:7.0.15-1~deb12u1",
            "set up the flask starter (files, service, port)",
            "record the installed versions (lockfile)",
        ]
    );
    assert!(w.sb.calls().is_empty(), "planning touches nothing: {:?}", w.sb.calls());
    // The confirmed arguments plan the same again.
    let again = w.sw.plan(&plan.to_args(), None).unwrap();
    assert_eq!(
        (names(&again), again.starters, again.sandbox),
        (names(&plan), plan.starters, plan.sandbox)
    );
}

#[test]
fn pypi_is_used_when_asked_with_a_venv_and_the_utterance_is_the_wish() {
    let w = world();
    let plan = w.sw.plan(&wish(""), Some("ich brauche Flask von PyPI".into())).unwrap();
    assert_eq!(names(&plan), ["apt:python3-venv=3.11.2-1+b1", "pip:flask=3.1.0"]);
    assert_eq!(plan.starters[0].command[0], "/opt/cacheos/venv/bin/flask");
    assert!(
        plan.steps.contains(&"python3 -m venv /opt/cacheos/venv".to_string()),
        "{:?}",
        plan.steps
    );
    assert!(plan
        .steps
        .contains(&"/opt/cacheos/venv/bin/pip install --no-input -- flask==3.1.0".to_string()));
}

#[test]
fn offline_pypi_falls_back_to_debian_and_says_so() {
    let w = world();
    w.pip.go_offline();
    let plan = w.sw.plan(&wish("Flask aus PyPI bitte"), None).unwrap();
    assert_eq!(names(&plan), ["apt:python3-flask=2.2.2-3"]);
    assert!(plan.notes[0].contains("PyPI cannot be reached"), "{:?}", plan.notes);
    assert_eq!(plan.starters[0].command[0], "/usr/bin/flask");
}

#[test]
fn the_cache_is_counted_and_a_missing_index_is_a_note() {
    let w = world();
    std::fs::write(
        w._cache.path().join("redis-server_5%3a7.0.15-1~deb12u1_amd64.deb"),
        b"x",
    )
    .unwrap();
    let plan = w.sw.plan(&wish("redis"), None).unwrap();
    assert_eq!(plan.cached, ["redis-server"]);
    assert_eq!(plan.download_bytes, 0);
    *w.apt.down.lock().unwrap() = Some(SoftwareError::Unavailable(
        "Debian's package index has not been fetched yet".into(),
    ));
    let plan = w.sw.plan(&wish("redis"), None).unwrap();
    assert_eq!(names(&plan), ["apt:redis-server="]);
    assert!(plan.notes[0].contains("not been fetched"));
    assert!(
        plan.steps.iter().any(|s| s.ends_with("-- redis-server")),
        "{:?}",
        plan.steps
    );
}

#[test]
fn profiles_and_versions() {
    let w = world();
    let plan =
        w.sw.plan(&wish("richte mir eine Python-Entwicklungsumgebung ein"), None)
            .unwrap();
    assert_eq!(plan.sandbox, "python-dev");
    assert_eq!(plan.matched, ["profile python"]);
    assert_eq!(plan.packages.len(), 5);
    let plan = w.sw.plan(&wish("I need a Node 18 dev box"), None).unwrap();
    assert_eq!(names(&plan)[0], "apt:nodejs=18.19.0+dfsg-6~deb12u2");
    let e = w.sw.plan(&wish("I need a Node 20 dev box"), None).unwrap_err();
    assert_eq!(
        e.to_string(),
        "apt package nodejs has no version 20; it has 18.19.0+dfsg-6~deb12u2"
    );
}

#[test]
fn bad_input_is_refused_with_a_clear_error_and_touches_nothing() {
    let w = world();
    w.sb.add("web", "debian", true, Network::Nat);
    w.sb.add("py", "host", true, Network::Nat);
    w.sb.add("offline", "debian", true, Network::None);
    let cases: Vec<(SoftwareInstallArgs, &str)> = vec![
        (
            SoftwareInstallArgs {
                packages: vec![pkg(Ecosystem::Apt, "htopp", None)],
                sandbox: Some("web".into()),
                ..Default::default()
            },
            "apt package \"htopp\" not found; close names: htop",
        ),
        (
            SoftwareInstallArgs {
                packages: vec![pkg(Ecosystem::Pip, "flask;rm -rf /", None)],
                ..Default::default()
            },
            "\"flask;rm -rf /\" is not a valid PyPI package name: ';' is not allowed",
        ),
        (
            SoftwareInstallArgs {
                packages: vec![pkg(Ecosystem::Apt, "htop", Some("$(reboot)"))],
                ..Default::default()
            },
            "\"$(reboot)\" is not a valid Debian version: '$' is not allowed",
        ),
        (
            SoftwareInstallArgs {
                packages: vec![pkg(Ecosystem::Npm, "express", Some("9.9.9"))],
                sandbox: Some("web".into()),
                ..Default::default()
            },
            "npm package express has no version 9.9.9; it has 4.21.1",
        ),
        (
            SoftwareInstallArgs {
                packages: vec![pkg(Ecosystem::Pip, "flask", Some("0.1"))],
                ..Default::default()
            },
            "pip package flask has no version 0.1; it has 3.1.0, 3.0.3",
        ),
        (
            SoftwareInstallArgs {
                packages: vec![pkg(Ecosystem::Apt, "htop", None)],
                sandbox: Some("py".into()),
                ..Default::default()
            },
            "invalid sandbox: sandbox py: template host shares the appliance's read-only /usr",
        ),
        (
            SoftwareInstallArgs {
                packages: vec![pkg(Ecosystem::Apt, "htop", None)],
                sandbox: Some("offline".into()),
                ..Default::default()
            },
            "invalid sandbox: offline has no network",
        ),
        (
            wish("ich brauche gar nichts"),
            "the wish names no package CacheOS knows",
        ),
        (wish("installiere mongodb"), "mongodb (MongoDB (not in Debian))"),
    ];
    for (args, want) in cases {
        let e = w.sw.plan(&args, None).unwrap_err();
        assert!(
            e.to_string().starts_with(want) || e.to_string().contains(want),
            "{e} ≠ {want}"
        );
    }
    assert!(w.sb.calls().is_empty(), "{:?}", w.sb.calls());
    assert_eq!(w.sb.existing(), ["offline", "py", "web"]);
    assert!(w.fwd.applied.lock().unwrap().is_empty());
}

fn wait(w: &World, job: &str) -> SoftwareJob {
    let j = w.sw.wait(job, Duration::from_secs(10)).unwrap();
    assert_ne!(j.state, JobState::Running, "{j:?}");
    j
}

#[test]
fn an_install_runs_in_the_sandbox_records_a_lockfile_and_exposes_the_starter() {
    let w = world();
    let plan =
        w.sw.plan(
            &wish("Ich möchte einen Python-Webserver mit Flask und Redis, bitte."),
            None,
        )
        .unwrap();
    let mut rx = w.sw.events.subscribe();
    let job = w.sw.start_install(plan, "uid 1000").unwrap();
    let j = wait(&w, &job.job);
    assert_eq!((j.state, j.error.as_deref()), (JobState::Done, None));
    assert_eq!(j.urls, ["http://192.168.1.20:5000"]);
    let calls = w.sb.calls();
    let want = [
        "create flask from debian network nat",
        "exec flask: getent hosts deb.debian.org",
        "exec flask: apt-get update",
        "exec flask: apt-get install -y --no-install-recommends -- python3-flask=2.2.2-3 redis-server=5:7.0.15-1~deb12u1",
        "write flask:/srv/flask/app.py",
        "write flask:/etc/systemd/system/cacheos-app-flask.service",
        "exec flask: systemctl daemon-reload",
        "exec flask: systemctl enable --now cacheos-app-flask.service",
        "exec flask: systemctl restart cacheos-app-flask.service",
        "exec flask: dpkg-query -W -f=${Package}\t${Version}\n -- python3-flask redis-server",
    ];
    assert_eq!(calls, want);
    let unit =
        w.sb.file("flask", "/etc/systemd/system/cacheos-app-flask.service")
            .unwrap();
    assert!(
        unit.contains(
            "ExecStart=/usr/bin/flask --app /srv/flask/app.py run --host 0.0.0.0 --port 5000\nRestart=always"
        ),
        "{unit}"
    );
    assert!(unit.contains("WantedBy=multi-user.target"));
    let lock = w.sw.lockfile("flask").unwrap();
    let got: Vec<_> = lock
        .packages
        .iter()
        .map(|p| format!("{}={}", p.name, p.version))
        .collect();
    assert_eq!(got, ["python3-flask=2.2.2-3", "redis-server=5:7.0.15-1~deb12u1"]);
    assert_eq!(lock.starters, ["flask"]);
    assert_eq!(
        w.fwd.active(),
        [Forward {
            sandbox: "flask".into(),
            ip: "10.0.0.2".into(),
            port: 5000,
            host_port: 5000
        }]
    );
    let info = w.sw.network_info("flask");
    assert_eq!(info.services[0].unit, "cacheos-app-flask.service");
    // Progress came as events: started, every step, the end.
    let mut states = Vec::new();
    while let Ok(ev) = rx.try_recv() {
        if let crate::event::EventKind::SoftwareJob { state, step, line, .. } = ev.kind {
            states.push((state, step, line));
        }
    }
    assert!(states.len() >= 7, "{states:?}");
    assert_eq!(states.last().unwrap().0, JobState::Done);
    // A second job into the same sandbox installs only what it is asked, into the same lockfile.
    let plan =
        w.sw.plan(
            &SoftwareInstallArgs {
                sandbox: Some("flask".into()),
                packages: vec![pkg(Ecosystem::Apt, "htop", Some("3.2.1-1"))],
                ..Default::default()
            },
            None,
        )
        .unwrap();
    assert!(plan.create.is_none());
    let j = wait(&w, &w.sw.start_install(plan, "t").unwrap().job);
    assert_eq!(j.state, JobState::Done);
    assert_eq!(w.sw.lockfile("flask").unwrap().packages.len(), 3);
}

#[test]
fn pip_and_npm_install_into_a_venv_and_a_project() {
    let w = world();
    w.sb.add("web", "debian", true, Network::Nat);
    w.sb.script(
        &["/opt/cacheos/venv/bin/pip", "freeze"],
        &["click==8.1.7", "Flask==3.1.0"],
        0,
    );
    let plan =
        w.sw.plan(
            &SoftwareInstallArgs {
                sandbox: Some("web".into()),
                packages: vec![pkg(Ecosystem::Pip, "flask", None), pkg(Ecosystem::Npm, "express", None)],
                ..Default::default()
            },
            None,
        )
        .unwrap();
    let j = wait(&w, &w.sw.start_install(plan, "t").unwrap().job);
    assert_eq!(j.state, JobState::Done, "{j:?}");
    let calls = w.sb.calls();
    assert!(
        calls.contains(&"exec web: python3 -m venv /opt/cacheos/venv".to_string()),
        "{calls:?}"
    );
    assert!(calls.contains(&"exec web: /opt/cacheos/venv/bin/pip install --no-input -- flask==3.1.0".to_string()));
    assert!(calls.contains(&"write web:/srv/app/package.json".to_string()));
    assert!(calls
        .contains(&"exec web (in /srv/app): npm install --no-audit --no-fund --save -- express@4.21.1".to_string()));
    let lock = w.sw.lockfile("web").unwrap();
    let pip: Vec<_> = lock
        .packages
        .iter()
        .filter(|p| p.ecosystem == Ecosystem::Pip)
        .map(|p| (p.name.as_str(), p.version.as_str(), p.requested))
        .collect();
    assert_eq!(pip, [("flask", "3.1.0", true), ("click", "8.1.7", false)]);
    assert_eq!(lock.pip_freeze.as_deref(), Some("click==8.1.7\nFlask==3.1.0\n"));
    // Removing something CacheOS did not install names what it did.
    let e = w.sw.remove("web", &[pkg(Ecosystem::Pip, "flsk", None)]).unwrap_err();
    assert!(e.to_string().contains("close names: flask"), "{e}");
    let lock = w.sw.remove("web", &[pkg(Ecosystem::Pip, "flask", None)]).unwrap();
    assert!(lock.packages.iter().all(|p| p.name != "flask"));
    assert!(w
        .sb
        .calls()
        .contains(&"exec web: /opt/cacheos/venv/bin/pip uninstall -y -- flask".to_string()));
}

#[test]
fn a_failed_install_is_explained_and_its_new_sandbox_removed() {
    let w = world();
    w.sb.script(
        &["apt-get", "update"],
        &[
            "Err:1 http://deb.debian.org/debian bookworm InRelease",
            "  Temporary failure resolving 'deb.debian.org'",
        ],
        100,
    );
    let plan = w.sw.plan(&wish("redis"), None).unwrap();
    let j = wait(&w, &w.sw.start_install(plan, "t").unwrap().job);
    assert_eq!(j.state, JobState::Failed);
    assert!(
        j.error
            .as_deref()
            .unwrap()
            .contains("no network: the sandbox cannot reach Debian"),
        "{j:?}"
    );
    assert!(w.sb.existing().is_empty(), "the sandbox the job created is gone");
    assert!(w.sb.calls().last().unwrap().starts_with("remove redis"));
    assert!(w.fwd.applied.lock().unwrap().is_empty());
    assert_eq!(w.sw.lockfile("redis").unwrap().packages.len(), 0);
    // In an existing sandbox nothing is removed.
    w.sb.add("web", "debian", true, Network::Nat);
    w.sb.script(
        &["apt-get", "install"],
        &["E: Unmet dependencies. Try 'apt --fix-broken install'"],
        100,
    );
    w.sb.script(&["apt-get", "update"], &[], 0);
    let plan = w.sw.plan(&wish("installiere htop in web"), None).unwrap();
    let j = wait(&w, &w.sw.start_install(plan, "t").unwrap().job);
    assert!(j.error.as_deref().unwrap().contains("a dependency conflict"), "{j:?}");
    assert_eq!(w.sb.existing(), ["web"]);
}

#[test]
fn failures_are_explained() {
    let l = |s: &str| vec![s.to_string()];
    assert!(explain(
        Ecosystem::Apt,
        &l("E: Write error - write (28: No space left on device)"),
        100
    )
    .starts_with("the disk is full"));
    assert!(
        explain(Ecosystem::Pip, &l("ERROR: No matching distribution found for flsk"), 1)
            .starts_with("a package was not found in PyPI")
    );
    assert!(explain(Ecosystem::Npm, &l("npm ERR! code ERESOLVE"), 1).starts_with("a dependency conflict"));
    assert!(explain(
        Ecosystem::Npm,
        &l("npm ERR! getaddrinfo EAI_AGAIN registry.npmjs.org"),
        1
    )
    .starts_with("no network"));
    assert_eq!(explain(Ecosystem::Apt, &[], 3), "it ended with exit code 3");
}

#[test]
fn cancel_stops_between_steps() {
    let w = world();
    let plan = w.sw.plan(&wish("redis"), None).unwrap();
    let job = w.sw.start_install(plan, "t").unwrap();
    w.sw.cancel(&job.job);
    let j = wait(&w, &job.job);
    // Either it was cancelled before finishing, or it had already finished.
    assert!(matches!(j.state, JobState::Cancelled | JobState::Done), "{j:?}");
    if j.state == JobState::Cancelled {
        assert!(w.sb.existing().is_empty() || w.sb.calls().len() < 4);
    }
    assert!(!w.sw.cancel(&job.job), "an ended job cannot be cancelled");
}

#[test]
fn expose_and_unexpose_keep_one_forward_set() {
    let w = world();
    w.sb.add("web", "debian", true, Network::Nat);
    w.sb.add("box", "debian", true, Network::None);
    let i = w.sw.expose("web", 5000, Some(8000)).unwrap();
    assert_eq!(i.urls, ["http://192.168.1.20:8000"]);
    assert_eq!(w.fwd.active()[0].host_port, 8000);
    assert!(w
        .sw
        .expose("box", 80, None)
        .unwrap_err()
        .to_string()
        .contains("has no network (NAT)"));
    assert!(w
        .sw
        .expose("web", 22, None)
        .unwrap_err()
        .to_string()
        .contains("22 is reserved"));
    w.sb.add("api", "debian", true, Network::Nat);
    assert!(w
        .sw
        .expose("api", 9000, Some(8000))
        .unwrap_err()
        .to_string()
        .contains("exposed for sandbox web"));
    // A forward that cannot be applied is not recorded.
    *w.fwd.fail.lock().unwrap() = Some("nft: Operation not permitted".into());
    assert!(w
        .sw
        .expose("web", 6000, None)
        .unwrap_err()
        .to_string()
        .contains("Operation not permitted"));
    assert_eq!(w.sw.network_info("web").exposed.len(), 1);
    let e = w.sw.unexpose("web", 6000).unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid port: 6000 of sandbox web is not exposed (exposed: 5000)"
    );
    w.sw.unexpose("web", 5000).unwrap();
    assert!(w.fwd.active().is_empty());
}

#[test]
fn services_are_systemd_units_with_quoted_argv() {
    let w = world();
    w.sb.add("web", "debian", true, Network::Nat);
    w.sb.add("py", "host", true, Network::Nat);
    let cmd: Vec<String> = ["python3", "-m", "http.server", "--directory", "/srv/my files", "8000"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let i = w.sw.service("web", None, &cmd).unwrap();
    assert_eq!(i.services[0].unit, "cacheos-app-main.service");
    let unit =
        w.sb.file("web", "/etc/systemd/system/cacheos-app-main.service")
            .unwrap();
    assert!(
        unit.contains("ExecStart=python3 -m http.server --directory \"/srv/my files\" 8000\n"),
        "{unit}"
    );
    assert_eq!(starters::systemd_quote("a$b%c\"d").unwrap(), "\"a$$b%%c\\\"d\"");
    assert!(starters::systemd_quote("a\nExecStartPre=/bin/evil").is_err());
    assert!(w
        .sw
        .service("py", None, &cmd)
        .unwrap_err()
        .to_string()
        .contains("template host"));
    assert!(w.sw.service("web", Some("Bad Name"), &cmd).is_err());
    let i = w.sw.service("web", None, &[]).unwrap();
    assert!(i.services.is_empty());
    assert!(w
        .sb
        .calls()
        .contains(&"exec web: systemctl disable --now cacheos-app-main.service".to_string()));
}

#[test]
fn nft_ruleset_replaces_one_table() {
    let r = nft_ruleset(&[Forward {
        sandbox: "flask".into(),
        ip: "10.0.0.2".into(),
        port: 5000,
        host_port: 5000,
    }]);
    assert!(r.contains("delete table ip cacheos_expose\n"));
    assert!(r.contains("tcp dport 5000 dnat to 10.0.0.2:5000 comment \"sandbox flask\""));
    assert!(r.contains("fib daddr type local tcp dport 5000 dnat to 10.0.0.2:5000"));
}

#[test]
fn grammars_keep_shell_metacharacters_out() {
    for bad in [
        "a;b", "a b", "$(x)", "`x`", "a|b", "a&b", "a>b", "../x", "-rf", "a\nb", "A",
    ] {
        assert!(validate_name(Ecosystem::Apt, bad).is_err(), "{bad:?}");
    }
    for bad in ["a;b", "-e", "a b", "x==1", "x[y]"] {
        assert!(validate_name(Ecosystem::Pip, bad).is_err(), "{bad:?}");
    }
    for bad in ["@a", "A", ".x", "a b", "a;b", "@s/"] {
        assert!(validate_name(Ecosystem::Npm, bad).is_err(), "{bad:?}");
    }
    for ok in ["g++", "python3-flask", "lua5.4"] {
        validate_name(Ecosystem::Apt, ok).unwrap();
    }
    validate_name(Ecosystem::Pip, "Flask_SQLAlchemy").unwrap();
    validate_name(Ecosystem::Npm, "@vitejs/plugin-react").unwrap();
    assert_eq!(pypi_normalize("Flask_SQLAlchemy"), "flask-sqlalchemy");
    validate_version(Ecosystem::Apt, "1:2.39.5-0+deb12u1").unwrap();
    assert!(validate_version(Ecosystem::Npm, "^4").is_err());
}

#[test]
fn registry_documents_parse() {
    let mut idx = DebIndex::default();
    idx.add_packages_file(
        "Package: htop\nVersion: 3.2.2-2\nInstalled-Size: 400\nSize: 152000\nDescription: interactive processes viewer\n\n\
         Package: htop\nVersion: 3.2.1-1\nSize: 150000\nDescription: interactive processes viewer\n\n\
         Package: btop\nVersion: 1.2.13-1\nSize: 300000\nDescription: Modern and colorful command line resource monitor\n",
    );
    assert_eq!(idx.get("htop", None).unwrap().version, "3.2.2-2");
    assert_eq!(idx.get("htop", Some("3.2.1-1")).unwrap().size, Some(150000));
    assert_eq!(
        idx.search("top", 5).iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["btop", "htop"]
    );
    assert_eq!(idx.search("monitor", 5)[0].name, "btop");
    use std::cmp::Ordering::*;
    assert_eq!(deb_cmp("1:1.0", "2.0"), Greater);
    assert_eq!(deb_cmp("1.0~rc1", "1.0"), Less);
    assert_eq!(deb_cmp("18.19.0+dfsg-6~deb12u2", "18.19.0+dfsg-6"), Less);
    assert_eq!(deb_cmp("3.10", "3.9"), Greater);
    assert!(index::version_has_prefix("18.19.0+dfsg-6~deb12u2", "18"));
    assert!(!index::version_has_prefix("180.1", "18"));
    assert_eq!(
        index::parse_deb_filename("redis-server_5%3a7.0.15-1~deb12u1_amd64.deb"),
        Some(("redis-server".into(), "5:7.0.15-1~deb12u1".into()))
    );
    let pypi = br#"{"info":{"name":"Flask","version":"3.1.0","summary":"A simple framework"},
        "releases":{"3.0.3":[{"filename":"flask-3.0.3-py3-none-any.whl","packagetype":"bdist_wheel","size":101735}],
                    "3.1.0":[{"filename":"flask-3.1.0.tar.gz","packagetype":"sdist","size":680000},
                             {"filename":"flask-3.1.0-py3-none-any.whl","packagetype":"bdist_wheel","size":102000}]}}"#;
    let c = index::parse_pypi(pypi, None).unwrap();
    assert_eq!(
        (c.name.as_str(), c.version.as_str(), c.size),
        ("Flask", "3.1.0", Some(102000))
    );
    assert_eq!(index::parse_pypi(pypi, Some("0.1")).unwrap_err(), ["3.0.3", "3.1.0"]);
    let npm = br#"{"objects":[{"package":{"name":"express","version":"4.21.1","description":"Fast"}}]}"#;
    assert_eq!(index::parse_npm_search(npm)[0].version, "4.21.1");
    let v = br#"{"name":"express","version":"4.21.1","description":"Fast","dist":{"unpackedSize":220000}}"#;
    assert_eq!(index::parse_npm_version(v).unwrap().size, Some(220000));
    assert_eq!(index::url_query("react tooling"), "react%20tooling");
    assert_eq!(close_names("flsk", ["flask", "flake8", "fish"], 3), ["flask"]);
}

#[test]
fn pypi_and_npm_resolvers_ask_the_right_urls() {
    use std::sync::Mutex;
    struct Http(Mutex<Vec<String>>);
    impl resolve::HttpGet for Http {
        fn get(&self, url: &str) -> Result<Option<Vec<u8>>, String> {
            self.0.lock().unwrap().push(url.to_string());
            Ok(match url {
                "https://pypi.org/pypi/flask/json" => Some(
                    br#"{"info":{"name":"Flask","version":"3.1.0","summary":"s"},"releases":{"3.1.0":[]}}"#.to_vec(),
                ),
                "https://registry.npmjs.org/express/latest" => {
                    Some(br#"{"name":"express","version":"4.21.1","description":"Fast"}"#.to_vec())
                }
                "https://registry.npmjs.org/express/9.9.9" => None,
                "https://registry.npmjs.org/express" => Some(br#"{"versions":{"4.21.1":{},"5.0.1":{}}}"#.to_vec()),
                _ => None,
            })
        }
    }
    let http = Arc::new(Http(Mutex::new(Vec::new())));
    let pypi = resolve::Pypi::new(http.clone());
    assert_eq!(pypi.lookup("Flask", None).unwrap().version, "3.1.0");
    use resolve::Resolver;
    assert!(
        matches!(pypi.lookup("flsk", None), Err(SoftwareError::NotFound { ref close, .. }) if close.contains(&"flask".to_string()))
    );
    let npm = resolve::Npm::new(http.clone());
    assert_eq!(npm.lookup("express", None).unwrap().version, "4.21.1");
    let e = npm.lookup("express", Some("9.9.9")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "npm package express has no version 9.9.9; it has 5.0.1, 4.21.1"
    );
    assert!(http.0.lock().unwrap().iter().all(|u| u.starts_with("https://")));
    // An invalid name never reaches the network.
    let before = http.0.lock().unwrap().len();
    assert!(npm.lookup("a;b", None).is_err());
    assert_eq!(http.0.lock().unwrap().len(), before);
}

#[test]
fn debian_lists_are_read_from_the_shared_directory() {
    use resolve::Resolver;
    let d = tempfile::tempdir().unwrap();
    let lists = resolve::DebianLists::new(d.path());
    assert!(matches!(lists.lookup("htop", None), Err(SoftwareError::Unavailable(_))));
    std::fs::write(
        d.path()
            .join("deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages"),
        "Package: htop\nVersion: 3.2.2-2\nSize: 152000\nDescription: interactive processes viewer\n",
    )
    .unwrap();
    assert_eq!(lists.lookup("htop", None).unwrap().size, Some(152000));
    let e = lists.lookup("htp", None).unwrap_err();
    assert_eq!(e.to_string(), "apt package \"htp\" not found; close names: htop");
    let e = lists.lookup("htop", Some("9.9")).unwrap_err();
    assert_eq!(e.to_string(), "apt package htop has no version 9.9; it has 3.2.2-2");
}

#[test]
fn dependencies_are_estimated_from_the_index() {
    let mut idx = DebIndex::default();
    idx.add_packages_file(
        "Package: python3-flask\nVersion: 2.2.2-3\nSize: 100\nDepends: python3-werkzeug (>= 2.2), python3:any, python3-jinja2 | python3-other\n\n\
         Package: python3-werkzeug\nVersion: 2.2.2-3\nSize: 200\nDepends: python3:any, libc6\n\n\
         Package: python3-jinja2\nVersion: 3.1.2-1\nSize: 300\nDepends: python3-markupsafe\n\n\
         Package: python3-markupsafe\nVersion: 2.1.2-1\nSize: 10\n\n\
         Package: python3\nVersion: 3.11.2-1\nSize: 25\nPriority: optional\n\n\
         Package: libc6\nVersion: 2.36-9\nSize: 2000\nPriority: required\n",
    );
    let deps = idx.closure(&["python3-flask".into()], &[]);
    assert_eq!(
        deps,
        [
            ("python3".to_string(), 25),
            ("python3-jinja2".to_string(), 300),
            ("python3-markupsafe".to_string(), 10),
            ("python3-werkzeug".to_string(), 200)
        ]
    );
    assert!(idx
        .closure(&["python3-flask".into()], &["python3"])
        .iter()
        .all(|(n, _)| n != "python3"));
}
