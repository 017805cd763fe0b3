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

/// The proxy files of `proxies/`, when there is such a directory.
fn default_proxy_files() -> Result<Vec<PathBuf>, Failure> {
    if !Path::new(DEFAULT_PROXY_DIR).is_dir() {
        return Ok(Vec::new());
    }
    Ok(expand(&[PathBuf::from(DEFAULT_PROXY_DIR)])?.into_iter().filter(|p| is_proxy_file(p)).collect())
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
    if proxy_files.is_empty() {
        proxy_files = default_proxy_files()?;
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

/// `firedrill run --dry-run`: loads the drill (from `drills`, against the proxies of `proxies/`)
/// and prints exactly what each fault would touch, and when. Touches nothing.
pub fn dry_run(drills: &Path, name: &str) -> Result<(), Failure> {
    let path = drills.join(format!("{name}.toml"));
    let proxy_files = default_proxy_files()?;
    let configs = config::load_files(&proxy_files).map_err(|errors| {
        Failure::BadInput(anyhow!("{}", errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")))
    })?;
    let listen: BTreeMap<String, String> =
        configs.iter().map(|c| (c.name.clone(), format!("{} -> {}", c.listen, c.upstream))).collect();
    let environment = Environment { proxies: listen.keys().cloned().collect() };
    let drill = drill::load(&path, &environment).map_err(|errors| {
        Failure::BadInput(anyhow!("{}", errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")))
    })?;
    println!("dry run of {} ({}): nothing is touched", drill.name, path.display());
    println!("  timebox {}", drill::duration::format(drill.timebox));
    for (index, fault) in drill.faults.iter().enumerate() {
        let until = fault
            .duration
            .map_or_else(|| "until the run ends".to_owned(), |d| format!("for {}", drill::duration::format(d)));
        let toxic = serde_json::to_string(&fault.toxic).unwrap_or_default();
        println!(
            "  fault {index}: at {} {until}, proxy `{}` ({}): toxic {}",
            drill::duration::format(fault.at),
            fault.proxy,
            listen.get(&fault.proxy).map_or("?", String::as_str),
            toxic
        );
    }
    for hint in &drill.hints {
        let when =
            hint.after.map_or_else(|| "on request".to_owned(), |a| format!("after {}", drill::duration::format(a)));
        println!("  hint {when}: {}", hint.text);
    }
    Ok(())
}
