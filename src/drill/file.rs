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
    pub proxy: Spanned<String>,
    pub toxic: Spanned<toml::Table>,
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
