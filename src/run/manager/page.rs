//! Built-in burn-rate alerts sent to Alertmanager (`serve --alertmanager URL`), so they route,
//! page, silence and inhibit like any other alert: posted to its v2 API while firing (again
//! before they would expire), and posted resolved when they clear or their run ends.

use std::collections::BTreeMap;
use std::sync::Weak;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio_util::sync::CancellationToken;

use super::Manager;

/// How often the alerts are looked at.
const TICK: Duration = Duration::from_secs(1);
/// How often a firing alert is sent again (Prometheus resends every minute).
const RESEND: Duration = Duration::from_secs(30);
/// How long a sent alert stays firing in Alertmanager without being sent again.
const EXPIRES: Duration = Duration::from_secs(180);
/// The longest one post may take.
const POST_TIMEOUT: Duration = Duration::from_secs(5);

/// A built-in alert of a run, firing.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Firing {
    /// The run.
    pub run: String,
    /// The drill (`blind` for a blind run: the alert is how its responder may notice it, and the
    /// drill's name would give it away).
    pub drill: String,
    /// The team.
    pub team: String,
    /// The rule (`page-1h`).
    pub rule: String,
    /// When it started firing, wall-clock ms.
    pub since_wall_ms: u64,
}

impl Manager {
    /// Every built-in burn-rate alert firing now, in the runs in progress.
    pub fn firing(&self) -> Vec<Firing> {
        let mut all = Vec::new();
        for (id, entry) in self.runs().iter().filter(|(_, e)| e.finished.borrow().is_none()) {
            let firing = crate::journal::builtin_firing(&entry.log.records());
            let drill = if entry.blind { "blind".to_owned() } else { entry.drill.clone() };
            all.extend(firing.into_iter().map(|(rule, since_wall_ms)| Firing {
                run: id.clone(),
                drill: drill.clone(),
                team: entry.team.clone(),
                rule,
                since_wall_ms,
            }));
        }
        all
    }
}

fn rfc3339(wall_ms: u64) -> String {
    i64::try_from(wall_ms)
        .ok()
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// Alertmanager's v2 shape of one alert; `ends_wall_ms` in the past resolves it.
fn body(alert: &Firing, ends_wall_ms: u64) -> serde_json::Value {
    let severity = if alert.rule.starts_with("page") { "page" } else { "ticket" };
    serde_json::json!({
        "labels": {
            "alertname": crate::slo::prometheus::alert_name(&alert.rule),
            "firedrill_run": alert.run,
            "firedrill_rule": alert.rule,
            "drill": alert.drill,
            "team": alert.team,
            "severity": severity,
            "source": "firedrill",
        },
        "annotations": {
            "summary": format!("run {} of team {}: the burn-rate rule {} fires", alert.run, alert.team, alert.rule),
        },
        "startsAt": rfc3339(alert.since_wall_ms),
        "endsAt": rfc3339(ends_wall_ms),
    })
}

/// Posts `alerts` to every Alertmanager; a failure is logged, never raised (a run goes on).
async fn post(client: &Client<HttpConnector, Full<Bytes>>, urls: &[String], alerts: &[serde_json::Value]) {
    if alerts.is_empty() {
        return;
    }
    let body = Bytes::from(serde_json::Value::Array(alerts.to_vec()).to_string());
    for url in urls {
        let request = http::Request::post(format!("{}/api/v2/alerts", url.trim_end_matches('/')))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body.clone()));
        let Ok(request) = request else {
            tracing::warn!(url, "not an Alertmanager URL");
            continue;
        };
        match tokio::time::timeout(POST_TIMEOUT, client.request(request)).await {
            Ok(Ok(response)) if response.status().is_success() => {}
            Ok(Ok(response)) => tracing::warn!(url, status = %response.status(), "Alertmanager refused the alerts"),
            Ok(Err(error)) => tracing::warn!(url, %error, "cannot post alerts to Alertmanager"),
            Err(_) => tracing::warn!(url, "Alertmanager did not answer in time"),
        }
    }
}

/// Sends the manager's built-in alerts to `urls` (Alertmanager base URLs) until `stop`; on
/// `stop`, every alert still firing is sent resolved.
pub async fn push(manager: Weak<Manager>, urls: Vec<String>, stop: CancellationToken) {
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    // What was sent as firing, and when it was last sent.
    let mut sent: BTreeMap<Firing, tokio::time::Instant> = BTreeMap::new();
    let mut ticks = tokio::time::interval(TICK);
    loop {
        let stopping = tokio::select! {
            () = stop.cancelled() => true,
            _ = ticks.tick() => false,
        };
        let now = crate::clock::wall_ms();
        let firing: Vec<Firing> =
            if stopping { Vec::new() } else { manager.upgrade().map(|m| m.firing()).unwrap_or_default() };
        let expires = now + u64::try_from(EXPIRES.as_millis()).unwrap_or(u64::MAX);
        let mut batch = Vec::new();
        for alert in &firing {
            let due = sent.get(alert).is_none_or(|last| last.elapsed() >= RESEND);
            if due {
                batch.push(body(alert, expires));
                sent.insert(alert.clone(), tokio::time::Instant::now());
            }
        }
        let cleared: Vec<Firing> = sent.keys().filter(|a| !firing.contains(a)).cloned().collect();
        for alert in cleared {
            sent.remove(&alert);
            batch.push(body(&alert, now));
        }
        post(&client, &urls, &batch).await;
        if stopping {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alert_reads_as_alertmanager_expects() {
        let alert = Firing {
            run: "api-burst-1-1".into(),
            drill: "api-burst".into(),
            team: "payments".into(),
            rule: "page-1h".into(),
            since_wall_ms: 1_796_000_000_000,
        };
        let body = body(&alert, 1_796_000_180_000);
        assert_eq!(body["labels"]["alertname"], "FiredrillBurnPage1h");
        assert_eq!(body["labels"]["severity"], "page");
        assert_eq!(body["startsAt"], "2026-11-30T00:53:20Z");
        assert_eq!(body["endsAt"], "2026-11-30T00:56:20Z");
    }
}
