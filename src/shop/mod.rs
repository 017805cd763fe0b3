//! The example shop (`examples/shop`): small services to practise on, run as
//! `firedrill shop <service>` so one binary carries them. `gateway` (HTTP, what users call) →
//! `wallet` (gRPC) → `partner` (HTTP, the external payment partner) and `ledger` (a store). Each
//! has `/healthz`, JSON logs on stdout and Prometheus counters on `/metrics`; each reaches the
//! next through a firedrill proxy (`proxies/shop.json`), which is where drills inject faults.

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

/// Requests by route and status, for `/metrics`.
#[derive(Default)]
struct Counters {
    service: &'static str,
    by: Mutex<BTreeMap<(String, u16), u64>>,
    seconds: Mutex<BTreeMap<String, f64>>,
}

impl Counters {
    fn record(&self, route: &str, status: u16, took: Duration) {
        *self
            .by
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry((route.to_owned(), status))
            .or_default() += 1;
        *self.seconds.lock().unwrap_or_else(std::sync::PoisonError::into_inner).entry(route.to_owned()).or_default() +=
            took.as_secs_f64();
        tracing::info!(service = self.service, route, status, took_ms = took.as_millis() as u64, "request");
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
        out
    }
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
    axum::serve(listener, app).with_graceful_shutdown(crate::serve::shutdown_signal()).await
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
                            c.record("/charge", 200, Duration::ZERO);
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
                            c.record("/entries", 201, Duration::ZERO);
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
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{wallet}"))
        .map_err(std::io::Error::other)?
        .connect_timeout(CALL_TIMEOUT)
        .connect_lazy();
    let client = proto::wallet_client::WalletClient::new(channel);
    let c = counters.clone();
    let app = Router::new()
        .route(
            "/pay",
            get(move |query: axum::extract::Query<BTreeMap<String, String>>| {
                let (c, mut client) = (c.clone(), client.clone());
                async move {
                    let started = Instant::now();
                    let amount = query.get("amount").and_then(|a| a.parse().ok()).unwrap_or(1000);
                    let call = client.pay(proto::PayRequest { amount_cents: amount });
                    let (status, body) = match tokio::time::timeout(CALL_TIMEOUT, call).await {
                        Ok(Ok(reply)) => {
                            (StatusCode::OK, serde_json::json!({"payment_id": reply.into_inner().payment_id}))
                        }
                        Ok(Err(e)) if e.code() == tonic::Code::Unavailable => {
                            (StatusCode::SERVICE_UNAVAILABLE, serde_json::json!({"error": e.message()}))
                        }
                        Ok(Err(e)) => (StatusCode::BAD_GATEWAY, serde_json::json!({"error": e.message()})),
                        Err(_) => (
                            StatusCode::GATEWAY_TIMEOUT,
                            serde_json::json!({"error": "the wallet did not answer in time"}),
                        ),
                    };
                    if status != StatusCode::OK {
                        tracing::warn!(service = "gateway", %status, error = %body["error"], "payment failed");
                    }
                    c.record("/pay", status.as_u16(), started.elapsed());
                    (status, Json(body)).into_response()
                }
            }),
        )
        .merge(common(counters));
    serve(listen, app).await
}

/// The wallet's gRPC service.
struct Wallet {
    partner: String,
    ledger: String,
    http: Client<HttpConnector, Full<Bytes>>,
    counters: Arc<Counters>,
    next: AtomicU64,
}

impl Wallet {
    async fn post(&self, address: &str, path: &str, body: String) -> Result<u16, String> {
        let request = hyper::Request::post(format!("http://{address}{path}"))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let call = async {
            let response = self.http.request(request).await.map_err(|e| format!("{e}"))?;
            let status = response.status().as_u16();
            let _ = response.into_body().collect().await;
            Ok::<u16, String>(status)
        };
        tokio::time::timeout(CALL_TIMEOUT, call).await.map_err(|_| "timed out".to_owned())?
    }
}

#[tonic::async_trait]
impl proto::wallet_server::Wallet for Wallet {
    async fn pay(
        &self,
        request: tonic::Request<proto::PayRequest>,
    ) -> Result<tonic::Response<proto::PayReply>, tonic::Status> {
        let started = Instant::now();
        let amount = request.into_inner().amount_cents;
        let fail = |code: tonic::Status| {
            self.counters.record("/shop.v1.Wallet/Pay", 500, started.elapsed());
            tracing::warn!(service = "wallet", error = code.message(), "pay failed");
            code
        };
        match self.post(&self.partner, "/charge", format!("{{\"amount_cents\":{amount}}}")).await {
            Ok(s) if (200..300).contains(&s) => {}
            Ok(s) => return Err(fail(tonic::Status::unavailable(format!("partner answered {s}")))),
            Err(e) => return Err(fail(tonic::Status::unavailable(format!("partner: {e}")))),
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        match self.post(&self.ledger, "/entries", format!("{{\"payment\":{id},\"amount_cents\":{amount}}}")).await {
            Ok(s) if (200..300).contains(&s) => {}
            Ok(s) => return Err(fail(tonic::Status::internal(format!("ledger answered {s}")))),
            Err(e) => return Err(fail(tonic::Status::unavailable(format!("ledger: {e}")))),
        }
        self.counters.record("/shop.v1.Wallet/Pay", 200, started.elapsed());
        Ok(tonic::Response::new(proto::PayReply { payment_id: format!("pay-{id}") }))
    }
}

async fn wallet(listen: SocketAddr, partner: String, ledger: String) -> std::io::Result<()> {
    let counters = Arc::new(Counters { service: "wallet", ..Counters::default() });
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let service = Wallet {
        partner,
        ledger,
        http: Client::builder(TokioExecutor::new()).build(connector),
        counters: counters.clone(),
        next: AtomicU64::new(0),
    };
    let grpc = tonic::service::Routes::new(proto::wallet_server::WalletServer::new(service)).into_axum_router();
    serve(listen, grpc.merge(common(counters))).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_taken_port_is_named_in_the_error() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = taken.local_addr().unwrap();
        let err = serve(address, Router::new()).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
        assert!(err.to_string().starts_with(&format!("cannot listen on {address}: ")), "{err}");
    }
}
