//! Proxy definitions: the API's create/update bodies and Toxiproxy's config-file format.
//!
//! A config file (`proxies/*.json`) is the same JSON array `POST /populate` takes:
//! `[{"name": "db", "listen": "127.0.0.1:26379", "upstream": "127.0.0.1:6379", "enabled": true}]`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::ApiError;

/// Where a proxy listens when a request does not say (loopback, any free port).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:0";

/// A proxy's settings, validated: what creating a proxy needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    /// Unique name.
    pub name: String,
    /// `host:port` to listen on.
    pub listen: String,
    /// `host:port` to forward to.
    pub upstream: String,
    /// Whether it listens.
    pub enabled: bool,
    /// `tcp` (Toxiproxy's only mode) or `http` (a firedrill extension: request-level faults).
    pub mode: Mode,
    /// `http` mode: how requests reach the upstream (ignored in `tcp` mode).
    pub http: HttpOptions,
}

/// The default of [`HttpOptions::upstream_timeout_ms`]: Envoy's route timeout.
pub const DEFAULT_UPSTREAM_TIMEOUT_MS: u64 = 15_000;
/// The default of [`HttpOptions::connect_timeout_ms`]: Envoy's cluster connect timeout.
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 5_000;
/// The longest timeout a proxy may have: an hour.
const MAX_TIMEOUT_MS: u64 = 3_600_000;

/// Checks a timeout attribute (1 ms to an hour).
pub fn check_timeout(field: &str, ms: u64) -> Result<u64, ApiError> {
    if (1..=MAX_TIMEOUT_MS).contains(&ms) {
        Ok(ms)
    } else {
        Err(ApiError::bad_request(format!("bad request body: {field} must be 1 to {MAX_TIMEOUT_MS}, got {ms}")))
    }
}

/// How an `http` proxy talks to its upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HttpOptions {
    /// The protocol spoken to the upstream, whatever the client speaks.
    pub upstream_protocol: UpstreamProtocol,
    /// How long the upstream has to send its response headers (connecting included) before the
    /// client gets 504 (gRPC `DEADLINE_EXCEEDED`), in milliseconds.
    pub upstream_timeout_ms: u64,
    /// How long connecting to the upstream may take, in milliseconds (then 504, as above).
    pub connect_timeout_ms: u64,
    /// Whether the upstream sees its own address as `Host`/`:authority` rather than the one the
    /// client used (preserved by default).
    pub rewrite_host: bool,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            upstream_protocol: UpstreamProtocol::Auto,
            upstream_timeout_ms: DEFAULT_UPSTREAM_TIMEOUT_MS,
            connect_timeout_ms: DEFAULT_CONNECT_TIMEOUT_MS,
            rewrite_host: false,
        }
    }
}

impl HttpOptions {
    /// These options with the fields `fields` sets, checked.
    pub fn updated(mut self, fields: &ProxyFields) -> Result<Self, ApiError> {
        if let Some(protocol) = fields.upstream_protocol.as_deref().filter(|p| !p.is_empty()) {
            self.upstream_protocol = UpstreamProtocol::parse(protocol)?;
        }
        if let Some(ms) = fields.upstream_timeout_ms {
            self.upstream_timeout_ms = check_timeout("upstream_timeout_ms", ms)?;
        }
        if let Some(ms) = fields.connect_timeout_ms {
            self.connect_timeout_ms = check_timeout("connect_timeout_ms", ms)?;
        }
        if let Some(rewrite) = fields.rewrite_host {
            self.rewrite_host = rewrite;
        }
        Ok(self)
    }
}

/// The protocol an `http` proxy speaks to its upstream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamProtocol {
    /// The client's protocol, until the upstream shows it speaks only the other one (an HTTP/2
    /// preface refused, or an HTTP/1.1 request answered in HTTP/2): from then on, that one.
    #[default]
    Auto,
    /// HTTP/1.1 always: HTTP/2 clients are translated (gRPC cannot be: it needs HTTP/2).
    Http1,
    /// HTTP/2 with prior knowledge (cleartext) always: HTTP/1.1 clients are translated.
    H2c,
}

