//! One proxied connection: two directions, each on the fast path or the toxic pipeline.
//!
//! With no toxic on its stream a direction reads into its thread's 1 MiB scratch buffer and
//! writes straight on, watching the proxy's toxics; the moment one appears it switches to the
//! toxic pipeline (a reader stamping chunks with their arrival time, and a writer running them
//! through the [`Chain`]), and back when the last one goes. Bytes already read are always
//! written first.

use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, SemaphorePermit, mpsc, watch};
use tokio::time::{Instant, sleep, sleep_until};
use tokio_util::sync::CancellationToken;

use super::metrics::ProxyMetrics;
use super::toxic::{Stream, Toxic};
use super::toxics::{Chain, Piece, Verdict};

/// Bytes the toxic pipeline reads from a socket at first; each read that fills its request
/// doubles the next, up to [`MAX_READ`], and a short one (the socket drained) starts again here.
/// A bulk transfer is read in large chunks (fewer calls: the kernel's cost per call dominates),
/// while small messages share small buffers, so a chunk held back by a toxic never pins much
/// more memory than its bytes.
const READ_CHUNK: usize = 32 * 1024;
/// The largest read of the toxic pipeline: as the fast path's (`SCRATCH_BYTES`).
const MAX_READ: usize = SCRATCH_BYTES;
/// Bytes one direction's toxic pipeline holds at most (read, not yet written): about a TCP
/// window, so a latency toxic limits a bulk transfer as a long network path does (a window per
/// period) rather than to a few chunks per period. This bounds memory per link.
const IN_FLIGHT_BYTES: usize = 4 * 1024 * 1024;
/// Chunks it holds at most, however small: Toxiproxy's latency toxic buffers 1,024 chunks so
/// that a stream of small messages is not held behind earlier ones.
const IN_FLIGHT_CHUNKS: usize = 1024;

/// Half of tokio's timer resolution (1 ms), for when no precise timer could be made
/// (see [`Direction::write_pieces`]).
const HALF_TIMER_TICK: std::time::Duration = std::time::Duration::from_micros(500);

/// The toxics of a proxy, as its links see them: upstream ones first, then downstream.
pub type ToxicList = Arc<Vec<Toxic>>;

/// What a link needs from its proxy.
#[derive(Clone)]
pub struct LinkShared {
    /// The proxy's toxics; every change is pushed to open links.
    pub toxics: watch::Receiver<ToxicList>,
    /// Where bytes and activations are counted.
    pub metrics: Arc<ProxyMetrics>,
}

/// Forwards between `client` and `upstream` until both directions end or `cancel` fires.
/// `seed` makes this connection's random draws repeatable.
pub async fn run(client: TcpStream, upstream: TcpStream, shared: LinkShared, seed: u64, cancel: CancellationToken) {
    run_then_reset_if(client, upstream, shared, seed, cancel, &std::sync::atomic::AtomicBool::new(false)).await;
}

/// [`run`], ending both connections with a reset (RST) rather than a close if `reset` is set by
/// then (an `http` proxy's `http_abort` on a connection under a TCP toxic).
pub async fn run_then_reset_if(
    client: TcpStream,
    upstream: TcpStream,
    shared: LinkShared,
    seed: u64,
    cancel: CancellationToken,
    reset: &std::sync::atomic::AtomicBool,
) {
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let up = Direction::new(&client, &upstream, Stream::Upstream, &shared, &cancel, seed);
    let down = Direction::new(&upstream, &client, Stream::Downstream, &shared, &cancel, seed.rotate_left(32) ^ 1);
    let (a, b) = tokio::join!(up.forward(), down.forward());
    if a == Verdict::Reset || b == Verdict::Reset || reset.load(std::sync::atomic::Ordering::Relaxed) {
        // Linger 0 makes the close send RST: the peer sees "connection reset by peer".
        let _ = client.set_zero_linger();
        let _ = upstream.set_zero_linger();
    }
}

/// What a forwarding stage ended with.
enum Step {
    /// The toxics changed: re-sync and pick the path again.
    Changed,
    /// The direction is over.
    Done(Verdict),
}

