//! Who is looking at the console: sessions, their roles, and the codes that open them.
//!
//! A facilitator signs in with the daemon's admin token (or, on a loopback-only daemon with no
//! token, with nothing); responders and observers follow a link carrying a code the facilitator
//! shares. Each gets an `HttpOnly`, `SameSite=Strict` cookie naming a session kept here, and a
//! CSRF token every form must carry.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

/// What a session may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Drives the game day: starts and aborts drills, and everything else.
    Facilitator,
    /// Works the incident: acknowledges, diagnoses, asks for hints, mitigates, resolves.
    Responder,
    /// Watches: read-only.
    Observer,
}

impl Role {
    /// As shown on the pages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Facilitator => "facilitator",
            Self::Responder => "responder",
            Self::Observer => "observer",
        }
    }

    /// Whether this role may act on a run (ack, diagnose, …).
    pub fn responds(self) -> bool {
        matches!(self, Self::Facilitator | Self::Responder)
    }
}

/// One signed-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    /// What it may do.
    pub role: Role,
    /// The name a responder gave (remembered for every act).
    pub name: Option<String>,
    /// The token every form of this session carries.
    pub csrf: String,
    /// A message for the next page, shown once.
    pub flash: Option<String>,
}

/// The cookie that names a session.
pub const COOKIE: &str = "firedrill_console";

/// How many sessions a daemon keeps; the oldest go first (a game day has tens of people).
const MAX_SESSIONS: usize = 10_000;

/// Every session of this daemon, and the codes that open responder and observer sessions.
#[derive(Debug)]
pub struct Sessions {
    open: Mutex<HashMap<String, (u64, Session)>>,
    counter: std::sync::atomic::AtomicU64,
    /// Opens a responder session (`/ui/join/CODE`).
    pub responder_code: String,
    /// Opens an observer session.
    pub observer_code: String,
}

/// A random hex secret of 128 bits.
pub fn secret() -> String {
    format!("{:032x}", rand::random::<u128>())
}

impl Default for Sessions {
    fn default() -> Self {
        Self {
            open: Mutex::default(),
            counter: std::sync::atomic::AtomicU64::new(0),
            responder_code: secret()[..12].to_owned(),
            observer_code: secret()[..12].to_owned(),
        }
    }
}

impl Sessions {
    /// Opens a session; returns its id (the cookie's value).
    pub fn open(&self, role: Role) -> String {
        let id = secret();
        let order = self.counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut sessions = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = sessions.iter().min_by_key(|(_, (n, _))| *n).map(|(k, _)| k.clone())
        {
            sessions.remove(&oldest);
        }
        sessions.insert(id.clone(), (order, Session { role, name: None, csrf: secret(), flash: None }));
        id
    }

    /// The session of a cookie value.
    pub fn get(&self, id: &str) -> Option<Session> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner).get(id).map(|(_, s)| s.clone())
    }

    /// Changes a session.
    pub fn update(&self, id: &str, change: impl FnOnce(&mut Session)) {
        if let Some((_, session)) = self.open.lock().unwrap_or_else(PoisonError::into_inner).get_mut(id) {
            change(session);
        }
    }

    /// The role a join code opens, if any.
    pub fn role_of_code(&self, code: &str) -> Option<Role> {
        if crate::same_secret(code, &self.responder_code) {
            Some(Role::Responder)
        } else if crate::same_secret(code, &self.observer_code) {
            Some(Role::Observer)
        } else {
            None
        }
    }
}
