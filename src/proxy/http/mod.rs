//! The `http` proxy mode (a firedrill extension): HTTP/1.1 and HTTP/2 cleartext (gRPC included),
//! forwarded request by request to the upstream (HTTP/2 over one multiplexed connection, HTTP/1.x
//! over pooled keep-alive connections), with request-level toxics.
//!
//! An `http` proxy's listener hands each accepted connection to this engine, which speaks HTTP
//! on it and to the real upstream. TCP toxics still apply underneath, between the client and
//! firedrill: [`io::ClientIo`] puts a link under the connection when one is added. HTTP/2 is served with prior knowledge; an HTTP/1.1 request asking to
//! upgrade to `h2c` is answered in HTTP/1.1, declining the upgrade as RFC 9113 allows (it
//! deprecated the upgrade).

pub mod io;
pub mod metrics;
pub mod request;
pub mod upstream;

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::io::ClientIo;
use self::metrics::HttpMetrics;
use self::request::Action;
use super::link::{LinkShared, ToxicList};
use super::toxic::ToxicKind;

/// A response body of any origin.
type ProxyBody = BoxBody<Bytes, hyper::Error>;

/// Headers that describe one connection, never forwarded.
const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "proxy-authenticate",
    "proxy-authorization",
];

/// The request was reset on purpose (`http_abort`): hyper resets the HTTP/2 stream with the
/// reason it finds among the error's causes (the toxic's `error_code`), or closes the HTTP/1.1
/// connection without an answer.
#[derive(Debug)]
struct Aborted(h2::Error);

impl std::fmt::Display for Aborted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("aborted by an http_abort toxic")
    }
}

impl std::error::Error for Aborted {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

impl Aborted {
    fn with(code: request::ResetCode) -> Self {
        let reason = match code {
            request::ResetCode::InternalError => h2::Reason::INTERNAL_ERROR,
            request::ResetCode::RefusedStream => h2::Reason::REFUSED_STREAM,
            request::ResetCode::Cancel => h2::Reason::CANCEL,
        };
        Self(h2::Error::from(reason))
    }
}

struct State {
    upstream: String,
    /// The upstream's time to send its response headers.
    timeout: std::time::Duration,
    toxics: watch::Receiver<ToxicList>,
    metrics: Arc<HttpMetrics>,
    rng: Mutex<SmallRng>,
    http1: Client<HttpConnector, Watched>,
    http2: upstream::H2Upstream,
}

/// The HTTP side of an `http` proxy: serves its accepted connections and forwards their
/// requests to the upstream.
pub struct HttpEngine {
    state: Arc<State>,
    gate: Arc<crate::proxy::gate::HeaderGate>,
}

impl HttpEngine {
    /// An engine forwarding to `upstream`, under the proxy's `toxics`.
    pub fn new(
        upstream: String,
        timeout: std::time::Duration,
        toxics: watch::Receiver<ToxicList>,
        metrics: Arc<HttpMetrics>,
        seed: u64,
    ) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let state = Arc::new(State {
            toxics,
            metrics,
            rng: Mutex::new(SmallRng::seed_from_u64(seed)),
            http2: upstream::H2Upstream::new(upstream.clone()),
            upstream,
            timeout,
            http1: Client::builder(TokioExecutor::new()).build(connector),
        });
        Self { state, gate: crate::proxy::gate::HeaderGate::new() }
    }

    /// Serves HTTP on an accepted client connection until it ends or `cancel` fires. TCP toxics
    /// apply underneath (see [`ClientIo`]): `link`, `seed` and `tracker` are for that.
    pub async fn serve(
        &self,
        client: TcpStream,
        link: LinkShared,
        seed: u64,
        cancel: CancellationToken,
        tracker: &TaskTracker,
    ) {
        let io = ClientIo::new(client, link, seed, cancel.clone(), tracker.clone());
        // A client that never finishes its headers is cut, and slow ones cannot crowd out the
        // rest, as on the admin API.
        let waiter = self.gate.enter();
        let (state, arrival) = (self.state.clone(), Arc::clone(&waiter));
        let service = hyper::service::service_fn(move |request| {
            arrival.arrived();
            handle(state.clone(), request)
        });
        let builder = crate::proxy::gate::server_builder();
        let connection = builder.serve_connection(TokioIo::new(io), service);
        tokio::select! {
            result = connection => if let Err(error) = result {
                tracing::debug!(%error, "http connection ended with an error");
            },
            () = waiter.evicted().cancelled() => {}
            () = cancel.cancelled() => {}
        }
    }
}

