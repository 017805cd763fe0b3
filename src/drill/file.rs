//! The serde mirror of a drill file: exactly what the TOML says, with spans for error messages.
//! Nothing here is validated beyond its shape; [`super::load()`] turns it into a [`super::Drill`].
//! The fields are the TOML keys, documented in `drills/README.md` and on [`super::Drill`].
#![allow(missing_docs)]

use serde::Deserialize;
use toml::Spanned;

/// A whole drill file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillFile {
    pub drill: Spanned<DrillSection>,
    pub targets: Spanned<TargetsSection>,
    #[serde(default)]
    pub faults: Vec<Spanned<FaultSection>>,
    pub answer: Spanned<AnswerSection>,
    #[serde(default)]
    pub hints: Vec<Spanned<HintSection>>,
    pub verify: Option<Spanned<VerifySection>>,
    pub blast_radius: Option<Spanned<BlastRadiusSection>>,
    pub slo: Option<Spanned<SloSection>>,
    pub traffic: Option<Spanned<TrafficSection>>,
    #[serde(default)]
    pub alerts: Vec<Spanned<AlertSection>>,
    pub guardrails: Option<Spanned<GuardrailsSection>>,
}

/// `[slo]`: the objective the drill's SLI is held to.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SloSection {
    pub objective: Spanned<f64>,
    pub period: Option<Spanned<String>>,
    pub production_rps: Spanned<f64>,
    /// `traffic` (the drill's synthetic traffic) when no `proxy` is given.
    pub proxy: Option<Spanned<String>>,
    pub latency: Option<Spanned<String>>,
    pub min_bad: Option<u64>,
}

/// `[traffic]`: synthetic requests during the run.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrafficSection {
    pub url: Option<Spanned<String>>,
    pub grpc: Option<Spanned<String>>,
    pub rps: Spanned<f64>,
    pub warmup: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
}

/// `[[alerts]]`: an alert the team expects, and by when.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertSection {
    pub name: String,
    pub within: Spanned<String>,
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
}

/// `[guardrails]`: when the run stops itself.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuardrailsSection {
    pub sli_floor: Option<Spanned<f64>>,
    pub floor_for: Option<Spanned<String>>,
    pub max_budget_spent: Option<Spanned<f64>>,
}

/// `[drill]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillSection {
    pub name: Spanned<String>,
    pub title: String,
    pub briefing: String,
    pub timebox: Spanned<String>,
    #[serde(default)]
    pub facilitator: Option<String>,
}

/// `[targets]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetsSection {
    pub production: Spanned<ProductionTargets>,
    pub ratio: Option<Spanned<f64>>,
}

/// Production targets per phase, in minutes from the fault going in.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductionTargets {
    pub detect: f64,
    pub diagnose: f64,
    pub mitigate: f64,
    pub resolve: f64,
}

/// `[[faults]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSection {
    pub at: Spanned<String>,
    pub duration: Option<Spanned<String>>,
    pub proxy: Option<Spanned<String>>,
    pub toxic: Option<Spanned<toml::Table>>,
    pub kill: Option<Spanned<KillSection>>,
    pub spike: Option<Spanned<SpikeSection>>,
    pub burst: Option<Spanned<BurstSection>>,
}

/// `faults.spike`: more of the drill's synthetic traffic while the fault lasts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpikeSection {
    pub rps: Spanned<f64>,
}

/// `faults.burst`: the toxic goes in for `on`, out for `off`, `times` times.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BurstSection {
    pub on: Spanned<String>,
    pub off: Spanned<String>,
    pub times: u32,
}

/// `faults.kill`: exactly one of `process`, `docker`, `kubernetes`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KillSection {
    pub process: Option<Spanned<String>>,
    pub docker: Option<Spanned<DockerSelector>>,
    pub kubernetes: Option<Spanned<KubernetesSelector>>,
    pub count: Option<Spanned<u32>>,
    pub percent: Option<Spanned<f64>>,
    pub all: Option<Spanned<bool>>,
    pub every: Option<Spanned<String>>,
    pub signal: Option<Spanned<String>>,
    pub grace: Option<Spanned<String>>,
    pub action: Option<Spanned<String>>,
}

/// `faults.kill.docker`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DockerSelector {
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    pub name: Option<String>,
}

/// `faults.kill.kubernetes`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesSelector {
    pub namespace: String,
    pub selector: Spanned<String>,
}

/// `[blast_radius]`: how far kill faults may reach.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlastRadiusSection {
    pub max_targets: Option<Spanned<u32>>,
    #[serde(default)]
    pub docker_scope: std::collections::BTreeMap<String, String>,
    pub kubernetes: Option<Spanned<KubernetesAllow>>,
}

/// `blast_radius.kubernetes`: where pods may be deleted.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesAllow {
    pub contexts: Vec<String>,
    pub namespaces: Vec<String>,
}

/// `[answer]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerSection {
    pub component: String,
    pub kind: String,
    pub accept: Option<Spanned<Vec<Spanned<String>>>>,
}

/// `[[hints]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HintSection {
    pub after: Option<Spanned<String>>,
    pub text: String,
}

/// `[verify]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifySection {
    pub http: Option<Spanned<HttpSection>>,
    pub success_ratio: Option<Spanned<f64>>,
    pub window: Option<Spanned<String>>,
}

/// `verify.http`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    pub url: Spanned<String>,
    pub within: Option<Spanned<String>>,
}
