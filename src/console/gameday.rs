//! The console's game-day page (`/ui/gameday`): the day in progress (or the latest) step by
//! step with its runs, the debrief's questions with the answers and notes so far, a note form
//! for everyone in the room, and for the facilitator the plans to start and the day to end.
//! Ended days link to their write-up (`/ui/gameday/report/ID`), the same HTML as
//! `firedrill report --gameday ID`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;

use super::pages::{self, Page};
use super::session::Role;
use super::{Console, signed_in};
use crate::gameday::log::{self, DayEvent};

type Fields = HashMap<String, String>;

/// The longest note the form takes (the daemon's own limit is larger).
const MAX_NOTE: usize = 4_000;

/// `GET /ui/gameday`.
pub async fn page(State(console): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let (id, session) = match signed_in(&console, &headers) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let frame = console.frame(Page::Gameday, &id, &session);
    let overview = console.gamedays.overview();
    let day = overview.days.iter().find(|d| d.state != "missed");
    let records = day
        .map(|d| log::read(&console.gamedays.journal_dir().join(format!("{}.jsonl", d.id))).unwrap_or_default())
        .unwrap_or_default();
    let questions: Vec<String> = match records.first().map(|r| &r.event) {
        Some(DayEvent::Started { questions, .. }) => questions.clone(),
        _ => Vec::new(),
    };
    let notes: Vec<(Option<usize>, String, String)> = records
        .iter()
        .filter_map(|r| match &r.event {
            DayEvent::Note { by, text, question } => Some((*question, by.clone(), text.clone())),
            _ => None,
        })
        .collect();
    let facilitator = session.role == Role::Facilitator;
    let running = console.gamedays.in_progress().is_some();
    let content = html! {
        @match day {
            None => { p { "No game day has taken place yet." } }
            Some(day) => {
                section.gameday {
                    h2 { (day.title) }
                    p { "Game day " code { (day.id) } " of team " (day.team) " — " strong { (day.state) }
                        @if let Some(step) = day.step { ", step " (step + 1) " of " (day.steps.len()) }
                        @if !day.detail.is_empty() { " (" (day.detail) ")" } }
                    ol {
                        @for (index, step) in day.steps.iter().enumerate() {
                            li aria-current=[(day.step == Some(index)).then_some("step")] { (step) }
                        }
                    }
                    @if !day.runs.is_empty() {
                        table {
                            tr { th { "Run" } th { "Drill" } th { "Outcome" } }
                            @for [run, drill, outcome] in &day.runs {
                                tr {
                                    td { (run) }
                                    td { @if drill.is_empty() { "(sealed)" } @else { (drill) } }
                                    td { @if outcome.is_empty() { "in progress" } @else { (outcome) } }
                                }
                            }
                        }
                    }
                    @if day.state != "running" {
                        p { a href=(format!("/ui/gameday/report/{}", day.id)) { "The day's write-up" } }
                    }
                    @if facilitator && running {
                        form method="post" action="/ui/gameday/end" {
                            input type="hidden" name="csrf" value=(session.csrf);
                            button.danger type="submit" { "End the game day" }
                        }
                    }
                }
                section.debrief {
                    h2 { "Debrief" }
                    @for (index, question) in questions.iter().enumerate() {
                        h3 { (index + 1) ". " (question) }
                        ul { @for (_, by, text) in notes.iter().filter(|(q, _, _)| *q == Some(index + 1)) { li { strong { (by) } ": " (text) } } }
                    }
                    @if notes.iter().any(|(q, _, _)| q.is_none()) {
                        h3 { "Notes" }
                        ul { @for (_, by, text) in notes.iter().filter(|(q, _, _)| q.is_none()) { li { strong { (by) } ": " (text) } } }
                    }
                    form method="post" action="/ui/gameday/note" {
                        input type="hidden" name="csrf" value=(session.csrf);
                        label { "Your name " input type="text" name="name" required maxlength="64" value=[session.name.as_deref()]; }
                        label { "About "
                            select name="question" {
                                option value="" { "a note" }
                                @for (index, question) in questions.iter().enumerate() { option value=(index + 1) { (index + 1) ". " (question) } }
                            }
                        }
                        label { "Note " textarea name="text" required maxlength=(MAX_NOTE) rows="3" {} }
                        button type="submit" { "Add the note" }
                    }
                }
            }
        }
        @if facilitator { (plans_section(&console, &session.csrf, running)) }
    };
    super::html(pages::document(&frame, "Game day", &content))
}

