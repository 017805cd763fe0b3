//! The manager's ten-second answer: for each team and drill, the readiness verdict (the default
//! policy of `firedrill readiness`), the last run's date, whether each phase is getting faster or
//! slower over the policy's window, and how the expected alerts did — what a manager reads
//! before a release, at the top of the HTML report.

use serde::Serialize;

use super::Scorecard;
use super::readiness::{self, Policy};
use super::report::Filter;

/// Where a phase's times are heading over the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trend {
    /// The newer half of the runs is at least 10 % faster (median against median).
    Faster,
    /// The newer half is at least 10 % slower, or the latest run did not reach the phase.
    Slower,
    /// Within 10 %.
    Steady,
    /// Fewer than three runs reached the phase: no trend yet.
    TooFew,
}

impl Trend {
    /// An arrow and a word: time going down is good.
    pub fn words(self) -> &'static str {
        match self {
            Self::Faster => "↓ faster",
            Self::Slower => "↑ slower",
            Self::Steady => "→ steady",
            Self::TooFew => "· too few runs",
        }
    }
}

/// How the expected alerts did over the window's runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct AlertRecord {
    /// Fired within their time.
    pub on_time: usize,
    /// Fired, but late.
    pub late: usize,
    /// Due, and never fired.
    pub never: usize,
}

/// One team and drill at a glance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Glance {
    /// The team.
    pub team: String,
    /// The drill.
    pub drill: String,
    /// Whether the readiness policy holds for this drill.
    pub ready: bool,
    /// Why not, each reason with its run, date and by how much.
    pub reasons: Vec<String>,
    /// The last counted run's start, `YYYY-MM-DD` (UTC).
    pub last_run: Option<String>,
    /// Per phase (detect, diagnose, mitigate, resolve).
    pub trends: [Trend; 4],
    /// The expected alerts, over the window.
    pub alerts: AlertRecord,
}

/// `YYYY-MM-DD` (UTC) of a wall-clock time in ms.
pub fn date(wall_ms: u64) -> String {
    jiff::Timestamp::from_millisecond(i64::try_from(wall_ms).unwrap_or(i64::MAX))
        .map_or_else(|_| "?".into(), |t| t.strftime("%Y-%m-%d").to_string())
}

fn median(values: &[u64]) -> Option<u64> {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    super::report::percentile(&sorted, 0.5)
}

/// The trend of phase `i` over `runs` (oldest first).
fn trend(runs: &[&Scorecard], i: usize) -> Trend {
    let times: Vec<Option<u64>> = runs.iter().map(|c| c.phases.get(i).and_then(|p| p.actual_ms)).collect();
    let reached: Vec<u64> = times.iter().flatten().copied().collect();
    if times.last().is_some_and(Option::is_none) && !reached.is_empty() {
        return Trend::Slower;
    }
    if reached.len() < 3 {
        return Trend::TooFew;
    }
    let (older, newer) = reached.split_at(reached.len() / 2);
    let (Some(older), Some(newer)) = (median(older), median(newer)) else { return Trend::TooFew };
    #[allow(clippy::cast_precision_loss)]
    let ratio = newer as f64 / older.max(1) as f64;
    if ratio <= 0.9 {
        Trend::Faster
    } else if ratio >= 1.1 {
        Trend::Slower
    } else {
        Trend::Steady
    }
}

/// Every team and drill `filter` keeps, judged by `policy` at `now_ms`: NOT READY first, then by
/// team and drill.
pub fn build(cards: &[Scorecard], filter: &Filter, policy: &Policy, now_ms: u64) -> Vec<Glance> {
    let since = crate::duration::parse(&policy.window)
        .map_or(0, |w| now_ms.saturating_sub(u64::try_from(w.as_millis()).unwrap_or(u64::MAX)));
    let mut pairs: Vec<(String, String)> =
        cards.iter().filter(|c| filter.keeps(c)).map(|c| (c.team.clone(), c.drill.clone())).collect();
    pairs.sort();
    pairs.dedup();
    let mut out: Vec<Glance> = pairs
        .into_iter()
        .map(|(team, drill)| {
            let mut runs: Vec<&Scorecard> = cards
                .iter()
                .filter(|c| c.team == team && c.drill == drill && c.started_wall_ms >= since && readiness::counts(c))
                .collect();
            runs.sort_by_key(|c| (c.started_wall_ms, super::store::run_sequence(&c.run_id)));
            let reasons: Vec<String> =
                readiness::evaluate(policy, &team, std::slice::from_ref(&drill), cards, &[], now_ms)
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|r| r.failure.map(|why| format!("{}: {why}", r.name)))
                    .collect();
            let mut alerts = AlertRecord::default();
            for alert in runs.iter().flat_map(|c| &c.alerts).filter(|a| a.due || a.met) {
                match (alert.met, alert.fired_after_ms) {
                    (true, _) => alerts.on_time += 1,
                    (false, Some(_)) => alerts.late += 1,
                    (false, None) => alerts.never += 1,
                }
            }
            Glance {
                ready: reasons.is_empty(),
                reasons,
                last_run: runs.last().map(|c| date(c.started_wall_ms)),
                trends: [0, 1, 2, 3].map(|i| trend(&runs, i)),
                alerts,
                team,
                drill,
            }
        })
        .collect();
    out.sort_by(|a, b| (a.ready, &a.team, &a.drill).cmp(&(b.ready, &b.team, &b.drill)));
    out
}
