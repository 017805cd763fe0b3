//! The side towards an `http` proxy's upstream: HTTP/2 over one multiplexed connection (opened on
//! first use and again once it closes — an upstream restarted by a kill fault, or retiring its
//! connection with GOAWAY), and the probe that tells which protocols an upstream speaks.
//!
//! hyper's pooled client does the same with a pool keyed by authority, a checkout per request and
//! a boxed future per call; an `http` proxy has exactly one upstream, so it holds the connection
//! itself.

use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::body::ClientBody;

/// How many times a request the upstream refused unprocessed (GOAWAY, `REFUSED_STREAM`) is sent
/// again (after a GOAWAY, on a new connection).
pub const MAX_RETRIES: usize = 2;

/// Why a request could not be forwarded.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The upstream could not be reached.
    #[error("cannot connect to {address}: {source}")]
    Connect {
        /// The upstream.
        address: String,
        /// The underlying error, kept as the source.
        source: std::io::Error,
    },
    /// Connecting took longer than the proxy's connect timeout.
    #[error("connecting to {address} took longer than {after:?}")]
    ConnectTimeout {
        /// The upstream.
        address: String,
        /// The timeout.
        after: Duration,
    },
    /// HTTP failed: the handshake, or the request on the connection.
    #[error(transparent)]
    Http(#[from] hyper::Error),
    /// HTTP/1.1 through the pooled client failed.
    #[error(transparent)]
    Pooled(#[from] hyper_util::client::legacy::Error),
}

impl UpstreamError {
    /// Whether the time to connect ran out.
    pub fn is_timeout(&self) -> bool {
        use std::error::Error as _;
        let mut source = self.source();
        while let Some(error) = source {
            if error.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::TimedOut) {
                return true;
            }
            source = error.source();
        }
        matches!(self, Self::ConnectTimeout { .. })
    }

    /// Whether the upstream could not be reached at all (nothing listening, say).
    pub fn is_connect(&self) -> bool {
        match self {
            Self::Connect { .. } | Self::ConnectTimeout { .. } => true,
            Self::Pooled(error) => error.is_connect(),
            Self::Http(_) => false,
        }
    }

    /// Whether the upstream answered something that is not HTTP/1.1 (an HTTP/2-only server
    /// answering an HTTP/1.1 request with its preface).
    pub fn is_not_http1(&self) -> bool {
        use std::error::Error as _;
        let mut source = self.source();
        while let Some(error) = source {
            if error.downcast_ref::<hyper::Error>().is_some_and(hyper::Error::is_parse) {
                return true;
            }
            source = error.source();
        }
        false
    }
}

/// How the upstream declined to process an HTTP/2 request. RFC 9113 §8.7: such a request can be
/// retried whatever its method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unprocessed {
    /// Its stream was above a graceful GOAWAY's last stream: the connection is retiring.
    GoneAway,
    /// Its stream was reset with `REFUSED_STREAM`: the connection may serve others.
    Refused,
}

/// Whether (and how) an HTTP/2 request failed because the upstream never processed it.
fn unprocessed(error: &hyper::Error) -> Option<Unprocessed> {
    use std::error::Error as _;
    let mut source = error.source();
    while let Some(cause) = source {
        if let Some(h2) = cause.downcast_ref::<h2::Error>() {
            if h2.is_go_away() && h2.is_remote() && h2.reason() == Some(h2::Reason::NO_ERROR) {
                return Some(Unprocessed::GoneAway);
            }
            return (h2.is_reset() && h2.reason() == Some(h2::Reason::REFUSED_STREAM)).then_some(Unprocessed::Refused);
        }
        source = cause.source();
    }
    None
}

/// Opens a TCP connection to `address` within `timeout`.
pub async fn dial(address: &str, timeout: Duration) -> Result<TcpStream, UpstreamError> {
    let connect = |source| UpstreamError::Connect { address: address.to_owned(), source };
    let stream = tokio::time::timeout(timeout, TcpStream::connect(address))
        .await
        .map_err(|_| UpstreamError::ConnectTimeout { address: address.to_owned(), after: timeout })?
        .map_err(connect)?;
    stream.set_nodelay(true).map_err(connect)?;
    Ok(stream)
}

/// Whether the upstream at `address` speaks HTTP/2 with prior knowledge: sends the client
/// preface and an empty SETTINGS frame on a connection of its own and looks at the first bytes
/// back (an HTTP/2 server's SETTINGS frame, or an HTTP/1.1 status line, or a close). `None`
/// when it could not tell (no connection, no answer in `timeout`).
pub async fn speaks_h2(address: &str, timeout: Duration) -> Option<bool> {
    // Boxed: a probe is rare, and its future would otherwise enlarge every request's.
    Box::pin(probe_h2(address, timeout)).await
}

