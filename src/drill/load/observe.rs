//! How a drill observes the system: its SLO and synthetic traffic, the guardrails over them,
//! and the steady-state probe that verifies a mitigation.

use std::time::Duration;

use toml::Spanned;

use super::{DEFAULT_SUCCESS_RATIO, DEFAULT_WINDOW, DEFAULT_WITHIN, Validator};
use crate::drill::file::{GuardrailsSection, SloSection, TrafficSection};
use crate::drill::plan::{Guardrails, HttpProbe, SliSource, SloPlan, TrafficPlan, TrafficTarget, Verify};

/// The most synthetic requests per second a drill may send.
pub(super) const MAX_TRAFFIC_RPS: f64 = 1000.0;
/// Default time synthetic traffic runs before t0.
const DEFAULT_WARMUP: Duration = Duration::from_secs(5);

/// Whether `host[:port]` names this machine.
fn is_loopback(host_port: &str) -> bool {
    let host = host_port.rsplit_once(':').map_or(host_port, |(h, _)| h).trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl Validator<'_, '_> {
    pub(super) fn slo(&mut self, spanned: &Spanned<SloSection>, has_traffic: bool) -> Option<SloPlan> {
        let section = spanned.get_ref();
        let period = match &section.period {
            Some(p) => self.duration(p, "slo.period")?,
            None => Duration::from_secs(30 * 86_400),
        };
        let Some(objective) = crate::slo::Objective::new(*section.objective.get_ref(), period) else {
            self.errors.at(&section.objective.span(), "slo.objective is a percentage between 0 and 100, e.g. 99.9");
            return None;
        };
        let rps = *section.production_rps.get_ref();
        if !(rps.is_finite() && rps > 0.0) {
            self.errors.at(&section.production_rps.span(), "slo.production_rps must be a positive request rate");
        }
        let source = if let Some(proxy) = &section.proxy {
            if !self.environment.proxies.contains(proxy.get_ref()) {
                self.errors.at(&proxy.span(), format!("slo.proxy `{}` is not in the environment", proxy.get_ref()));
            }
            SliSource::Proxy(proxy.get_ref().clone())
        } else {
            if !has_traffic {
                self.errors.at(
                    &spanned.span(),
                    "[slo] needs an SLI: `proxy = \"name\"` (requests or connections through it) or a [traffic] section",
                );
            }
            SliSource::Traffic
        };
        let latency = match &section.latency {
            Some(l) => {
                if matches!(source, SliSource::Proxy(_)) {
                    self.errors.at(
                        &l.span(),
                        "slo.latency applies to the drill's synthetic traffic: remove `proxy` to use [traffic] as the SLI, or drop the threshold",
                    );
                }
                Some(self.duration(l, "slo.latency")?)
            }
            None => None,
        };
        Some(SloPlan { objective, production_rps: rps, source, latency, min_bad: section.min_bad.unwrap_or(0) })
    }

    pub(super) fn traffic(&mut self, spanned: &Spanned<TrafficSection>) -> Option<TrafficPlan> {
        let section = spanned.get_ref();
        let rps = *section.rps.get_ref();
        if !(rps > 0.0 && rps <= MAX_TRAFFIC_RPS) {
            self.errors.at(&section.rps.span(), format!("traffic.rps must be above 0 and at most {MAX_TRAFFIC_RPS}"));
        }
        let target = match (&section.url, &section.grpc) {
            (Some(url), None) => {
                let host = url.get_ref().strip_prefix("http://").and_then(|r| r.split(['/', '?']).next());
                match host {
                    Some(host) if is_loopback(host) => TrafficTarget::Http(url.get_ref().clone()),
                    _ => {
                        self.errors.at(
                            &url.span(),
                            "traffic.url must be an http:// URL on a loopback address (127.0.0.1, localhost, [::1])",
                        );
                        return None;
                    }
                }
            }
            (None, Some(grpc)) => {
                let text = grpc.get_ref();
                match text.split_once('/') {
                    Some((address, method)) if is_loopback(address) && method.contains('/') => {
                        TrafficTarget::Grpc { address: address.to_owned(), path: format!("/{method}") }
                    }
                    _ => {
                        self.errors.at(
                            &grpc.span(),
                            "traffic.grpc is `host:port/package.Service/Method` on a loopback address",
                        );
                        return None;
                    }
                }
            }
            _ => {
                self.errors.at(&spanned.span(), "[traffic] needs exactly one of `url` (HTTP GET) or `grpc`");
                return None;
            }
        };
        let warmup = match &section.warmup {
            Some(w) => self.duration(w, "traffic.warmup")?,
            None => DEFAULT_WARMUP,
        };
        let timeout = match &section.timeout {
            Some(t) => self.duration(t, "traffic.timeout")?,
            None => DEFAULT_WITHIN,
        };
        Some(TrafficPlan { target, rps, warmup, timeout })
    }

    pub(super) fn guardrails(&mut self, spanned: &Spanned<GuardrailsSection>, has_slo: bool) -> Guardrails {
        let section = spanned.get_ref();
        if !has_slo {
            self.errors.at(&spanned.span(), "[guardrails] watch the SLI: add an [slo] section");
        }
        let sli_floor = section.sli_floor.as_ref().and_then(|floor| {
            let ratio = *floor.get_ref();
            if !(ratio > 0.0 && ratio < 1.0) {
                self.errors.at(&floor.span(), "guardrails.sli_floor is a ratio between 0 and 1, e.g. 0.5");
            }
            let hold = match &section.floor_for {
                Some(f) => self.duration(f, "guardrails.floor_for")?,
                None => Duration::from_secs(30),
            };
            Some((ratio, hold))
        });
        let max_budget_spent = section.max_budget_spent.as_ref().map(|cap| {
            if cap.get_ref().is_nan() || *cap.get_ref() <= 0.0 {
                self.errors.at(&cap.span(), "guardrails.max_budget_spent is a share of the budget above 0, e.g. 0.2");
            }
            *cap.get_ref()
        });
        Guardrails { sli_floor, max_budget_spent }
    }

    pub(super) fn verify(&mut self, spanned: &Spanned<crate::drill::file::VerifySection>) -> Option<Verify> {
        let verify = spanned.get_ref();
        let http = match &verify.http {
            Some(http) => {
                let probe = http.get_ref();
                let url = probe.url.get_ref();
                if !url.starts_with("http://") {
                    self.errors.at(&probe.url.span(), "verify.http.url must be an http:// URL");
                }
                let within = match &probe.within {
                    Some(w) => self.duration(w, "verify.http.within")?,
                    None => DEFAULT_WITHIN,
                };
                Some(HttpProbe { url: url.clone(), within })
            }
            None => None,
        };
        let success_ratio = verify.success_ratio.as_ref().map_or(DEFAULT_SUCCESS_RATIO, |r| *r.get_ref());
        if !(0.0..=1.0).contains(&success_ratio) {
            let span = verify.success_ratio.as_ref().map_or(spanned.span(), Spanned::span);
            self.errors.at(&span, format!("verify.success_ratio must be between 0 and 1, got {success_ratio}"));
        }
        let window = match &verify.window {
            Some(w) => self.duration(w, "verify.window")?,
            None => DEFAULT_WINDOW,
        };
        Some(Verify { http, success_ratio, window })
    }
}
