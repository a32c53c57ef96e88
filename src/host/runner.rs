//! The one way wharf runs a host command (`snap`, `microk8s`, `sysctl`, `usermod`, …).
//!
//! Every command gets a timeout (MicroK8s happily waits forever), its stdout and stderr captured,
//! and, on failure, an error that shows the exact command line (shell-quoted, so it can be pasted
//! back into a shell) with the tail of its output. In dry-run mode commands that change the host
//! are printed and recorded but not run; read-only queries still run so that a dry run shows the
//! commands a real run would need, not every command it could ever run.
//!
//! Commands are found on `PATH` (or the runner's own PATH), which is how tests point wharf at
//! fake executables. Arguments can be marked secret: they are passed to the program but shown as
//! `<redacted>` in logs, errors and the journal.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use wait_timeout::ChildExt;

/// How many lines of output an error shows.
const TAIL_LINES: usize = 15;

/// One argument; secret ones never reach logs or errors.
#[derive(Debug, Clone)]
struct Arg {
    value: String,
    secret: bool,
}

/// A host command to run: program, arguments, and how to run it.
#[derive(Debug, Clone)]
pub struct Cmd {
    program: String,
    args: Vec<Arg>,
    timeout: Option<Duration>,
    stdin: Option<String>,
    read_only: bool,
}

impl Cmd {
    /// A command that changes the host (the safe default: a dry run does not run it).
    pub fn new(program: impl Into<String>) -> Cmd {
        Cmd {
            program: program.into(),
            args: Vec::new(),
            timeout: None,
            stdin: None,
            read_only: false,
        }
    }

    pub fn arg(mut self, value: impl Into<String>) -> Cmd {
        self.args.push(Arg {
            value: value.into(),
            secret: false,
        });
        self
    }

    pub fn args<I, S>(mut self, values: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        for v in values {
            self = self.arg(v);
        }
        self
    }

    /// An argument that must not be logged (a password, a join token).
    pub fn secret_arg(mut self, value: impl Into<String>) -> Cmd {
        self.args.push(Arg {
            value: value.into(),
            secret: true,
        });
        self
    }

    /// Override the runner's default timeout for this command.
    pub fn timeout(mut self, timeout: Duration) -> Cmd {
        self.timeout = Some(timeout);
        self
    }

    /// Feed this text to the command's standard input.
    pub fn stdin(mut self, text: impl Into<String>) -> Cmd {
        self.stdin = Some(text.into());
        self
    }

    /// The command only reads the host, so a dry run runs it too.
    pub fn read_only(mut self) -> Cmd {
        self.read_only = true;
        self
    }

    /// The same command run through `sudo`, for a user who is not root.
    pub fn with_sudo(mut self) -> Cmd {
        self.args.insert(
            0,
            Arg {
                value: std::mem::replace(&mut self.program, "sudo".into()),
                secret: false,
            },
        );
        self
    }

    pub fn program(&self) -> &str {
        &self.program
    }

    /// The command line, shell-quoted, with secret arguments shown as `<redacted>`.
    pub fn display(&self) -> String {
        let words = std::iter::once(self.program.as_str()).chain(self.args.iter().map(|a| {
            if a.secret {
                "<redacted>"
            } else {
                a.value.as_str()
            }
        }));
        shell_words::join(words)
    }
}

/// What a command printed and how it ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    /// The exit code; `None` when a signal ended it.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// The last lines of stdout and stderr together, for error messages.
    pub fn tail(&self) -> String {
        let mut lines: Vec<&str> = self.stdout.lines().collect();
        lines.extend(self.stderr.lines());
        let start = lines.len().saturating_sub(TAIL_LINES);
        lines[start..].join("\n")
    }
}

/// Why a command did not succeed. Every variant names the exact command line.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(
        "`{command}`: `{program}` was not found on PATH; install it or add its directory to PATH"
    )]
    NotFound { command: String, program: String },
    #[error("`{command}` could not start: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("`{command}` did not finish within {}s and was stopped{}", .timeout.as_secs(), indent_tail(&.output.tail()))]
    TimedOut {
        command: String,
        timeout: Duration,
        output: Output,
    },
    #[error("`{command}` failed ({}){}", exit_text(.output.code), indent_tail(&.output.tail()))]
    Failed { command: String, output: Output },
}

impl RunError {
    /// The output of a command that ran, if it did.
    pub fn output(&self) -> Option<&Output> {
        match self {
            RunError::TimedOut { output, .. } | RunError::Failed { output, .. } => Some(output),
            _ => None,
        }
    }
}

fn exit_text(code: Option<i32>) -> String {
    match code {
        Some(c) => format!("exit code {c}"),
        None => "killed by a signal".to_string(),
    }
}