/// An item the toxic reader hands to the toxic writer.
enum Item<'a> {
    /// Bytes, when they arrived, and their share of the in-flight budget (returned on drop).
    Data(Bytes, Instant, SemaphorePermit<'a>),
    Eof,
    Failed,
}

struct Direction<'a> {
    src: &'a TcpStream,
    dst: &'a TcpStream,
    stream: Stream,
    toxics: watch::Receiver<ToxicList>,
    metrics: &'a ProxyMetrics,
    /// Cancelled when the connection must close (other direction failed, proxy stopped).
    cancel: &'a CancellationToken,
    chain: Chain,
    /// The timer scheduled pieces wait on, made on first use.
    timer: Timer,
}

/// What a direction's scheduled pieces wait on.
enum Timer {
    /// Not needed yet: most links never wait.
    Untried,
    /// A timer with the kernel's resolution, and its place in the descriptor budget.
    Precise {
        /// The timerfd.
        timer: super::sys::Timer,
        /// Given back to the budget when the timer goes.
        _held: super::budget::Descriptors,
    },
    /// None could be made: tokio's millisecond timer.
    Coarse,
}

impl<'a> Direction<'a> {
    fn new(
        src: &'a TcpStream,
        dst: &'a TcpStream,
        stream: Stream,
        shared: &'a LinkShared,
        cancel: &'a CancellationToken,
        seed: u64,
    ) -> Self {
        Self {
            src,
            dst,
            stream,
            toxics: shared.toxics.clone(),
            metrics: &shared.metrics,
            cancel,
            chain: Chain::new(stream, seed, shared.metrics.clone()),
            timer: Timer::Untried,
        }
    }

    async fn forward(mut self) -> Verdict {
        let verdict = loop {
            let synced = self.sync();
            if synced != Verdict::Continue {
                break synced;
            }
            let step = if self.chain.is_empty() {
                // Back on the fast path a link holds no timer: descriptors go to connections.
                self.timer = Timer::Untried;
                self.fast_path().await
            } else {
                self.toxic_path().await
            };
            if let Step::Done(verdict) = step {
                break verdict;
            }
        };
        if verdict != Verdict::Continue {
            self.cancel.cancel();
        }
        verdict
    }

    /// Applies the proxy's current toxics to this direction's chain.
    fn sync(&mut self) -> Verdict {
        let wanted = self.toxics.borrow_and_update().clone();
        self.chain.sync(&wanted, Instant::now())
    }

    /// Waits for a change of the toxics; if the proxy is gone, waits for the cancellation.
    async fn changed(toxics: &mut watch::Receiver<ToxicList>, cancel: &CancellationToken) {
        if toxics.changed().await.is_err() {
            cancel.cancelled().await;
        }
    }

    /// Ends this direction's byte stream on the destination, keeping the other direction open.
    fn half_close(&self) -> Step {
        let _ = socket2::SockRef::from(self.dst).shutdown(std::net::Shutdown::Write);
        Step::Done(Verdict::Continue)
    }

