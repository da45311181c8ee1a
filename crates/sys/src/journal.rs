//! The real [`JournalSource`]: `journalctl -o json` of the current boot, argv only (never a shell).
//!
//! Why journalctl and not a library: the Rust bindings to `sd-journal` (the `systemd` crate) need libsystemd's
//! headers and unsafe FFI, and the pure-Rust journal file readers are young and unmaintained; journalctl ships
//! with systemd on every appliance, reads journal files of any version (compressed, rotated, sealed), implements
//! `-u UNIT`'s exact matching (the unit's own lines plus systemd's, systemd-coredump's and other's lines about it:
//! `UNIT=`, `COREDUMP_UNIT=`, `OBJECT_SYSTEMD_UNIT=`), and its JSON export format is documented and stable. The
//! entries are parsed by the same [`JournalEntry::from_json_line`] the fixtures and the benchmark use.

use std::process::Command;

use cacheos_core::diagnose::journal::KEPT_FIELDS;
use cacheos_core::diagnose::{DiagnoseError, JournalEntry, JournalQuery, JournalSource};

/// Reads the journal with `journalctl`.
#[derive(Debug, Clone)]
pub struct Journalctl {
    program: String,
    /// Arguments put before every query's (`--directory=…` for a journal other than the system's).
    prefix: Vec<String>,
}

impl Default for Journalctl {
    fn default() -> Self {
        Self {
            program: "journalctl".into(),
            prefix: Vec::new(),
        }
    }
}

impl Journalctl {
    /// Reads the journal files in `dir` instead of the system journal (`journalctl --directory`; the benchmark's
    /// generated journal).
    pub fn in_directory(dir: &std::path::Path) -> Self {
        Self {
            prefix: vec![format!("--directory={}", dir.display())],
            ..Self::default()
        }
    }

    /// journalctl's arguments for a query (without the program name). Text search (`grep`) is applied to the parsed
    /// entries instead of `-g`, whose argument is a regular expression.
    pub fn args(unit: Option<&str>, q: &JournalQuery) -> Vec<String> {
        let mut a: Vec<String> = vec!["--no-pager".into(), "-o".into(), "json".into(), "-b".into()];
        let mut fields: Vec<&str> = vec![
            "MESSAGE",
            "PRIORITY",
            "MESSAGE_ID",
            "UNIT",
            "USER_UNIT",
            "COREDUMP_UNIT",
            "OBJECT_SYSTEMD_UNIT",
            "_SYSTEMD_UNIT",
        ];
        fields.extend(KEPT_FIELDS);
        a.push(format!("--output-fields={}", fields.join(",")));
        if let Some(u) = unit {
            a.push(format!("--unit={u}"));
        }
        if let Some(p) = q.priority {
            a.push(format!("--priority={p}"));
        }
        if let Some(s) = q.since_ms {
            a.push(format!("--since=@{}.{:03}", s / 1000, s % 1000));
        }
        if let Some(u) = q.until_ms {
            a.push(format!("--until=@{}.{:03}", u / 1000, u % 1000));
        }
        if q.grep.is_none() {
            a.push(format!("--lines={}", q.limit()));
        }
        a
    }
}

impl JournalSource for Journalctl {
    fn entries(&self, unit: Option<&str>, q: &JournalQuery) -> Result<Vec<JournalEntry>, DiagnoseError> {
        let out = Command::new(&self.program)
            .args(&self.prefix)
            .args(Self::args(unit, q))
            .output()
            .map_err(|e| DiagnoseError::Journal(Box::new(e)))?;
        if !out.status.success() {
            let msg = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            return Err(DiagnoseError::Journal(
                format!("journalctl failed ({}): {msg}", out.status).into(),
            ));
        }
        let (mut v, _) = JournalEntry::parse_all(&String::from_utf8_lossy(&out.stdout));
        v.retain(|e| q.matches(e));
        let limit = q.limit();
        if v.len() > limit {
            v.drain(..v.len() - limit);
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_become_argv_without_a_shell() {
        let q = JournalQuery {
            priority: Some(4),
            since_ms: Some(1_700_000_000_123),
            limit: Some(50),
            ..Default::default()
        };
        let a = Journalctl::args(Some("nginx.service; rm -rf /"), &q);
        assert_eq!(&a[..4], ["--no-pager", "-o", "json", "-b"]);
        assert!(
            a.contains(&"--unit=nginx.service; rm -rf /".to_owned()),
            "one argument, never split"
        );
        assert!(a.contains(&"--priority=4".to_owned()));
        assert!(a.contains(&"--since=@1700000000.123".to_owned()));
        assert!(a.contains(&"--lines=50".to_owned()));
        let g = Journalctl::args(
            None,
            &JournalQuery {
                grep: Some("a.b".into()),
                ..Default::default()
            },
        );
        assert!(
            !g.iter().any(|x| x.starts_with("--lines") || x.starts_with("-g")),
            "{g:?}"
        );
    }

    /// Runs the real journalctl where one with a journal exists (on this host without systemd it fails with a
    /// typed error rather than an empty answer).
    #[test]
    fn real_journalctl_answers_entries_or_a_typed_error() {
        if Command::new("journalctl").arg("--version").output().is_err() {
            return; // not installed: nothing to compare against
        }
        match Journalctl::default().entries(
            None,
            &JournalQuery {
                limit: Some(5),
                ..Default::default()
            },
        ) {
            Ok(v) => assert!(v.len() <= 5),
            Err(e) => assert!(e.to_string().contains("journal"), "{e}"),
        }
    }
}
