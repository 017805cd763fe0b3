//! The console's HTML, rendered on the server with `maud` (escaped by construction). Times that
//! move (the elapsed timer) are sent as wall-clock anchors (`data-since`) for the page's script
//! to count from, so a fragment only changes when something a viewer may see has changed.

use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::session::Role;

/// Which page a frame shows (the navigation marks it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// What the projector shows.
    Now,
    /// A responder's page.
    Respond,
    /// The drill catalogue.
    Catalogue,
    /// Scorecards and readiness.
    Scorecards,
    /// The game day and its debrief.
    Gameday,
}

/// What every page needs to know of its viewer.
pub struct Frame<'a> {
    /// The page.
    pub page: Page,
    /// The viewer's role.
    pub role: Role,
    /// The viewer's CSRF token, for every form.
    pub csrf: &'a str,
    /// A message from the viewer's last action, shown once.
    pub flash: Option<String>,
    /// The server's wall clock, ms, for the script to correct the device's clock by.
    pub server_now_ms: u64,
}

/// A run as a panel on the Now and Respond pages.
pub enum Panel {
    /// A blind drill, sealed: nothing but its team.
    Sealed {
        /// The team.
        team: String,
    },
    /// A blind drill that could not start.
    NotStarted {
        /// The team.
        team: String,
        /// Why.
        why: String,
    },
    /// A run that may be shown.
    Run(Box<RunPanel>),
}

/// A phase row.
pub struct PhaseRow {
    /// detect, diagnose, mitigate, resolve.
    pub name: String,
    /// Dev target, ms.
    pub target_ms: u64,
    /// Time from t0, ms.
    pub actual_ms: Option<u64>,
    /// met, missed, not reached, or pending.
    pub verdict: String,
}

/// Everything a run's panel shows.
pub struct RunPanel {
    /// The run.
    pub run_id: String,
    /// The drill's title.
    pub title: String,
    /// What responders are told.
    pub briefing: String,
    /// The team.
    pub team: String,
    /// How it ended, if it has.
    pub outcome: Option<String>,
    /// Wall-clock ms of t0, once the fault went in.
    pub t0_wall_ms: Option<u64>,
    /// The run's length from t0 once ended, ms.
    pub final_ms: Option<u64>,
    /// Per phase.
    pub phases: Vec<PhaseRow>,
    /// Faults in force, in words.
    pub faults: Vec<String>,
    /// Expected alerts, each with how it went.
    pub alerts: Vec<String>,
    /// Alerts nobody expected.
    pub noise: Vec<String>,
    /// The events so far: (ms from the start, words).
    pub timeline: Vec<(u64, String)>,
    /// Share of bad events per SLI sample, in order (for the chart).
    pub bad_ratios: Vec<f64>,
    /// Burn rate per window, in words.
    pub burn: Vec<String>,
}

/// `m:ss` (or `h:mm:ss`).
pub fn clock(ms: u64) -> String {
    let s = ms / 1000;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

/// A page's head: its title, the stylesheet, and (on live pages) the script.
fn head(title: &str, script: bool) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · firedrill" }
            link rel="stylesheet" href="/ui/assets/console.css";
            @if script { script src="/ui/assets/console.js" defer {} }
        }
    }
}

/// The whole page: navigation, the kill switch for the facilitator, then `content`.
pub fn document(frame: &Frame, title: &str, content: &Markup) -> Markup {
    let link = |page: Page, href: &str, label: &str| {
        html! { a href=(href) aria-current=[(frame.page == page).then_some("page")] { (label) } }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title, true))
            body data-server-now=(frame.server_now_ms) {
                header {
                    nav {
                        strong { "firedrill" }
                        (link(Page::Now, "/ui/", "Now"))
                        @if frame.role.responds() { (link(Page::Respond, "/ui/respond", "Respond")) }
                        (link(Page::Catalogue, "/ui/catalogue", "Catalogue"))
                        (link(Page::Gameday, "/ui/gameday", "Game day"))
                        (link(Page::Scorecards, "/ui/scorecards", "Scorecards"))
                        span.role { "signed in as " (frame.role.name()) }
                    }
                    @if frame.role == Role::Facilitator {
                        form.kill method="post" action="/ui/abort" {
                            input type="hidden" name="csrf" value=(frame.csrf);
                            button.danger type="submit" { "Abort everything" }
                        }
                    }
                }
                main {
                    @if let Some(flash) = &frame.flash { p.flash role="status" { (flash) } }
                    (content)
                }
            }
        }
    }
}

/// The sign-in page.
pub fn login(needs_token: bool, error: Option<&str>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head("Sign in", false))
            body {
                main {
                    h1 { "firedrill console" }
                    @if let Some(error) = error { p.flash role="alert" { (error) } }
                    p { "Responders and observers: open the link your facilitator shared." }
                    form method="post" action="/ui/login" {
                        @if needs_token {
                            label for="token" { "Facilitator: the daemon's admin token" }
                            input #token type="password" name="token" autocomplete="off" required;
                        } @else {
                            input type="hidden" name="token" value="";
                            p { "This daemon listens on loopback only: whoever is on this machine facilitates." }
                        }
                        button type="submit" { "Sign in as facilitator" }
                    }
                }
            }
        }
    }
}

