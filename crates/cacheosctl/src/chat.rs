//! The chat conversation over D-Bus, shared by `cacheosctl chat` and the `cacheos-console` login shell: one
//! message ([`chat_once`]) or a line-by-line conversation ([`converse`]) on any terminal — line editing and
//! history through rustyline where the terminal allows it, plain lines on `TERM=dumb` or when stdin is not a
//! terminal, colours only on a colour terminal without `NO_COLOR`, never cursor addressing.

use std::io::IsTerminal;

use cacheos_dbus::client::ManagerProxy;
use cacheos_dbus::Bus;
use serde_json::Value;

use crate::notice::FailureNotice;
use crate::{connect, failure, parse_json, Failure};

/// Words that end the conversation (the console logs out).
pub const EXIT_WORDS: &[&str] = &[
    "exit", "quit", "logout", "bye", "ende", "beenden", "abmelden", "tschüss", "tschuess",
];

/// Words that leave the console for a shell (`/bin/bash --login`); only the console knows them.
pub const SHELL_WORDS: &[&str] = &["shell", "!sh", "bash", "kommandozeile", "befehlszeile"];

/// Words that ask for help while cacheosd cannot answer.
const HELP_WORDS: &[&str] = &["help", "hilfe", "?", "hilfe!", "help!"];

/// How the conversation looks and what it offers.
#[derive(Debug, Clone)]
pub struct Options {
    /// Only show what each message would do.
    pub explain: bool,
    /// Print the JSON documents instead of the reply text.
    pub json: bool,
    /// The chat session (shared with the other chat clients of this user).
    pub session: String,
    /// Console mode: the shell words leave for a shell, and an unreachable daemon is reported instead of ending
    /// the conversation.
    pub console: bool,
}

/// Why the conversation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leave {
    /// An exit word or end of input.
    Exit,
    /// A shell word (console mode only).
    Shell,
}

/// What a line of input is, before it goes to the chat engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Nothing (blank line).
    Empty,
    /// An exit word.
    Exit,
    /// A shell word (only meaningful on the console).
    Shell,
    /// Anything else: a message for cacheosd.
    Message,
}

/// Classifies a line of input (case-insensitive, surrounding blanks and a final `.`/`!` ignored).
pub fn classify(line: &str) -> Command {
    let l = line.trim().to_lowercase();
    let l = l.trim_end_matches(['.', '!']).trim();
    if l.is_empty() {
        Command::Empty
    } else if EXIT_WORDS.contains(&l) {
        Command::Exit
    } else if SHELL_WORDS.contains(&l) || line.trim() == "!sh" {
        Command::Shell
    } else {
        Command::Message
    }
}

/// Terminal styling: ANSI colours only when stdout is a terminal, `TERM` names a colour terminal and `NO_COLOR`
/// is unset or empty. A serial console (`vt220`, `vt100`) or `TERM=dumb` gets plain text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Style {
    /// Whether to emit colour escapes.
    pub color: bool,
}

impl Style {
    /// Decides from the environment and whether stdout is a terminal.
    pub fn detect() -> Self {
        Self::decide(
            std::io::stdout().is_terminal(),
            std::env::var("TERM").ok().as_deref(),
            std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
        )
    }

    /// The decision itself (testable).
    pub fn decide(stdout_tty: bool, term: Option<&str>, no_color: bool) -> Self {
        let term = term.unwrap_or("");
        let colour_term = term.contains("color")
            || term.contains("256")
            || [
                "xterm",
                "linux",
                "screen",
                "tmux",
                "rxvt",
                "alacritty",
                "kitty",
                "foot",
                "konsole",
                "putty",
                "ansi",
                "st-",
            ]
            .iter()
            .any(|p| term.starts_with(p));
        Self {
            color: stdout_tty && !no_color && colour_term,
        }
    }

    fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }

    /// Headings.
    pub fn bold(&self, s: &str) -> String {
        self.paint("1", s)
    }

    /// Errors.
    pub fn error(&self, s: &str) -> String {
        self.paint("31", s)
    }

    /// Warnings (daemon unreachable).
    pub fn warn(&self, s: &str) -> String {
        self.paint("33", s)
    }

    /// What CacheOS is about to do (the first line of a reply).
    pub fn dim(&self, s: &str) -> String {
        self.paint("2", s)
    }
}

