//! What one client connection may hold of a server, as any public HTTP server
//! bounds it: the time to send a request's headers, the time a keep-alive
//! connection may sit idle between requests, the time to send a request's body,
//! and how many connections may be open at once.
//!
//! ```text
//! accept ──► Head ──headers read, handler called──► Serving ──answer sent──► Idle
//!             ▲  (header_read)                      (no bound: long polls)    │ (idle)
//!             └────────────────────first byte of the next request─────────────┘
//! ```
//! The stream (`polling::PollingStream`) closes a connection whose phase's
//! deadline passes while it waits for bytes; the router's `track` layer moves
//! the phase on as requests begin and their answers end.
use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// A server's bounds on its connections.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// From a connection's first byte (or its accept) to a request's complete headers.
    pub header_read: Duration,
    /// Between an answer and the next request's first byte.
    pub idle: Duration,
    /// From a request's headers to the end of its body.
    pub body_read: Duration,
    /// Connections open at once; more are closed as they are accepted.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read: Duration::from_secs(10),
            idle: Duration::from_secs(60),
            body_read: Duration::from_secs(30),
            max_connections: 10_000,
        }
    }
}

/// Where a connection is in its request cycle.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Phase {
    /// Sending a request's headers (or nothing yet), since then.
    Head { since: Instant },
    /// A request is being served: no bound here (an agent's long poll waits).
    Serving,
    /// Answered, waiting for the next request, since then.
    Idle { since: Instant },
}

/// When a connection in `phase` is closed if it sends nothing more.
pub fn deadline(phase: Phase, limits: &Limits) -> Option<Instant> {
    match phase {
        Phase::Head { since } => Some(since + limits.header_read),
        Phase::Serving => None,
        Phase::Idle { since } => Some(since + limits.idle),
    }
}

/// One connection's phase, shared by its stream and the requests it carries.
#[derive(Debug)]
pub struct Tracker {
    phase: Mutex<Phase>,
    /// Requests begun and not yet answered (pipelined ones overlap).
    open_requests: Mutex<usize>,
}

impl Tracker {
    pub fn new(now: Instant) -> Arc<Tracker> {
        Arc::new(Tracker {
            phase: Mutex::new(Phase::Head { since: now }),
            open_requests: Mutex::new(0),
        })
    }

    pub fn phase(&self) -> Phase {
        *self.phase.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set(&self, phase: Phase) {
        *self.phase.lock().unwrap_or_else(|p| p.into_inner()) = phase;
    }

    /// Bytes came in: an idle connection has begun its next request.
    pub fn bytes_read(&self, now: Instant) {
        let mut p = self.phase.lock().unwrap_or_else(|p| p.into_inner());
        if matches!(*p, Phase::Idle { .. }) {
            *p = Phase::Head { since: now };
        }
    }

    /// A request's headers were read and its handler called.
    pub fn request_began(&self) {
        *self.open_requests.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        self.set(Phase::Serving);
    }

    /// A request's answer was sent (or given up): idle once none is left open.
    pub fn request_ended(&self, now: Instant) {
        let mut open = self.open_requests.lock().unwrap_or_else(|p| p.into_inner());
        *open = open.saturating_sub(1);
        if *open == 0 {
            self.set(Phase::Idle { since: now });
        }
    }
}

/// The error a request body that took too long ends with.
#[derive(Debug)]
pub struct BodyTimedOut;

impl std::fmt::Display for BodyTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body was not sent in time")
    }
}

impl std::error::Error for BodyTimedOut {}

/// Whether a body read failed because the body took too long.
pub fn is_body_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(e);
    while let Some(s) = source {
        if s.is::<BodyTimedOut>() {
            return true;
        }
        source = s.source();
    }
    false
}

/// A request body that fails once its whole read has taken longer than allowed.
struct DeadlineBody {
    inner: Body,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        match self.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimedOut)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// An answer's body that marks its request ended when hyper is done with it.
struct AnswerBody {
    inner: Body,
    tracker: Arc<Tracker>,
}

impl Drop for AnswerBody {
    fn drop(&mut self) {
        self.tracker.request_ended(Instant::now());
    }
}

impl http_body::Body for AnswerBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

use std::future::Future;

/// The router layer: a request's connection is serving until its answer is sent,
/// and its body must arrive within `body_read`.
pub async fn track(limits: Limits, request: Request, next: Next) -> Response {
    let tracker = request
        .extensions()
        .get::<axum::extract::ConnectInfo<crate::polling::PeerAddr>>()
        .and_then(|c| c.0.tracker().cloned());
    let Some(tracker) = tracker else {
        return next.run(request).await;
    };
    tracker.request_began();
    let request = request.map(|inner| {
        Body::new(DeadlineBody {
            inner,
            sleep: Box::pin(tokio::time::sleep(limits.body_read)),
        })
    });
    let response = next.run(request).await;
    response.map(|inner| Body::new(AnswerBody { inner, tracker }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            header_read: Duration::from_secs(2),
            idle: Duration::from_secs(30),
            body_read: Duration::from_secs(5),
            max_connections: 10,
        }
    }

    #[test]
    fn each_phase_has_its_own_bound_and_serving_none() {
        let t0 = Instant::now();
        let l = limits();
        assert_eq!(
            deadline(Phase::Head { since: t0 }, &l),
            Some(t0 + Duration::from_secs(2))
        );
        assert_eq!(
            deadline(Phase::Idle { since: t0 }, &l),
            Some(t0 + Duration::from_secs(30))
        );
        assert_eq!(deadline(Phase::Serving, &l), None);
    }

    #[test]
    fn a_connection_moves_from_head_to_serving_to_idle_and_back() {
        let t0 = Instant::now();
        let t = Tracker::new(t0);
        assert_eq!(t.phase(), Phase::Head { since: t0 });
        // Bytes of a request in progress do not restart its header clock.
        t.bytes_read(t0 + Duration::from_secs(1));
        assert_eq!(t.phase(), Phase::Head { since: t0 });
        t.request_began();
        assert_eq!(t.phase(), Phase::Serving);
        let t1 = t0 + Duration::from_secs(3);
        t.request_ended(t1);
        assert_eq!(t.phase(), Phase::Idle { since: t1 });
        let t2 = t1 + Duration::from_secs(4);
        t.bytes_read(t2);
        assert_eq!(t.phase(), Phase::Head { since: t2 });
        // Pipelined requests: idle only once the last answer is out.
        t.request_began();
        t.request_began();
        t.request_ended(t2);
        assert_eq!(t.phase(), Phase::Serving);
        t.request_ended(t2);
        assert_eq!(t.phase(), Phase::Idle { since: t2 });
    }

    #[tokio::test]
    async fn a_body_that_takes_too_long_fails_with_its_own_error() {
        use futures_util::StreamExt;
        // Half a body, then nothing more: the client stalls.
        let half = futures_util::stream::once(async {
            Ok::<_, std::io::Error>(Bytes::from_static(b"half"))
        })
        .chain(futures_util::stream::pending());
        let body = Body::new(DeadlineBody {
            inner: Body::from_stream(half),
            sleep: Box::pin(tokio::time::sleep(Duration::from_millis(200))),
        });
        let err = axum::body::to_bytes(body, 1024).await.unwrap_err();
        assert!(is_body_timeout(&err), "{err}");
        // A body that arrives in time reads whole.
        let whole = Body::new(DeadlineBody {
            inner: Body::from("all of it"),
            sleep: Box::pin(tokio::time::sleep(Duration::from_secs(5))),
        });
        assert_eq!(
            axum::body::to_bytes(whole, 1024).await.unwrap(),
            "all of it"
        );
    }
}
