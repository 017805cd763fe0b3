//! Toxics added to, updated on and removed from connections that are already open.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{Daemon, PATIENCE, connect, echo_server, ms, pattern, read_to_end, round_trip};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_update_remove_on_an_open_connection() {
    let d = Daemon::start().await;
    let listen = d.proxy("p", echo_server().await).await;
    let mut stream = connect(listen).await;
    let (_, fast) = round_trip(&mut stream, b"before").await;
    assert!(fast < ms(150), "no toxic yet: {fast:?}");

    d.toxic("p", r#"{"type":"latency","attributes":{"latency":300}}"#).await;
    let (back, slow) = round_trip(&mut stream, b"added").await;
    assert_eq!(back, b"added");
    assert!(slow >= ms(295), "added toxic must apply to the open connection: {slow:?}");

    let (status, _) =
        d.json("POST", "/proxies/p/toxics/latency_downstream", Some(r#"{"attributes":{"latency":80}}"#)).await;
    assert_eq!(status, 200);
    let (back, updated) = round_trip(&mut stream, b"updated").await;
    assert_eq!(back, b"updated");
    assert!(updated >= ms(78) && updated < ms(280), "updated toxic must apply: {updated:?}");

    assert_eq!(d.call("DELETE", "/proxies/p/toxics/latency_downstream", None).await.status, 204);
    let (back, after) = round_trip(&mut stream, b"removed").await;
    assert_eq!(back, b"removed");
    assert!(after < ms(70), "removed toxic must stop applying: {after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_long_latency_delivers_at_once() {
    let d = Daemon::start().await;
    let listen = d.proxy("p", echo_server().await).await;
    d.toxic("p", r#"{"type":"latency","attributes":{"latency":60000}}"#).await;
    let mut stream = connect(listen).await;
    stream.write_all(b"waiting").await.unwrap();
    tokio::time::sleep(ms(150)).await;
    let started = std::time::Instant::now();
    assert_eq!(d.call("DELETE", "/proxies/p/toxics/latency_downstream", None).await.status, 204);
    let mut buf = [0; 7];
    tokio::time::timeout(PATIENCE, stream.read_exact(&mut buf)).await.expect("removal never hangs").unwrap();
    assert_eq!(&buf, b"waiting");
    assert!(started.elapsed() < ms(2000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_timeout_closes_the_connection() {
    let d = Daemon::start().await;
    let listen = d.proxy("p", echo_server().await).await;
    d.toxic("p", r#"{"type":"timeout","attributes":{"timeout":0}}"#).await;
    let mut stream = connect(listen).await;
    stream.write_all(b"void").await.unwrap();
    tokio::time::sleep(ms(100)).await;
    assert_eq!(d.call("DELETE", "/proxies/p/toxics/timeout_downstream", None).await.status, 204);
    let (bytes, _) = read_to_end(&mut stream).await;
    assert!(bytes.is_empty());
}

/// A stream flows while toxics come and go: every byte arrives, once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churning_toxics_never_lose_or_reorder_bytes() {
    let d = Daemon::start().await;
    let listen = d.proxy("p", echo_server().await).await;
    let stream = connect(listen).await;
    let (mut read, mut write) = stream.into_split();
    let data = pattern(4 * 1024 * 1024);
    let sent = data.clone();
    let writer = tokio::spawn(async move {
        for chunk in sent.chunks(16 * 1024) {
            write.write_all(chunk).await.unwrap();
            tokio::task::yield_now().await;
        }
        write.shutdown().await.unwrap();
    });
    let reader = tokio::spawn(async move {
        let mut back = Vec::new();
        tokio::time::timeout(Duration::from_secs(30), read.read_to_end(&mut back)).await.unwrap().unwrap();
        back
    });
    let bodies = [
        r#"{"type":"latency","name":"l","attributes":{"latency":5}}"#,
        r#"{"type":"slicer","name":"s","stream":"upstream","attributes":{"average_size":4000,"size_variation":1000}}"#,
        r#"{"type":"noop","name":"n"}"#,
    ];
    for round in 0..30 {
        if reader.is_finished() {
            break;
        }
        let body = bodies[round % bodies.len()];
        let name = if body.contains(r#""l""#) {
            "l"
        } else if body.contains(r#""s""#) {
            "s"
        } else {
            "n"
        };
        d.toxic("p", body).await;
        tokio::time::sleep(ms(10)).await;
        d.call("DELETE", &format!("/proxies/p/toxics/{name}"), None).await;
        tokio::time::sleep(ms(5)).await;
    }
    let back = reader.await.unwrap();
    writer.await.unwrap();
    assert_eq!(back.len(), data.len());
    assert!(back == data, "bytes were reordered or corrupted");
}
