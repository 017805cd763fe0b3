//! Error budgets and burn-rate alerting, as in the SRE Workbook's "Alerting on SLOs" (see
//! `slo-math.md` in the design notes): budgets, burn rates, time to exhaustion, the
//! multi-window multi-burn-rate rules, when each fires at a constant error ratio, and which can
//! never fire.

pub mod eval;
pub mod prometheus;

use std::time::Duration;

use serde::Serialize;

/// An objective over a period, request-based.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Objective {
    /// The target share of good events, in (0, 1): 0.999 for 99.9 %.
    pub target: f64,
    /// The period the budget covers.
    #[serde(serialize_with = "seconds")]
    pub period: Duration,
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl Objective {
    /// `percent` (99.9) over `period`; `None` unless 0 < percent < 100 and the period is not 0.
    pub fn new(percent: f64, period: Duration) -> Option<Self> {
        (percent > 0.0 && percent < 100.0 && !period.is_zero()).then_some(Self { target: percent / 100.0, period })
    }

    /// The share of events allowed to be bad: 1 − SLO.
    pub fn allowed(&self) -> f64 {
        1.0 - self.target
    }

    /// Valid events in the period at `rps`.
    pub fn events(&self, rps: f64) -> f64 {
        rps * self.period.as_secs_f64()
    }

    /// The error budget in bad events at `rps`: (1 − SLO) × events.
    pub fn budget(&self, rps: f64) -> f64 {
        self.allowed() * self.events(rps)
    }

    /// The burn rate of an error ratio: e / (1 − SLO).
    pub fn burn_rate(&self, error_ratio: f64) -> f64 {
        error_ratio / self.allowed()
    }

    /// How long the whole budget lasts at a constant error ratio (`None`: forever).
    pub fn time_to_exhaust(&self, error_ratio: f64) -> Option<Duration> {
        let burn = self.burn_rate(error_ratio);
        (burn > 0.0).then(|| Duration::from_secs_f64(self.period.as_secs_f64() / burn))
    }

    /// The share of the budget spent by `bad` events at `rps` (1.0 = all of it).
    pub fn spent(&self, bad: f64, rps: f64) -> f64 {
        let budget = self.budget(rps);
        if budget > 0.0 { bad / budget } else { 0.0 }
    }
}

/// How urgent a rule is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Wake someone up.
    Page,
    /// Look at it during working hours.
    Ticket,
}

/// A multi-window burn-rate rule: fires when the error ratio over both windows exceeds
/// `burn × (1 − SLO)`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rule {
    /// Name, as it appears in alert events (`page-1h`).
    pub name: String,
    /// Page or ticket.
    pub severity: Severity,
    /// The long window.
    #[serde(serialize_with = "seconds")]
    pub long: Duration,
    /// The short window (1/12 of the long one in the Workbook's set).
    #[serde(serialize_with = "seconds")]
    pub short: Duration,
    /// The burn-rate threshold.
    pub burn: f64,
    /// Bad events the long window must hold before the rule may fire (low traffic; 0 = off).
    pub min_bad: u64,
}

/// The Workbook's set: for a 30-day period, 1 h/5 m at 14.4 and 6 h/30 m at 6 (pages), and
/// 3 d/6 h at 1 (ticket) — 2 %, 5 % and 10 % of the budget. For another period the thresholds
/// keep those budget shares: burn = share × period / long window.
pub fn default_rules(period: Duration, min_bad: u64) -> Vec<Rule> {
    let hour = 3600;
    let set = [
        ("page-1h", Severity::Page, hour, 300, 0.02),
        ("page-6h", Severity::Page, 6 * hour, 1800, 0.05),
        ("ticket-3d", Severity::Ticket, 72 * hour, 6 * hour, 0.10),
    ];
    set.iter()
        .map(|&(name, severity, long, short, share)| Rule {
            name: name.to_owned(),
            severity,
            long: Duration::from_secs(long),
            short: Duration::from_secs(short),
            burn: share * period.as_secs_f64() / Duration::from_secs(long).as_secs_f64(),
            min_bad,
        })
        .collect()
}

/// Time for a window of length `window` (full of good events before) to reach `threshold` at a
/// constant error ratio `e`: `window × threshold / e` if `e > threshold`, never otherwise.
pub fn window_time(window: Duration, threshold: f64, error_ratio: f64) -> Option<Duration> {
    (error_ratio > threshold).then(|| Duration::from_secs_f64(window.as_secs_f64() * threshold / error_ratio))
}

impl Rule {
    /// The error ratio both windows must exceed: burn × (1 − SLO).
    pub fn threshold(&self, objective: &Objective) -> f64 {
        self.burn * objective.allowed()
    }

    /// The share of the budget spent when the rule fires: burn × long / period.
    pub fn budget_share(&self, objective: &Objective) -> f64 {
        self.burn * self.long.as_secs_f64() / objective.period.as_secs_f64()
    }

