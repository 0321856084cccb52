//! All output goes through one `Printer`: data on stdout, everything else on stderr.
//!
//! Commands never call `println!`/`eprintln!` directly. The printer knows whether
//! stderr is a terminal, whether colours are wanted (`--color`, `NO_COLOR`) and
//! whether the user asked for silence (`-q`), so spinners, progress bars and
//! prompts are switched on or off in one place.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use console::{style, Style};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::error::{Fail, EXIT_USAGE};

/// When to colour stderr (`--color`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone)]
pub struct Printer {
    quiet: bool,
    verbose: u8,
    json: bool,
    stderr_tty: bool,
    stdin_tty: bool,
}

/// A size as pgbox shows it: megabytes with one decimal (`12.3 MB`).
pub fn size(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// `45s`, `12m`, `5h`, `3d`: an age for tables and status rows.
pub fn age(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

impl Printer {
    /// A printer that says nothing but errors (for undo work and restarts run
    /// under another step's output).
    pub fn quiet() -> Printer {
        Printer::new(true, 0, false, ColorChoice::Never)
    }

    pub fn new(quiet: bool, verbose: u8, json: bool, color: ColorChoice) -> Self {
        let stderr_tty = std::io::stderr().is_terminal();
        let colors = match color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                stderr_tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            }
        };
        console::set_colors_enabled_stderr(colors);
        console::set_colors_enabled(colors && std::io::stdout().is_terminal());
        Printer {
            quiet,
            verbose,
            json,
            stderr_tty,
            stdin_tty: std::io::stdin().is_terminal(),
        }
    }

    pub fn json(&self) -> bool {
        self.json
    }

    pub fn verbose(&self) -> bool {
        self.verbose > 0
    }

    /// True when prompts may be shown: stdin and stderr are terminals and not quiet.
    pub fn can_prompt(&self) -> bool {
        self.stdin_tty && self.stderr_tty && !self.quiet
    }

    /// Ask before something that cannot be undone. `yes` (the command's `--yes`)
    /// answers for the user; without it the question is asked on a terminal, and
    /// without a terminal the answer is an error saying that `what` needs a
    /// confirmation, with `hint` (how to give it without a terminal).
    pub fn confirm(
        &self,
        question: impl Into<String>,
        yes: bool,
        what: impl AsRef<str>,
        hint: impl Into<String>,
    ) -> Result<bool, Fail> {
        if yes {
            return Ok(true);
        }
        if !self.can_prompt() {
            return Err(
                Fail::new(format!("{} and needs a confirmation", what.as_ref()))
                    .hint(hint)
                    .code(EXIT_USAGE),
            );
        }
        dialoguer::Confirm::new()
            .with_prompt(question)
            .default(false)
            .interact()
            .map_err(|e| Fail::new(format!("cannot read the answer: {e}")))
    }

    /// Ask for a value on a terminal, offering `default`; `check` refuses bad answers.
    pub fn ask<T>(
        &self,
        question: impl Into<String>,
        default: T,
        check: impl Fn(&T) -> Result<(), String>,
    ) -> Result<T, Fail>
    where
        T: Clone + ToString + std::str::FromStr,
        <T as std::str::FromStr>::Err: ToString,
    {
        let theme = dialoguer::theme::ColorfulTheme::default();
        dialoguer::Input::with_theme(&theme)
            .with_prompt(question)
            .default(default)
            .validate_with(|v: &T| check(v))
            .interact_text()
            .map_err(|e| Fail::new(format!("cannot read the answer: {e}")))
    }

    /// A step that finished: `✓ message`.
    pub fn done(&self, msg: impl AsRef<str>) {
        self.line(&style("✓").green().to_string(), msg.as_ref());
    }

    /// Neutral status information.
    pub fn info(&self, msg: impl AsRef<str>) {
        if !self.quiet {
            eprintln!("{}", msg.as_ref());
        }
    }

    /// Detail shown with `-v`.
    pub fn detail(&self, msg: impl AsRef<str>) {
        if self.verbose > 0 && !self.quiet {
            eprintln!("{}", style(msg.as_ref()).dim());
        }
    }

    /// Timing lines for profiling, shown only when `PGBOX_TRACE` is set (even with
    /// `-q`, so a benchmark can time a quiet run): `trace: message`.
    pub fn trace(&self, msg: impl AsRef<str>) {
        if std::env::var_os("PGBOX_TRACE").is_some_and(|v| !v.is_empty()) {
            eprintln!("trace: {}", msg.as_ref());
        }
    }

    pub fn warn(&self, msg: impl AsRef<str>) {
        if !self.quiet {
            eprintln!("{} {}", style("warning:").yellow().bold(), msg.as_ref());
        }
    }

    fn line(&self, mark: &str, msg: &str) {
        if !self.quiet {
            eprintln!("{mark} {msg}");
        }
    }

    /// With `-v`: one line of a build's or the server's own output, indented and
    /// printed above `bar` so the spinner does not draw over it.
    pub fn verbose_line(&self, bar: &ProgressBar, line: &str) {
        if self.verbose > 0 {
            bar.suspend(|| eprintln!("  {line}"));
        }
    }

    /// Data for stdout: one line, flushed.
    pub fn data(&self, line: impl AsRef<str>) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", line.as_ref());
        let _ = out.flush();
    }

    /// Print an error with its causes and hint, as `error:` / `caused by:` / `hint:`.
    pub fn error(&self, err: &anyhow::Error) {
        let red = Style::new().red().bold().for_stderr();
        eprintln!("{} {}", red.apply_to("error:"), err);
        for cause in err.chain().skip(1) {
            let text = cause.to_string();
            if text != err.to_string() {
                eprintln!("{} {}", style("caused by:").bold().for_stderr(), text);
            }
        }
        if let Some(hint) = crate::error::hint_of(err) {
            eprintln!("{} {}", style("hint:").cyan().bold().for_stderr(), hint);
        }
    }

    /// A spinner on stderr; hidden when stderr is not a terminal or with `-q`.
    pub fn spinner(&self, msg: impl Into<String>) -> ProgressBar {
        let pb = if self.quiet || !self.stderr_tty {
            ProgressBar::hidden()
        } else {
            let pb = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            pb.set_style(
                ProgressStyle::with_template("{spinner:.cyan} {msg} {elapsed:.dim}")
                    .expect("static template")
                    .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ "),
            );
            pb.enable_steady_tick(Duration::from_millis(80));
            pb
        };
        pb.set_message(msg.into());
        pb
    }

    /// A byte counter or bar on stderr (`len` known: a bar). Hidden off a terminal or with `-q`.
    pub fn bytes_bar(&self, msg: impl Into<String>, len: Option<u64>) -> ProgressBar {
        if self.quiet || !self.stderr_tty {
            return ProgressBar::hidden();
        }
        let pb = ProgressBar::with_draw_target(len, ProgressDrawTarget::stderr());
        let template = if len.is_some() {
            "{msg} [{bar:30.cyan/dim}] {bytes}/{total_bytes} {binary_bytes_per_sec} {elapsed}"
        } else {
            "{spinner:.cyan} {msg} {bytes} {binary_bytes_per_sec} {elapsed}"
        };
        pb.set_style(
            ProgressStyle::with_template(template)
                .expect("static template")
                .progress_chars("=> "),
        );
        pb.enable_steady_tick(Duration::from_millis(100));
        pb.set_message(msg.into());
        pb
    }

    /// A bar counting items (e.g. pg_restore's TOC entries).
    pub fn items_bar(&self, msg: impl Into<String>, len: u64) -> ProgressBar {
        if self.quiet || !self.stderr_tty {
            return ProgressBar::hidden();
        }
        let pb = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
        pb.set_style(
            ProgressStyle::with_template("{msg} [{bar:30.cyan/dim}] {pos}/{len} items {elapsed}")
                .expect("static template")
                .progress_chars("=> "),
        );
        pb.enable_steady_tick(Duration::from_millis(100));
        pb.set_message(msg.into());
        pb
    }
}
