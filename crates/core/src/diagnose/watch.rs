//! The failure watch: compares the failed units and sandboxes of each check with the previous one and announces
//! every new failure once ([`crate::event::EventKind::ServiceFailed`]). A unit that recovers and fails again is
//! announced again. The first check only learns what is already failed (a restart of cacheosd does not announce
//! old failures again).

use std::collections::BTreeSet;
use std::sync::Mutex;

use super::TargetKind;
use crate::event::EventKind;

/// One failed thing: kind, name and what is known about why.
pub type Failed = (TargetKind, String, Option<String>);

/// Remembers what was failed at the last check.
#[derive(Debug, Default)]
pub struct FailureWatch {
    /// `None` until the first check.
    seen: Mutex<Option<BTreeSet<(String, String)>>>,
}

fn key(kind: TargetKind, name: &str) -> (String, String) {
    (format!("{kind:?}"), name.to_owned())
}

impl FailureWatch {
    /// A watch that has not checked yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The events for what is failed now and was not at the last check.
    pub fn check(&self, failed: Vec<Failed>) -> Vec<EventKind> {
        let mut seen = self.seen.lock().unwrap();
        let now: BTreeSet<_> = failed.iter().map(|(k, n, _)| key(*k, n)).collect();
        let events = match seen.as_ref() {
            None => Vec::new(),
            Some(before) => failed
                .into_iter()
                .filter(|(k, n, _)| !before.contains(&key(*k, n)))
                .map(|(target, name, detail)| EventKind::ServiceFailed { name, target, detail })
                .collect(),
        };
        *seen = Some(now);
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(n: &str) -> Failed {
        (TargetKind::Unit, n.into(), Some("exit-code".into()))
    }

    #[test]
    fn new_failures_are_announced_once_and_again_after_recovery() {
        let w = FailureWatch::new();
        // What was already failed at start is not announced.
        assert!(w.check(vec![unit("old.service")]).is_empty());
        let ev = w.check(vec![unit("old.service"), unit("nginx.service")]);
        assert_eq!(
            ev,
            vec![EventKind::ServiceFailed {
                name: "nginx.service".into(),
                target: TargetKind::Unit,
                detail: Some("exit-code".into()),
            }]
        );
        assert!(w.check(vec![unit("old.service"), unit("nginx.service")]).is_empty());
        // nginx recovers, then fails again.
        assert!(w.check(vec![unit("old.service")]).is_empty());
        assert_eq!(w.check(vec![unit("old.service"), unit("nginx.service")]).len(), 1);
        // A sandbox and a unit of the same name are different things.
        let ev = w.check(vec![
            unit("old.service"),
            unit("nginx.service"),
            (TargetKind::Sandbox, "nginx.service".into(), None),
        ]);
        assert!(matches!(
            &ev[..],
            [EventKind::ServiceFailed {
                target: TargetKind::Sandbox,
                ..
            }]
        ));
    }
}
