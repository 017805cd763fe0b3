//! Loading a drill in two stages: the TOML into its serde mirror ([`super::file`]), then the
//! mirror into a validated [`Drill`]. Every error names file, line and column and says what to do.

use std::collections::BTreeSet;

use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use toml::Spanned;

mod faults;
mod observe;

use super::file::DrillFile;
use super::plan::{AnswerKey, Drill, ExpectedAlert, Fault, Hint, Targets};
use crate::duration;
use crate::located::{Errors, LocatedError};

/// The default dev/production ratio: a dev fault should be resolved in a third of the time.
pub const DEFAULT_RATIO: f64 = 1.0 / 3.0;
/// Default steady-state window.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(30);
/// Default steady-state success ratio.
pub const DEFAULT_SUCCESS_RATIO: f64 = 0.99;

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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drill::FaultAction;

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
