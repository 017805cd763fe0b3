//! The `http` proxy mode: hyper HTTP/1.1 and HTTP/2 clients against request-level toxics and
//! their matchers, malformed requests, metrics, and TCP toxics underneath.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::Daemon;

/// Size of the `/big` answer.
const BIG: usize = 16 << 20;

/// An upstream speaking HTTP/1.1 and HTTP/2 (prior knowledge): `/` says hello, `/pay` says paid,
/// `/big` sends [`BIG`] bytes of the harness pattern.
pub async fn upstream() -> SocketAddr {
    use axum::routing::get;
    let app = axum::Router::new()
        .route("/", get(|| async { "hello" }))
        .route("/pay", get(|| async { "paid" }))
        .route("/big", get(|| async { crate::harness::pattern(BIG) }))
        .route("/stall", get(|| async { std::future::pending::<&str>().await }))
        .route("/echo", axum::routing::post(|body: String| async move { body }))
        // Where the client said it was going: `:authority` (HTTP/2) or `Host` (HTTP/1.1).
        .route(
            "/authority",
            get(|request: axum::extract::Request| async move {
                let host = request.headers().get(hyper::header::HOST).and_then(|h| h.to_str().ok()).map(str::to_owned);
                request.uri().authority().map(ToString::to_string).or(host).unwrap_or_default()
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    address
}

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

pub fn http1() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

pub fn http2() -> HttpClient {
    Client::builder(TokioExecutor::new()).http2_only(true).build_http()
}

/// GET `path`; the status and body, or the error's text.
pub async fn get(client: &HttpClient, proxy: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let uri: hyper::Uri = format!("http://{proxy}{path}").parse().unwrap();
    let call = async {
        let response = client.get(uri).await.map_err(|e| format!("{e:?}"))?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.map_err(|e| format!("{e:?}"))?.to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    };
    tokio::time::timeout(Duration::from_secs(10), call).await.expect("an answer in time")
}

impl Daemon {
    /// Creates an `http` proxy in front of `upstream`; returns its address.
    pub async fn http_proxy(&self, name: &str, upstream: SocketAddr) -> SocketAddr {
        let body = format!(r#"{{"name":"{name}","listen":"127.0.0.1:0","upstream":"{upstream}","mode":"http"}}"#);
        let (status, proxy) = self.json("POST", "/proxies", Some(&body)).await;
        assert_eq!(status, 201, "{proxy}");
        assert_eq!(proxy["mode"], "http");
        proxy["listen"].as_str().unwrap().parse().unwrap()
    }
}

#[tokio::test]
async fn http_error_answers_matching_requests_over_both_protocols() {
    let d = Daemon::start().await;
    let proxy = d.http_proxy("web", upstream().await).await;
    let (one, two) = (http1(), http2());
    assert_eq!(get(&one, proxy, "/").await.unwrap(), (200, "hello".into()));
    assert_eq!(get(&two, proxy, "/").await.unwrap(), (200, "hello".into()), "HTTP/2 with prior knowledge");

    // Added while both connections are open: they feel it at once.
    d.toxic(
        "web",
        r#"{"name":"boom","type":"http_error","attributes":{"status":503,"path_prefix":"/pay","body":"down"}}"#,
    )
    .await;
    for client in [&one, &two] {
        assert_eq!(get(client, proxy, "/pay").await.unwrap(), (503, "down".into()));
        assert_eq!(get(client, proxy, "/").await.unwrap(), (200, "hello".into()), "the matcher spares other paths");
    }
    let (status, toxic) = d.json("POST", "/proxies/web/toxics/boom", Some(r#"{"attributes":{"method":"POST"}}"#)).await;
    assert_eq!(status, 200, "{toxic}");
    assert_eq!(toxic["attributes"]["status"], 503, "an update merges attributes");
    assert_eq!(get(&two, proxy, "/pay").await.unwrap(), (200, "paid".into()), "GET no longer matches");
    assert_eq!(d.call("DELETE", "/proxies/web/toxics/boom", None).await.status, 204);

    // Header matcher, and the default body.
    d.toxic("web", r#"{"name":"tenant","type":"http_error","attributes":{"status":429,"header":"x-tenant: blue"}}"#)
        .await;
    let request =
        hyper::Request::get(format!("http://{proxy}/")).header("x-tenant", "blue").body(Full::default()).unwrap();
    let response = one.request(request).await.unwrap();
    assert_eq!(response.status(), 429);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "firedrill: injected 429 Too Many Requests\n");
    assert_eq!(get(&one, proxy, "/").await.unwrap().0, 200);

    let metrics = d.call("GET", "/metrics", None).await.text;
    assert!(metrics.contains(r#"firedrill_http_responses_total{proxy="web",route="/pay",code="503"} 2"#), "{metrics}");
    // A request-level toxic counts its activations as a stream toxic does: the one present hit
    // one request (the removed one's series went with it).
    assert!(
        metrics.contains(r#"firedrill_toxic_activations_total{proxy="web",toxic="tenant",type="http_error"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"firedrill_http_requests_total{proxy="web",route="/"}"#), "{metrics}");
    assert!(metrics.contains(r#"firedrill_http_request_duration_seconds_count{proxy="web",route="/pay"}"#));
}

#[tokio::test]
async fn http_delay_holds_requests_and_tcp_toxics_still_apply_underneath() {
    let d = Daemon::start().await;
    let proxy = d.http_proxy("web", upstream().await).await;
    let two = http2();
    assert_eq!(get(&two, proxy, "/").await.unwrap().0, 200);
    d.toxic("web", r#"{"name":"slow","type":"http_delay","attributes":{"latency":300,"path_prefix":"/pay"}}"#).await;
    let started = Instant::now();
    assert_eq!(get(&two, proxy, "/pay").await.unwrap(), (200, "paid".into()));
    let slow = started.elapsed();
    let started = Instant::now();
    assert_eq!(get(&two, proxy, "/").await.unwrap().0, 200);
    let fast = started.elapsed();
    assert!(slow >= Duration::from_millis(290), "delayed: {slow:?}");
    assert!(fast < Duration::from_millis(250), "not delayed: {fast:?}");
    assert_eq!(d.call("DELETE", "/proxies/web/toxics/slow", None).await.status, 204);

    // Without TCP toxics the engine serves the accepted socket itself; it still counts bytes.
    let text = d.call("GET", "/metrics", None).await.text;
    let bytes = |direction: &str| -> u64 {
        let key = format!("firedrill_proxy_bytes_total{{proxy=\"web\",direction=\"{direction}\"}} ");
        text.lines().find_map(|l| l.strip_prefix(key.as_str())).and_then(|v| v.parse().ok()).unwrap_or(0)
    };
    assert!(bytes("upstream") > 0 && bytes("downstream") > 0, "{text}");

    // A TCP latency toxic on the same proxy delays the bytes between client and firedrill, on
    // the connection already open; removing it makes that connection fast again.
    d.toxic("web", r#"{"name":"wire","type":"latency","stream":"downstream","attributes":{"latency":200}}"#).await;
    let started = Instant::now();
    assert_eq!(get(&two, proxy, "/").await.unwrap().0, 200);
    assert!(started.elapsed() >= Duration::from_millis(190), "{:?}", started.elapsed());
    assert_eq!(d.call("DELETE", "/proxies/web/toxics/wire", None).await.status, 204);
    let started = Instant::now();
    assert_eq!(get(&two, proxy, "/").await.unwrap(), (200, "hello".into()));
    assert!(started.elapsed() < Duration::from_millis(150), "{:?}", started.elapsed());
    assert_eq!(d.json("GET", "/proxies/web", None).await.1["toxics"], serde_json::json!([]));

    // reset_peer on a fresh connection that is open and idle: the next request fails.
    let fresh = http1();
    assert_eq!(get(&fresh, proxy, "/").await.unwrap().0, 200);
    d.toxic("web", r#"{"name":"rst","type":"reset_peer","attributes":{"timeout":0}}"#).await;
    assert!(get(&fresh, proxy, "/").await.is_err(), "a reset connection answers nothing");
}

#[tokio::test]
async fn http_abort_resets_the_stream_or_the_connection() {
    let d = Daemon::start().await;
    let proxy = d.http_proxy("web", upstream().await).await;
    let (one, two) = (http1(), http2());
    assert_eq!(get(&two, proxy, "/").await.unwrap().0, 200);
    d.toxic("web", r#"{"name":"cut","type":"http_abort","attributes":{"grpc_service":"pay"}}"#).await;
    // `/pay` is service `pay` with no method: matched.
    let reset = get(&two, proxy, "/pay").await.unwrap_err();
    assert!(reset.contains("INTERNAL_ERROR") || reset.contains("Reset"), "an HTTP/2 stream reset: {reset}");
    assert_eq!(get(&two, proxy, "/").await.unwrap().0, 200, "the HTTP/2 connection survives the reset");
    let closed = get(&one, proxy, "/pay").await.unwrap_err();
    assert!(!closed.is_empty(), "HTTP/1.1: the connection closes without an answer");
    assert_eq!(get(&one, proxy, "/").await.unwrap().0, 200);
    let metrics = d.call("GET", "/metrics", None).await.text;
    assert!(metrics.contains(r#"firedrill_http_aborted_total{proxy="web",route="/pay"} 2"#), "{metrics}");
}

#[tokio::test]
async fn malformed_requests_get_400_and_bad_toxics_are_refused() {
    let d = Daemon::start().await;
    let proxy = d.http_proxy("web", upstream().await).await;
    let mut raw = tokio::net::TcpStream::connect(proxy).await.unwrap();
    raw.write_all(b"THIS IS NOT HTTP\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), raw.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer:?}");
    assert_eq!(get(&http1(), proxy, "/").await.unwrap().0, 200, "the proxy lives on");

    // Request-level toxics need an http proxy; bad attributes get Toxiproxy's error shape.
    let plain = d.proxy("plain", upstream().await).await;
    let _ = plain;
    let (status, error) = d.json("POST", "/proxies/plain/toxics", Some(r#"{"type":"http_error"}"#)).await;
    assert_eq!(status, 400);
    assert_eq!(
        error["error"],
        "bad request body: toxic type http_error needs a proxy in http mode (create it with \"mode\": \"http\")"
    );
    let (status, error) =
        d.json("POST", "/proxies/web/toxics", Some(r#"{"type":"grpc_error","attributes":{"rate":2}}"#)).await;
    assert_eq!(status, 400);
    assert_eq!(
        error["error"],
        "bad request body: attribute `rate` of grpc_error must be a number between 0 and 1, got 2"
    );
    let (status, error) =
        d.json("POST", "/proxies", Some(r#"{"name":"x","upstream":"127.0.0.1:1","mode":"udp"}"#)).await;
    assert_eq!(status, 400);
    assert_eq!(error["error"], "bad request body: mode must be `tcp` or `http`, got `udp`");
    // A tcp proxy's answer carries no `mode`: Toxiproxy clients see nothing new.
    let (_, proxies) = d.json("GET", "/proxies", None).await;
    assert!(proxies["plain"].get("mode").is_none(), "{proxies}");

    // The upstream gone: 502 over HTTP.
    let (status, _) = d.json("POST", "/proxies/web", Some(r#"{"upstream":"127.0.0.1:1"}"#)).await;
    assert_eq!(status, 200);
    assert_eq!(get(&http1(), proxy, "/").await.unwrap().0, 502);
}

#[tokio::test]
async fn a_tcp_toxic_added_mid_response_loses_and_reorders_nothing() {
    let d = Daemon::start().await;
    let proxy = d.http_proxy("web", upstream().await).await;
    // A small receive buffer keeps most of the answer out of the client's kernel buffers.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(64 * 1024).unwrap();
    let mut stream = socket.connect(proxy).await.unwrap();
    stream.write_all(b"GET /big HTTP/1.1\r\nhost: web\r\nconnection: close\r\n\r\n").await.unwrap();
    // Part of the answer arrives on the direct path; the rest after the switch to a link.
    let mut answer = vec![0; 256 * 1024];
    stream.read_exact(&mut answer).await.unwrap();
    d.toxic("web", r#"{"name":"wire","type":"latency","stream":"downstream","attributes":{"latency":100}}"#).await;
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer)).await.unwrap().unwrap();
    // More than the socket buffers hold (about 4 MiB by default) was still to come, so some of
    // it went through the toxic and waited its 100 ms.
    assert!(started.elapsed() >= Duration::from_millis(100), "{:?}", started.elapsed());
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer[..split]));
    assert_eq!(answer.len() - split, BIG);
    assert!(answer[split..] == crate::harness::pattern(BIG)[..], "the body arrived intact and in order");
}

/// An upstream on `address` (port 0: any) that counts the connections it accepts; aborting
/// the returned task closes the listener and every connection.
async fn counting_upstream(
    address: SocketAddr,
    accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind(address).await.unwrap();
    let address = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            accepted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let service = hyper::service::service_fn(|_| async {
                Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(Bytes::from("hello"))))
            });
            connections.spawn(async move {
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                let _ = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service).await;
            });
        }
    });
    (address, task)
}

/// A [`counting_upstream`] on any port: how many connections it accepted, where, and its task.
struct Counted {
    accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    address: SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl Counted {
    async fn start() -> Self {
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (address, server) = counting_upstream("127.0.0.1:0".parse().unwrap(), accepted.clone()).await;
        Self { accepted, address, server }
    }

    /// Restarts the upstream on the same address (a killed pod coming back): every connection
    /// it held is closed; the new one counts on the same counter.
    async fn restart(&mut self) {
        self.server.abort();
        let _ = (&mut self.server).await;
        self.server = counting_upstream(self.address, self.accepted.clone()).await.1;
    }
}

#[tokio::test]
async fn http2_requests_share_one_upstream_connection_which_comes_back_after_a_restart() {
    use std::sync::atomic::Ordering;
    let d = Daemon::start().await;
    let mut upstream = Counted::start().await;
    let (accepted, proxy) = (upstream.accepted.clone(), d.http_proxy("web", upstream.address).await);
    // Two client connections, 20 concurrent streams each.
    let (one, two) = (http2(), http2());
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..40 {
        let client = if i % 2 == 0 { one.clone() } else { two.clone() };
        calls.spawn(async move { get(&client, proxy, "/").await });
    }
    let answers = calls.join_all().await;
    assert!(answers.iter().all(|a| a.as_ref().is_ok_and(|(status, _)| *status == 200)), "{answers:?}");
    // The first HTTP/2 request has the proxy look (once) whether the upstream speaks HTTP/2, on
    // a connection of its own; then one connection carries every stream.
    assert_eq!(accepted.load(Ordering::SeqCst), 2, "one probe and one multiplexed upstream connection");

    // The upstream restarts (a killed pod coming back): the proxy dials again.
    upstream.restart().await;
    assert_eq!(get(&one, proxy, "/").await.unwrap(), (200, "hello".into()));
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
    upstream.server.abort();
}

#[tokio::test]
async fn http1_requests_reuse_kept_upstream_connections_and_a_restart_fails_none() {
    use std::sync::atomic::Ordering;
    let d = Daemon::start().await;
    let mut upstream = Counted::start().await;
    let (accepted, proxy) = (upstream.accepted.clone(), d.http_proxy("web", upstream.address).await);
    // One request at a time: one upstream connection, kept and reused.
    let client = http1();
    for _ in 0..5 {
        assert_eq!(get(&client, proxy, "/").await.unwrap(), (200, "hello".into()));
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "HTTP/1.1 clients get no probe, and one kept connection");
    // Ten at once need ten connections (one request each in flight), no more.
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let client = client.clone();
        calls.spawn(async move { get(&client, proxy, "/").await });
    }
    let answers = calls.join_all().await;
    assert!(answers.iter().all(|a| a.as_ref().is_ok_and(|(status, _)| *status == 200)), "{answers:?}");
    let after_burst = accepted.load(Ordering::SeqCst);
    assert!((1..=10).contains(&after_burst), "{after_burst} connections for 10 requests at once");
    // The upstream restarts and closes every kept connection: no request fails for it.
    upstream.restart().await;
    for _ in 0..5 {
        assert_eq!(get(&client, proxy, "/").await.unwrap(), (200, "hello".into()));
    }
    assert_eq!(accepted.load(Ordering::SeqCst), after_burst + 1, "one new connection, reused");
    upstream.server.abort();
}

#[tokio::test]
async fn the_authority_the_client_used_reaches_the_upstream_on_both_protocols() {
    let d = Daemon::start().await;
    let proxy = d.http_proxy("web", upstream().await).await;
    for (protocol, client) in [("HTTP/1.1", http1()), ("HTTP/2", http2())] {
        let (status, seen) = get(&client, proxy, "/authority").await.unwrap();
        assert_eq!(
            (status, seen),
            (200, proxy.to_string()),
            "Host and :authority are the client's, not rewritten ({protocol})"
        );
    }
}

#[tokio::test]
async fn an_upstream_that_does_not_answer_in_time_gets_504_counted_per_route() {
    let d = Daemon::start().await;
    let body = format!(
        r#"{{"name":"web","listen":"127.0.0.1:0","upstream":"{}","mode":"http","upstream_timeout_ms":300}}"#,
        upstream().await
    );
    let (status, view) = d.json("POST", "/proxies", Some(&body)).await;
    assert_eq!(status, 201, "{view}");
    assert_eq!(view["upstream_timeout_ms"], 300, "the view shows it");
    let proxy: SocketAddr = view["listen"].as_str().unwrap().parse().unwrap();
    for client in [http1(), http2()] {
        let started = std::time::Instant::now();
        let (status, body) = get(&client, proxy, "/stall").await.unwrap();
        assert_eq!(status, 504, "{body}");
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        assert_eq!(get(&client, proxy, "/").await.unwrap(), (200, "hello".to_owned()), "other routes are fine");
    }
    let metrics = d.call("GET", "/metrics", None).await.text;
    assert!(metrics.contains(r#"firedrill_http_upstream_timeouts_total{proxy="web",route="/stall"} 2"#), "{metrics}");
    assert!(metrics.contains(r#"firedrill_http_upstream_failures_total{proxy="web",route="/stall"} 0"#), "{metrics}");
    let (status, error) = d.json("PATCH", "/proxies/web", Some(r#"{"upstream_timeout_ms":0}"#)).await;
    assert_eq!(status, 400, "{error}");
    let (_, view) = d.json("PATCH", "/proxies/web", Some(r#"{"upstream_timeout_ms":20000}"#)).await;
    assert_eq!(view["upstream_timeout_ms"], 20000);
    // A tcp proxy's view is Toxiproxy's, with nothing new.
    let (_, plain) =
        d.json("POST", "/proxies", Some(r#"{"name":"plain","listen":"127.0.0.1:0","upstream":"127.0.0.1:9"}"#)).await;
    assert!(plain.get("upstream_timeout_ms").is_none(), "{plain}");
}

#[tokio::test]
async fn a_malformed_request_body_is_the_clients_error_never_the_upstreams() {
    let d = Daemon::start().await;
    let proxy = d.http_proxy("web", upstream().await).await;
    let mut raw = tokio::net::TcpStream::connect(proxy).await.unwrap();
    // A chunk size that is not hexadecimal, after a good chunk.
    let request = "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n";
    raw.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), raw.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer:?}");
    let metrics = d.call("GET", "/metrics", None).await.text;
    assert!(metrics.contains(r#"firedrill_http_client_errors_total{proxy="web",route="/echo"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"firedrill_http_upstream_failures_total{proxy="web",route="/echo"} 0"#), "{metrics}");
    assert!(!metrics.contains(r#"route="/echo",status="502""#), "{metrics}");
    // A good body goes through.
    let client = http1();
    let request = hyper::Request::post(format!("http://{proxy}/echo")).body(Full::new(Bytes::from("hi"))).unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn silent_clients_cannot_crowd_a_real_request_out_of_an_http_proxy() {
    let d = Daemon::start().await;
    let proxy = d.http_proxy("web", upstream().await).await;
    // More silent connections than may wait for their first headers at once: the oldest make
    // room, and a client that sends its request is answered.
    let extra = 36;
    let mut silent = Vec::new();
    for _ in 0..firedrill::proxy::gate::MAX_IN_HEADERS + extra {
        silent.push(tokio::net::TcpStream::connect(proxy).await.unwrap());
    }
    assert_eq!(get(&http1(), proxy, "/").await, Ok((200, "hello".to_owned())));
    assert_eq!(get(&http2(), proxy, "/pay").await, Ok((200, "paid".to_owned())));
    // The evicted ones are closed already; the others wait for the header timeout (10 s), so a
    // short look tells them apart.
    let looks: Vec<_> = silent
        .into_iter()
        .map(|mut stream| {
            tokio::spawn(async move {
                let mut byte = [0_u8; 1];
                let read = tokio::time::timeout(Duration::from_millis(500), stream.read(&mut byte)).await;
                matches!(read, Ok(Ok(0) | Err(_)))
            })
        })
        .collect();
    let mut closed = Vec::new();
    for look in looks {
        closed.push(look.await.unwrap());
    }
    let cut = closed.iter().filter(|closed| **closed).count();
    // Each real client took a place until its first request (when the others had all entered,
    // that evicted one more each).
    assert!((extra..=extra + 2).contains(&cut), "{cut} closed: the oldest waiting ones make room, no more");
    assert!(closed[..extra].iter().all(|closed| *closed), "the oldest went first: {closed:?}");
    assert!(closed[cut..].iter().all(|closed| !*closed), "the newest stay: {closed:?}");
}
