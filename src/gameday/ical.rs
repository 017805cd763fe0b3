//! A plan as an iCalendar file (RFC 5545) that calendar applications import: one `VEVENT` with
//! the plan's `RRULE`, its time zone as a `VTIMEZONE`, the facilitator as `ORGANIZER` and every
//! role as an `ATTENDEE`.

use std::fmt::Write as _;

use chrono::{Datelike, NaiveDateTime};

use super::plan::{Person, Plan};
use super::when::{Transition, When};

/// The plan's calendar file, stamped `now_ms`; `None` for a plan without a `start`.
pub fn calendar(plan: &Plan, now_ms: i64) -> Option<String> {
    let when = plan.when.as_ref()?;
    let mut lines = vec![
        "BEGIN:VCALENDAR".to_owned(),
        "VERSION:2.0".to_owned(),
        "PRODID:-//firedrill//game days//EN".to_owned(),
        "CALSCALE:GREGORIAN".to_owned(),
        "METHOD:PUBLISH".to_owned(),
    ];
    let utc = when.zone == chrono_tz::UTC;
    if !utc {
        lines.extend(vtimezone(when));
    }
    lines.push("BEGIN:VEVENT".to_owned());
    // Stable: importing the file again updates the event instead of adding a second one.
    lines.push(format!("UID:gameday-{}-{}@firedrill", plan.name, plan.team));
    let stamp = chrono::DateTime::from_timestamp_millis(now_ms).unwrap_or_default();
    lines.push(format!("DTSTAMP:{}", stamp.format("%Y%m%dT%H%M%SZ")));
    if utc {
        lines.push(format!("DTSTART:{}Z", local(when.start)));
    } else {
        lines.push(format!("DTSTART;TZID={}:{}", when.zone.name(), local(when.start)));
    }
    lines.push(format!("DURATION:PT{}M", plan.length.as_secs().div_ceil(60)));
    if let Some(rule) = &when.repeat {
        lines.push(format!("RRULE:{rule}"));
    }
    lines.push(format!("SUMMARY:{}", text(&plan.title)));
    lines.push(format!("DESCRIPTION:{}", text(&description(plan))));
    lines.push(format!("CATEGORIES:{}", text("game day")));
    if let Some(facilitator) = &plan.roles.facilitator {
        lines.push(format!("ORGANIZER;CN={}:{}", param(&facilitator.name), address(facilitator)));
    }
    for (role, person) in plan.roles.everyone() {
        let rfc_role = match role {
            "facilitator" => "CHAIR",
            "responder" => "REQ-PARTICIPANT",
            _ => "OPT-PARTICIPANT",
        };
        lines.push(format!(
            "ATTENDEE;CN={};ROLE={rfc_role};PARTSTAT=NEEDS-ACTION;RSVP=TRUE;X-FIREDRILL-ROLE={role}:{}",
            param(&person.name),
            address(person)
        ));
    }
    lines.push("END:VEVENT".to_owned());
    lines.push("END:VCALENDAR".to_owned());
    let mut out = String::new();
    for line in &lines {
        fold(line, &mut out);
    }
    Some(out)
}

fn description(plan: &Plan) -> String {
    let mut out = format!("Game day of team {}.\n\nSequence:\n", plan.team);
    for (index, step) in plan.sequence.iter().enumerate() {
        let _ = writeln!(out, "{}. {}", index + 1, step.describe());
    }
    if !plan.questions.is_empty() {
        out.push_str("\nDebrief:\n");
        for (index, question) in plan.questions.iter().enumerate() {
            let _ = writeln!(out, "{}. {question}", index + 1);
        }
    }
    let _ = write!(out, "\nStart it with: firedrill gameday start {}", plan.name);
    out
}

/// A person's calendar address: `mailto:` when known, else a URN that names them.
fn address(person: &Person) -> String {
    if let Some(email) = &person.email {
        return format!("mailto:{email}");
    }
    let name: String =
        person.name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' { c } else { '-' }).collect();
    format!("urn:firedrill:person:{name}")
}

fn local(at: NaiveDateTime) -> String {
    at.format("%Y%m%dT%H%M%S").to_string()
}

/// A TEXT value, escaped (RFC 5545 §3.3.11).
fn text(value: &str) -> String {
    value.replace('\\', "\\\\").replace(';', "\\;").replace(',', "\\,").replace("\r\n", "\\n").replace('\n', "\\n")
}

/// A parameter value: quoted, without the characters a quoted value may not hold.
fn param(value: &str) -> String {
    let clean: String = value.chars().filter(|c| *c != '"' && !c.is_control()).collect();
    format!("\"{clean}\"")
}

/// Appends `line` folded at 75 octets (never inside a character), ending in CRLF.
fn fold(line: &str, out: &mut String) {
    let mut width = 0;
    for c in line.chars() {
        if width + c.len_utf8() > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += c.len_utf8();
    }
    out.push_str("\r\n");
}