impl UpstreamProtocol {
    /// Parses `auto`, `http1` or `h2c`.
    pub fn parse(text: &str) -> Result<Self, ApiError> {
        match text {
            "auto" => Ok(Self::Auto),
            "http1" => Ok(Self::Http1),
            "h2c" => Ok(Self::H2c),
            _ => Err(ApiError::bad_request(format!(
                "bad request body: upstream_protocol must be `auto`, `http1` or `h2c`, got `{text}`"
            ))),
        }
    }
}

/// How a proxy forwards.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Bytes, as Toxiproxy.
    #[default]
    Tcp,
    /// HTTP/1.1 and HTTP/2 requests (gRPC included), with request-level toxics.
    Http,
}

impl Mode {
    /// Parses `tcp` or `http` (any case).
    pub fn parse(text: &str) -> Result<Self, ApiError> {
        match text.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Self::Tcp),
            "http" => Ok(Self::Http),
            _ => Err(ApiError::bad_request(format!("bad request body: mode must be `tcp` or `http`, got `{text}`"))),
        }
    }

    /// Whether this is the default (`tcp`), which the API leaves out of its answers.
    pub fn is_tcp(&self) -> bool {
        *self == Self::Tcp
    }
}

/// A proxy body as sent: every field optional (updates are partial).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ProxyFields {
    /// The name, required on create.
    pub name: Option<String>,
    /// The listen address.
    pub listen: Option<String>,
    /// The upstream address, required on create.
    pub upstream: Option<String>,
    /// Whether it listens (default true on create).
    pub enabled: Option<bool>,
    /// `tcp` (default) or `http`.
    pub mode: Option<String>,
    /// `http` mode: the upstream's time to answer, ms (default 15,000).
    pub upstream_timeout_ms: Option<u64>,
    /// `http` mode: the time to connect to the upstream, ms (default 5,000).
    pub connect_timeout_ms: Option<u64>,
    /// `http` mode: `auto` (default), `http1` or `h2c`.
    pub upstream_protocol: Option<String>,
    /// `http` mode: send the upstream's own address as `Host`/`:authority` (default false).
    pub rewrite_host: Option<bool>,
}

impl ProxyFields {
    /// Reads a body whose keys are already lower-cased; unknown keys are ignored.
    pub fn from_value(value: Value) -> Result<Self, ApiError> {
        serde_json::from_value(value).map_err(|e| ApiError::bad_request(format!("bad request body: {e}")))
    }

    /// Validates a create request; `suffix` is appended to messages (populate's ` at proxy N`).
    pub fn into_config(self, suffix: &str) -> Result<ProxyConfig, ApiError> {
        let http = HttpOptions::default()
            .updated(&self)
            .map_err(|e| ApiError::bad_request(format!("{}{suffix}", e.message)))?;
        let name =
            self.name.filter(|n| !n.is_empty()).ok_or_else(|| ApiError::missing_field(&format!("name{suffix}")))?;
        let upstream = self
            .upstream
            .filter(|u| !u.is_empty())
            .ok_or_else(|| ApiError::missing_field(&format!("upstream{suffix}")))?;
        let listen = self.listen.filter(|l| !l.is_empty()).unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        check_address("listen", &listen)
            .map_err(|e| ApiError::bad_request(format!("bad request body: {e}{suffix}")))?;
        check_address("upstream", &upstream)
            .map_err(|e| ApiError::bad_request(format!("bad request body: {e}{suffix}")))?;
        let mode = match self.mode.as_deref() {
            None | Some("") => Mode::Tcp,
            Some(text) => Mode::parse(text).map_err(|e| ApiError::bad_request(format!("{}{suffix}", e.message)))?,
        };
        Ok(ProxyConfig { name, listen, upstream, enabled: self.enabled.unwrap_or(true), mode, http })
    }
}

/// Checks that an address is `host:port` with a numeric port (the host is resolved later).
pub fn check_address(field: &str, address: &str) -> Result<(), String> {
    let ok = address.rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if ok { Ok(()) } else { Err(format!("{field} `{address}` is not host:port")) }
}