    /// The fast path: bytes read into the thread's scratch buffer are written straight on, so
    /// an idle or caught-up connection holds no buffer of its own; only what the destination
    /// cannot take at once is kept, in a buffer the size of that remainder, until it has gone.
    async fn fast_path(&mut self) -> Step {
        loop {
            tokio::select! {
                biased;
                () = self.cancel.cancelled() => return Step::Done(Verdict::Close),
                () = Self::changed(&mut self.toxics, self.cancel) => return Step::Changed,
                ready = self.src.readable() => if ready.is_err() { return Step::Done(Verdict::Close) },
            }
            let moved = SCRATCH.with_borrow_mut(|slot| {
                let mut scratch = slot.take().unwrap_or_else(Scratch::new);
                let bytes = scratch.bytes_mut();
                let moved = read_draining(self.src, bytes).and_then(|read| {
                    let written = if read == 0 { 0 } else { write_now(self.dst, &bytes[..read])? };
                    Ok((read, written))
                });
                let rest = match moved {
                    Ok((read, written)) if read - written >= KEEP_SCRATCH_FROM => {
                        return Ok((read, Rest::Scratch(scratch, written..read)));
                    }
                    Ok((read, written)) if read > written => {
                        Rest::Copied(Bytes::copy_from_slice(&bytes[written..read]))
                    }
                    _ => Rest::None,
                };
                *slot = Some(scratch);
                moved.map(|(read, _)| (read, rest))
            });
            match moved {
                Ok((0, _)) => return self.half_close(),
                Ok((read, rest)) => {
                    super::plane::moved(read);
                    let sent = match rest {
                        Rest::None => Ok(()),
                        Rest::Copied(rest) => write_all(self.dst, &rest, self.cancel).await,
                        Rest::Scratch(scratch, range) => {
                            let sent = write_all(self.dst, &scratch.bytes()[range], self.cancel).await;
                            SCRATCH.with_borrow_mut(|slot| {
                                slot.get_or_insert(scratch);
                            });
                            sent
                        }
                    };
                    if sent.is_err() {
                        return Step::Done(Verdict::Close);
                    }
                    self.metrics.add_bytes(self.stream, read);
                }
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return Step::Done(Verdict::Close),
            }
        }
    }

    /// Runs the direction through the toxic chain until the chain empties or the stream ends.
    async fn toxic_path(&mut self) -> Step {
        let budget = Semaphore::new(IN_FLIGHT_BYTES);
        let (tx, mut rx) = mpsc::channel(IN_FLIGHT_CHUNKS);
        let stop = self.cancel.child_token();
        let src = self.src;
        let reader = read_chunks(src, tx, &budget, &stop);
        let writer = async {
            let step = self.write_chunks(&mut rx).await;
            stop.cancel();
            match step {
                // The chain emptied: forward what the reader already took, then switch back.
                Step::Changed => self.flush_plain(&mut rx).await,
                done @ Step::Done(_) => {
                    // Wakes a reader blocked on a full queue, so it ends too.
                    rx.close();
                    done
                }
            }
        };
        let ((), step) = tokio::join!(reader, writer);
        step
    }

    async fn write_chunks(&mut self, rx: &mut mpsc::Receiver<Item<'_>>) -> Step {
        loop {
            if self.chain.is_empty() {
                return Step::Changed;
            }
            let deadline = self.chain.deadline();
            tokio::select! {
                biased;
                () = self.cancel.cancelled() => return Step::Done(Verdict::Close),
                () = Self::changed(&mut self.toxics, self.cancel) => {
                    let synced = self.sync();
                    if synced != Verdict::Continue {
                        return Step::Done(synced);
                    }
                }
                () = sleep_until(deadline.map_or_else(Instant::now, |(at, _)| at)), if deadline.is_some() => {
                    return Step::Done(deadline.map_or(Verdict::Close, |(_, verdict)| verdict));
                }
                item = rx.recv() => match item {
                    // The chunk keeps its share of the budget until it has been written.
                    Some(Item::Data(data, arrived, _held)) => {
                        let (pieces, verdict) = self.chain.on_data(data, arrived);
                        if let Err(verdict) = self.write_pieces(pieces).await {
                            return Step::Done(verdict);
                        }
                        if verdict != Verdict::Continue {
                            return Step::Done(verdict);
                        }
                    }
                    Some(Item::Eof) => {
                        let delay = self.chain.on_eof();
                        tokio::select! {
                            biased;
                            () = self.cancel.cancelled() => return Step::Done(Verdict::Close),
                            () = sleep(delay) => return self.half_close(),
                        }
                    }
                    Some(Item::Failed) | None => return Step::Done(Verdict::Close),
                },
            }
        }
    }

