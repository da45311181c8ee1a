//! Task supervision: each internal task runs in its own tokio task; when it ends unexpectedly (error, panic,
//! abort by fault injection) it is logged, reported as an event and restarted with exponential backoff.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cacheos_core::supervisor::SupervisorError;
use cacheos_core::{
    Clock, DaemonState, EventBus, EventKind, SupervisorControl, SupervisorStatus, TaskState, TaskStatus,
};
use tokio::sync::Notify;
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;

use crate::config::SupervisorConfig;

struct Entry {
    status: TaskStatus,
    abort: Option<AbortHandle>,
    ready_once: bool,
}

struct Inner {
    tasks: BTreeMap<String, Entry>,
    state: DaemonState,
}

/// The supervisor of cacheosd's internal tasks.
pub struct Supervisor {
    inner: Mutex<Inner>,
    events: EventBus,
    clock: Arc<dyn Clock>,
    started_ms: u64,
    started: Instant,
    dev_mode: bool,
    cfg: SupervisorConfig,
    shutdown: CancellationToken,
    ready_changed: Notify,
    handles: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// Handed to each task: its shutdown signal and a way to say it is up.
#[derive(Clone)]
pub struct TaskCtx {
    /// Cancelled when the daemon shuts down; tasks end cleanly when it fires.
    pub shutdown: CancellationToken,
    sup: Arc<Supervisor>,
    name: &'static str,
}

impl TaskCtx {
    /// Marks the task as up (the daemon reports READY once every task has been up).
    pub fn ready(&self) {
        let mut g = self.sup.inner.lock().unwrap();
        if let Some(e) = g.tasks.get_mut(self.name) {
            e.ready_once = true;
        }
        drop(g);
        self.sup.ready_changed.notify_waiters();
    }
}

impl Supervisor {
    /// A supervisor with no tasks, in state `starting`.
    pub fn new(events: EventBus, clock: Arc<dyn Clock>, cfg: SupervisorConfig, dev_mode: bool) -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new(Inner {
                tasks: BTreeMap::new(),
                state: DaemonState::Starting,
            }),
            started_ms: clock.now_ms(),
            events,
            clock,
            started: Instant::now(),
            dev_mode,
            cfg,
            shutdown: CancellationToken::new(),
            ready_changed: Notify::new(),
            handles: Mutex::new(Vec::new()),
        })
    }

    /// Sets the daemon state and publishes the change.
    pub fn set_state(&self, state: DaemonState) {
        let mut g = self.inner.lock().unwrap();
        if g.state == state {
            return;
        }
        g.state = state;
        drop(g);
        tracing::info!(state = state.as_str(), "daemon state");
        self.events.publish(EventKind::DaemonStateChanged { state });
    }

    fn recompute_state(&self) {
        let g = self.inner.lock().unwrap();
        if matches!(g.state, DaemonState::Starting | DaemonState::Stopping) {
            return;
        }
        let degraded = g.tasks.values().any(|e| e.status.state != TaskState::Running);
        drop(g);
        self.set_state(if degraded {
            DaemonState::Degraded
        } else {
            DaemonState::Running
        });
    }

    fn update(&self, name: &str, state: TaskState, error: Option<String>, restarted: bool) {
        let mut g = self.inner.lock().unwrap();
        let Some(e) = g.tasks.get_mut(name) else { return };
        e.status.state = state;
        e.status.since_ms = self.clock.now_ms();
        if restarted {
            e.status.restarts += 1;
        }
        if error.is_some() {
            e.status.last_error = error.clone();
        }
        let restarts = e.status.restarts;
        drop(g);
        self.events.publish(EventKind::TaskStateChanged {
            task: name.to_string(),
            state,
            restarts,
            error,
        });
        self.recompute_state();
    }

    /// Starts supervising a task. `factory` is called for the first start and for every restart.
    pub fn spawn<F, Fut>(self: &Arc<Self>, name: &'static str, factory: F)
    where
        F: Fn(TaskCtx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        self.inner.lock().unwrap().tasks.insert(
            name.to_string(),
            Entry {
                status: TaskStatus {
                    name: name.to_string(),
                    state: TaskState::Running,
                    restarts: 0,
                    last_error: None,
                    since_ms: self.clock.now_ms(),
                },
                abort: None,
                ready_once: false,
            },
        );
        let sup = self.clone();
        let handle = tokio::spawn(async move {
            let initial = Duration::from_millis(sup.cfg.restart_backoff_initial_ms);
            let max = Duration::from_millis(sup.cfg.restart_backoff_max_ms);
            let stable = Duration::from_secs(sup.cfg.stable_after_secs);
            let mut backoff = initial;
            let mut first = true;
            loop {
                let ctx = TaskCtx {
                    shutdown: sup.shutdown.child_token(),
                    sup: sup.clone(),
                    name,
                };
                let run = tokio::spawn(factory(ctx));
                sup.inner.lock().unwrap().tasks.get_mut(name).unwrap().abort = Some(run.abort_handle());
                if !first {
                    sup.update(name, TaskState::Running, None, false);
                }
                first = false;
                let began = Instant::now();
                let result = run.await;
                if sup.shutdown.is_cancelled() {
                    sup.update(name, TaskState::Stopped, None, false);
                    return;
                }
                let why = match result {
                    Ok(Ok(())) => "ended unexpectedly".to_string(),
                    Ok(Err(e)) => format!("{e:#}"),
                    Err(j) if j.is_cancelled() => "killed (fault injection)".to_string(),
                    Err(j) => format!("panicked: {j}"),
                };
                if began.elapsed() >= stable {
                    backoff = initial;
                }
                tracing::error!(task = name, error = %why, retry_in_ms = backoff.as_millis() as u64, "task failed; restarting");
                sup.update(name, TaskState::Backoff, Some(why), true);
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = sup.shutdown.cancelled() => {
                        sup.update(name, TaskState::Stopped, None, false);
                        return;
                    }
                }
                backoff = (backoff * 2).min(max);
            }
        });
        self.handles.lock().unwrap().push(handle);
    }

    /// Waits until every task has reported ready once, or `timeout` passes; returns the tasks not yet ready.
    pub async fn wait_ready(&self, timeout: Duration) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.ready_changed.notified();
            let missing: Vec<String> = {
                let g = self.inner.lock().unwrap();
                g.tasks
                    .iter()
                    .filter(|(_, e)| !e.ready_once)
                    .map(|(n, _)| n.clone())
                    .collect()
            };
            if missing.is_empty() {
                return missing;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return missing;
            }
        }
    }

    /// Cancels every task and waits for them to end (at most `timeout`).
    pub async fn shutdown(&self, timeout: Duration) {
        self.set_state(DaemonState::Stopping);
        self.shutdown.cancel();
        let handles: Vec<_> = std::mem::take(&mut *self.handles.lock().unwrap());
        let all = futures_join(handles);
        if tokio::time::timeout(timeout, all).await.is_err() {
            tracing::warn!("tasks did not stop in time");
        }
    }
}