/// The console's own lines for help and the banner.
pub fn console_help() -> &'static str {
    "Shell: „shell“ oder „!sh“ (auch „kommandozeile“) öffnet eine bash; „exit“ meldet ab.\n\
     Shell: \"shell\" or \"!sh\" opens a bash shell; \"exit\" logs out."
}

/// The banner printed when a conversation starts.
pub fn banner(opts: &Options) -> String {
    if opts.console {
        format!(
            "CacheOS-Chat. Schreib, was du möchtest, z. B. „zeig mir den Systemstatus“ oder „hilfe“.\n\
             CacheOS chat. Say what you want, e.g. \"show the system status\" or \"help\".\n{}",
            console_help()
        )
    } else {
        "CacheOS chat. Schreib, was du möchtest / say what you want (\"hilfe\", \"help\"); \"exit\" leaves.".into()
    }
}

/// The console banner's line for the web port's certificate (issue 19), from `web.cert`'s JSON; none when the
/// web port has no TLS.
pub fn cert_line(web_cert: Option<&str>) -> Option<String> {
    let v: Value = serde_json::from_str(web_cert?).ok()?;
    let fp = v["fingerprint_sha256"].as_str()?;
    Some(format!("HTTPS-Zertifikat / certificate SHA-256: {fp}"))
}

fn unreachable_note(style: &Style, why: &str) -> String {
    style.warn(&format!(
        "cacheosd ist nicht erreichbar / cacheosd is not reachable: {why}\n\
         „shell“ öffnet eine Shell (z. B. für `systemctl status cacheosd`), Enter versucht es erneut.\n\
         \"shell\" opens a shell (e.g. for `systemctl status cacheosd`), Enter tries again."
    ))
}

