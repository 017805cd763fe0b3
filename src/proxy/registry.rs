//! The set of proxies and every operation the admin API performs on them.
//!
//! All changes go through one async lock, so operations are atomic: a failed request leaves
//! nothing half-applied.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use serde::Serialize;
use serde_json::Value;
use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

use super::config::{HttpOptions, Mode, ProxyConfig, ProxyFields, check_address};
use super::error::ApiError;
use super::http::HttpEngine;
use super::http::metrics::HttpMetrics;
use super::link::{LinkShared, ToxicList};
use super::listener::{Running, Upstream};
use super::metrics::{self, ProxyMetrics};
use super::plane::{Plane, PlaneThread};
use super::toxic::{Stream, Toxic};

/// A proxy as the API returns it.
#[derive(Debug, Clone, Serialize)]
pub struct ProxyView {
    /// Unique name.
    pub name: String,
    /// The address bound (or, when disabled, as given).
    pub listen: String,
    /// Where connections go.
    pub upstream: String,
    /// Whether it accepts connections.
    pub enabled: bool,
    /// `http` for request-level proxies; left out for `tcp`, so Toxiproxy clients see nothing new.
    #[serde(skip_serializing_if = "Mode::is_tcp")]
    pub mode: Mode,
    /// `http` mode: the upstream protocol, timeouts and `Host` handling; left out for `tcp`.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpOptions>,
    /// Upstream toxics in chain order, then downstream ones.
    pub toxics: Vec<Toxic>,
}

struct Proxy {
    config: ProxyConfig,
    /// Insertion order; [`Proxy::chain_order`] sorts by stream for the links and the API.
    toxics: Vec<Toxic>,
    /// Pushes every toxic change to the open connections.
    toxics_tx: watch::Sender<ToxicList>,
    metrics: Arc<ProxyMetrics>,
    /// Per-proxy source of connection seeds.
    seeds: Arc<Mutex<SmallRng>>,
    /// Present while the proxy listens.
    running: Option<Running>,
    /// Requests and responses of an `http` proxy.
    http_metrics: Arc<HttpMetrics>,
    /// Connections open now, under the per-proxy cap.
    open: Arc<std::sync::atomic::AtomicUsize>,
}

impl Proxy {
    fn chain_order(&self) -> Vec<Toxic> {
        let mut list: Vec<Toxic> = self.toxics.iter().filter(|t| t.stream == Stream::Upstream).cloned().collect();
        list.extend(self.toxics.iter().filter(|t| t.stream == Stream::Downstream).cloned());
        list
    }

    fn view(&self) -> ProxyView {
        ProxyView {
            name: self.config.name.clone(),
            listen: self.config.listen.clone(),
            upstream: self.config.upstream.clone(),
            enabled: self.config.enabled,
            mode: self.config.mode,
            http: (self.config.mode == Mode::Http).then_some(self.config.http),
            toxics: self.chain_order(),
        }
    }

    fn publish(&self) {
        self.toxics_tx.send_replace(Arc::new(self.chain_order()));
    }

    /// Binds and starts accepting; on success `listen` becomes the address actually bound.
    async fn start(&mut self, plane: &Plane) -> Result<(), ApiError> {
        let http = (self.config.mode == Mode::Http).then(|| {
            let seed = self.seeds.lock().unwrap_or_else(std::sync::PoisonError::into_inner).random::<u64>();
            HttpEngine::new(
                self.config.upstream.clone(),
                self.config.http,
                self.toxics_tx.subscribe(),
                self.http_metrics.clone(),
                self.metrics.clone(),
                seed,
            )
        });
        let upstream = Upstream {
            proxy: self.config.name.clone(),
            address: self.config.upstream.clone(),
            http,
            link: LinkShared { toxics: self.toxics_tx.subscribe(), metrics: self.metrics.clone() },
            seeds: self.seeds.clone(),
            open: self.open.clone(),
        };
        let (local, running) = Running::start(&self.config.listen, upstream, plane)
            .await
            .map_err(|e| ApiError::bind(&self.config.listen, &e))?;
        self.config.listen = local.to_string();
        self.running = Some(running);
        tracing::info!(proxy = %self.config.name, listen = %local, upstream = %self.config.upstream, "proxy listening");
        Ok(())
    }

