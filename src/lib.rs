//! firedrill runs fire drills ("game days") against dev and QA environments: it injects faults
//! through Toxiproxy-compatible proxies, times the team's response phase by phase against a
//! third of the production target, and keeps scorecards.
//!
//! # Layout
//! Dependencies point one way, down this list (`tests/it/layers.rs` holds the crate to it):
//! - leaves, which know nothing of drills or runs: [`proxy`] (the fault proxy: listeners, links,
//!   toxics, the Toxiproxy admin API, metrics), [`slo`] (error budgets, burn rates, the Workbook's
//!   alert rules), [`journal`] (a run's events and their JSONL file), [`located`] (errors with
//!   file, line and column), [`duration`] (`30s`, `1h30m`), [`clock`] (wall-clock time),
//!   [`probe`] (one HTTP health probe), [`signal`] (Unix signals: sending them, waiting for them);
//! - [`drill`]: drill files, loaded in two stages into a validated plan;
//! - [`supervise`]: local services under supervision (`firedrill up`); [`fault`]: where faults go
//!   (own proxies, an external Toxiproxy API, Docker, Kubernetes, supervised processes) and the
//!   blast-radius rule of kill faults;
//! - [`run`]: the runner and the manager of runs; [`scorecard`]: the scorecard, a pure function
//!   of the journal, its files, reports and the readiness verdict;
//! - [`control`]: the gRPC control API; [`console`]: the game-day web console; [`serve`]: the
//!   daemon; [`shop`]: the example shop;
//! - [`cli`]: the edge — the command tree, every verb's printing, `firedrill demo` and
//!   `firedrill validate`, and the one mapping of failures to exit codes.

pub mod cli;
pub mod clock;
pub mod console;
pub mod control;
pub mod drill;
pub mod duration;
pub mod fault;
pub mod gameday;
pub mod journal;
pub mod located;
pub mod probe;
pub mod proxy;
pub mod run;
pub mod scorecard;
pub mod serve;
pub mod shop;
pub mod signal;
pub mod slo;
pub mod supervise;

/// The name a unit enum value has on the wire (its serde name: `detect`, `met`, `page`, …).
pub fn wire_name(value: impl serde::Serialize) -> String {
    serde_json::to_value(value).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// Whether an `Authorization` value is `Bearer <token>`. The comparison takes the same time
/// wherever the first difference is, so response times do not leak the token byte by byte (the
/// admin and control APIs need a token when bound beyond loopback).
pub fn bearer_matches(header: &str, token: &str) -> bool {
    header.strip_prefix("Bearer ").is_some_and(|given| same_secret(given, token))
}

/// Whether two secrets (tokens, codes, CSRF values) are equal, in time that does not depend on
/// where they first differ.
#[must_use]
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0_u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// A plain name (a drill, a service): non-empty, only ASCII letters, digits, `-` and `_`, so it
/// is safe as a file name and never a path.
#[must_use]
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// A team's name: it names the team's scorecard directory, so letters, digits, `-`, `_` and `.`
/// (never first: not `.` or `..`), at most `max` characters.
#[must_use]
pub fn is_team_name(name: &str, max: usize) -> bool {
    !name.starts_with('.') && name.len() <= max && is_plain_name(&name.replace('.', "_"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn bearer_tokens_match_exactly() {
        assert!(super::bearer_matches("Bearer s3cret", "s3cret"));
        for wrong in ["Bearer s3creT", "Bearer s3cre", "Bearer s3crets", "s3cret", "bearer s3cret", "Bearer ", ""] {
            assert!(!super::bearer_matches(wrong, "s3cret"), "{wrong}");
        }
    }
}
