//! The interactive sandbox shell: relays between this terminal (raw mode, window size followed) and the
//! pseudo-terminal whose controller side `OpenSandboxShell` hands over. Used by `cacheosctl sandbox shell` and by
//! the chat console when asked for a shell in a sandbox.

use cacheos_dbus::client::ManagerProxy;

use crate::{failure, Failure};

fn local_failure(message: String) -> Failure {
    Failure { code: 1, message }
}

/// Restores the terminal's settings when dropped.
struct RawMode {
    saved: Option<rustix::termios::Termios>,
}

impl RawMode {
    fn enter() -> Self {
        use rustix::termios::{isatty, tcgetattr, tcsetattr, OptionalActions};
        let stdin = rustix::stdio::stdin();
        if !isatty(stdin) {
            return Self { saved: None };
        }
        let Ok(saved) = tcgetattr(stdin) else {
            return Self { saved: None };
        };
        let mut raw = saved.clone();
        raw.make_raw();
        if tcsetattr(stdin, OptionalActions::Now, &raw).is_err() {
            return Self { saved: None };
        }
        Self { saved: Some(saved) }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            let _ = rustix::termios::tcsetattr(rustix::stdio::stdin(), rustix::termios::OptionalActions::Now, saved);
        }
    }
}

/// `sandbox shell`: relays between this terminal (in raw mode) and the shell's pseudo-terminal until the shell
/// exits, keeping the window size in step.
pub async fn sandbox_shell(proxy: &ManagerProxy<'_>, name: &str) -> Result<(), Failure> {
    use std::io::{Read, Write};
    let term = std::env::var("TERM")
        .ok()
        .filter(|t| !t.is_empty() && t != "dumb")
        .unwrap_or_else(|| "vt220".into());
    let (fd, _) = proxy.open_sandbox_shell(name, &term).await.map_err(failure)?;
    let controller: std::os::fd::OwnedFd = fd.into();
    let stdin = rustix::stdio::stdin();
    let resize = {
        let controller = controller.try_clone().map_err(|e| local_failure(e.to_string()))?;
        move || {
            if let Ok(ws) = rustix::termios::tcgetwinsize(rustix::stdio::stdin()) {
                let _ = rustix::termios::tcsetwinsize(&controller, ws);
            }
        }
    };
    if rustix::termios::isatty(stdin) {
        resize();
    }
    eprintln!("cacheosctl: shell in sandbox {name}; `exit` or Ctrl-D ends it");
    let raw = RawMode::enter();
    if let Ok(mut winch) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change()) {
        tokio::spawn(async move {
            while winch.recv().await.is_some() {
                resize();
            }
        });
    }
    let mut to_shell = std::fs::File::from(controller.try_clone().map_err(|e| local_failure(e.to_string()))?);
    // Input is read only when there is some, so that once the shell has ended nothing typed afterwards is taken
    // from the program that opened it (the chat console carries on reading the terminal).
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let input_done = done.clone();
    let input = std::thread::spawn(move || {
        use rustix::event::{poll, PollFd, PollFlags, Timespec};
        let stdin = rustix::stdio::stdin();
        let mut buf = [0u8; 4096];
        let tick = Timespec {
            tv_sec: 0,
            tv_nsec: 100_000_000,
        };
        while !input_done.load(std::sync::atomic::Ordering::SeqCst) {
            let mut fds = [PollFd::new(&stdin, PollFlags::IN)];
            if poll(&mut fds, Some(&tick)).unwrap_or(0) == 0 {
                continue;
            }
            match rustix::io::read(stdin, &mut buf) {
                Ok(0) | Err(_) => {
                    // Input ended (a pipe, not a terminal): end the shell's input too.
                    let _ = to_shell.write_all(&[4]);
                    break;
                }
                Ok(n) => {
                    if to_shell.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
    });
    let mut from_shell = std::fs::File::from(controller);
    tokio::task::spawn_blocking(move || {
        let mut out = std::io::stdout();
        let mut buf = [0u8; 8192];
        // The terminal reports EIO once the shell has exited.
        while let Ok(n) = from_shell.read(&mut buf) {
            if n == 0 || out.write_all(&buf[..n]).and_then(|()| out.flush()).is_err() {
                break;
            }
        }
    })
    .await
    .map_err(|e| local_failure(e.to_string()))?;
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let _ = input.join();
    drop(raw);
    eprintln!("cacheosctl: shell in sandbox {name} ended");
    Ok(())
}
