//! Replies for software installs (issue 15): what a `software.*` / `sandbox.expose|unexpose|service` request will
//! do, the plan before confirmation ("Soll ich das so machen?"), the job's progress and the closing line ("Läuft.
//! Der Webserver ist unter http://ADDR:5000 erreichbar.").

use cacheos_core::software::expose::SandboxNetworkInfo;
use cacheos_core::software::{human_size, JobState, Lockfile, SearchResult, SoftwareJob, SoftwarePlan};
use cacheos_core::{Operation, Output};

use crate::Lang;

fn t(lang: Lang, de: &str, en: &str) -> String {
    match lang {
        Lang::De => de.to_string(),
        Lang::En => en.to_string(),
    }
}

/// What the operation will do, in one line.
pub fn explain(op: &Operation, lang: Lang) -> String {
    match op {
        Operation::SoftwareSearch(_) => t(lang, "Ich suche passende Pakete.", "Searching for matching packages."),
        Operation::SoftwarePlan(_) => t(lang, "Ich plane die Installation.", "Planning the install."),
        Operation::SoftwareInstall(_) => t(lang, "Ich plane die Installation.", "Planning the install."),
        Operation::SoftwareList(a) => t(
            lang,
            &format!("Ich zeige, was CacheOS in {} installiert hat.", a.sandbox),
            &format!("Showing what CacheOS installed in {}.", a.sandbox),
        ),
        Operation::SoftwareRemove(a) => t(
            lang,
            &format!("Plan: Pakete aus {} entfernen (software.remove).", a.sandbox),
            &format!("Plan: remove packages from {} (software.remove).", a.sandbox),
        ),
        Operation::SoftwareJob(a) => t(
            lang,
            &format!("Ich zeige den Stand von {}.", a.job),
            &format!("Showing the state of {}.", a.job),
        ),
        Operation::SoftwareCancel(a) => t(
            lang,
            &format!("Ich breche {} nach dem laufenden Befehl ab.", a.job),
            &format!("Stopping {} after its current command.", a.job),
        ),
        Operation::SandboxExpose(a) => t(
            lang,
            &format!(
                "Ich mache Port {} von {} auf der Adresse der Appliance erreichbar.",
                a.port, a.name
            ),
            &format!(
                "Making port {} of {} reachable on the appliance's address.",
                a.port, a.name
            ),
        ),
        Operation::SandboxUnexpose(a) => t(
            lang,
            &format!("Ich nehme die Weiterleitung von Port {} von {} zurück.", a.port, a.name),
            &format!("Removing the forward of port {} of {}.", a.port, a.name),
        ),
        Operation::SandboxService(a) if a.command.is_empty() => t(
            lang,
            &format!("Ich entferne den Dienst in {}.", a.name),
            &format!("Removing the service in {}.", a.name),
        ),
        Operation::SandboxService(a) => t(
            lang,
            &format!("Ich lasse `{}` in {} dauerhaft laufen.", a.command.join(" "), a.name),
            &format!("Keeping `{}` running in {}.", a.command.join(" "), a.name),
        ),
        _ => String::new(),
    }
}

fn size(c: Option<u64>) -> String {
    c.map(human_size).unwrap_or_else(|| "?".into())
}