fn indent_tail(tail: &str) -> String {
    if tail.trim().is_empty() {
        return String::new();
    }
    let body: Vec<String> = tail.lines().map(|l| format!("    {l}")).collect();
    format!("; its output ended with:\n{}", body.join("\n"))
}

/// Runs host commands; shared by every step so that timeouts, dry-run and errors are uniform.
#[derive(Debug)]
pub struct Runner {
    dry_run: bool,
    default_timeout: Duration,
    path: Option<OsString>,
    journal: Mutex<Vec<String>>,
}

impl Default for Runner {
    fn default() -> Self {
        Runner::new()
    }
}

impl Runner {
    /// A runner that really runs commands, with a 2-minute default timeout.
    pub fn new() -> Runner {
        Runner {
            dry_run: false,
            default_timeout: Duration::from_secs(120),
            path: None,
            journal: Mutex::new(Vec::new()),
        }
    }

    /// In dry-run mode, commands that change the host are printed and recorded, not run.
    pub fn dry_run(mut self, dry_run: bool) -> Runner {
        self.dry_run = dry_run;
        self
    }

    pub fn is_dry_run(&self) -> bool {
        self.dry_run
    }

    pub fn default_timeout(mut self, timeout: Duration) -> Runner {
        self.default_timeout = timeout;
        self
    }

    /// Look programs up on this PATH instead of the process's own.
    pub fn path(mut self, path: impl Into<OsString>) -> Runner {
        self.path = Some(path.into());
        self
    }

    /// Every command line this runner ran or (in dry-run) would have run, in order.
    pub fn journal(&self) -> Vec<String> {
        self.journal.lock().expect("journal lock").clone()
    }

    /// Record and print a command without running it, even a read-only one: for a dry run
    /// whose earlier steps would have changed what this command sees.
    pub fn pretend(&self, cmd: &Cmd) {
        let command = cmd.display();
        self.journal
            .lock()
            .expect("journal lock")
            .push(command.clone());
        println!("would run: {command}");
    }

    /// Run and require exit code 0.
    pub fn run(&self, cmd: &Cmd) -> Result<Output, RunError> {
        let output = self.output(cmd)?;
        if output.success() {
            Ok(output)
        } else {
            Err(RunError::Failed {
                command: cmd.display(),
                output,
            })
        }
    }

    /// Run and return the output whatever the exit code (for commands whose failure is an answer,
    /// like `snap list microk8s` when it is not installed).
    pub fn output(&self, cmd: &Cmd) -> Result<Output, RunError> {
        let command = cmd.display();
        self.journal
            .lock()
            .expect("journal lock")
            .push(command.clone());
        if self.dry_run && !cmd.read_only {
            println!("would run: {command}");
            return Ok(Output {
                code: Some(0),
                ..Output::default()
            });
        }
        tracing::debug!(%command, "running");
        let started = Instant::now();
        let program = self.resolve(cmd)?;
        let mut child = Command::new(program);
        child
            .args(cmd.args.iter().map(|a| &a.value))
            .stdin(if cmd.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so that a timeout stops the command and everything it started.
            .process_group(0);
        if let Some(path) = &self.path {
            child.env("PATH", path);
        }
        let mut child = child.spawn().map_err(|source| RunError::Spawn {
            command: command.clone(),
            source,
        })?;
        if let (Some(text), Some(mut stdin)) = (cmd.stdin.clone(), child.stdin.take()) {
            thread::spawn(move || {
                // A command may exit without reading its input; that is its business.
                let _ = stdin.write_all(text.as_bytes());
            });
        }
        let stdout = drain(child.stdout.take());
        let stderr = drain(child.stderr.take());
        let timeout = cmd.timeout.unwrap_or(self.default_timeout);
        let status = child
            .wait_timeout(timeout)
            .map_err(|source| RunError::Spawn {
                command: command.clone(),
                source,
            })?;
        let timed_out = status.is_none();
        let status = match status {
            Some(s) => s,
            None => {
                let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
                let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
                child.wait().map_err(|source| RunError::Spawn {
                    command: command.clone(),
                    source,
                })?
            }
        };
        let output = Output {
            code: status.code(),
            stdout: stdout.join().unwrap_or_default(),
            stderr: stderr.join().unwrap_or_default(),
        };
        tracing::debug!(%command, code = ?output.code, elapsed_ms = started.elapsed().as_millis() as u64, "finished");
        if timed_out {
            return Err(RunError::TimedOut {
                command,
                timeout,
                output,
            });
        }
        Ok(output)
    }

    /// Find the program on the runner's PATH so that "not installed" is its own clear error.
    fn resolve(&self, cmd: &Cmd) -> Result<std::path::PathBuf, RunError> {
        let path = self.path.clone().or_else(|| std::env::var_os("PATH"));
        let cwd = std::env::current_dir().unwrap_or_else(|_| "/".into());
        which::which_in(&cmd.program, path, cwd).map_err(|_| RunError::NotFound {
            command: cmd.display(),
            program: cmd.program.clone(),
        })
    }
}

/// Read a pipe to the end on its own thread, so a chatty command never blocks on a full pipe.
fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A directory with executable shell scripts, used as the runner's PATH.
    fn fake_bin(scripts: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, body) in scripts {
            let path = dir.path().join(name);
            std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        dir
    }

