//! The HTTP/2 side towards an `http` proxy's upstream: one multiplexed connection, opened on
//! first use and again once it closes (an upstream restarted by a kill fault, say).
//!
//! hyper's pooled client does the same with a pool keyed by authority, a checkout per request and
//! a boxed future per call; an `http` proxy has exactly one upstream, so it holds the connection
//! itself.

use http::{Request, Response};
use hyper::body::Incoming;

use super::Watched;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

/// Why a request could not be forwarded.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The upstream could not be reached.
    #[error("cannot connect to {address}: {source}")]
    Connect {
        /// The upstream.
        address: String,
        /// Why.
        source: std::io::Error,
    },
    /// HTTP/2 failed: the handshake, or the request on the connection.
    #[error(transparent)]
    Http(#[from] hyper::Error),
}

/// One upstream over HTTP/2.
pub struct H2Upstream {
    address: String,
    /// The connection's request handle while it is open.
    sender: tokio::sync::Mutex<Option<SendRequest<Watched>>>,
}

impl H2Upstream {
    /// An upstream at `address` (`host:port`); nothing is dialled before the first request.
    pub fn new(address: String) -> Self {
        Self { address, sender: tokio::sync::Mutex::new(None) }
    }

    /// The open connection's handle, dialling a new connection when there is none.
    async fn sender(&self, stale: bool) -> Result<SendRequest<Watched>, UpstreamError> {
        let mut slot = self.sender.lock().await;
        if let Some(sender) = slot.as_ref()
            && !stale
            && !sender.is_closed()
        {
            return Ok(sender.clone());
        }
        *slot = None;
        let connect = |source| UpstreamError::Connect { address: self.address.clone(), source };
        let stream = TcpStream::connect(&self.address).await.map_err(connect)?;
        stream.set_nodelay(true).map_err(connect)?;
        let (sender, connection) =
            hyper::client::conn::http2::Builder::new(TokioExecutor::new()).handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "upstream HTTP/2 connection ended with an error");
            }
        });
        *slot = Some(sender.clone());
        Ok(sender)
    }

    /// Forwards `request` (its URI absolute). A request the connection refused before sending
    /// anything (it had just closed) is retried once on a new connection.
    pub async fn request(&self, request: Request<Watched>) -> Result<Response<Incoming>, UpstreamError> {
        let mut sender = self.sender(false).await?;
        match sender.try_send_request(request).await {
            Ok(response) => Ok(response),
            Err(mut failed) => match failed.take_message() {
                Some(request) => Ok(self.sender(true).await?.send_request(request).await?),
                None => Err(failed.into_error().into()),
            },
        }
    }
}
