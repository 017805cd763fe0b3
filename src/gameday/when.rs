//! When a game day takes place: a local date and time in an IANA time zone, and optionally a
//! recurrence with RFC 5545 RRULE semantics (the `rrule` crate). Pure: every answer is a
//! function of the plan and a `now` passed in, so tests need no clock.

use chrono::{NaiveDateTime, Offset, TimeZone};
use chrono_tz::{OffsetComponents, OffsetName, Tz};
use rrule::{Frequency, RRule, RRuleSet, Unvalidated};
use toml::Spanned;

use crate::located::Errors;

/// A plan's schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct When {
    /// The first occurrence, local time in `zone`.
    pub start: NaiveDateTime,
    /// The IANA time zone the times are in (daylight saving included).
    pub zone: Tz,
    /// The recurrence (`FREQ=WEEKLY;INTERVAL=2;BYDAY=TH`), as written without `RRULE:`.
    pub repeat: Option<String>,
    set: RRuleSet,
}

/// One occurrence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Occurrence {
    /// When, in ms since the Unix epoch.
    pub at_ms: i64,
    /// The same moment on the plan's wall clock.
    pub local: NaiveDateTime,
    /// The zone's offset from UTC then, in seconds.
    pub offset_secs: i32,
}

/// A change of a zone's offset (daylight saving), for the calendar's `VTIMEZONE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// When, in ms since the Unix epoch.
    pub at_ms: i64,
    /// The local time just before it, on the old offset (how RFC 5545 writes `DTSTART`).
    pub local_before: NaiveDateTime,
    /// The offsets before and after, in seconds east of UTC.
    pub from_secs: i32,
    /// See `from_secs`.
    pub to_secs: i32,
    /// The zone's abbreviation after it (`CEST`).
    pub name: String,
    /// Whether it begins daylight saving time.
    pub daylight: bool,
}

/// The most occurrences looked through for one answer: a daily plan for 100 years.
const SEARCH_LIMIT: usize = 36_600;

impl When {
    /// A schedule (see the fields).
    pub fn new(start: NaiveDateTime, zone: Tz, repeat: Option<&str>) -> Result<Self, String> {
        let Some(dt_start) = zone.from_local_datetime(&start).earliest() else {
            return Err(format!("{start} does not exist in {zone} (the clocks skip it): pick another time"));
        };
        let dt_start = dt_start.with_timezone(&rrule::Tz::Tz(zone));
        let set = match repeat {
            None => RRuleSet::new(dt_start),
            Some(text) => {
                let text = text.trim().trim_start_matches("RRULE:");
                let rule: RRule<Unvalidated> = text.parse().map_err(|e| format!("not an RRULE: {e}"))?;
                if matches!(rule.get_freq(), Frequency::Hourly | Frequency::Minutely | Frequency::Secondly) {
                    return Err("a game day repeats at most daily (FREQ=DAILY, WEEKLY, MONTHLY or YEARLY)".into());
                }
                rule.build(dt_start).map_err(|e| format!("not a valid RRULE: {e}"))?
            }
        };
        Ok(Self { start, zone, repeat: repeat.map(|r| r.trim().trim_start_matches("RRULE:").to_owned()), set })
    }

    /// Up to `limit` occurrences at or after `from_ms`, in order.
    pub fn occurrences_from(&self, from_ms: i64, limit: usize) -> Vec<Occurrence> {
        let dates: Box<dyn Iterator<Item = chrono::DateTime<rrule::Tz>>> = if self.repeat.is_some() {
            Box::new(self.set.into_iter())
        } else {
            Box::new(std::iter::once(*self.set.get_dt_start()))
        };
        dates
            .take(SEARCH_LIMIT)
            .filter(|d| d.timestamp_millis() >= from_ms)
            .take(limit)
            .map(|d| Occurrence {
                at_ms: d.timestamp_millis(),
                local: d.with_timezone(&self.zone).naive_local(),
                offset_secs: d.with_timezone(&self.zone).offset().fix().local_minus_utc(),
            })
            .collect()
    }

    /// The first occurrence at or after `from_ms`.
    pub fn next_from(&self, from_ms: i64) -> Option<Occurrence> {
        self.occurrences_from(from_ms, 1).into_iter().next()
    }

    /// Every occurrence in `[from_ms, to_ms)`, at most `limit`.
    pub fn between(&self, from_ms: i64, to_ms: i64, limit: usize) -> Vec<Occurrence> {
        let mut out = self.occurrences_from(from_ms, limit);
        out.retain(|o| o.at_ms < to_ms);
        out
    }

