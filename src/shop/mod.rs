//! The example shop (`examples/shop`): small services to practise on, run as
//! `firedrill shop <service>` so one binary carries them. `gateway` (HTTP, what users call) →
//! `wallet` (gRPC) → `partner` (HTTP, the external payment partner) and `ledger` (a store). Each
//! has `/healthz`, JSON logs on stdout and Prometheus metrics on `/metrics`; each reaches the
//! next through a firedrill proxy (`proxies/shop.json`), which is where drills inject faults.
//!
//! The shop tells the truth about itself: every request it serves is counted and logged, also
//! one its client gave up on (status 499), and every call to an upstream is counted by outcome
//! (`ok`, `error`, `timeout`) with a latency histogram per upstream. The gateway and the wallet
//! have remediation levers (`/admin/levers`): a per-upstream timeout, retries and a fallback,
//! which a responder can pull while the fault stays in.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// The generated types and stubs of `proto/shop.proto`.
#[allow(missing_docs, clippy::pedantic, clippy::all)]
pub mod proto {
    tonic::include_proto!("shop.v1");
}

/// How long a service waits for the next one before giving up.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// Which service to run.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Service {
    /// HTTP entry point: `GET /pay?amount=CENTS` pays through the wallet.
    Gateway {
        /// Where to listen.
        #[arg(long)]
        listen: SocketAddr,
        /// The wallet (gRPC), `host:port` — through its firedrill proxy.
        #[arg(long)]
        wallet: String,
    },
    /// gRPC `shop.v1.Wallet/Pay`: charges the partner, books the ledger.
    Wallet {
        /// Where to listen (gRPC and `/healthz`, `/metrics` on one port).
        #[arg(long)]
        listen: SocketAddr,
        /// The payment partner (HTTP), `host:port`.
        #[arg(long)]
        partner: String,
        /// The ledger (HTTP), `host:port`.
        #[arg(long)]
        ledger: String,
    },
    /// The external payment partner: `POST /charge`.
    Partner {
        /// Where to listen.
        #[arg(long)]
        listen: SocketAddr,
    },
    /// The ledger store: `POST /entries`, `GET /entries/count`.
    Ledger {
        /// Where to listen.
        #[arg(long)]
        listen: SocketAddr,
    },
}

/// Upper bounds (seconds) of the latency histograms' buckets.
const BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0];

/// Calls to one upstream: outcomes and a latency histogram.
#[derive(Default)]
struct Calls {
    outcomes: BTreeMap<&'static str, u64>,
    /// Cumulative counts per bucket of [`BUCKETS`], then the sum of seconds.
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// Requests by route and status, and calls by upstream, for `/metrics`.
#[derive(Default)]
struct Counters {
    service: &'static str,
    by: Mutex<BTreeMap<(String, u16), u64>>,
    seconds: Mutex<BTreeMap<String, f64>>,
    calls: Mutex<BTreeMap<String, Calls>>,
}

/// A request being served: recorded when it finishes, or as 499 (the client closed the
/// request) if the client gave up first and the handler was dropped.
struct Serving<'a> {
    counters: &'a Counters,
    route: &'static str,
    started: Instant,
    done: bool,
}

impl Serving<'_> {
    fn finish(mut self, status: u16) {
        self.done = true;
        self.counters.record(self.route, status, self.started.elapsed());
    }
}

impl Drop for Serving<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.counters.record(self.route, CLIENT_CLOSED, self.started.elapsed());
        }
    }
}

/// A call to an upstream in progress: counted when it ends, or as `cancelled` if the request
/// it serves was abandoned first (the call's future dropped).
struct Calling<'a> {
    counters: &'a Counters,
    upstream: &'a str,
    started: Instant,
    done: bool,
}

impl Calling<'_> {
    fn end(mut self, outcome: &'static str) {
        self.done = true;
        self.counters.call(self.upstream, outcome, self.started.elapsed());
    }
}

impl Drop for Calling<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.counters.call(self.upstream, "cancelled", self.started.elapsed());
        }
    }
}

/// The status recorded for a request its client abandoned (nginx's convention).
const CLIENT_CLOSED: u16 = 499;

