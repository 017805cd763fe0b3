//! Located errors: one problem in a TOML file, with its file, line and column and what to do,
//! collected while a file is validated (drills, environment files, readiness policies).

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem in a file (a drill, an environment file, a readiness policy, …), located.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct LocatedError {
    /// The file.
    pub path: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
    /// What is wrong and what to do.
    pub message: String,
}

impl fmt::Display for LocatedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}", self.path.display(), self.line, self.column, self.message)
    }
}

/// Located errors collected while validating one TOML file (drills, environment files).
pub struct Errors<'a> {
    path: &'a Path,
    text: &'a str,
    list: Vec<LocatedError>,
}

impl<'a> Errors<'a> {
    /// No errors yet, for the file at `path` whose text is `text`.
    pub fn new(path: &'a Path, text: &'a str) -> Self {
        Self { path, text, list: Vec::new() }
    }

    /// Where `key` is written as a key (followed by `=`) inside `span`; `span` itself if not found.
    pub fn key_within(&self, span: &std::ops::Range<usize>, key: &str) -> std::ops::Range<usize> {
        let Some(inside) = self.text.get(span.clone()) else { return span.clone() };
        let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
        inside
            .match_indices(key)
            .find(|&(at, _)| {
                let before = inside[..at].chars().next_back().is_none_or(|c| !is_word(c));
                let after = inside[at + key.len()..].trim_start_matches([' ', '\t', '"']);
                before && after.starts_with('=')
            })
            .map_or_else(|| span.clone(), |(at, _)| span.start + at..span.start + at + key.len())
    }

    /// Parses the whole file with serde, recording a syntax or shape error at its place.
    pub fn parse<T: serde::de::DeserializeOwned>(&mut self) -> Option<T> {
        match toml::from_str(self.text) {
            Ok(value) => Some(value),
            Err(e) => {
                let message = e.message().trim_end().to_owned();
                self.at(&e.span().unwrap_or(0..0), message);
                None
            }
        }
    }

    /// The errors so far.
    pub fn into_list(self) -> Vec<LocatedError> {
        self.list
    }

    /// Whether any error was recorded.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Records `message` at the start of `span` (a byte range of the text).
    pub fn at(&mut self, span: &Range<usize>, message: impl Into<String>) {
        let offset = span.start.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        self.list.push(LocatedError { path: self.path.to_owned(), line, column, message: message.into() });
    }
}