/// Sends one message and prints the reply (or, with `explain`, what it would do). Returns the reply document.
pub async fn chat_once(proxy: &ManagerProxy<'_>, opts: &Options, style: &Style, text: &str) -> Result<Value, Failure> {
    let mut streamed = String::new();
    let out = if opts.explain {
        proxy.interpret(text, &opts.session).await.map_err(failure)?
    } else if opts.json {
        proxy.chat(text, &opts.session).await.map_err(failure)?
    } else {
        stream_chat(proxy, &opts.session, text, &mut streamed).await?
    };
    let v = parse_json(&out)?;
    if opts.json {
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else if opts.explain {
        let i = &v["interpretation"];
        match i["kind"].as_str() {
            Some("operation") => println!(
                "{} {}  (risk: {}{})\n{}",
                i["operation"].as_str().unwrap_or("?"),
                i["args"],
                i["risk"].as_str().unwrap_or("?"),
                if i["needs_confirmation"].as_bool() == Some(true) {
                    ", needs confirmation"
                } else {
                    ""
                },
                i["explanation"].as_str().unwrap_or("")
            ),
            _ => println!("{}", serde_json::to_string_pretty(i).unwrap_or_default()),
        }
    } else {
        let reply = v["reply"].as_str().unwrap_or("");
        // The model's words are on screen already: the validated reply adds only what follows them.
        let reply = match reply.strip_prefix(streamed.as_str()) {
            Some(rest) if !streamed.is_empty() => {
                println!();
                rest.trim_start_matches('\n')
            }
            _ => {
                if !streamed.is_empty() {
                    println!();
                }
                reply
            }
        };
        let failed = v["executed"]["ok"].as_bool() == Some(false);
        let ran = v["executed"].is_object();
        for (n, line) in reply.lines().enumerate() {
            if n == 0 && ran && reply.lines().nth(1).is_some() {
                println!("{}", style.dim(line));
            } else if failed && n > 0 {
                println!("{}", style.error(line));
            } else {
                println!("{line}");
            }
        }
    }
    Ok(v)
}

/// Sends `text` with Chat and prints a language model's words (ChatToken signals) as they arrive; Ctrl-C while the
/// model writes stops it (the reply then says so). `streamed` gets what was printed.
async fn stream_chat(
    proxy: &ManagerProxy<'_>,
    session: &str,
    text: &str,
    streamed: &mut String,
) -> Result<String, Failure> {
    use futures_util::StreamExt;
    use std::io::Write;
    let mut tokens = proxy.receive_chat_token().await.map_err(failure)?;
    let call = proxy.chat(text, session);
    tokio::pin!(call);
    let mut stop_sent = false;
    let print = |t: &str, streamed: &mut String| {
        print!("{t}");
        let _ = std::io::stdout().flush();
        streamed.push_str(t);
    };
    let out = loop {
        tokio::select! {
            r = &mut call => break r.map_err(failure)?,
            Some(sig) = tokens.next() => {
                if let Ok(a) = sig.args() {
                    print(&a.text, streamed);
                }
            }
            // Only while a model writes: without a model, Ctrl-C keeps its usual meaning.
            _ = tokio::signal::ctrl_c(), if !stop_sent && !streamed.is_empty() => {
                stop_sent = true;
                let _ = proxy.stop_model().await;
            }
        }
    };
    // Signals sent before the reply may still be queued.
    while let Some(Some(sig)) = futures_util::FutureExt::now_or_never(tokens.next()) {
        if let Ok(a) = sig.args() {
            print(&a.text, streamed);
        }
    }
    Ok(out)
}

/// Where input lines come from: rustyline on a terminal it supports (it reads plain lines itself on `dumb`,
/// `cons25` and `emacs`), plain standard input otherwise.
struct Input {
    editor: Option<rustyline::DefaultEditor>,
}

/// One line from standard input, read a byte at a time: nothing beyond the newline is consumed, so a shell
/// exec'd afterwards (console "shell") reads the rest of piped input. `None` at end of input.
fn read_line_unbuffered() -> Option<String> {
    use std::os::fd::AsFd;
    let stdin = std::io::stdin();
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match rustix::io::read(stdin.as_fd(), &mut byte) {
            Ok(0) if line.is_empty() => return None,
            Ok(0) => break,
            Ok(_) if byte[0] == b'\n' => break,
            Ok(_) => line.push(byte[0]),
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) if line.is_empty() => return None,
            Err(_) => break,
        }
    }
    Some(String::from_utf8_lossy(&line).trim_end_matches('\r').to_string())
}

impl Input {
    fn new() -> Self {
        let editor = if std::io::stdin().is_terminal() && std::io::stdout().is_terminal() {
            let config = rustyline::Config::builder()
                // No cursor-position query (ESC [6n): a serial line or a script may never answer it.
                .check_cursor_position(false)
                .auto_add_history(true)
                .max_history_size(500)
                .ok()
                .map(|b| b.build());
            config.and_then(|c| rustyline::DefaultEditor::with_config(c).ok())
        } else {
            None
        };
        Self { editor }
    }

    /// Earlier messages of the session, so ↑ recalls them.
    fn preload(&mut self, texts: impl IntoIterator<Item = String>) {
        if let Some(ed) = self.editor.as_mut() {
            for t in texts {
                let _ = ed.add_history_entry(t);
            }
        }
    }

    /// Moves the input to its own thread, which reads one line per [`Lines::ask`], so that notices can be
    /// printed while the conversation waits. (Not through rustyline's external printer: with it, rustyline 15
    /// handled typed keys only when the next one arrived.)
    fn spawn(mut self) -> Lines {
        let (want, asked) = std::sync::mpsc::channel::<String>();
        let (give, got) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            while let Ok(prompt) = asked.recv() {
                if give.send(self.read(&prompt)).is_err() {
                    break;
                }
            }
        });
        Lines {
            want,
            got,
            prompt: String::new(),
        }
    }

    /// The next line; `None` at end of input.
    fn read(&mut self, prompt: &str) -> Option<String> {
        match self.editor.as_mut() {
            Some(ed) => loop {
                match ed.readline(prompt) {
                    Ok(l) => return Some(l),
                    // Ctrl-C clears the line, as in a shell.
                    Err(rustyline::error::ReadlineError::Interrupted) => continue,
                    Err(_) => return None,
                }
            },
            None => read_line_unbuffered(),
        }
    }
}

