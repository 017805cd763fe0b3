//! The toxic model: Toxiproxy's JSON shape, validation, and partial updates.
//!
//! A [`Toxic`] is what the admin API stores and returns. Its `attributes` are typed per kind
//! ([`ToxicKind`]) so a bad value is rejected when it arrives, never parsed later.

use std::fmt;

use serde::Serialize;
use serde_json::{Map, Value};

use super::error::ApiError;
use super::http::request::RequestToxic;

/// The longest duration any toxic attribute may ask for, in milliseconds (one day).
///
/// Larger values are almost certainly mistakes, and an unbounded one would overflow a timer.
pub const MAX_MILLIS: u64 = 24 * 60 * 60 * 1000;

/// Which way the bytes a toxic acts on flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Client → server.
    Upstream,
    /// Server → client (Toxiproxy's default).
    Downstream,
}

impl Stream {
    /// Parses a stream name case-insensitively, as Toxiproxy does.
    pub fn parse(text: &str) -> Result<Self, ApiError> {
        match text.to_ascii_lowercase().as_str() {
            "upstream" => Ok(Self::Upstream),
            "downstream" => Ok(Self::Downstream),
            _ => Err(ApiError::bad_request("stream was invalid, can be either upstream or downstream")),
        }
    }

    /// The lower-case name used on the wire and in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Upstream => "upstream",
            Self::Downstream => "downstream",
        }
    }
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A toxic's type with its attributes, all validated.
#[derive(Debug, Clone, PartialEq)]
pub enum ToxicKind {
    /// A request-level toxic of an `http` proxy (a firedrill extension).
    Request(Box<RequestToxic>),
    /// Passes data unchanged (useful to measure the toxic pipeline's cost).
    Noop,
    /// Delays each chunk by `latency` ± `jitter` milliseconds from when it arrived.
    Latency {
        /// Milliseconds added to every chunk.
        latency: u64,
        /// Up to this many milliseconds more or less, drawn per chunk.
        jitter: u64,
    },
    /// Paces data to `rate` KB/s; 0 stalls all data (firedrill's fix of a Toxiproxy hang).
    Bandwidth {
        /// Kilobytes (1024 bytes) per second.
        rate: u64,
    },
    /// Data passes; the close is delayed by `delay` milliseconds.
    SlowClose {
        /// Milliseconds to hold the close back.
        delay: u64,
    },
    /// Drops data; closes the connection `timeout` ms after the toxic started (0 = never).
    Timeout {
        /// Milliseconds from when the toxic started on the connection.
        timeout: u64,
    },
    /// On the first data, waits `timeout` ms and resets the connection (TCP RST).
    ResetPeer {
        /// Milliseconds between the first data and the reset.
        timeout: u64,
    },
    /// Splits data into pieces of `average_size` ± `size_variation` bytes, `delay` µs apart.
    Slicer {
        /// Mean piece size in bytes (at least 1).
        average_size: u64,
        /// Up to this many bytes more or less per piece (less than `average_size`).
        size_variation: u64,
        /// Microseconds between pieces.
        delay: u64,
    },
    /// Forwards at most `bytes` bytes on the connection, then closes it.
    LimitData {
        /// The byte budget of the connection.
        bytes: u64,
    },
}

/// The attribute names of each type, in the order Toxiproxy lists them.
fn attribute_names(type_name: &str) -> Option<&'static [&'static str]> {
    Some(match type_name {
        "noop" => &[],
        "latency" => &["latency", "jitter"],
        "bandwidth" => &["rate"],
        "slow_close" => &["delay"],
        "timeout" | "reset_peer" => &["timeout"],
        "slicer" => &["average_size", "size_variation", "delay"],
        "limit_data" => &["bytes"],
        _ => return None,
    })
}

/// The attribute names a toxic of type `type_name` takes (byte-level or request-level); `None`
/// for an unknown type.
pub fn known_attributes(type_name: &str) -> Option<&'static [&'static str]> {
    attribute_names(type_name).or_else(|| RequestToxic::attribute_names(type_name))
}

