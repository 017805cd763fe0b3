//! Loading a drill in two stages: the TOML into its serde mirror ([`super::file`]), then the
//! mirror into a validated [`Drill`]. Every error names file, line and column and says what to do.

use std::collections::BTreeSet;

use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use toml::Spanned;

use super::file::{
    BlastRadiusSection, DockerSelector, DrillFile, FaultSection, GuardrailsSection, KillSection, KubernetesSelector,
    SloSection, SpikeSection, TrafficSection,
};
use super::plan::{
    AnswerKey, Drill, ExpectedAlert, Fault, FaultAction, Guardrails, Hint, HttpProbe, KillAction, KillPlan, Pick,
    Selector, SliSource, SloPlan, Targets, TrafficPlan, TrafficTarget, Verify,
};
use crate::duration;
use crate::located::{Errors, LocatedError};
use crate::proxy::config::lowercase_keys;
use crate::proxy::external::{check_external, external_name};
use crate::proxy::toxic::Toxic;
use crate::signal::Signal;

/// The default dev/production ratio: a dev fault should be resolved in a third of the time.
pub const DEFAULT_RATIO: f64 = 1.0 / 3.0;
/// Default steady-state window.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(30);
/// Default steady-state success ratio.
pub const DEFAULT_SUCCESS_RATIO: f64 = 0.99;
/// The most synthetic requests per second a drill may send.
const MAX_TRAFFIC_RPS: f64 = 1000.0;
/// Default time synthetic traffic runs before t0.
const DEFAULT_WARMUP: Duration = Duration::from_secs(5);

/// Whether `host[:port]` names this machine.
fn is_loopback(host_port: &str) -> bool {
    let host = host_port.rsplit_once(':').map_or(host_port, |(h, _)| h).trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The shortest interval between repeated kills.
const MIN_KILL_EVERY: Duration = Duration::from_secs(1);
/// Default probe deadline.
pub const DEFAULT_WITHIN: Duration = Duration::from_secs(1);

/// What a drill may act on: the proxies its environment has.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    /// Names of the proxies in the environment's proxy files.
    pub proxies: BTreeSet<String>,
    /// Those of them in `http` mode (request-level toxics need one).
    pub http: BTreeSet<String>,
    /// The proxies are behind an external Toxiproxy API, so faults must fit its client's limits
    /// (see [`crate::proxy::external`]).
    pub external: bool,
}

/// Reads and validates a drill file.
pub fn load(path: &Path, environment: &Environment) -> Result<Drill, Vec<LocatedError>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![LocatedError { path: path.to_owned(), line: 1, column: 1, message: format!("cannot read the file: {e}") }]
    })?;
    parse(path, &text, environment)
}

/// Validates drill text; `path` is only used in messages.
pub fn parse(path: &Path, text: &str, environment: &Environment) -> Result<Drill, Vec<LocatedError>> {
    let mut errors = Errors::new(path, text);
    let Some(file) = errors.parse::<DrillFile>() else { return Err(errors.into_list()) };
    let drill = Validator { errors: &mut errors, environment }.drill(file);
    if errors.is_empty() { drill.ok_or_else(Vec::new) } else { Err(errors.into_list()) }
}

/// The most pulses one burst may have (each is a fault the runner schedules and journals).
const MAX_PULSES: u32 = 1000;

struct Validator<'e, 'a> {
    errors: &'e mut Errors<'a>,
    environment: &'e Environment,
}

impl Validator<'_, '_> {
    fn duration(&mut self, value: &Spanned<String>, what: &str) -> Option<Duration> {
        match duration::parse(value.get_ref()) {
            Ok(d) => Some(d),
            Err(e) => {
                self.errors.at(&value.span(), format!("{what}: {e}"));
                None
            }
        }
    }

