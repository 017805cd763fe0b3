//! The game-day console: live web pages for the room, served by the daemon under `/ui/` beside
//! the admin API (not through it: the API keeps refusing browsers).
//!
//! - `session`: roles, sessions, join codes, CSRF tokens; `pages`: the HTML; `panel`: a run as
//!   the pages show it; `catalogue`: the drill catalogue and the scorecards pages.
//! - Live updates are Server-Sent Events from the manager's change notifications: on each
//!   change the viewer's fragment is rendered again and sent only if it differs, so a sealed
//!   blind drill's events never reach a page, not even as timing.
//! - Every response carries a strict Content-Security-Policy; every asset is in the binary.

mod catalogue;
mod gameday;
pub mod pages;
mod panel;
pub mod session;

use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::Markup;
use serde::Deserialize;

use crate::run::manager::{Manager, Route};
use pages::{Frame, Page};
use session::{COOKIE, Role, Session, Sessions};

/// Where the console lives on the admin address.
pub const PREFIX: &str = "/ui/";

/// How many ended runs the Now page keeps showing.
const ENDED_SHOWN: usize = 3;

const CSS: &str = include_str!("console.css");
const JS: &str = include_str!("console.js");

/// The Content-Security-Policy of every console response: nothing but this origin's own files.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                       connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The console of one daemon.
pub struct Console {
    manager: Arc<Manager>,
    /// The admin token: signs a facilitator in. `None`: a loopback-only daemon, where whoever
    /// is on the machine facilitates.
    token: Option<String>,
    sessions: Sessions,
    /// The daemon's game days: the kill switch ends the one in progress.
    gamedays: Arc<crate::gameday::Gamedays>,
}

impl Console {
    /// A console over `manager`'s runs.
    pub fn new(manager: Arc<Manager>, gamedays: Arc<crate::gameday::Gamedays>, token: Option<String>) -> Arc<Self> {
        Arc::new(Self { manager, gamedays, token, sessions: Sessions::default() })
    }

    /// The path a responder opens to join (`/ui/join/CODE`).
    pub fn responder_link(&self) -> String {
        format!("{PREFIX}join/{}", self.sessions.responder_code)
    }

    /// The path an observer opens.
    pub fn observer_link(&self) -> String {
        format!("{PREFIX}join/{}", self.sessions.observer_code)
    }

    fn session(&self, headers: &HeaderMap) -> Option<(String, Session)> {
        let id = cookie(headers)?;
        let session = self.sessions.get(&id)?;
        Some((id, session))
    }

    fn frame<'a>(&self, page: Page, id: &str, session: &'a Session) -> Frame<'a> {
        let flash = session.flash.clone();
        if flash.is_some() {
            self.sessions.update(id, |s| s.flash = None);
        }
        Frame { page, role: session.role, csrf: &session.csrf, flash, server_now_ms: crate::clock::wall_ms() }
    }
}

/// The console's stylesheet, with the report's (the Scorecards page shows the report).
async fn stylesheet() -> Response {
    let css = format!("{CSS}{}", crate::scorecard::html::STYLE);
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], css).into_response()
}

fn cookie(headers: &HeaderMap) -> Option<String> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        (name == COOKIE).then(|| value.to_owned())
    })
}

/// The console's routes, each response with the console's security headers.
pub fn router(console: Arc<Console>) -> Router {
    Router::new()
        .route("/ui", get(|| async { Redirect::to(PREFIX) }))
        .route("/ui/", get(now))
        .route("/ui/login", get(login_page).post(login))
        .route("/ui/join/{code}", get(join))
        .route("/ui/respond", get(respond))
        .route("/ui/name", post(name))
        .route("/ui/act/{action}", post(act))
        .route("/ui/abort", post(abort))
        .route("/ui/events", get(events))
        .route("/ui/catalogue", get(catalogue::page))
        .route("/ui/catalogue/preview", post(catalogue::preview))
        .route("/ui/catalogue/start", post(catalogue::start))
        .route("/ui/catalogue/blind", post(catalogue::blind))
        .route("/ui/gameday", get(gameday::page))
        .route("/ui/gameday/start", post(gameday::start))
        .route("/ui/gameday/end", post(gameday::end))
        .route("/ui/gameday/note", post(gameday::note))
        .route("/ui/gameday/report/{id}", get(gameday::report))
        .route("/ui/scorecards", get(catalogue::scorecards))
        .route("/ui/scorecards/{team}/{run}", get(catalogue::run))
        .route("/ui/assets/console.css", get(stylesheet))
        .route(
            "/ui/assets/console.js",
            get(|| async { ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], JS) }),
        )
        .layer(middleware::from_fn_with_state(console.clone(), guard))
        .with_state(console)
}

