//! The `http` mode as an L7 proxy: any client protocol to any upstream protocol, requests the
//! upstream refused unprocessed sent again, upgrades (WebSocket) tunnelled with TCP toxics still
//! underneath, CONNECT refused, connect timeouts, aborts that close or reset, matchers in order.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::harness::Daemon;
use crate::http::{get, http1, http2, upstream};

/// What an upstream saw: its protocol, the authority the request named, and the path.
fn seen(request: &hyper::Request<hyper::body::Incoming>) -> String {
    let host = request.headers().get(hyper::header::HOST).and_then(|h| h.to_str().ok()).map(str::to_owned);
    let authority = request.uri().authority().map(ToString::to_string).or(host).unwrap_or_default();
    let path = request.uri().path_and_query().map(ToString::to_string).unwrap_or_default();
    format!("{:?} {authority} {path}", request.version())
}

/// An upstream that speaks only HTTP/1.1 (`h2` false) or only HTTP/2 with prior knowledge, and
/// answers with [`seen`]; a POST's body is echoed after it.
async fn only(h2: bool) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let service = hyper::service::service_fn(|request: hyper::Request<hyper::body::Incoming>| async move {
                let mut text = seen(&request);
                let body = request.into_body().collect().await?.to_bytes();
                text.push_str(&String::from_utf8_lossy(&body));
                Ok::<_, hyper::Error>(hyper::Response::new(Full::new(Bytes::from(text))))
            });
            tokio::spawn(async move {
                let io = TokioIo::new(stream);
                let _ = if h2 {
                    hyper::server::conn::http2::Builder::new(TokioExecutor::new()).serve_connection(io, service).await
                } else {
                    hyper::server::conn::http1::Builder::new().serve_connection(io, service).await
                };
            });
        }
    });
    address
}