    /// When the rule fires at a constant error ratio from a clean start: the later of its two
    /// windows' times; `None` if it never does.
    pub fn time_to_fire(&self, objective: &Objective, error_ratio: f64) -> Option<Duration> {
        let threshold = self.threshold(objective);
        let long = window_time(self.long, threshold, error_ratio)?;
        let short = window_time(self.short, threshold, error_ratio)?;
        Some(long.max(short))
    }

    /// Whether any error ratio can fire it: a threshold of 100 % or more never is exceeded.
    pub fn can_fire(&self, objective: &Objective) -> bool {
        self.threshold(objective) < 1.0
    }
}

/// What `firedrill slo budget` prints, with stable field names (documented in the README).
#[derive(Debug, Clone, Serialize)]
pub struct BudgetReport {
    /// The objective in percent.
    pub objective_percent: f64,
    /// The period in seconds.
    pub period_seconds: f64,
    /// Requests per second.
    pub rps: f64,
    /// Valid events in the period.
    pub events: f64,
    /// Bad events allowed in the period.
    pub budget_events: f64,
    /// One entry per error ratio asked about.
    pub error_ratios: Vec<RatioReport>,
}

/// The budget at one error ratio.
#[derive(Debug, Clone, Serialize)]
pub struct RatioReport {
    /// The error ratio, in [0, 1].
    pub error_ratio: f64,
    /// Its burn rate.
    pub burn_rate: f64,
    /// Seconds until the budget is gone (`null`: never).
    pub exhausted_after_seconds: Option<f64>,
    /// Each rule at this ratio.
    pub rules: Vec<RuleReport>,
}

/// One rule at one error ratio.
#[derive(Debug, Clone, Serialize)]
pub struct RuleReport {
    /// Its name.
    pub name: String,
    /// `page` or `ticket`.
    pub severity: Severity,
    /// Long window, seconds.
    pub long_window_seconds: f64,
    /// Short window, seconds.
    pub short_window_seconds: f64,
    /// Burn-rate threshold.
    pub burn_threshold: f64,
    /// Share of the budget spent when it fires.
    pub budget_share: f64,
    /// Whether it can fire at all for this objective.
    pub can_fire: bool,
    /// Seconds until it fires at this ratio (`null`: never).
    pub fires_after_seconds: Option<f64>,
}

