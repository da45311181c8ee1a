//! cacheos-console: the login shell of the `cacheos` user. Logging in on the serial console or tty1 opens the chat
//! (the same D-Bus conversation, session and history as `cacheosctl chat`); "shell" / "!sh" / "kommandozeile"
//! leaves it for `/bin/bash --login`, "exit" logs out. Invoked as `cacheos-console -c CMD` (su, ssh, scripts) it
//! runs `/bin/bash -c CMD` instead, so non-interactive use of the account behaves like bash.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode};

use cacheos_dbus::Bus;
use cacheosctl::chat::{self, Leave, Options};
use cacheosctl::{connect, default_session};

const BASH: &str = "/bin/bash";

const USAGE: &str = "\
usage: cacheos-console            chat with CacheOS (login shell of the user cacheos)
       cacheos-console -c CMD ... run CMD with /bin/bash -c (for su, ssh and scripts)

In the chat, \"shell\" or \"!sh\" (German: \"kommandozeile\") opens /bin/bash --login; \"exit\" logs out.
CACHEOS_BUS=session talks to a development cacheosd on the session bus.";

/// What the arguments ask for.
#[derive(Debug, PartialEq, Eq)]
enum Mode {
    /// `-c` somewhere among the options: hand everything to bash.
    Bash(Vec<OsString>),
    Usage,
    Chat,
}

fn mode(args: &[OsString]) -> Mode {
    // Options before the command string, as a shell sees them: "-c", "-lc", "-l -c", "--login -c".
    for a in args {
        let s = a.to_string_lossy();
        if s == "--" || !s.starts_with('-') {
            break;
        }
        if s == "--help" || s == "-h" {
            return Mode::Usage;
        }
        if !s.starts_with("--") && s.contains('c') {
            return Mode::Bash(args.to_vec());
        }
    }
    Mode::Chat
}

/// Replaces this process with bash; returns only if that failed.
fn exec_bash(args: &[&std::ffi::OsStr]) -> ExitCode {
    let err = Command::new(BASH)
        .args(args)
        // Programs that start "the user's shell" (script, editors, tmux) should get bash, not the chat.
        .env("SHELL", BASH)
        .exec();
    eprintln!("cacheos-console: cannot start {BASH}: {err}");
    ExitCode::from(127)
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    match mode(&args) {
        Mode::Bash(a) => {
            let a: Vec<&std::ffi::OsStr> = a.iter().map(|s| s.as_os_str()).collect();
            return exec_bash(&a);
        }
        Mode::Usage => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Mode::Chat => {}
    }
    let bus = match std::env::var("CACHEOS_BUS").as_deref() {
        Ok("session") => Bus::Session,
        _ => Bus::System,
    };
    let opts = Options {
        explain: false,
        json: false,
        session: default_session(),
        console: true,
    };
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cacheos-console: {e}; starting a shell");
            return exec_bash(&["--login".as_ref()]);
        }
    };
    let leave = rt.block_on(async {
        let connected = connect(&bus).await;
        chat::converse(&bus, connected, &opts).await
    });
    drop(rt);
    match leave {
        Ok(Leave::Shell) => {
            println!("bash --login; „exit“ meldet ab / \"exit\" logs out.");
            exec_bash(&["--login".as_ref()])
        }
        Ok(Leave::Exit) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("cacheos-console: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(args: &[&str]) -> Mode {
        mode(&args.iter().map(OsString::from).collect::<Vec<_>>())
    }

    #[test]
    fn dash_c_goes_to_bash_with_every_argument() {
        assert_eq!(m(&["-c", "echo hi"]), Mode::Bash(vec!["-c".into(), "echo hi".into()]));
        assert!(matches!(m(&["-l", "-c", "id"]), Mode::Bash(a) if a.len() == 3));
        assert!(matches!(m(&["-lc", "id"]), Mode::Bash(_)));
        assert_eq!(m(&[]), Mode::Chat);
        assert_eq!(m(&["-l"]), Mode::Chat, "a login shell flag alone is the chat");
        assert_eq!(m(&["--login"]), Mode::Chat);
        assert_eq!(m(&["--help"]), Mode::Usage);
        assert_eq!(m(&["script-c"]), Mode::Chat);
    }
}