/// The input's thread: one line per request.
struct Lines {
    want: std::sync::mpsc::Sender<String>,
    got: tokio::sync::mpsc::UnboundedReceiver<Option<String>>,
    /// The prompt of the line being read.
    prompt: String,
}

impl Lines {
    /// Asks for the next line with `prompt`; [`Lines::next`] gives it.
    fn ask(&mut self, prompt: &str) {
        self.prompt = prompt.to_owned();
        let _ = self.want.send(prompt.to_owned());
    }

    /// The line asked for; `None` at end of input.
    async fn next(&mut self) -> Option<String> {
        self.got.recv().await.flatten()
    }

    /// Prints `text` while a line is being read: on lines of its own below the prompt, which is then repeated
    /// (what was typed so far stays in the line editor and is sent with Enter).
    fn print(&self, text: &str) {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = write!(
            out,
            "{}{text}\n{}",
            if self.prompt.is_empty() { "" } else { "\n" },
            self.prompt
        );
        let _ = out.flush();
    }
}

/// The next `Event` signal, or never when there is no connection.
async fn next_event(events: &mut Option<cacheos_dbus::client::EventStream>) -> Option<(String, String)> {
    use futures_util::StreamExt;
    match events {
        Some(s) => match s.next().await {
            Some(sig) => sig.args().ok().map(|a| (a.kind, a.json)),
            None => {
                *events = None;
                None
            }
        },
        None => std::future::pending().await,
    }
}

/// The prompt. It never contains `$ ` or `# `, so a script can tell the chat from a shell.
pub const PROMPT: &str = "cacheos> ";