/// On a loopback-only daemon (no token), only loopback host names are served: a page elsewhere
/// cannot rebind a name of its own to 127.0.0.1 and drive the console. Then the headers.
async fn guard(State(console): State<Arc<Console>>, request: Request, next: Next) -> Response {
    if console.token.is_none() {
        let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
        let name = host.rsplit_once(':').map_or(host, |(name, _)| name);
        let loopback = name == "localhost"
            || name.trim_matches(['[', ']']).parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
        if !loopback {
            return (StatusCode::MISDIRECTED_REQUEST, "this console answers to loopback addresses only")
                .into_response();
        }
    }
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Why a request is turned away.
#[derive(Debug)]
enum Denied {
    /// No session: to the sign-in page.
    SignIn,
    /// A form without this session's CSRF token.
    Forged,
    /// Not this role's to do.
    Forbidden(&'static str),
}

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        match self {
            Self::SignIn => Redirect::to("/ui/login").into_response(),
            Self::Forged => {
                (StatusCode::FORBIDDEN, "this form is stale or was not sent from the console: reload the page")
                    .into_response()
            }
            Self::Forbidden(why) => (StatusCode::FORBIDDEN, why).into_response(),
        }
    }
}

/// The session of whoever is signed in.
fn signed_in(console: &Console, headers: &HeaderMap) -> Result<(String, Session), Denied> {
    console.session(headers).ok_or(Denied::SignIn)
}

/// The session behind a form: signed in, in a role `may` allows (else `refusal`), and carrying
/// the session's CSRF token. The role is checked first, so a refusal says why.
fn posted(
    console: &Console,
    headers: &HeaderMap,
    form: &std::collections::HashMap<String, String>,
    may: fn(Role) -> bool,
    refusal: &'static str,
) -> Result<(String, Session), Denied> {
    let (id, session) = signed_in(console, headers)?;
    if !may(session.role) {
        return Err(Denied::Forbidden(refusal));
    }
    checked(&session, form)?;
    Ok((id, session))
}

/// Refuses a form whose CSRF token is not the session's.
fn checked(session: &Session, form: &std::collections::HashMap<String, String>) -> Result<(), Denied> {
    let given = form.get("csrf").map_or("", String::as_str);
    if crate::same_secret(given, &session.csrf) { Ok(()) } else { Err(Denied::Forged) }
}

fn html(markup: Markup) -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], markup.into_string()).into_response()
}

fn session_cookie(id: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/ui"))
        .unwrap_or_else(|_| HeaderValue::from_static(""))
}

async fn login_page(State(console): State<Arc<Console>>) -> Response {
    html(pages::login(console.token.is_some(), None))
}

async fn login(
    State(console): State<Arc<Console>>,
    Form(form): Form<std::collections::HashMap<String, String>>,
) -> Response {
    let given = form.get("token").map_or("", String::as_str);
    let ok = console.token.as_deref().is_none_or(|token| crate::same_secret(given, token));
    if !ok {
        return (StatusCode::UNAUTHORIZED, html(pages::login(true, Some("That is not the admin token."))))
            .into_response();
    }
    let id = console.sessions.open(Role::Facilitator);
    ([(header::SET_COOKIE, session_cookie(&id))], Redirect::to(PREFIX)).into_response()
}