/// The facilitator's part: the plans to start now, and those scheduled.
fn plans_section(console: &Console, csrf: &str, running: bool) -> maud::Markup {
    let plans = console.gamedays.plans();
    let scheduled = console.gamedays.overview().scheduled;
    html! {
        section.plans {
            h2 { "Plans" }
            @if plans.is_empty() { p { "No plan in " code { (console.gamedays.plans_dir().display()) } "." } }
            ul {
                @for (name, plan) in &plans {
                    li {
                        @match plan {
                            Ok(plan) => {
                                (plan.title) " (" code { (name) } ", team " (plan.team) ", " (plan.sequence.len()) " steps) "
                                @if !running {
                                    form.inline method="post" action="/ui/gameday/start" {
                                        input type="hidden" name="csrf" value=(csrf);
                                        input type="hidden" name="plan" value=(name);
                                        button type="submit" { "Start now" }
                                    }
                                }
                            }
                            Err(e) => { code { (name) } " does not load: " (e.to_string()) }
                        }
                    }
                }
            }
            @for plan in &scheduled { p { "Scheduled: " (plan.title) " — next " (plan.next_local) } }
        }
    }
}

fn back(console: &Console, id: &str, flash: String) -> Response {
    console.sessions.update(id, |s| s.flash = Some(flash));
    Redirect::to("/ui/gameday").into_response()
}

/// `POST /ui/gameday/start` (the facilitator).
pub async fn start(State(console): State<Arc<Console>>, headers: HeaderMap, Form(form): Form<Fields>) -> Response {
    let (id, _) = match super::posted(
        &console,
        &headers,
        &form,
        |r| r == Role::Facilitator,
        "only the facilitator starts a game day",
    ) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let plan = form.get("plan").map_or("", String::as_str);
    let flash = match console.gamedays.start(plan, "facilitator (console)") {
        Ok(day) => format!("Game day {day} started."),
        Err(e) => format!("Not started: {e}"),
    };
    back(&console, &id, flash)
}

/// `POST /ui/gameday/end` (the facilitator).
pub async fn end(State(console): State<Arc<Console>>, headers: HeaderMap, Form(form): Form<Fields>) -> Response {
    let (id, _) = match super::posted(
        &console,
        &headers,
        &form,
        |r| r == Role::Facilitator,
        "only the facilitator ends a game day",
    ) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let flash = match console.gamedays.end("", "facilitator (console)").await {
        Ok(day) => format!("Game day {day} ended; its faults are out."),
        Err(e) => format!("Not ended: {e}"),
    };
    back(&console, &id, flash)
}

/// `POST /ui/gameday/note`: anyone in the room (observers take notes too).
pub async fn note(State(console): State<Arc<Console>>, headers: HeaderMap, Form(form): Form<Fields>) -> Response {
    let (id, _) = match super::posted(&console, &headers, &form, |_| true, "") {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let name = form.get("name").map_or("", |n| n.trim());
    let text = form.get("text").map_or("", |t| t.trim());
    let question = form.get("question").filter(|q| !q.is_empty()).map(|q| q.parse::<usize>());
    let flash = if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        "Not noted: a name is 1 to 64 printable characters.".to_owned()
    } else if text.chars().count() > MAX_NOTE {
        format!("Not noted: a note is at most {MAX_NOTE} characters.")
    } else {
        match question.transpose() {
            Err(_) => "Not noted: pick a question from the list.".to_owned(),
            Ok(question) => match console.gamedays.note("", name, text, question) {
                Ok(day) => {
                    console.sessions.update(&id, |s| s.name = Some(name.to_owned()));
                    format!("Noted in game day {day}.")
                }
                Err(e) => format!("Not noted: {e}"),
            },
        }
    };
    back(&console, &id, flash)
}

/// `GET /ui/gameday/report/{id}`: an ended day's write-up.
pub async fn report(State(console): State<Arc<Console>>, headers: HeaderMap, Path(day): Path<String>) -> Response {
    if let Err(r) = signed_in(&console, &headers) {
        return r.into_response();
    }
    if console.gamedays.in_progress().as_deref() == Some(day.as_str()) {
        return (StatusCode::CONFLICT, "the write-up is there once the day has ended").into_response();
    }
    match crate::gameday::report::gather(console.gamedays.journal_dir(), console.manager.scorecards_dir(), &day) {
        Ok(gathered) => super::html(maud::PreEscaped(crate::gameday::report::html(&gathered))),
        Err(e) => (StatusCode::NOT_FOUND, e.to_string()).into_response(),
    }
}
