//! The Catalogue page (every drill, its faults and targets, each team's last run, and for the
//! facilitator: a dry-run preview, then start; or a blind drill) and the Scorecards page (the
//! report's tables and trends, the manager's answer first).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Form, Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;

use super::pages::{self, Page};
use super::session::Role;
use super::{Console, Denied, signed_in};
use crate::drill::Phase;
use crate::scorecard::{readiness, report, store};

type Fields = HashMap<String, String>;

/// `GET /ui/catalogue`.
pub async fn page(State(console): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let (id, session) = match signed_in(&console, &headers) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let frame = console.frame(Page::Catalogue, &id, &session);
    let drills = console.manager.catalogue().await;
    let (cards, _) = store::read_all(console.manager.scorecards_dir());
    let mut teams: Vec<&str> = cards.iter().map(|c| c.team.as_str()).collect();
    teams.sort_unstable();
    teams.dedup();
    let last = |team: &str, drill: &str| {
        cards
            .iter()
            .filter(|c| c.team == team && c.drill == drill && readiness::counts(c))
            .max_by_key(|c| c.started_wall_ms)
            .map(|c| {
                format!(
                    "{} ({})",
                    crate::scorecard::glance::date(c.started_wall_ms),
                    c.outcome.map(crate::wire_name).unwrap_or_default()
                )
            })
    };
    let facilitator = session.role == Role::Facilitator;
    let content = html! {
        h1 { "Catalogue" }
        table.catalogue {
            thead { tr {
                th { "drill" } th { "faults" } th { "dev targets (detect, diagnose, mitigate, resolve)" }
                @for team in &teams { th { "last run: " (team) } }
                @if facilitator { th { "start" } }
            } }
            tbody {
                @for (name, loaded) in &drills {
                    tr {
                        td { strong { (name) } @if let Ok(d) = loaded { br; (d.title) } }
                        @match loaded {
                            Ok(drill) => {
                                td { ul { @for f in &drill.faults { li { (f.kind()) " at " (crate::duration::format(f.at)) } } } }
                                td { (Phase::ALL.iter().map(|&p| pages::clock(u64::try_from(drill.targets.dev(p).as_millis()).unwrap_or(u64::MAX))).collect::<Vec<_>>().join(" · ")) }
                            }
                            Err(why) => { td colspan="2" { "does not load here: " (why) } }
                        }
                        @for team in &teams { td { (last(team, name).unwrap_or_else(|| "never".into())) } }
                        @if facilitator {
                            td { @if loaded.is_ok() {
                                form method="post" action="/ui/catalogue/preview" {
                                    input type="hidden" name="csrf" value=(session.csrf);
                                    input type="hidden" name="drill" value=(name);
                                    button type="submit" { "Preview…" }
                                }
                            } }
                        }
                    }
                }
            }
        }
        @if facilitator {
            h2 { "A blind drill" }
            form method="post" action="/ui/catalogue/blind" {
                input type="hidden" name="csrf" value=(session.csrf);
                label for="blind-team" { "Team" }
                input #blind-team name="team" required maxlength="64";
                label for="blind-within" { "Within" }
                input #blind-within name="within" value="30m" required maxlength="16";
                button type="submit" { "Arm a blind drill" }
            }
            p { "A drill drawn at random starts at a random moment within that span; nobody is told which or when." }
        }
    };
    super::html(pages::document(&frame, "Catalogue", &content))
}

fn facilitator_form(console: &Console, headers: &HeaderMap, form: &Fields) -> Result<(String, super::Session), Denied> {
    super::posted(console, headers, form, |r| r == Role::Facilitator, "only the facilitator starts drills")
}

/// `POST /ui/catalogue/preview`: the dry run, then the start form.
pub async fn preview(State(console): State<Arc<Console>>, headers: HeaderMap, Form(form): Form<Fields>) -> Response {
    let (id, session) = match facilitator_form(&console, &headers, &form) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let drill = form.get("drill").cloned().unwrap_or_default();
    let frame = console.frame(Page::Catalogue, &id, &session);
    let content = match console.manager.dry_run(&drill, None).await {
        Ok(text) => html! {
            h1 { "Preview: " (drill) }
            pre.dry { (text) }
            form method="post" action="/ui/catalogue/start" {
                input type="hidden" name="csrf" value=(session.csrf);
                input type="hidden" name="drill" value=(drill);
                label for="team" { "Team" }
                input #team name="team" required maxlength="64" autofocus;
                button type="submit" { "Start the drill" }
            }
        },
        Err(e) => html! { h1 { "Preview: " (drill) } p.flash role="alert" { (e.to_string()) } },
    };
    super::html(pages::document(&frame, "Preview", &content))
}

/// `POST /ui/catalogue/start`.
pub async fn start(State(console): State<Arc<Console>>, headers: HeaderMap, Form(form): Form<Fields>) -> Response {
    let (id, _) = match facilitator_form(&console, &headers, &form) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let (drill, team) = (form.get("drill").cloned().unwrap_or_default(), form.get("team").map_or("", |t| t.trim()));
    let flash = if crate::is_team_name(team, 64) {
        match console.manager.start(&drill, team, None, None).await {
            Ok(run) => format!("Started run {run} of {drill} for team {team}."),
            Err(e) => format!("Not started: {e}"),
        }
    } else {
        format!("Not started: team `{team}`: use letters, digits, `-`, `_` and `.` (not first), at most 64")
    };
    console.sessions.update(&id, |s| s.flash = Some(flash));
    Redirect::to(super::PREFIX).into_response()
}