    async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await;
        }
    }
}

/// Runs a change of the registry on a task of its own, so that it completes whatever happens to
/// the caller: an admin client that hangs up drops its request's future, and a change dropped
/// between stopping an old listener and starting the new one would leave a proxy listed as
/// enabled with nothing listening.
async fn whole<T: Send + 'static>(
    change: impl Future<Output = Result<T, ApiError>> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::spawn(change).await.unwrap_or_else(|e| Err(lost(&e)))
}

/// A change whose task failed (it panicked, or the runtime is shutting down).
fn lost(e: &tokio::task::JoinError) -> ApiError {
    ApiError {
        status: axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        message: format!("the change did not complete: {e}"),
    }
}

/// Every proxy of a daemon.
pub struct Registry {
    proxies: tokio::sync::Mutex<BTreeMap<String, Proxy>>,
    /// Where the proxies run, and the tracker of their connections.
    plane: Plane,
    /// The data plane's own thread, when it has one.
    _thread: Option<PlaneThread>,
    /// Seeds each new proxy's random source; `None` draws from the OS.
    seed: Option<u64>,
    /// More series for `/metrics` from the layers above (the daemon's runs), appended to the
    /// proxies' own.
    more_metrics: std::sync::Mutex<Option<MetricsSource>>,
}

/// Renders more series in Prometheus text format.
pub type MetricsSource = Arc<dyn Fn() -> String + Send + Sync>;

impl Registry {
    /// An empty registry whose proxies run on the current runtime; `seed` makes toxicity and
    /// jitter draws repeatable. Must be called within a tokio runtime.
    pub fn new(seed: Option<u64>) -> Arc<Self> {
        Self::build(seed, Handle::current(), None)
    }

    /// An empty registry whose proxies run on a thread of their own (see [`super::plane`]).
    pub fn on_own_thread(seed: Option<u64>) -> std::io::Result<Arc<Self>> {
        let thread = PlaneThread::start()?;
        Ok(Self::build(seed, thread.handle().clone(), Some(thread)))
    }

    fn build(seed: Option<u64>, handle: Handle, thread: Option<PlaneThread>) -> Arc<Self> {
        let plane = Plane { handle, tracker: TaskTracker::new() };
        Arc::new(Self {
            proxies: tokio::sync::Mutex::default(),
            plane,
            _thread: thread,
            seed,
            more_metrics: std::sync::Mutex::default(),
        })
    }

    fn new_proxy(&self, config: ProxyConfig) -> Proxy {
        let seed = match self.seed {
            // Mix the name in so two proxies do not make the same draws.
            Some(seed) => config.name.bytes().fold(seed, |h, b| h.rotate_left(5) ^ u64::from(b)),
            None => rand::rng().random(),
        };
        Proxy {
            config,
            toxics: Vec::new(),
            toxics_tx: watch::Sender::new(Arc::new(Vec::new())),
            metrics: Arc::default(),
            seeds: Arc::new(Mutex::new(SmallRng::seed_from_u64(seed))),
            running: None,
            http_metrics: Arc::default(),
            open: Arc::default(),
        }
    }

    /// All proxies, keyed by name.
    pub async fn list(&self) -> BTreeMap<String, ProxyView> {
        self.proxies.lock().await.iter().map(|(name, p)| (name.clone(), p.view())).collect()
    }

    /// Creates a proxy; an enabled one binds before this returns. Like every change of a proxy,
    /// it runs to completion even if the caller goes away (on a task of its own).
    pub async fn create(self: &Arc<Self>, config: ProxyConfig) -> Result<ProxyView, ApiError> {
        let me = Arc::clone(self);
        whole(async move { me.create_now(config).await }).await
    }

