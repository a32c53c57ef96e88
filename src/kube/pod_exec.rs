//! A command run through `pods/exec` with every wait bounded.
//!
//! kube-rs's `AttachedProcess` (kube-client 5) leaves waits without an end: when its connection
//! ends on an error (a reset while stdin is still being sent, for one) it drops the exit status
//! and never ends stdout or stderr (its pipes end only when it finishes cleanly), and a write to
//! stdin after the connection ended waits for ever once the buffer is full. Here every stream
//! ends once the exec has ended, a read or write that waits longer than its bound fails, and the
//! exit status is awaited for a bounded time; each error says what it waited for.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::api::AttachedProcess;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf, ReadHalf, SimplexStream, WriteHalf};
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// How long a read of stdout or a write to stdin may wait before the exec counts as stuck.
pub const STALL: Duration = Duration::from_secs(300);
/// How long stderr may take to end once the exit status came (it is already buffered by then).
const STDERR_AFTER_STATUS: Duration = Duration::from_secs(5);
/// How much of stderr is kept for the error.
const STDERR_KEPT: usize = 64 * 1024;

/// A running exec: its streams, and its outcome once it ends.
pub struct Exec {
    /// What runs where, for errors (e.g. "`wharf backup agent stream` in pod P").
    what: Arc<str>,
    /// Kept so the exec runs: dropping it aborts the connection.
    proc: AttachedProcess,
    ended: CancellationToken,
    status: JoinHandle<Option<Status>>,
    stderr: Option<JoinHandle<String>>,
}

impl Exec {
    /// Watch `proc`: its exit status (or the end of its connection without one) ends its
    /// streams. `what` names the command and the pod in errors.
    pub fn new(mut proc: AttachedProcess, what: String) -> Exec {
        let what: Arc<str> = what.into();
        let ended = CancellationToken::new();
        let status = proc.take_status();
        let status = {
            let ended = ended.clone();
            tokio::spawn(async move {
                let status = match status {
                    Some(s) => s.await,
                    None => None,
                };
                ended.cancel();
                status
            })
        };
        let stderr = proc.stderr().map(|r| {
            let mut r = Ending::new(r, &ended, None, what.clone());
            tokio::spawn(async move {
                let mut kept = Vec::new();
                let mut buf = [0u8; 4096];
                while let Ok(n) = r.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let room = STDERR_KEPT.saturating_sub(kept.len());
                    kept.extend_from_slice(&buf[..n.min(room)]);
                }
                String::from_utf8_lossy(&kept).trim().to_owned()
            })
        });
        Exec {
            what,
            proc,
            ended,
            status,
            stderr,
        }
    }

    /// The command's stdin (once): a write fails when the exec has ended or waited [`STALL`].
    pub fn stdin(&mut self) -> Option<Ending<WriteHalf<SimplexStream>>> {
        let w = self.proc.stdin()?;
        Some(Ending::new(w, &self.ended, Some(STALL), self.what.clone()))
    }

    /// The command's stdout (once): it ends when the exec has ended; a read fails after [`STALL`].
    pub fn stdout(&mut self) -> Option<Ending<ReadHalf<SimplexStream>>> {
        let r = self.proc.stdout()?;
        Some(Ending::new(r, &self.ended, Some(STALL), self.what.clone()))
    }

    /// Wait for the command to end: `Ok` if it succeeded, else why not (its stderr and the
    /// status's message). Not bounded by itself: a command runs as long as its work does; wrap
    /// it in [`Exec::finish`] once nothing more is sent or read.
    pub async fn outcome(self) -> Result<(), String> {
        let status = self.status.await.ok().flatten();
        let stderr = match self.stderr {
            Some(h) => tokio::time::timeout(STDERR_AFTER_STATUS, h)
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default(),
            None => String::new(),
        };
        drop(self.proc);
        let with_stderr = |message: String| {
            if stderr.is_empty() {
                message
            } else if message.is_empty() {
                stderr.clone()
            } else {
                format!("{stderr} ({message})")
            }
        };
        match status {
            Some(s) if s.status.as_deref() == Some("Success") => Ok(()),
            Some(s) => Err(with_stderr(s.message.unwrap_or_default())),
            None => Err(with_stderr(format!(
                "the connection to {} ended without an exit status",
                self.what
            ))),
        }
    }

    /// [`Exec::outcome`], waiting at most `limit` for it; `after` says since when the command
    /// should be done (e.g. "the whole stream was sent").
    pub async fn finish(self, limit: Duration, after: &str) -> Result<(), String> {
        let what = self.what.clone();
        tokio::time::timeout(limit, self.outcome())
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "no exit status from {what} {}s after {after}",
                    limit.as_secs()
                ))
            })
    }
}

