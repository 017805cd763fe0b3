//! The `http` proxy mode (a firedrill extension): HTTP/1.1 and HTTP/2 cleartext (gRPC included),
//! forwarded request by request to the upstream in the protocol it speaks ([`UpstreamProtocol`]:
//! HTTP/2 over one multiplexed connection, HTTP/1.1 over pooled keep-alive connections), with
//! request-level toxics.
//!
//! An `http` proxy's listener hands each accepted connection to this engine, which speaks HTTP
//! on it and to the real upstream. TCP toxics still apply underneath, between the client and
//! firedrill: [`io::ClientIo`] puts a link under the connection when one is added. HTTP/2 is
//! served with prior knowledge; an HTTP/1.1 request asking to upgrade to `h2c` is answered in
//! HTTP/1.1, declining the upgrade as RFC 9113 allows (it deprecated the upgrade); other
//! upgrades (a WebSocket, say) become tunnels.
//!
//! - [`body`]: the client's request body (kept for a retry) and gRPC response bodies;
//! - [`upstream`]: the HTTP/2 upstream connection, retries, and the protocol probe;
//! - [`request`]: the request-level toxics and their matchers; [`metrics`]: per-route counters.

pub mod body;
pub mod io;
pub mod metrics;
pub mod request;
pub mod upstream;

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::body::ClientBody;
use self::io::ClientIo;
use self::metrics::HttpMetrics;
use self::request::Action;
use super::config::{HttpOptions, UpstreamProtocol};
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

/// What an `auto` proxy has learnt of its upstream's protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Learnt {
    /// Nothing yet.
    Nothing = 0,
    /// It refused the HTTP/2 preface: HTTP/1.1 only.
    Http1Only = 1,
    /// It speaks HTTP/2 (and maybe HTTP/1.1).
    SpeaksH2 = 2,
    /// It answered HTTP/1.1 in HTTP/2: HTTP/2 only.
    H2Only = 3,
}

impl Learnt {
    fn from_u8(value: u8) -> Self {
        [Self::Nothing, Self::Http1Only, Self::SpeaksH2, Self::H2Only]
            .into_iter()
            .nth(value.into())
            .unwrap_or(Self::Nothing)
    }
}

/// The protocol a request goes upstream in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    Http1,
    H2,
}

struct State {
    upstream: String,
    options: HttpOptions,
    learnt: AtomicU8,
    /// Held while the upstream is probed, so that concurrent requests probe it once.
    probing: tokio::sync::Mutex<()>,
    toxics: watch::Receiver<ToxicList>,
    metrics: Arc<HttpMetrics>,
    /// The proxy's own counters, where a request-level toxic's activations go beside the
    /// stream toxics' (`firedrill_toxic_activations_total`).
    activations: Arc<crate::proxy::metrics::ProxyMetrics>,
    rng: Mutex<SmallRng>,
    http1: Client<HttpConnector, ClientBody>,
    http2: upstream::H2Upstream,
}

/// The HTTP side of an `http` proxy: serves its accepted connections and forwards their
/// requests to the upstream.
pub struct HttpEngine {
    state: Arc<State>,
    gate: Arc<crate::proxy::gate::HeaderGate>,
}

/// One client connection, as its requests see it.
struct Connection {
    /// Ends the connection and any tunnel (upgrade) it became.
    cancel: CancellationToken,
    /// Set to end the connection with a reset (an `http_abort` with `http1: reset`).
    reset: Arc<AtomicBool>,
    tracker: TaskTracker,
}