    /// Writes pieces at their scheduled instants. A change of the toxics while waiting ends the
    /// waiting (the rest of this chunk goes out at once, as in Toxiproxy) and applies the change.
    async fn write_pieces(&mut self, pieces: Vec<Piece>) -> Result<(), Verdict> {
        let mut interrupted = false;
        for piece in pieces {
            if !interrupted && Instant::now() < piece.ready_at && matches!(self.timer, Timer::Untried) {
                let timer = super::budget::take(1)
                    .ok_or_else(|| std::io::Error::other("no descriptors left in the budget"))
                    .and_then(|held| super::sys::Timer::new().map(|timer| (timer, held)));
                self.timer = timer.map_or_else(
                    |err| {
                        tracing::debug!(%err, "no timerfd; latency waits on tokio's timer");
                        Timer::Coarse
                    },
                    |(timer, held)| Timer::Precise { timer, _held: held },
                );
            }
            // Without the precise timer: tokio's fires on the first millisecond tick at or after a
            // deadline; aiming half a tick early centres its error on the configured value.
            let due = if matches!(self.timer, Timer::Precise { .. }) {
                piece.ready_at
            } else {
                piece.ready_at.checked_sub(HALF_TIMER_TICK).unwrap_or(piece.ready_at)
            };
            while !interrupted && Instant::now() < due {
                let precise = if let Timer::Precise { timer, .. } = &self.timer { Some(timer) } else { None };
                tokio::select! {
                    biased;
                    () = self.cancel.cancelled() => return Err(Verdict::Close),
                    () = Self::changed(&mut self.toxics, self.cancel) => {
                        let synced = self.sync();
                        if synced != Verdict::Continue {
                            return Err(synced);
                        }
                        interrupted = true;
                    }
                    () = sleep_on(precise, due) => {}
                }
            }
            write_all(self.dst, &piece.data, self.cancel).await.map_err(|_| Verdict::Close)?;
            self.metrics.add_bytes(self.stream, piece.data.len());
        }
        Ok(())
    }

    /// Forwards whatever is left in the queue untouched; the reader has been told to stop.
    async fn flush_plain(&mut self, rx: &mut mpsc::Receiver<Item<'_>>) -> Step {
        while let Some(item) = rx.recv().await {
            match item {
                Item::Data(data, _, _held) => {
                    if write_all(self.dst, &data, self.cancel).await.is_err() {
                        return Step::Done(Verdict::Close);
                    }
                    self.metrics.add_bytes(self.stream, data.len());
                }
                Item::Eof => return self.half_close(),
                Item::Failed => return Step::Done(Verdict::Close),
            }
        }
        Step::Changed
    }
}

/// Sleeps until `due` on the precise timer, or on tokio's if there is none or it fails.
async fn sleep_on(precise: Option<&super::sys::Timer>, due: Instant) {
    if let Some(timer) = precise
        && timer.sleep_until(due.into_std()).await.is_ok()
    {
        return;
    }
    sleep_until(due).await;
}

/// Reads chunks, stamped with their arrival, until end of stream, an error, or `stop`, holding
/// at most `budget` bytes in flight. A chunk already read is always handed over: `stop` is only
/// honoured while waiting for room or for data.
async fn read_chunks<'a>(src: &TcpStream, tx: mpsc::Sender<Item<'a>>, budget: &'a Semaphore, stop: &CancellationToken) {
    let mut buf = BytesMut::new();
    let mut want = READ_CHUNK;
    loop {
        // Room for a whole read first, so the bytes read always fit the budget.
        let mut room = tokio::select! {
            biased;
            () = stop.cancelled() => return,
            room = budget.acquire_many(want as u32) => match room {
                Ok(room) => room,
                Err(_) => return,
            },
        };
        tokio::select! {
            biased;
            () = stop.cancelled() => return,
            ready = src.readable() => if ready.is_err() {
                let _ = tx.send(Item::Failed).await;
                return;
            },
        }
        // Reuses the buffer in place once every chunk cut from it has been written. A large read
        // starts on a page, as the fast path's do (see `Scratch`); the bytes skipped are never
        // handed over.
        let align = if want > READ_CHUNK { PAGE } else { 1 };
        buf.reserve(want + align - 1);
        let skip = to_boundary(buf.spare_capacity_mut().as_ptr().cast(), align);
        buf.put_bytes(0, skip);
        buf.advance(skip);
        let item = match src.try_read_buf(&mut (&mut buf).limit(want)) {
            Ok(0) => Item::Eof,
            Ok(n) => {
                // Only what was read stays held; the rest of the room goes back.
                drop(room.split(want - n));
                let data = buf.split().freeze();
                if n == want {
                    want = (want * 2).min(MAX_READ);
                } else {
                    want = READ_CHUNK;
                    // What a large read left unfilled is not kept for the small reads to come.
                    if buf.capacity() > 2 * READ_CHUNK {
                        buf = BytesMut::new();
                    }
                }
                Item::Data(data, Instant::now(), room)
            }
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(_) => Item::Failed,
        };
        let last = !matches!(item, Item::Data(..));
        if tx.send(item).await.is_err() || last {
            return;
        }
    }
}