async fn join(State(console): State<Arc<Console>>, Path(code): Path<String>) -> Response {
    let Some(role) = console.sessions.role_of_code(&code) else {
        return (
            StatusCode::NOT_FOUND,
            "this link is not (or no longer) valid: ask the facilitator for the current one",
        )
            .into_response();
    };
    let id = console.sessions.open(role);
    let to = if role == Role::Responder { "/ui/respond" } else { PREFIX };
    ([(header::SET_COOKIE, session_cookie(&id))], Redirect::to(to)).into_response()
}

async fn now(State(console): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let (id, session) = match signed_in(&console, &headers) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let frame = console.frame(Page::Now, &id, &session);
    let inner = pages::now_live(&panel::panels(&console.manager, ENDED_SHOWN, session.role != Role::Responder));
    let mut content = pages::live("/ui/events?page=now", &inner).into_string();
    if session.role == Role::Facilitator {
        let link = |path: String| maud::html! { code { (path) } };
        content.push_str(
            &maud::html! {
                section.share {
                    h2 { "Invite" }
                    p { "Responders join at " (link(console.responder_link())) "; observers at " (link(console.observer_link())) " (on this address)." }
                }
            }
            .into_string(),
        );
    }
    html(pages::document(&frame, "Now", &pages::trusted(content)))
}

fn respond_inner(console: &Console, session: &Session) -> Markup {
    pages::respond_live(&panel::panels(&console.manager, 1, false), &session.csrf, session.name.as_deref())
}

async fn respond(State(console): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let (id, session) = match signed_in(&console, &headers) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    if !session.role.responds() {
        return Redirect::to(PREFIX).into_response();
    }
    let frame = console.frame(Page::Respond, &id, &session);
    let inner = respond_inner(&console, &session);
    html(pages::document(&frame, "Respond", &pages::live("/ui/events?page=respond", &inner)))
}

async fn name(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Form(form): Form<std::collections::HashMap<String, String>>,
) -> Result<Response, Denied> {
    let (id, _) = posted(&console, &headers, &form, Role::responds, "observers watch; they do not act")?;
    let given = form.get("name").map_or("", |n| n.trim());
    if given.is_empty() || given.chars().count() > 64 || given.chars().any(char::is_control) {
        console.sessions.update(&id, |s| s.flash = Some("A name is 1 to 64 printable characters.".into()));
    } else {
        console.sessions.update(&id, |s| s.name = Some(given.to_owned()));
    }
    Ok(Redirect::to("/ui/respond").into_response())
}

/// One act of a responder on a run: what the CLI verb of the same name does.
async fn act(
    State(console): State<Arc<Console>>,
    Path(action): Path<String>,
    headers: HeaderMap,
    Form(form): Form<std::collections::HashMap<String, String>>,
) -> Result<Response, Denied> {
    let (id, session) = posted(&console, &headers, &form, Role::responds, "observers watch; they do not act")?;
    let Some(by) = session.name.clone().or_else(|| (session.role == Role::Facilitator).then(|| "facilitator".into()))
    else {
        return Ok(Redirect::to("/ui/respond").into_response());
    };
    let manager = &console.manager;
    // As the CLI: a run named, or the one in progress, or the blind drill that waits.
    let run = match manager.route(form.get("run").map_or("", String::as_str)) {
        Ok(Route::Run(id)) => id,
        Ok(Route::Armed) if action == "ack" => {
            let flash = if manager.ack_armed(by).is_some() {
                "Acknowledged.".to_owned()
            } else {
                "Not done: the blind drill has started or ended; try again".to_owned()
            };
            console.sessions.update(&id, |s| s.flash = Some(flash));
            return Ok(Redirect::to("/ui/respond").into_response());
        }
        Ok(Route::Armed) => {
            let flash = "Not done: acknowledge the blind drill first".to_owned();
            console.sessions.update(&id, |s| s.flash = Some(flash));
            return Ok(Redirect::to("/ui/respond").into_response());
        }
        Err(e) => {
            console.sessions.update(&id, |s| s.flash = Some(format!("Not done: {e}")));
            return Ok(Redirect::to("/ui/respond").into_response());
        }
    };
    let said = match action.as_str() {
        "ack" => manager.ack(&run, by).await.map(|counted| {
            if counted {
                "Acknowledged.".to_owned()
            } else {
                "Acknowledged (before the fault: a false alarm).".to_owned()
            }
        }),
        "diagnose" => {
            let text = form.get("text").map_or("", |t| t.trim()).to_owned();
            if text.is_empty() {
                Ok("A diagnosis needs words.".to_owned())
            } else {
                manager.diagnose(&run, by, text).await.map(|right| {
                    if right { "Right: that matches.".to_owned() } else { "Not that: keep looking.".to_owned() }
                })
            }
        }
        "hint" => manager
            .hint(&run, by)
            .await
            .map(|hint| hint.map_or_else(|| "No more hints.".to_owned(), |h| format!("Hint: {h}"))),
        "mitigate" => manager
            .mitigate(&run, by)
            .await
            .map(|ms| format!("Mitigated, verified at {} from the fault.", pages::clock(ms))),
        "resolve" => manager.resolve(&run, by).await.map(|()| "Resolved.".to_owned()),
        _ => return Ok((StatusCode::NOT_FOUND, "no such action").into_response()),
    };
    let flash = said.unwrap_or_else(|e| format!("Not done: {e}"));
    console.sessions.update(&id, |s| s.flash = Some(flash));
    Ok(Redirect::to("/ui/respond").into_response())
}