impl HttpEngine {
    /// An engine forwarding to `upstream` as `options` say, under the proxy's `toxics`.
    pub fn new(
        upstream: String,
        options: HttpOptions,
        toxics: watch::Receiver<ToxicList>,
        metrics: Arc<HttpMetrics>,
        activations: Arc<crate::proxy::metrics::ProxyMetrics>,
        seed: u64,
    ) -> Self {
        let connect_timeout = Duration::from_millis(options.connect_timeout_ms);
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(connect_timeout));
        let learnt = match options.upstream_protocol {
            UpstreamProtocol::Auto => Learnt::Nothing,
            UpstreamProtocol::Http1 => Learnt::Http1Only,
            UpstreamProtocol::H2c => Learnt::H2Only,
        };
        let state = Arc::new(State {
            toxics,
            metrics,
            activations,
            rng: Mutex::new(SmallRng::seed_from_u64(seed)),
            http2: upstream::H2Upstream::new(upstream.clone(), connect_timeout),
            upstream,
            options,
            learnt: AtomicU8::new(learnt as u8),
            probing: tokio::sync::Mutex::new(()),
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
        let connection =
            Arc::new(Connection { cancel: cancel.clone(), reset: io.reset_flag(), tracker: tracker.clone() });
        // A client that never finishes its headers is cut, and slow ones cannot crowd out the
        // rest, as on the admin API.
        let waiter = self.gate.enter();
        let (state, arrival) = (self.state.clone(), Arc::clone(&waiter));
        let service = hyper::service::service_fn(move |request| {
            arrival.arrived();
            handle(state.clone(), connection.clone(), request)
        });
        let builder = crate::proxy::gate::server_builder();
        let served = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
        tokio::select! {
            result = served => if let Err(error) = result {
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
    /// Records what was learnt of the upstream, unless something else was learnt meanwhile.
    fn learn(&self, from: Learnt, to: Learnt) {
        let _ = self.learnt.compare_exchange(from as u8, to as u8, Ordering::Relaxed, Ordering::Relaxed);
    }

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

async fn handle(
    state: Arc<State>,
    connection: Arc<Connection>,
    request: Request<Incoming>,
) -> Result<Response<ProxyBody>, Aborted> {
    let started = tokio::time::Instant::now();
    let route = request.uri().path().to_owned();
    let grpc = is_grpc(request.headers());
    state.metrics.request(&route);
    // Toxics apply in the order they were added: the first matching one that draws its rate
    // answers (a delay holds the request, then the next ones are looked at).
    let toxics = state.toxics.borrow().clone();
    for toxic in toxics.iter() {
        let ToxicKind::Request(r) = &toxic.kind else { continue };
        if !r.matcher.matches(request.method(), &route, request.headers()) || !state.draw(r.rate * toxic.toxicity) {
            continue;
        }
        state.activations.toxic_activated(&toxic.name, toxic.kind.type_name());
        match &r.action {
            Action::Delay { latency, jitter } => {
                // A zero delay costs no timer (and no trip through the timer wheel).
                let delay = request::RequestToxic::delay(*latency, *jitter, state.unit());
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
            }
            Action::Abort { code, http1_reset } => {
                state.metrics.aborted(&route);
                if *http1_reset && request.version() != Version::HTTP_2 {
                    connection.reset.store(true, Ordering::Relaxed);
                }
                return Err(Aborted::with(*code));
            }
            Action::Error { status, body } => {
                let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
                let text = if body.is_empty() { format!("firedrill: injected {status}\n") } else { body.clone() };
                state.metrics.response(&route, status.as_u16(), started.elapsed());
                return Ok(answer(status, text));
            }
            Action::Grpc { code, message } => {
                state.metrics.response(&route, 200, started.elapsed());
                state.metrics.grpc(&route, *code);
                return Ok(grpc_answer(*code, message));
            }
        }
    }
    let call = Call { state: &state, route: &route, grpc, started };
    if request.method() == http::Method::CONNECT {
        state.metrics.client_error(&route);
        let text = "firedrill: an http proxy forwards requests to its upstream and does not tunnel CONNECT; \
                    put a tcp proxy in front of the service instead";
        let mut response = call.failure(StatusCode::METHOD_NOT_ALLOWED, 12, text);
        let allow = HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS");
        response.headers_mut().insert(http::header::ALLOW, allow);
        return Ok(response);
    }
    // An upgrade to `h2c` is declined (forwarded without it, answered in HTTP/1.1), as RFC 9113
    // allows; any other upgrade (a WebSocket) becomes a tunnel.
    let upgrade = request.headers().get(http::header::UPGRADE);
    if request.version() == Version::HTTP_11 && upgrade.is_some_and(|u| !u.as_bytes().eq_ignore_ascii_case(b"h2c")) {
        // Boxed: upgrades are rare, and the tunnel's future would otherwise enlarge every
        // request's (each is moved whole into its task).
        return Ok(Box::pin(call.tunnel(request, &connection)).await);
    }
    Ok(call.forward(request).await)
}

/// A plain answer from the proxy itself.
fn answer(status: StatusCode, text: impl Into<Bytes>) -> Response<ProxyBody> {
    let mut response = Response::new(full(text));
    *response.status_mut() = status;
    response
}

/// Removes the headers that describe one connection: the hop-by-hop ones, those the
/// `Connection` header names, and `TE` unless it is `trailers` (all HTTP/2 allows). An upgrade
/// keeps `Upgrade` and `Connection: upgrade`.
fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    let named: Vec<String> = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|n| n.trim().to_ascii_lowercase()))
        .filter(|n| !n.is_empty() && (!upgrade || n != "upgrade"))
        .collect();
    for name in named {
        headers.remove(name.as_str());
    }
    for name in HOP_BY_HOP {
        if !(upgrade && (name == "upgrade" || name == "connection")) {
            headers.remove(name);
        }
    }
    if upgrade {
        headers.insert(http::header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    if headers.get(http::header::TE).is_some_and(|te| te != "trailers") {
        headers.remove(http::header::TE);
    }
}

/// One request on its way upstream.
struct Call<'a> {
    state: &'a Arc<State>,
    route: &'a str,
    grpc: bool,
    started: tokio::time::Instant,
}

impl Call<'_> {
    /// An answer from the proxy itself (as a gRPC status for gRPC requests), counted.
    fn failure(&self, status: StatusCode, grpc_code: u8, text: &str) -> Response<ProxyBody> {
        if self.grpc {
            self.state.metrics.response(self.route, 200, self.started.elapsed());
            self.state.metrics.grpc(self.route, grpc_code);
            return grpc_answer(grpc_code, text);
        }
        self.state.metrics.response(self.route, status.as_u16(), self.started.elapsed());
        answer(status, format!("{text}\n"))
    }

    fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.state.options.connect_timeout_ms)
    }