/// The SLI chart: the share of bad events per sample, as an inline SVG line.
fn chart(ratios: &[f64]) -> Markup {
    const W: f64 = 600.0;
    const H: f64 = 120.0;
    let n = ratios.len().max(2) - 1;
    #[allow(clippy::cast_precision_loss)]
    let points: Vec<String> = ratios
        .iter()
        .enumerate()
        .map(|(i, r)| format!("{:.1},{:.1}", i as f64 / n as f64 * W, H - r.clamp(0.0, 1.0) * (H - 4.0) - 2.0))
        .collect();
    html! {
        figure.sli {
            svg viewBox="0 0 600 120" width="100%" height="120" role="img" aria-label="share of bad events per sample" {
                rect x="0" y="0" width="600" height="120" fill="#f4f4f4" {}
                polyline points=(points.join(" ")) fill="none" stroke="#b00020" stroke-width="3" {}
            }
            figcaption { "share of bad events, sample by sample (top: all bad)" }
        }
    }
}

fn run_panel(run: &RunPanel) -> Markup {
    html! {
        article.run data-run=(run.run_id) {
            h2 { (run.title) }
            p.meta { "team " (run.team) " · run " code { (run.run_id) } }
            p.briefing { (run.briefing) }
            @match (&run.outcome, run.t0_wall_ms, run.final_ms) {
                (Some(outcome), _, final_ms) => {
                    p.timer.ended { "ended: " (outcome) @if let Some(ms) = final_ms { " after " (clock(ms)) } }
                }
                (None, Some(t0), _) => { p.timer { span data-since=(t0) { "0:00" } } }
                (None, None, _) => { p.timer.warming { "traffic warming up" } }
            }
            table.phases {
                thead { tr { th { "phase" } th { "target" } th { "actual" } th { "verdict" } } }
                tbody {
                    @for phase in &run.phases {
                        tr class=(phase.verdict.replace(' ', "-")) {
                            td { (phase.name) }
                            td { (clock(phase.target_ms)) }
                            td { @if let Some(ms) = phase.actual_ms { (clock(ms)) } @else { "—" } }
                            td { (phase.verdict) }
                        }
                    }
                }
            }
            @if !run.bad_ratios.is_empty() { (chart(&run.bad_ratios)) }
            @if !run.burn.is_empty() { p.burn { "burn rate: " (run.burn.join(", ")) } }
            h3 { "Faults in force" }
            @if run.faults.is_empty() { p { "none" } } @else { ul { @for f in &run.faults { li { (f) } } } }
            @if !run.alerts.is_empty() || !run.noise.is_empty() {
                h3 { "Alerts" }
                ul {
                    @for a in &run.alerts { li { (a) } }
                    @for a in &run.noise { li.noise { "unexpected: " (a) } }
                }
            }
            h3 { "Timeline" }
            ol.timeline {
                @for (at, what) in &run.timeline { li { span.at { (clock(*at)) } " " (what) } }
            }
        }
    }
}

/// The live part of the Now page: every run, side by side.
pub fn now_live(panels: &[Panel]) -> Markup {
    html! {
        @if panels.is_empty() { p.idle { "No drill is running." } }
        div.runs {
            @for panel in panels {
                @match panel {
                    Panel::Sealed { team } => article.run.sealed {
                        h2 { "A blind drill" }
                        p { "For team " (team) ". Nothing shows until it is acknowledged." }
                    },
                    Panel::NotStarted { team, why } => article.run.sealed {
                        h2 { "A blind drill that could not start" }
                        p { "For team " (team) ": " (why) }
                    },
                    Panel::Run(run) => (run_panel(run)),
                }
            }
        }
    }
}

/// A page whose `#live` part follows the server's events.
pub fn live(events: &str, inner: &Markup) -> Markup {
    html! { div #live data-events=(events) aria-live="polite" { (inner) } }
}

/// The Respond page's live part: the runs a responder can act on, and the forms.
pub fn respond_live(panels: &[Panel], csrf: &str, name: Option<&str>) -> Markup {
    let Some(name) = name else {
        return html! {
            form method="post" action="/ui/name" {
                input type="hidden" name="csrf" value=(csrf);
                label for="name" { "Your name (remembered on this device)" }
                input #name name="name" required maxlength="64" autocomplete="name";
                button type="submit" { "Continue" }
            }
        };
    };
    let targets: Vec<(String, String)> = panels
        .iter()
        .filter_map(|p| match p {
            Panel::Sealed { team } => Some((String::new(), format!("the blind drill for team {team}"))),
            Panel::Run(run) if run.outcome.is_none() => Some((run.run_id.clone(), run.title.clone())),
            _ => None,
        })
        .collect();
    html! {
        p { "Acting as " strong { (name) } "." }
        @if targets.is_empty() { p.idle { "Nothing to respond to yet." } }
        @else {
            @let single = targets.len() == 1;
            @for (action, label) in [("ack", "Acknowledge"), ("hint", "Ask for a hint"), ("mitigate", "Declare mitigated"), ("resolve", "Declare resolved")] {
                form.act method="post" action=(format!("/ui/act/{action}")) {
                    input type="hidden" name="csrf" value=(csrf);
                    (run_choice(&targets, single, action))
                    button type="submit" { (label) }
                }
            }
            form.act.diagnose method="post" action="/ui/act/diagnose" {
                input type="hidden" name="csrf" value=(csrf);
                (run_choice(&targets, single, "diagnose"))
                label for="diagnosis" { "Diagnosis" }
                input #diagnosis name="text" required maxlength="500" placeholder="what is wrong, and where";
                button type="submit" { "Diagnose" }
            }
        }
        (now_live(panels))
    }
}

fn run_choice(targets: &[(String, String)], single: bool, action: &str) -> Markup {
    html! {
        @if single {
            input type="hidden" name="run" value=(targets[0].0);
        } @else {
            label for=(format!("run-{action}")) { "Run" }
            select id=(format!("run-{action}")) name="run" {
                @for (id, label) in targets { option value=(id) { (label) } }
            }
        }
    }
}

/// Raw, trusted HTML (the report's own rendering, which escapes what it prints).
pub fn trusted(html: String) -> Markup {
    PreEscaped(html)
}
