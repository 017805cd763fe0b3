//! Per-route outcomes of an `http` proxy: requests, responses by status and gRPC code,
//! upstream connection failures, and a latency histogram — in Prometheus text on `/metrics`, and
//! as snapshots in-process for the SLIs of a drill.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency histogram, in seconds.
pub const BUCKETS: [f64; 12] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Routes kept apart per proxy; requests on any further route count under `other`.
const MAX_ROUTES: usize = 64;

/// Whether a gRPC status code means the server failed (`UNKNOWN`, `DEADLINE_EXCEEDED`,
/// `RESOURCE_EXHAUSTED`, `INTERNAL`, `UNAVAILABLE`, `DATA_LOSS`); the other codes are the caller's
/// business and count as good for an availability SLI.
pub fn grpc_failed(code: u32) -> bool {
    matches!(code, 2 | 4 | 8 | 13 | 14 | 15)
}

/// A gRPC status code's name as grpc-go's Prometheus metrics write it (`Unavailable`).
pub fn grpc_code_name(code: u32) -> &'static str {
    const NAMES: [&str; 17] = [
        "OK",
        "Canceled",
        "Unknown",
        "InvalidArgument",
        "DeadlineExceeded",
        "NotFound",
        "AlreadyExists",
        "PermissionDenied",
        "ResourceExhausted",
        "FailedPrecondition",
        "Aborted",
        "OutOfRange",
        "Unimplemented",
        "Internal",
        "Unavailable",
        "DataLoss",
        "Unauthenticated",
    ];
    usize::try_from(code).ok().and_then(|i| NAMES.get(i)).copied().unwrap_or("Unknown")
}

/// A proxy's SLI as Prometheus queries over a `{window}` range, for rule files: (bad events, all events).
/// Bad is what [`RouteStats::bad`] counts: 5xx answers, the gRPC codes of [`grpc_failed`], aborts.
pub fn sli_promql(proxy: &str) -> (String, String) {
    let failed: Vec<&str> = (0..17).filter(|c| grpc_failed(*c)).map(grpc_code_name).collect();
    let sum = |series: &str| format!("(sum(increase({series}[{{window}}])) or vector(0))");
    let bad = [
        sum(&format!("firedrill_http_responses_total{{proxy=\"{proxy}\",code=~\"5..\"}}")),
        sum(&format!("firedrill_grpc_responses_total{{proxy=\"{proxy}\",code=~\"{}\"}}", failed.join("|"))),
        sum(&format!("firedrill_http_aborted_total{{proxy=\"{proxy}\"}}")),
    ]
    .join("\n+ ");
    let total = format!("sum(increase(firedrill_http_requests_total{{proxy=\"{proxy}\"}}[{{window}}]))");
    (bad, total)
}

/// Reads one counter of a route.
type Counter = fn(&RouteStats) -> u64;

/// One route's counters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RouteStats {
    /// Requests received.
    pub requests: u64,
    /// Responses by HTTP status.
    pub statuses: BTreeMap<u16, u64>,
    /// gRPC responses by status code (from headers of trailers-only answers, or trailers).
    pub grpc_codes: BTreeMap<u8, u64>,
    /// Requests whose upstream could not be reached.
    pub upstream_failures: u64,
    /// Requests reset or dropped by `http_abort`.
    pub aborted: u64,
    /// Requests the upstream did not answer within the proxy's upstream timeout (504).
    pub timeouts: u64,
    /// Requests the client broke itself (a malformed or cut body, a bad target, CONNECT).
    pub client_errors: u64,
    /// Times a request the upstream refused unprocessed (GOAWAY, `REFUSED_STREAM`) was sent again.
    pub retries: u64,
    /// Cumulative histogram counts per bucket of [`BUCKETS`], then `+Inf`.
    pub latency_buckets: [u64; 13],
    /// Sum of latencies, seconds.
    pub latency_sum: f64,
}