    /// The last occurrence, if the schedule ends (no recurrence, `COUNT` or `UNTIL`).
    pub fn last(&self) -> Option<Occurrence> {
        if self.repeat.is_none() {
            return self.occurrences_from(i64::MIN, 1).pop();
        }
        let bounded = self.set.get_rrule().iter().all(|r| r.get_count().is_some() || r.get_until().is_some());
        if !bounded {
            return None;
        }
        self.occurrences_from(i64::MIN, SEARCH_LIMIT).last().copied()
    }

    /// The zone's offset changes in the years `from..=to` (none for a zone without daylight saving).
    pub fn transitions(&self, from: i32, to: i32) -> Vec<Transition> {
        let offset_at = |ms: i64| -> (i32, String) {
            let at = self
                .zone
                .timestamp_millis_opt(ms)
                .single()
                .unwrap_or_else(|| self.zone.timestamp_millis_opt(0).unwrap());
            (at.offset().fix().local_minus_utc(), at.offset().abbreviation().unwrap_or_default().to_owned())
        };
        let dst_at = |ms: i64| -> bool {
            self.zone.timestamp_millis_opt(ms).single().is_some_and(|at| !at.offset().dst_offset().is_zero())
        };
        let Some(begin) = chrono::NaiveDate::from_ymd_opt(from, 1, 1) else { return Vec::new() };
        let Some(end) = chrono::NaiveDate::from_ymd_opt(to.saturating_add(1), 1, 1) else { return Vec::new() };
        let hour = 3_600_000_i64;
        let (mut at, stop) = (
            begin.and_hms_opt(0, 0, 0).map_or(0, |d| d.and_utc().timestamp_millis()),
            end.and_hms_opt(0, 0, 0).map_or(0, |d| d.and_utc().timestamp_millis()),
        );
        let mut out = Vec::new();
        let mut current = offset_at(at).0;
        while at < stop {
            let next = at + 6 * hour;
            let (offset, _) = offset_at(next);
            if offset != current {
                // Narrow down to the second: offsets change on whole seconds.
                let (mut low, mut high) = (at, next);
                while high - low > 1000 {
                    let mid = low + (high - low) / 2000 * 1000;
                    if offset_at(mid).0 == current { low = mid } else { high = mid }
                }
                let (to_secs, name) = offset_at(high);
                let local_before = chrono::DateTime::from_timestamp_millis(high + i64::from(current) * 1000)
                    .map(|d| d.naive_utc())
                    .unwrap_or_default();
                out.push(Transition {
                    at_ms: high,
                    local_before,
                    from_secs: current,
                    to_secs,
                    name,
                    daylight: dst_at(high),
                });
                current = offset;
            }
            at = next;
        }
        out
    }
}

/// The `start`, `time_zone` and `repeat` keys of `[gameday]`, checked.
pub(super) fn check(keys: &Keys<'_>, errors: &mut Errors<'_>) -> Option<When> {
    let (start, zone, repeat) = (keys.start, keys.time_zone, keys.repeat);
    let Some(start) = start else {
        if let Some(repeat) = repeat {
            errors.at(&repeat.span(), "`repeat` needs a `start` (the first occurrence)");
        }
        return None;
    };
    let local = parse_local(start.get_ref());
    let Some(local) = local else {
        errors.at(
            &start.span(),
            format!("`{}` is not a local date and time: write it as \"2026-12-03 10:00\"", start.get_ref()),
        );
        return None;
    };
    let Some(zone) = zone else {
        errors.at(&start.span(), "a `start` needs its `time_zone`: an IANA name such as \"Europe/Berlin\" or \"UTC\"");
        return None;
    };
    let Ok(tz) = zone.get_ref().parse::<Tz>() else {
        errors.at(
            &zone.span(),
            format!(
                "`{}` is not an IANA time zone (such as \"Europe/Berlin\", \"America/New_York\", \"UTC\")",
                zone.get_ref()
            ),
        );
        return None;
    };
    match When::new(local, tz, repeat.map(|r| r.get_ref().as_str())) {
        Ok(when) => Some(when),
        Err(message) => {
            let span = match repeat {
                Some(r) if message.contains("RRULE") || message.contains("repeats") => r.span(),
                _ => start.span(),
            };
            errors.at(&span, message);
            None
        }
    }
}