/// Bytes the fast path reads at once: as socat's `-b 1048576`. One buffer per data-plane thread,
/// lent to a direction only while it waits to write a large remainder (`KEEP_SCRATCH_FROM`).
const SCRATCH_BYTES: usize = 1024 * 1024;

/// A remainder the destination did not take at once, from this size up, keeps the scratch buffer
/// it is in until it has gone (the thread makes another for the next read, if any comes first),
/// instead of being copied into a buffer of its own: under backpressure a bulk transfer leaves
/// hundreds of KiB behind at every other read, and copying them into fresh memory each time
/// costs a copy and spreads the bytes over memory the caches do not hold. A smaller remainder is
/// copied, so a slow destination pins at most 16 times the bytes it owes, and never more than
/// the one buffer.
const KEEP_SCRATCH_FROM: usize = 64 * 1024;

/// What the fast path still owes the destination after a read.
enum Rest {
    /// Nothing: the destination took it all.
    None,
    /// A small remainder, copied out of the scratch buffer.
    Copied(Bytes),
    /// A large remainder, in the scratch buffer itself, taken from the thread until written.
    Scratch(Scratch, std::ops::Range<usize>),
}

thread_local! {
    /// The fast path's read buffer, made on first use.
    static SCRATCH: std::cell::RefCell<Option<Scratch>> = const { std::cell::RefCell::new(None) };
}

/// Where the fast path's reads start, and the toxic pipeline's large ones: a page boundary.
const PAGE: usize = 4096;

/// Bytes from `at` to the next multiple of `align` (a power of two): 0 if it is on one.
fn to_boundary(at: *const u8, align: usize) -> usize {
    at.addr().wrapping_neg() % align
}

/// The fast path's read buffer: `SCRATCH_BYTES` starting on a page boundary, as socat's is.
/// The kernel copies bulk data between whole pages of its own and this buffer (`rep movsb`),
/// and a copy whose destination lies a little past its source's offset in a page stalls on
/// every load (4K aliasing: the CPU takes a load for one from an address just stored to). The
/// allocator gives a 1 MiB buffer 16 bytes past a page, which is that case exactly, and, as its
/// history goes, other offsets: the throughput changed from run to run. Measured (BENCHMARKS.md):
/// through a fresh daemon, iperf3 moved 12.6 Gbit/s up with the allocator's buffer and 16.6 with
/// this one, socat 15.1, in the same interleaved rounds.
struct Scratch {
    memory: Box<[u8]>,
    start: usize,
}

impl Scratch {
    fn new() -> Self {
        let memory = vec![0; SCRATCH_BYTES + PAGE].into_boxed_slice();
        let start = to_boundary(memory.as_ptr(), PAGE);
        Self { memory, start }
    }

    /// The aligned `SCRATCH_BYTES`.
    fn bytes(&self) -> &[u8] {
        &self.memory[self.start..self.start + SCRATCH_BYTES]
    }

    /// The aligned `SCRATCH_BYTES`, to read into.
    fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.memory[self.start..self.start + SCRATCH_BYTES]
    }
}