    fn upstream_timeout(&self) -> Duration {
        Duration::from_millis(self.state.options.upstream_timeout_ms)
    }

    /// The request's head made ready for the upstream (an upgrade keeps `Upgrade`), or the
    /// client's `400` when it names no usable authority.
    fn target(&self, parts: &mut http::request::Parts, upgrade: bool) -> Result<Target, Box<Response<ProxyBody>>> {
        strip_hop_by_hop(&mut parts.headers, upgrade);
        Target::of(parts, &self.state.upstream, self.state.options.rewrite_host).ok_or_else(|| {
            self.state.metrics.client_error(self.route);
            Box::new(self.failure(StatusCode::BAD_REQUEST, 3, "firedrill: bad request target"))
        })
    }

    /// The protocol to go upstream in for a client speaking `version`, probing the upstream
    /// once when that decides it.
    async fn via(&self, version: Version) -> Via {
        let state = self.state;
        let learnt = Learnt::from_u8(state.learnt.load(Ordering::Relaxed));
        // The client's protocol unless the upstream is known not to speak it.
        if learnt == Learnt::Http1Only || (learnt != Learnt::H2Only && version != Version::HTTP_2) {
            return Via::Http1;
        }
        if learnt != Learnt::Nothing {
            return Via::H2;
        }
        // An HTTP/2 client, and nothing known yet: ask the upstream, once for all the requests
        // that arrive meanwhile.
        let _probing = state.probing.lock().await;
        let learnt = Learnt::from_u8(state.learnt.load(Ordering::Relaxed));
        if learnt != Learnt::Nothing {
            return if learnt == Learnt::Http1Only { Via::Http1 } else { Via::H2 };
        }
        match upstream::speaks_h2(&state.upstream, self.connect_timeout()).await {
            Some(false) => {
                tracing::info!(upstream = state.upstream, "the upstream speaks HTTP/1.1 only: HTTP/2 is translated");
                state.learn(learnt, Learnt::Http1Only);
                Via::Http1
            }
            Some(true) => {
                state.learn(learnt, Learnt::SpeaksH2);
                Via::H2
            }
            None => Via::H2,
        }
    }