fn parse_local(text: &str) -> Option<NaiveDateTime> {
    ["%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text.trim(), format).ok())
}

/// The schedule's keys of `[gameday]`, for [`check`].
pub(super) struct Keys<'a> {
    pub(super) start: Option<&'a Spanned<String>>,
    pub(super) time_zone: Option<&'a Spanned<String>>,
    pub(super) repeat: Option<&'a Spanned<String>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(text).unwrap().timestamp_millis()
    }

    fn local(text: &str) -> NaiveDateTime {
        parse_local(text).unwrap()
    }

    #[test]
    fn weekly_occurrences_keep_their_local_time_across_daylight_saving() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        let when = When::new(local("2027-03-18 10:00"), berlin, Some("FREQ=WEEKLY;BYDAY=TH")).unwrap();
        let next: Vec<i64> = when.occurrences_from(at("2027-03-01T00:00:00Z"), 3).iter().map(|o| o.at_ms).collect();
        // Summer time begins on Sunday 28 March 2027: 10:00 is 09:00 UTC before, 08:00 after.
        assert_eq!(next, [at("2027-03-18T09:00:00Z"), at("2027-03-25T09:00:00Z"), at("2027-04-01T08:00:00Z")]);
        assert!(
            when.occurrences_from(at("2027-03-01T00:00:00Z"), 3)
                .iter()
                .all(|o| o.local.format("%H:%M").to_string() == "10:00")
        );
        // And back in October (31 October 2027).
        let autumn: Vec<i64> = when.occurrences_from(at("2027-10-22T00:00:00Z"), 2).iter().map(|o| o.at_ms).collect();
        assert_eq!(autumn, [at("2027-10-28T08:00:00Z"), at("2027-11-04T09:00:00Z")]);
    }

    #[test]
    fn every_second_thursday_in_new_york() {
        let new_york: Tz = "America/New_York".parse().unwrap();
        let when =
            When::new(local("2027-03-04 09:30"), new_york, Some("RRULE:FREQ=WEEKLY;INTERVAL=2;BYDAY=TH")).unwrap();
        let next: Vec<i64> = when.occurrences_from(at("2027-03-05T00:00:00Z"), 2).iter().map(|o| o.at_ms).collect();
        // DST begins 14 March 2027 in the US: EST (-5) before, EDT (-4) after.
        assert_eq!(next, [at("2027-03-18T13:30:00Z"), at("2027-04-01T13:30:00Z")]);
        assert_eq!(when.next_from(at("2027-03-04T14:30:00Z")).map(|o| o.at_ms), Some(at("2027-03-04T14:30:00Z")));
    }

    #[test]
    fn a_start_the_clocks_skip_is_refused_and_one_that_repeats_is_not_lost() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        let err = When::new(local("2027-03-28 02:30"), berlin, None).unwrap_err();
        assert!(err.contains("does not exist"), "{err}");
        // Daily at 02:30: on the day 02:30 does not exist the occurrence is not silently dropped.
        let daily = When::new(local("2027-03-26 02:30"), berlin, Some("FREQ=DAILY;COUNT=4")).unwrap();
        let all = daily.occurrences_from(i64::MIN, 10);
        assert!(all.len() >= 3, "{all:?}");
        assert_eq!(all[0].at_ms, at("2027-03-26T01:30:00Z"));
        assert_eq!(all.last().unwrap().at_ms, at("2027-03-29T00:30:00Z"));
    }

    #[test]
    fn schedules_end_and_are_searched_only_so_far() {
        let utc = chrono_tz::UTC;
        let once = When::new(local("2027-01-01 10:00"), utc, None).unwrap();
        assert_eq!(once.next_from(at("2027-01-01T10:00:01Z")), None);
        assert_eq!(once.last().map(|o| o.at_ms), Some(at("2027-01-01T10:00:00Z")));
        let counted = When::new(local("2027-01-01 10:00"), utc, Some("FREQ=MONTHLY;COUNT=3")).unwrap();
        assert_eq!(counted.last().map(|o| o.at_ms), Some(at("2027-03-01T10:00:00Z")));
        let forever = When::new(local("2027-01-01 10:00"), utc, Some("FREQ=YEARLY")).unwrap();
        assert_eq!(forever.last(), None);
        assert_eq!(
            forever.between(at("2027-06-01T00:00:00Z"), at("2030-01-01T00:00:00Z"), 10).len(),
            2,
            "2028 and 2029"
        );
        assert!(When::new(local("2027-01-01 10:00"), utc, Some("FREQ=HOURLY")).is_err());
        assert!(When::new(local("2027-01-01 10:00"), utc, Some("FREQ=WEEKLY;BYDAY=XX")).is_err());
    }

    #[test]
    fn transitions_are_found_to_the_second() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        let when = When::new(local("2027-01-07 10:00"), berlin, None).unwrap();
        let changes = when.transitions(2027, 2027);
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert_eq!(changes[0].at_ms, at("2027-03-28T01:00:00Z"));
        assert_eq!(changes[0].local_before, local("2027-03-28 02:00"));
        assert!(changes[0].daylight);
        assert_eq!((changes[0].from_secs, changes[0].to_secs), (3600, 7200));
        assert_eq!(changes[1].local_before, local("2027-10-31 03:00"));
        assert!(!changes[1].daylight);
        let tokyo = When::new(local("2027-01-07 10:00"), "Asia/Tokyo".parse().unwrap(), None).unwrap();
        assert!(tokyo.transitions(2027, 2030).is_empty());
    }
}