/// A proxy file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub struct FileError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong, and where in the file when known.
    pub problem: String,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.problem)
    }
}

/// Lower-cases object keys, recursively: Toxiproxy matches JSON keys case-insensitively.
pub fn lowercase_keys(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), lowercase_keys(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(lowercase_keys).collect()),
        other => other,
    }
}

/// Loads and validates proxy files; every problem of every file is reported, and names must be
/// unique across all files.
pub fn load_files(paths: &[PathBuf]) -> Result<Vec<ProxyConfig>, Vec<FileError>> {
    let mut configs = Vec::new();
    let mut errors = Vec::new();
    let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
    for path in paths {
        match load_file(path) {
            Ok(list) => {
                for config in list {
                    if let Some(first) = seen.get(&config.name) {
                        errors.push(FileError {
                            path: path.clone(),
                            problem: format!(
                                "proxy `{}` is already defined in {}; proxy names must be unique",
                                config.name,
                                first.display()
                            ),
                        });
                    } else {
                        seen.insert(config.name.clone(), path.clone());
                        configs.push(config);
                    }
                }
            }
            Err(mut errs) => errors.append(&mut errs),
        }
    }
    if errors.is_empty() { Ok(configs) } else { Err(errors) }
}

fn load_file(path: &Path) -> Result<Vec<ProxyConfig>, Vec<FileError>> {
    let error = |problem: String| vec![FileError { path: path.to_owned(), problem }];
    let text = std::fs::read_to_string(path).map_err(|e| error(format!("cannot read the file: {e}")))?;
    let items: Vec<Value> = serde_json::from_str(&text).map_err(|e| {
        error(format!(
            "line {} column {}: {e}; expected a JSON array of {{\"name\", \"listen\", \"upstream\", \"enabled\"}} objects",
            e.line(),
            e.column()
        ))
    })?;
    let mut errors = Vec::new();
    let mut configs = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        let label = item
            .get("name")
            .and_then(Value::as_str)
            .map_or_else(|| format!("proxy #{}", index + 1), |name| format!("proxy #{} (`{name}`)", index + 1));
        match ProxyFields::from_value(lowercase_keys(item)).and_then(|f| f.into_config("")) {
            Ok(config) => configs.push(config),
            Err(e) => errors.push(FileError { path: path.to_owned(), problem: format!("{label}: {}", e.message) }),
        }
    }
    if errors.is_empty() { Ok(configs) } else { Err(errors) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn reports_file_proxy_and_problem() {
        let f = file(
            r#"[{"name":"db","listen":"127.0.0.1:0","upstream":"127.0.0.1:6379"},{"name":"web","listen":"127.0.0.1:0"}]"#,
        );
        let errors = load_files(&[f.path().to_owned()]).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(
            errors[0].to_string(),
            format!("{}: proxy #2 (`web`): missing required field: upstream", f.path().display())
        );
    }

    #[test]
    fn reports_syntax_errors_with_line_and_column() {
        let f = file("[\n  {\"name\": \"db\",}\n]");
        let errors = load_files(&[f.path().to_owned()]).unwrap_err();
        assert!(errors[0].problem.starts_with("line 2 column 17:"), "{}", errors[0]);
    }

    #[test]
    fn names_are_unique_across_files() {
        let a = file(r#"[{"name":"db","listen":"127.0.0.1:0","upstream":"127.0.0.1:1"}]"#);
        let b = file(r#"[{"Name":"db","Listen":"127.0.0.1:0","Upstream":"127.0.0.1:2"}]"#);
        let errors = load_files(&[a.path().to_owned(), b.path().to_owned()]).unwrap_err();
        assert!(errors[0].problem.contains("already defined"), "{}", errors[0]);
    }

    #[test]
    fn checks_addresses() {
        assert!(check_address("listen", "localhost:80").is_ok());
        assert!(check_address("listen", "[::1]:80").is_ok());
        assert_eq!(check_address("upstream", "nope").unwrap_err(), "upstream `nope` is not host:port");
        assert!(check_address("listen", "host:99999").is_err());
    }
}
