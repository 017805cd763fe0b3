//! A client of a Toxiproxy-compatible admin API, for faults on proxies firedrill does not run.
//!
//! It speaks the wire contract directly (HTTP/1.1 over hyper): the `toxiproxy_rust` crate cannot
//! add a `reset_peer` or `noop` toxic, names every toxic `<type>_<stream>`, can only delete all of
//! a proxy's toxics at once and panics on transport errors — none of which a drill can live with.

use std::collections::BTreeSet;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::proxy::toxic::Toxic;
use crate::run::runner::FaultTarget;

/// How long one admin call may take.
const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// An external admin API at `host:port`.
#[derive(Debug, Clone)]
pub struct ToxiproxyApi {
    address: String,
}

/// Percent-encodes a path segment (names are usually plain, but need not be).
fn segment(name: &str) -> String {
    name.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl ToxiproxyApi {
    /// A client of the API at `address` (`host:port`, or `http://host:port`).
    pub fn new(address: &str) -> Self {
        Self { address: address.trim_start_matches("http://").trim_end_matches('/').to_owned() }
    }

    async fn call(&self, method: Method, path: &str, body: Option<String>) -> Result<(StatusCode, Bytes), String> {
        let work = async {
            let stream = TcpStream::connect(&self.address).await.map_err(|e| e.to_string())?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
            let driver = tokio::spawn(connection);
            let request = Request::builder()
                .method(method)
                .uri(path)
                .header(hyper::header::HOST, &self.address)
                .header(hyper::header::CONTENT_TYPE, "application/json")
                .header(hyper::header::USER_AGENT, concat!("firedrill/", env!("CARGO_PKG_VERSION")))
                .body(Full::new(Bytes::from(body.unwrap_or_default())))
                .map_err(|e| e.to_string())?;
            let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
            let status = response.status();
            let bytes = response.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
            driver.abort();
            Ok((status, bytes))
        };
        tokio::time::timeout(CALL_TIMEOUT, work)
            .await
            .map_err(|_| format!("the Toxiproxy API at {} did not answer in time", self.address))?
            .map_err(|e: String| format!("the Toxiproxy API at {}: {e}", self.address))
    }

    fn error(status: StatusCode, body: &[u8]) -> String {
        let message = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
        format!("{status}: {message}")
    }

    /// The names of the API's proxies.
    pub async fn proxy_names(&self) -> Result<BTreeSet<String>, String> {
        let (status, body) = self.call(Method::GET, "/proxies", None).await?;
        if !status.is_success() {
            return Err(Self::error(status, &body));
        }
        let proxies: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&body).map_err(|e| format!("unexpected /proxies answer: {e}"))?;
        Ok(proxies.into_iter().map(|(name, _)| name).collect())
    }
}

impl FaultTarget for ToxiproxyApi {
    async fn apply(&self, proxy: &str, toxic: &Toxic) -> Result<(), String> {
        let body = serde_json::to_string(toxic).map_err(|e| e.to_string())?;
        let (status, answer) =
            self.call(Method::POST, &format!("/proxies/{}/toxics", segment(proxy)), Some(body)).await?;
        if status.is_success() { Ok(()) } else { Err(format!("proxy `{proxy}`: {}", Self::error(status, &answer))) }
    }

    async fn remove(&self, proxy: &str, toxic: &str) -> Result<(), String> {
        let path = format!("/proxies/{}/toxics/{}", segment(proxy), segment(toxic));
        let (status, answer) = self.call(Method::DELETE, &path, None).await?;
        if status.is_success() || status == StatusCode::NOT_FOUND {
            Ok(())
        } else {
            Err(format!("proxy `{proxy}`: {}", Self::error(status, &answer)))
        }
    }
}
