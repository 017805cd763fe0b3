//! Proxy counters and their Prometheus text exposition.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use super::toxic::Stream;

/// The counters of one proxy. Updated on hot paths with relaxed atomics.
#[derive(Debug, Default)]
pub struct ProxyMetrics {
    bytes_upstream: AtomicU64,
    bytes_downstream: AtomicU64,
    connections_open: AtomicI64,
    connections_total: AtomicU64,
    /// Client connections closed because the upstream could not be dialled.
    dial_failures: AtomicU64,
    /// Clients refused at once: over the proxy's cap, over the daemon's, out of descriptors.
    refused: [AtomicU64; 3],
    /// Activations per (toxic name, toxic type); behind a lock, touched once per connection.
    activations: Mutex<BTreeMap<String, BTreeMap<&'static str, u64>>>,
}

impl ProxyMetrics {
    /// Counts bytes forwarded in `stream`.
    pub fn add_bytes(&self, stream: Stream, n: usize) {
        let counter = match stream {
            Stream::Upstream => &self.bytes_upstream,
            Stream::Downstream => &self.bytes_downstream,
        };
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// A connection opened.
    pub fn connection_opened(&self) {
        self.connections_open.fetch_add(1, Ordering::Relaxed);
        self.connections_total.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection closed.
    pub fn connection_closed(&self) {
        self.connections_open.fetch_sub(1, Ordering::Relaxed);
    }

    /// The upstream could not be dialled for a client connection.
    pub fn dial_failed(&self) {
        self.dial_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// (connections attempted, connections that failed to reach the upstream), for a TCP SLI.
    pub fn connection_counts(&self) -> (u64, u64) {
        let failed = self.dial_failures.load(Ordering::Relaxed);
        (self.connections_total.load(Ordering::Relaxed) + failed, failed)
    }

    /// Connections open now.
    pub fn open_connections(&self) -> i64 {
        self.connections_open.load(Ordering::Relaxed)
    }

    /// A client was refused at once, over a connection cap.
    pub fn refused(&self, why: super::budget::Refused) {
        let index = match why {
            super::budget::Refused::ProxyCap => 0,
            super::budget::Refused::GlobalCap => 1,
            super::budget::Refused::Descriptors => 2,
        };
        self.refused[index].fetch_add(1, Ordering::Relaxed);
    }

    /// A toxic left the proxy: its series goes with it, so `/metrics` stays bounded by the
    /// toxics present, however many come and go.
    pub fn forget_toxic(&self, name: &str) {
        let mut map = self.activations.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.remove(name);
    }

    /// A toxic started on a connection and its toxicity draw made it apply, or a request-level
    /// toxic hit a request (on every request it hits: no allocation once its series exists).
    pub fn toxic_activated(&self, name: &str, type_name: &'static str) {
        let mut map = self.activations.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(types) = map.get_mut(name) {
            *types.entry(type_name).or_default() += 1;
        } else {
            map.insert(name.to_owned(), BTreeMap::from([(type_name, 1)]));
        }
    }
}

/// Escapes a label value for the Prometheus text format.
fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// One line per proxy of a counter with no other label.
fn per_proxy<'a>(
    out: &mut String,
    name: &str,
    proxies: impl Iterator<Item = (&'a str, &'a ProxyMetrics)>,
    counter: impl Fn(&ProxyMetrics) -> &AtomicU64,
) {
    for (proxy, m) in proxies {
        let _ = writeln!(out, "{name}{{proxy=\"{}\"}} {}", label(proxy), counter(m).load(Ordering::Relaxed));
    }
}

/// Renders the counters of every proxy, keyed by proxy name, in Prometheus text format 0.0.4.
pub fn render<'a, I>(proxies: &I) -> String
where
    I: Iterator<Item = (&'a str, &'a ProxyMetrics)> + Clone,
{
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, lines: &mut dyn FnMut(&mut String)| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        lines(&mut out);
    };
    family("firedrill_proxy_bytes_total", "counter", "Bytes forwarded through a proxy, by direction.", &mut |out| {
        for (proxy, m) in proxies.clone() {
            for (direction, counter) in [("upstream", &m.bytes_upstream), ("downstream", &m.bytes_downstream)] {
                let _ = writeln!(
                    out,
                    "firedrill_proxy_bytes_total{{proxy=\"{}\",direction=\"{direction}\"}} {}",
                    label(proxy),
                    counter.load(Ordering::Relaxed)
                );
            }
        }
    });
    family("firedrill_proxy_connections_open", "gauge", "Connections open through a proxy.", &mut |out| {
        for (proxy, m) in proxies.clone() {
            let _ = writeln!(
                out,
                "firedrill_proxy_connections_open{{proxy=\"{}\"}} {}",
                label(proxy),
                m.open_connections()
            );
        }
    });
    family("firedrill_proxy_connections_total", "counter", "Connections accepted by a proxy.", &mut |out| {
        per_proxy(out, "firedrill_proxy_connections_total", proxies.clone(), |m| &m.connections_total);
    });
    family(
        "firedrill_proxy_dial_failures_total",
        "counter",
        "Client connections closed because the proxy could not reach its upstream.",
        &mut |out| per_proxy(out, "firedrill_proxy_dial_failures_total", proxies.clone(), |m| &m.dial_failures),
    );
    family(
        "firedrill_proxy_connections_refused_total",
        "counter",
        "Clients refused at once (reason: proxy_cap, global_cap, or descriptors: the budget is spent).",
        &mut |out| {
            for (proxy, m) in proxies.clone() {
                let reasons =
                    [("proxy_cap", &m.refused[0]), ("global_cap", &m.refused[1]), ("descriptors", &m.refused[2])];
                for (reason, counter) in reasons {
                    let n = counter.load(Ordering::Relaxed);
                    let _ = writeln!(
                        out,
                        "firedrill_proxy_connections_refused_total{{proxy=\"{}\",reason=\"{reason}\"}} {n}",
                        label(proxy)
                    );
                }
            }
        },
    );
    family(
        "firedrill_toxic_activations_total",
        "counter",
        "Times a toxic applied: started on a connection after its toxicity draw, or (request-level) hit a request.",
        &mut |out| {
            for (proxy, m) in proxies.clone() {
                let map = m.activations.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                for ((toxic, kind), n) in
                    map.iter().flat_map(|(toxic, types)| types.iter().map(move |(k, n)| ((toxic, k), n)))
                {
                    let _ = writeln!(
                        out,
                        "firedrill_toxic_activations_total{{proxy=\"{}\",toxic=\"{}\",type=\"{kind}\"}} {n}",
                        label(proxy),
                        label(toxic)
                    );
                }
            }
        },
    );
    out
}

/// A `tcp` proxy's SLI as Prometheus queries over a `{window}` range, for rule files: (bad events, all
/// events) as [`ProxyMetrics::connection_counts`] counts them — a failed dial is a bad event.
pub fn tcp_sli_promql(proxy: &str) -> (String, String) {
    let failures =
        format!("(sum(increase(firedrill_proxy_dial_failures_total{{proxy=\"{proxy}\"}}[{{window}}])) or vector(0))");
    let total =
        format!("sum(increase(firedrill_proxy_connections_total{{proxy=\"{proxy}\"}}[{{window}}]))\n+ {failures}");
    (failures, total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_with_escaped_labels() {
        let m = ProxyMetrics::default();
        m.add_bytes(Stream::Upstream, 5);
        m.connection_opened();
        m.toxic_activated("lat\"ency", "latency");
        let text = render(&[("db", &m)].into_iter());
        assert!(text.contains("firedrill_proxy_bytes_total{proxy=\"db\",direction=\"upstream\"} 5\n"));
        assert!(text.contains("firedrill_proxy_connections_open{proxy=\"db\"} 1\n"));
        assert!(text.contains("firedrill_proxy_connections_total{proxy=\"db\"} 1\n"));
        assert!(
            text.contains("firedrill_toxic_activations_total{proxy=\"db\",toxic=\"lat\\\"ency\",type=\"latency\"} 1\n")
        );
        assert!(text.contains("firedrill_proxy_dial_failures_total{proxy=\"db\"} 0\n"));
        assert!(text.contains("firedrill_proxy_connections_refused_total{proxy=\"db\",reason=\"global_cap\"} 0\n"));
        assert_eq!(text.matches("# TYPE").count(), 6);
        m.forget_toxic("lat\"ency");
        assert!(!render(&[("db", &m)].into_iter()).contains("lat\\\"ency"), "a removed toxic's series goes");
    }
}