/// The plan, as the question before it runs.
pub fn plan(p: &SoftwarePlan, lang: Lang) -> String {
    let de = lang == Lang::De;
    let mut s = String::new();
    s += &match (&p.create, de) {
        (Some(n), true) => format!(
            "Plan: eine neue Sandbox „{}“ aus der Vorlage {} mit NAT, darin:\n",
            n.name, n.template
        ),
        (Some(n), false) => format!(
            "Plan: a new sandbox \"{}\" from the {} template with NAT, with:\n",
            n.name, n.template
        ),
        (None, true) => format!("Plan: in der Sandbox „{}“:\n", p.sandbox),
        (None, false) => format!("Plan: in sandbox \"{}\":\n", p.sandbox),
    };
    for c in &p.packages {
        let version = if c.version.is_empty() {
            t(lang, "neueste", "newest")
        } else {
            c.version.clone()
        };
        let cached = if p.cached.contains(&c.name) {
            t(lang, ", aus dem Cache", ", from the cache")
        } else {
            String::new()
        };
        s += &format!(
            "  - {} {} ({}, {}{cached}){}\n",
            c.name,
            version,
            c.ecosystem.registry(),
            size(c.size),
            if c.description.is_empty() {
                String::new()
            } else {
                format!(": {}", c.description)
            }
        );
    }
    for st in &p.starters {
        if !st.command.is_empty() {
            s += &match de {
                true => format!("  - Start-App {} als Dienst: {}\n", st.key, st.command.join(" ")),
                false => format!("  - starter app {} as a service: {}\n", st.key, st.command.join(" ")),
            };
        }
        if let Some(port) = st.port {
            s += &match de {
                true => format!("  - Port {port} von außen erreichbar\n"),
                false => format!("  - port {port} reachable from outside\n"),
            };
        }
    }
    let deps = p.dependencies.len();
    s += &match (de, deps) {
        (true, 0) => format!("Download: {}.", human_size(p.download_bytes)),
        (false, 0) => format!("Download: {}.", human_size(p.download_bytes)),
        (true, n) => format!(
            "Dazu etwa {n} Abhängigkeiten; Download zusammen etwa {}.",
            human_size(p.download_bytes)
        ),
        (false, n) => format!(
            "Plus about {n} dependencies; about {} to download in all.",
            human_size(p.download_bytes)
        ),
    };
    for n in &p.notes {
        s += &format!("\n{} {n}", t(lang, "Hinweis:", "Note:"));
    }
    for u in &p.unresolved {
        s += &format!("\n{} {u}", t(lang, "Nicht gefunden:", "Not found:"));
    }
    s += &t(
        lang,
        "\nSoll ich das so machen? (ja/nein)",
        "\nShall I do it like this? (yes/no)",
    );
    s
}

/// A job's state: the steps done, the running one, the error or the closing line.
pub fn job(j: &SoftwareJob, lang: Lang) -> String {
    let de = lang == Lang::De;
    let mut s = String::new();
    let n = j.plan.steps.len();
    for (i, step) in j.plan.steps.iter().enumerate() {
        let mark = if i < j.step || j.state == JobState::Done {
            "✓"
        } else if i == j.step && j.state == JobState::Running {
            "…"
        } else if i == j.step {
            "✗"
        } else {
            " "
        };
        s += &format!("  [{}/{n}] {mark} {step}\n", i + 1);
    }
    match j.state {
        JobState::Running => {
            s += &t(
                lang,
                &format!(
                    "Die Installation läuft noch ({}); frag „wie weit ist {}?“.",
                    j.job, j.job
                ),
                &format!(
                    "The install is still running ({}); ask \"how far is {}?\".",
                    j.job, j.job
                ),
            );
        }
        JobState::Done => {
            s += &closing(&j.sandbox, &j.urls, lang);
        }
        JobState::Failed => {
            let e = j.error.clone().unwrap_or_default();
            s += &if de {
                format!("Das hat nicht geklappt: {e}")
            } else {
                format!("That failed: {e}")
            };
            if j.plan.create.is_some() {
                s += &t(
                    lang,
                    " Die neue Sandbox wurde wieder entfernt.",
                    " The new sandbox was removed again.",
                );
            }
        }
        JobState::Cancelled => s += &t(lang, "Abgebrochen.", "Cancelled."),
    }
    s
}

fn closing(sandbox: &str, urls: &[String], lang: Lang) -> String {
    match (urls.first(), lang) {
        (Some(u), Lang::De) => format!("Läuft. Der Webserver ist unter {u} erreichbar."),
        (Some(u), Lang::En) => format!("Running. The web server is reachable at {u}."),
        (None, Lang::De) => format!("Fertig: in {sandbox} installiert. Weiter: „was ist in {sandbox} installiert?“"),
        (None, Lang::En) => format!("Done: installed in {sandbox}. Next: \"what is installed in {sandbox}?\""),
    }
}

fn search(r: &SearchResult, lang: Lang) -> String {
    if r.candidates.is_empty() {
        let mut s = t(lang, "Nichts gefunden.", "Nothing found.");
        for u in &r.unavailable {
            s += &format!(" {u}.");
        }
        return s;
    }
    let mut s = t(lang, "Gefunden:\n", "Found:\n");
    for c in r.candidates.iter().take(12) {
        s += &format!(
            "  - {} {} ({}, {}): {}\n",
            c.name,
            if c.version.is_empty() { "?" } else { &c.version },
            c.ecosystem.registry(),
            size(c.size),
            c.description
        );
    }
    for u in &r.unavailable {
        s += &format!("{} {u}\n", t(lang, "Hinweis:", "Note:"));
    }
    s += &t(lang, "Installieren: „installiere …“", "To install: \"install …\"");
    s
}

