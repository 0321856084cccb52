//! Running commands inside a container: captured, or wired to the host's stdio.
//!
//! A data stream never gets a TTY (a TTY rewrites `\n` as `\r\n`); a TTY is
//! allocated only for an interactive session whose stdin and stdout are both
//! terminals, in which case the host terminal is put in raw mode and window
//! size changes are forwarded. Closing the exec's input delivers EOF.

use std::io::IsTerminal;

use bollard::exec::{CreateExecOptions, ResizeExecOptions, StartExecOptions, StartExecResults};
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Engine, EngineError, Result};

type ExecStream = std::pin::Pin<
    Box<
        dyn futures_util::Stream<
                Item = std::result::Result<bollard::container::LogOutput, bollard::errors::Error>,
            > + Send,
    >,
>;
type ExecInput = std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>;

#[derive(Debug, Clone, Default)]
pub struct ExecSpec {
    pub cmd: Vec<String>,
    pub user: Option<String>,
    pub env: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct ExecOutput {
    pub code: i64,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Puts the terminal on fd 0 in raw mode and restores it when dropped.
struct RawMode(libc::termios);

impl RawMode {
    fn enable() -> Option<RawMode> {
        // SAFETY: tcgetattr/tcsetattr on fd 0 with a zeroed termios they fill in.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut t) != 0 {
                return None;
            }
            let saved = t;
            libc::cfmakeraw(&mut t);
            if libc::tcsetattr(0, libc::TCSANOW, &t) != 0 {
                return None;
            }
            Some(RawMode(saved))
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: restores the settings read in `enable`.
        unsafe {
            libc::tcsetattr(0, libc::TCSANOW, &self.0);
        }
    }
}

/// Give the exec's TTY the host terminal's size (best effort: a failed resize only
/// wraps lines differently).
async fn resize_to_terminal(docker: &bollard::Docker, id: &str) {
    if let Some((height, width)) = console::Term::stdout().size_checked() {
        let _ = docker
            .resize_exec(id, ResizeExecOptions { height, width })
            .await;
    }
}

impl Engine {
    async fn create_exec(
        &self,
        container: &str,
        spec: &ExecSpec,
        stdin: bool,
        tty: bool,
    ) -> Result<String> {
        let opts = CreateExecOptions {
            cmd: Some(spec.cmd.clone()),
            user: spec.user.clone(),
            env: (!spec.env.is_empty()).then(|| spec.env.clone()),
            attach_stdin: Some(stdin),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(tty),
            ..Default::default()
        };
        Ok(self.docker.create_exec(container, opts).await?.id)
    }

