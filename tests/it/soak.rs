//! The proxy core under churn, on real sockets: streams echoed through a proxy while four admin
//! clients add, update (attributes and toxicity) and remove toxics of every byte-level type at
//! random. Every stream must come back byte-exact — the whole of it, or a prefix when a toxic
//! ended the connection — never with a gap.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{Daemon, echo_server};

/// A stream's bytes: a seeded random sequence, so a skip anywhere shows.
fn bytes_of(id: u64, len: usize) -> Vec<u8> {
    let mut rng = SmallRng::seed_from_u64(id);
    (0..len).map(|_| rng.random::<u8>()).collect()
}

/// What one stream got back.
struct Outcome {
    sent: usize,
    received: Vec<u8>,
}

/// Sends `len` bytes of stream `id` through `proxy` in random chunks and reads the echo, until
/// the echo is complete or the connection ends.
async fn one_stream(proxy: &str, id: u64, len: usize) -> Outcome {
    let data = bytes_of(id, len);
    let Ok(stream) = TcpStream::connect(proxy).await else { return Outcome { sent: 0, received: Vec::new() } };
    let (mut read, mut write) = stream.into_split();
    let mut rng = SmallRng::seed_from_u64(id ^ 0x5eed);
    let sizes: Vec<usize> = (0..64).map(|_| rng.random_range(1..64 * 1024)).collect();
    let writer = async {
        let mut sent = 0;
        for size in sizes.iter().cycle() {
            let end = (sent + size).min(len);
            if end == sent || write.write_all(&data[sent..end]).await.is_err() {
                break;
            }
            sent = end;
        }
        let _ = write.shutdown().await;
        sent
    };
    let reader = async {
        let mut received = Vec::new();
        let mut buf = vec![0_u8; 64 * 1024];
        // Ends at EOF, at a reset, or at `len`.
        while received.len() < len {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
        received
    };
    let both = async { tokio::join!(writer, reader) };
    let (sent, received) = tokio::time::timeout(Duration::from_secs(30), both)
        .await
        .unwrap_or_else(|elapsed| panic!("stream {id} neither finished nor ended: {elapsed}"));
    Outcome { sent, received }
}

/// A random toxic of a byte-level type (mild enough that streams make progress).
fn random_toxic(rng: &mut SmallRng, name: &str) -> String {
    let stream = if rng.random_bool(0.5) { "upstream" } else { "downstream" };
    let toxicity = [0.3, 0.7, 1.0][rng.random_range(0..3)];
    let attributes = match rng.random_range(0..8) {
        0 => ("latency", format!(r#"{{"latency":{},"jitter":1}}"#, rng.random_range(0..5))),
        1 => ("bandwidth", format!(r#"{{"rate":{}}}"#, rng.random_range(2_000..50_000))),
        2 => ("slicer", r#"{"average_size":512,"size_variation":100,"delay":10}"#.to_owned()),
        3 => ("timeout", format!(r#"{{"timeout":{}}}"#, rng.random_range(0..300))),
        4 => ("reset_peer", format!(r#"{{"timeout":{}}}"#, rng.random_range(0..300))),
        5 => ("limit_data", format!(r#"{{"bytes":{}}}"#, rng.random_range(1_000..500_000))),
        6 => ("slow_close", r#"{"delay":10}"#.to_owned()),
        _ => ("noop", "{}".to_owned()),
    };
    format!(
        r#"{{"name":"{name}","type":"{}","stream":"{stream}","toxicity":{toxicity},"attributes":{}}}"#,
        attributes.0, attributes.1
    )
}

/// Toxic changes each of the four admin clients makes.
const CHANGES_PER_ADMIN: u64 = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_stay_byte_exact_through_random_toxic_churn() {
    let daemon = Arc::new(Daemon::start().await);
    let proxy = daemon.proxy("churn", echo_server().await).await.to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let changes = Arc::new(AtomicU64::new(0));
    let mut admins = Vec::new();
    // A fixed number of changes, not a fixed time: a loaded machine runs the same test slower.
    for admin in 0..4_u64 {
        let changes = changes.clone();
        let daemon = daemon.clone();
        admins.push(tokio::spawn(async move {
            let mut rng = SmallRng::seed_from_u64(admin);
            for _ in 0..CHANGES_PER_ADMIN {
                let name = format!("t{}", rng.random_range(0..6));
                let path = format!("/proxies/churn/toxics/{name}");
                let status = match rng.random_range(0..3) {
                    0 => {
                        daemon.call("POST", "/proxies/churn/toxics", Some(&random_toxic(&mut rng, &name))).await.status
                    }
                    1 => {
                        let body = format!(r#"{{"toxicity":{}}}"#, [0.0, 0.5, 1.0][rng.random_range(0..3)]);
                        daemon.call("POST", &path, Some(&body)).await.status
                    }
                    _ => daemon.call("DELETE", &path, None).await.status,
                };
                assert!([200, 204, 404, 409].contains(&status), "admin answered {status}");
                changes.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(rng.random_range(1..20))).await;
            }
        }));
    }
    let mut clients = Vec::new();
    for client in 0..16_u64 {
        let (proxy, stop) = (proxy.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            let mut rng = SmallRng::seed_from_u64(1000 + client);
            let (mut whole, mut cut, mut streams) = (0_u64, 0_u64, 0_u64);
            while !stop.load(Ordering::Relaxed) {
                let id = client << 32 | streams;
                streams += 1;
                let len = rng.random_range(1..1_000_000);
                let outcome = one_stream(&proxy, id, len).await;
                let data = bytes_of(id, len);
                let got = outcome.received.len();
                assert!(got <= outcome.sent, "stream {id}: more back than sent");
                if let Some(at) = outcome.received.iter().zip(&data).position(|(a, b)| a != b) {
                    panic!("stream {id}: byte {at} of {got} is not the one sent: a gap or a corruption");
                }
                if got == len { whole += 1 } else { cut += 1 }
            }
            (whole, cut)
        }));
    }
    for admin in admins {
        admin.await.unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    // Whatever toxics are left come out, so every stream can end.
    assert_eq!(daemon.call("POST", "/reset", None).await.status, 204);
    let (mut whole, mut cut) = (0, 0);
    for client in clients {
        let (w, c) = client.await.unwrap();
        whole += w;
        cut += c;
    }
    let changes = changes.load(Ordering::Relaxed);
    eprintln!("soak: {changes} toxic changes, {whole} streams whole, {cut} ended early by a toxic, none with a gap");
    assert_eq!(changes, 4 * CHANGES_PER_ADMIN, "every toxic change was answered");
    assert!(whole > 20 && cut > 20, "both outcomes were exercised: {whole} whole, {cut} cut");
}