/// The report for `objective` at `rps` and each of `ratios`.
pub fn budget_report(objective: &Objective, rps: f64, ratios: &[f64], rules: &[Rule]) -> BudgetReport {
    BudgetReport {
        objective_percent: objective.target * 100.0,
        period_seconds: objective.period.as_secs_f64(),
        rps,
        events: objective.events(rps),
        budget_events: objective.budget(rps),
        error_ratios: ratios
            .iter()
            .map(|&e| RatioReport {
                error_ratio: e,
                burn_rate: objective.burn_rate(e),
                exhausted_after_seconds: objective.time_to_exhaust(e).map(|d| d.as_secs_f64()),
                rules: rules
                    .iter()
                    .map(|rule| RuleReport {
                        name: rule.name.clone(),
                        severity: rule.severity,
                        long_window_seconds: rule.long.as_secs_f64(),
                        short_window_seconds: rule.short.as_secs_f64(),
                        burn_threshold: rule.burn,
                        budget_share: rule.budget_share(objective),
                        can_fire: rule.can_fire(objective),
                        fires_after_seconds: rule.time_to_fire(objective, e).map(|d| d.as_secs_f64()),
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// Seconds as people read them: `51.8s`, `8.6m`, `3.6h`, `3.0d`.
pub fn human(seconds: f64) -> String {
    if seconds < 120.0 {
        format!("{seconds:.1}s")
    } else if seconds < 2.0 * 3600.0 {
        format!("{:.1}m", seconds / 60.0)
    } else if seconds < 2.0 * 86400.0 {
        format!("{:.1}h", seconds / 3600.0)
    } else {
        format!("{:.1}d", seconds / 86400.0)
    }
}

/// The report as text for a terminal.
pub fn render(report: &BudgetReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "SLO {}% over {} at {} req/s: {:.0} events, budget {:.0} bad events",
        report.objective_percent,
        human(report.period_seconds),
        report.rps,
        report.events,
        report.budget_events
    );
    for ratio in &report.error_ratios {
        let exhausted = ratio.exhausted_after_seconds.map_or_else(|| "never".to_owned(), human);
        let _ = writeln!(
            out,
            "\nerror ratio {}% (burn {:.1}): budget gone after {exhausted}",
            ratio.error_ratio * 100.0,
            ratio.burn_rate
        );
        for rule in &ratio.rules {
            let when = match (rule.can_fire, rule.fires_after_seconds) {
                (false, _) => "can never fire for this objective".to_owned(),
                (true, None) => "does not fire at this ratio".to_owned(),
                (true, Some(s)) => format!("fires after {}", human(s)),
            };
            let _ = writeln!(
                out,
                "  {:<10} {:<6} {}/{} burn {:>5.1} ({:.0}% of budget): {when}",
                rule.name,
                crate::wire_name(rule.severity),
                human(rule.long_window_seconds),
                human(rule.short_window_seconds),
                rule.burn_threshold,
                rule.budget_share * 100.0
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400;

    fn slo(percent: f64) -> Objective {
        Objective::new(percent, Duration::from_secs(30 * DAY)).unwrap()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-6 * b.abs().max(1.0)
    }

    #[test]
    fn the_worked_example() {
        let o = slo(99.9);
        assert!(close(o.events(100.0), 259_200_000.0));
        assert!(close(o.budget(100.0), 259_200.0));
        assert!(close(o.burn_rate(1.0), 1000.0));
        assert!(close(o.time_to_exhaust(1.0).unwrap().as_secs_f64(), 2592.0), "43.2 minutes");
        assert!(close(o.time_to_exhaust(1.0).unwrap().as_secs_f64() / 60.0, 43.2));
        assert!(close(o.burn_rate(0.01), 10.0));
        assert!(close(o.time_to_exhaust(0.01).unwrap().as_secs_f64(), 3.0 * DAY as f64), "3 days");
        // 2 % of the budget in one hour.
        let bad_in_hour = 0.02 * o.budget(100.0);
        assert!(close(bad_in_hour, 5184.0));
        assert!(close(bad_in_hour / 3600.0, 1.44));
        let ratio = bad_in_hour / 3600.0 / 100.0;
        assert!(close(ratio, 0.0144));
        assert!(close(o.burn_rate(ratio), 14.4));
        let page = &default_rules(o.period, 0)[0];
        assert!(close(window_time(page.long, page.threshold(&o), 1.0).unwrap().as_secs_f64(), 51.84));
        assert!(window_time(page.long, page.threshold(&o), 0.01).is_none(), "3,600 < 5,184 in an hour");
        assert!(o.time_to_exhaust(0.0).is_none());
    }

    #[test]
    fn the_workbook_rules() {
        let o = slo(99.9);
        let rules = default_rules(o.period, 0);
        let burns: Vec<f64> = rules.iter().map(|r| r.burn).collect();
        assert!(close(burns[0], 14.4) && close(burns[1], 6.0) && close(burns[2], 1.0), "{burns:?}");
        let shares: Vec<f64> = rules.iter().map(|r| r.budget_share(&o)).collect();
        assert!(close(shares[0], 0.02) && close(shares[1], 0.05) && close(shares[2], 0.10), "{shares:?}");
        assert_eq!(rules[0].short * 12, rules[0].long);
        assert_eq!(rules[1].short * 12, rules[1].long);
        assert_eq!(rules[2].short * 12, rules[2].long);
    }

    #[test]
    fn times_to_fire() {
        let o = slo(99.9);
        let rules = default_rules(o.period, 0);
        let (page1, page6) = (&rules[0], &rules[1]);
        assert!(close(page1.time_to_fire(&o, 1.0).unwrap().as_secs_f64(), 51.84));
        assert!(page1.time_to_fire(&o, 0.01).is_none(), "e = 1 %: the 1 h page never fires");
        assert!(close(page6.time_to_fire(&o, 0.01).unwrap().as_secs_f64(), 3.6 * 3600.0), "3.6 h");
        let short = window_time(page6.short, page6.threshold(&o), 0.01).unwrap();
        assert!(close(short.as_secs_f64(), 18.0 * 60.0), "its 30-min window crossed at 18 min");
        assert!(close(page1.time_to_fire(&o, 0.10).unwrap().as_secs_f64(), 8.64 * 60.0), "8.64 min");
    }

    #[test]
    fn extreme_targets() {
        let loose = slo(90.0);
        let rules = default_rules(loose.period, 0);
        // A total outage burns 1.4 % of the budget an hour: the 2 %-in-1 h page cannot fire.
        let per_hour = loose.burn_rate(1.0) * 3600.0 / loose.period.as_secs_f64();
        assert!((per_hour - 0.0139).abs() < 0.0001, "{per_hour}");
        assert!(!rules[0].can_fire(&loose));
        assert!(rules[0].time_to_fire(&loose, 1.0).is_none());
        assert!(rules[2].can_fire(&loose));
        let tight = slo(99.999);
        assert!(close(tight.time_to_exhaust(1.0).unwrap().as_secs_f64(), 25.92), "a month's budget lasts 26 s");
    }

    #[test]
    fn the_report_has_stable_fields() {
        let o = slo(99.9);
        let report = budget_report(&o, 100.0, &[1.0, 0.01], &default_rules(o.period, 0));
        let json = serde_json::to_value(&report).unwrap();
        assert!(close(json["budget_events"].as_f64().unwrap(), 259_200.0));
        assert!(close(json["error_ratios"][0]["exhausted_after_seconds"].as_f64().unwrap(), 2592.0));
        let page = &json["error_ratios"][0]["rules"][0];
        assert_eq!(page["name"], "page-1h");
        assert!(close(page["fires_after_seconds"].as_f64().unwrap(), 51.84));
        assert_eq!(json["error_ratios"][1]["rules"][0]["fires_after_seconds"], serde_json::Value::Null);
        let text = render(&report);
        assert!(text.contains("budget 259200 bad events"), "{text}");
        assert!(text.contains("budget gone after 43.2m"), "{text}");
        assert!(text.contains("fires after 51.8s"), "{text}");
    }
}
