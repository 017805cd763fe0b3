//! `POST /webhooks/alertmanager`: Alertmanager's webhook (payload version 4). Firing alerts go
//! to the runs in progress as alert events (machine detection), if their drill expects them;
//! the answer comes once every alert was recorded (`delivered` counts them), duplicates are
//! ignored by the runs, malformed bodies get 400, bodies over the limit 413.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;

use super::manager::Manager;

/// The payload, as far as firedrill reads it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Payload {
    /// Must be `"4"`.
    pub version: String,
    /// `firing` or `resolved` for the group.
    pub status: String,
    /// The alerts of the group (possibly truncated: `truncatedAlerts` says how many were left out).
    pub alerts: Vec<Alert>,
    /// How many alerts Alertmanager left out.
    #[serde(default)]
    pub truncated_alerts: u64,
}

/// One alert of a payload.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    /// `firing` or `resolved`: this decides, not `endsAt`.
    pub status: String,
    /// Its labels (`alertname` among them).
    pub labels: BTreeMap<String, String>,
    /// When it started firing.
    pub starts_at: String,
    /// Alertmanager's identity of the alert.
    pub fingerprint: String,
}

/// Parses a webhook body: the version must be 4, every alert needs `alertname`.
pub fn parse(body: &[u8]) -> Result<Payload, String> {
    let payload: Payload = serde_json::from_slice(body).map_err(|e| format!("bad Alertmanager payload: {e}"))?;
    if payload.version != "4" {
        return Err(format!(
            "unsupported Alertmanager payload version `{}` (firedrill reads version 4)",
            payload.version
        ));
    }
    if let Some(i) = payload.alerts.iter().position(|a| !a.labels.contains_key("alertname")) {
        return Err(format!("bad Alertmanager payload: alert {i} has no `alertname` label"));
    }
    Ok(payload)
}

fn answer(status: StatusCode, body: &serde_json::Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], format!("{body}\n")).into_response()
}

/// The largest webhook body taken (Alertmanager's grouped payloads are far smaller); a larger
/// one gets 413 in Toxiproxy's error shape and nothing of it is recorded.
pub const BODY_LIMIT: usize = 4 << 20;

async fn receive(
    State(manager): State<Arc<Manager>>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            let status = rejection.status();
            let error = format!("{} (the webhook takes at most {BODY_LIMIT} bytes)", rejection.body_text());
            return answer(status, &serde_json::json!({"error": error, "status": status.as_u16()}));
        }
    };
    let payload = match parse(&body) {
        Ok(payload) => payload,
        Err(error) => return answer(StatusCode::BAD_REQUEST, &serde_json::json!({"error": error, "status": 400})),
    };
    // Every alert is handed over and waited for before the answer: a 200 means each one was
    // recorded or deliberately ignored (not expected, a repeat), never dropped.
    let mut delivered = 0;
    for alert in payload.alerts.iter().filter(|a| a.status == "firing") {
        let name = alert.labels.get("alertname").map_or("", String::as_str);
        delivered += usize::from(manager.alert(name, &alert.labels, &alert.starts_at, &alert.fingerprint).await > 0);
    }
    answer(
        StatusCode::OK,
        &serde_json::json!({"received": payload.alerts.len(), "delivered": delivered, "truncated": payload.truncated_alerts}),
    )
}

/// The webhook route, for the daemon's API.
pub fn router(manager: Arc<Manager>) -> Router {
    Router::new()
        .route("/webhooks/alertmanager", post(receive))
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(manager)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixtures_parse_and_bad_ones_are_refused() {
        let firing = include_str!("../../tests/fixtures/alertmanager/firing.json");
        let payload = parse(firing.as_bytes()).unwrap();
        assert_eq!(payload.status, "firing");
        assert_eq!(payload.alerts[0].labels["alertname"], "WalletErrorBudgetBurn");
        let grouped = parse(include_bytes!("../../tests/fixtures/alertmanager/grouped-truncated.json")).unwrap();
        assert_eq!(grouped.alerts.len(), 2);
        assert_eq!(grouped.truncated_alerts, 3);
        let resolved = parse(include_bytes!("../../tests/fixtures/alertmanager/resolved.json")).unwrap();
        assert_eq!(resolved.alerts[0].status, "resolved");
        assert!(parse(b"{").unwrap_err().starts_with("bad Alertmanager payload"));
        let v3 = firing.replace("\"version\": \"4\"", "\"version\": \"3\"");
        assert_eq!(
            parse(v3.as_bytes()).unwrap_err(),
            "unsupported Alertmanager payload version `3` (firedrill reads version 4)"
        );
    }
}
