//! Progress of a deploy or remove: one spinner per application on a terminal, plain timestamped
//! lines otherwise (CI logs, pipes), so the same code reads well in both.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Clone)]
pub struct Progress {
    multi: Option<MultiProgress>,
    started: Instant,
}

impl Progress {
    /// Spinners when stderr is a terminal, plain lines otherwise.
    pub fn new() -> Self {
        let multi = std::io::stderr()
            .is_terminal()
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Self {
            multi,
            started: Instant::now(),
        }
    }

    /// Plain lines always (for tests and `--output json`).
    pub fn plain() -> Self {
        Self {
            multi: None,
            started: Instant::now(),
        }
    }

    /// A line for the whole run (stage headers).
    pub fn line(&self, text: &str) {
        match &self.multi {
            Some(m) => {
                let _ = m.println(text);
            }
            None => eprintln!("[{:>5.1}s] {text}", self.started.elapsed().as_secs_f32()),
        }
    }

    /// The tracker of one application.
    pub fn app(&self, name: &str) -> AppProgress {
        let bar = self.multi.as_ref().map(|m| {
            let bar = m.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {prefix:<20} {elapsed:>4} {wide_msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_prefix(name.to_owned());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        AppProgress {
            name: name.to_owned(),
            bar,
            started: self.started,
            last: std::sync::Mutex::new(String::new()),
        }
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

pub struct AppProgress {
    name: String,
    bar: Option<ProgressBar>,
    started: Instant,
    /// The last plain line, so a wait loop does not print the same line every second.
    last: std::sync::Mutex<String>,
}

impl AppProgress {
    pub fn set(&self, msg: &str) {
        match &self.bar {
            Some(b) => b.set_message(msg.to_owned()),
            None => {
                let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
                if *last != msg {
                    eprintln!(
                        "[{:>5.1}s] {}: {msg}",
                        self.started.elapsed().as_secs_f32(),
                        self.name
                    );
                    *last = msg.to_owned();
                }
            }
        }
    }

    pub fn finish(&self, ok: bool, msg: &str) {
        let mark = if ok { "✓" } else { "✗" };
        match &self.bar {
            Some(b) => b.finish_with_message(format!("{mark} {msg}")),
            None => self.set(&format!("{mark} {msg}")),
        }
    }
}