impl Counters {
    fn serving(&self, route: &'static str) -> Serving<'_> {
        Serving { counters: self, route, started: Instant::now(), done: false }
    }

    fn calling<'a>(&'a self, upstream: &'a str) -> Calling<'a> {
        Calling { counters: self, upstream, started: Instant::now(), done: false }
    }

    /// One call to `upstream`: `ok`, `error`, `timeout` or `cancelled`, and how long it took.
    fn call(&self, upstream: &str, outcome: &'static str, took: Duration) {
        let seconds = took.as_secs_f64();
        {
            let mut calls = self.calls.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let calls = calls.entry(upstream.to_owned()).or_default();
            *calls.outcomes.entry(outcome).or_default() += 1;
            for (bucket, bound) in calls.buckets.iter_mut().zip(BUCKETS) {
                *bucket += u64::from(seconds <= bound);
            }
            calls.count += 1;
            calls.sum += seconds;
        }
        if outcome == "ok" {
            tracing::debug!(service = self.service, upstream, took_ms = took.as_millis() as u64, "call");
        } else {
            tracing::warn!(service = self.service, upstream, outcome, took_ms = took.as_millis() as u64, "call failed");
        }
    }

    fn record(&self, route: &str, status: u16, took: Duration) {
        *self
            .by
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry((route.to_owned(), status))
            .or_default() += 1;
        *self.seconds.lock().unwrap_or_else(std::sync::PoisonError::into_inner).entry(route.to_owned()).or_default() +=
            took.as_secs_f64();
        let took_ms = took.as_millis() as u64;
        if status == CLIENT_CLOSED {
            tracing::warn!(
                service = self.service,
                route,
                status,
                took_ms,
                "request abandoned: the client gave up first"
            );
        } else if status >= 400 {
            tracing::warn!(service = self.service, route, status, took_ms, "request failed");
        } else {
            tracing::info!(service = self.service, route, status, took_ms, "request");
        }
    }

    fn render(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::from(
            "# HELP shop_requests_total Requests served, by route and status.\n# TYPE shop_requests_total counter\n",
        );
        for ((route, status), n) in self.by.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter() {
            let _ = writeln!(
                out,
                "shop_requests_total{{service=\"{}\",route=\"{route}\",status=\"{status}\"}} {n}",
                self.service
            );
        }
        out.push_str("# HELP shop_request_seconds_total Time spent serving, by route.\n# TYPE shop_request_seconds_total counter\n");
        for (route, s) in self.seconds.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter() {
            let _ = writeln!(out, "shop_request_seconds_total{{service=\"{}\",route=\"{route}\"}} {s}", self.service);
        }
        let calls = self.calls.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        out.push_str(
            "# HELP shop_upstream_calls_total Calls to upstreams, by outcome (ok, error, timeout, cancelled).\n\
             # TYPE shop_upstream_calls_total counter\n",
        );
        let service = self.service;
        for (upstream, c) in calls.iter() {
            for (outcome, n) in &c.outcomes {
                let _ = writeln!(
                    out,
                    "shop_upstream_calls_total{{service=\"{service}\",upstream=\"{upstream}\",outcome=\"{outcome}\"}} {n}"
                );
            }
        }
        out.push_str(
            "# HELP shop_upstream_call_duration_seconds Time of calls to upstreams, failed ones included.\n\
             # TYPE shop_upstream_call_duration_seconds histogram\n",
        );
        for (upstream, c) in calls.iter() {
            let labels = format!("service=\"{service}\",upstream=\"{upstream}\"");
            for (n, bound) in c.buckets.iter().zip(BUCKETS) {
                let _ = writeln!(out, "shop_upstream_call_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {n}");
            }
            let _ = writeln!(out, "shop_upstream_call_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}", c.count);
            let _ = writeln!(out, "shop_upstream_call_duration_seconds_sum{{{labels}}} {}", c.sum);
            let _ = writeln!(out, "shop_upstream_call_duration_seconds_count{{{labels}}} {}", c.count);
        }
        out
    }
}

/// What a responder can change while the fault stays in (`GET`/`POST /admin/levers`, JSON).
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Levers {
    /// How long a call to an upstream may take, ms.
    pub timeout_ms: u64,
    /// Further tries after a failed call.
    pub retries: u32,
    /// When the upstream fails anyway: the gateway accepts the payment as pending (202), the
    /// wallet defers the partner's charge or the ledger's booking.
    pub fallback: bool,
}

impl Default for Levers {
    fn default() -> Self {
        Self { timeout_ms: u64::try_from(CALL_TIMEOUT.as_millis()).unwrap_or(u64::MAX), retries: 0, fallback: false }
    }
}

/// A change of levers: any subset of the fields.
#[derive(Debug, Clone, Copy, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LeverChange {
    timeout_ms: Option<u64>,
    retries: Option<u32>,
    fallback: Option<bool>,
}

