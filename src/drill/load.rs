//! Loading a drill in two stages: the TOML into its serde mirror ([`super::file`]), then the
//! mirror into a validated [`Drill`]. Every error names file, line and column and says what to do.

use std::collections::BTreeSet;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::duration;
use super::file::{DrillFile, FaultSection};
use super::plan::{AnswerKey, Drill, Fault, Hint, HttpProbe, Targets, Verify};
use crate::proxy::config::lowercase_keys;
use crate::proxy::toxic::Toxic;

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
}

/// One problem in a drill file, located.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct DrillError {
    /// The file.
    pub path: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
    /// What is wrong and what to do.
    pub message: String,
}

impl fmt::Display for DrillError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}", self.path.display(), self.line, self.column, self.message)
    }
}

/// Reads and validates a drill file.
pub fn load(path: &Path, environment: &Environment) -> Result<Drill, Vec<DrillError>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![DrillError { path: path.to_owned(), line: 1, column: 1, message: format!("cannot read the file: {e}") }]
    })?;
    parse(path, &text, environment)
}

/// Validates drill text; `path` is only used in messages.
pub fn parse(path: &Path, text: &str, environment: &Environment) -> Result<Drill, Vec<DrillError>> {
    let mut errors = Errors { path, text, list: Vec::new() };
    let file: DrillFile = match toml::from_str(text) {
        Ok(file) => file,
        Err(e) => {
            let message = e.message().trim_end().to_owned();
            errors.at(&e.span().unwrap_or(0..0), message);
            return Err(errors.list);
        }
    };
    let drill = Validator { errors: &mut errors, environment }.drill(file);
    if errors.list.is_empty() { drill.ok_or_else(Vec::new) } else { Err(errors.list) }
}

struct Errors<'a> {
    path: &'a Path,
    text: &'a str,
    list: Vec<DrillError>,
}

impl Errors<'_> {
    fn at(&mut self, span: &Range<usize>, message: impl Into<String>) {
        let offset = span.start.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        self.list.push(DrillError { path: self.path.to_owned(), line, column, message: message.into() });
    }
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
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            self.errors
                .at(&section.name.span(), "drill.name must be non-empty and use only letters, digits, `-` and `_`");
        }
        let timebox = self.duration(&section.timebox, "drill.timebox");
        let targets = self.targets(&file.targets);
        let faults: Vec<Fault> = file.faults.iter().filter_map(|f| self.fault(f, timebox)).collect();
        let answer = self.answer(&file.answer);
        let hints = file.hints.iter().filter_map(|h| self.hint(h, timebox)).collect();
        let verify = file.verify.as_ref().and_then(|v| self.verify(v));
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

    fn fault(&mut self, spanned: &Spanned<FaultSection>, timebox: Option<Duration>) -> Option<Fault> {
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
        let proxy = fault.proxy.get_ref();
        if !self.environment.proxies.contains(proxy) {
            let known: Vec<&str> = self.environment.proxies.iter().map(String::as_str).collect();
            self.errors.at(
                &fault.proxy.span(),
                format!(
                    "proxy `{proxy}` is not in the environment (known: {}); fix the name or add it to a proxy file",
                    if known.is_empty() { "none".to_owned() } else { known.join(", ") }
                ),
            );
        }
        let json = serde_json::to_value(fault.toxic.get_ref()).unwrap_or_default();
        let toxic = match Toxic::from_create(&lowercase_keys(json)) {
            Ok(t) => Some(t),
            Err(e) => {
                self.errors.at(&fault.toxic.span(), format!("faults.toxic: {}", e.message));
                None
            }
        };
        Some(Fault { at: at?, duration, proxy: proxy.clone(), toxic: toxic? })
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
        Environment { proxies: ["partner".to_owned(), "ledger".to_owned()].into() }
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
        assert_eq!(drill.faults[0].toxic.name, "latency_downstream");
        assert!(drill.answer.matches("partner API latency"));
        assert_eq!(drill.hints[0].after, Some(Duration::from_secs(600)));
    }

    #[test]
    fn unknown_keys_are_located() {
        let text = GOOD.replace("at = \"0s\"", "at = \"0s\"\nwhen = 3");
        assert_eq!(
            errors(&text),
            ["drills/x.toml:13:1: unknown field `when`, expected one of `at`, `duration`, `proxy`, `toxic`"]
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
                "drills/x.toml:13:9: proxy `wallet` is not in the environment (known: ledger, partner); fix the name or add it to a proxy file",
                "drills/x.toml:22:9: hints.after: `ten minutes` is not a duration; expected a duration such as \"500ms\", \"30s\", \"45m\" or \"1h30m\"",
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
    fn syntax_errors_are_located() {
        let errs = errors("[drill\nname = 1");
        assert!(errs[0].starts_with("drills/x.toml:1:"), "{errs:?}");
    }
}
