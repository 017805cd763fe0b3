//! A game day's notifications: webhooks told of the day's start, each drill's start and end,
//! and the end with its summary (or a missed occurrence). Slack-compatible `{"text": …}` or a
//! plain JSON form. Each webhook has its own queue, delivered in order by its own task and
//! retried with exponential backoff, so a slow or failing receiver never holds a run up; what
//! still fails after the last try is journaled in the day's journal.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::log::{DayEvent, DayLog};
use super::plan::{Webhook, WebhookFormat};

/// One notification.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Notice {
    /// `gameday_started`, `drill_started`, `drill_ended`, `gameday_ended`, `gameday_missed`.
    pub event: &'static str,
    /// The game day's id (empty for a missed occurrence).
    pub gameday: String,
    /// The plan.
    pub plan: String,
    /// Its title.
    pub title: String,
    /// The team.
    pub team: String,
    /// When, ms since the Unix epoch.
    pub at_ms: u64,
    /// What a person reads.
    pub text: String,
    /// The rest, by event: `run_id`, `drill`, `outcome`, `summary`, `scheduled_ms`.
    #[serde(flatten)]
    pub details: serde_json::Map<String, serde_json::Value>,
}

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// How deliveries are retried.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// Tries in all (the first and the retries).
    pub attempts: u32,
    /// The wait before the first retry; doubled before each next one.
    pub backoff: Duration,
    /// How long one try may take.
    pub timeout: Duration,
}

impl Default for Retry {
    /// Five tries, 1 s, 2 s, 4 s and 8 s apart, 10 s each.
    fn default() -> Self {
        Self { attempts: 5, backoff: Duration::from_secs(1), timeout: Duration::from_secs(10) }
    }
}

/// Delivers notifications.
#[derive(Clone)]
pub struct Notifier {
    client: HttpsClient,
    retry: Retry,
    tracker: TaskTracker,
    stop: CancellationToken,
}

/// The notifications of one game day: a queue per webhook.
pub struct Outbox {
    queues: Vec<mpsc::UnboundedSender<Notice>>,
}

impl Outbox {
    /// Queues `notice` for every webhook; returns at once.
    pub fn send(&self, notice: &Notice) {
        for queue in &self.queues {
            let _ = queue.send(notice.clone());
        }
    }
}

impl Notifier {
    /// A notifier retrying as `retry` says; `stop` ends retries (the daemon is stopping).
    pub fn new(retry: Retry, stop: CancellationToken) -> Self {
        let builder = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(rustls::crypto::ring::default_provider())
            .unwrap_or_else(|err| {
                tracing::warn!(%err, "no TLS root certificates found: https webhooks will fail");
                hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(no_roots())
            });
        let connector = builder.https_or_http().enable_http1().build();
        let client = Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector);
        Self { client, retry, tracker: TaskTracker::new(), stop }
    }

    /// The outbox of one game day, journaling failures in `log`.
    pub fn outbox(&self, hooks: &[Webhook], log: &Arc<DayLog>) -> Outbox {
        let queues = hooks
            .iter()
            .map(|hook| {
                let (tx, mut rx) = mpsc::unbounded_channel::<Notice>();
                let (this, hook, log) = (self.clone(), hook.clone(), log.clone());
                self.tracker.spawn(async move {
                    while let Some(notice) = rx.recv().await {
                        if let Err((attempts, error)) = this.deliver(&hook, &notice).await {
                            tracing::warn!(url = redact(&hook.url), event = notice.event, %error, "a notification failed");
                            log.record(DayEvent::NotifyFailed {
                                url: redact(&hook.url),
                                event: notice.event.to_owned(),
                                attempts,
                                error,
                            });
                        }
                    }
                });
                tx
            })
            .collect();
        Outbox { queues }
    }

    /// Tries until delivered, out of tries, or stopped: `Err((tries, last error))`.
    async fn deliver(&self, hook: &Webhook, notice: &Notice) -> Result<(), (u32, String)> {
        let body = match hook.format {
            WebhookFormat::Slack => serde_json::json!({ "text": notice.text }),
            WebhookFormat::Json => serde_json::to_value(notice).unwrap_or_default(),
        };
        let body = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
        let mut wait = self.retry.backoff;
        let mut error = String::new();
        for attempt in 1..=self.retry.attempts.max(1) {
            match self.try_once(&hook.url, body.clone()).await {
                Ok(()) => return Ok(()),
                Err(e) => error = e,
            }
            if attempt == self.retry.attempts.max(1) {
                return Err((attempt, error));
            }
            tokio::select! {
                () = self.stop.cancelled() => return Err((attempt, format!("{error} (the daemon stopped before the next try)"))),
                () = tokio::time::sleep(wait) => {}
            }
            wait = wait.saturating_mul(2);
        }
        Err((self.retry.attempts, error))
    }

    async fn try_once(&self, url: &str, body: Bytes) -> Result<(), String> {
        let request = http::Request::post(url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::USER_AGENT, concat!("firedrill/", env!("CARGO_PKG_VERSION")))
            .body(Full::new(body))
            .map_err(|e| e.to_string())?;
        let response = tokio::time::timeout(self.retry.timeout, self.client.request(request))
            .await
            .map_err(|_| format!("no answer within {}", crate::duration::format(self.retry.timeout)))?
            .map_err(|e| {
                format!("{e}: {}", std::error::Error::source(&e).map(ToString::to_string).unwrap_or_default())
            })?;
        let status = response.status();
        if status.is_success() { Ok(()) } else { Err(format!("HTTP {status}")) }
    }

    /// Waits until every queue is delivered (or given up on); the outboxes must be dropped.
    pub async fn flush(&self) {
        self.tracker.close();
        self.tracker.wait().await;
        self.tracker.reopen();
    }
}

/// A TLS configuration that trusts no one (this machine has no root certificates).
fn no_roots() -> rustls::ClientConfig {
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(rustls::DEFAULT_VERSIONS)
        .expect("ring supports the default TLS versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth()
}

/// A URL without its path and query beyond the host (Slack's secret is in the path).
pub fn redact(url: &str) -> String {
    match url.parse::<http::Uri>() {
        Ok(uri) => format!("{}://{}/…", uri.scheme_str().unwrap_or("http"), uri.authority().map_or("", |a| a.as_str())),
        Err(_) => "(a webhook)".to_owned(),
    }
}