    /// Forwards a request and relays the answer.
    async fn forward(&self, request: Request<Incoming>) -> Response<ProxyBody> {
        let state = self.state;
        let (mut parts, body) = request.into_parts();
        let target = match self.target(&mut parts, false) {
            Ok(target) => target,
            Err(refused) => return *refused,
        };
        let body = ClientBody::new(body);
        let broken = body.broken();
        // Learning the upstream's protocol counts against the upstream's time to answer.
        let attempt = async {
            let via = self.via(parts.version).await;
            if via == Via::Http1 && self.grpc {
                return None;
            }
            Some(self.send(via, &parts, &target, body).await)
        };
        let result = match tokio::time::timeout(self.upstream_timeout(), attempt).await {
            Err(_) => return self.timed_out(),
            Ok(Some(result)) => result,
            Ok(None) => {
                state.metrics.upstream_failure(self.route);
                return self.failure(
                    StatusCode::BAD_GATEWAY,
                    14,
                    "firedrill: gRPC needs an HTTP/2 upstream, and this proxy's upstream speaks HTTP/1.1 only \
                     (upstream_protocol http1, or it refused the HTTP/2 preface)",
                );
            }
        };
        match result {
            Ok(response) => self.relay(response),
            Err(error) if error.is_timeout() => self.timed_out(),
            // The client broke its own request body (a malformed chunk, a reset half-way): its
            // error, answered 400 and counted as the client's, never as the upstream's.
            Err(error) if broken.load(Ordering::Relaxed) => {
                tracing::debug!(%error, "the client's request body failed");
                state.metrics.client_error(self.route);
                self.failure(StatusCode::BAD_REQUEST, 3, "firedrill: the request body was malformed or cut short")
            }
            Err(error) => {
                tracing::debug!(%error, upstream = state.upstream, "upstream request failed");
                if error.is_connect() && state.options.upstream_protocol == UpstreamProtocol::Auto {
                    // Whatever answers next on that address is learnt afresh.
                    state.learnt.store(Learnt::Nothing as u8, Ordering::Relaxed);
                }
                state.metrics.upstream_failure(self.route);
                self.failure(StatusCode::BAD_GATEWAY, 14, "firedrill: the upstream could not be reached")
            }
        }
    }