/// One line of a payment's receipt, and the size of a receipt the wallet books with the ledger.
const RECEIPT_LINE: &str = "item=checkout;qty=1;tax=0;";
const RECEIPT_BYTES: usize = 12 * 1024;

/// The most retries a lever allows: a retry storm is a fault of its own.
const MAX_RETRIES: u32 = 5;

type SharedLevers = Arc<Mutex<Levers>>;

fn levers_of(shared: &SharedLevers) -> Levers {
    *shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `/admin/levers`: the levers as JSON, and a partial change by `POST`.
fn admin(service: &'static str, levers: SharedLevers) -> Router {
    Router::new()
        .route(
            "/admin/levers",
            get(|State(l): State<SharedLevers>| async move { Json(levers_of(&l)) }).post(
                move |State(l): State<SharedLevers>, body: Bytes| async move {
                    let change: LeverChange = match serde_json::from_slice(&body) {
                        Ok(change) => change,
                        Err(e) => {
                            let error = format!(
                                "{e}; send JSON with any of timeout_ms (1 to 60000), retries (0 to {MAX_RETRIES}), fallback"
                            );
                            return (StatusCode::BAD_REQUEST, Json(serde_json::json!({"error": error}))).into_response();
                        }
                    };
                    if change.timeout_ms.is_some_and(|t| t == 0 || t > 60_000)
                        || change.retries.is_some_and(|r| r > MAX_RETRIES)
                    {
                        let error = format!("timeout_ms is 1 to 60000, retries 0 to {MAX_RETRIES}");
                        return (StatusCode::BAD_REQUEST, Json(serde_json::json!({"error": error}))).into_response();
                    }
                    let now = {
                        let mut levers = l.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                        levers.timeout_ms = change.timeout_ms.unwrap_or(levers.timeout_ms);
                        levers.retries = change.retries.unwrap_or(levers.retries);
                        levers.fallback = change.fallback.unwrap_or(levers.fallback);
                        *levers
                    };
                    tracing::warn!(service, timeout_ms = now.timeout_ms, retries = now.retries, fallback = now.fallback, "levers changed");
                    Json(now).into_response()
                },
            ),
        )
        .with_state(levers)
}

fn common(counters: Arc<Counters>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(|State(c): State<Arc<Counters>>| async move { c.render() }))
        .with_state(counters)
}

async fn serve(listen: SocketAddr, app: Router) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {listen}: {e}")))?;
    tracing::info!(%listen, "listening");
    axum::serve(listener, app).with_graceful_shutdown(crate::signal::shutdown_signal()).await
}

/// Runs one service until SIGTERM or Ctrl-C.
pub async fn run(service: Service) -> std::io::Result<()> {
    match service {
        Service::Gateway { listen, wallet } => gateway(listen, wallet).await,
        Service::Wallet { listen, partner, ledger } => wallet(listen, partner, ledger).await,
        Service::Partner { listen } => {
            let counters = Arc::new(Counters { service: "partner", ..Counters::default() });
            let c = counters.clone();
            let app = Router::new()
                .route(
                    "/charge",
                    post(move || {
                        let c = c.clone();
                        async move {
                            c.serving("/charge").finish(200);
                            Json(serde_json::json!({"ok": true}))
                        }
                    }),
                )
                .merge(common(counters));
            serve(listen, app).await
        }
        Service::Ledger { listen } => {
            let counters = Arc::new(Counters { service: "ledger", ..Counters::default() });
            let entries = Arc::new(AtomicU64::new(0));
            let (c, e) = (counters.clone(), entries.clone());
            let app = Router::new()
                .route(
                    "/entries",
                    post(move || {
                        let (c, e) = (c.clone(), e.clone());
                        async move {
                            e.fetch_add(1, Ordering::Relaxed);
                            c.serving("/entries").finish(201);
                            StatusCode::CREATED
                        }
                    }),
                )
                .route("/entries/count", get(move || async move { entries.load(Ordering::Relaxed).to_string() }))
                .merge(common(counters));
            serve(listen, app).await
        }
    }
}