    async fn create_now(&self, config: ProxyConfig) -> Result<ProxyView, ApiError> {
        let mut proxies = self.proxies.lock().await;
        if proxies.contains_key(&config.name) {
            return Err(ApiError::proxy_exists());
        }
        let proxy = self.started(config).await?;
        let view = proxy.view();
        proxies.insert(view.name.clone(), proxy);
        Ok(view)
    }

    async fn started(&self, config: ProxyConfig) -> Result<Proxy, ApiError> {
        let mut proxy = self.new_proxy(config);
        if proxy.config.enabled {
            proxy.start(&self.plane).await?;
        }
        Ok(proxy)
    }

    /// One proxy.
    pub async fn get(&self, name: &str) -> Result<ProxyView, ApiError> {
        self.proxies.lock().await.get(name).map(Proxy::view).ok_or_else(ApiError::proxy_not_found)
    }

    /// Applies a partial update (`listen`, `upstream`, `enabled`; `name` is ignored). A failed
    /// restart restores the previous settings; a caller that goes away half-way changes
    /// nothing of that (it runs on a task of its own).
    pub async fn update(self: &Arc<Self>, name: &str, fields: ProxyFields) -> Result<ProxyView, ApiError> {
        let (me, name) = (Arc::clone(self), name.to_owned());
        whole(async move { me.update_now(&name, fields).await }).await
    }

    async fn update_now(&self, name: &str, fields: ProxyFields) -> Result<ProxyView, ApiError> {
        let mut proxies = self.proxies.lock().await;
        let proxy = proxies.get_mut(name).ok_or_else(ApiError::proxy_not_found)?;
        let old = proxy.config.clone();
        let mut new = old.clone();
        new.http = old.http.updated(&fields)?;
        if let Some(listen) = fields.listen.filter(|l| !l.is_empty()) {
            check_address("listen", &listen).map_err(|e| ApiError::bad_request(format!("bad request body: {e}")))?;
            new.listen = listen;
        }
        if let Some(upstream) = fields.upstream.filter(|u| !u.is_empty()) {
            check_address("upstream", &upstream)
                .map_err(|e| ApiError::bad_request(format!("bad request body: {e}")))?;
            new.upstream = upstream;
        }
        new.enabled = fields.enabled.unwrap_or(old.enabled);
        if let Some(mode) = fields.mode.filter(|m| !m.is_empty()) {
            new.mode = Mode::parse(&mode)?;
            if new.mode == Mode::Tcp && proxy.toxics.iter().any(|t| t.kind.is_request()) {
                return Err(ApiError::bad_request(
                    "bad request body: the proxy has request-level toxics; remove them before switching to tcp mode",
                ));
            }
        }
        let moved =
            new.listen != old.listen || new.upstream != old.upstream || new.mode != old.mode || new.http != old.http;
        if moved || !new.enabled {
            proxy.stop().await;
        }
        proxy.config = new;
        if proxy.config.enabled
            && proxy.running.is_none()
            && let Err(err) = proxy.start(&self.plane).await
        {
            proxy.config = old;
            if proxy.config.enabled && proxy.running.is_none() {
                let _ = proxy.start(&self.plane).await;
            }
            return Err(err);
        }
        Ok(proxy.view())
    }

    /// Stops and removes a proxy. Its listener is closed before the registry lets go: a create
    /// on the same address that follows (or races) the delete finds the port free.
    pub async fn delete(self: &Arc<Self>, name: &str) -> Result<(), ApiError> {
        let (me, name) = (Arc::clone(self), name.to_owned());
        whole(async move {
            let mut proxies = me.proxies.lock().await;
            let mut proxy = proxies.remove(&name).ok_or_else(ApiError::proxy_not_found)?;
            proxy.stop().await;
            drop(proxies);
            Ok(())
        })
        .await
    }

