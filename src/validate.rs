//! `firedrill validate PATH...`: checks drill files and proxy files, and reports every problem.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::anyhow;

use crate::cli::Failure;
use crate::drill::{self, Environment};
use crate::proxy::config;

/// Where proxy files are looked for when no proxy file is named.
pub const DEFAULT_PROXY_DIR: &str = "proxies";

/// Expands directories into their `.toml` and `.json` files, sorted.
fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Failure> {
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            let entries = std::fs::read_dir(path).map_err(|e| Failure::BadInput(anyhow!("{}: {e}", path.display())))?;
            let mut files: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "toml" || x == "json"))
                .collect();
            files.sort();
            out.extend(files);
        } else {
            out.push(path.clone());
        }
    }
    Ok(out)
}

fn is_proxy_file(path: &Path) -> bool {
    path.extension().is_some_and(|x| x == "json")
}

/// Validates every file; prints one line per good file on stdout and every problem on stderr.
/// Drills are checked against the proxies of the proxy files given, or of `proxies/` if none is.
pub fn run(paths: &[PathBuf]) -> Result<(), Failure> {
    let files = expand(paths)?;
    let mut proxy_files: Vec<PathBuf> = files.iter().filter(|p| is_proxy_file(p)).cloned().collect();
    let checked_proxy_files = proxy_files.clone();
    if proxy_files.is_empty() && Path::new(DEFAULT_PROXY_DIR).is_dir() {
        proxy_files = expand(&[PathBuf::from(DEFAULT_PROXY_DIR)])?.into_iter().filter(|p| is_proxy_file(p)).collect();
    }
    let mut problems: Vec<String> = Vec::new();
    let environment = match config::load_files(&proxy_files) {
        Ok(configs) => Environment { proxies: configs.into_iter().map(|c| c.name).collect() },
        Err(errors) => {
            problems.extend(errors.iter().map(ToString::to_string));
            Environment::default()
        }
    };
    for file in &checked_proxy_files {
        if !problems.iter().any(|p| p.starts_with(&file.display().to_string())) {
            println!("ok  {}", file.display());
        }
    }
    let mut names: BTreeMap<String, PathBuf> = BTreeMap::new();
    for file in files.iter().filter(|p| !is_proxy_file(p)) {
        match drill::load(file, &environment) {
            Ok(drill) => {
                if let Some(first) = names.insert(drill.name.clone(), file.clone()) {
                    problems.push(format!(
                        "{}: drill name `{}` is also used by {}; drill names must be unique",
                        file.display(),
                        drill.name,
                        first.display()
                    ));
                    continue;
                }
                println!(
                    "ok  {}  ({}: {} fault(s), {} hint(s), timebox {})",
                    file.display(),
                    drill.name,
                    drill.faults.len(),
                    drill.hints.len(),
                    drill::duration::format(drill.timebox)
                );
            }
            Err(errors) => problems.extend(errors.iter().map(ToString::to_string)),
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    for problem in &problems {
        eprintln!("{problem}");
    }
    Err(Failure::BadInput(anyhow!("{} problem(s) found; nothing was changed", problems.len())))
}