/// The kill switch: disarms every blind drill and aborts every run.
async fn abort(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Form(form): Form<std::collections::HashMap<String, String>>,
) -> Result<Response, Denied> {
    let (id, _) = posted(&console, &headers, &form, |r| r == Role::Facilitator, "only the facilitator aborts")?;
    // The game day first: it must not start its next drill once the kill switch is pressed.
    let day = console.gamedays.end_all("facilitator (console)").await;
    let aborted = console.manager.abort_all("facilitator (console)").await;
    let mut flash = format!("Aborted {} run(s); disarmed {} blind drill(s).", aborted.runs.len(), aborted.disarmed);
    if let Some(day) = day {
        flash = format!("{flash} Ended game day {day}.");
    }
    console.sessions.update(&id, |s| s.flash = Some(flash));
    Ok(Redirect::to(PREFIX).into_response())
}

#[derive(Deserialize)]
struct EventsQuery {
    page: Option<String>,
}

/// Server-Sent Events: the viewer's live fragment, sent again whenever it changes. Each event's
/// id is the server's wall clock (ms), for the page to count the timer on the server's time.
async fn events(State(console): State<Arc<Console>>, headers: HeaderMap, Query(query): Query<EventsQuery>) -> Response {
    let Some((_, session)) = console.session(&headers) else {
        return (StatusCode::UNAUTHORIZED, "sign in first").into_response();
    };
    let respond = query.page.as_deref() == Some("respond") && session.role.responds();
    let render = {
        let console = console.clone();
        let id = cookie(&headers).unwrap_or_default();
        move || {
            // The name may have changed since the stream began.
            let session = console.sessions.get(&id)?;
            Some(if respond {
                respond_inner(&console, &session).into_string()
            } else {
                let reveal = session.role != Role::Responder;
                pages::now_live(&panel::panels(&console.manager, ENDED_SHOWN, reveal)).into_string()
            })
        }
    };
    let mut changes = console.manager.changes();
    let stopping = console.manager.stopping();
    let stream = async_stream(move |tx| async move {
        let mut last = render();
        tokio::pin!(stopping);
        loop {
            tokio::select! {
                () = &mut stopping => return,
                () = tx.closed() => return,
                changed = changes.changed() => if changed.is_err() { return },
            }
            let Some(fragment) = render() else { return };
            if last.as_ref() == Some(&fragment) {
                continue;
            }
            let event = SseEvent::default().event("update").id(crate::clock::wall_ms().to_string()).data(&fragment);
            last = Some(fragment);
            if tx.send(Ok::<_, Infallible>(event)).await.is_err() {
                return;
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default()).into_response()
}

/// A stream fed by a task: the task ends when the stream is dropped (the page closed).
fn async_stream<F, Fut>(task: F) -> tokio_stream::wrappers::ReceiverStream<Result<SseEvent, Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<SseEvent, Infallible>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(task(tx));
    tokio_stream::wrappers::ReceiverStream::new(rx)
}
