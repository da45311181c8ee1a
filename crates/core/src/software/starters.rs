//! Starter apps: for a wish such as "ein Webserver mit Flask" the install also writes a small app (only where no
//! file exists yet), keeps it running as a systemd service inside the sandbox and exposes its port. And the systemd
//! unit text for those services and for `sandbox.service`, with the command quoted for systemd, never for a shell.

use super::{Ecosystem, StarterPlan, NPM_DIR, VENV_DIR};

/// Files (path, content), command and port of a starter.
pub type Starter = (Vec<(String, String)>, Vec<String>, Option<u16>);

/// A starter's files and command for the ecosystem its packages came from.
pub fn starter(key: &str, eco: Ecosystem) -> Option<Starter> {
    let venv_bin = |b: &str| format!("{VENV_DIR}/bin/{b}");
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    Some(match key {
        "flask" => {
            let flask = if eco == Ecosystem::Pip {
                venv_bin("flask")
            } else {
                "/usr/bin/flask".into()
            };
            (
                vec![("/srv/flask/app.py".into(), FLASK_APP.into())],
                vec![
                    flask,
                    "--app".into(),
                    "/srv/flask/app.py".into(),
                    "run".into(),
                    "--host".into(),
                    "0.0.0.0".into(),
                    "--port".into(),
                    "5000".into(),
                ],
                Some(5000),
            )
        }
        "fastapi" => {
            let uvicorn = if eco == Ecosystem::Pip {
                venv_bin("uvicorn")
            } else {
                "/usr/bin/uvicorn".into()
            };
            (
                vec![("/srv/fastapi/main.py".into(), FASTAPI_APP.into())],
                vec![
                    uvicorn,
                    "--app-dir".into(),
                    "/srv/fastapi".into(),
                    "main:app".into(),
                    "--host".into(),
                    "0.0.0.0".into(),
                    "--port".into(),
                    "8000".into(),
                ],
                Some(8000),
            )
        }
        "express" => (
            vec![(format!("{NPM_DIR}/index.js"), EXPRESS_APP.into())],
            s(&["/usr/bin/node", "/srv/app/index.js"]),
            Some(3000),
        ),
        // Debian starts these itself (their packages enable their units); only the port is exposed.
        "nginx" | "apache" | "webserver" => (Vec::new(), Vec::new(), Some(80)),
        _ => return None,
    })
}

/// The plan of a starter.
pub fn plan(key: &str, eco: Ecosystem) -> Option<StarterPlan> {
    let (files, command, port) = starter(key, eco)?;
    Some(StarterPlan {
        key: key.to_string(),
        service: if command.is_empty() {
            String::new()
        } else {
            unit_name(key)
        },
        command,
        files: files.into_iter().map(|(p, _)| p).collect(),
        port,
    })
}

/// The unit name of a CacheOS service inside a sandbox.
pub fn unit_name(service: &str) -> String {
    format!("cacheos-app-{service}.service")
}

/// Checks a service name: lowercase letters, digits and dashes, at most 32.
pub fn validate_service_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 32
        || !name.starts_with(|c: char| c.is_ascii_lowercase())
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(format!(
            "{name:?} is not a service name (lowercase letters, digits and dashes, starting with a letter, at most 32)"
        ));
    }
    Ok(())
}

/// One argument quoted for systemd's `ExecStart=` (systemd's own rules: double quotes, `\` escapes, `%` and `$`
/// doubled, so no specifier or variable is expanded). Control characters are refused.
pub fn systemd_quote(arg: &str) -> Result<String, String> {
    if arg.chars().any(|c| c.is_control()) {
        return Err(format!("argument {arg:?} contains a control character"));
    }
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._=:,+@-".contains(c));
    let a = arg.replace('%', "%%").replace('$', "$$");
    if plain {
        return Ok(a);
    }
    Ok(format!("\"{}\"", a.replace('\\', "\\\\").replace('"', "\\\"")))
}

/// The unit file of a service kept running in a sandbox: restarted on failure, started with the sandbox.
pub fn unit_file(service: &str, command: &[String], workdir: Option<&str>) -> Result<String, String> {
    if command.is_empty() || command[0].is_empty() {
        return Err("the command is empty".into());
    }
    let exec = command
        .iter()
        .map(|a| systemd_quote(a))
        .collect::<Result<Vec<_>, _>>()?
        .join(" ");
    let mut s = format!(
        "# Written by cacheosd (sandbox.service / software.install); replaced when the service is set again.\n\
         [Unit]\nDescription=CacheOS service {service}\nAfter=network.target\n\n\
         [Service]\nExecStart={exec}\nRestart=always\nRestartSec=2\n"
    );
    if let Some(w) = workdir {
        s.push_str(&format!("WorkingDirectory={w}\n"));
    }
    s.push_str("\n[Install]\nWantedBy=multi-user.target\n");
    Ok(s)
}

const FLASK_APP: &str = r#"# A starter app written by CacheOS; edit it and say "starte flask neu" (the service restarts it).
from flask import Flask

app = Flask(__name__)


@app.route("/")
def index():
    return "Hallo von CacheOS: Flask läuft in der Sandbox.\n"
"#;

const FASTAPI_APP: &str = r#"# A starter app written by CacheOS.
from fastapi import FastAPI

app = FastAPI()


@app.get("/")
def index():
    return {"message": "Hallo von CacheOS: FastAPI läuft in der Sandbox."}
"#;

const EXPRESS_APP: &str = r#"// A starter app written by CacheOS.
const express = require("express");
const app = express();
app.get("/", (req, res) => res.send("Hallo von CacheOS: Express läuft in der Sandbox.\n"));
app.listen(3000, "0.0.0.0");
"#;