    fn runner(dir: &tempfile::TempDir) -> Runner {
        let path = format!("{}:/usr/bin:/bin", dir.path().display());
        Runner::new().path(path)
    }

    #[test]
    fn captures_stdout_stderr_and_code() {
        let bin = fake_bin(&[("tool", "echo out; echo err >&2; exit 3")]);
        let out = runner(&bin).output(&Cmd::new("tool")).unwrap();
        assert_eq!(out.code, Some(3));
        assert_eq!(out.stdout, "out\n");
        assert_eq!(out.stderr, "err\n");
    }

    #[test]
    fn failure_shows_quoted_command_line_and_output_tail() {
        let bin = fake_bin(&[(
            "microk8s",
            "echo 'Addon core/dns could not be enabled' >&2; exit 1",
        )]);
        let err = runner(&bin)
            .run(&Cmd::new("microk8s").args(["enable", "metallb:10.0.0.1-10.0.0.9", "a b"]))
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("`microk8s enable metallb:10.0.0.1-10.0.0.9 'a b'` failed (exit code 1)"),
            "{text}"
        );
        assert!(
            text.contains("Addon core/dns could not be enabled"),
            "{text}"
        );
    }

    #[test]
    fn timeout_kills_the_command_and_says_so() {
        let bin = fake_bin(&[("slow", "echo starting; sleep 30; echo never")]);
        let started = Instant::now();
        let err = runner(&bin)
            .run(&Cmd::new("slow").timeout(Duration::from_millis(300)))
            .unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the sleep was killed"
        );
        let text = err.to_string();
        assert!(matches!(err, RunError::TimedOut { .. }), "{text}");
        assert!(text.contains("`slow` did not finish within 0s"), "{text}");
        assert!(text.contains("starting"), "{text}");
    }

    #[test]
    fn missing_program_is_a_clear_error() {
        let bin = fake_bin(&[]);
        let err = runner(&bin)
            .run(&Cmd::new("no-such-tool").arg("x"))
            .unwrap_err();
        assert!(matches!(err, RunError::NotFound { .. }));
        assert!(
            err.to_string()
                .contains("`no-such-tool` was not found on PATH")
        );
    }

    #[test]
    fn dry_run_records_but_does_not_run_changes() {
        let bin = fake_bin(&[("tool", "touch \"$1\"")]);
        let marker = bin.path().join("ran");
        let runner = runner(&bin).dry_run(true);
        let marker_arg = marker.to_str().unwrap().to_string();
        let out = runner.run(&Cmd::new("tool").arg(&marker_arg)).unwrap();
        assert!(out.success());
        assert!(!marker.exists(), "a dry run changes nothing");
        runner
            .run(&Cmd::new("tool").arg(&marker_arg).read_only())
            .unwrap();
        assert!(marker.exists(), "read-only queries still run");
        assert_eq!(runner.journal().len(), 2);
    }

    #[test]
    fn secret_arguments_are_redacted_but_passed() {
        let bin = fake_bin(&[("login", "test \"$2\" = hunter2 || exit 9; exit 4")]);
        let err = runner(&bin)
            .run(&Cmd::new("login").arg("--password").secret_arg("hunter2"))
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("exit code 4"),
            "the secret reached the program: {text}"
        );
        assert!(text.contains("login --password '<redacted>'"), "{text}");
        assert!(!text.contains("hunter2"));
    }

    #[test]
    fn sudo_wraps_the_command() {
        let cmd = Cmd::new("snap").args(["install", "microk8s"]).with_sudo();
        assert_eq!(cmd.display(), "sudo snap install microk8s");
        let runner = Runner::new().dry_run(true);
        runner.pretend(&Cmd::new("microk8s").arg("config").read_only());
        assert_eq!(runner.journal(), vec!["microk8s config".to_string()]);
    }

    #[test]
    fn stdin_is_fed_to_the_command() {
        let bin = fake_bin(&[("upper", "tr a-z A-Z")]);
        let out = runner(&bin)
            .run(&Cmd::new("upper").stdin("fs.inotify\n"))
            .unwrap();
        assert_eq!(out.stdout, "FS.INOTIFY\n");
    }
}
