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
    /// Resets the stream (HTTP/2, with `error_code`) or closes the connection (HTTP/1.1).
    Abort {
        /// The HTTP/2 reset's error code.
        code: ResetCode,
    },
}

/// Which requests a toxic applies to; empty fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Matcher {
    /// The path starts with this.
    pub path_prefix: String,
    /// The method, case-insensitive.
    pub method: String,
    /// `name` (present) or `name: value` (equal, value case-sensitive).
    pub header: String,
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
        const MATCH: [&str; 6] = ["rate", "path_prefix", "method", "header", "grpc_service", "grpc_method"];
        Some(match type_name {
            "http_error" => &["status", "body", MATCH[0], MATCH[1], MATCH[2], MATCH[3], MATCH[4], MATCH[5]],
            "grpc_error" => &["code", "message", MATCH[0], MATCH[1], MATCH[2], MATCH[3], MATCH[4], MATCH[5]],
            "http_delay" => &["latency", "jitter", MATCH[0], MATCH[1], MATCH[2], MATCH[3], MATCH[4], MATCH[5]],
            "http_abort" => &["error_code", MATCH[0], MATCH[1], MATCH[2], MATCH[3], MATCH[4], MATCH[5]],
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
                Action::Abort {
                    code: code.ok_or_else(|| {
                        ApiError::bad_request(
                            "bad request body: attribute `error_code` of http_abort must be one of internal_error, \
                             refused_stream, cancel",
                        )
                    })?,
                }
            }
        };
        let matcher = Matcher {
            path_prefix: text(type_name, attributes, "path_prefix")?,
            method: text(type_name, attributes, "method")?,
            header: text(type_name, attributes, "header")?,
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
            Action::Abort { code } => {
                map.insert("error_code".into(), Value::from(code.as_str()));
            }
        }
        map.insert("rate".into(), Value::from(self.rate));
        let m = &self.matcher;
        for (name, value) in [
            ("path_prefix", &m.path_prefix),
            ("method", &m.method),
            ("header", &m.header),
            ("grpc_service", &m.grpc_service),
            ("grpc_method", &m.grpc_method),
        ] {
            map.insert(name.into(), Value::from(value.clone()));
        }
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
    /// Whether a request with this method, path and headers matches.
    pub fn matches(&self, method: &http::Method, path: &str, headers: &http::HeaderMap) -> bool {
        if !self.path_prefix.is_empty() && !path.starts_with(&self.path_prefix) {
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
            let found = headers.get_all(name).iter().any(|h| value.is_none_or(|v| h.as_bytes() == v.as_bytes()));
            if !found {
                return false;
            }
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
    fn delays_spread_around_the_latency() {
        assert_eq!(RequestToxic::delay(100, 20, 0.0), Duration::from_millis(80));
        assert_eq!(RequestToxic::delay(100, 20, 0.5), Duration::from_millis(100));
        assert_eq!(RequestToxic::delay(10, 20, 0.0), Duration::ZERO);
    }
}