impl ToxicKind {
    /// Whether this acts on HTTP requests (an `http` proxy's engine) rather than on bytes.
    pub fn is_request(&self) -> bool {
        matches!(self, Self::Request(_))
    }

    /// The type name used on the wire (`"latency"`, …).
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Request(request) => request.type_name(),
            Self::Noop => "noop",
            Self::Latency { .. } => "latency",
            Self::Bandwidth { .. } => "bandwidth",
            Self::SlowClose { .. } => "slow_close",
            Self::Timeout { .. } => "timeout",
            Self::ResetPeer { .. } => "reset_peer",
            Self::Slicer { .. } => "slicer",
            Self::LimitData { .. } => "limit_data",
        }
    }

    /// Builds a kind from its type name and a (lower-cased) attribute map; missing attributes
    /// are 0, as in Toxiproxy. Unknown ones are refused (Toxiproxy ignores them): a typo such as
    /// `path_prefx` must never widen a fault to every request.
    pub fn from_attributes(type_name: &str, attributes: &Map<String, Value>) -> Result<Self, ApiError> {
        let names = known_attributes(type_name).ok_or_else(|| ApiError::bad_request("invalid toxic type"))?;
        if let Some(unknown) = attributes.keys().find(|key| !names.contains(&key.as_str())) {
            let valid = if names.is_empty() { "none".to_owned() } else { names.join(", ") };
            return Err(ApiError::bad_request(format!(
                "bad request body: unknown attribute `{unknown}` for a {type_name} toxic (valid: {valid})"
            )));
        }
        if let Some(request) = RequestToxic::from_attributes(type_name, attributes) {
            return request.map(|r| Self::Request(Box::new(r)));
        }
        let mut values = [0_u64; 3];
        for (slot, name) in values.iter_mut().zip(names) {
            *slot = attribute(type_name, name, attributes.get(*name))?;
        }
        let [a, b, c] = values;
        let millis = |name: &str, value: u64| {
            if value > MAX_MILLIS {
                Err(ApiError::bad_request(format!(
                    "bad request body: attribute `{name}` of {type_name} must be at most {MAX_MILLIS} ms, got {value}"
                )))
            } else {
                Ok(value)
            }
        };
        Ok(match type_name {
            "noop" => Self::Noop,
            "latency" => Self::Latency { latency: millis("latency", a)?, jitter: millis("jitter", b)? },
            "bandwidth" => Self::Bandwidth { rate: a },
            "slow_close" => Self::SlowClose { delay: millis("delay", a)? },
            "timeout" => Self::Timeout { timeout: millis("timeout", a)? },
            "reset_peer" => Self::ResetPeer { timeout: millis("timeout", a)? },
            "slicer" => {
                if a == 0 {
                    return Err(ApiError::bad_request(
                        "bad request body: attribute `average_size` of slicer must be at least 1",
                    ));
                }
                if b >= a {
                    return Err(ApiError::bad_request(format!(
                        "bad request body: attribute `size_variation` of slicer must be less than `average_size` ({a}), got {b}"
                    )));
                }
                if c > MAX_MILLIS * 1000 {
                    return Err(ApiError::bad_request(format!(
                        "bad request body: attribute `delay` of slicer must be at most {} µs, got {c}",
                        MAX_MILLIS * 1000
                    )));
                }
                Self::Slicer { average_size: a, size_variation: b, delay: c }
            }
            "limit_data" => Self::LimitData { bytes: a },
            _ => return Err(ApiError::bad_request("invalid toxic type")),
        })
    }

    /// The attributes as Toxiproxy returns them: every field of the type, as integers.
    pub fn attributes(&self) -> Map<String, Value> {
        let values: Vec<u64> = match *self {
            Self::Request(ref request) => return request.attributes(),
            Self::Noop => vec![],
            Self::Latency { latency, jitter } => vec![latency, jitter],
            Self::Bandwidth { rate } => vec![rate],
            Self::SlowClose { delay } => vec![delay],
            Self::Timeout { timeout } | Self::ResetPeer { timeout } => vec![timeout],
            Self::Slicer { average_size, size_variation, delay } => vec![average_size, size_variation, delay],
            Self::LimitData { bytes } => vec![bytes],
        };
        let names = attribute_names(self.type_name()).unwrap_or(&[]);
        names.iter().zip(values).map(|(name, value)| ((*name).to_owned(), Value::from(value))).collect()
    }
}

