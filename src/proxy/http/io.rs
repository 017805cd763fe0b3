//! The client socket of an `http` proxy connection as the HTTP server reads and writes it:
//! directly while the proxy has no TCP toxic, through a [`link`] once one
//! appears.
//!
//! With no TCP toxic the engine serves HTTP on the accepted socket itself, so a request costs no
//! extra hop. The moment a TCP toxic is added the socket is handed to a link (the same code as a
//! `tcp` proxy's connection, toxics and all) whose other end is a fresh loopback connection, and
//! the server goes on over that. Nothing is buffered here, so the switch loses and reorders no
//! bytes. A connection stays linked after the toxic goes (the link then copies straight through):
//! the switch is one-way, so a long-lived connection pays the hop only after it has been under a
//! fault.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_util::sync::{CancellationToken, ReusableBoxFuture};
use tokio_util::task::TaskTracker;

use crate::proxy::link::{self, LinkShared, ToxicList};
use crate::proxy::toxic::Stream;

/// Resolves when the proxy's toxics change; hands the receiver back.
type Changed = ReusableBoxFuture<'static, (Result<(), watch::error::RecvError>, watch::Receiver<ToxicList>)>;

async fn changed(
    mut toxics: watch::Receiver<ToxicList>,
) -> (Result<(), watch::error::RecvError>, watch::Receiver<ToxicList>) {
    let result = toxics.changed().await;
    (result, toxics)
}

fn has_tcp_toxics(toxics: &ToxicList) -> bool {
    toxics.iter().any(|t| !t.kind.is_request())
}

enum Socket {
    /// The accepted client socket itself.
    Direct(TcpStream),
    /// Our end of a loopback connection whose other end a link joins to the client.
    Linked(TcpStream),
    /// The switch failed; every call errs.
    Broken,
}

/// What a switch to the linked path needs.
struct Link {
    shared: LinkShared,
    seed: u64,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

/// The client side of one `http` proxy connection.
pub struct ClientIo {
    socket: Socket,
    /// Woken on a change of the toxics while direct; `None` once linked.
    changed: Option<Changed>,
    link: Link,
    /// Set when the connection must end with a reset (RST) rather than a close (FIN).
    reset: Arc<AtomicBool>,
}

impl ClientIo {
    /// Wraps an accepted client socket. `seed`, `cancel` and `tracker` are for the link a TCP
    /// toxic brings in: its random draws, its end, and the drain that waits for it.
    pub fn new(
        client: TcpStream,
        shared: LinkShared,
        seed: u64,
        cancel: CancellationToken,
        tracker: TaskTracker,
    ) -> Self {
        let _ = client.set_nodelay(true);
        let mut toxics = shared.toxics.clone();
        let linked_now = has_tcp_toxics(&toxics.borrow_and_update());
        let mut io = Self {
            socket: Socket::Direct(client),
            changed: Some(ReusableBoxFuture::new(changed(toxics))),
            link: Link { shared, seed, cancel, tracker },
            reset: Arc::new(AtomicBool::new(false)),
        };
        if linked_now {
            io.switch();
        }
        io
    }

    /// Notices a change of the toxics (registering `cx` for the next one) and switches to the
    /// linked path when a TCP toxic is in force.
    fn watch_toxics(&mut self, cx: &mut Context<'_>) {
        let Some(future) = self.changed.as_mut() else { return };
        while let Poll::Ready((result, mut toxics)) = future.poll(cx) {
            if result.is_err() {
                // The proxy is gone; its cancellation ends the connection.
                self.changed = None;
                return;
            }
            let tcp = has_tcp_toxics(&toxics.borrow_and_update());
            future.set(changed(toxics));
            if tcp {
                self.switch();
                return;
            }
        }
    }

    /// Hands the client socket to a link and continues over a loopback connection to it.
    fn switch(&mut self) {
        self.changed = None;
        let Socket::Direct(client) = std::mem::replace(&mut self.socket, Socket::Broken) else { return };
        match loopback_pair() {
            Ok((near, far)) => {
                let Link { shared, seed, cancel, tracker } = &self.link;
                let (shared, seed, cancel, reset) = (shared.clone(), *seed, cancel.clone(), Arc::clone(&self.reset));
                tracker.spawn(async move { link::run_then_reset_if(client, far, shared, seed, cancel, &reset).await });
                self.socket = Socket::Linked(near);
            }
            Err(err) => tracing::warn!(%err, "cannot put a TCP toxic under an http connection; closing it"),
        }
    }

    /// A flag that, once set, makes the connection end with a reset (RST) instead of a close.
    pub fn reset_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.reset)
    }

    /// `n` bytes moved on `stream`: counted (while direct; a link counts its own), and the data
    /// plane polls for what answers them (unless they were a bulk move: `plane::BULK_READ`).
    fn moved(&self, stream: Stream, n: usize) {
        if n > 0 {
            crate::proxy::plane::moved(n);
        }
        if matches!(self.socket, Socket::Direct(_)) {
            self.link.shared.metrics.add_bytes(stream, n);
        }
    }

    fn socket(&mut self) -> io::Result<Pin<&mut TcpStream>> {
        match &mut self.socket {
            Socket::Direct(s) | Socket::Linked(s) => Ok(Pin::new(s)),
            Socket::Broken => Err(io::ErrorKind::ConnectionAborted.into()),
        }
    }
}

impl Drop for ClientIo {
    fn drop(&mut self) {
        if self.reset.load(Ordering::Relaxed)
            && let Socket::Direct(socket) | Socket::Linked(socket) = &self.socket
        {
            // A linked socket's link sees the flag too and resets the client in turn.
            let _ = socket.set_zero_linger();
        }
    }
}

/// A connected pair of loopback TCP sockets. On loopback the handshake completes inside
/// `connect`, so neither call waits.
fn loopback_pair() -> io::Result<(TcpStream, TcpStream)> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let near = std::net::TcpStream::connect(listener.local_addr()?)?;
    listener.set_nonblocking(true)?;
    let (far, _) = listener.accept()?;
    for socket in [&near, &far] {
        socket.set_nonblocking(true)?;
        socket.set_nodelay(true)?;
    }
    Ok((TcpStream::from_std(near)?, TcpStream::from_std(far)?))
}

impl AsyncRead for ClientIo {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        this.watch_toxics(cx);
        let before = buf.filled().len();
        ready!(this.socket()?.poll_read(cx, buf))?;
        this.moved(Stream::Upstream, buf.filled().len() - before);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for ClientIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        this.watch_toxics(cx);
        let n = ready!(this.socket()?.poll_write(cx, data))?;
        this.moved(Stream::Downstream, n);
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        this.watch_toxics(cx);
        let n = ready!(this.socket()?.poll_write_vectored(cx, data))?;
        this.moved(Stream::Downstream, n);
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.socket()?.poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.socket()?.poll_shutdown(cx)
    }
}