async fn http_proxy_with(d: &Daemon, upstream: SocketAddr, extra: &str) -> (SocketAddr, serde_json::Value) {
    let body = format!(r#"{{"name":"web","listen":"127.0.0.1:0","upstream":"{upstream}","mode":"http"{extra}}}"#);
    let (status, view) = d.json("POST", "/proxies", Some(&body)).await;
    assert_eq!(status, 201, "{view}");
    (view["listen"].as_str().unwrap().parse().unwrap(), view)
}

async fn post(client: &crate::http::HttpClient, proxy: SocketAddr, path: &str, body: &str) -> (u16, String) {
    let request = hyper::Request::post(format!("http://{proxy}{path}")).body(Full::new(Bytes::from(body.to_owned())));
    let response = client.request(request.unwrap()).await.unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

async fn metric(d: &Daemon, name: &str) -> u64 {
    let text = d.call("GET", "/metrics", None).await.text;
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains("proxy=\"web\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test]
async fn http2_clients_reach_an_http1_only_upstream_and_grpc_is_told_why_not() {
    let d = Daemon::start().await;
    let (proxy, view) = http_proxy_with(&d, only(false).await, "").await;
    assert_eq!(view["upstream_protocol"], "auto", "{view}");
    assert_eq!(view["connect_timeout_ms"], 5000, "{view}");
    assert_eq!(view["rewrite_host"], false, "{view}");
    let authority = proxy.to_string();
    for _ in 0..3 {
        let (status, body) = get(&http2(), proxy, "/pay?id=7").await.unwrap();
        assert_eq!((status, body), (200, format!("HTTP/1.1 {authority} /pay?id=7")), "translated, authority kept");
    }
    assert_eq!(post(&http2(), proxy, "/echo", "a body").await, (200, format!("HTTP/1.1 {authority} /echoa body")));
    assert_eq!(get(&http1(), proxy, "/").await.unwrap(), (200, format!("HTTP/1.1 {authority} /")));
    // curl, speaking HTTP/2 with prior knowledge, sees the same.
    let curl = tokio::process::Command::new("curl")
        .args(["-sS", "--http2-prior-knowledge", "-w", " %{http_version}", &format!("http://{proxy}/curl")])
        .output()
        .await
        .expect("curl runs (.ci/install installs it)");
    assert_eq!(String::from_utf8_lossy(&curl.stdout), format!("HTTP/1.1 {authority} /curl 2"), "{curl:?}");
    // gRPC needs HTTP/2 end to end: the client is told so, as UNAVAILABLE.
    let request = hyper::Request::post(format!("http://{proxy}/shop.Wallet/Pay"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(Bytes::from_static(b"\0\0\0\0\0")))
        .unwrap();
    let response = http2().request(request).await.unwrap();
    assert_eq!(response.headers()["grpc-status"], "14");
    let message = response.headers()["grpc-message"].to_str().unwrap();
    assert!(message.contains("gRPC needs an HTTP/2 upstream"), "{message}");
    assert_eq!(metric(&d, "firedrill_http_upstream_failures_total").await, 1);

    // Said outright, no probe is needed.
    let (_, view) = d.json("PATCH", "/proxies/web", Some(r#"{"upstream_protocol":"http1"}"#)).await;
    assert_eq!(view["upstream_protocol"], "http1", "{view}");
    let proxy: SocketAddr = view["listen"].as_str().unwrap().parse().unwrap();
    assert_eq!(get(&http2(), proxy, "/x").await.unwrap(), (200, format!("HTTP/1.1 {proxy} /x")));
    let (status, error) = d.json("PATCH", "/proxies/web", Some(r#"{"upstream_protocol":"h3"}"#)).await;
    assert_eq!(status, 400);
    assert!(error["error"].as_str().unwrap().contains("upstream_protocol must be `auto`, `http1` or `h2c`"));
}

#[tokio::test]
async fn http1_clients_reach_an_h2c_only_upstream() {
    let d = Daemon::start().await;
    let (proxy, _) = http_proxy_with(&d, only(true).await, "").await;
    let authority = proxy.to_string();
    // The first request learns that the upstream speaks HTTP/2 only and is sent again in it.
    for path in ["/a", "/b?c=d"] {
        assert_eq!(get(&http1(), proxy, path).await.unwrap(), (200, format!("HTTP/2.0 {authority} {path}")));
    }
    assert_eq!(post(&http1(), proxy, "/echo", "kept").await, (200, format!("HTTP/2.0 {authority} /echokept")));
    assert_eq!(get(&http2(), proxy, "/h2").await.unwrap(), (200, format!("HTTP/2.0 {authority} /h2")));
    assert_eq!(metric(&d, "firedrill_http_upstream_failures_total").await, 0);

    // A first request whose body is too big to keep (over 64 KiB) cannot be sent again, but
    // what it taught holds for the next ones.
    let d = Daemon::start().await;
    let (proxy, _) = http_proxy_with(&d, only(true).await, "").await;
    let big = "x".repeat(200_000);
    let (status, _) = post(&http1(), proxy, "/big", &big).await;
    // 502 when the body had gone out before the upstream's HTTP/2 answer came back (as here,
    // nearly always); 200 if the body had not been read yet, so could be sent again whole.
    assert!(status == 502 || status == 200, "{status}");
    assert_eq!(get(&http1(), proxy, "/next").await.unwrap(), (200, format!("HTTP/2.0 {proxy} /next")));
    let (status, body) = post(&http1(), proxy, "/big", &big).await;
    assert_eq!((status, body.len()), (200, format!("HTTP/2.0 {proxy} /big").len() + big.len()));

    let d = Daemon::start().await;
    let (proxy, _) = http_proxy_with(&d, only(true).await, r#","upstream_protocol":"h2c","rewrite_host":true"#).await;
    let (status, body) = get(&http1(), proxy, "/rewritten").await.unwrap();
    assert_eq!(status, 200);
    assert!(!body.contains(&proxy.to_string()) && body.starts_with("HTTP/2.0 127.0.0.1:"), "{body}");
}

#[tokio::test]
async fn the_host_can_be_rewritten_to_the_upstreams_address() {
    let d = Daemon::start().await;
    let address = upstream().await;
    let (proxy, _) = http_proxy_with(&d, address, r#","rewrite_host":true"#).await;
    for client in [http1(), http2()] {
        assert_eq!(get(&client, proxy, "/authority").await.unwrap(), (200, address.to_string()));
    }
}

/// An HTTP/2 upstream (the h2 crate) that refuses every third stream with `REFUSED_STREAM` (a
/// path once at most: a request sent again is served) and retires each connection with a
/// graceful GOAWAY after `per_connection` streams.
async fn refusing_upstream(per_connection: usize, connections: Arc<AtomicUsize>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let refused = Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            connections.fetch_add(1, Ordering::SeqCst);
            let refused = refused.clone();
            // A second handle on the socket, for a lingering close as real servers do (nginx's
            // `lingering_close`): closing with unread bytes would reset the connection and
            // destroy answers in flight.
            let std = stream.into_std().unwrap();
            let linger = TcpStream::from_std(std.try_clone().unwrap()).unwrap();
            let stream = TcpStream::from_std(std).unwrap();
            tokio::spawn(async move {
                serve_refusing(stream, per_connection, refused).await;
                let mut linger = linger;
                let _ = linger.shutdown().await;
                let mut rest = Vec::new();
                let _ = tokio::time::timeout(Duration::from_secs(2), linger.read_to_end(&mut rest)).await;
            });
        }
    });
    address
}

async fn serve_refusing(
    stream: TcpStream,
    per_connection: usize,
    refused: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
) {
    let Ok(mut connection) = h2::server::handshake(stream).await else { return };
    let mut streams = 0;
    while let Some(Ok((request, mut respond))) = connection.accept().await {
        streams += 1;
        if streams % 3 == 0 && refused.lock().unwrap().insert(request.uri().path().to_owned()) {
            respond.send_reset(h2::Reason::REFUSED_STREAM);
        } else {
            // Read the request's body, then answer, as a real server does.
            tokio::spawn(async move {
                let mut body = request.into_body();
                while let Some(Ok(data)) = body.data().await {
                    let _ = body.flow_control().release_capacity(data.len());
                }
                if let Ok(mut body) = respond.send_response(http::Response::new(()), false) {
                    let _ = body.send_data(Bytes::from_static(b"done"), true);
                }
            });
        }
        if streams == per_connection {
            connection.graceful_shutdown();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_the_upstream_never_processed_are_sent_again_not_answered_502() {
    let d = Daemon::start().await;
    let connections = Arc::new(AtomicUsize::new(0));
    let address = refusing_upstream(50, connections.clone()).await;
    let (proxy, _) = http_proxy_with(&d, address, r#","upstream_protocol":"h2c""#).await;
    let client = http2();
    let mut calls = tokio::task::JoinSet::new();
    let failed = Arc::new(AtomicUsize::new(0));
    for worker in 0..32 {
        let (client, failed) = (client.clone(), failed.clone());
        calls.spawn(async move {
            for i in 0..20 {
                let path = format!("/{}/{worker}/{i}", if i % 2 == 0 { "get" } else { "post" });
                let answer = if path.starts_with("/get") {
                    get(&client, proxy, &path).await
                } else {
                    Ok(post(&client, proxy, &path, "payload").await)
                };
                if answer != Ok((200, "done".to_owned())) {
                    eprintln!("{path}: {answer:?}");
                    failed.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
    }
    calls.join_all().await;
    assert_eq!(failed.load(Ordering::SeqCst), 0, "no request the upstream refused unprocessed failed");
    let retries = metric(&d, "firedrill_http_upstream_retries_total").await;
    assert!(retries >= 640 / 3 / 2, "refused streams were sent again: {retries}");
    assert_eq!(metric(&d, "firedrill_http_upstream_failures_total").await, 0);
    assert!(connections.load(Ordering::SeqCst) > 640 / 50, "connections were retired and replaced");
}

#[tokio::test]
async fn websockets_pass_through_with_tcp_toxics_underneath() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let Ok(mut socket) = tokio_tungstenite::accept_async(stream).await else { return };
                while let Some(Ok(message)) = socket.next().await {
                    if message.is_text() && socket.send(message).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    let d = Daemon::start().await;
    let (proxy, _) = http_proxy_with(&d, address, "").await;
    let (mut socket, response) = tokio_tungstenite::connect_async(format!("ws://{proxy}/chat")).await.unwrap();
    assert_eq!(response.status(), 101);
    socket.send(Message::text("hello")).await.unwrap();
    let echoed = socket.next().await.unwrap().unwrap();
    assert_eq!(echoed, Message::text("hello"));
    // A TCP toxic underneath: every message back now waits 300 ms.
    d.toxic("web", r#"{"name":"slow","type":"latency","stream":"downstream","attributes":{"latency":300}}"#).await;
    let sent = Instant::now();
    socket.send(Message::text("slowly")).await.unwrap();
    let echoed = socket.next().await.unwrap().unwrap();
    assert_eq!(echoed, Message::text("slowly"));
    assert!(sent.elapsed() >= Duration::from_millis(300), "the latency toxic applied: {:?}", sent.elapsed());
    let text = d.call("GET", "/metrics", None).await.text;
    assert!(text.contains("firedrill_http_responses_total{proxy=\"web\",route=\"/chat\",code=\"101\"} 1"), "{text}");
}

/// Sends raw bytes and reads the answer until the server closes or `Err`s.
async fn raw(proxy: SocketAddr, request: &str) -> Result<String, std::io::Error> {
    let mut stream = TcpStream::connect(proxy).await?;
    stream.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    read.expect("an answer in time")?;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

#[tokio::test]
async fn connect_is_refused_clearly_and_an_h2c_upgrade_declined() {
    let d = Daemon::start().await;
    let (proxy, _) = http_proxy_with(&d, upstream().await, "").await;
    let answer = raw(proxy, "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
    assert!(answer.contains("does not tunnel CONNECT") && answer.to_ascii_lowercase().contains("allow:"), "{answer}");
    assert_eq!(metric(&d, "firedrill_http_client_errors_total").await, 1);
    // An upgrade to h2c is declined: answered in HTTP/1.1.
    let upgrade = "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings, close\r\nUpgrade: h2c\r\n\
                   HTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n";
    let answer = raw(proxy, upgrade).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("hello"), "{answer}");
}

#[tokio::test]
async fn http_abort_closes_or_resets_an_http1_connection_as_asked() {
    let d = Daemon::start().await;
    let (proxy, _) = http_proxy_with(&d, upstream().await, "").await;
    d.toxic("web", r#"{"name":"cut","type":"http_abort","attributes":{"path":"/close"}}"#).await;
    d.toxic("web", r#"{"name":"rst","type":"http_abort","attributes":{"path":"/reset","http1":"reset"}}"#).await;
    let request = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(raw(proxy, &request("/close")).await.unwrap(), "", "closed without an answer");
    let reset = raw(proxy, &request("/reset")).await.unwrap_err();
    assert_eq!(reset.kind(), std::io::ErrorKind::ConnectionReset, "{reset}");
    // With a TCP toxic underneath (the connection then runs over a link), still a reset.
    d.toxic("web", r#"{"name":"noop","type":"noop","stream":"downstream"}"#).await;
    let reset = raw(proxy, &request("/reset")).await.unwrap_err();
    assert_eq!(reset.kind(), std::io::ErrorKind::ConnectionReset, "{reset}");
    assert_eq!(raw(proxy, &request("/close")).await.unwrap(), "", "closed without an answer");
    let (status, error) =
        d.json("POST", "/proxies/web/toxics", Some(r#"{"type":"http_abort","attributes":{"http1":"rst"}}"#)).await;
    assert_eq!(status, 400);
    assert!(error["error"].as_str().unwrap().contains("must be `close` or `reset`"), "{error}");
}

#[tokio::test]
async fn an_upstream_that_does_not_accept_in_time_is_a_504_counted_as_a_timeout() {
    // A listener with a backlog of one that never accepts: once full, the kernel drops SYNs.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into()).unwrap();
    socket.listen(0).unwrap();
    let address = socket.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..2 {
        if let Ok(Ok(stream)) = tokio::time::timeout(Duration::from_millis(500), TcpStream::connect(address)).await {
            fillers.push(stream);
        }
    }
    let d = Daemon::start().await;
    let (proxy, view) = http_proxy_with(&d, address, r#","connect_timeout_ms":200"#).await;
    assert_eq!(view["connect_timeout_ms"], 200);
    for client in [http1(), http2()] {
        let (status, body) = get(&client, proxy, "/").await.unwrap();
        assert_eq!(status, 504, "{body}");
    }
    assert_eq!(metric(&d, "firedrill_http_upstream_timeouts_total").await, 2);
    assert_eq!(metric(&d, "firedrill_http_upstream_failures_total").await, 0);
    drop(socket);
}

#[tokio::test]
async fn the_first_matching_toxic_added_answers() {
    let d = Daemon::start().await;
    let (proxy, _) = http_proxy_with(&d, upstream().await, "").await;
    let add = |body: &'static str| d.toxic("web", body);
    add(r#"{"name":"exact","type":"http_error","attributes":{"status":500,"path":"/pay"}}"#).await;
    add(r#"{"name":"versioned","type":"http_error","attributes":{"status":501,"path_regex":"/v[0-9]+/pay"}}"#).await;
    add(r#"{"name":"tenant","type":"http_error","attributes":{"status":502,"headers":{"x-tenant":"blue","x-plan":"gold"},"ignore_case":true}}"#).await;
    add(r#"{"name":"all","type":"http_error","attributes":{"status":503,"path_prefix":"/"}}"#).await;
    let with = |path: &str, headers: &[(&str, &str)]| {
        let mut request = hyper::Request::get(format!("http://{proxy}{path}"));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(Bytes::new())).unwrap();
        async move { http1().request(request).await.unwrap().status().as_u16() }
    };
    assert_eq!(with("/pay", &[]).await, 500, "exact path, added first");
    assert_eq!(with("/pay/", &[]).await, 503, "not the exact path");
    assert_eq!(with("/v2/pay", &[]).await, 501, "the whole path matches the pattern");
    assert_eq!(with("/v2/pay/x", &[]).await, 503, "anchored at both ends");
    assert_eq!(with("/", &[("x-tenant", "BLUE"), ("x-plan", "Gold")]).await, 502, "every header, any case");
    assert_eq!(with("/", &[("x-tenant", "blue")]).await, 503, "one header of two is not enough");
    let (status, error) = d
        .json("POST", "/proxies/web/toxics", Some(r#"{"type":"http_error","attributes":{"path_regex":"(unclosed"}}"#))
        .await;
    assert_eq!(status, 400);
    assert!(error["error"].as_str().unwrap().contains("is not a regular expression"), "{error}");
}

#[tokio::test]
async fn trailers_cross_from_an_http1_upstream_to_an_http2_client() {
    // An HTTP/1.1-only upstream answering with a chunked body and a trailer.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let service = hyper::service::service_fn(|_request: hyper::Request<hyper::body::Incoming>| async {
                let mut trailers = hyper::HeaderMap::new();
                trailers.insert("x-checksum", "42".parse().unwrap());
                let body = Full::new(Bytes::from_static(b"payload")).with_trailers(async { Some(Ok(trailers)) });
                // hyper sends trailers on a chunked body, and only the fields the response announces.
                let response = hyper::Response::builder()
                    .header("transfer-encoding", "chunked")
                    .header("trailer", "x-checksum")
                    .body(body)
                    .unwrap();
                Ok::<_, std::convert::Infallible>(response)
            });
            tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        }
    });
    let d = Daemon::start().await;
    let (proxy, _) = http_proxy_with(&d, address, r#","upstream_protocol":"http1""#).await;
    let request = hyper::Request::get(format!("http://{proxy}/sum"))
        .header("te", "trailers")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = http2().request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let collected = response.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned().expect("the trailer crossed");
    assert_eq!(trailers["x-checksum"], "42");
    assert_eq!(collected.to_bytes(), "payload");
}