    fn drill(&mut self, file: DrillFile) -> Option<Drill> {
        let section = file.drill.into_inner();
        let name = section.name.get_ref().trim().to_owned();
        if !crate::is_plain_name(&name) {
            self.errors
                .at(&section.name.span(), "drill.name must be non-empty and use only letters, digits, `-` and `_`");
        }
        let timebox = self.duration(&section.timebox, "drill.timebox");
        let targets = self.targets(&file.targets);
        let blast = file.blast_radius.as_ref();
        let mut faults: Vec<(Range<usize>, Fault)> = Vec::new();
        let has_traffic = file.traffic.is_some();
        for spanned in &file.faults {
            if let Some(fault) = self.fault(spanned, timebox, blast, has_traffic) {
                faults.extend(self.burst(spanned, fault, timebox).into_iter().map(|f| (spanned.span(), f)));
            }
        }
        if self.environment.external {
            self.one_toxic_per_name(&faults);
        }
        let faults: Vec<Fault> = faults.into_iter().map(|(_, fault)| fault).collect();
        let answer = self.answer(&file.answer);
        let hints = file.hints.iter().filter_map(|h| self.hint(h, timebox)).collect();
        let verify = file.verify.as_ref().and_then(|v| self.verify(v));
        let traffic = file.traffic.as_ref().and_then(|t| self.traffic(t));
        let slo = file.slo.as_ref().and_then(|s| self.slo(s, traffic.is_some()));
        let alerts = file
            .alerts
            .iter()
            .filter_map(|a| {
                let within = self.duration(&a.get_ref().within, "alerts.within")?;
                Some(ExpectedAlert { name: a.get_ref().name.clone(), within, labels: a.get_ref().labels.clone() })
            })
            .collect();
        let guardrails = file.guardrails.as_ref().map(|g| self.guardrails(g, slo.is_some())).unwrap_or_default();
        let mut faults = faults;
        faults.sort_by_key(|f| f.at);
        Some(Drill {
            name,
            title: section.title,
            briefing: section.briefing,
            facilitator: section.facilitator,
            timebox: timebox?,
            targets: targets?,
            faults,
            answer: answer?,
            hints,
            verify,
            slo,
            traffic,
            alerts,
            guardrails,
        })
    }