async fn gateway(listen: SocketAddr, wallet: String) -> std::io::Result<()> {
    let counters = Arc::new(Counters { service: "gateway", ..Counters::default() });
    let levers = SharedLevers::default();
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{wallet}"))
        .map_err(std::io::Error::other)?
        .connect_timeout(CALL_TIMEOUT)
        .connect_lazy();
    let client = proto::wallet_client::WalletClient::new(channel);
    let (c, l) = (counters.clone(), levers.clone());
    let app = Router::new()
        .route(
            "/pay",
            get(move |query: axum::extract::Query<BTreeMap<String, String>>| {
                let (c, l, client) = (c.clone(), l.clone(), client.clone());
                async move {
                    let serving = c.serving("/pay");
                    let amount = query.get("amount").and_then(|a| a.parse().ok()).unwrap_or(1000);
                    let levers = levers_of(&l);
                    let mut outcome = Err((StatusCode::BAD_GATEWAY, String::new()));
                    for _ in 0..=levers.retries {
                        outcome = pay_once(&c, client.clone(), amount, &levers).await;
                        if outcome.is_ok() {
                            break;
                        }
                    }
                    let (status, body) = match outcome {
                        Ok(id) => (StatusCode::OK, serde_json::json!({"payment_id": id})),
                        // The fallback lever: take the payment now, settle it once the wallet is back.
                        Err((_, error)) if levers.fallback => {
                            tracing::warn!(
                                service = "gateway",
                                error,
                                "wallet failed; payment accepted as pending (fallback)"
                            );
                            (StatusCode::ACCEPTED, serde_json::json!({"pending": true, "error": error}))
                        }
                        Err((status, error)) => (status, serde_json::json!({"error": error})),
                    };
                    serving.finish(status.as_u16());
                    (status, Json(body)).into_response()
                }
            }),
        )
        .merge(admin("gateway", levers))
        .merge(common(counters));
    serve(listen, app).await
}

/// One call of the gateway to the wallet, counted by outcome.
async fn pay_once(
    counters: &Counters,
    mut client: proto::wallet_client::WalletClient<tonic::transport::Channel>,
    amount: u64,
    levers: &Levers,
) -> Result<String, (StatusCode, String)> {
    let calling = counters.calling("wallet");
    let call = client.pay(proto::PayRequest { amount_cents: amount });
    let result = match tokio::time::timeout(Duration::from_millis(levers.timeout_ms), call).await {
        Ok(Ok(reply)) => Ok(reply.into_inner().payment_id),
        Ok(Err(e)) if e.code() == tonic::Code::Unavailable => {
            Err((StatusCode::SERVICE_UNAVAILABLE, format!("wallet: {}", e.message())))
        }
        Ok(Err(e)) => Err((StatusCode::BAD_GATEWAY, format!("wallet: {:?}: {}", e.code(), e.message()))),
        Err(_) => Err((StatusCode::GATEWAY_TIMEOUT, "the wallet did not answer in time".to_owned())),
    };
    let outcome = match &result {
        Ok(_) => "ok",
        Err((StatusCode::GATEWAY_TIMEOUT, _)) => "timeout",
        Err(_) => "error",
    };
    calling.end(outcome);
    result
}

/// The wallet's gRPC service.
struct Wallet {
    partner: String,
    ledger: String,
    http: Client<HttpConnector, Full<Bytes>>,
    counters: Arc<Counters>,
    levers: SharedLevers,
    next: AtomicU64,
}