/// Reads one attribute: absent or null is 0; anything but a non-negative integer is an error.
fn attribute(type_name: &str, name: &str, value: Option<&Value>) -> Result<u64, ApiError> {
    match value {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(number)) => {
            if let Some(n) = number.as_u64() {
                Ok(n)
            } else if number.as_i64().is_some() || number.as_f64().is_some_and(|f| f < 0.0) {
                Err(ApiError::bad_request(format!(
                    "bad request body: attribute `{name}` of {type_name} must not be negative, got {number}"
                )))
            } else {
                Err(ApiError::bad_request(format!(
                    "bad request body: attribute `{name}` of {type_name} must be an integer, got {number}"
                )))
            }
        }
        Some(other) => Err(ApiError::bad_request(format!(
            "bad request body: attribute `{name}` of {type_name} must be an integer, got {other}"
        ))),
    }
}

/// A toxic as stored on a proxy and returned by the API.
#[derive(Debug, Clone, PartialEq)]
pub struct Toxic {
    /// Unique within the proxy, across both streams.
    pub name: String,
    /// Which bytes it acts on.
    pub stream: Stream,
    /// Probability, drawn per connection, that the toxic applies.
    pub toxicity: f64,
    /// Type and attributes.
    pub kind: ToxicKind,
}

/// Checks a toxicity value: firedrill rejects values outside [0, 1] (Toxiproxy does not).
fn toxicity(value: &Value) -> Result<f64, ApiError> {
    match value.as_f64() {
        Some(t) if (0.0..=1.0).contains(&t) => Ok(t),
        _ => Err(ApiError::bad_request(format!(
            "bad request body: toxicity must be a number between 0 and 1, got {value}"
        ))),
    }
}

fn object(body: &Value) -> Result<&Map<String, Value>, ApiError> {
    body.as_object()
        .ok_or_else(|| ApiError::bad_request(format!("bad request body: expected a JSON object, got {body}")))
}

fn attributes_of(body: &Map<String, Value>) -> Result<Map<String, Value>, ApiError> {
    match body.get("attributes") {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(map)) => Ok(map.clone()),
        Some(other) => {
            Err(ApiError::bad_request(format!("bad request body: attributes must be an object, got {other}")))
        }
    }
}

fn string_field<'a>(body: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(ApiError::bad_request(format!("bad request body: `{key}` must be a string, got {other}"))),
    }
}

impl Toxic {
    /// Builds a new toxic from a create request whose keys are already lower-cased.
    pub fn from_create(body: &Value) -> Result<Self, ApiError> {
        let body = object(body)?;
        let type_name = string_field(body, "type")?.unwrap_or_default();
        let stream = match string_field(body, "stream")?.or(string_field(body, "direction")?) {
            None => Stream::Downstream,
            Some(text) => Stream::parse(text)?,
        };
        let kind = ToxicKind::from_attributes(type_name, &attributes_of(body)?)?;
        let toxicity = body.get("toxicity").filter(|v| !v.is_null()).map_or(Ok(1.0), toxicity)?;
        let name = match string_field(body, "name")? {
            Some(name) if !name.is_empty() => name.to_owned(),
            _ => format!("{}_{}", kind.type_name(), stream),
        };
        Ok(Self { name, stream, toxicity, kind })
    }