async fn probe_h2(address: &str, timeout: Duration) -> Option<bool> {
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0";
    let look = async {
        let mut stream = dial(address, timeout).await.ok()?;
        stream.write_all(PREFACE).await.ok()?;
        let mut first = [0_u8; 9];
        let mut read = 0;
        while read < 4 {
            match stream.read(&mut first[read..]).await {
                Ok(0) | Err(_) => break,
                Ok(n) => read += n,
            }
        }
        // A frame header's fourth byte is its type; SETTINGS is 4. "HTTP/1.1 400" is HTTP/1.x.
        Some(read >= 4 && &first[..4] != b"HTTP" && first[3] == 0x04)
    };
    tokio::time::timeout(timeout, look).await.ok().flatten()
}

/// One upstream over HTTP/2.
pub struct H2Upstream {
    address: String,
    connect_timeout: Duration,
    /// The connection's request handle while it is open, with a number telling connections apart.
    sender: tokio::sync::Mutex<Option<(u64, SendRequest<ClientBody>)>>,
}

impl H2Upstream {
    /// An upstream at `address` (`host:port`); nothing is dialled before the first request.
    pub fn new(address: String, connect_timeout: Duration) -> Self {
        Self { address, connect_timeout, sender: tokio::sync::Mutex::new(None) }
    }

    /// The open connection's handle, dialling a new connection when there is none, or when the
    /// open one is `retired` (the number of a connection that refused a request).
    async fn sender(&self, retired: Option<u64>) -> Result<(u64, SendRequest<ClientBody>), UpstreamError> {
        let mut slot = self.sender.lock().await;
        let previous = slot.as_ref().map_or(0, |(number, _)| *number);
        if let Some((number, sender)) = slot.as_ref()
            && retired != Some(*number)
            && !sender.is_closed()
        {
            return Ok((*number, sender.clone()));
        }
        *slot = None;
        // Boxed: dialling and the handshake are rare, and their future would otherwise make every
        // HTTP/2 request's future (copied whole at least once) a kilobyte larger.
        let sender = Box::pin(self.open()).await?;
        let number = previous + 1;
        *slot = Some((number, sender.clone()));
        Ok((number, sender))
    }

    /// A new connection to the upstream, its driver spawned; its request handle.
    async fn open(&self) -> Result<SendRequest<ClientBody>, UpstreamError> {
        let stream = dial(&self.address, self.connect_timeout).await?;
        let (sender, connection) =
            hyper::client::conn::http2::Builder::new(TokioExecutor::new()).handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "upstream HTTP/2 connection ended with an error");
            }
        });
        Ok(sender)
    }

    /// Forwards `request` (its URI absolute). A request the upstream did not process — refused
    /// before anything was sent (the connection had just closed), above a GOAWAY's last stream
    /// (both sent again on a new connection), or refused with `REFUSED_STREAM` — is sent again up to
    /// [`MAX_RETRIES`] times, if its body was kept ([`ClientBody::replay`]); `retried` is called
    /// for each.
    pub async fn request(
        &self,
        request: Request<ClientBody>,
        retried: impl Fn(),
    ) -> Result<Response<Incoming>, UpstreamError> {
        let head = Head::of(&request);
        let (mut number, mut sender) = self.sender(None).await?;
        let (mut next, mut attempt) = (request, 0);
        loop {
            let kept = next.body().replay();
            match sender.try_send_request(next).await {
                Ok(response) => return Ok(response),
                Err(mut failed) => {
                    // Never sent (the connection had just closed), or declined unprocessed.
                    let (again, retire) = match failed.take_message() {
                        Some(request) => (Some(request), true),
                        None => match unprocessed(failed.error()) {
                            Some(how) => (
                                kept.and_then(|body| body.replay()).map(|body| head.request(body)),
                                how == Unprocessed::GoneAway,
                            ),
                            None => (None, false),
                        },
                    };
                    let Some(request) = again.filter(|_| attempt < MAX_RETRIES) else {
                        return Err(failed.into_error().into());
                    };
                    retried();
                    attempt += 1;
                    (number, sender) = self.sender(retire.then_some(number)).await?;
                    next = request;
                }
            }
        }
    }
}

/// What it takes to build a request again.
struct Head {
    method: http::Method,
    uri: http::Uri,
    version: http::Version,
    headers: http::HeaderMap,
}

impl Head {
    fn of<B>(request: &Request<B>) -> Self {
        Self {
            method: request.method().clone(),
            uri: request.uri().clone(),
            version: request.version(),
            headers: request.headers().clone(),
        }
    }

    fn request(&self, body: ClientBody) -> Request<ClientBody> {
        let mut request = Request::new(body);
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        *request.version_mut() = self.version;
        *request.headers_mut() = self.headers.clone();
        request
    }
}