/// Reads what `src` holds into `buf`. A short read means the socket is drained (tokio's own
/// reads assume the same): it clears the readiness, so the next turn waits for data instead of
/// spending a `read` to learn there is none. tokio only clears readiness no newer event has set,
/// so no arrival is missed.
fn read_draining(src: &TcpStream, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = None;
    let read = src.try_io(Interest::READABLE, || {
        let n = std::io::Read::read(&mut &*socket2::SockRef::from(src), buf)?;
        got = Some(n);
        if n > 0 && n < buf.len() { Err(std::io::ErrorKind::WouldBlock.into()) } else { Ok(n) }
    });
    match (read, got) {
        (Err(err), Some(n)) if err.kind() == std::io::ErrorKind::WouldBlock => Ok(n),
        (read, _) => read,
    }
}

/// Writes as much of `data` as `dst` takes without waiting.
fn write_now(dst: &TcpStream, mut data: &[u8]) -> std::io::Result<usize> {
    let total = data.len();
    while !data.is_empty() {
        match dst.try_write(data) {
            Ok(n) => data = &data[n..],
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(err) => return Err(err),
        }
    }
    Ok(total - data.len())
}

/// Writes all of `data` to a shared socket, giving up when `cancel` fires: each time `dst` is
/// writable, as much as it takes.
async fn write_all(dst: &TcpStream, mut data: &[u8], cancel: &CancellationToken) -> std::io::Result<()> {
    while !data.is_empty() {
        tokio::select! {
            biased;
            () = cancel.cancelled() => return Err(std::io::ErrorKind::ConnectionAborted.into()),
            ready = dst.writable() => ready?,
        }
        data = &data[write_now(dst, data)?..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The toxic pipeline's reader grows its reads while a bulk transfer keeps the socket full
    /// (never past `MAX_READ`), starts small again once the socket is drained, and hands every
    /// byte over in order.
    #[tokio::test]
    async fn the_reader_grows_its_reads_under_bulk_and_keeps_every_byte() {
        const BULK: usize = 8 * 1024 * 1024;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let sent: Vec<u8> = (0..BULK).map(|i| (i % 251) as u8).collect();
        let (go_on, go_on_rx) = std::sync::mpsc::channel::<()>();
        let writer = {
            let sent = sent.clone();
            std::thread::spawn(move || {
                let mut socket = std::net::TcpStream::connect(address).unwrap();
                std::io::Write::write_all(&mut socket, &sent).unwrap();
                // After the bulk has been read: one small message.
                go_on_rx.recv().unwrap();
                std::io::Write::write_all(&mut socket, b"ping").unwrap();
                go_on_rx.recv().unwrap();
            })
        };
        let (src, _) = listener.accept().await.unwrap();
        let budget = Semaphore::new(IN_FLIGHT_BYTES);
        let (tx, mut rx) = mpsc::channel(IN_FLIGHT_CHUNKS);
        let stop = CancellationToken::new();
        let reader = read_chunks(&src, tx, &budget, &stop);
        let consumer = async {
            let mut got = Vec::with_capacity(BULK);
            let mut sizes = Vec::new();
            let mut off_page = Vec::new();
            while got.len() < BULK {
                match rx.recv().await {
                    Some(Item::Data(data, _, _held)) => {
                        sizes.push(data.len());
                        if data.len() > READ_CHUNK {
                            off_page.push(data.as_ptr().addr() % PAGE);
                        }
                        got.extend_from_slice(&data);
                    }
                    _ => panic!("the stream ended after {} bytes", got.len()),
                }
            }
            go_on.send(()).unwrap();
            let Some(Item::Data(small, _, _)) = rx.recv().await else { panic!("no message after the bulk") };
            stop.cancel();
            go_on.send(()).unwrap();
            (got, sizes, small, off_page)
        };
        let ((), (got, sizes, small, off_page)) = tokio::join!(reader, consumer);
        writer.join().unwrap();
        assert!(got == sent, "the bulk came out changed");
        assert!(sizes[0] <= READ_CHUNK, "first read {} bytes", sizes[0]);
        assert!(sizes.iter().all(|&n| n <= MAX_READ), "a read past MAX_READ: {sizes:?}");
        assert!(sizes.iter().any(|&n| n > READ_CHUNK), "reads never grew: {sizes:?}");
        // Each read asks for at most twice the one before (if that filled its request) or
        // READ_CHUNK (if it did not).
        assert!(sizes.windows(2).all(|w| w[1] <= READ_CHUNK.max(2 * w[0])), "{sizes:?}");
        // A large read starts on a page, whatever the allocator gave.
        assert!(off_page.iter().all(|&offset| offset == 0), "large chunks' offsets in their page: {off_page:?}");
        assert_eq!(&small[..], b"ping");
    }

    #[test]
    fn the_scratch_buffer_starts_on_a_page_whatever_the_allocator_gives() {
        // Held at once, so each comes from a different place (the first from a fresh mapping,
        // 16 bytes past a page, on glibc).
        let mut buffers: Vec<Scratch> = (0..4).map(|_| Scratch::new()).collect();
        for scratch in &mut buffers {
            assert_eq!(scratch.bytes().as_ptr().addr() % PAGE, 0);
            assert_eq!(scratch.bytes().len(), SCRATCH_BYTES);
            let last = scratch.bytes_mut().last_mut().unwrap();
            *last = 7;
            assert_eq!(scratch.bytes()[SCRATCH_BYTES - 1], 7);
        }
    }

    /// Two links on one thread, each forwarding 8 MiB into a destination with a small send
    /// buffer: most reads leave a remainder larger than `KEEP_SCRATCH_FROM`, which keeps the
    /// scratch buffer it is in while the other link reads into another. Every byte arrives, in
    /// order, on each.
    #[tokio::test]
    async fn large_remainders_keep_the_scratch_buffer_and_every_byte() {
        const BULK: usize = 8 * 1024 * 1024;
        let (_toxics_tx, toxics) = watch::channel(ToxicList::default());
        let shared = LinkShared { toxics, metrics: Arc::new(ProxyMetrics::default()) };
        let mut links = Vec::new();
        let mut ends = Vec::new();
        for link in 0..2u8 {
            let front = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let back = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let (front_address, back_address) = (front.local_addr().unwrap(), back.local_addr().unwrap());
            let sent: Vec<u8> = (0..BULK).map(|i| (i % 251) as u8 ^ link).collect();
            let sender = {
                let sent = sent.clone();
                std::thread::spawn(move || {
                    let mut socket = std::net::TcpStream::connect(front_address).unwrap();
                    std::io::Write::write_all(&mut socket, &sent).unwrap();
                    socket.shutdown(std::net::Shutdown::Write).unwrap();
                    // Held open until the far end has everything, so the link ends by half-closes.
                    let mut rest = Vec::new();
                    std::io::Read::read_to_end(&mut socket, &mut rest).unwrap();
                })
            };
            let receiver = std::thread::spawn(move || {
                let mut socket = std::net::TcpStream::connect(back_address).unwrap();
                let mut got = Vec::with_capacity(BULK);
                std::io::Read::read_to_end(&mut socket, &mut got).unwrap();
                socket.shutdown(std::net::Shutdown::Write).unwrap();
                got
            });
            let (client, _) = front.accept().await.unwrap();
            let (upstream, _) = back.accept().await.unwrap();
            socket2::SockRef::from(&upstream).set_send_buffer_size(16 * 1024).unwrap();
            let shared = LinkShared { toxics: shared.toxics.clone(), metrics: Arc::clone(&shared.metrics) };
            links.push(run(client, upstream, shared, u64::from(link), CancellationToken::new()));
            ends.push((sent, sender, receiver));
        }
        let mut links = links.into_iter();
        tokio::join!(links.next().unwrap(), links.next().unwrap());
        for (link, (sent, sender, receiver)) in ends.into_iter().enumerate() {
            sender.join().unwrap();
            let got = receiver.join().unwrap();
            assert_eq!(got.len(), BULK, "link {link}: bytes lost or added");
            assert!(got == sent, "link {link}: the bytes came out changed");
        }
    }
}