async fn futures_join(handles: Vec<tokio::task::JoinHandle<()>>) {
    for h in handles {
        let _ = h.await;
    }
}

impl SupervisorControl for Supervisor {
    fn status(&self) -> SupervisorStatus {
        let g = self.inner.lock().unwrap();
        SupervisorStatus {
            version: cacheos_core::VERSION.into(),
            state: g.state,
            started_ms: self.started_ms,
            uptime_seconds: self.started.elapsed().as_secs_f64(),
            dev_mode: self.dev_mode,
            tasks: g.tasks.values().map(|e| e.status.clone()).collect(),
        }
    }

    fn kill_task(&self, name: &str) -> Result<(), SupervisorError> {
        if !self.cfg.fault_injection {
            return Err(SupervisorError::FaultInjectionDisabled);
        }
        let g = self.inner.lock().unwrap();
        let e = g
            .tasks
            .get(name)
            .ok_or_else(|| SupervisorError::UnknownTask(name.into()))?;
        tracing::warn!(task = name, "aborting task on request (fault injection)");
        if let Some(a) = &e.abort {
            a.abort();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cacheos_core::SystemClock;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn sup(fault_injection: bool) -> (Arc<Supervisor>, EventBus) {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let events = EventBus::new(64, clock.clone());
        let cfg = SupervisorConfig {
            restart_backoff_initial_ms: 10,
            restart_backoff_max_ms: 40,
            fault_injection,
            ..Default::default()
        };
        (Supervisor::new(events.clone(), clock, cfg, true), events)
    }

    #[tokio::test]
    async fn failing_task_is_restarted_with_events_and_status() {
        let (s, events) = sup(false);
        let mut rx = events.subscribe();
        let starts = Arc::new(AtomicU32::new(0));
        let st = starts.clone();
        s.spawn("flaky", move |ctx| {
            let n = st.fetch_add(1, Ordering::SeqCst);
            async move {
                ctx.ready();
                if n < 2 {
                    anyhow::bail!("boom {n}");
                }
                ctx.shutdown.cancelled().await;
                Ok(())
            }
        });
        assert!(s.wait_ready(Duration::from_secs(5)).await.is_empty());
        s.set_state(DaemonState::Running);
        tokio::time::timeout(Duration::from_secs(5), async {
            while starts.load(Ordering::SeqCst) < 3 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let st = s.status();
        assert_eq!(st.tasks[0].restarts, 2);
        assert_eq!(st.tasks[0].state, TaskState::Running);
        assert_eq!(st.tasks[0].last_error.as_deref(), Some("boom 1"));
        let mut saw_backoff = false;
        while let Ok(ev) = rx.try_recv() {
            if let EventKind::TaskStateChanged {
                state: TaskState::Backoff,
                error,
                ..
            } = ev.kind
            {
                assert!(error.unwrap().starts_with("boom"));
                saw_backoff = true;
            }
        }
        assert!(saw_backoff);
        s.shutdown(Duration::from_secs(2)).await;
        assert_eq!(s.status().tasks[0].state, TaskState::Stopped);
        assert_eq!(s.status().state, DaemonState::Stopping);
    }

    #[tokio::test]
    async fn kill_needs_fault_injection_and_restarts_the_task() {
        let (s, _) = sup(false);
        s.spawn("t", |ctx| async move {
            ctx.ready();
            ctx.shutdown.cancelled().await;
            Ok(())
        });
        s.wait_ready(Duration::from_secs(5)).await;
        assert_eq!(s.kill_task("t"), Err(SupervisorError::FaultInjectionDisabled));

        let (s, _) = sup(true);
        s.spawn("t", |ctx| async move {
            ctx.ready();
            ctx.shutdown.cancelled().await;
            Ok(())
        });
        s.wait_ready(Duration::from_secs(5)).await;
        assert_eq!(s.kill_task("x"), Err(SupervisorError::UnknownTask("x".into())));
        s.kill_task("t").unwrap();
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                let t = &s.status().tasks[0];
                if t.restarts == 1 && t.state == TaskState::Running {
                    assert_eq!(t.last_error.as_deref(), Some("killed (fault injection)"));
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .unwrap();
        s.shutdown(Duration::from_secs(2)).await;
    }
}