    /// Toxiproxy's populate: create new names, keep identical ones, replace changed ones, stop
    /// at the first runtime error. The error carries the proxies handled before it.
    pub async fn populate(
        self: &Arc<Self>,
        configs: Vec<ProxyConfig>,
    ) -> Result<Vec<ProxyView>, (ApiError, Vec<ProxyView>)> {
        let me = Arc::clone(self);
        match tokio::spawn(async move { me.populate_now(configs).await }).await {
            Ok(done) => done,
            Err(e) => Err((lost(&e), Vec::new())),
        }
    }

    async fn populate_now(&self, configs: Vec<ProxyConfig>) -> Result<Vec<ProxyView>, (ApiError, Vec<ProxyView>)> {
        let mut proxies = self.proxies.lock().await;
        let mut done = Vec::new();
        for config in configs {
            if let Some(existing) = proxies.get(&config.name) {
                if existing.config.mode == config.mode
                    && existing.config.http == config.http
                    && same_address(&existing.config.listen, &config.listen).await
                    && same_address(&existing.config.upstream, &config.upstream).await
                {
                    done.push(existing.view());
                    continue;
                }
                if let Some(mut old) = proxies.remove(&config.name) {
                    old.stop().await;
                }
            }
            match self.started(config).await {
                Ok(proxy) => {
                    done.push(proxy.view());
                    proxies.insert(proxy.config.name.clone(), proxy);
                }
                Err(err) => return Err((err, done)),
            }
        }
        Ok(done)
    }

    /// Enables every proxy and removes every toxic; nothing is deleted.
    pub async fn reset(self: &Arc<Self>) -> Result<(), ApiError> {
        let me = Arc::clone(self);
        whole(async move { me.reset_now().await }).await
    }

