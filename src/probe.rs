//! One HTTP probe: a GET that must answer 2xx in time. The steady-state check of a run and the
//! health checks of supervised services both use it.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::Uri;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpStream;

/// One HTTP steady-state probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HttpProbe {
    /// What to GET.
    pub url: String,
    /// The slowest answer that still counts as healthy.
    pub within: Duration,
}

/// One probe: a GET that answers 2xx within `within`.
pub async fn probe(http: &HttpProbe) -> bool {
    tokio::time::timeout(http.within, get(&http.url)).await.is_ok_and(|ok| ok)
}

async fn get(url: &str) -> bool {
    let Ok(uri) = url.parse::<Uri>() else { return false };
    let Some(authority) = uri.authority().cloned() else { return false };
    let address = format!("{}:{}", authority.host(), authority.port_u16().unwrap_or(80));
    let Ok(stream) = TcpStream::connect(address).await else { return false };
    let Ok((mut sender, connection)) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await else {
        return false;
    };
    let driver = tokio::spawn(connection);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let request = hyper::Request::get(path).header(hyper::header::HOST, authority.as_str()).body(Empty::<Bytes>::new());
    let ok = match request {
        Ok(request) => sender.send_request(request).await.is_ok_and(|r| r.status().is_success()),
        Err(_) => false,
    };
    driver.abort();
    ok
}
