//! Faults on proxies firedrill does not run: an external Toxiproxy-compatible admin API, driven
//! through the `toxiproxy_rust` client crate.
//!
//! The crate shapes what a drill can do there, and firedrill checks those limits before a run
//! rather than discovering them halfway through one:
//! - it can create only [`crate::proxy::external::EXTERNAL_TOXIC_TYPES`] (no `reset_peer`, no `noop`), with integer
//!   attributes of at most `u32::MAX`;
//! - it names every toxic `<type>_<stream>`, so a proxy carries at most one toxic per type and
//!   stream ([`ToxiproxyApi`] refuses to add one over a toxic of that name it did not create);
//! - it can only delete all of a proxy's toxics at once, which would take other people's toxics
//!   with ours, so one toxic is removed with a plain `DELETE` over hyper (the one call made
//!   without the crate) and the result read back through the crate;
//! - it reports an HTTP error status as success, so every change is read back and checked;
//! - it blocks and may panic on a transport error, so every call runs on a blocking thread with
//!   the panic turned into an error.

use std::collections::{BTreeSet, HashMap};
use std::net::{SocketAddr, ToSocketAddrs};

use toxiproxy_rust::client::Client;
use toxiproxy_rust::proxy::Proxy;
use toxiproxy_rust::toxic::ToxicPack;

use super::{FaultError, FaultTarget};
use crate::proxy::external::{attributes, external_name};
use crate::proxy::toxic::Toxic;

/// An external admin API at `host:port`.
#[derive(Debug, Clone)]
pub struct ToxiproxyApi {
    address: String,
}

/// Creates a toxic through the crate's typed calls (the only way it offers).
fn create(proxy: &Proxy, pack: &ToxicPack) -> Result<(), String> {
    let attribute = |name: &str| pack.attributes.get(name).copied().unwrap_or(0);
    let stream = pack.stream.clone();
    match pack.r#type.as_str() {
        "latency" => proxy.with_latency(stream, attribute("latency"), attribute("jitter"), pack.toxicity),
        "bandwidth" => proxy.with_bandwidth(stream, attribute("rate"), pack.toxicity),
        "slow_close" => proxy.with_slow_close(stream, attribute("delay"), pack.toxicity),
        "timeout" => proxy.with_timeout(stream, attribute("timeout"), pack.toxicity),
        "slicer" => proxy.with_slicer(
            stream,
            attribute("average_size"),
            attribute("size_variation"),
            attribute("delay"),
            pack.toxicity,
        ),
        "limit_data" => proxy.with_limit_data(stream, attribute("bytes"), pack.toxicity),
        other => return Err(format!("toxiproxy_rust cannot create a `{other}` toxic")),
    };
    Ok(())
}

impl ToxiproxyApi {
    /// A client of the API at `address` (`host:port`, or `http://host:port`).
    pub fn new(address: &str) -> Self {
        Self { address: address.trim_start_matches("http://").trim_end_matches('/').to_owned() }
    }

    /// Runs `call` with a fresh client on a blocking thread (the crate's HTTP client is blocking
    /// and must not be created or dropped on the async runtime); a panic becomes an error.
    async fn call<R: Send + 'static>(
        &self,
        call: impl FnOnce(&Client) -> Result<R, String> + Send + 'static,
    ) -> Result<R, FaultError> {
        let address = self.address.clone();
        let work = move || {
            let socket: SocketAddr = address
                .to_socket_addrs()
                .map_err(|e| format!("cannot resolve {address}: {e}"))?
                .next()
                .ok_or_else(|| format!("{address} resolves to no address"))?;
            let client = Client::new(socket);
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| call(&client)))
                .unwrap_or_else(|_| Err("the client failed (toxiproxy_rust panicked; see the log above)".to_owned()))
        };
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| self.failed(e.to_string()))?
            .map_err(|detail| self.failed(detail))
    }

    /// The API (or its client) failed: `detail` says how.
    fn failed(&self, detail: String) -> FaultError {
        FaultError::Toxiproxy { address: self.address.clone(), detail }
    }

    /// The names of the API's proxies.
    pub async fn proxy_names(&self) -> Result<BTreeSet<String>, FaultError> {
        self.call(|client| Ok(client.all()?.into_keys().collect())).await
    }
}