impl Wallet {
    /// Posts `body` to `upstream` (`partner` or `ledger`) at `address`, with the levers' timeout
    /// and retries; every try is counted. A 2xx answer is `Ok`.
    async fn post(&self, upstream: &str, address: &str, path: &str, body: &str) -> Result<(), String> {
        let levers = levers_of(&self.levers);
        let mut last = String::new();
        for _ in 0..=levers.retries {
            let calling = self.counters.calling(upstream);
            let request = hyper::Request::post(format!("http://{address}{path}"))
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::from(body.to_owned())))
                .map_err(|e| e.to_string())?;
            let call = async {
                let response = self.http.request(request).await.map_err(|e| format!("{e}"))?;
                let status = response.status().as_u16();
                let _ = response.into_body().collect().await;
                Ok::<u16, String>(status)
            };
            let (outcome, result) = match tokio::time::timeout(Duration::from_millis(levers.timeout_ms), call).await {
                Ok(Ok(status)) if (200..300).contains(&status) => ("ok", Ok(())),
                Ok(Ok(status)) => ("error", Err(format!("{upstream} answered {status}"))),
                Ok(Err(e)) => ("error", Err(format!("{upstream}: {e}"))),
                Err(_) => ("timeout", Err(format!("{upstream}: timed out after {} ms", levers.timeout_ms))),
            };
            calling.end(outcome);
            match result {
                Ok(()) => return Ok(()),
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

#[tonic::async_trait]
impl proto::wallet_server::Wallet for Wallet {
    async fn pay(
        &self,
        request: tonic::Request<proto::PayRequest>,
    ) -> Result<tonic::Response<proto::PayReply>, tonic::Status> {
        let serving = self.counters.serving("/shop.v1.Wallet/Pay");
        let amount = request.into_inner().amount_cents;
        let fallback = levers_of(&self.levers).fallback;
        let mut deferred = Vec::new();
        // A failed step ends the payment, unless the fallback lever defers it.
        let mut settle = |result: Result<(), String>| match result {
            Err(e) if !fallback => Err(tonic::Status::unavailable(e)),
            Err(e) => {
                deferred.push(e);
                Ok(())
            }
            Ok(()) => Ok(()),
        };
        let charge = format!("{{\"amount_cents\":{amount}}}");
        if let Err(status) = settle(self.post("partner", &self.partner, "/charge", &charge).await) {
            serving.finish(503);
            return Err(status);
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        // A booking carries the payment's receipt, as ledgers keep them: 12 KiB, so a slow
        // ledger link (the ledger-bandwidth drill) shows in every payment.
        let receipt = RECEIPT_LINE.repeat(RECEIPT_BYTES / RECEIPT_LINE.len());
        let entry = format!("{{\"payment\":{id},\"amount_cents\":{amount},\"receipt\":\"{receipt}\"}}");
        if let Err(status) = settle(self.post("ledger", &self.ledger, "/entries", &entry).await) {
            serving.finish(503);
            return Err(status);
        }
        // The fallback lever: the charge or the booking is queued for later, the payment goes on.
        let payment_id = if deferred.is_empty() {
            format!("pay-{id}")
        } else {
            tracing::warn!(service = "wallet", errors = ?deferred, payment = id, "deferred (fallback)");
            format!("deferred-{id}")
        };
        serving.finish(200);
        Ok(tonic::Response::new(proto::PayReply { payment_id }))
    }
}

async fn wallet(listen: SocketAddr, partner: String, ledger: String) -> std::io::Result<()> {
    let counters = Arc::new(Counters { service: "wallet", ..Counters::default() });
    let levers = SharedLevers::default();
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let service = Wallet {
        partner,
        ledger,
        // A connection per call, as many payment SDKs do: a fault on new connections (the
        // partner-reset drill) reaches the calls it is meant to, not only a pooled survivor.
        http: Client::builder(TokioExecutor::new()).pool_max_idle_per_host(0).build(connector),
        counters: counters.clone(),
        levers: levers.clone(),
        next: AtomicU64::new(0),
    };
    let grpc = tonic::service::Routes::new(proto::wallet_server::WalletServer::new(service)).into_axum_router();
    serve(listen, grpc.merge(admin("wallet", levers)).merge(common(counters))).await
}

/// Where the shop's services and the proxies in front of them listen (all on 127.0.0.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    /// The gateway, what users call.
    pub gateway: u16,
    /// The proxy in front of the wallet.
    pub wallet_proxy: u16,
    /// The proxy in front of the partner.
    pub partner_proxy: u16,
    /// The proxy in front of the ledger.
    pub ledger_proxy: u16,
    /// The wallet itself.
    pub wallet: u16,
    /// The partner itself.
    pub partner: u16,
    /// The ledger itself.
    pub ledger: u16,
}

impl Ports {
    /// The ports `proxies/shop.json`, `examples/shop/shop.toml` and the drills are written for.
    pub const STANDARD: Self = Self {
        gateway: 18080,
        wallet_proxy: 18091,
        partner_proxy: 18092,
        ledger_proxy: 18093,
        wallet: 19091,
        partner: 19092,
        ledger: 19093,
    };

    /// Seven ports the system has free now (bound on port 0 together, then let go), for a shop
    /// beside another one, or beside anything else on the standard ports.
    pub fn free() -> std::io::Result<Self> {
        let listeners = (0..7).map(|_| std::net::TcpListener::bind("127.0.0.1:0")).collect::<Result<Vec<_>, _>>()?;
        let ports = listeners.iter().map(|l| l.local_addr().map(|a| a.port())).collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            gateway: ports[0],
            wallet_proxy: ports[1],
            partner_proxy: ports[2],
            ledger_proxy: ports[3],
            wallet: ports[4],
            partner: ports[5],
            ledger: ports[6],
        })
    }

