//! Every admin endpoint, status code and error string of the Toxiproxy contract.

use std::sync::Arc;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::harness::{Daemon, echo_server, round_trip};

fn error(message: &str, status: u16) -> serde_json::Value {
    json!({"error": message, "status": status})
}

#[tokio::test]
async fn version_metrics_and_request_ids() {
    let d = Daemon::start().await;
    let version = d.call("GET", "/version", None).await;
    assert_eq!(version.status, 200);
    assert!(version.text.ends_with("}\n"));
    assert_eq!(version.json()["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(version.content_type.as_deref(), Some("application/json"));
    let first: u64 = version.request_id.unwrap().parse().unwrap();
    let second: u64 = d.call("GET", "/proxies", None).await.request_id.unwrap().parse().unwrap();
    assert!(second > first);
    // Errors carry the id too.
    assert!(d.call("GET", "/proxies/nope", None).await.request_id.is_some());
}

#[tokio::test]
async fn browsers_are_refused() {
    let d = Daemon::start().await;
    let response = reqwest::Client::new()
        .get(format!("{}/proxies", d.base))
        .header("User-Agent", "Mozilla/5.0 (X11; Linux x86_64)")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 403);
    assert_eq!(response.json::<serde_json::Value>().await.unwrap(), error("User agent not allowed", 403));
}

#[tokio::test]
async fn token_is_required_when_configured() {
    let d = Daemon::with_token(Some("s3cret")).await;
    assert_eq!(d.call("GET", "/proxies", None).await.status, 401);
    let ok = reqwest::Client::new().get(format!("{}/proxies", d.base)).bearer_auth("s3cret").send().await.unwrap();
    assert_eq!(ok.status().as_u16(), 200);
}

#[tokio::test]
async fn create_reports_the_bound_address_and_validates() {
    let d = Daemon::start().await;
    let upstream = echo_server().await;
    assert_eq!(d.json("GET", "/proxies", None).await, (200, json!({})));

    let (status, proxy) = d
        .json("POST", "/proxies", Some(&format!(r#"{{"name":"db","listen":"localhost:0","upstream":"{upstream}"}}"#)))
        .await;
    assert_eq!(status, 201);
    let listen = proxy["listen"].as_str().unwrap();
    assert!(listen.starts_with("127.0.0.1:") && !listen.ends_with(":0"), "{listen}");
    assert_eq!(
        proxy,
        json!({"name": "db", "listen": listen, "upstream": upstream.to_string(), "enabled": true, "toxics": []})
    );
    let mut stream = TcpStream::connect(listen).await.unwrap();
    assert_eq!(round_trip(&mut stream, b"ping").await.0, b"ping");

    let body = format!(r#"{{"name":"db","upstream":"{upstream}"}}"#);
    assert_eq!(d.json("POST", "/proxies", Some(&body)).await, (409, error("proxy already exists", 409)));
    assert_eq!(
        d.json("POST", "/proxies", Some(r#"{"upstream":"127.0.0.1:1"}"#)).await,
        (400, error("missing required field: name", 400))
    );
    assert_eq!(
        d.json("POST", "/proxies", Some(r#"{"name":"x"}"#)).await,
        (400, error("missing required field: upstream", 400))
    );
    let (status, bad) = d.json("POST", "/proxies", Some("{not json")).await;
    assert_eq!(status, 400);
    assert!(bad["error"].as_str().unwrap().starts_with("bad request body: "), "{bad}");
    let (status, bad) = d.json("POST", "/proxies", Some(r#"{"name":"x","upstream":"nowhere"}"#)).await;
    assert_eq!(
        (status, bad["error"].as_str().unwrap()),
        (400, "bad request body: upstream `nowhere` is not host:port")
    );

    // Keys match case-insensitively, as in Toxiproxy.
    let body = format!(r#"{{"Name":"cased","Listen":"127.0.0.1:0","Upstream":"{upstream}","Enabled":false}}"#);
    let (status, cased) = d.json("POST", "/proxies", Some(&body)).await;
    assert_eq!(
        (status, &cased["name"], &cased["enabled"], &cased["listen"]),
        (201, &json!("cased"), &json!(false), &json!("127.0.0.1:0"))
    );
}

#[tokio::test]
async fn a_port_in_use_is_a_500_and_nothing_is_added() {
    let d = Daemon::start().await;
    let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let body = format!(r#"{{"name":"clash","listen":"{}","upstream":"127.0.0.1:9"}}"#, taken.local_addr().unwrap());
    let (status, err) = d.json("POST", "/proxies", Some(&body)).await;
    assert_eq!(status, 500);
    assert_eq!(err["status"], 500);
    assert!(err["error"].as_str().unwrap().contains("in use"), "{err}");
    assert_eq!(d.json("GET", "/proxies", None).await, (200, json!({})));
}

#[tokio::test]
async fn update_is_partial_and_disable_is_down() {
    let d = Daemon::start().await;
    let upstream = echo_server().await;
    let listen = d.proxy("web", upstream).await;
    let mut open = TcpStream::connect(listen).await.unwrap();
    round_trip(&mut open, b"hi").await;

    for method in ["POST", "PATCH"] {
        let (status, proxy) = d.json(method, "/proxies/web", Some(r#"{"enabled":false,"name":"renamed"}"#)).await;
        assert_eq!((status, &proxy["enabled"], &proxy["name"]), (200, &json!(false), &json!("web")));
        // Down: the listener is closed and open connections are cut.
        assert!(TcpStream::connect(listen).await.is_err(), "a disabled proxy must refuse connections");
        let mut buf = [0; 1];
        assert!(matches!(open.read(&mut buf).await, Ok(0) | Err(_)));
        let (status, proxy) = d.json(method, "/proxies/web", Some(r#"{"enabled":true}"#)).await;
        assert_eq!((status, &proxy["enabled"], &proxy["listen"]), (200, &json!(true), &json!(listen.to_string())));
        open = TcpStream::connect(listen).await.unwrap();
        assert_eq!(round_trip(&mut open, b"again").await.0, b"again");
    }

    // Moving the upstream restarts the proxy against the new one.
    let other = crate::harness::source_server(3).await;
    let (status, proxy) = d.json("PATCH", "/proxies/web", Some(&format!(r#"{{"upstream":"{other}"}}"#))).await;
    assert_eq!((status, proxy["upstream"].as_str().unwrap()), (200, other.to_string().as_str()));
    let mut moved = TcpStream::connect(listen).await.unwrap();
    assert_eq!(crate::harness::read_to_end(&mut moved).await.0.len(), 3);

    assert_eq!(d.json("POST", "/proxies/nope", Some("{}")).await, (404, error("proxy not found", 404)));
    let (status, _) = d.json("POST", "/proxies/web", Some("[")).await;
    assert_eq!(status, 400);
    assert_eq!(d.json("GET", "/proxies/nope", None).await, (404, error("proxy not found", 404)));
}

#[tokio::test]
async fn a_failed_move_restores_the_proxy() {
    let d = Daemon::start().await;
    let upstream = echo_server().await;
    let listen = d.proxy("web", upstream).await;
    let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let body = format!(r#"{{"listen":"{}"}}"#, taken.local_addr().unwrap());
    let (status, _) = d.json("POST", "/proxies/web", Some(&body)).await;
    assert_eq!(status, 500);
    let (_, proxy) = d.json("GET", "/proxies/web", None).await;
    assert_eq!(proxy["listen"], listen.to_string());
    let mut stream = TcpStream::connect(listen).await.unwrap();
    assert_eq!(round_trip(&mut stream, b"still").await.0, b"still");
}

#[tokio::test]
async fn delete_stops_and_removes() {
    let d = Daemon::start().await;
    let listen = d.proxy("gone", echo_server().await).await;
    let response = d.call("DELETE", "/proxies/gone", None).await;
    assert_eq!((response.status, response.text.as_str()), (204, ""));
    assert!(TcpStream::connect(listen).await.is_err());
    assert_eq!(d.json("DELETE", "/proxies/gone", None).await, (404, error("proxy not found", 404)));
}

#[tokio::test]
async fn unknown_attribute_keys_are_refused_never_ignored() {
    // Toxiproxy ignores them; a typo such as `path_prefx` would silently widen a fault.
    let d = Daemon::start().await;
    d.proxy("db", echo_server().await).await;
    let cases = [
        (
            r#"{"type":"latency","name":"l","attributes":{"latency":300,"jiter":50}}"#,
            "bad request body: unknown attribute `jiter` for a latency toxic (valid: latency, jitter)",
        ),
        (
            r#"{"type":"noop","name":"n","attributes":{"x":1}}"#,
            "bad request body: unknown attribute `x` for a noop toxic (valid: none)",
        ),
    ];
    for (body, message) in cases {
        assert_eq!(d.json("POST", "/proxies/db/toxics", Some(body)).await, (400, error(message, 400)), "{body}");
    }
    assert_eq!(d.json("GET", "/proxies/db/toxics", None).await, (200, json!([])), "nothing was added");
    let (status, _) =
        d.json("POST", "/proxies/db/toxics", Some(r#"{"type":"latency","attributes":{"latency":300}}"#)).await;
    assert_eq!(status, 200);
    let typo = d.json("PATCH", "/proxies/db/toxics/latency_downstream", Some(r#"{"attributes":{"Latancy":1}}"#)).await;
    let message = "bad request body: unknown attribute `latancy` for a latency toxic (valid: latency, jitter)";
    assert_eq!(typo, (400, error(message, 400)));
    let (_, kept) = d.json("GET", "/proxies/db/toxics/latency_downstream", None).await;
    assert_eq!(kept["attributes"], json!({"latency": 300, "jitter": 0}), "a refused update changes nothing");
}

#[tokio::test]
async fn toxic_endpoints() {
    let d = Daemon::start().await;
    d.proxy("db", echo_server().await).await;
    assert_eq!(d.json("GET", "/proxies/db/toxics", None).await, (200, json!([])));

    let (status, toxic) =
        d.json("POST", "/proxies/db/toxics", Some(r#"{"type":"latency","attributes":{"latency":300}}"#)).await;
    assert_eq!(status, 200, "toxic creation answers 200, not 201");
    assert_eq!(
        toxic,
        json!({"name": "latency_downstream", "type": "latency", "stream": "downstream", "toxicity": 1.0,
               "attributes": {"latency": 300, "jitter": 0}})
    );
    let (status, up) = d
        .json(
            "POST",
            "/proxies/db/toxics",
            Some(r#"{"Type":"slicer","Stream":"UPSTREAM","Attributes":{"Average_Size":64}}"#),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(up["name"], "slicer_upstream");
    assert_eq!(up["attributes"], json!({"average_size": 64, "size_variation": 0, "delay": 0}));

    // Upstream toxics come first in the chain listing.
    let (_, list) = d.json("GET", "/proxies/db/toxics", None).await;
    assert_eq!(
        list.as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect::<Vec<_>>(),
        ["slicer_upstream", "latency_downstream"]
    );
    let (_, proxy) = d.json("GET", "/proxies/db", None).await;
    assert_eq!(proxy["toxics"], list);

    let cases = [
        (r#"{"type":"latency"}"#, 409, "toxic already exists"),
        (r#"{"type":"noop","name":"slicer_upstream","stream":"downstream"}"#, 409, "toxic already exists"),
        (r#"{"type":"latency","stream":"sideways"}"#, 400, "stream was invalid, can be either upstream or downstream"),
        (r#"{"type":"latency","stream":""}"#, 400, "stream was invalid, can be either upstream or downstream"),
        (r#"{"type":"warp_drive"}"#, 400, "invalid toxic type"),
        (
            r#"{"type":"bandwidth","name":"b","attributes":{"rate":-5}}"#,
            400,
            "bad request body: attribute `rate` of bandwidth must not be negative, got -5",
        ),
        (
            r#"{"type":"noop","name":"n","toxicity":-0.1}"#,
            400,
            "bad request body: toxicity must be a number between 0 and 1, got -0.1",
        ),
    ];
    for (body, status, message) in cases {
        assert_eq!(d.json("POST", "/proxies/db/toxics", Some(body)).await, (status, error(message, status)), "{body}");
    }
    let (status, bad) = d.json("POST", "/proxies/db/toxics", Some("nope")).await;
    assert!(status == 400 && bad["error"].as_str().unwrap().starts_with("bad request body: "));
    assert_eq!(
        d.json("POST", "/proxies/nope/toxics", Some(r#"{"type":"noop"}"#)).await,
        (404, error("proxy not found", 404))
    );
    assert_eq!(d.json("GET", "/proxies/nope/toxics", None).await, (404, error("proxy not found", 404)));

    assert_eq!(d.json("GET", "/proxies/db/toxics/latency_downstream", None).await, (200, toxic));
    assert_eq!(d.json("GET", "/proxies/db/toxics/nope", None).await, (404, error("toxic not found", 404)));

    for (method, jitter) in [("POST", 10), ("PATCH", 20)] {
        let body =
            format!(r#"{{"attributes":{{"jitter":{jitter}}},"type":"timeout","stream":"upstream","name":"other"}}"#);
        let (status, updated) = d.json(method, "/proxies/db/toxics/latency_downstream", Some(&body)).await;
        assert_eq!(status, 200);
        assert_eq!(updated["attributes"], json!({"latency": 300, "jitter": jitter}));
        assert_eq!(
            (&updated["type"], &updated["stream"], &updated["toxicity"]),
            (&json!("latency"), &json!("downstream"), &json!(1.0))
        );
    }
    let (_, updated) = d.json("PATCH", "/proxies/db/toxics/latency_downstream", Some(r#"{"toxicity":0.25}"#)).await;
    assert_eq!(updated["toxicity"], 0.25);
    assert_eq!(updated["attributes"]["latency"], 300);
    assert_eq!(d.json("PATCH", "/proxies/db/toxics/nope", Some("{}")).await, (404, error("toxic not found", 404)));
    let (status, _) =
        d.json("PATCH", "/proxies/db/toxics/latency_downstream", Some(r#"{"attributes":{"latency":-1}}"#)).await;
    assert_eq!(status, 400);
    assert_eq!(
        d.json("GET", "/proxies/db/toxics/latency_downstream", None).await.1["attributes"]["latency"],
        300,
        "a failed update changes nothing"
    );

    let removed = d.call("DELETE", "/proxies/db/toxics/latency_downstream", None).await;
    assert_eq!((removed.status, removed.text.as_str()), (204, ""));
    assert_eq!(
        d.json("DELETE", "/proxies/db/toxics/latency_downstream", None).await,
        (404, error("toxic not found", 404))
    );
}

#[tokio::test]
async fn populate_creates_keeps_replaces_and_stops_on_error() {
    let d = Daemon::start().await;
    let upstream = echo_server().await;
    assert_eq!(d.json("POST", "/populate", Some("[]")).await, (201, json!({"proxies": []})));

    let keep = d.proxy("keep", upstream).await;
    d.toxic("keep", r#"{"type":"noop"}"#).await;
    let replace = d.proxy("replace", upstream).await;
    d.toxic("replace", r#"{"type":"noop"}"#).await;

    // `localhost` equals 127.0.0.1 after resolving: "keep" is left untouched.
    let body = json!([
        {"name": "keep", "listen": format!("localhost:{}", keep.port()), "upstream": upstream.to_string()},
        {"name": "replace", "listen": "127.0.0.1:0", "upstream": upstream.to_string()},
        {"name": "new", "listen": "127.0.0.1:0", "upstream": upstream.to_string(), "enabled": false},
    ])
    .to_string();
    let (status, result) = d.json("POST", "/populate", Some(&body)).await;
    assert_eq!(status, 201);
    let proxies = result["proxies"].as_array().unwrap();
    assert_eq!(proxies.iter().map(|p| p["name"].as_str().unwrap()).collect::<Vec<_>>(), ["keep", "replace", "new"]);
    assert_eq!(proxies[0]["toxics"].as_array().unwrap().len(), 1, "kept with its toxics");
    assert_eq!(proxies[0]["listen"], keep.to_string());
    assert_eq!(proxies[1]["toxics"], json!([]), "replaced by a fresh proxy");
    assert_ne!(proxies[1]["listen"], replace.to_string());
    assert_eq!(proxies[2]["enabled"], false);

    // Validation first: nothing is created when any item lacks a field.
    let body = json!([{"name": "a", "upstream": "127.0.0.1:1"}, {"upstream": "127.0.0.1:1"}]).to_string();
    assert_eq!(
        d.json("POST", "/populate", Some(&body)).await,
        (400, error("missing required field: name at proxy 2", 400))
    );
    let body = json!([{"name": "a"}]).to_string();
    assert_eq!(
        d.json("POST", "/populate", Some(&body)).await,
        (400, error("missing required field: upstream at proxy 1", 400))
    );
    assert_eq!(d.json("GET", "/proxies/a", None).await.0, 404);

    // A runtime error stops the loop; what came before stays and is reported.
    let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let body = json!([
        {"name": "first", "listen": "127.0.0.1:0", "upstream": upstream.to_string()},
        {"name": "clash", "listen": taken.local_addr().unwrap().to_string(), "upstream": upstream.to_string()},
        {"name": "never", "listen": "127.0.0.1:0", "upstream": upstream.to_string()},
    ])
    .to_string();
    let (status, result) = d.json("POST", "/populate", Some(&body)).await;
    assert_eq!((status, &result["status"]), (500, &json!(500)));
    assert_eq!(result["proxies"].as_array().unwrap().len(), 1);
    assert_eq!(result["proxies"][0]["name"], "first");
    assert_eq!(d.json("GET", "/proxies/first", None).await.0, 200);
    assert_eq!(d.json("GET", "/proxies/never", None).await.0, 404);
    let (status, _) = d.json("POST", "/populate", Some(r#"{"name":"x"}"#)).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn bodyless_reset_enables_everything_and_removes_toxics() {
    let d = Daemon::start().await;
    let upstream = echo_server().await;
    let listen = d.proxy("a", upstream).await;
    d.toxic("a", r#"{"type":"latency","attributes":{"latency":100}}"#).await;
    d.json("POST", "/proxies/a", Some(r#"{"enabled":false}"#)).await;

    // What clients send: no body, no Content-Length.
    let address = d.base.trim_start_matches("http://");
    let mut raw = TcpStream::connect(address).await.unwrap();
    raw.write_all(b"POST /reset HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut answer = String::new();
    raw.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 204"), "{answer}");

    let (_, proxy) = d.json("GET", "/proxies/a", None).await;
    assert_eq!((&proxy["enabled"], &proxy["toxics"]), (&json!(true), &json!([])));
    let mut stream = TcpStream::connect(listen).await.unwrap();
    assert_eq!(round_trip(&mut stream, b"x").await.0, b"x");
}

#[tokio::test]
async fn metrics_count_bytes_connections_and_activations() {
    let d = Daemon::start().await;
    let listen = d.proxy("shop", echo_server().await).await;
    d.toxic("shop", r#"{"type":"noop","stream":"upstream"}"#).await;
    let mut stream = TcpStream::connect(listen).await.unwrap();
    round_trip(&mut stream, &[1; 1000]).await;
    let text = d.call("GET", "/metrics", None).await.text;
    for line in [
        "firedrill_proxy_bytes_total{proxy=\"shop\",direction=\"upstream\"} 1000",
        "firedrill_proxy_bytes_total{proxy=\"shop\",direction=\"downstream\"} 1000",
        "firedrill_proxy_connections_open{proxy=\"shop\"} 1",
        "firedrill_proxy_connections_total{proxy=\"shop\"} 1",
        "firedrill_toxic_activations_total{proxy=\"shop\",toxic=\"noop_upstream\",type=\"noop\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
    }
    // Every series, its help and type, word for word.
    insta::assert_snapshot!("metrics_after_one_round_trip", text);
}

#[tokio::test]
async fn unreachable_upstream_closes_the_client() {
    let d = Daemon::start().await;
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let listen = d.proxy("dead", closed).await;
    let mut stream = TcpStream::connect(listen).await.unwrap();
    let mut buf = [0; 1];
    let read = tokio::time::timeout(crate::harness::PATIENCE, stream.read(&mut buf)).await.unwrap();
    assert!(matches!(read, Ok(0) | Err(_)));
    // The daemon survives and still answers.
    assert_eq!(d.json("GET", "/proxies/dead", None).await.0, 200);
}

#[tokio::test]
async fn an_oversized_body_gets_413_in_toxiproxys_shape() {
    let d = Daemon::start().await;
    let body =
        format!(r#"{{"name":"big","listen":"127.0.0.1:0","upstream":"127.0.0.1:9","x":"{}"}}"#, "a".repeat(3 << 20));
    let response = d.call("POST", "/proxies", Some(&body)).await;
    assert_eq!(response.status, 413);
    assert_eq!(response.content_type.as_deref(), Some("application/json"));
    let answer: serde_json::Value = serde_json::from_str(&response.text).unwrap();
    assert_eq!(answer, error("request body too large: the limit is 2097152 bytes", 413));
    assert_eq!(d.json("GET", "/proxies", None).await, (200, json!({})), "nothing was created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_racing_a_create_of_the_same_proxy_never_answers_address_in_use() {
    let d = Arc::new(Daemon::start().await);
    let port = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
    let body = format!(r#"{{"name":"p","listen":"127.0.0.1:{port}","upstream":"127.0.0.1:9"}}"#);
    assert_eq!(d.json("POST", "/proxies", Some(&body)).await.0, 201);
    let (mut recreated, mut refused) = (0, 0);
    for _ in 0..300 {
        let (deleter, creator) = (d.clone(), d.clone());
        let again = body.clone();
        let delete = tokio::spawn(async move { deleter.call("DELETE", "/proxies/p", None).await.status });
        let create = tokio::spawn(async move { creator.json("POST", "/proxies", Some(&again)).await });
        let (deleted, (created, answer)) = (delete.await.unwrap(), create.await.unwrap());
        // The create ran either before the delete (the name is taken: 409) or after it, when the
        // port has been released (201); never in between (500 "address already in use").
        assert!(created == 201 || created == 409, "{created} {answer}");
        if created == 201 {
            recreated += 1;
            assert!(deleted == 204 || deleted == 404);
        } else {
            refused += 1;
            assert_eq!(deleted, 204);
            assert_eq!(d.json("POST", "/proxies", Some(&body)).await.0, 201, "free once the delete is done");
        }
    }
    assert!(recreated + refused == 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_whose_client_hangs_up_happens_completely_or_not_at_all() {
    let d = Daemon::start().await;
    let address = d.base.trim_start_matches("http://").to_owned();
    for i in 0..40 {
        let name = format!("p{i}");
        d.proxy(&name, echo_server().await).await;
        let free = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
        let body = format!(r#"{{"listen":"{free}"}}"#);
        let mut client = TcpStream::connect(&address).await.unwrap();
        let request = format!(
            "PATCH /proxies/{name} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        client.write_all(request.as_bytes()).await.unwrap();
        drop(client); // gone before the answer
        // The update may still be going on when we look; once it is done (or was never made),
        // the proxy listens where it says it does. A half-done update would never get there.
        let mut last = Value::Null;
        let mut consistent = false;
        for _ in 0..100 {
            let (status, proxy) = d.json("GET", &format!("/proxies/{name}"), None).await;
            assert_eq!(status, 200);
            let listen = proxy["listen"].as_str().unwrap().to_owned();
            last = proxy;
            if last["enabled"] == true && TcpStream::connect(&listen).await.is_ok() {
                consistent = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(consistent, "{name} is listed as enabled on an address where nothing listens: {last}");
    }
}

#[tokio::test]
async fn slow_clients_are_cut_and_never_lock_the_api_out() {
    let d = Daemon::start().await;
    let address = d.base.trim_start_matches("http://").to_owned();
    // More silent connections than may wait for their headers at once: the oldest make room,
    // and a client that does send its request is answered.
    let mut silent = Vec::new();
    for _ in 0..firedrill::proxy::api::MAX_IN_HEADERS + 36 {
        silent.push(TcpStream::connect(&address).await.unwrap());
    }
    let (status, version) = d.json("GET", "/version", None).await;
    assert_eq!(status, 200, "{version}");
    let mut cut = 0;
    for stream in &mut silent[..36] {
        let mut byte = [0_u8; 1];
        let read = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut byte)).await;
        if matches!(read, Ok(Ok(0) | Err(_))) {
            cut += 1;
        }
    }
    assert_eq!(cut, 36, "the oldest waiting connections were closed");
    // Half a request, then nothing: cut after the header timeout, not held for ever — on the
    // admin API and on an `http` proxy alike.
    let body = format!(r#"{{"name":"web","listen":"127.0.0.1:0","upstream":"{}","mode":"http"}}"#, echo_server().await);
    let (status, web) = d.json("POST", "/proxies", Some(&body)).await;
    assert_eq!(status, 201, "{web}");
    let started = std::time::Instant::now();
    let limit = firedrill::proxy::api::HEADER_READ_TIMEOUT + std::time::Duration::from_secs(5);
    let cut_in_time = |to: String| async move {
        let mut slow = TcpStream::connect(&to).await.unwrap();
        slow.write_all(b"GET /version HTTP/1.1\r\nHo").await.unwrap();
        let mut rest = Vec::new();
        tokio::time::timeout(limit, slow.read_to_end(&mut rest)).await.is_ok()
    };
    let (api, proxy) = tokio::join!(cut_in_time(address), cut_in_time(web["listen"].as_str().unwrap().to_owned()));
    assert!(api && proxy, "still open after {:?}: admin API cut {api}, http proxy cut {proxy}", started.elapsed());
}

#[tokio::test]
async fn metrics_stay_bounded_however_many_toxics_come_and_go() {
    let d = Daemon::start().await;
    let address = d.proxy("db", echo_server().await).await;
    let lines = || async { d.call("GET", "/metrics", None).await.text.lines().count() };
    let before = lines().await;
    for i in 0..500 {
        let body = format!(r#"{{"name":"t{i}","type":"latency","attributes":{{"latency":1}}}}"#);
        assert_eq!(d.json("POST", "/proxies/db/toxics", Some(&body)).await.0, 200);
        // A connection makes the toxic start (and count an activation).
        let mut stream = TcpStream::connect(address).await.unwrap();
        round_trip(&mut stream, b"x").await;
        assert_eq!(d.call("DELETE", &format!("/proxies/db/toxics/t{i}"), None).await.status, 204);
    }
    assert_eq!(lines().await, before, "a removed toxic's series goes with it");
}