/// One of an exec's streams: it ends (a reader) or fails (a writer) once the exec has ended,
/// and an operation that waits longer than its bound fails with `TimedOut`.
pub struct Ending<T> {
    inner: T,
    ended: CancellationToken,
    wait: Pin<Box<WaitForCancellationFutureOwned>>,
    stall: Option<Duration>,
    /// Runs while an operation waits; a new operation starts it afresh.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    what: Arc<str>,
}

impl<T: Unpin> Ending<T> {
    fn new(inner: T, ended: &CancellationToken, stall: Option<Duration>, what: Arc<str>) -> Self {
        Ending {
            inner,
            ended: ended.clone(),
            wait: Box::pin(ended.clone().cancelled_owned()),
            stall,
            timer: None,
            what,
        }
    }

    /// Poll `op` on the inner stream; when it waits, `at_end` is the answer once the exec has
    /// ended (polled once more first: what came before the end is still delivered), and a
    /// `TimedOut` error once the wait is longer than the bound.
    fn poll_op<R>(
        &mut self,
        cx: &mut Context<'_>,
        mut op: impl FnMut(Pin<&mut T>, &mut Context<'_>) -> Poll<std::io::Result<R>>,
        at_end: impl FnOnce(&str) -> std::io::Result<R>,
    ) -> Poll<std::io::Result<R>> {
        if let Poll::Ready(r) = op(Pin::new(&mut self.inner), cx) {
            self.timer = None;
            return Poll::Ready(r);
        }
        if self.ended.is_cancelled() || self.wait.as_mut().poll(cx).is_ready() {
            self.timer = None;
            if let Poll::Ready(r) = op(Pin::new(&mut self.inner), cx) {
                return Poll::Ready(r);
            }
            return Poll::Ready(at_end(&self.what));
        }
        if let Some(limit) = self.stall {
            let timer = self
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
            ready!(timer.as_mut().poll(cx));
            self.timer = None;
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("{} moved no data for {limit:?} (is it stuck?)", self.what),
            )));
        }
        Poll::Pending
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Ending<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        // At the end: no more data comes (an end of file).
        self.get_mut()
            .poll_op(cx, |r, cx| r.poll_read(cx, buf), |_| Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Ending<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.get_mut()
            .poll_op(cx, |w, cx| w.poll_write(cx, data), gone)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.get_mut().poll_op(cx, |w, cx| w.poll_flush(cx), gone)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.get_mut()
            .poll_op(cx, |w, cx| w.poll_shutdown(cx), gone)
    }
}

/// A write after the exec ended: nothing reads it any more.
fn gone<R>(what: &str) -> std::io::Result<R> {
    Err(std::io::Error::new(
        std::io::ErrorKind::BrokenPipe,
        format!("{what} has ended: nothing reads its stdin any more"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    fn what() -> Arc<str> {
        "`cmd` in pod p".into()
    }

    #[tokio::test]
    async fn a_pipe_left_open_ends_with_the_exec_after_what_it_holds() {
        // kube-rs leaves the pipe open when its connection fails: the end comes from `ended`.
        let (r, mut w) = tokio::io::simplex(64);
        let ended = CancellationToken::new();
        let mut reader = Ending::new(r, &ended, None, what());
        w.write_all(b"last words").await.unwrap();
        ended.cancel();
        let mut got = String::new();
        tokio::time::timeout(Duration::from_secs(5), reader.read_to_string(&mut got))
            .await
            .expect("the reader ends")
            .unwrap();
        assert_eq!(got, "last words");
        drop(w);
    }

    #[tokio::test]
    async fn a_write_nobody_reads_fails_once_the_exec_ended() {
        let (_r, w) = tokio::io::simplex(16);
        let ended = CancellationToken::new();
        let mut writer = Ending::new(w, &ended, Some(STALL), what());
        let data = vec![0u8; 64];
        let stop = ended.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            stop.cancel();
        });
        let e = tokio::time::timeout(Duration::from_secs(5), writer.write_all(&data))
            .await
            .expect("the write ends")
            .unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe);
        assert!(e.to_string().contains("`cmd` in pod p has ended"), "{e}");
    }

    #[tokio::test]
    async fn a_stuck_stream_fails_after_its_bound_naming_the_command() {
        let (r, _w) = tokio::io::simplex(16);
        let ended = CancellationToken::new();
        let mut reader = Ending::new(r, &ended, Some(Duration::from_millis(200)), what());
        let mut buf = [0u8; 8];
        let e = reader.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
        assert!(
            e.to_string()
                .contains("`cmd` in pod p moved no data for 200ms"),
            "{e}"
        );
    }
}
