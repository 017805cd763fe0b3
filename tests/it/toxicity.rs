//! Toxicity: 0 and 1 exactly, 0.5 within a statistical bound, and seeded repeatability.

use std::net::SocketAddr;

use tokio::io::AsyncWriteExt;

use crate::harness::{Daemon, connect, echo_server, read_to_end, round_trip};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn toxicity_zero_never_applies_even_reset_peer() {
    let d = Daemon::start().await;
    let listen = d.proxy("p", echo_server().await).await;
    d.toxic("p", r#"{"type":"reset_peer","toxicity":0,"attributes":{"timeout":0}}"#).await;
    for _ in 0..50 {
        let mut stream = connect(listen).await;
        assert_eq!(round_trip(&mut stream, b"safe").await.0, b"safe");
    }
}

/// Sends two bytes through a `limit_data` of one byte: an affected connection returns one.
async fn affected(listen: SocketAddr) -> bool {
    let mut stream = connect(listen).await;
    stream.write_all(b"ab").await.unwrap();
    stream.shutdown().await.unwrap();
    match read_to_end(&mut stream).await.0.as_slice() {
        b"a" => true,
        b"ab" => false,
        other => panic!("unexpected answer {other:?}"),
    }
}

async fn outcomes(listen: SocketAddr, connections: usize) -> Vec<bool> {
    let mut out = Vec::with_capacity(connections);
    for _ in 0..connections {
        out.push(affected(listen).await);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn toxicity_one_always_applies() {
    let d = Daemon::start().await;
    let listen = d.proxy("p", echo_server().await).await;
    d.toxic("p", r#"{"type":"limit_data","toxicity":1,"attributes":{"bytes":1}}"#).await;
    assert!(outcomes(listen, 100).await.into_iter().all(|hit| hit));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn toxicity_half_over_a_thousand_connections() {
    let d = Daemon::start().await;
    let listen = d.proxy("p", echo_server().await).await;
    d.toxic("p", r#"{"type":"limit_data","toxicity":0.5,"attributes":{"bytes":1}}"#).await;
    let hits = outcomes(listen, 1000).await.into_iter().filter(|&hit| hit).count();
    // Binomial(1000, 0.5): standard deviation 15.8; five of them either side.
    assert!((421..=579).contains(&hits), "{hits} of 1000 connections affected");
    let metrics = d.call("GET", "/metrics", None).await.text;
    let line = format!(
        "firedrill_toxic_activations_total{{proxy=\"p\",toxic=\"limit_data_downstream\",type=\"limit_data\"}} {hits}"
    );
    assert!(metrics.contains(&line), "activations must match the wire: {line}\n{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_seed_makes_the_same_draws() {
    let mut runs = Vec::new();
    for _ in 0..2 {
        let d = Daemon::start().await; // seeded with 42
        let listen = d.proxy("p", echo_server().await).await;
        d.toxic("p", r#"{"type":"limit_data","toxicity":0.5,"attributes":{"bytes":1}}"#).await;
        runs.push(outcomes(listen, 64).await);
    }
    assert_eq!(runs[0], runs[1]);
    assert!(runs[0].iter().any(|&h| h) && runs[0].iter().any(|&h| !h));
}
