//! Kill faults on Kubernetes pods, tested at the HTTP boundary: no cluster can run here, so the
//! kube client talks to a local API server that records every request and answers like the real
//! one for pods (list by label selector, delete with a grace period). The exact calls, selectors
//! and grace periods are asserted, and so is the allow-list refusal, which sends nothing at all.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::harness::ServeProcess;
use crate::kill::{events_of, journal};

/// What the fake API server saw and what it serves.
#[derive(Default)]
struct Cluster {
    /// (method, path?query, body)
    requests: Vec<(String, String, String)>,
    /// Pod name -> ready; deleted pods are replaced by `<name>-new`.
    pods: Vec<(String, bool)>,
}

type Shared = Arc<Mutex<Cluster>>;

fn pod(name: &str, ready: bool, terminating: bool) -> Value {
    let mut metadata =
        json!({ "name": name, "namespace": "shop-dev", "uid": format!("uid-{name}"), "labels": { "app": "wallet" } });
    if terminating {
        metadata["deletionTimestamp"] = json!("2026-11-22T00:00:00Z");
    }
    json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": metadata,
        "status": { "conditions": [ { "type": "Ready", "status": if ready { "True" } else { "False" } } ] }
    })
}

async fn list(State(cluster): State<Shared>, UrlPath(ns): UrlPath<String>, RawQuery(query): RawQuery) -> Json<Value> {
    let mut cluster = cluster.lock().unwrap();
    let path = format!("/api/v1/namespaces/{ns}/pods?{}", query.unwrap_or_default());
    cluster.requests.push(("GET".into(), path, String::new()));
    let mut items: Vec<Value> = cluster.pods.iter().map(|(name, ready)| pod(name, *ready, false)).collect();
    items.push(pod("wallet-old", true, true)); // terminating: never a target
    Json(json!({ "apiVersion": "v1", "kind": "PodList", "metadata": { "resourceVersion": "1" }, "items": items }))
}

async fn delete(
    State(cluster): State<Shared>,
    UrlPath((ns, name)): UrlPath<(String, String)>,
    body: String,
) -> Json<Value> {
    let mut cluster = cluster.lock().unwrap();
    cluster.requests.push(("DELETE".into(), format!("/api/v1/namespaces/{ns}/pods/{name}"), body));
    cluster.pods.retain(|(n, _)| *n != name);
    // The ReplicaSet makes a replacement, ready at once.
    cluster.pods.push((format!("{name}-new"), true));
    Json(pod(&name, true, true))
}

/// Starts the fake API server on its own thread; returns its state and address.
fn start_cluster() -> (Shared, std::net::SocketAddr) {
    let cluster: Shared = Arc::new(Mutex::new(Cluster {
        requests: Vec::new(),
        pods: vec![("wallet-a".into(), true), ("wallet-b".into(), true), ("wallet-c".into(), true)],
    }));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let address = listener.local_addr().unwrap();
    let app = Router::new()
        .route("/api/v1/namespaces/{ns}/pods", get(list))
        .route("/api/v1/namespaces/{ns}/pods/{name}", axum::routing::delete(delete))
        .with_state(cluster.clone());
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    (cluster, address)
}

fn kubeconfig(dir: &std::path::Path, server: std::net::SocketAddr, current: &str) -> std::path::PathBuf {
    let text = format!(
        r"apiVersion: v1
kind: Config
clusters:
- name: dev
  cluster:
    server: http://{server}
- name: prod
  cluster:
    server: http://{server}
users:
- name: dev
  user:
    token: dev-token
contexts:
- name: kind-dev
  context: {{ cluster: dev, user: dev }}
- name: prod
  context: {{ cluster: prod, user: dev }}
current-context: {current}
"
    );
    let path = dir.join(format!("kubeconfig-{current}"));
    std::fs::write(&path, text).unwrap();
    path
}

const DRILL: &str = r#"
[drill]
name = "wallet-pods"
title = "Wallet pods are deleted"
briefing = "Some payments fail."
timebox = "10m"

[targets]
production = { detect = 3, diagnose = 6, mitigate = 9, resolve = 12 }

[blast_radius]
kubernetes = { contexts = ["kind-dev"], namespaces = ["shop-dev"] }

[[faults]]
at = "0s"
kill = { kubernetes = { namespace = "shop-dev", selector = "app=wallet" }, grace = "5s" }

[answer]
component = "wallet"
kind = "pod"
accept = ["wallet"]
"#;

fn run_with(config: &std::path::Path, dir: &std::path::Path) -> ServeProcess {
    std::fs::create_dir_all(dir.join("drills")).unwrap();
    std::fs::write(dir.join("drills/wallet-pods.toml"), DRILL).unwrap();
    ServeProcess::start_env(dir, &[], &[("KUBECONFIG", config.to_str().unwrap())])
}

