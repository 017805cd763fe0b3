//! The admin HTTP API, wire-compatible with Toxiproxy 2.x (see `toxiproxy-api.md`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::config::{ProxyFields, lowercase_keys};
use super::error::ApiError;
use super::registry::{ProxyView, Registry};

/// The header Toxiproxy puts on every response.
pub const REQUEST_ID_HEADER: &str = "x-toxiproxy-request-id";

#[derive(Clone)]
struct Api {
    registry: Arc<Registry>,
    /// Required as `Authorization: Bearer <token>` when set (APIs bound beyond loopback).
    token: Option<Arc<str>>,
    /// Also accepted, and only, for the extra routes under [`WEBHOOKS`]: a credential that can
    /// post alerts and do nothing else.
    webhook_token: Option<Arc<str>>,
    /// Numbers the responses' request ids.
    requests: Arc<AtomicU64>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error_response(&self, None)
    }
}

fn error_response(error: &ApiError, proxies: Option<Vec<ProxyView>>) -> Response {
    let mut body = json!({"error": error.message, "status": error.status.as_u16()});
    if let Some(proxies) = proxies {
        body["proxies"] = json!(proxies);
    }
    json_response(error.status, &body)
}

/// Compact JSON plus a newline, as Toxiproxy writes it.
fn json_response(status: StatusCode, body: &impl Serialize) -> Response {
    let mut text = serde_json::to_string(body).unwrap_or_else(|_| "{}".into());
    text.push('\n');
    (status, [(header::CONTENT_TYPE, "application/json")], text).into_response()
}

/// Parses a request body; keys match case-insensitively, as in Toxiproxy.
fn parse(body: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice::<Value>(body)
        .map(lowercase_keys)
        .map_err(|e| ApiError::bad_request(format!("bad request body: {e}")))
}

/// The router, ready to serve; exposed so tests can drive it in-process.
pub fn router(registry: Arc<Registry>, token: Option<String>) -> Router {
    router_with(registry, token, None, Router::new())
}

/// The router with `extra` routes of the daemon (webhooks) behind the same guard.
/// Where the extra routes of [`router_with`] live, the only paths the webhook token opens.
pub const WEBHOOKS: &str = "/webhooks/";

/// The API with `extra` routes (under [`WEBHOOKS`]); `webhook_token` opens those and nothing else.
pub fn router_with(
    registry: Arc<Registry>,
    token: Option<String>,
    webhook_token: Option<String>,
    extra: Router,
) -> Router {
    let api = Api {
        registry,
        token: token.map(Into::into),
        webhook_token: webhook_token.map(Into::into),
        requests: Arc::default(),
    };
    Router::new()
        .route("/version", get(version))
        .route("/metrics", get(metrics))
        .route("/reset", post(reset))
        .route("/populate", post(populate))
        .route("/proxies", get(list).post(create))
        .route("/proxies/{proxy}", get(show).post(update).patch(update).delete(delete))
        .route("/proxies/{proxy}/toxics", get(toxics).post(add_toxic))
        .route(
            "/proxies/{proxy}/toxics/{toxic}",
            get(show_toxic).post(update_toxic).patch(update_toxic).delete(remove_toxic),
        )
        .with_state(api.clone())
        .merge(extra)
        .layer(middleware::from_fn_with_state(api, guard))
}

/// Serves the API on `listener` until `shutdown` fires.
pub async fn serve(
    listener: TcpListener,
    registry: Arc<Registry>,
    token: Option<String>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    serve_with(listener, registry, token, None, Router::new(), shutdown).await
}

/// [`serve`] with extra routes and their token (see [`router_with`]).
pub async fn serve_with(
    listener: TcpListener,
    registry: Arc<Registry>,
    token: Option<String>,
    webhook_token: Option<String>,
    extra: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    serve_router(listener, router_with(registry, token, webhook_token, extra), shutdown).await;
    Ok(())
}

pub use super::gate::{HEADER_READ_TIMEOUT, MAX_IN_HEADERS};

/// Serves `app` (HTTP/1.1 and HTTP/2) until `shutdown`, then lets requests in progress finish.
/// Slow clients are bounded: [`HEADER_READ_TIMEOUT`] per request's headers, and at most
/// [`MAX_IN_HEADERS`] connections waiting for their first headers at once.
pub async fn serve_router(listener: TcpListener, app: Router, shutdown: CancellationToken) {
    use hyper_util::rt::TokioIo;
    let tracker = tokio_util::task::TaskTracker::new();
    let gate = super::gate::HeaderGate::new();
    loop {
        let stream = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    // Out of descriptors, say: wait a moment rather than spin.
                    tracing::warn!(%err, "the admin API could not accept a connection");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Answers and events are small writes: sent at once, not held for the peer's ACK.
        let _ = stream.set_nodelay(true);
        let waiter = gate.enter();
        // The first request's headers are in once the service is called: off the queue.
        let (arrival, app) = (Arc::clone(&waiter), hyper_util::service::TowerToHyperService::new(app.clone()));
        let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            arrival.arrived();
            hyper::service::Service::call(&app, request)
        });
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            let builder = super::gate::server_builder();
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                () = waiter.evicted().cancelled() => {}
                () = shutdown.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
    tracker.close();
    tracker.wait().await;
}

