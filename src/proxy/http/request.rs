//! Request-level toxics of `http` proxies (a firedrill extension): `http_error`, `grpc_error`,
//! `http_delay` and `http_abort`, each with a per-request `rate` and optional matchers. They live
//! in a proxy's toxic list beside the TCP toxics and go through the same API.

use std::time::Duration;

use serde_json::{Map, Value};

use crate::proxy::error::ApiError;
use crate::proxy::toxic::MAX_MILLIS;

/// The request-level toxic types.
pub const TYPES: [&str; 4] = ["http_error", "grpc_error", "http_delay", "http_abort"];

/// The error code of an `http_abort` reset on HTTP/2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetCode {
    /// `INTERNAL_ERROR` (the default, as before): gRPC clients see `INTERNAL` and do not retry.
    InternalError,
    /// `REFUSED_STREAM`: the request was not processed — "the connection died"; gRPC clients see
    /// `UNAVAILABLE` and may retry.
    RefusedStream,
    /// `CANCEL`: gRPC clients see `CANCELLED`.
    Cancel,
}

impl ResetCode {
    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InternalError => "internal_error",
            Self::RefusedStream => "refused_stream",
            Self::Cancel => "cancel",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [Self::InternalError, Self::RefusedStream, Self::Cancel].into_iter().find(|c| c.as_str() == text)
    }
}

/// What a request-level toxic does to a matching request it draws.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Answers with `status` (and `body`) instead of forwarding.
    Error {
        /// HTTP status, 100–599.
        status: u16,
        /// Response body.
        body: String,
    },
    /// Answers with a trailers-only gRPC response carrying `code`.
    Grpc {
        /// gRPC status code, 0–16.
        code: u8,
        /// `grpc-message`.
        message: String,
    },
    /// Holds the request `latency` ± `jitter` ms before forwarding.
    Delay {
        /// Milliseconds.
        latency: u64,
        /// Up to this many milliseconds more or less.
        jitter: u64,
    },
    /// Resets the stream (HTTP/2, with `error_code`) or ends the connection (HTTP/1.1, with a
    /// close or a reset as `http1` says).
    Abort {
        /// The HTTP/2 reset's error code.
        code: ResetCode,
        /// Whether HTTP/1.1 connections end with a reset (RST) rather than a close (FIN).
        http1_reset: bool,
    },
}

/// A path pattern, matched against the whole path (anchored at both ends).
#[derive(Debug, Clone)]
pub struct PathRegex(regex::Regex);

impl PartialEq for PathRegex {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl Eq for PathRegex {}

impl PathRegex {
    /// The pattern as given.
    pub fn as_str(&self) -> &str {
        let anchored = self.0.as_str();
        anchored.strip_prefix("^(?:").and_then(|p| p.strip_suffix(")$")).unwrap_or(anchored)
    }
}

/// Which requests a toxic applies to; empty fields match everything, and a request must match
/// every field given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Matcher {
    /// The path starts with this (a plain prefix: `/api` matches `/apix` too, as Envoy's does).
    pub path_prefix: String,
    /// The path is exactly this.
    pub path: String,
    /// The whole path matches this regular expression (the `regex` crate's syntax).
    pub path_regex: Option<PathRegex>,
    /// The method, case-insensitive.
    pub method: String,
    /// `name` (present) or `name: value` (equal, value case-sensitive).
    pub header: String,
    /// Each of these headers is present with exactly this value.
    pub headers: Vec<(String, String)>,
    /// Header values compare ignoring ASCII case (names always do).
    pub ignore_case: bool,
    /// gRPC service (`package.Service`), from the path `/package.Service/Method`.
    pub grpc_service: String,
    /// gRPC method name.
    pub grpc_method: String,
}

/// A request-level toxic's type and attributes.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestToxic {
    /// What it does.
    pub action: Action,
    /// Probability per matching request, in [0, 1].
    pub rate: f64,
    /// Which requests.
    pub matcher: Matcher,
}

fn text(type_name: &str, attributes: &Map<String, Value>, name: &str) -> Result<String, ApiError> {
    match attributes.get(name) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(ApiError::bad_request(format!(
            "bad request body: attribute `{name}` of {type_name} must be a string, got {other}"
        ))),
    }
}

fn flag(type_name: &str, attributes: &Map<String, Value>, name: &str) -> Result<bool, ApiError> {
    match attributes.get(name) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(ApiError::bad_request(format!(
            "bad request body: attribute `{name}` of {type_name} must be true or false, got {other}"
        ))),
    }
}

