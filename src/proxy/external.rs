//! What a toxic looks like to an external Toxiproxy driven through the `toxiproxy_rust` client
//! crate: which types and attribute ranges it can create and the name it gives each toxic, so a
//! drill is checked against those limits when it is loaded, not halfway through a run.

use super::toxic::{Toxic, ToxicKind};

/// The toxic types `toxiproxy_rust` can create.
pub const EXTERNAL_TOXIC_TYPES: [&str; 6] = ["latency", "bandwidth", "slow_close", "timeout", "slicer", "limit_data"];

/// The attributes `toxiproxy_rust` sends for `kind`, or why it cannot.
pub fn attributes(kind: &ToxicKind) -> Result<Vec<(&'static str, u32)>, String> {
    let pairs: Vec<(&'static str, u64)> = match *kind {
        ToxicKind::Latency { latency, jitter } => vec![("latency", latency), ("jitter", jitter)],
        ToxicKind::Bandwidth { rate } => vec![("rate", rate)],
        ToxicKind::SlowClose { delay } => vec![("delay", delay)],
        ToxicKind::Timeout { timeout } => vec![("timeout", timeout)],
        ToxicKind::Slicer { average_size, size_variation, delay } => {
            vec![("average_size", average_size), ("size_variation", size_variation), ("delay", delay)]
        }
        ToxicKind::LimitData { bytes } => vec![("bytes", bytes)],
        ToxicKind::Noop | ToxicKind::ResetPeer { .. } | ToxicKind::Request(_) => {
            return Err(format!(
                "the external Toxiproxy client (toxiproxy_rust) cannot create a `{}` toxic; it can create {}",
                kind.type_name(),
                EXTERNAL_TOXIC_TYPES.join(", ")
            ));
        }
    };
    pairs
        .into_iter()
        .map(|(name, value)| {
            u32::try_from(value).map(|v| (name, v)).map_err(|_| {
                format!("{name} = {value} is too large for the external Toxiproxy client (at most {})", u32::MAX)
            })
        })
        .collect()
}

/// Checks that the external client can put `toxic` on a proxy: its type and attribute range.
pub fn check_external(toxic: &Toxic) -> Result<(), String> {
    attributes(&toxic.kind).map(|_| ())
}

/// The name `toxiproxy_rust` gives a toxic: `<type>_<stream>`.
pub fn external_name(toxic: &Toxic) -> String {
    format!("{}_{}", toxic.kind.type_name(), toxic.stream.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::toxic::Stream;

    fn toxic(kind: ToxicKind) -> Toxic {
        Toxic { name: "t".into(), stream: Stream::Upstream, toxicity: 1.0, kind }
    }

    #[test]
    fn the_external_client_names_toxics_by_type_and_stream() {
        assert_eq!(external_name(&toxic(ToxicKind::Bandwidth { rate: 5 })), "bandwidth_upstream");
    }

    #[test]
    fn what_the_external_client_cannot_send_is_refused() {
        assert!(check_external(&toxic(ToxicKind::Latency { latency: 3000, jitter: 300 })).is_ok());
        let reset = check_external(&toxic(ToxicKind::ResetPeer { timeout: 0 })).unwrap_err();
        assert!(reset.contains("cannot create a `reset_peer` toxic"), "{reset}");
        assert!(check_external(&toxic(ToxicKind::Noop)).is_err());
        let big = check_external(&toxic(ToxicKind::LimitData { bytes: 1 << 33 })).unwrap_err();
        assert_eq!(big, "bytes = 8589934592 is too large for the external Toxiproxy client (at most 4294967295)");
        assert_eq!(
            attributes(&ToxicKind::Slicer { average_size: 64, size_variation: 8, delay: 10 }).unwrap(),
            [("average_size", 64), ("size_variation", 8), ("delay", 10)]
        );
    }
}
