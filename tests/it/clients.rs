//! Two public Rust Toxiproxy clients drive a real `firedrill serve`.

use std::net::TcpStream;
use std::time::Duration;

use toxiproxy_rust::client::Client;
use toxiproxy_rust::proxy::ProxyPack;

use crate::harness::ServeProcess;

fn echo_upstream() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            std::thread::spawn(move || {
                let mut read = stream.try_clone().unwrap();
                let mut write = stream;
                let _ = std::io::copy(&mut read, &mut write);
            });
        }
    });
    address
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn every_toxiproxy_rust_call_works() {
    let serve = ServeProcess::start(&[]);
    let client = Client::new(serve.api);
    let upstream = echo_upstream();
    assert!(client.is_running());
    assert!(client.version().unwrap().contains(env!("CARGO_PKG_VERSION")));

    let listen = format!("127.0.0.1:{}", free_port());
    let proxies = client.populate(vec![ProxyPack::new("socket".into(), listen.clone(), upstream.to_string())]).unwrap();
    assert_eq!(proxies.len(), 1);
    assert_eq!(proxies[0].proxy_pack.listen, listen);
    assert!(client.all().unwrap().contains_key("socket"));

    let proxy = client.find_and_reset_proxy("socket").unwrap();
    proxy
        .with_latency("downstream".into(), 10, 2, 1.0)
        .with_bandwidth("upstream".into(), 1000, 1.0)
        .with_slow_close("downstream".into(), 10, 1.0)
        .with_timeout("upstream".into(), 0, 0.0)
        .with_slicer("downstream".into(), 2048, 128, 0, 0.8)
        .with_limit_data("upstream".into(), 100_000, 1.0);
    let toxics = proxy.toxics().unwrap();
    let mut names: Vec<_> = toxics.iter().map(|t| t.name.clone()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "bandwidth_upstream",
            "latency_downstream",
            "limit_data_upstream",
            "slicer_downstream",
            "slow_close_downstream",
            "timeout_upstream"
        ]
    );
    let slicer = toxics.iter().find(|t| t.name == "slicer_downstream").unwrap();
    assert_eq!(slicer.attributes["average_size"], 2048);
    assert!((slicer.toxicity - 0.8).abs() < 1e-6);

    // The toxics apply to traffic: still an intact echo (toxicity 0 timeout never applies).
    let mut stream = TcpStream::connect(&listen).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    std::io::Write::write_all(&mut stream, b"through").unwrap();
    let mut back = [0; 7];
    std::io::Read::read_exact(&mut stream, &mut back).unwrap();
    assert_eq!(&back, b"through");

    proxy.apply(|| {}).unwrap();
    assert!(proxy.toxics().unwrap().is_empty(), "apply removes the toxics afterwards");

    proxy
        .with_down(|| {
            assert!(TcpStream::connect(&listen).is_err(), "down: connections are refused");
        })
        .unwrap();
    assert!(TcpStream::connect(&listen).is_ok(), "up again after with_down");

    proxy.disable().unwrap();
    assert!(!client.find_proxy("socket").unwrap().proxy_pack.enabled);
    client.reset().unwrap();
    assert!(client.find_proxy("socket").unwrap().proxy_pack.enabled, "reset enables every proxy");
    proxy.with_latency("downstream".into(), 1, 0, 1.0);
    proxy.delete_all_toxics().unwrap();
    assert!(proxy.toxics().unwrap().is_empty());
    proxy.delete().unwrap();
    assert!(client.find_proxy("socket").is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_noxious_client_call_works_but_populate() {
    use noxious_client::{Client, StreamDirection, Toxic, ToxicKind};

    let serve = tokio::task::spawn_blocking(|| ServeProcess::start(&[])).await.unwrap();
    let client = Client::new(&serve.api.to_string());
    let upstream = crate::harness::echo_server().await;

    let listen = format!("127.0.0.1:{}", free_port());
    let mut proxy = client.create_proxy("nox", &listen, &upstream.to_string()).await.unwrap();
    assert!(client.proxies().await.unwrap().contains_key("nox"));
    assert_eq!(client.proxy("nox").await.unwrap().config.listen, listen);

    let latency = Toxic {
        kind: ToxicKind::Latency { latency: 40, jitter: 5 },
        name: "lat".into(),
        toxicity: 1.0,
        direction: StreamDirection::Upstream,
    };
    let added = proxy.add_toxic(&latency).await.unwrap();
    assert_eq!(added.name, "lat");
    assert!(matches!(added.direction, StreamDirection::Upstream), "`direction` is accepted as `stream`");
    let updated = proxy
        .update_toxic("lat", 0.5, ToxicKind::Latency { latency: 80, jitter: 0 }, StreamDirection::Upstream)
        .await
        .unwrap();
    assert!(matches!(updated.kind, ToxicKind::Latency { latency: 80, jitter: 0 }));
    assert!((updated.toxicity - 0.5).abs() < 1e-6);
    let limit = Toxic {
        kind: ToxicKind::LimitData { bytes: 10 },
        name: "limit".into(),
        toxicity: 1.0,
        direction: StreamDirection::Downstream,
    };
    proxy.add_toxic(&limit).await.unwrap();
    assert_eq!(proxy.toxics().await.unwrap().len(), 2);
    proxy.remove_toxic("lat").await.unwrap();
    assert_eq!(proxy.toxics().await.unwrap().len(), 1);

    proxy.disable().await.unwrap();
    assert!(tokio::net::TcpStream::connect(&listen).await.is_err());
    proxy.enable().await.unwrap();
    assert!(tokio::net::TcpStream::connect(&listen).await.is_ok());

    // Toxiproxy never renames: the call succeeds and the proxy keeps its name.
    proxy.change_name("renamed").await.unwrap();
    assert!(client.proxy("nox").await.is_ok());
    assert!(client.proxy("renamed").await.is_err());

    client.reset_state().await.unwrap();
    assert!(client.proxy("nox").await.unwrap().toxics().await.unwrap().is_empty());

    // noxious-client's populate expects a bare array; Toxiproxy (and firedrill) answer
    // {"proxies": [...]}, so this one call cannot succeed.
    let config = client.proxy("nox").await.unwrap().config.clone();
    assert!(client.populate(&[config]).await.is_err());

    client.proxy("nox").await.unwrap().delete().await.unwrap();
    assert!(client.proxies().await.unwrap().is_empty());
    drop(serve);
}