    async fn exec_code(&self, id: &str) -> Result<i64> {
        // The exit code can lag the end of the stream by a moment.
        for _ in 0..50 {
            let info = self.docker.inspect_exec(id).await?;
            if info.running != Some(true) {
                if let Some(code) = info.exit_code {
                    return Ok(code);
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        Err(EngineError::Other(
            "the engine did not report the exit code of the command".into(),
        ))
    }

    /// Start a created exec attached to its streams: its output and its input.
    async fn start_attached(
        &self,
        id: &str,
        tty: bool,
        output_capacity: usize,
    ) -> Result<(ExecStream, ExecInput)> {
        let started = self
            .docker
            .start_exec(
                id,
                Some(StartExecOptions {
                    detach: false,
                    tty,
                    output_capacity: Some(output_capacity),
                }),
            )
            .await?;
        match started {
            StartExecResults::Attached { output, input } => Ok((output, input)),
            StartExecResults::Detached => Err(EngineError::Other(
                "the engine did not attach to the command".into(),
            )),
        }
    }

    /// Run a command and collect its output (no TTY, no stdin).
    pub async fn exec_capture(&self, container: &str, spec: &ExecSpec) -> Result<ExecOutput> {
        self.exec_collect(container, spec, None).await
    }

    /// Run a command with `input` on its stdin and collect its output (no TTY).
    pub async fn exec_with_stdin(
        &self,
        container: &str,
        spec: &ExecSpec,
        input: Vec<u8>,
    ) -> Result<ExecOutput> {
        self.exec_collect(container, spec, Some(&input)).await
    }

    async fn exec_collect(
        &self,
        container: &str,
        spec: &ExecSpec,
        input: Option<&[u8]>,
    ) -> Result<ExecOutput> {
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let code = self
            .exec_stream(
                container,
                spec,
                input,
                |chunk| {
                    stdout.extend_from_slice(chunk);
                    Ok(())
                },
                |chunk| stderr.extend_from_slice(chunk),
            )
            .await?;
        Ok(ExecOutput {
            code,
            stdout,
            stderr,
        })
    }

    /// Run a command, feeding `input` (if any) to its stdin and handing every stdout
    /// chunk to `on_stdout` as it arrives; stderr is collected. Never a TTY, so the
    /// bytes arrive unchanged. An error from `on_stdout` (a full disk, say) stops
    /// reading: the engine closes the stream and the command gets SIGPIPE.
    pub async fn exec_stream<R>(
        &self,
        container: &str,
        spec: &ExecSpec,
        input: Option<R>,
        mut on_stdout: impl FnMut(&[u8]) -> std::io::Result<()>,
        mut on_stderr: impl FnMut(&[u8]),
    ) -> Result<i64>
    where
        R: tokio::io::AsyncRead + Unpin + Send,
    {
        let id = self
            .create_exec(container, spec, input.is_some(), false)
            .await?;
        let (mut output, mut writer) = self.start_attached(&id, false, 1 << 20).await?;
        let feed = async move {
            if let Some(mut r) = input {
                let _ = tokio::io::copy(&mut r, &mut writer).await;
            }
            let _ = writer.shutdown().await;
        };
        let read = async {
            while let Some(chunk) = output.next().await {
                match chunk? {
                    bollard::container::LogOutput::StdErr { message } => on_stderr(&message),
                    other => {
                        if let Err(e) = on_stdout(&other.into_bytes()) {
                            return Err(EngineError::Other(e.to_string()));
                        }
                    }
                }
            }
            Ok(())
        };
        let ((), r) = tokio::join!(feed, read);
        r?;
        self.exec_code(&id).await
    }

    /// Run a command wired to this process's stdin/stdout/stderr; returns its exit code.
    /// A TTY is used only when both stdin and stdout are terminals.
    pub async fn exec_attached(&self, container: &str, spec: &ExecSpec) -> Result<i64> {
        let tty = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
        let id = self.create_exec(container, spec, true, tty).await?;
        let (output, mut input) = self.start_attached(&id, tty, 64 * 1024).await?;
        let raw = if tty { RawMode::enable() } else { None };
        if tty {
            resize_to_terminal(&self.docker, &id).await;
        }
        // stdin pump: copy until EOF, then close the exec's input (EOF inside).
        let pump = tokio::spawn(async move {
            let mut stdin = tokio::io::stdin();
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match stdin.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if input.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        let _ = input.flush().await;
                    }
                }
            }
            let _ = input.shutdown().await;
        });
        let resize = tty.then(|| {
            let docker = self.docker.clone();
            let id = id.clone();
            tokio::spawn(async move {
                let Ok(mut sig) =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
                else {
                    return;
                };
                while sig.recv().await.is_some() {
                    resize_to_terminal(&docker, &id).await;
                }
            })
        });
        let copied = copy_to_stdio(output).await;
        pump.abort();
        if let Some(r) = resize {
            r.abort();
        }
        drop(raw);
        copied?;
        self.exec_code(&id).await
    }
}

/// Copy an attached stream's stdout and stderr to this process's, flushing each
/// chunk; stops quietly when the reader went away (`| head`).
pub(super) async fn copy_to_stdio<S>(mut output: S) -> Result<()>
where
    S: futures_util::Stream<
            Item = std::result::Result<bollard::container::LogOutput, bollard::errors::Error>,
        > + Unpin,
{
    let mut stdout = tokio::io::stdout();
    let mut stderr = tokio::io::stderr();
    while let Some(chunk) = output.next().await {
        let written = match chunk? {
            bollard::container::LogOutput::StdErr { message } => {
                stderr.write_all(&message).await.and(stderr.flush().await)
            }
            other => stdout
                .write_all(&other.into_bytes())
                .await
                .and(stdout.flush().await),
        };
        if written.is_err() {
            break;
        }
    }
    Ok(())
}