/// The `headers` matcher: an object of header names and the exact values they must have.
fn headers(type_name: &str, attributes: &Map<String, Value>) -> Result<Vec<(String, String)>, ApiError> {
    let bad = |what: String| {
        ApiError::bad_request(format!(
            "bad request body: attribute `headers` of {type_name} must be an object of header names and string \
             values, like {{\"x-tenant\": \"blue\"}}: {what}"
        ))
    };
    match attributes.get("headers") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(name, value)| {
                http::HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| bad(format!("`{name}` is not a header name")))?;
                match value {
                    Value::String(value) => Ok((name.to_ascii_lowercase(), value.clone())),
                    other => Err(bad(format!("the value of `{name}` is {other}"))),
                }
            })
            .collect(),
        Some(other) => Err(bad(format!("got {other}"))),
    }
}

fn integer(
    type_name: &str,
    attributes: &Map<String, Value>,
    name: &str,
    default: u64,
    max: u64,
) -> Result<u64, ApiError> {
    match attributes.get(name) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Number(n)) if n.as_u64().is_some_and(|v| v <= max) => Ok(n.as_u64().unwrap_or(default)),
        Some(other) => Err(ApiError::bad_request(format!(
            "bad request body: attribute `{name}` of {type_name} must be an integer from 0 to {max}, got {other}"
        ))),
    }
}

impl RequestToxic {
    /// Builds one from its type and (lower-cased) attributes; `None` if the type is not a
    /// request-level one.
    /// The attribute names of request-level type `type_name`, if it is one.
    pub fn attribute_names(type_name: &str) -> Option<&'static [&'static str]> {
        macro_rules! with_matchers {
            ($($own:literal),*) => {
                &[$($own,)* "rate", "path_prefix", "path", "path_regex", "method", "header", "headers",
                  "ignore_case", "grpc_service", "grpc_method"]
            };
        }
        Some(match type_name {
            "http_error" => with_matchers!("status", "body"),
            "grpc_error" => with_matchers!("code", "message"),
            "http_delay" => with_matchers!("latency", "jitter"),
            "http_abort" => with_matchers!("error_code", "http1"),
            _ => return None,
        })
    }

    /// Builds a request-level toxic of `type_name` from its attributes; `None` if the type is
    /// not a request-level one.
    pub fn from_attributes(type_name: &str, attributes: &Map<String, Value>) -> Option<Result<Self, ApiError>> {
        if !TYPES.contains(&type_name) {
            return None;
        }
        Some(Self::parse(type_name, attributes))
    }

    fn parse(type_name: &str, attributes: &Map<String, Value>) -> Result<Self, ApiError> {
        let rate = match attributes.get("rate") {
            None | Some(Value::Null) => 1.0,
            Some(value) => value.as_f64().filter(|r| (0.0..=1.0).contains(r)).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "bad request body: attribute `rate` of {type_name} must be a number between 0 and 1, got {value}"
                ))
            })?,
        };
        let action = match type_name {
            "http_error" => {
                let status = integer(type_name, attributes, "status", 503, 599)?;
                if status < 100 {
                    return Err(ApiError::bad_request(format!(
                        "bad request body: attribute `status` of http_error must be an HTTP status from 100 to 599, got {status}"
                    )));
                }
                Action::Error {
                    status: u16::try_from(status).unwrap_or(503),
                    body: text(type_name, attributes, "body")?,
                }
            }
            "grpc_error" => Action::Grpc {
                code: u8::try_from(integer(type_name, attributes, "code", 14, 16)?).unwrap_or(14),
                message: text(type_name, attributes, "message")?,
            },
            "http_delay" => Action::Delay {
                latency: integer(type_name, attributes, "latency", 0, MAX_MILLIS)?,
                jitter: integer(type_name, attributes, "jitter", 0, MAX_MILLIS)?,
            },
            _ => {
                let code = text(type_name, attributes, "error_code")?;
                let code = if code.is_empty() { Some(ResetCode::InternalError) } else { ResetCode::parse(&code) };
                let http1_reset = match text(type_name, attributes, "http1")?.as_str() {
                    "" | "close" => false,
                    "reset" => true,
                    other => {
                        return Err(ApiError::bad_request(format!(
                            "bad request body: attribute `http1` of http_abort must be `close` or `reset`, got `{other}`"
                        )));
                    }
                };
                Action::Abort {
                    code: code.ok_or_else(|| {
                        ApiError::bad_request(
                            "bad request body: attribute `error_code` of http_abort must be one of internal_error, \
                             refused_stream, cancel",
                        )
                    })?,
                    http1_reset,
                }
            }
        };
        let path_regex = match text(type_name, attributes, "path_regex")?.as_str() {
            "" => None,
            pattern => Some(PathRegex(regex::Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
                ApiError::bad_request(format!(
                    "bad request body: attribute `path_regex` of {type_name} is not a regular expression: {e}"
                ))
            })?)),
        };
        let matcher = Matcher {
            path_prefix: text(type_name, attributes, "path_prefix")?,
            path: text(type_name, attributes, "path")?,
            path_regex,
            method: text(type_name, attributes, "method")?,
            header: text(type_name, attributes, "header")?,
            headers: headers(type_name, attributes)?,
            ignore_case: flag(type_name, attributes, "ignore_case")?,
            grpc_service: text(type_name, attributes, "grpc_service")?,
            grpc_method: text(type_name, attributes, "grpc_method")?,
        };
        Ok(Self { action, rate, matcher })
    }

    /// The type name on the wire.
    pub fn type_name(&self) -> &'static str {
        match self.action {
            Action::Error { .. } => "http_error",
            Action::Grpc { .. } => "grpc_error",
            Action::Delay { .. } => "http_delay",
            Action::Abort { .. } => "http_abort",
        }
    }

    /// Every attribute of the type, as the API returns it.
    pub fn attributes(&self) -> Map<String, Value> {
        let mut map = Map::new();
        match &self.action {
            Action::Error { status, body } => {
                map.insert("status".into(), Value::from(*status));
                map.insert("body".into(), Value::from(body.clone()));
            }
            Action::Grpc { code, message } => {
                map.insert("code".into(), Value::from(*code));
                map.insert("message".into(), Value::from(message.clone()));
            }
            Action::Delay { latency, jitter } => {
                map.insert("latency".into(), Value::from(*latency));
                map.insert("jitter".into(), Value::from(*jitter));
            }
            Action::Abort { code, http1_reset } => {
                map.insert("error_code".into(), Value::from(code.as_str()));
                map.insert("http1".into(), Value::from(if *http1_reset { "reset" } else { "close" }));
            }
        }
        map.insert("rate".into(), Value::from(self.rate));
        let m = &self.matcher;
        let regex = m.path_regex.as_ref().map(|r| r.as_str().to_owned()).unwrap_or_default();
        for (name, value) in [
            ("path_prefix", &m.path_prefix),
            ("path", &m.path),
            ("path_regex", &regex),
            ("method", &m.method),
            ("header", &m.header),
            ("grpc_service", &m.grpc_service),
            ("grpc_method", &m.grpc_method),
        ] {
            map.insert(name.into(), Value::from(value.clone()));
        }
        let headers: Map<String, Value> = m.headers.iter().map(|(n, v)| (n.clone(), Value::from(v.clone()))).collect();
        map.insert("headers".into(), Value::Object(headers));
        map.insert("ignore_case".into(), Value::from(m.ignore_case));
        map
    }

    /// The delay of a `http_delay` drawn with `unit` in [0, 1).
    pub fn delay(latency: u64, jitter: u64, unit: f64) -> Duration {
        #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let offset = ((unit * 2.0 - 1.0) * jitter as f64).round() as i64;
        Duration::from_millis(latency.saturating_add_signed(offset))
    }
}