fn is_grpc(headers: &HeaderMap) -> bool {
    headers.get(http::header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

fn grpc_code(headers: &HeaderMap) -> Option<u8> {
    headers.get("grpc-status").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok())
}

fn full(body: impl Into<Bytes>) -> ProxyBody {
    Full::new(body.into()).map_err(|never| match never {}).boxed()
}

/// A trailers-only gRPC answer: HEADERS with `:status 200` and the gRPC status, ending the stream.
fn grpc_answer(code: u8, message: &str) -> Response<ProxyBody> {
    let mut response = Response::new(full(Bytes::new()));
    let headers = response.headers_mut();
    headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert("grpc-status", HeaderValue::from(u16::from(code)));
    let encoded: String = message
        .bytes()
        .map(|b| if (0x20..0x7f).contains(&b) && b != b'%' { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect();
    if let Ok(value) = HeaderValue::from_str(&encoded)
        && !encoded.is_empty()
    {
        headers.insert("grpc-message", value);
    }
    response
}

impl State {
    /// Draws whether a toxic with `rate` (× its toxicity) hits this request.
    fn draw(&self, probability: f64) -> bool {
        probability >= 1.0
            || (probability > 0.0
                && self.rng.lock().unwrap_or_else(std::sync::PoisonError::into_inner).random_bool(probability))
    }

    fn unit(&self) -> f64 {
        self.rng.lock().unwrap_or_else(std::sync::PoisonError::into_inner).random::<f64>()
    }
}

async fn handle(state: Arc<State>, request: Request<Incoming>) -> Result<Response<ProxyBody>, Aborted> {
    let started = tokio::time::Instant::now();
    let route = request.uri().path().to_owned();
    let grpc = is_grpc(request.headers());
    state.metrics.request(&route);
    let toxics = state.toxics.borrow().clone();
    for toxic in toxics.iter() {
        let ToxicKind::Request(r) = &toxic.kind else { continue };
        if !r.matcher.matches(request.method(), &route, request.headers()) || !state.draw(r.rate * toxic.toxicity) {
            continue;
        }
        match &r.action {
            Action::Delay { latency, jitter } => {
                // A zero delay costs no timer (and no trip through the timer wheel).
                let delay = request::RequestToxic::delay(*latency, *jitter, state.unit());
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
            }
            Action::Abort { code } => {
                state.metrics.aborted(&route);
                return Err(Aborted::with(*code));
            }
            Action::Error { status, body } => {
                let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
                let text = if body.is_empty() { format!("firedrill: injected {status}\n") } else { body.clone() };
                let mut response = Response::new(full(text));
                *response.status_mut() = status;
                state.metrics.response(&route, status.as_u16(), started.elapsed());
                return Ok(response);
            }
            Action::Grpc { code, message } => {
                state.metrics.response(&route, 200, started.elapsed());
                state.metrics.grpc(&route, *code);
                return Ok(grpc_answer(*code, message));
            }
        }
    }
    Ok(forward(&state, request, &route, grpc, started).await)
}

async fn forward(
    state: &Arc<State>,
    request: Request<Incoming>,
    route: &str,
    grpc: bool,
    started: tokio::time::Instant,
) -> Response<ProxyBody> {
    let (mut parts, body) = request.into_parts();
    let path = parts.uri.path_and_query().cloned().unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
    // HTTP/2 goes over the proxy's own upstream connection whatever the URI says, so the
    // client's `:authority` passes unchanged, as `Host` does for HTTP/1.1 (whose client dials
    // the URI's authority: the upstream).
    let authority = match parts.uri.authority() {
        Some(authority) if parts.version == Version::HTTP_2 => authority.as_str().to_owned(),
        _ => state.upstream.clone(),
    };
    let uri = http::Uri::builder().scheme("http").authority(authority).path_and_query(path).build();
    let Ok(uri) = uri else {
        let mut response = Response::new(full("firedrill: bad request target\n"));
        *response.status_mut() = StatusCode::BAD_REQUEST;
        return response;
    };
    parts.uri = uri;
    for name in HOP_BY_HOP {
        parts.headers.remove(name);
    }
    let broken = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let request = Request::from_parts(parts, Watched { inner: body, broken: Arc::clone(&broken) });
    let call = async {
        if request.version() == Version::HTTP_2 {
            state.http2.request(request).await.map_err(|e| e.to_string())
        } else {
            let mut request = request;
            *request.version_mut() = Version::HTTP_11;
            state.http1.request(request).await.map_err(|e| e.to_string())
        }
    };
    let Ok(answer) = tokio::time::timeout(state.timeout, call).await else {
        // No response headers in time: 504, or gRPC DEADLINE_EXCEEDED, as a gateway answers.
        tracing::debug!(upstream = state.upstream, timeout = ?state.timeout, "upstream timed out");
        state.metrics.timed_out(route);
        if grpc {
            state.metrics.response(route, 200, started.elapsed());
            state.metrics.grpc(route, 4);
            return grpc_answer(4, "firedrill: the upstream did not answer in time");
        }
        state.metrics.response(route, 504, started.elapsed());
        let mut response = Response::new(full("firedrill: the upstream did not answer in time\n"));
        *response.status_mut() = StatusCode::GATEWAY_TIMEOUT;
        return response;
    };
    match answer {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            for name in HOP_BY_HOP {
                parts.headers.remove(name);
            }
            state.metrics.response(route, parts.status.as_u16(), started.elapsed());
            let body = if grpc {
                if let Some(code) = grpc_code(&parts.headers) {
                    state.metrics.grpc(route, code);
                }
                Observed { inner: body, route: route.to_owned(), metrics: state.metrics.clone() }.boxed()
            } else {
                body.boxed()
            };
            Response::from_parts(parts, body)
        }
        // The client broke its own request body (a malformed chunk, a reset half-way): its
        // error, answered 400 and counted as the client's, never as the upstream's.
        Err(error) if broken.load(std::sync::atomic::Ordering::Relaxed) => {
            tracing::debug!(%error, "the client's request body failed");
            state.metrics.client_error(route);
            state.metrics.response(route, 400, started.elapsed());
            let mut response = Response::new(full("firedrill: the request body was malformed or cut short\n"));
            *response.status_mut() = StatusCode::BAD_REQUEST;
            response
        }
        Err(error) => {
            tracing::debug!(%error, upstream = state.upstream, "upstream request failed");
            state.metrics.upstream_failure(route);
            if grpc {
                state.metrics.response(route, 200, started.elapsed());
                state.metrics.grpc(route, 14);
                grpc_answer(14, "firedrill: the upstream could not be reached")
            } else {
                state.metrics.response(route, 502, started.elapsed());
                let mut response = Response::new(full("firedrill: the upstream could not be reached\n"));
                *response.status_mut() = StatusCode::BAD_GATEWAY;
                response
            }
        }
    }
}

/// A client's request body on its way upstream, remembering whether the client broke it.
pub struct Watched {
    inner: Incoming,
    broken: Arc<std::sync::atomic::AtomicBool>,
}

impl Body for Watched {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Err(_))) = &poll {
            this.broken.store(true, std::sync::atomic::Ordering::Relaxed);
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

/// A gRPC response body that counts the status in its trailers as they pass.
struct Observed {
    inner: Incoming,
    route: String,
    metrics: Arc<HttpMetrics>,
}

impl Body for Observed {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &poll
            && let Some(code) = frame.trailers_ref().and_then(grpc_code)
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
