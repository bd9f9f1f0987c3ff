//! Keeping a connection to a broker: connect, work until the connection fails, wait a jittered
//! backoff, connect again, until shutdown.
//!
//! The registry's event relay and every serving node's event consumer hold a RabbitMQ
//! connection this way; both must keep their process serving whatever the broker does.

use std::fmt::Display;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::Backoff;

/// How to keep one connection: its backoff and connect timeout, and the words the logs use.
#[derive(Debug, Clone, Copy)]
pub struct Reconnect {
    /// What is connected to, for the logs: `"RabbitMQ"`.
    pub peer: &'static str,
    /// What goes on while the connection is down, for the logs: `"events wait in the outbox"`.
    pub meanwhile: &'static str,
    pub backoff: Backoff,
    /// A connect that takes longer means the peer or the network is stuck.
    pub connect_timeout: Duration,
}

impl Reconnect {
    /// Runs `session` on every connection `connect` makes, until `shutdown` fires. A session
    /// answers `None` when it stopped for the shutdown, or the error that ended its connection
    /// (after closing it). Never fails: every error is logged and followed by a reconnect.
    // Closures returning futures rather than async closures: the futures of an `AsyncFnMut`
    // cannot be required to be `Send`, and the loop runs on spawned tasks.
    pub async fn run<C, E, S, Connecting, Working>(
        &self,
        shutdown: &CancellationToken,
        mut connect: impl FnMut() -> Connecting,
        mut session: impl FnMut(C) -> Working,
    ) where
        Connecting: Future<Output = Result<C, E>>,
        Working: Future<Output = Option<S>>,
        E: Display,
        S: Display,
    {
        let mut delays = self.backoff.delays();
        loop {
            let connected = tokio::select! {
                _ = shutdown.cancelled() => return,
                connected = tokio::time::timeout(self.connect_timeout, connect()) => connected,
            };
            let (problem, error) = match connected {
                Ok(Ok(connection)) => {
                    delays.reset();
                    match session(connection).await {
                        None => return,
                        Some(error) => ("lost", error.to_string()),
                    }
                }
                Ok(Err(error)) => ("cannot reach", error.to_string()),
                Err(_) => (
                    "timed out connecting to",
                    format!("no answer within {} s", self.connect_timeout.as_secs_f64()),
                ),
            };
            let retry_in = delays.next_delay();
            tracing::warn!(
                %error,
                retry_in_ms = retry_in.as_millis() as u64,
                "{problem} {}; {} until it is back",
                self.peer,
                self.meanwhile,
            );
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(retry_in) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    const RECONNECT: Reconnect = Reconnect {
        peer: "the test peer",
        meanwhile: "nothing happens",
        backoff: Backoff {
            initial: Duration::from_millis(1),
            max: Duration::from_millis(4),
        },
        connect_timeout: Duration::from_secs(5),
    };

    #[tokio::test]
    async fn failed_connects_and_lost_sessions_are_retried_until_shutdown() {
        let shutdown = CancellationToken::new();
        let connects = Arc::new(AtomicUsize::new(0));
        let sessions = Arc::new(AtomicUsize::new(0));
        let run = RECONNECT.run(
            &shutdown,
            || {
                let attempt = connects.fetch_add(1, Ordering::SeqCst);
                async move {
                    if attempt.is_multiple_of(2) {
                        Err("refused")
                    } else {
                        Ok(attempt)
                    }
                }
            },
            |attempt| {
                let last = sessions.fetch_add(1, Ordering::SeqCst) == 2;
                if last {
                    shutdown.cancel();
                }
                async move { (!last).then(|| format!("connection {attempt} dropped")) }
            },
        );
        tokio::time::timeout(Duration::from_secs(10), run)
            .await
            .expect("the loop ends once the session stops for the shutdown");
        assert_eq!(sessions.load(Ordering::SeqCst), 3);
        assert_eq!(
            connects.load(Ordering::SeqCst),
            6,
            "every other connect failed"
        );
    }

    #[tokio::test]
    async fn a_shutdown_ends_the_wait_between_attempts() {
        let shutdown = CancellationToken::new();
        let slow = Reconnect {
            backoff: Backoff {
                initial: Duration::from_secs(3600),
                max: Duration::from_secs(3600),
            },
            ..RECONNECT
        };
        let cancel = shutdown.clone();
        let run = slow.run(
            &shutdown,
            || {
                cancel.cancel();
                async { Err::<(), _>("refused") }
            },
            |()| async { None::<String> },
        );
        tokio::time::timeout(Duration::from_secs(10), run)
            .await
            .expect("the shutdown interrupts the hour-long backoff");
    }
}