impl RouteStats {
    /// Requests that count as bad for an availability SLI: 5xx answers, the gRPC codes of
    /// [`grpc_failed`], and aborts. (An unreachable upstream is answered with a 502
    /// or `UNAVAILABLE`, so it counts through those.)
    pub fn bad(&self) -> u64 {
        let http: u64 = self.statuses.iter().filter(|(s, _)| **s >= 500).map(|(_, n)| n).sum();
        let grpc: u64 = self.grpc_codes.iter().filter(|(c, _)| grpc_failed(u32::from(**c))).map(|(_, n)| n).sum();
        http + grpc + self.aborted
    }
}

/// The routes of one proxy.
#[derive(Debug, Default)]
pub struct HttpMetrics {
    routes: Mutex<BTreeMap<String, RouteStats>>,
}

impl HttpMetrics {
    fn with(&self, route: &str, change: impl FnOnce(&mut RouteStats)) {
        let mut routes = self.routes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(stats) = routes.get_mut(route) {
            change(stats);
            return;
        }
        let key = if routes.len() < MAX_ROUTES { route } else { "other" };
        change(routes.entry(key.to_owned()).or_default());
    }

    /// A request arrived.
    pub fn request(&self, route: &str) {
        self.with(route, |r| r.requests += 1);
    }

    /// A response went out after `latency` (headers sent).
    pub fn response(&self, route: &str, status: u16, latency: Duration) {
        let seconds = latency.as_secs_f64();
        self.with(route, |r| {
            *r.statuses.entry(status).or_default() += 1;
            for (i, bound) in BUCKETS.iter().enumerate() {
                if seconds <= *bound {
                    r.latency_buckets[i] += 1;
                }
            }
            r.latency_buckets[BUCKETS.len()] += 1;
            r.latency_sum += seconds;
        });
    }

    /// A gRPC status was seen.
    pub fn grpc(&self, route: &str, code: u8) {
        self.with(route, |r| *r.grpc_codes.entry(code).or_default() += 1);
    }

    /// The client broke its own request.
    pub fn client_error(&self, route: &str) {
        self.with(route, |r| r.client_errors += 1);
    }

    /// The upstream did not answer in time.
    pub fn timed_out(&self, route: &str) {
        self.with(route, |r| r.timeouts += 1);
    }

    /// A request the upstream did not process was sent again.
    pub fn retried(&self, route: &str) {
        self.with(route, |r| r.retries += 1);
    }

    /// The upstream could not be reached.
    pub fn upstream_failure(&self, route: &str) {
        self.with(route, |r| r.upstream_failures += 1);
    }

    /// The request was aborted by a toxic.
    pub fn aborted(&self, route: &str) {
        self.with(route, |r| r.aborted += 1);
    }