    /// Sends the request in `via`, and once more in HTTP/2 when an `auto` upstream turns out to
    /// answer HTTP/1.1 in HTTP/2.
    async fn send(
        &self,
        via: Via,
        parts: &http::request::Parts,
        target: &Target,
        body: ClientBody,
    ) -> Result<Response<Incoming>, upstream::UpstreamError> {
        let state = self.state;
        let retried = || state.metrics.retried(self.route);
        if via == Via::H2 {
            // Boxed: with its retries the HTTP/2 path's future is 2 KB, and one allocation costs
            // less than moving that with every request's future (HTTP/1.1 requests too).
            return Box::pin(state.http2.request(target.h2(parts, body), retried)).await;
        }
        let kept = body.replay();
        let error = match state.http1.request(target.http1(parts, body)).await {
            Ok(response) => return Ok(response),
            Err(error) => upstream::UpstreamError::from(error),
        };
        let learnt = Learnt::from_u8(state.learnt.load(Ordering::Relaxed));
        if !error.is_not_http1() || !matches!(learnt, Learnt::Nothing | Learnt::SpeaksH2) {
            return Err(error);
        }
        if upstream::speaks_h2(&state.upstream, self.connect_timeout()).await != Some(true) {
            return Err(error);
        }
        tracing::info!(upstream = state.upstream, "the upstream speaks HTTP/2 only: HTTP/1.1 is translated");
        state.learn(learnt, Learnt::H2Only);
        // This request goes again in HTTP/2 if its body was kept; the next ones go in it anyway.
        let Some(body) = kept.and_then(|k| k.replay()) else { return Err(error) };
        retried();
        Box::pin(state.http2.request(target.h2(parts, body), retried)).await
    }

    fn timed_out(&self) -> Response<ProxyBody> {
        // No response headers in time: 504, or gRPC DEADLINE_EXCEEDED, as a gateway answers.
        tracing::debug!(upstream = self.state.upstream, "upstream timed out");
        self.state.metrics.timed_out(self.route);
        self.failure(StatusCode::GATEWAY_TIMEOUT, 4, "firedrill: the upstream did not answer in time")
    }

    /// The upstream's response on its way to the client.
    fn relay(&self, response: Response<Incoming>) -> Response<ProxyBody> {
        let (mut parts, body) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers, false);
        self.state.metrics.response(self.route, parts.status.as_u16(), self.started.elapsed());
        let body = if self.grpc {
            if let Some(code) = grpc_code(&parts.headers) {
                self.state.metrics.grpc(self.route, code);
            }
            body::Observed::new(body, self.route, self.state.metrics.clone()).boxed()
        } else {
            body.boxed()
        };
        Response::from_parts(parts, body)
    }

    /// An HTTP/1.1 upgrade (a WebSocket, say): the request goes upstream on a connection of its
    /// own; once the upstream switches protocols, the two connections are joined byte for byte
    /// (TCP toxics still apply on the client's side).
    async fn tunnel(&self, mut request: Request<Incoming>, connection: &Connection) -> Response<ProxyBody> {
        let state = self.state;
        let from_client = hyper::upgrade::on(&mut request);
        let (mut parts, body) = request.into_parts();
        let target = match self.target(&mut parts, true) {
            Ok(target) => target,
            Err(refused) => return *refused,
        };
        let mut outgoing = target.http1(&parts, ClientBody::new(body));
        *outgoing.uri_mut() = http::Uri::from(target.path.clone());
        let exchange = async {
            let stream = upstream::dial(&state.upstream, self.connect_timeout()).await?;
            let (mut sender, link) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(async move {
                if let Err(error) = link.with_upgrades().await {
                    tracing::debug!(%error, "upstream upgrade connection ended with an error");
                }
            });
            Ok::<_, upstream::UpstreamError>(sender.send_request(outgoing).await?)
        };
        let mut response = match tokio::time::timeout(self.upstream_timeout(), exchange).await {
            Err(_) => return self.timed_out(),
            Ok(Err(error)) if error.is_timeout() => return self.timed_out(),
            Ok(Err(error)) => {
                tracing::debug!(%error, upstream = state.upstream, "upstream upgrade failed");
                state.metrics.upstream_failure(self.route);
                return self.failure(StatusCode::BAD_GATEWAY, 14, "firedrill: the upstream could not be reached");
            }
            Ok(Ok(response)) => response,
        };
        if response.status() != StatusCode::SWITCHING_PROTOCOLS {
            return self.relay(response);
        }
        let from_upstream = hyper::upgrade::on(&mut response);
        let cancel = connection.cancel.clone();
        connection.tracker.spawn(async move {
            let (Ok(client), Ok(upstream)) = tokio::join!(from_client, from_upstream) else {
                tracing::debug!("an upgrade did not complete on both sides");
                return;
            };
            let (mut client, mut upstream) = (TokioIo::new(client), TokioIo::new(upstream));
            tokio::select! {
                result = tokio::io::copy_bidirectional(&mut client, &mut upstream) => if let Err(error) = result {
                    tracing::debug!(%error, "an upgraded connection ended with an error");
                },
                () = cancel.cancelled() => {}
            }
        });
        let (mut parts, _) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers, true);
        state.metrics.response(self.route, 101, self.started.elapsed());
        Response::from_parts(parts, full(Bytes::new()))
    }
}

