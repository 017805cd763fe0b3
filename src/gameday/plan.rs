//! Game-day plan files (`gamedays/*.toml`): the TOML's shape, and loading it into a checked
//! [`Plan`] with every problem located at its file, line and column.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::located::{Errors, LocatedError};

/// A checked game-day plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The file stem: what `firedrill gameday start` takes.
    pub name: String,
    /// The file it came from.
    pub path: PathBuf,
    /// What people see in invites and reports.
    pub title: String,
    /// The team whose scorecards its runs write.
    pub team: String,
    /// When it takes place; `None` for a plan started by hand only.
    pub when: Option<super::when::When>,
    /// How long the calendar blocks for it.
    pub length: Duration,
    /// Who does what.
    pub roles: Roles,
    /// The drills, blind picks and breaks, in order.
    pub sequence: Vec<Step>,
    /// What the day runs against.
    pub environment: EnvironmentFiles,
    /// Asked at the debrief; notes answer them by number (1-based).
    pub questions: Vec<String>,
    /// Where the day's notifications go.
    pub notify: Vec<Webhook>,
}

/// A person: a name, and an e-mail address for calendar invites.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Person {
    /// What they are called in scorecards (`--responder`).
    pub name: String,
    /// Where invites go, when known.
    pub email: Option<String>,
}

impl Person {
    /// `Name` or `Name <address>`.
    fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (name, email) = match text.split_once('<') {
            Some((name, rest)) => {
                let Some(email) = rest.strip_suffix('>') else {
                    return Err(format!("`{text}`: write a person as `Name` or `Name <address>`"));
                };
                let email = email.trim();
                let valid = email.split_once('@').is_some_and(|(user, host)| !user.is_empty() && host.contains('.'));
                if !valid || email.contains(char::is_whitespace) {
                    return Err(format!("`{email}` is not an e-mail address (user@host.domain)"));
                }
                (name.trim(), Some(email.to_owned()))
            }
            None => (text, None),
        };
        if name.is_empty() || name.chars().any(char::is_control) || name.len() > 100 {
            return Err(format!("`{text}`: a person needs a name (at most 100 characters)"));
        }
        Ok(Self { name: name.to_owned(), email })
    }
}

/// Who does what on the day.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Roles {
    /// Runs the day: starts it, keeps time, leads the debrief.
    pub facilitator: Option<Person>,
    /// Respond to the faults.
    pub responders: Vec<Person>,
    /// Watch and take notes.
    pub observers: Vec<Person>,
}

impl Roles {
    /// Everyone, with their role's name.
    pub fn everyone(&self) -> Vec<(&'static str, &Person)> {
        let mut out: Vec<(&'static str, &Person)> = self.facilitator.iter().map(|p| ("facilitator", p)).collect();
        out.extend(self.responders.iter().map(|p| ("responder", p)));
        out.extend(self.observers.iter().map(|p| ("observer", p)));
        out
    }
}

/// One step of the day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A drill, by name.
    Drill(String),
    /// One drill drawn from these, run sealed: responders are not told which.
    Blind(Vec<String>),
    /// A pause between drills.
    Break(Duration),
}

impl Step {
    /// How people read it in `gameday show` and reports.
    pub fn describe(&self) -> String {
        match self {
            Self::Drill(name) => format!("drill {name}"),
            Self::Blind(set) => format!("a blind drill drawn from {} drill(s)", set.len()),
            Self::Break(length) => format!("break {}", crate::duration::format(*length)),
        }
    }
}

/// What the day runs against.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EnvironmentFiles {
    /// Proxy files its drills are checked against (relative to the plan's directory).
    pub proxies: Vec<PathBuf>,
    /// An environment file the daemon starts (`firedrill up`) when the day begins.
    pub up: Option<PathBuf>,
}

/// A webhook for the day's notifications.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// `http://` or `https://`.
    pub url: String,
    /// Slack-compatible (`{"text": …}`) or the plain JSON form.
    pub format: WebhookFormat,
}

/// How a notification is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// A Slack incoming webhook's `{"text": "…"}` (also Mattermost, Rocket.Chat, Teams' Slack form).
    Slack,
    /// Every field as JSON, for your own receiver.
    Json,
}