/// A line-by-line conversation until an exit word, end of input or (console) a shell word. `connected` is the
/// connection, or why there is none; in console mode a missing or lost connection is reported with the way out
/// (the shell) and retried on the next line, otherwise it ends the conversation with exit code 3.
pub async fn converse(
    bus: &Bus,
    connected: Result<ManagerProxy<'static>, Failure>,
    opts: &Options,
) -> Result<Leave, Failure> {
    let (mut proxy, why) = match connected {
        Ok(p) => (Some(p), String::new()),
        Err(f) if opts.console => (None, f.message),
        Err(f) => return Err(f),
    };
    let style = Style::detect();
    println!("{}", style.bold(&banner(opts)));
    let mut input = Input::new();
    match &proxy {
        Some(p) => {
            if opts.console {
                if let Some(line) = cert_line(p.get_web_cert().await.ok().as_deref()) {
                    println!("{}", style.dim(&line));
                }
            }
            if let Ok(h) = p.chat_history(&opts.session).await {
                if let Ok(Value::Array(entries)) = serde_json::from_str::<Value>(&h) {
                    let texts = entries.iter().rev().take(100).rev();
                    input.preload(texts.filter_map(|e| e["text"].as_str().map(String::from)));
                }
            }
        }
        None => println!("{}", unreachable_note(&style, &why)),
    }
    let interactive = std::io::stdin().is_terminal();
    let mut events = match &proxy {
        Some(p) => p.receive_event().await.ok(),
        None => None,
    };
    let mut input = input.spawn();
    // Failures announced since the last line (issue 16): a short yes asks about them.
    let mut offers: Vec<FailureNotice> = Vec::new();
    loop {
        input.ask(if interactive { PROMPT } else { "" });
        let line = loop {
            tokio::select! {
                line = input.next() => break line,
                Some((kind, json)) = next_event(&mut events) => {
                    if let Some(n) = FailureNotice::from_event(&kind, &json) {
                        input.print(&style.warn(&n.text()));
                        offers.retain(|o| o.name != n.name || o.sandbox != n.sandbox);
                        offers.push(n);
                    }
                }
            }
        };
        let Some(line) = line else {
            return Ok(Leave::Exit);
        };
        let asked = crate::notice::answer(&line, &offers);
        offers.clear();
        let line = asked.unwrap_or(line);
        let command = classify(&line);
        match command {
            Command::Exit => return Ok(Leave::Exit),
            Command::Shell if opts.console => return Ok(Leave::Shell),
            Command::Empty if proxy.is_some() || !opts.console => continue,
            _ => {}
        }
        if proxy.is_none() {
            match connect(bus).await {
                Ok(p) => {
                    println!("{}", style.bold("Verbunden / connected."));
                    events = p.receive_event().await.ok();
                    proxy = Some(p);
                }
                Err(f) => {
                    if HELP_WORDS.contains(&line.trim().to_lowercase().as_str()) {
                        println!("{}", console_help());
                    }
                    println!("{}", unreachable_note(&style, &f.message));
                    continue;
                }
            }
            if command == Command::Empty {
                continue;
            }
        }
        let Some(p) = proxy.as_ref() else { continue };
        match chat_once(p, opts, &style, line.trim()).await {
            Ok(v) => {
                if opts.console && v["interpretation"]["chat"]["action"] == "help" {
                    println!("{}", console_help());
                }
                // "öffne eine Shell in box": the chat cannot carry a terminal, this conversation has one.
                let i = &v["interpretation"];
                if i["operation"] == "sandbox.shell" && !opts.explain && v["executed"].is_null() {
                    if let Some(name) = i["args"]["name"].as_str() {
                        if let Err(f) = crate::shell::sandbox_shell(p, name).await {
                            eprintln!("{}", style.error(&f.message));
                        }
                    }
                }
            }
            Err(f) if f.code == 3 => {
                if !opts.console {
                    return Err(f);
                }
                println!("{}", unreachable_note(&style, &f.message));
                proxy = None;
            }
            Err(f) => eprintln!("{}", style.error(&f.message)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_classified_before_the_engine_sees_them() {
        assert_eq!(classify("  "), Command::Empty);
        assert_eq!(classify("Exit"), Command::Exit);
        assert_eq!(classify("Tschüss!"), Command::Exit);
        assert_eq!(classify("shell"), Command::Shell);
        assert_eq!(classify("!sh"), Command::Shell);
        assert_eq!(classify("Kommandozeile"), Command::Shell);
        assert_eq!(classify("zeig mir die shell sandbox"), Command::Message);
        assert_eq!(classify("häng debian.iso ein"), Command::Message);
    }

    #[test]
    fn colours_only_on_colour_terminals_without_no_color() {
        assert!(Style::decide(true, Some("xterm-256color"), false).color);
        assert!(Style::decide(true, Some("linux"), false).color);
        assert!(!Style::decide(true, Some("linux"), true).color, "NO_COLOR");
        assert!(!Style::decide(false, Some("linux"), false).color, "not a terminal");
        assert!(!Style::decide(true, Some("vt220"), false).color, "serial console");
        assert!(!Style::decide(true, Some("dumb"), false).color);
        assert!(!Style::decide(true, None, false).color);
        assert_eq!(Style::default().bold("x"), "x");
        assert_eq!(Style { color: true }.error("x"), "\x1b[31mx\x1b[0m");
    }

    #[test]
    fn the_certificate_line_shows_the_fingerprint_or_nothing() {
        let l = cert_line(Some(
            r#"{"fingerprint_sha256":"AB:CD","path":"/x","redirects_plain_http":true}"#,
        ))
        .unwrap();
        assert!(
            l.ends_with("SHA-256: AB:CD") && !l.contains("$ ") && !l.contains("# "),
            "{l}"
        );
        assert_eq!(cert_line(None), None);
        assert_eq!(cert_line(Some("{}")), None);
    }

    #[test]
    fn the_banner_names_the_way_to_a_shell_and_never_looks_like_a_shell_prompt() {
        let opts = Options {
            explain: false,
            json: false,
            session: "s".into(),
            console: true,
        };
        let b = banner(&opts);
        assert!(
            b.contains("„shell“") && b.contains("\"!sh\"") && b.contains("kommandozeile"),
            "{b}"
        );
        for s in [b.as_str(), PROMPT, console_help()] {
            assert!(!s.contains("$ ") && !s.contains("# "), "{s}");
        }
    }
}
