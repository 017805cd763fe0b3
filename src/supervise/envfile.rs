//! Environment files (`firedrill up ENV_FILE`): the local services to start and keep running,
//! like a Deployment: command, replicas, health check, restart policy with backoff.
//!
//! ```toml
//! [[services]]
//! name = "wallet"
//! command = "./bin/wallet"                 # relative to this file's directory
//! args = ["--listen", "127.0.0.1:{port}"]  # {port} = port + replica, {replica} = 0, 1, …
//! env = { RUST_LOG = "info" }
//! replicas = 2
//! port = 9301
//! health = { http = "http://127.0.0.1:{port}/healthz", interval = "1s" }   # or tcp = "127.0.0.1:{port}"
//! restart = { policy = "always", backoff = "500ms", max_backoff = "30s" }  # always | on-failure | never
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::duration;
use crate::located::{Errors, LocatedError};

/// The whole file, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvFile {
    services: Vec<Spanned<ServiceSection>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceSection {
    name: Spanned<String>,
    command: Spanned<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    replicas: Option<Spanned<u32>>,
    port: Option<Spanned<u16>>,
    health: Option<Spanned<HealthSection>>,
    restart: Option<Spanned<RestartSection>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HealthSection {
    http: Option<String>,
    tcp: Option<String>,
    interval: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RestartSection {
    policy: Option<Spanned<String>>,
    backoff: Option<Spanned<String>>,
    max_backoff: Option<Spanned<String>>,
}

/// When a replica that exited is started again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// Whatever the exit.
    Always,
    /// Unless it exited with status 0.
    OnFailure,
    /// Never: an exited replica stays down.
    Never,
}

/// How a replica's health is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthCheck {
    /// A GET that must answer 2xx.
    Http(String),
    /// A TCP connect that must succeed.
    Tcp(String),
    /// No check: a running process counts as healthy.
    Running,
}

/// One service, validated.
#[derive(Debug, Clone)]
pub struct Service {
    /// Unique name; replicas are `<name>-0`, `<name>-1`, ….
    pub name: String,
    /// The program (absolute, or resolved against the file's directory when it has a `/`).
    pub command: PathBuf,
    /// Arguments, with `{port}` and `{replica}` still in them.
    pub args: Vec<String>,
    /// Extra environment, with placeholders.
    pub env: BTreeMap<String, String>,
    /// How many copies.
    pub replicas: u32,
    /// Base port: replica `i` gets `port + i` as `{port}`.
    pub port: Option<u16>,
    /// The health check, with placeholders.
    pub health: HealthCheck,
    /// How often the check runs.
    pub health_interval: Duration,
    /// Restart policy.
    pub restart: RestartPolicy,
    /// First restart delay; doubles per consecutive restart.
    pub backoff: Duration,
    /// The most a restart waits.
    pub max_backoff: Duration,
    /// Working directory: the environment file's directory.
    pub dir: PathBuf,
}

impl Service {
    /// `text` with `{port}` and `{replica}` filled in for replica `replica`.
    pub fn fill(&self, text: &str, replica: u32) -> String {
        let port = self.port.map(|p| (u32::from(p) + replica).to_string()).unwrap_or_default();
        text.replace("{port}", &port).replace("{replica}", &replica.to_string())
    }
}

const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
const DEFAULT_BACKOFF: Duration = Duration::from_millis(500);
const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(30);
/// More replicas than this is a typo, not a dev environment.
const MAX_REPLICAS: u32 = 64;

/// Reads and validates an environment file.
pub fn load(path: &Path) -> Result<Vec<Service>, Vec<LocatedError>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![LocatedError { path: path.to_owned(), line: 1, column: 1, message: format!("cannot read the file: {e}") }]
    })?;
    parse(path, &text)
}

/// Validates environment-file text; `path` names it in errors and anchors relative commands.
pub fn parse(path: &Path, text: &str) -> Result<Vec<Service>, Vec<LocatedError>> {
    let mut errors = Errors::new(path, text);
    let Some(file) = errors.parse::<EnvFile>() else { return Err(errors.into_list()) };
    let dir = path.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let dir = std::path::absolute(&dir).unwrap_or(dir);
    let mut names = BTreeSet::new();
    let mut services = Vec::new();
    if file.services.is_empty() {
        errors.at(&(0..0), "no [[services]]: declare at least one service to start");
    }
    for spanned in file.services {
        let section = spanned.into_inner();
        services.push(service(&mut errors, section, &dir, &mut names));
    }
    if errors.is_empty() { Ok(services) } else { Err(errors.into_list()) }
}

fn duration_at(errors: &mut Errors<'_>, value: Option<&Spanned<String>>, default: Duration, what: &str) -> Duration {
    match value {
        None => default,
        Some(value) => duration::parse(value.get_ref()).unwrap_or_else(|e| {
            errors.at(&value.span(), format!("{what}: {e}"));
            default
        }),
    }
}