    async fn reset_now(&self) -> Result<(), ApiError> {
        let mut proxies = self.proxies.lock().await;
        let mut first_error = None;
        for proxy in proxies.values_mut() {
            for toxic in std::mem::take(&mut proxy.toxics) {
                proxy.metrics.forget_toxic(&toxic.name);
            }
            proxy.publish();
            proxy.config.enabled = true;
            if proxy.running.is_none()
                && let Err(err) = proxy.start(&self.plane).await
            {
                proxy.config.enabled = false;
                first_error.get_or_insert(err);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn with_proxy<T>(
        &self,
        name: &str,
        f: impl FnOnce(&mut Proxy) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let mut proxies = self.proxies.lock().await;
        f(proxies.get_mut(name).ok_or_else(ApiError::proxy_not_found)?)
    }

    /// A proxy's toxics in chain order.
    pub async fn toxics(&self, proxy: &str) -> Result<Vec<Toxic>, ApiError> {
        self.with_proxy(proxy, |p| Ok(p.chain_order())).await
    }

    /// Adds a toxic; open connections pick it up at once.
    pub async fn add_toxic(&self, proxy: &str, body: &Value) -> Result<Toxic, ApiError> {
        self.insert_toxic(proxy, Toxic::from_create(body)?).await
    }

    /// Adds an already validated toxic (a drill's fault); open connections pick it up at once.
    pub async fn insert_toxic(&self, proxy: &str, toxic: Toxic) -> Result<Toxic, ApiError> {
        self.with_proxy(proxy, |p| {
            if p.toxics.iter().any(|t| t.name == toxic.name) {
                return Err(ApiError::toxic_exists());
            }
            if toxic.kind.is_request() && p.config.mode != Mode::Http {
                return Err(ApiError::bad_request(format!(
                    "bad request body: toxic type {} needs a proxy in http mode (create it with \"mode\": \"http\")",
                    toxic.kind.type_name()
                )));
            }
            p.toxics.push(toxic.clone());
            p.publish();
            Ok(toxic)
        })
        .await
    }

    /// One toxic.
    pub async fn toxic(&self, proxy: &str, name: &str) -> Result<Toxic, ApiError> {
        self.with_proxy(proxy, |p| {
            p.toxics.iter().find(|t| t.name == name).cloned().ok_or_else(ApiError::toxic_not_found)
        })
        .await
    }

    /// Updates a toxic in place (attributes merge, toxicity kept if absent).
    pub async fn update_toxic(&self, proxy: &str, name: &str, body: &Value) -> Result<Toxic, ApiError> {
        self.with_proxy(proxy, |p| {
            let slot = p.toxics.iter_mut().find(|t| t.name == name).ok_or_else(ApiError::toxic_not_found)?;
            *slot = slot.updated(body)?;
            let toxic = slot.clone();
            p.publish();
            Ok(toxic)
        })
        .await
    }

    /// Removes a toxic; open connections drop it at once.
    pub async fn remove_toxic(&self, proxy: &str, name: &str) -> Result<(), ApiError> {
        self.with_proxy(proxy, |p| {
            let index = p.toxics.iter().position(|t| t.name == name).ok_or_else(ApiError::toxic_not_found)?;
            p.toxics.remove(index);
            p.publish();
            p.metrics.forget_toxic(name);
            Ok(())
        })
        .await
    }

    /// The request outcomes of an `http` proxy, per route (the SLIs of a drill).
    pub async fn http_metrics(&self, proxy: &str) -> Result<Arc<HttpMetrics>, ApiError> {
        self.with_proxy(proxy, |p| Ok(p.http_metrics.clone())).await
    }

    /// Cumulative (valid, bad) events of a proxy as an SLI: requests and bad answers of an
    /// `http` proxy, connections and failed dials of a `tcp` one.
    pub async fn sli_counts(&self, proxy: &str) -> Option<(u64, u64)> {
        let proxies = self.proxies.lock().await;
        let p = proxies.get(proxy)?;
        Some(match p.config.mode {
            Mode::Http => p.http_metrics.snapshot().values().fold((0, 0), |(v, b), r| (v + r.requests, b + r.bad())),
            Mode::Tcp => p.metrics.connection_counts(),
        })
    }

    /// Adds `source`'s series to what [`Registry::metrics`] renders (the daemon's runs).
    pub fn add_metrics(&self, source: MetricsSource) {
        *self.more_metrics.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(source);
    }

    /// Every proxy's counters in Prometheus text format, then the series of [`Registry::add_metrics`].
    pub async fn metrics(&self) -> String {
        let proxies = self.proxies.lock().await;
        let mut text = metrics::render(&proxies.iter().map(|(name, p)| (name.as_str(), p.metrics.as_ref())));
        let http = proxies.iter().filter(|(_, p)| p.config.mode == Mode::Http);
        text.push_str(&super::http::metrics::render(http.map(|(name, p)| (name.as_str(), p.http_metrics.as_ref()))));
        drop(proxies);
        let more = self.more_metrics.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        if let Some(more) = more {
            text.push_str(&more());
        }
        text
    }

    /// Stops accepting on every proxy, lets open connections finish for up to `drain`, then
    /// closes what is left. Returns the number of connections that had to be closed.
    pub async fn shutdown(&self, drain: Duration) -> usize {
        let mut closers = Vec::new();
        let mut proxies = self.proxies.lock().await;
        for proxy in proxies.values_mut() {
            if let Some(running) = proxy.running.take() {
                closers.push(running.stop_accepting().await);
            }
        }
        let open = || proxies.values().map(|p| p.metrics.open_connections()).sum::<i64>();
        self.plane.tracker.close();
        let drained = tokio::time::timeout(drain, self.plane.tracker.wait()).await.is_ok();
        let left = if drained { 0 } else { usize::try_from(open()).unwrap_or(0) };
        for closer in closers {
            closer.cancel();
        }
        self.plane.tracker.wait().await;
        left
    }
}

/// Compares two `host:port` addresses after resolving them (`localhost:1` equals `127.0.0.1:1`).
async fn same_address(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    let resolve = |s: &str| {
        let s = s.to_owned();
        async move { tokio::net::lookup_host(s).await.map(Iterator::collect::<Vec<_>>).unwrap_or_default() }
    };
    let (x, y) = (resolve(a).await, resolve(b).await);
    x.iter().any(|addr| y.contains(addr))
}