    /// Applies an update request: attributes merge over the current values, `toxicity` keeps its
    /// value if absent; `name`, `type` and `stream` are ignored.
    pub fn updated(&self, body: &Value) -> Result<Self, ApiError> {
        let body = object(body)?;
        let mut attributes = self.kind.attributes();
        attributes.extend(attributes_of(body)?);
        let kind = ToxicKind::from_attributes(self.kind.type_name(), &attributes)?;
        let toxicity = body.get("toxicity").filter(|v| !v.is_null()).map_or(Ok(self.toxicity), toxicity)?;
        Ok(Self { toxicity, kind, ..self.clone() })
    }
}

impl Serialize for Toxic {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("Toxic", 5)?;
        s.serialize_field("attributes", &self.kind.attributes())?;
        s.serialize_field("name", &self.name)?;
        s.serialize_field("type", self.kind.type_name())?;
        s.serialize_field("stream", &self.stream)?;
        s.serialize_field("toxicity", &self.toxicity)?;
        s.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_follow_toxiproxy() {
        let toxic = Toxic::from_create(&json!({"type": "latency", "attributes": {"latency": 300}})).unwrap();
        assert_eq!(toxic.name, "latency_downstream");
        assert_eq!(toxic.stream, Stream::Downstream);
        assert!((toxic.toxicity - 1.0).abs() < f64::EPSILON);
        assert_eq!(toxic.kind, ToxicKind::Latency { latency: 300, jitter: 0 });
        assert_eq!(
            serde_json::to_value(&toxic).unwrap(),
            json!({"attributes": {"latency": 300, "jitter": 0}, "name": "latency_downstream",
                   "type": "latency", "stream": "downstream", "toxicity": 1.0})
        );
    }

    #[test]
    fn direction_is_an_alias_of_stream() {
        let toxic = Toxic::from_create(&json!({"type": "noop", "direction": "UpStream"})).unwrap();
        assert_eq!(toxic.stream, Stream::Upstream);
        assert_eq!(toxic.name, "noop_upstream");
    }

    #[test]
    fn rejects_bad_values_with_toxiproxy_strings() {
        let cases = [
            (json!({"type": "nope"}), "invalid toxic type"),
            (json!({}), "invalid toxic type"),
            (json!({"type": "noop", "stream": ""}), "stream was invalid, can be either upstream or downstream"),
            (
                json!({"type": "bandwidth", "attributes": {"rate": -1}}),
                "bad request body: attribute `rate` of bandwidth must not be negative, got -1",
            ),
            (
                json!({"type": "slicer", "attributes": {"average_size": 0}}),
                "bad request body: attribute `average_size` of slicer must be at least 1",
            ),
            (
                json!({"type": "slicer", "attributes": {"average_size": 10, "size_variation": 10}}),
                "bad request body: attribute `size_variation` of slicer must be less than `average_size` (10), got 10",
            ),
            (
                json!({"type": "noop", "toxicity": 1.5}),
                "bad request body: toxicity must be a number between 0 and 1, got 1.5",
            ),
            (
                json!({"type": "latency", "attributes": {"latency": 1.5}}),
                "bad request body: attribute `latency` of latency must be an integer, got 1.5",
            ),
            (
                json!({"type": "latency", "attributes": {"latency": MAX_MILLIS + 1}}),
                "bad request body: attribute `latency` of latency must be at most 86400000 ms, got 86400001",
            ),
        ];
        for (body, message) in cases {
            let err = Toxic::from_create(&body).unwrap_err();
            assert_eq!(err.message, message, "for {body}");
            assert_eq!(err.status.as_u16(), 400);
        }
    }

    #[test]
    fn update_merges_attributes_and_keeps_toxicity() {
        let toxic = Toxic::from_create(
            &json!({"type": "latency", "toxicity": 0.5, "attributes": {"latency": 300, "jitter": 10}}),
        )
        .unwrap();
        let updated = toxic.updated(&json!({"attributes": {"jitter": 20}, "type": "timeout", "name": "x"})).unwrap();
        assert_eq!(updated.kind, ToxicKind::Latency { latency: 300, jitter: 20 });
        assert!((updated.toxicity - 0.5).abs() < f64::EPSILON);
        assert_eq!(updated.name, "latency_downstream");
    }
}