impl Matcher {
    fn same(&self, found: &http::HeaderValue, wanted: &str) -> bool {
        if self.ignore_case {
            found.as_bytes().eq_ignore_ascii_case(wanted.as_bytes())
        } else {
            found.as_bytes() == wanted.as_bytes()
        }
    }

    /// Whether a request with this method, path and headers matches.
    pub fn matches(&self, method: &http::Method, path: &str, headers: &http::HeaderMap) -> bool {
        if (!self.path_prefix.is_empty() && !path.starts_with(&self.path_prefix))
            || (!self.path.is_empty() && path != self.path)
            || self.path_regex.as_ref().is_some_and(|r| !r.0.is_match(path))
        {
            return false;
        }
        if !self.method.is_empty() && !method.as_str().eq_ignore_ascii_case(&self.method) {
            return false;
        }
        if !self.header.is_empty() {
            let (name, value) = match self.header.split_once(':') {
                Some((n, v)) => (n.trim(), Some(v.trim())),
                None => (self.header.trim(), None),
            };
            if !headers.get_all(name).iter().any(|h| value.is_none_or(|v| self.same(h, v))) {
                return false;
            }
        }
        if !self.headers.iter().all(|(name, value)| headers.get_all(name.as_str()).iter().any(|h| self.same(h, value)))
        {
            return false;
        }
        if !self.grpc_service.is_empty() || !self.grpc_method.is_empty() {
            let mut parts = path.trim_start_matches('/').splitn(2, '/');
            let (service, rpc) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
            if (!self.grpc_service.is_empty() && service != self.grpc_service)
                || (!self.grpc_method.is_empty() && rpc != self.grpc_method)
            {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(type_name: &str, attributes: &Value) -> Result<RequestToxic, ApiError> {
        RequestToxic::from_attributes(type_name, attributes.as_object().unwrap()).unwrap()
    }

    #[test]
    fn defaults_and_round_trip() {
        let toxic = parse("http_error", &json!({})).unwrap();
        assert_eq!(toxic.action, Action::Error { status: 503, body: String::new() });
        assert!((toxic.rate - 1.0).abs() < f64::EPSILON);
        let again = parse("http_error", &Value::Object(toxic.attributes())).unwrap();
        assert_eq!(again, toxic);
        let grpc = parse("grpc_error", &json!({"rate": 0.3, "grpc_service": "shop.Wallet"})).unwrap();
        assert_eq!(grpc.action, Action::Grpc { code: 14, message: String::new() });
        assert!(RequestToxic::from_attributes("latency", &Map::new()).is_none());
    }

    #[test]
    fn bad_attributes_are_refused() {
        let err = |t: &str, a: Value| parse(t, &a).unwrap_err().message;
        assert_eq!(
            err("http_error", json!({"rate": 1.5})),
            "bad request body: attribute `rate` of http_error must be a number between 0 and 1, got 1.5"
        );
        assert_eq!(
            err("http_error", json!({"status": 42})),
            "bad request body: attribute `status` of http_error must be an HTTP status from 100 to 599, got 42"
        );
        assert_eq!(
            err("grpc_error", json!({"code": 17})),
            "bad request body: attribute `code` of grpc_error must be an integer from 0 to 16, got 17"
        );
        assert_eq!(
            err("http_abort", json!({"method": 3})),
            "bad request body: attribute `method` of http_abort must be a string, got 3"
        );
    }

    #[test]
    fn matchers() {
        let mut headers = http::HeaderMap::new();
        headers.insert("x-tenant", "blue".parse().unwrap());
        let m = |v: Value| parse("http_abort", &v).unwrap().matcher;
        let get = http::Method::GET;
        assert!(m(json!({})).matches(&get, "/anything", &headers));
        assert!(m(json!({"path_prefix": "/pay"})).matches(&get, "/pay/1", &headers));
        assert!(!m(json!({"path_prefix": "/pay"})).matches(&get, "/health", &headers));
        assert!(m(json!({"method": "get"})).matches(&get, "/", &headers));
        assert!(!m(json!({"method": "POST"})).matches(&get, "/", &headers));
        assert!(m(json!({"header": "x-tenant"})).matches(&get, "/", &headers));
        assert!(m(json!({"header": "x-tenant: blue"})).matches(&get, "/", &headers));
        assert!(!m(json!({"header": "x-tenant: red"})).matches(&get, "/", &headers));
        let grpc = m(json!({"grpc_service": "shop.Wallet", "grpc_method": "Pay"}));
        assert!(grpc.matches(&http::Method::POST, "/shop.Wallet/Pay", &headers));
        assert!(!grpc.matches(&http::Method::POST, "/shop.Wallet/Refund", &headers));
        assert!(!grpc.matches(&http::Method::POST, "/shop.Ledger/Pay", &headers));
    }

    #[test]
    fn path_and_header_matchers_round_trip_and_refuse_bad_input() {
        let toxic = parse(
            "http_abort",
            &json!({"path": "/pay", "path_regex": "/v[0-9]+/pay", "headers": {"X-Tenant": "blue"}, "ignore_case": true,
                    "http1": "reset"}),
        )
        .unwrap();
        assert_eq!(toxic.matcher.headers, [("x-tenant".to_owned(), "blue".to_owned())], "names lower-cased");
        let attributes = toxic.attributes();
        assert_eq!(attributes["path_regex"], "/v[0-9]+/pay", "shown as given, not as anchored");
        assert_eq!(attributes["http1"], "reset");
        assert_eq!(parse("http_abort", &Value::Object(attributes)).unwrap(), toxic);
        let err = |a: Value| parse("http_error", &a).unwrap_err().message;
        assert!(err(json!({"headers": ["x"]})).contains("must be an object of header names"));
        assert!(err(json!({"headers": {"x": 1}})).contains("the value of `x` is 1"));
        assert!(err(json!({"headers": {"bad name": "v"}})).contains("`bad name` is not a header name"));
        assert!(err(json!({"ignore_case": "yes"})).contains("must be true or false"));
        assert!(err(json!({"path_regex": "("})).contains("is not a regular expression"));
    }

    #[test]
    fn delays_spread_around_the_latency() {
        assert_eq!(RequestToxic::delay(100, 20, 0.0), Duration::from_millis(80));
        assert_eq!(RequestToxic::delay(100, 20, 0.5), Duration::from_millis(100));
        assert_eq!(RequestToxic::delay(10, 20, 0.0), Duration::ZERO);
    }
}