    fn pairs(self) -> [(u16, u16); 7] {
        let standard = Self::STANDARD;
        [
            (standard.gateway, self.gateway),
            (standard.wallet_proxy, self.wallet_proxy),
            (standard.partner_proxy, self.partner_proxy),
            (standard.ledger_proxy, self.ledger_proxy),
            (standard.wallet, self.wallet),
            (standard.partner, self.partner),
            (standard.ledger, self.ledger),
        ]
    }

    /// `text` (a proxy file, a drill) written for the standard ports, moved to these: every
    /// `127.0.0.1:<standard port>` becomes `127.0.0.1:<this port>`.
    pub fn relocate(self, text: &str) -> String {
        // Through placeholders, so a new port that happens to be another standard one is not moved twice.
        let mut out = text.to_owned();
        for (i, (from, _)) in self.pairs().iter().enumerate() {
            out = out.replace(&format!("127.0.0.1:{from}"), &format!("127.0.0.1:{{port {i}}}"));
        }
        for (i, (_, to)) in self.pairs().iter().enumerate() {
            out = out.replace(&format!("127.0.0.1:{{port {i}}}"), &format!("127.0.0.1:{to}"));
        }
        out
    }

    /// In words, for messages.
    pub fn describe(self) -> String {
        if self == Self::STANDARD {
            return "the ports 18080, 18091-18093 and 19091-19093".to_owned();
        }
        let ports = self.pairs().map(|(_, port)| port.to_string());
        format!("the ports {} and {}", ports[..6].join(", "), ports[6])
    }
}

/// The shop as an environment file on `ports`: every service is this binary's `shop` subcommand.
pub fn environment(exe: &std::path::Path, ports: Ports) -> String {
    let exe = exe.display();
    let service = |name: &str, args: String, port: u16| {
        format!(
            "[[services]]\nname = \"{name}\"\ncommand = \"{exe}\"\nargs = [\"shop\", \"{name}\", \"--listen\", \"127.0.0.1:{port}\"{args}]\n\
             health = {{ http = \"http://127.0.0.1:{port}/healthz\", interval = \"200ms\" }}\n\
             restart = {{ policy = \"always\", backoff = \"200ms\", max_backoff = \"5s\" }}\n\n"
        )
    };
    [
        service("partner", String::new(), ports.partner),
        service("ledger", String::new(), ports.ledger),
        service(
            "wallet",
            format!(
                ", \"--partner\", \"127.0.0.1:{}\", \"--ledger\", \"127.0.0.1:{}\"",
                ports.partner_proxy, ports.ledger_proxy
            ),
            ports.wallet,
        ),
        service("gateway", format!(", \"--wallet\", \"127.0.0.1:{}\"", ports.wallet_proxy), ports.gateway),
    ]
    .concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shop_moves_to_other_ports_whole() {
        let ports = Ports {
            gateway: 19091,
            wallet_proxy: 18080,
            partner_proxy: 40001,
            ledger_proxy: 40002,
            wallet: 40003,
            partner: 40004,
            ledger: 40005,
        };
        let text =
            "url = \"http://127.0.0.1:18080/pay\"\nlevers = 127.0.0.1:19091/admin; 127.0.0.1:18091 127.0.0.1:1808";
        let moved = ports.relocate(text);
        assert_eq!(
            moved,
            format!(
                "url = \"http://127.0.0.1:19091/pay\"\nlevers = 127.0.0.1:{}/admin; 127.0.0.1:18080 127.0.0.1:1808",
                ports.wallet
            ),
            "swapped ports are moved once each; other ports are left alone"
        );
        assert_eq!(Ports::STANDARD.relocate(text), text);
        let environment = environment(std::path::Path::new("/bin/firedrill"), ports);
        assert!(environment.contains(&format!("\"--listen\", \"127.0.0.1:{}\"", ports.ledger)), "{environment}");
        assert!(environment.contains("\"--wallet\", \"127.0.0.1:18080\""), "{environment}");
        assert_eq!(ports.describe(), "the ports 19091, 18080, 40001, 40002, 40003, 40004 and 40005");
    }

    #[tokio::test]
    async fn a_taken_port_is_named_in_the_error() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = taken.local_addr().unwrap();
        let err = serve(address, Router::new()).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
        assert!(err.to_string().starts_with(&format!("cannot listen on {address}: ")), "{err}");
    }
}