fn service(errors: &mut Errors<'_>, section: ServiceSection, dir: &Path, names: &mut BTreeSet<String>) -> Service {
    let name = section.name.get_ref().clone();
    if !crate::is_plain_name(&name) {
        errors.at(&section.name.span(), "services.name must be non-empty and use only letters, digits, `-` and `_`");
    } else if !names.insert(name.clone()) {
        errors.at(&section.name.span(), format!("a service named `{name}` is already declared; names must be unique"));
    }
    let command = section.command.get_ref();
    if command.trim().is_empty() {
        errors.at(&section.command.span(), "services.command is empty: give the program to run");
    }
    let command = if command.contains('/') { dir.join(command) } else { PathBuf::from(command) };
    let replicas = section.replicas.as_ref().map_or(1, |r| *r.get_ref());
    if let Some(r) = &section.replicas
        && !(1..=MAX_REPLICAS).contains(r.get_ref())
    {
        errors.at(&r.span(), format!("services.replicas must be 1 to {MAX_REPLICAS}"));
    }
    let port = section.port.as_ref().map(|p| *p.get_ref());
    if let Some(p) = &section.port
        && u32::from(*p.get_ref()) + replicas > u32::from(u16::MAX) + 1
    {
        errors.at(&p.span(), "services.port + replicas runs past port 65535");
    }
    let uses_port = section.args.iter().chain(section.env.values()).any(|a| a.contains("{port}"));
    let (health, health_interval) = match &section.health {
        None => (HealthCheck::Running, DEFAULT_INTERVAL),
        Some(spanned) => {
            let h = spanned.get_ref();
            let check = match (&h.http, &h.tcp) {
                (Some(url), None) => HealthCheck::Http(url.clone()),
                (None, Some(address)) => HealthCheck::Tcp(address.clone()),
                _ => {
                    errors.at(
                        &spanned.span(),
                        "services.health needs exactly one of `http` (a URL) or `tcp` (host:port)",
                    );
                    HealthCheck::Running
                }
            };
            (check, duration_at(errors, h.interval.as_ref(), DEFAULT_INTERVAL, "services.health.interval"))
        }
    };
    let health_uses_port = matches!(&health, HealthCheck::Http(t) | HealthCheck::Tcp(t) if t.contains("{port}"));
    if (uses_port || health_uses_port) && port.is_none() {
        errors
            .at(&section.name.span(), "this service uses `{port}` but has no `port = N` to count replicas' ports from");
    }
    let (mut restart, mut backoff, mut max_backoff) = (RestartPolicy::Always, DEFAULT_BACKOFF, DEFAULT_MAX_BACKOFF);
    if let Some(spanned) = &section.restart {
        let r = spanned.get_ref();
        if let Some(policy) = &r.policy {
            restart = match policy.get_ref().as_str() {
                "always" => RestartPolicy::Always,
                "on-failure" => RestartPolicy::OnFailure,
                "never" => RestartPolicy::Never,
                other => {
                    errors.at(
                        &policy.span(),
                        format!("services.restart.policy `{other}` is unknown: use always, on-failure or never"),
                    );
                    RestartPolicy::Always
                }
            };
        }
        backoff = duration_at(errors, r.backoff.as_ref(), DEFAULT_BACKOFF, "services.restart.backoff");
        max_backoff = duration_at(errors, r.max_backoff.as_ref(), DEFAULT_MAX_BACKOFF, "services.restart.max_backoff");
        if max_backoff < backoff {
            let span = r.max_backoff.as_ref().map_or(spanned.span(), Spanned::span);
            errors.at(&span, "services.restart.max_backoff is shorter than backoff");
        }
    }
    Service {
        name,
        command,
        args: section.args,
        env: section.env,
        replicas,
        port,
        health,
        health_interval,
        restart,
        backoff,
        max_backoff,
        dir: dir.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_with_replicas_fills_its_ports() {
        let text = r#"
[[services]]
name = "wallet"
command = "./bin/wallet"
args = ["--listen", "127.0.0.1:{port}", "--id", "{replica}"]
replicas = 2
port = 9301
health = { tcp = "127.0.0.1:{port}" }
restart = { policy = "on-failure", backoff = "100ms", max_backoff = "1s" }
"#;
        let services = parse(Path::new("/env/shop.toml"), text).unwrap();
        let wallet = &services[0];
        assert_eq!(wallet.command, Path::new("/env/bin/wallet"));
        assert_eq!(wallet.fill(&wallet.args[1], 1), "127.0.0.1:9302");
        assert_eq!(wallet.fill(&wallet.args[3], 1), "1");
        assert_eq!(wallet.restart, RestartPolicy::OnFailure);
        assert_eq!(wallet.backoff, Duration::from_millis(100));
        assert_eq!(wallet.health, HealthCheck::Tcp("127.0.0.1:{port}".into()));
    }

    #[test]
    fn errors_name_line_and_column() {
        let text = "[[services]]\nname = \"a\"\ncommand = \"x\"\nrestart = { policy = \"sometimes\" }\n\n[[services]]\nname = \"a\"\ncommand = \"y\"\nargs = [\"{port}\"]\n";
        let errors: Vec<String> =
            parse(Path::new("env.toml"), text).unwrap_err().iter().map(ToString::to_string).collect();
        assert_eq!(
            errors,
            [
                "env.toml:4:22: services.restart.policy `sometimes` is unknown: use always, on-failure or never",
                "env.toml:7:8: a service named `a` is already declared; names must be unique",
                "env.toml:7:8: this service uses `{port}` but has no `port = N` to count replicas' ports from",
            ]
        );
        let unknown =
            parse(Path::new("env.toml"), "[[services]]\nname = \"a\"\ncommand = \"x\"\nreplica = 2\n").unwrap_err();
        assert!(unknown[0].to_string().starts_with("env.toml:4:1: unknown field `replica`"), "{}", unknown[0]);
    }
}