/// Numbers every response, refuses browsers (cross-site requests) and checks the token.
async fn guard(State(api): State<Api>, request: Request, next: Next) -> Response {
    let id = api.requests.fetch_add(1, Ordering::Relaxed) + 1;
    let agent = request.headers().get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let mut response = if agent.starts_with("Mozilla/") {
        ApiError { status: StatusCode::FORBIDDEN, message: "User agent not allowed".into() }.into_response()
    } else if let Some(token) = &api.token {
        let given = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or_default();
        let webhook = request.uri().path().starts_with(WEBHOOKS)
            && api.webhook_token.as_deref().is_some_and(|t| crate::bearer_matches(given, t));
        if webhook || crate::bearer_matches(given, token) {
            next.run(request).await
        } else {
            ApiError {
                status: StatusCode::UNAUTHORIZED,
                message: "missing or wrong API token (send Authorization: Bearer <token>)".into(),
            }
            .into_response()
        }
    } else {
        next.run(request).await
    };
    // A body over the limit is refused by the extractor in plain text: answer in Toxiproxy's
    // shape like every other error.
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE
        && response.headers().get(header::CONTENT_TYPE).is_none_or(|t| t != "application/json")
    {
        let message = format!("request body too large: the limit is {BODY_LIMIT} bytes");
        response = ApiError { status: StatusCode::PAYLOAD_TOO_LARGE, message }.into_response();
    }
    response.headers_mut().insert(REQUEST_ID_HEADER, HeaderValue::from(id));
    response
}

/// The largest request body the admin API reads (axum's default).
const BODY_LIMIT: usize = 2 * 1024 * 1024;

async fn version() -> Response {
    json_response(StatusCode::OK, &json!({"version": env!("CARGO_PKG_VERSION")}))
}

async fn metrics(State(api): State<Api>) -> Response {
    let text = api.registry.metrics().await;
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}

async fn reset(State(api): State<Api>) -> Result<StatusCode, ApiError> {
    api.registry.reset().await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn populate(State(api): State<Api>, body: Bytes) -> Response {
    let items = match parse(&body) {
        Ok(Value::Array(items)) => items,
        Ok(other) => {
            return ApiError::bad_request(format!("bad request body: expected a JSON array of proxies, got {other}"))
                .into_response();
        }
        Err(err) => return err.into_response(),
    };
    let mut configs = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        match ProxyFields::from_value(item).and_then(|f| f.into_config(&format!(" at proxy {}", index + 1))) {
            Ok(config) => configs.push(config),
            Err(err) => return err.into_response(),
        }
    }
    match api.registry.populate(configs).await {
        Ok(proxies) => json_response(StatusCode::CREATED, &json!({"proxies": proxies})),
        Err((err, proxies)) => error_response(&err, Some(proxies)),
    }
}

async fn list(State(api): State<Api>) -> Response {
    json_response(StatusCode::OK, &api.registry.list().await)
}

async fn create(State(api): State<Api>, body: Bytes) -> Result<Response, ApiError> {
    let config = ProxyFields::from_value(parse(&body)?)?.into_config("")?;
    Ok(json_response(StatusCode::CREATED, &api.registry.create(config).await?))
}

async fn show(State(api): State<Api>, Path(proxy): Path<String>) -> Result<Response, ApiError> {
    Ok(json_response(StatusCode::OK, &api.registry.get(&proxy).await?))
}

async fn update(State(api): State<Api>, Path(proxy): Path<String>, body: Bytes) -> Result<Response, ApiError> {
    // Toxiproxy answers 404 for an unknown proxy before it looks at the body.
    api.registry.get(&proxy).await?;
    let fields = ProxyFields::from_value(parse(&body)?)?;
    Ok(json_response(StatusCode::OK, &api.registry.update(&proxy, fields).await?))
}

async fn delete(State(api): State<Api>, Path(proxy): Path<String>) -> Result<StatusCode, ApiError> {
    api.registry.delete(&proxy).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn toxics(State(api): State<Api>, Path(proxy): Path<String>) -> Result<Response, ApiError> {
    Ok(json_response(StatusCode::OK, &api.registry.toxics(&proxy).await?))
}

async fn add_toxic(State(api): State<Api>, Path(proxy): Path<String>, body: Bytes) -> Result<Response, ApiError> {
    api.registry.get(&proxy).await?;
    let toxic = api.registry.add_toxic(&proxy, &parse(&body)?).await?;
    Ok(json_response(StatusCode::OK, &toxic))
}

async fn show_toxic(
    State(api): State<Api>,
    Path((proxy, toxic)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    Ok(json_response(StatusCode::OK, &api.registry.toxic(&proxy, &toxic).await?))
}

async fn update_toxic(
    State(api): State<Api>,
    Path((proxy, toxic)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    api.registry.toxic(&proxy, &toxic).await?;
    let updated = api.registry.update_toxic(&proxy, &toxic, &parse(&body)?).await?;
    Ok(json_response(StatusCode::OK, &updated))
}

async fn remove_toxic(
    State(api): State<Api>,
    Path((proxy, toxic)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    api.registry.remove_toxic(&proxy, &toxic).await?;
    Ok(StatusCode::NO_CONTENT)
}