fn offset(secs: i32) -> String {
    let sign = if secs < 0 { '-' } else { '+' };
    let secs = secs.unsigned_abs();
    format!("{sign}{:02}{:02}", secs / 3600, secs % 3600 / 60)
}

/// The zone's definition: each kind of change (to daylight saving, back to standard time)
/// as one component with a yearly rule when the change follows one (the last Sunday of March),
/// or every change listed, over the years the schedule spans.
fn vtimezone(when: &When) -> Vec<String> {
    let first = when.start.year();
    let last = when.last().map_or(first + 10, |o| o.local.year().max(first));
    let changes = when.transitions(first - 1, last + 1);
    let mut lines = vec!["BEGIN:VTIMEZONE".to_owned(), format!("TZID:{}", when.zone.name())];
    if changes.is_empty() {
        let at = when.occurrences_from(i64::MIN, 1).first().map_or(0, |o| o.offset_secs);
        lines.extend([
            "BEGIN:STANDARD".to_owned(),
            "DTSTART:19700101T000000".to_owned(),
            format!("TZOFFSETFROM:{}", offset(at)),
            format!("TZOFFSETTO:{}", offset(at)),
            "END:STANDARD".to_owned(),
        ]);
    } else {
        for daylight in [true, false] {
            let kind: Vec<&Transition> = changes.iter().filter(|t| t.daylight == daylight).collect();
            let Some(first) = kind.first() else { continue };
            let component = if daylight { "DAYLIGHT" } else { "STANDARD" };
            let rule = yearly_rule(&kind);
            let groups: Vec<&Transition> = if rule.is_some() { vec![first] } else { kind.clone() };
            for change in groups {
                lines.push(format!("BEGIN:{component}"));
                lines.push(format!("DTSTART:{}", local(change.local_before)));
                lines.push(format!("TZOFFSETFROM:{}", offset(change.from_secs)));
                lines.push(format!("TZOFFSETTO:{}", offset(change.to_secs)));
                if !change.name.is_empty() {
                    lines.push(format!("TZNAME:{}", text(&change.name)));
                }
                if let Some(rule) = &rule {
                    lines.push(format!("RRULE:{rule}"));
                }
                lines.push(format!("END:{component}"));
            }
        }
    }
    lines.push("END:VTIMEZONE".to_owned());
    lines
}

/// `FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU` when every change of one kind falls on the same weekday
/// of the same month at the same local time and offsets, one per year; else `None`.
fn yearly_rule(changes: &[&Transition]) -> Option<String> {
    let first = changes.first()?;
    let day = first.local_before.date();
    let weekday = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"][day.weekday().num_days_from_monday() as usize];
    let month = day.month();
    let days_in_month = |d: chrono::NaiveDate| {
        let next = if d.month() == 12 {
            chrono::NaiveDate::from_ymd_opt(d.year() + 1, 1, 1)
        } else {
            chrono::NaiveDate::from_ymd_opt(d.year(), d.month() + 1, 1)
        };
        next.map_or(31, |n| n.pred_opt().map_or(31, |p| p.day()))
    };
    let last_week = |d: chrono::NaiveDate| d.day() + 7 > days_in_month(d);
    let nth = |d: chrono::NaiveDate| d.day().div_ceil(7);
    let by_last = changes.iter().all(|c| last_week(c.local_before.date()));
    let by_nth = changes.iter().all(|c| nth(c.local_before.date()) == nth(day));
    let same = changes.windows(2).all(|w| w[1].local_before.year() == w[0].local_before.year() + 1)
        && changes.iter().all(|c| {
            let d = c.local_before.date();
            d.month() == month
                && d.weekday() == day.weekday()
                && c.local_before.time() == first.local_before.time()
                && (c.from_secs, c.to_secs) == (first.from_secs, first.to_secs)
        });
    if !same || changes.len() < 2 {
        return None;
    }
    let position = if by_last {
        "-1".to_owned()
    } else if by_nth {
        nth(day).to_string()
    } else {
        return None;
    };
    Some(format!("FREQ=YEARLY;BYMONTH={month};BYDAY={position}{weekday}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_fold_at_75_octets_without_splitting_a_character() {
        let mut out = String::new();
        fold(&format!("SUMMARY:{}", "é".repeat(60)), &mut out);
        for line in out.split("\r\n").filter(|l| !l.is_empty()) {
            assert!(line.len() <= 75, "{line:?} is {} octets", line.len());
        }
        let unfolded = out.replace("\r\n ", "");
        assert_eq!(unfolded, format!("SUMMARY:{}\r\n", "é".repeat(60)));
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(text("a; b, c\\d\ne"), "a\\; b\\, c\\\\d\\ne");
    }
}
