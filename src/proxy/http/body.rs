//! Bodies on their way through an `http` proxy: the client's request body, kept (up to a bound)
//! so that a request the upstream refused unprocessed can be sent again, and remembering whether
//! the client broke it; and a gRPC response body that counts the status in its trailers.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use super::metrics::HttpMetrics;

/// The most of a request body kept for sending again: past this, a refused request is not retried.
pub const REPLAY_LIMIT: usize = 64 * 1024;

/// A frame as kept for a replay.
#[derive(Clone)]
enum Kept {
    Data(Bytes),
    Trailers(HeaderMap),
}

impl Kept {
    fn frame(&self) -> Frame<Bytes> {
        match self {
            Self::Data(data) => Frame::data(data.clone()),
            Self::Trailers(trailers) => Frame::trailers(trailers.clone()),
        }
    }
}

struct Shared {
    inner: Incoming,
    /// Every frame read so far, while their data stays within [`REPLAY_LIMIT`].
    kept: Vec<Kept>,
    kept_bytes: usize,
    /// More than [`REPLAY_LIMIT`] was read: the body cannot be sent again.
    overflowed: bool,
}

/// A client's request body on its way upstream. [`ClientBody::replay`] gives a body that sends
/// the same frames again (those read so far, then the rest), for a retry.
pub struct ClientBody {
    shared: Arc<Mutex<Shared>>,
    /// The next kept frame this attempt sends.
    position: usize,
    broken: Arc<AtomicBool>,
}

impl ClientBody {
    /// Wraps the client's body.
    pub fn new(inner: Incoming) -> Self {
        let shared = Shared { inner, kept: Vec::new(), kept_bytes: 0, overflowed: false };
        Self { shared: Arc::new(Mutex::new(shared)), position: 0, broken: Arc::new(AtomicBool::new(false)) }
    }

    /// A body for another attempt of the same request, if what was read so far was kept.
    pub fn replay(&self) -> Option<Self> {
        let shared = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        (!shared.overflowed).then(|| Self {
            shared: Arc::clone(&self.shared),
            position: 0,
            broken: self.broken.clone(),
        })
    }

    /// Whether the client broke its body (a malformed chunk, a reset half-way).
    pub fn broken(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.broken)
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let mut shared = this.shared.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(kept) = shared.kept.get(this.position) {
            this.position += 1;
            return Poll::Ready(Some(Ok(kept.frame())));
        }
        let poll = Pin::new(&mut shared.inner).poll_frame(cx);
        match &poll {
            Poll::Ready(Some(Err(_))) => this.broken.store(true, Ordering::Relaxed),
            Poll::Ready(Some(Ok(frame))) if !shared.overflowed => {
                let size = frame.data_ref().map_or(0, Bytes::len);
                if shared.kept_bytes + size > REPLAY_LIMIT {
                    shared.overflowed = true;
                    shared.kept = Vec::new();
                } else {
                    let kept = match (frame.data_ref(), frame.trailers_ref()) {
                        (Some(data), _) => Kept::Data(data.clone()),
                        (None, Some(trailers)) => Kept::Trailers(trailers.clone()),
                        (None, None) => return poll,
                    };
                    shared.kept.push(kept);
                    shared.kept_bytes += size;
                    this.position += 1;
                }
            }
            _ => {}
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        let shared = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        self.position >= shared.kept.len() && shared.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let shared = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        let kept: usize = shared.kept[self.position.min(shared.kept.len())..]
            .iter()
            .map(|k| if let Kept::Data(data) = k { data.len() } else { 0 })
            .sum();
        let inner = shared.inner.size_hint();
        let kept = kept as u64;
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower() + kept);
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper + kept);
        }
        hint
    }
}

/// A gRPC response body that counts the status in its trailers as they pass.
pub struct Observed {
    inner: Incoming,
    route: String,
    metrics: Arc<HttpMetrics>,
}

impl Observed {
    /// Watches `inner`, the response of a request on `route`.
    pub fn new(inner: Incoming, route: &str, metrics: Arc<HttpMetrics>) -> Self {
        Self { inner, route: route.to_owned(), metrics }
    }
}

impl Body for Observed {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &poll
            && let Some(code) = frame.trailers_ref().and_then(super::grpc_code)
        {
            this.metrics.grpc(&this.route, code);
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