/// `POST /ui/catalogue/blind`.
pub async fn blind(State(console): State<Arc<Console>>, headers: HeaderMap, Form(form): Form<Fields>) -> Response {
    let (id, _) = match facilitator_form(&console, &headers, &form) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let team = form.get("team").map_or("", |t| t.trim()).to_owned();
    let within = crate::duration::parse(form.get("within").map_or("", String::as_str));
    let flash = match (crate::is_team_name(&team, 64), within) {
        (false, _) => format!("Not armed: team `{team}`: use letters, digits, `-`, `_` and `.` (not first)"),
        (_, Err(e)) => format!("Not armed: within: {e}"),
        (true, Ok(within)) => match console.manager.start_blind(team.clone(), None, None, within).await {
            Ok(()) => format!("A blind drill is armed for team {team}."),
            Err(e) => format!("Not armed: {e}"),
        },
    };
    console.sessions.update(&id, |s| s.flash = Some(flash));
    Redirect::to(super::PREFIX).into_response()
}

/// `GET /ui/scorecards[?team=T]`: the report of the daemon's scorecards, as `report --format
/// html` draws it, the manager's answer first.
pub async fn scorecards(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Query(query): Query<Fields>,
) -> Response {
    let (id, session) = match signed_in(&console, &headers) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let frame = console.frame(Page::Scorecards, &id, &session);
    let (cards, skipped) = store::read_all(console.manager.scorecards_dir());
    let filter =
        report::Filter { team: query.get("team").filter(|t| !t.is_empty()).cloned(), ..report::Filter::default() };
    let mut built = report::build(&cards, &skipped, &filter);
    let drills = report::catalogue(console.manager.drills_dir());
    built.coverage =
        report::coverage(&cards, &drills, &filter, crate::clock::wall_ms().saturating_sub(30 * 86_400_000));
    built.glance =
        crate::scorecard::glance::build(&cards, &filter, &readiness::Policy::default(), crate::clock::wall_ms());
    let mut teams: Vec<&str> = cards.iter().map(|c| c.team.as_str()).collect();
    teams.sort_unstable();
    teams.dedup();
    let mut runs: Vec<&crate::scorecard::Scorecard> = cards.iter().filter(|c| filter.keeps(c)).collect();
    runs.sort_by_key(|c| std::cmp::Reverse(c.started_wall_ms));
    let content = html! {
        h1 { "Scorecards and readiness" }
        nav.teams {
            a href="/ui/scorecards" { "all teams" }
            @for team in &teams { " · " a href=(format!("/ui/scorecards?team={team}")) { (team) } }
        }
        (pages::trusted(crate::scorecard::html::body(&built)))
        h2 { "Runs" }
        ul.runs-list {
            @for card in runs.iter().take(RUNS_LISTED) {
                li {
                    a href=(format!("/ui/scorecards/{}/{}", card.team, card.run_id)) { (card.run_id) }
                    " · " (card.team) " · " (crate::scorecard::glance::date(card.started_wall_ms))
                    " · " (card.outcome.map(crate::wire_name).unwrap_or_default())
                }
            }
        }
    };
    super::html(pages::document(&frame, "Scorecards", &content))
}

/// How many runs the Scorecards page lists, newest first.
const RUNS_LISTED: usize = 200;

/// `GET /ui/scorecards/{team}/{run}`: one run's scorecard and its timeline (a debrief).
pub async fn run(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Path((team, run_id)): Path<(String, String)>,
) -> Response {
    let (id, session) = match signed_in(&console, &headers) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let frame = console.frame(Page::Scorecards, &id, &session);
    let (cards, _) = store::read_all(console.manager.scorecards_dir());
    let Some(card) = cards.into_iter().find(|c| c.team == team && c.run_id == run_id) else {
        return (axum::http::StatusCode::NOT_FOUND, "no such scorecard").into_response();
    };
    let timeline: Vec<(u64, String)> = console
        .manager
        .ended_journal(&run_id)
        .unwrap_or_default()
        .iter()
        .filter_map(|r| Some((r.t_ms, super::panel::describe(&r.event, true)?)))
        .collect();
    let content = html! {
        h1 { (card.title) }
        p.meta { "team " (card.team) " · run " code { (card.run_id) } " · " (crate::scorecard::glance::date(card.started_wall_ms))
            " · " (card.outcome.map(crate::wire_name).unwrap_or_default())
            @if let Some(reason) = &card.outcome_reason { " (" (reason) ")" } }
        table.phases {
            thead { tr { th { "phase" } th { "dev target" } th { "actual" } th { "verdict" } } }
            tbody {
                @for p in &card.phases {
                    tr class=(crate::wire_name(p.verdict).replace('_', "-")) {
                        td { (crate::wire_name(p.phase)) }
                        td { (pages::clock(p.target_ms)) }
                        td { @if let Some(ms) = p.actual_ms { (pages::clock(ms)) } @else { "—" } }
                        td { (crate::wire_name(p.verdict).replace('_', " ")) }
                    }
                }
            }
        }
        ul {
            li { "detected first by " (card.detection.human_by.clone().or_else(|| card.detection.machine_alert.as_ref().map(|a| format!("alert {a}"))).unwrap_or_else(|| "nobody".into())) }
            li { (card.wrong_diagnoses.len()) " wrong diagnosis(es), " (card.hints.len()) " hint(s), " (card.false_alarms.len()) " false alarm(s)" }
            @if let Some(budget) = &card.budget { li { "production-equivalent budget spend: " (format!("{:.1} %", budget.production_share * 100.0)) } }
            @for a in &card.alerts { li { "expected alert " (a.name) ": " (if a.met { "on time" } else if a.fired_after_ms.is_some() { "late" } else { "never fired" }) } }
        }
        h2 { "Timeline" }
        ol.timeline { @for (at, what) in &timeline { li { span.at { (pages::clock(*at)) } " " (what) } } }
    };
    super::html(pages::document(&frame, "Scorecard", &content))
}