/// Where a request goes: the path, and the authority the upstream sees.
struct Target {
    path: http::uri::PathAndQuery,
    /// `Host` / `:authority` for the upstream: the client's unless rewritten.
    authority: http::uri::Authority,
    upstream: http::uri::Authority,
}

impl Target {
    /// `None` when the request names no usable authority and the upstream's is not one either.
    fn of(parts: &http::request::Parts, upstream: &str, rewrite: bool) -> Option<Self> {
        let path = parts.uri.path_and_query().cloned().unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
        let client = parts.uri.authority().cloned().or_else(|| {
            let host = parts.headers.get(http::header::HOST)?;
            http::uri::Authority::try_from(host.as_bytes()).ok()
        });
        let upstream = http::uri::Authority::try_from(upstream).ok()?;
        let authority = match client {
            Some(authority) if !rewrite => authority,
            _ => upstream.clone(),
        };
        Some(Self { path, authority, upstream })
    }

    /// The request in HTTP/2: the authority in `:authority`, no `Host`.
    fn h2(&self, parts: &http::request::Parts, body: ClientBody) -> Request<ClientBody> {
        let mut request = Self::with_head(parts, body, self.uri(&self.authority), Version::HTTP_2);
        request.headers_mut().remove(http::header::HOST);
        request
    }

    /// The request in HTTP/1.1: dialled at the upstream, the authority in `Host`.
    fn http1(&self, parts: &http::request::Parts, body: ClientBody) -> Request<ClientBody> {
        let mut request = Self::with_head(parts, body, self.uri(&self.upstream), Version::HTTP_11);
        if let Ok(host) = HeaderValue::from_str(self.authority.as_str()) {
            request.headers_mut().insert(http::header::HOST, host);
        }
        request
    }

    fn uri(&self, authority: &http::uri::Authority) -> http::Uri {
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(http::uri::Scheme::HTTP);
        parts.authority = Some(authority.clone());
        parts.path_and_query = Some(self.path.clone());
        http::Uri::from_parts(parts).unwrap_or_default()
    }

    fn with_head(
        parts: &http::request::Parts,
        body: ClientBody,
        uri: http::Uri,
        version: Version,
    ) -> Request<ClientBody> {
        let mut request = Request::new(body);
        *request.method_mut() = parts.method.clone();
        *request.uri_mut() = uri;
        *request.version_mut() = version;
        *request.headers_mut() = parts.headers.clone();
        request
    }
}

#[cfg(test)]
mod tests {
    /// The size of the future an `async fn` taking three arguments returns.
    fn future_size<A, B, C, F: std::future::Future>(_: impl Fn(A, B, C) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// Every request's future is moved whole several times on its way into its task (and its
    /// stage is overwritten whole when it ends), so its size is CPU per request: at 4.7 KB the
    /// copies were 11 % of the proxy's CPU under 64 streams. The rare paths (a tunnel, a probe,
    /// dialling, the HTTP/2 path's retries) are boxed to keep it small.
    #[test]
    fn a_requests_future_stays_small() {
        let size = future_size(super::handle);
        assert!(size <= 2048, "a request's future grew to {size} bytes: box the rare path that grew it");
    }
}
