//! Waiting for a controller to act: tests against the simulator see its effects a moment later.

use std::future::Future;
use std::time::Duration;

/// How long [`eventually`] waits. Only a failing test waits this long, so it is generous: CI's
/// two cores also build and run other tests at the same time.
pub const EVENTUALLY: Duration = Duration::from_secs(20);

/// Polls `f` every 50 ms until it gives `Some`, and returns that; panics naming `what` after
/// [`EVENTUALLY`].
pub async fn eventually<T, Fut>(what: &str, mut f: impl FnMut() -> Fut) -> T
where
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + EVENTUALLY;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {EVENTUALLY:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