#[test]
fn a_pod_is_deleted_with_its_grace_period_and_its_replacement_is_seen_ready() {
    let (cluster, server) = start_cluster();
    let dir = tempfile::tempdir().unwrap();
    let config = kubeconfig(dir.path(), server, "kind-dev");
    let serve = run_with(&config, dir.path());
    let (code, out, err) = serve.verb(&["run", "wallet-pods", "--team", "platform", "--seed", "1"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(crate::harness::until(dir.path(), Duration::from_secs(10), || !events_of(
        &journal(dir.path()),
        "target_recovered"
    )
    .is_empty()));
    serve.verb(&["abort", "--all"]);

    let records = journal(dir.path());
    let killed = events_of(&records, "target_killed");
    assert_eq!(killed.len(), 1, "one pod per round by default: {killed:?}");
    assert_eq!(killed[0]["backend"], "kubernetes");
    assert_eq!(killed[0]["action"], "delete");
    let victim = killed[0]["target"].as_str().unwrap().to_owned();
    assert!(["wallet-a", "wallet-b", "wallet-c"].contains(&victim.as_str()), "never the terminating pod: {victim}");
    let recovered = events_of(&records, "target_recovered");
    assert_eq!(recovered[0]["detail"], "3 ready pod(s) again (was 3)");

    let requests = cluster.lock().unwrap().requests.clone();
    let list = "/api/v1/namespaces/shop-dev/pods?&labelSelector=app%3Dwallet";
    assert_eq!(requests[0].0, "GET");
    assert_eq!(requests[0].1, list, "the preflight lists by the drill's selector");
    let deletes: Vec<&(String, String, String)> = requests.iter().filter(|r| r.0 == "DELETE").collect();
    assert_eq!(deletes.len(), 1, "{requests:#?}");
    assert_eq!(deletes[0].1, format!("/api/v1/namespaces/shop-dev/pods/{victim}"));
    let body: Value = serde_json::from_str(&deletes[0].2).unwrap();
    assert_eq!(body["gracePeriodSeconds"], 5, "{body}");
    assert!(requests.iter().all(|r| r.0 == "DELETE" || r.1 == list), "only lists by the selector: {requests:#?}");
}

#[test]
fn a_context_outside_the_allow_list_sends_nothing() {
    let (cluster, server) = start_cluster();
    let dir = tempfile::tempdir().unwrap();
    let config = kubeconfig(dir.path(), server, "prod");
    let serve = run_with(&config, dir.path());
    let (code, _, err) = serve.verb(&["run", "wallet-pods", "--team", "platform"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("the kubeconfig's current context `prod` is not in the drill's allow-list (kind-dev)"),
        "{err}"
    );
    assert!(cluster.lock().unwrap().requests.is_empty(), "not one request reached the cluster");
    assert!(events_of(&journal(dir.path()), "target_killed").is_empty());

    // A namespace outside the allow-list is refused when the drill is read, with its place.
    std::fs::write(
        dir.path().join("drills/wallet-pods.toml"),
        DRILL.replace("namespace = \"shop-dev\"", "namespace = \"payments\""),
    )
    .unwrap();
    let (code, _, err) = serve.verb(&["run", "wallet-pods", "--team", "platform"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(
            "wallet-pods.toml:16:23: namespace `payments` is not in blast_radius.kubernetes.namespaces (shop-dev)"
        ),
        "{err}"
    );
}

#[test]
fn a_hung_api_server_fails_the_round_in_bounded_time_naming_server_and_timeout() {
    // Accepts every connection and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let server = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().map_while(Result::ok) {
            held.push(stream);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let config = kubeconfig(dir.path(), server, "kind-dev");
    std::fs::create_dir_all(dir.path().join("drills")).unwrap();
    std::fs::write(dir.path().join("drills/wallet-pods.toml"), DRILL).unwrap();
    let serve = ServeProcess::start_env(
        dir.path(),
        &[],
        &[("KUBECONFIG", config.to_str().unwrap()), ("FIREDRILL_KUBE_TIMEOUT", "1")],
    );
    let started = std::time::Instant::now();
    let (code, _, err) = serve.verb(&["run", "wallet-pods", "--team", "platform"]);
    let took = started.elapsed();
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains(&format!("Kubernetes API http://{server}/")), "names the server: {err}");
    assert!(err.contains("request timeout 1s (FIREDRILL_KUBE_TIMEOUT)"), "names the timeout: {err}");
    assert!(took < Duration::from_secs(20), "bounded by the timeouts, not the client's 30 s default: {took:?}");
    assert!(!err.contains('\u{1b}'), "no colour codes when stderr is not a terminal: {err:?}");
}

#[test]
fn validate_warns_when_the_current_context_is_outside_the_allow_list() {
    let (_, server) = start_cluster();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("wallet-pods.toml"), DRILL).unwrap();
    for (current, warned) in [("prod", true), ("kind-dev", false)] {
        let config = kubeconfig(dir.path(), server, current);
        let output = crate::verb::Verb::new::<&str>([])
            .current_dir(dir.path())
            .args(["validate", "wallet-pods.toml"])
            .env("KUBECONFIG", &config)
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "a warning is not an error: {out}");
        assert!(out.contains("at most 1 target(s) of the drill down at once"), "{out}");
        let warning = "the kubeconfig's current context `prod` is not in the drill's allow-list (kind-dev)";
        assert_eq!(out.contains(warning), warned, "{current}: {out}");
    }
}
