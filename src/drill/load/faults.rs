//! The faults of a drill: toxics (and the attribute typos that must never widen one), bursts,
//! spikes, and kill faults with their selectors and blast radius.

use std::ops::Range;
use std::time::Duration;

use toml::Spanned;

use super::Validator;
use super::observe::MAX_TRAFFIC_RPS;
use crate::drill::file::{
    BlastRadiusSection, DockerSelector, FaultSection, KillSection, KubernetesSelector, SpikeSection,
};
use crate::drill::plan::{Fault, FaultAction, KillAction, KillPlan, Pick, Selector};
use crate::duration;
use crate::proxy::config::lowercase_keys;
use crate::proxy::external::{check_external, external_name};
use crate::proxy::toxic::Toxic;
use crate::signal::Signal;

/// The shortest interval between repeated kills.
const MIN_KILL_EVERY: Duration = Duration::from_secs(1);
/// The most pulses one burst may have (each is a fault the runner schedules and journals).
const MAX_PULSES: u32 = 1000;

impl Validator<'_, '_> {
    /// The external client names a toxic `<type>_<stream>`: two faults that may be on the same
    /// proxy at the same time need different names.
    pub(super) fn one_toxic_per_name(&mut self, faults: &[(Range<usize>, Fault)]) {
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

    pub(super) fn fault(
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
    pub(super) fn spike(&mut self, spike: &Spanned<SpikeSection>, has_traffic: bool) -> Option<FaultAction> {
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
    pub(super) fn burst(
        &mut self,
        spanned: &Spanned<FaultSection>,
        fault: Fault,
        timebox: Option<Duration>,
    ) -> Vec<Fault> {
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
    pub(super) fn unknown_attribute(&self, toxic: &Spanned<toml::Table>) -> Option<(std::ops::Range<usize>, String)> {
        let type_name = toxic.get_ref().get("type")?.as_str()?;
        let names = crate::proxy::toxic::known_attributes(type_name)?;
        let attributes = toxic.get_ref().get("attributes")?.as_table()?;
        let unknown = attributes.keys().find(|key| !names.contains(&key.to_ascii_lowercase().as_str()))?;
        let valid = if names.is_empty() { "none".to_owned() } else { names.join(", ") };
        let message =
            format!("faults.toxic: unknown attribute `{unknown}` for a {type_name} toxic; valid attributes: {valid}");
        Some((self.errors.key_within(&toxic.span(), unknown), message))
    }

    pub(super) fn toxic(&mut self, proxy: &Spanned<String>, toxic: &Spanned<toml::Table>) -> Option<FaultAction> {
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

    pub(super) fn kill(
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

    pub(super) fn pick(&mut self, kill: &KillSection, span: &Range<usize>, max_targets: usize) -> Pick {
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

    pub(super) fn docker(
        &mut self,
        spanned: &Spanned<DockerSelector>,
        radius: Option<&BlastRadiusSection>,
    ) -> Option<Selector> {
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

    pub(super) fn kubernetes(
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
}