    /// Every route's counters now.
    pub fn snapshot(&self) -> BTreeMap<String, RouteStats> {
        self.routes.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Prometheus text for the `http` proxies among `proxies`.
pub fn render<'a>(proxies: impl Iterator<Item = (&'a str, &'a HttpMetrics)> + Clone) -> String {
    let mut out = String::new();
    let all: Vec<(String, BTreeMap<String, RouteStats>)> =
        proxies.map(|(name, m)| (label(name), m.snapshot())).collect();
    if all.is_empty() {
        return out;
    }
    let mut family = |name: &str, kind: &str, help: &str, line: &dyn Fn(&mut String, &str, &str, &RouteStats)| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (proxy, routes) in &all {
            for (route, stats) in routes {
                line(&mut out, proxy, &label(route), stats);
            }
        }
    };
    family(
        "firedrill_http_responses_total",
        "counter",
        "Responses of an http proxy, by route and HTTP status code.",
        &|o, p, r, s| {
            for (code, n) in &s.statuses {
                let _ =
                    writeln!(o, "firedrill_http_responses_total{{proxy=\"{p}\",route=\"{r}\",code=\"{code}\"}} {n}");
            }
        },
    );
    family(
        "firedrill_grpc_responses_total",
        "counter",
        "gRPC statuses seen by an http proxy, by route and code name (as grpc-go's metrics name them).",
        &|o, p, r, s| {
            // A gRPC route is `/package.Service/Method`: named as grpc-go's metrics name them.
            let (service, method) = r.trim_start_matches('/').split_once('/').unwrap_or(("", ""));
            for (code, n) in &s.grpc_codes {
                let name = grpc_code_name(u32::from(*code));
                let _ = writeln!(
                    o,
                    "firedrill_grpc_responses_total{{proxy=\"{p}\",route=\"{r}\",grpc_service=\"{service}\",\
                     grpc_method=\"{method}\",code=\"{name}\"}} {n}"
                );
            }
        },
    );
    // The counters with one value per route.
    let simple: [(&str, &str, Counter); 6] = [
        ("firedrill_http_requests_total", "Requests received by an http proxy, by route.", |s| s.requests),
        ("firedrill_http_upstream_failures_total", "Requests whose upstream could not be reached.", |s| {
            s.upstream_failures
        }),
        (
            "firedrill_http_upstream_timeouts_total",
            "Requests the upstream did not connect to or answer within the proxy's timeouts (answered 504).",
            |s| s.timeouts,
        ),
        ("firedrill_http_aborted_total", "Requests reset by an http_abort toxic.", |s| s.aborted),
        (
            "firedrill_http_client_errors_total",
            "Requests the client broke itself (a malformed or cut body, a bad target: 400; CONNECT: 405); never the \
             upstream's.",
            |s| s.client_errors,
        ),
        (
            "firedrill_http_upstream_retries_total",
            "Requests the upstream did not process (GOAWAY, REFUSED_STREAM) sent again on a new connection.",
            |s| s.retries,
        ),
    ];
    for (name, help, value) in simple {
        family(name, "counter", help, &|o, p, r, s| {
            let _ = writeln!(o, "{name}{{proxy=\"{p}\",route=\"{r}\"}} {}", value(s));
        });
    }
    family(
        "firedrill_http_request_duration_seconds",
        "histogram",
        "Time to response headers through an http proxy, by route.",
        &|o, p, r, s| {
            for (i, bound) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    o,
                    "firedrill_http_request_duration_seconds_bucket{{proxy=\"{p}\",route=\"{r}\",le=\"{bound}\"}} {}",
                    s.latency_buckets[i]
                );
            }
            let count = s.latency_buckets[BUCKETS.len()];
            let _ = writeln!(
                o,
                "firedrill_http_request_duration_seconds_bucket{{proxy=\"{p}\",route=\"{r}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(
                o,
                "firedrill_http_request_duration_seconds_sum{{proxy=\"{p}\",route=\"{r}\"}} {}",
                s.latency_sum
            );
            let _ = writeln!(o, "firedrill_http_request_duration_seconds_count{{proxy=\"{p}\",route=\"{r}\"}} {count}");
        },
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_buckets() {
        let m = HttpMetrics::default();
        m.request("/pay");
        m.response("/pay", 503, Duration::from_millis(30));
        m.request("/pay");
        m.response("/pay", 200, Duration::from_millis(2));
        m.grpc("/pay", 14);
        let s = &m.snapshot()["/pay"];
        assert_eq!(s.requests, 2);
        assert_eq!(s.statuses[&503], 1);
        assert_eq!(s.bad(), 2, "a 503 and an UNAVAILABLE");
        assert_eq!(s.latency_buckets[1], 1, "2 ms is within 5 ms");
        assert_eq!(s.latency_buckets[4], 2, "both within 50 ms");
        let text = render([("p", &m)].into_iter());
        assert!(text.contains("firedrill_http_responses_total{proxy=\"p\",route=\"/pay\",code=\"503\"} 1"), "{text}");
        assert!(
            text.contains("firedrill_http_request_duration_seconds_bucket{proxy=\"p\",route=\"/pay\",le=\"+Inf\"} 2")
        );
    }

    #[test]
    fn routes_are_capped() {
        let m = HttpMetrics::default();
        for i in 0..100 {
            m.request(&format!("/r{i}"));
        }
        let snapshot = m.snapshot();
        assert_eq!(snapshot.len(), MAX_ROUTES + 1);
        assert_eq!(snapshot["other"].requests, 100 - MAX_ROUTES as u64);
    }
}