/// The most steps a plan may have, and the longest break: a typo must not make a day of a year.
const MAX_STEPS: usize = 50;
const MAX_BREAK: Duration = Duration::from_secs(4 * 3600);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanFile {
    gameday: Spanned<GamedaySection>,
    roles: Option<Spanned<RolesSection>>,
    #[serde(default)]
    sequence: Vec<Spanned<StepSection>>,
    environment: Option<Spanned<EnvironmentSection>>,
    debrief: Option<Spanned<DebriefSection>>,
    #[serde(default)]
    notify: Vec<Spanned<NotifySection>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GamedaySection {
    title: String,
    team: Spanned<String>,
    start: Option<Spanned<String>>,
    time_zone: Option<Spanned<String>>,
    repeat: Option<Spanned<String>>,
    length: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RolesSection {
    facilitator: Option<Spanned<String>>,
    #[serde(default)]
    responders: Vec<Spanned<String>>,
    #[serde(default)]
    observers: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StepSection {
    drill: Option<Spanned<String>>,
    blind: Option<Spanned<Vec<String>>>,
    #[serde(rename = "break")]
    pause: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvironmentSection {
    #[serde(default)]
    proxies: Vec<String>,
    up: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DebriefSection {
    #[serde(default)]
    questions: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NotifySection {
    url: Spanned<String>,
    format: Option<Spanned<WebhookFormat>>,
}

/// Whether a TOML file is a game-day plan rather than a drill (it has a `[gameday]` table).
pub fn is_plan(path: &Path) -> bool {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| text.parse::<toml::Table>().ok())
        .is_some_and(|table| table.contains_key("gameday"))
}

/// Loads and checks a plan. `drills` are the drill names it may use (`None`: not checked, as
/// when the drill directory is not at hand).
pub fn load(path: &Path, drills: Option<&[String]>) -> Result<Plan, Vec<LocatedError>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![LocatedError { path: path.to_owned(), line: 1, column: 1, message: format!("cannot read it: {e}") }]
    })?;
    parse(path, &text, drills)
}

/// Checks a plan's text (see [`load`]).
pub fn parse(path: &Path, text: &str, drills: Option<&[String]>) -> Result<Plan, Vec<LocatedError>> {
    let mut errors = Errors::new(path, text);
    let Some(file) = errors.parse::<PlanFile>() else { return Err(errors.into_list()) };
    let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    if !crate::is_plain_name(&name) {
        errors.at(&(0..0), format!("the file name `{name}` names the plan: use letters, digits, `-` and `_` only"));
    }
    let section = file.gameday.get_ref();
    let team = section.team.get_ref().clone();
    if !crate::is_team_name(&team, 64) {
        errors.at(&section.team.span(), "a team is a name of letters, digits, `-`, `_` and `.` (at most 64)");
    }
    let keys = super::when::Keys {
        start: section.start.as_ref(),
        time_zone: section.time_zone.as_ref(),
        repeat: section.repeat.as_ref(),
    };
    let when = super::when::check(&keys, &mut errors);
    let length = match &section.length {
        Some(length) => duration_at(&mut errors, length, "length"),
        None => None,
    };
    let roles = file.roles.as_ref().map(|r| roles(r.get_ref(), &mut errors)).unwrap_or_default();
    let sequence = steps(&file, drills, &mut errors);
    let base = path.parent().unwrap_or(Path::new("."));
    let environment = file
        .environment
        .as_ref()
        .map(|e| {
            let e = e.get_ref();
            EnvironmentFiles {
                proxies: e.proxies.iter().map(|p| base.join(p)).collect(),
                up: e.up.as_ref().map(|p| base.join(p)),
            }
        })
        .unwrap_or_default();
    let notify = file
        .notify
        .iter()
        .filter_map(|hook| {
            let url = hook.get_ref().url.get_ref();
            if !(url.starts_with("http://") || url.starts_with("https://")) || url.parse::<http::Uri>().is_err() {
                errors.at(&hook.get_ref().url.span(), format!("`{url}` is not an http:// or https:// URL"));
                return None;
            }
            let format = hook.get_ref().format.as_ref().map_or(WebhookFormat::Slack, |f| *f.get_ref());
            Some(Webhook { url: url.clone(), format })
        })
        .collect();
    let questions = file.debrief.map(|d| d.into_inner().questions).unwrap_or_default();
    if !errors.is_empty() {
        return Err(errors.into_list());
    }
    let default_length = Duration::from_secs(2 * 3600);
    Ok(Plan {
        name,
        path: path.to_owned(),
        title: section.title.clone(),
        team,
        when,
        length: length.unwrap_or(default_length),
        roles,
        sequence,
        environment,
        questions,
        notify,
    })
}

fn duration_at(errors: &mut Errors<'_>, text: &Spanned<String>, what: &str) -> Option<Duration> {
    match crate::duration::parse(text.get_ref()) {
        Ok(d) if !d.is_zero() => Some(d),
        Ok(_) => {
            errors.at(&text.span(), format!("{what} must be longer than 0"));
            None
        }
        Err(e) => {
            errors.at(&text.span(), format!("{what}: {e}"));
            None
        }
    }
}

fn roles(section: &RolesSection, errors: &mut Errors<'_>) -> Roles {
    let mut person = |text: &Spanned<String>| match Person::parse(text.get_ref()) {
        Ok(p) => Some(p),
        Err(e) => {
            errors.at(&text.span(), e);
            None
        }
    };
    let facilitator = section.facilitator.as_ref().and_then(&mut person);
    let responders = section.responders.iter().filter_map(&mut person).collect();
    let observers = section.observers.iter().filter_map(&mut person).collect();
    Roles { facilitator, responders, observers }
}

fn steps(file: &PlanFile, drills: Option<&[String]>, errors: &mut Errors<'_>) -> Vec<Step> {
    if file.sequence.is_empty() {
        errors.at(&file.gameday.span(), "a game day needs a sequence: add `[[sequence]]` tables with `drill = \"…\"`");
    }
    if file.sequence.len() > MAX_STEPS {
        errors.at(&file.sequence[MAX_STEPS].span(), format!("a game day has at most {MAX_STEPS} steps"));
    }
    let check_drill = |name: &Spanned<String>, errors: &mut Errors<'_>| {
        let known = drills.is_none_or(|d| d.iter().any(|n| n == name.get_ref()));
        if !crate::is_plain_name(name.get_ref()) || !known {
            errors.at(
                &name.span(),
                format!(
                    "no drill `{}` in the drill directory (`firedrill validate drills/` lists them)",
                    name.get_ref()
                ),
            );
        }
    };
    let mut out = Vec::new();
    for step in &file.sequence {
        let section = step.get_ref();
        let step = match (&section.drill, &section.blind, &section.pause) {
            (Some(drill), None, None) => {
                check_drill(drill, errors);
                Step::Drill(drill.get_ref().clone())
            }
            (None, Some(set), None) => {
                if set.get_ref().is_empty() {
                    errors.at(&set.span(), "a blind pick needs at least one drill to draw from");
                }
                for name in set.get_ref() {
                    let spanned = Spanned::new(set.span(), name.clone());
                    check_drill(&spanned, errors);
                }
                Step::Blind(set.get_ref().clone())
            }
            (None, None, Some(pause)) => {
                let Some(length) = duration_at(errors, pause, "break") else { continue };
                if length > MAX_BREAK {
                    errors.at(&pause.span(), format!("a break is at most {}", crate::duration::format(MAX_BREAK)));
                }
                Step::Break(length)
            }
            _ => {
                errors.at(
                    &step.span(),
                    "each `[[sequence]]` step is one of `drill = \"…\"`, `blind = [\"…\"]` or `break = \"10m\"`",
                );
                continue;
            }
        };
        out.push(step);
    }
    if !out.iter().any(|s| !matches!(s, Step::Break(_))) && !file.sequence.is_empty() {
        errors.at(&file.sequence[0].span(), "a game day needs at least one drill, not only breaks");
    }
    out
}