fn lock(l: &Lockfile, lang: Lang) -> String {
    if l.packages.is_empty() {
        return t(
            lang,
            &format!("CacheOS hat in {} nichts installiert.", l.sandbox),
            &format!("CacheOS installed nothing in {}.", l.sandbox),
        );
    }
    let mut s = t(
        lang,
        &format!("Von CacheOS in {} installiert:\n", l.sandbox),
        &format!("Installed by CacheOS in {}:\n", l.sandbox),
    );
    for p in l.packages.iter().filter(|p| p.requested) {
        s += &format!("  - {} {} ({})\n", p.name, p.version, p.ecosystem.registry());
    }
    let deps = l.packages.iter().filter(|p| !p.requested).count();
    if deps > 0 {
        s += &t(
            lang,
            &format!("und {deps} Abhängigkeiten (pip/npm)."),
            &format!("and {deps} dependencies (pip/npm)."),
        );
    }
    s
}

fn network(n: &SandboxNetworkInfo, lang: Lang) -> String {
    let mut s = String::new();
    for (p, u) in n.exposed.iter().zip(&n.urls) {
        s += &t(
            lang,
            &format!("Port {} von {} ist unter {u} erreichbar.\n", p.port, n.sandbox),
            &format!("Port {} of {} is reachable at {u}.\n", p.port, n.sandbox),
        );
    }
    for x in &n.services {
        s += &t(
            lang,
            &format!("Dienst {} läuft: {}\n", x.service, x.command.join(" ")),
            &format!("Service {} runs: {}\n", x.service, x.command.join(" ")),
        );
    }
    if s.is_empty() {
        s = t(
            lang,
            &format!("{} hat keine freigegebenen Ports und Dienste.", n.sandbox),
            &format!("{} has no exposed ports or services.", n.sandbox),
        );
    }
    s
}

/// A software output as reply text.
pub fn output(o: &Output, lang: Lang) -> Option<String> {
    Some(match o {
        Output::SoftwareSearch(r) => search(r, lang),
        Output::SoftwarePlan(p) => plan(p, lang),
        Output::SoftwareJob(j) => job(j, lang),
        Output::SoftwareLock(l) => lock(l, lang),
        Output::SandboxNetwork(n) => network(n, lang),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cacheos_core::software::{Candidate, Ecosystem, NewSandbox, StarterPlan};

    fn flask_plan() -> SoftwarePlan {
        SoftwarePlan {
            sandbox: "flask".into(),
            create: Some(NewSandbox {
                name: "flask".into(),
                template: "debian".into(),
                network: cacheos_core::sandbox::Network::Nat,
            }),
            matched: vec!["flask".into(), "redis".into()],
            unresolved: vec![],
            packages: vec![Candidate {
                ecosystem: Ecosystem::Apt,
                name: "python3-flask".into(),
                version: "2.2.2-3".into(),
                size: Some(81_000),
                description: "micro web framework".into(),
                via: Some("flask".into()),
            }],
            starters: vec![StarterPlan {
                key: "flask".into(),
                service: "cacheos-app-flask.service".into(),
                command: vec!["/usr/bin/flask".into(), "run".into()],
                files: vec![],
                port: Some(5000),
            }],
            dependencies: vec![],
            download_bytes: 81_000,
            cached: vec![],
            steps: vec!["create".into(), "apt-get update".into()],
            notes: vec![],
        }
    }

    #[test]
    fn the_plan_asks_and_the_job_ends_with_the_address() {
        let p = flask_plan();
        let s = plan(&p, Lang::De);
        assert!(
            s.starts_with("Plan: eine neue Sandbox „flask“ aus der Vorlage debian mit NAT"),
            "{s}"
        );
        assert!(s.contains("python3-flask 2.2.2-3 (Debian, 81 kB)"), "{s}");
        assert!(s.contains("Port 5000 von außen erreichbar"));
        assert!(s.ends_with("Soll ich das so machen? (ja/nein)"));
        let mut j = SoftwareJob {
            job: "software-1".into(),
            sandbox: "flask".into(),
            state: JobState::Done,
            plan: p,
            step: 2,
            output: vec![],
            error: None,
            urls: vec!["http://192.168.1.20:5000".into()],
        };
        let s = job(&j, Lang::De);
        assert!(
            s.ends_with("Läuft. Der Webserver ist unter http://192.168.1.20:5000 erreichbar."),
            "{s}"
        );
        assert!(s.contains("[1/2] ✓ create"));
        j.state = JobState::Failed;
        j.step = 1;
        j.error = Some("no network".into());
        let s = job(&j, Lang::En);
        assert!(s.contains("[2/2] ✗ apt-get update"), "{s}");
        assert!(
            s.ends_with("That failed: no network The new sandbox was removed again."),
            "{s}"
        );
    }
}