    fn slo(&mut self, spanned: &Spanned<SloSection>, has_traffic: bool) -> Option<SloPlan> {
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

    fn traffic(&mut self, spanned: &Spanned<TrafficSection>) -> Option<TrafficPlan> {
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

    fn guardrails(&mut self, spanned: &Spanned<GuardrailsSection>, has_slo: bool) -> Guardrails {
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

    fn targets(&mut self, section: &Spanned<super::file::TargetsSection>) -> Option<Targets> {
        let targets = section.get_ref();
        let p = targets.production.get_ref();
        let minutes = [p.detect, p.diagnose, p.mitigate, p.resolve];
        if minutes.iter().any(|m| !m.is_finite() || *m <= 0.0) {
            self.errors
                .at(&targets.production.span(), "targets.production: every phase needs a positive number of minutes");
            return None;
        }
        if minutes.windows(2).any(|w| w[0] > w[1]) {
            self.errors.at(
                &targets.production.span(),
                "targets.production: phases end in order, so expect detect <= diagnose <= mitigate <= resolve",
            );
            return None;
        }
        let ratio = targets.ratio.as_ref().map_or(DEFAULT_RATIO, |r| *r.get_ref());
        if !(ratio > 0.0 && ratio <= 1.0) {
            let span = targets.ratio.as_ref().map_or(section.span(), Spanned::span);
            self.errors.at(
                &span,
                format!("targets.ratio must be in (0, 1] (the dev share of the production target), got {ratio}"),
            );
            return None;
        }
        Some(Targets { production: minutes.map(|m| Duration::from_secs_f64(m * 60.0)), ratio })
    }

    /// The external client names a toxic `<type>_<stream>`: two faults that may be on the same
    /// proxy at the same time need different names.
    fn one_toxic_per_name(&mut self, faults: &[(Range<usize>, Fault)]) {
        let end = |f: &Fault| f.duration.map_or(Duration::MAX, |d| f.at.saturating_add(d));
        let toxic = |f: &Fault| match &f.action {
            FaultAction::Toxic { proxy, toxic } => Some((proxy.clone(), external_name(toxic))),
            FaultAction::Kill(_) | FaultAction::Spike { .. } => None,
        };
        for (i, (span, fault)) in faults.iter().enumerate() {
            let Some((proxy, name)) = toxic(fault) else { continue };
            let clash = faults[..i].iter().any(|(_, earlier)| {
                toxic(earlier).is_some_and(|t| t == (proxy.clone(), name.clone()))
                    && earlier.at < end(fault)
                    && fault.at < end(earlier)
            });
            if clash {
                self.errors.at(
                    span,
                    format!(
                        "another fault puts `{name}` on proxy `{proxy}` at the same time; the external Toxiproxy client \
                         allows one toxic per type and stream on a proxy, so give them different streams or times"
                    ),
                );
            }
        }
    }

    fn fault(
        &mut self,
        spanned: &Spanned<FaultSection>,
        timebox: Option<Duration>,
        blast: Option<&Spanned<BlastRadiusSection>>,
        has_traffic: bool,
    ) -> Option<Fault> {
        let fault = spanned.get_ref();
        let at = self.duration(&fault.at, "faults.at");
        let duration = match &fault.duration {
            Some(d) => Some(self.duration(d, "faults.duration")?),
            None => None,
        };
        if let (Some(at), Some(timebox)) = (at, timebox)
            && at >= timebox
        {
            self.errors.at(
                &fault.at.span(),
                format!(
                    "this fault starts at {} but the drill's timebox is {}; move it earlier or lengthen drill.timebox",
                    duration::format(at),
                    duration::format(timebox)
                ),
            );
        }
        let action = match (&fault.proxy, &fault.toxic, &fault.kill, &fault.spike) {
            (Some(proxy), Some(toxic), None, None) => self.toxic(proxy, toxic),
            (None, None, Some(kill), None) => self.kill(kill, blast).map(FaultAction::Kill),
            (None, None, None, Some(spike)) => self.spike(spike, has_traffic),
            _ => {
                self.errors.at(
                    &spanned.span(),
                    "a fault needs exactly one of: `proxy` and `toxic` (a network fault), `kill` (processes, \
                     containers, pods) or `spike` (more synthetic traffic)",
                );
                None
            }
        };
        Some(Fault { at: at?, duration, action: action? })
    }

    /// A traffic spike: more of the drill's own synthetic traffic, so it needs `[traffic]`.
    fn spike(&mut self, spike: &Spanned<SpikeSection>, has_traffic: bool) -> Option<FaultAction> {
        let rps = &spike.get_ref().rps;
        if !has_traffic {
            self.errors.at(
                &spike.span(),
                "faults.spike sends more of the drill's synthetic traffic: add a [traffic] section (url or grpc, rps)",
            );
            return None;
        }
        if !(*rps.get_ref() > 0.0 && *rps.get_ref() <= MAX_TRAFFIC_RPS) {
            self.errors.at(&rps.span(), format!("faults.spike.rps must be above 0 and at most {MAX_TRAFFIC_RPS}"));
            return None;
        }
        Some(FaultAction::Spike { rps: *rps.get_ref() })
    }

    /// A fault with `burst` becomes `times` faults, `on` long, `on + off` apart: the error burst.
    fn burst(&mut self, spanned: &Spanned<FaultSection>, fault: Fault, timebox: Option<Duration>) -> Vec<Fault> {
        let Some(burst) = &spanned.get_ref().burst else { return vec![fault] };
        let span = burst.span();
        let section = burst.get_ref();
        if spanned.get_ref().duration.is_some() {
            self.errors.at(&span, "a burst sets each pulse's length with `on`; remove the fault's `duration`");
            return Vec::new();
        }
        if matches!(fault.action, FaultAction::Kill(_)) {
            self.errors
                .at(&span, "faults.burst switches a toxic or a spike on and off; for repeated kills use kill.every");
            return Vec::new();
        }
        let (Some(on), Some(off)) =
            (self.duration(&section.on, "faults.burst.on"), self.duration(&section.off, "faults.burst.off"))
        else {
            return Vec::new();
        };
        if on.is_zero() || !(1..=MAX_PULSES).contains(&section.times) {
            self.errors.at(&span, format!("faults.burst needs `on` longer than 0s and `times` from 1 to {MAX_PULSES}"));
            return Vec::new();
        }
        // Without a valid timebox (already reported) there is nothing to place the pulses in.
        let Some(limit) = timebox else { return Vec::new() };
        // Where the last pulse starts, checked before any pulse is made: `times` is the file's.
        let last_at = on
            .checked_add(off)
            .and_then(|period| period.checked_mul(section.times - 1))
            .and_then(|span| fault.at.checked_add(span))
            .filter(|last| last.checked_add(on).is_some());
        if last_at.is_none_or(|last| last >= limit) {
            let last =
                last_at.map_or_else(|| "too late to count".to_owned(), |d| format!("at {}", duration::format(d)));
            self.errors.at(
                &span,
                format!(
                    "the last burst starts {last}, after the timebox ({}); fewer `times` or a longer timebox",
                    duration::format(limit)
                ),
            );
            return Vec::new();
        }
        (0..section.times)
            .map(|k| Fault { at: fault.at + (on + off) * k, duration: Some(on), action: fault.action.clone() })
            .collect()
    }

    /// An attribute key the toxic's type does not take, located at the key (a typo such as
    /// `path_prefx` would otherwise widen the fault to every request), with the message.
    fn unknown_attribute(&self, toxic: &Spanned<toml::Table>) -> Option<(std::ops::Range<usize>, String)> {
        let type_name = toxic.get_ref().get("type")?.as_str()?;
        let names = crate::proxy::toxic::known_attributes(type_name)?;
        let attributes = toxic.get_ref().get("attributes")?.as_table()?;
        let unknown = attributes.keys().find(|key| !names.contains(&key.to_ascii_lowercase().as_str()))?;
        let valid = if names.is_empty() { "none".to_owned() } else { names.join(", ") };
        let message =
            format!("faults.toxic: unknown attribute `{unknown}` for a {type_name} toxic; valid attributes: {valid}");
        Some((self.errors.key_within(&toxic.span(), unknown), message))
    }

    fn toxic(&mut self, proxy: &Spanned<String>, toxic: &Spanned<toml::Table>) -> Option<FaultAction> {
        let name = proxy.get_ref();
        if !self.environment.proxies.contains(name) {
            let known: Vec<&str> = self.environment.proxies.iter().map(String::as_str).collect();
            let message = if known.is_empty() {
                format!(
                    "proxy `{name}` is not in the environment, which has no proxies at all: give the proxy \
                     file that defines it (to `firedrill validate` beside the drill, or to `firedrill serve`)"
                )
            } else {
                format!(
                    "proxy `{name}` is not in the environment (known: {}); fix the name or add it to a proxy file",
                    known.join(", ")
                )
            };
            self.errors.at(&proxy.span(), message);
        }
        if let Some(unknown) = self.unknown_attribute(toxic) {
            self.errors.at(&unknown.0, unknown.1);
            return None;
        }
        let json = serde_json::to_value(toxic.get_ref()).unwrap_or_default();
        let checked = match Toxic::from_create(&lowercase_keys(json)) {
            Ok(t) if self.environment.external => match check_external(&t) {
                Ok(()) => Some(t),
                Err(e) => {
                    self.errors.at(&toxic.span(), format!("faults.toxic: {e}; run it on firedrill's own proxies"));
                    None
                }
            },
            Ok(t) if t.kind.is_request() && !self.environment.http.contains(name) => {
                self.errors.at(
                    &toxic.span(),
                    format!(
                        "faults.toxic: {} is a request-level toxic, and proxy `{name}` is not in http mode; \
                         give it \"mode\": \"http\" in its proxy file",
                        t.kind.type_name()
                    ),
                );
                None
            }
            Ok(t) => Some(t),
            Err(e) => {
                self.errors.at(&toxic.span(), format!("faults.toxic: {}", e.message));
                None
            }
        };
        Some(FaultAction::Toxic { proxy: name.clone(), toxic: checked? })
    }

    fn kill(
        &mut self,
        spanned: &Spanned<KillSection>,
        blast: Option<&Spanned<BlastRadiusSection>>,
    ) -> Option<KillPlan> {
        let kill = spanned.get_ref();
        let span = spanned.span();
        let radius = blast.map(Spanned::get_ref);
        let max_targets = radius.and_then(|b| b.max_targets.as_ref()).map_or(1, |m| *m.get_ref() as usize);
        if let Some(m) = radius.and_then(|b| b.max_targets.as_ref())
            && *m.get_ref() == 0
        {
            self.errors.at(&m.span(), "blast_radius.max_targets must be at least 1");
        }
        let (selector, default_action, actions): (Option<Selector>, KillAction, &[KillAction]) =
            match (&kill.process, &kill.docker, &kill.kubernetes) {
                (Some(service), None, None) => {
                    if service.get_ref().trim().is_empty() {
                        self.errors
                            .at(&service.span(), "faults.kill.process is empty: name a service from `firedrill up`");
                    }
                    (
                        Some(Selector::Process { service: service.get_ref().clone() }),
                        KillAction::Kill,
                        &[KillAction::Kill],
                    )
                }
                (None, Some(docker), None) => (
                    self.docker(docker, radius),
                    KillAction::Kill,
                    &[KillAction::Kill, KillAction::Crash, KillAction::Stop, KillAction::Restart, KillAction::Pause],
                ),
                (None, None, Some(kubernetes)) => {
                    (self.kubernetes(kubernetes, blast), KillAction::Delete, &[KillAction::Delete])
                }
                _ => {
                    self.errors.at(&span, "faults.kill needs exactly one of `process`, `docker` or `kubernetes`");
                    (None, KillAction::Kill, &[])
                }
            };
        let action = match &kill.action {
            None => default_action,
            Some(name) => {
                if let Some(action) = actions.iter().find(|a| a.as_str() == name.get_ref()) {
                    *action
                } else {
                    let allowed: Vec<&str> = actions.iter().map(|a| a.as_str()).collect();
                    self.errors.at(
                        &name.span(),
                        format!(
                            "faults.kill.action `{}` does not apply here: use {}",
                            name.get_ref(),
                            allowed.join(", ")
                        ),
                    );
                    default_action
                }
            }
        };
        let pick = self.pick(kill, &span, max_targets);
        let every = match &kill.every {
            Some(every) => {
                let d = self.duration(every, "faults.kill.every")?;
                if d < MIN_KILL_EVERY {
                    self.errors.at(&every.span(), "faults.kill.every must be at least 1s");
                }
                Some(d)
            }
            None => None,
        };
        let signal = match &kill.signal {
            Some(name) => Signal::parse(name.get_ref())
                .map_err(|e| self.errors.at(&name.span(), format!("faults.kill.signal: {e}")))
                .ok()?,
            None => Signal::KILL,
        };
        let grace = match &kill.grace {
            Some(grace) => self.duration(grace, "faults.kill.grace")?,
            None => Duration::ZERO,
        };
        Some(KillPlan { selector: selector?, pick, every, signal, grace, action, max_targets })
    }

    fn pick(&mut self, kill: &KillSection, span: &Range<usize>, max_targets: usize) -> Pick {
        match (&kill.count, &kill.percent, &kill.all) {
            (None, None, None) => Pick::Count(1),
            (Some(count), None, None) => {
                let n = *count.get_ref() as usize;
                if n == 0 {
                    self.errors.at(&count.span(), "faults.kill.count must be at least 1");
                } else if n > max_targets {
                    self.errors.at(
                        &count.span(),
                        format!(
                            "faults.kill.count {n} is more targets than blast_radius.max_targets ({max_targets}); \
                             lower the count or raise max_targets"
                        ),
                    );
                }
                Pick::Count(n)
            }
            (None, Some(percent), None) => {
                let p = *percent.get_ref();
                if !(p > 0.0 && p <= 100.0) {
                    self.errors.at(&percent.span(), "faults.kill.percent must be in (0, 100]");
                }
                Pick::Percent(p)
            }
            (None, None, Some(all)) if *all.get_ref() => Pick::All,
            _ => {
                self.errors.at(span, "faults.kill takes one of `count`, `percent` or `all = true`");
                Pick::Count(1)
            }
        }
    }

    fn docker(&mut self, spanned: &Spanned<DockerSelector>, radius: Option<&BlastRadiusSection>) -> Option<Selector> {
        let docker = spanned.get_ref();
        let scope = radius.map(|b| &b.docker_scope).filter(|s| !s.is_empty());
        let Some(scope) = scope else {
            self.errors.at(
                &spanned.span(),
                "Docker kills need a label scope: add `[blast_radius] docker_scope = { \"label\" = \"value\" }`; \
                 firedrill never selects outside it",
            );
            return None;
        };
        if docker.labels.is_empty() && docker.name.as_deref().is_none_or(str::is_empty) {
            self.errors.at(&spanned.span(), "an empty selector: give `labels` and/or `name` to choose containers");
            return None;
        }
        let mut labels = docker.labels.clone();
        for (key, value) in scope {
            if let Some(own) = labels.insert(key.clone(), value.clone())
                && own != *value
            {
                self.errors.at(
                    &spanned.span(),
                    format!("label `{key}={own}` contradicts the drill's docker_scope `{key}={value}`"),
                );
            }
        }
        Some(Selector::Docker { labels, name: docker.name.clone().filter(|n| !n.is_empty()) })
    }

    fn kubernetes(
        &mut self,
        spanned: &Spanned<KubernetesSelector>,
        blast: Option<&Spanned<BlastRadiusSection>>,
    ) -> Option<Selector> {
        let pods = spanned.get_ref();
        let Some(allow) = blast.and_then(|b| b.get_ref().kubernetes.as_ref()) else {
            self.errors.at(
                &spanned.span(),
                "Kubernetes kills need an allow-list: add `[blast_radius] kubernetes = { contexts = [\"…\"], namespaces = [\"…\"] }`",
            );
            return None;
        };
        if !allow.get_ref().namespaces.contains(&pods.namespace) {
            self.errors.at(
                &spanned.span(),
                format!(
                    "namespace `{}` is not in blast_radius.kubernetes.namespaces ({}); add it there or pick another",
                    pods.namespace,
                    allow.get_ref().namespaces.join(", ")
                ),
            );
        }
        if allow.get_ref().contexts.is_empty() {
            self.errors.at(
                &allow.span(),
                "blast_radius.kubernetes.contexts is empty: list the kubeconfig contexts drills may use",
            );
        }
        if pods.selector.get_ref().trim().is_empty() {
            self.errors.at(
                &pods.selector.span(),
                "an empty selector would match every pod: give a label selector like `app=wallet`",
            );
            return None;
        }
        Some(Selector::Kubernetes {
            namespace: pods.namespace.clone(),
            selector: pods.selector.get_ref().clone(),
            contexts: allow.get_ref().contexts.clone(),
        })
    }

    fn answer(&mut self, section: &Spanned<super::file::AnswerSection>) -> Option<AnswerKey> {
        let answer = section.get_ref();
        let mut accept = Vec::new();
        for group in answer.accept.as_ref().map_or(&[][..], |a| a.get_ref().as_slice()) {
            let words: Vec<String> =
                group.get_ref().split('|').map(|w| w.trim().to_lowercase()).filter(|w| !w.is_empty()).collect();
            if words.is_empty() {
                self.errors.at(&group.span(), "answer.accept: an empty group matches nothing; remove it or add words");
                return None;
            }
            accept.push(words);
        }
        if accept.is_empty() {
            self.errors.at(
                &section.span(),
                "answer.accept is empty: list what a correct diagnosis must mention, e.g. accept = [\"partner\", \"latency|slow\"]",
            );
            return None;
        }
        Some(AnswerKey { component: answer.component.clone(), kind: answer.kind.clone(), accept })
    }

    fn hint(&mut self, spanned: &Spanned<super::file::HintSection>, timebox: Option<Duration>) -> Option<Hint> {
        let hint = spanned.get_ref();
        let after = match &hint.after {
            Some(after) => {
                let d = self.duration(after, "hints.after")?;
                if timebox.is_some_and(|t| d >= t) {
                    self.errors.at(&after.span(), "this hint comes after the timebox ends; move it earlier");
                }
                Some(d)
            }
            None => None,
        };
        Some(Hint { after, text: hint.text.clone() })
    }

    fn verify(&mut self, spanned: &Spanned<super::file::VerifySection>) -> Option<Verify> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn environment() -> Environment {
        Environment {
            proxies: ["partner".to_owned(), "ledger".to_owned(), "api".to_owned()].into(),
            http: ["api".to_owned()].into(),
            external: false,
        }
    }

    const GOOD: &str = r#"
[drill]
name = "partner-latency"
title = "The payment partner slows to 3 s"
briefing = "Checkout is slow for some users."
timebox = "45m"

[targets]
production = { detect = 5, diagnose = 20, mitigate = 30, resolve = 60 }

[[faults]]
at = "0s"
proxy = "partner"
toxic = { type = "latency", attributes = { latency = 3000, jitter = 300 } }

[answer]
component = "partner"
kind = "latency"
accept = ["partner", "latency|slow|timeout"]

[[hints]]
after = "10m"
text = "Compare the gateway's latency by upstream."
"#;

    fn errors(text: &str) -> Vec<String> {
        parse(Path::new("drills/x.toml"), text, &environment()).unwrap_err().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_good_drill_becomes_a_plan() {
        let drill = parse(Path::new("x.toml"), GOOD, &environment()).unwrap();
        assert_eq!(drill.name, "partner-latency");
        assert_eq!(drill.timebox, Duration::from_secs(45 * 60));
        assert_eq!(drill.targets.dev(super::super::Phase::Resolve), Duration::from_secs(20 * 60));
        let FaultAction::Toxic { toxic, .. } = &drill.faults[0].action else { panic!("a toxic fault") };
        assert_eq!(toxic.name, "latency_downstream");
        assert!(drill.answer.matches("partner API latency"));
        assert_eq!(drill.hints[0].after, Some(Duration::from_secs(600)));
    }

    #[test]
    fn unknown_keys_are_located() {
        let text = GOOD.replace("at = \"0s\"", "at = \"0s\"\nwhen = 3");
        assert_eq!(
            errors(&text),
            [
                "drills/x.toml:13:1: unknown field `when`, expected one of `at`, `duration`, `proxy`, `toxic`, `kill`, `spike`, `burst`"
            ]
        );
    }

    #[test]
    fn semantic_errors_are_all_reported_with_positions() {
        let text = GOOD
            .replace("at = \"0s\"", "at = \"50m\"")
            .replace("proxy = \"partner\"", "proxy = \"wallet\"")
            .replace("after = \"10m\"", "after = \"ten minutes\"");
        assert_eq!(
            errors(&text),
            [
                "drills/x.toml:12:6: this fault starts at 50m but the drill's timebox is 45m; move it earlier or lengthen drill.timebox",
                "drills/x.toml:13:9: proxy `wallet` is not in the environment (known: api, ledger, partner); fix the name or add it to a proxy file",
                "drills/x.toml:22:9: hints.after: `ten minutes` is not a duration; expected a duration such as \"500ms\", \"30s\", \"45m\" or \"1h30m\"",
            ]
        );
    }

    #[test]
    fn a_spike_is_more_of_the_drills_traffic() {
        let spike = "[[faults]]\nat = \"1m\"\nduration = \"2m\"\nspike = { rps = 200 }\n";
        let traffic = "[traffic]\nurl = \"http://127.0.0.1:8080/pay\"\nrps = 20\n";
        let text = format!("{GOOD}{spike}{traffic}");
        let drill = parse(Path::new("x.toml"), &text, &environment()).unwrap();
        assert_eq!(drill.faults[1].action, FaultAction::Spike { rps: 200.0 });
        assert_eq!((drill.faults[1].kind(), drill.faults[1].duration), ("spike", Some(Duration::from_secs(120))));
        // Without [traffic] there is nothing to spike; a rate is bounded like traffic's.
        assert_eq!(
            errors(&format!("{GOOD}{spike}")),
            [
                "drills/x.toml:27:9: faults.spike sends more of the drill's synthetic traffic: add a [traffic] section (url or grpc, rps)"
            ]
        );
        let errs = errors(&format!("{GOOD}{}{traffic}", spike.replace("200", "0")));
        assert_eq!(errs, ["drills/x.toml:27:17: faults.spike.rps must be above 0 and at most 1000"]);
        // One kind of fault per fault.
        let both = spike.replace("spike =", "proxy = \"partner\"\nspike =");
        assert!(errors(&format!("{GOOD}{both}{traffic}"))[0].contains("a fault needs exactly one of"));
    }

    #[test]
    fn an_environment_without_proxies_says_which_file_is_missing() {
        let errs: Vec<String> = parse(Path::new("drills/x.toml"), GOOD, &Environment::default())
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            errs,
            [
                "drills/x.toml:13:9: proxy `partner` is not in the environment, which has no proxies at all: give the proxy file that defines it (to `firedrill validate` beside the drill, or to `firedrill serve`)"
            ]
        );
    }

    #[test]
    fn bad_toxics_durations_and_answer_keys() {
        let text = GOOD.replace("latency = 3000", "latency = -1").replace("timebox = \"45m\"", "timebox = \"45\"");
        let errs = errors(&text);
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs[0].starts_with("drills/x.toml:6:11: drill.timebox: `45` has no unit"), "{errs:?}");
        assert!(
            errs[1].contains("faults.toxic: bad request body: attribute `latency` of latency must not be negative"),
            "{errs:?}"
        );
        let text = GOOD.replace("accept = [\"partner\", \"latency|slow|timeout\"]", "accept = []");
        assert!(errors(&text)[0].starts_with("drills/x.toml:16:1: answer.accept is empty"), "{:?}", errors(&text));
    }

    #[test]
    fn a_typo_in_an_attribute_is_refused_at_the_key_never_widening_the_fault() {
        let typo = GOOD
            .replace("proxy = \"partner\"", "proxy = \"api\"")
            .replace("type = \"latency\"", "type = \"http_error\"")
            .replace(
                "attributes = { latency = 3000, jitter = 300 }",
                "attributes = { status = 503, path_prefx = \"/charge\" }",
            );
        let errs = errors(&typo);
        assert_eq!(
            errs,
            [
                "drills/x.toml:14:61: faults.toxic: unknown attribute `path_prefx` for a http_error toxic; valid attributes: \
              status, body, rate, path_prefix, path, path_regex, method, header, headers, ignore_case, grpc_service, grpc_method"
            ],
        );
        let quoted = GOOD.replace("jitter = 300", "\"jiter\" = 300");
        assert!(
            errors(&quoted)[0]
                .starts_with("drills/x.toml:14:61: faults.toxic: unknown attribute `jiter` for a latency")
        );
        let spelled_right = typo.replace("path_prefx", "path_prefix");
        assert!(parse(Path::new("x.toml"), &spelled_right, &environment()).is_ok());
    }

    #[test]
    fn syntax_errors_are_located() {
        let errs = errors("[drill\nname = 1");
        assert!(errs[0].starts_with("drills/x.toml:1:"), "{errs:?}");
    }

    #[test]
    fn a_burst_becomes_pulses_and_request_toxics_need_an_http_proxy() {
        let burst = GOOD
            .replace("proxy = \"partner\"", "proxy = \"api\"\nburst = { on = \"20s\", off = \"40s\", times = 3 }")
            .replace("type = \"latency\"", "type = \"http_error\"")
            .replace("attributes = { latency = 3000, jitter = 300 }", "attributes = { status = 503, rate = 0.5 }");
        let drill = parse(Path::new("x.toml"), &burst, &environment()).unwrap();
        let starts: Vec<u64> = drill.faults.iter().map(|f| f.at.as_secs()).collect();
        assert_eq!(starts, [0, 60, 120]);
        assert!(drill.faults.iter().all(|f| f.duration == Some(Duration::from_secs(20))));
        assert_eq!(drill.faults[0].kind(), "http_error");

        let on_tcp = burst.replace("proxy = \"api\"", "proxy = \"partner\"");
        let found = errors(&on_tcp);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("http_error is a request-level toxic, and proxy `partner` is not in http mode"));
        let late = burst.replace("times = 3", "times = 100");
        assert!(errors(&late).iter().any(|e| e.contains("the last burst starts at 1h39m, after the timebox (45m)")));
        // The file's numbers are checked before any pulse is made: no four billion faults, no
        // overflowing sums.
        let many = burst.replace("times = 3", "times = 4000000000");
        assert!(errors(&many).iter().any(|e| e.contains("`times` from 1 to 1000")), "{:?}", errors(&many));
        let long = burst.replace("off = \"40s\"", "off = \"3650d\"").replace("times = 3", "times = 1000");
        assert!(
            errors(&long).iter().any(|e| e.contains("the last burst starts at 87512405h33m")),
            "{:?}",
            errors(&long)
        );
    }

    #[test]
    fn a_latency_threshold_needs_synthetic_traffic() {
        let text =
            GOOD.to_owned() + "\n[slo]\nobjective = 99.9\nproduction_rps = 10\nproxy = \"api\"\nlatency = \"300ms\"\n";
        let found = errors(&text);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("slo.latency applies to the drill's synthetic traffic"), "{found:?}");
    }
}