/// The toxics on `proxy`, by name.
fn toxics(proxy: &Proxy) -> Result<HashMap<String, ToxicPack>, String> {
    Ok(proxy.toxics()?.into_iter().map(|t| (t.name.clone(), t)).collect())
}

impl FaultTarget for ToxiproxyApi {
    fn toxic_name(&self, _run: &str, _fault: usize, toxic: &Toxic) -> String {
        external_name(toxic)
    }

    async fn apply(&self, proxy: &str, toxic: &Toxic) -> Result<(), FaultError> {
        let name = external_name(toxic);
        #[allow(clippy::cast_possible_truncation, reason = "toxicity is in [0, 1]")]
        let pack = ToxicPack {
            name: name.clone(),
            r#type: toxic.kind.type_name().to_owned(),
            stream: toxic.stream.as_str().to_owned(),
            toxicity: toxic.toxicity as f32,
            attributes: attributes(&toxic.kind)
                .map_err(FaultError::Refused)?
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
        };
        let proxy_name = proxy.to_owned();
        self.call(move |client| {
            let proxy = client.find_proxy(&proxy_name)?;
            if toxics(&proxy)?.contains_key(&name) {
                return Err(format!("proxy `{proxy_name}` already has a toxic named `{name}`; remove it first"));
            }
            create(&proxy, &pack)?;
            if toxics(&proxy)?.contains_key(&name) {
                Ok(())
            } else {
                Err(format!("proxy `{proxy_name}` refused the toxic `{name}`"))
            }
        })
        .await
    }

    async fn remove(&self, proxy: &str, toxic: &str) -> Result<(), FaultError> {
        delete_toxic(&self.address, proxy, toxic).await.map_err(|detail| self.failed(detail))?;
        let (proxy_name, name) = (proxy.to_owned(), toxic.to_owned());
        self.call(move |client| {
            let proxy = match client.find_proxy(&proxy_name) {
                Ok(proxy) => proxy,
                // A proxy that is gone carries no toxic.
                Err(_) if !client.all()?.contains_key(&proxy_name) => return Ok(()),
                Err(e) => return Err(e),
            };
            if toxics(&proxy)?.contains_key(&name) {
                Err(format!("proxy `{proxy_name}` still has the toxic `{name}`"))
            } else {
                Ok(())
            }
        })
        .await
    }
}

/// `DELETE /proxies/{proxy}/toxics/{name}`: one toxic, leaving the proxy's others alone. The
/// crate can only delete all of them, which would drop (for a moment, or for good when the crate
/// cannot re-create them) toxics someone else put there. A toxic or proxy already gone is fine.
async fn delete_toxic(address: &str, proxy: &str, name: &str) -> Result<(), String> {
    use http_body_util::{BodyExt, Empty};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    let uri: http::Uri = format!("http://{address}/proxies/{proxy}/toxics/{name}")
        .parse()
        .map_err(|e| format!("cannot address toxic `{name}` of proxy `{proxy}`: {e}"))?;
    let request = http::Request::delete(uri).body(Empty::<bytes::Bytes>::new()).map_err(|e| e.to_string())?;
    let client = Client::builder(TokioExecutor::new()).build_http();
    let call = async {
        let response = client.request(request).await.map_err(|e| format!("DELETE failed: {e}"))?;
        let status = response.status();
        let body = response.into_body().collect().await.map(http_body_util::Collected::to_bytes).unwrap_or_default();
        Ok::<_, String>((status, body))
    };
    let (status, body) = tokio::time::timeout(std::time::Duration::from_secs(10), call)
        .await
        .map_err(|_| "DELETE took more than 10 s".to_owned())??;
    if status.is_success() || status == http::StatusCode::NOT_FOUND {
        Ok(())
    } else {
        Err(format!(
            "DELETE of toxic `{name}` on proxy `{proxy}` answered {status}: {}",
            String::from_utf8_lossy(&body)
        ))
    }
}
