//! The crate's layering, read from its own `crate::` paths: dependencies point one way, from the
//! CLI at the edge down to the leaves, with no cycle between top-level modules and no import of
//! `cli` from below it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every top-level module and its layer: a module may use modules of its own layer or below it,
/// never above. A new top-level module must be placed here (the test says so).
const LAYERS: &[(&str, u8)] = &[
    // Leaves: value types, formats and mechanisms with no firedrill concepts above them.
    ("proxy", 0),
    ("slo", 0),
    ("journal", 0),
    ("located", 0),
    ("duration", 0),
    ("clock", 0),
    ("probe", 0),
    ("signal", 0),
    ("drill", 1),
    ("supervise", 2),
    ("fault", 2),
    ("run", 3),
    ("scorecard", 3),
    ("console", 4),
    ("gameday", 4),
    ("control", 4),
    ("serve", 4),
    ("shop", 4),
    ("cli", 5),
];

/// The top-level module a source file belongs to (`None` for `lib.rs` and `main.rs`).
fn top_module(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).ok()?;
    let first = relative.components().next()?.as_os_str().to_string_lossy().into_owned();
    let name = first.strip_suffix(".rs").unwrap_or(&first).to_owned();
    (name != "lib" && name != "main").then_some(name)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without its comments (doc links name modules without using them).
fn code(text: &str) -> String {
    text.lines().map(|line| line.split("//").next().unwrap_or_default()).collect::<Vec<_>>().join("\n")
}

/// The first path segment of every `crate::` path in `code`, groups (`crate::{a::b, c}`) included.
fn crate_paths(code: &str) -> BTreeSet<String> {
    let word = |s: &str| s.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect::<String>();
    let mut found = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        let Some(group) = rest.strip_prefix('{') else {
            found.insert(word(rest));
            continue;
        };
        let (mut depth, mut item_start) = (0_usize, true);
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => break,
                '}' => depth -= 1,
                ',' if depth == 0 => item_start = true,
                c if item_start && !c.is_whitespace() => {
                    found.insert(word(&group[i..]));
                    item_start = false;
                }
                _ => {}
            }
        }
    }
    found.retain(|w| !w.is_empty());
    found
}

/// Which top-level modules each top-level module uses, with one file that shows it.
fn edges(src: &Path, modules: &BTreeSet<String>) -> BTreeMap<(String, String), PathBuf> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut edges = BTreeMap::new();
    for file in files {
        let Some(from) = top_module(src, &file) else { continue };
        for to in crate_paths(&code(&std::fs::read_to_string(&file).unwrap())) {
            if to != from && modules.contains(&to) {
                edges.entry((from.clone(), to)).or_insert_with(|| file.clone());
            }
        }
    }
    edges
}

/// A cycle among `edges`, as the modules around it, if there is one.
fn cycle(edges: &BTreeSet<(String, String)>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeSet<(String, String)>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut around = path[at..].to_vec();
            around.push(node.to_owned());
            return Some(around);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for (_, to) in edges.iter().filter(|(from, _)| from == node) {
            if let Some(found) = visit(to, edges, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    edges.iter().find_map(|(from, _)| visit(from, edges, &mut Vec::new(), &mut done))
}

/// Every rule the layering keeps, broken ones as sentences.
fn violations(src: &Path) -> Vec<String> {
    let declared: BTreeMap<&str, u8> = LAYERS.iter().copied().collect();
    let mut modules = BTreeSet::new();
    for entry in std::fs::read_dir(src).unwrap().map(Result::unwrap) {
        let path = entry.path();
        if let Some(name) = top_module(src, &path)
            && (path.is_dir() || path.extension().is_some_and(|x| x == "rs"))
        {
            modules.insert(name);
        }
    }
    let mut problems: Vec<String> = modules
        .iter()
        .filter(|m| !declared.contains_key(m.as_str()))
        .map(|m| format!("top-level module `{m}` has no layer: place it in LAYERS"))
        .collect();
    let edges = edges(src, &modules);
    for ((from, to), file) in &edges {
        let (Some(&low), Some(&high)) = (declared.get(to.as_str()), declared.get(from.as_str())) else { continue };
        if to == "cli" {
            problems.push(format!("`{from}` imports `cli` ({}): nothing below the CLI may", file.display()));
        } else if low > high {
            problems.push(format!(
                "`{from}` (layer {high}) imports `{to}` (layer {low}) in {}: dependencies point down",
                file.display()
            ));
        }
    }
    if let Some(around) = cycle(&edges.keys().cloned().collect()) {
        problems.push(format!("cycle between top-level modules: {}", around.join(" -> ")));
    }
    problems
}

#[test]
fn dependencies_point_one_way_from_the_cli_down_to_the_leaves() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let problems = violations(&src);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The reading itself works: the CLI is seen to use the daemon, and the runner the journal.
    let modules = LAYERS.iter().map(|(m, _)| (*m).to_owned()).collect();
    let edges = edges(&src, &modules);
    for (from, to) in [("cli", "serve"), ("run", "journal"), ("drill", "proxy"), ("scorecard", "journal")] {
        assert!(edges.contains_key(&(from.into(), to.into())), "{from} -> {to} not seen");
    }
}

#[test]
fn a_cycle_or_an_upward_import_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir(src.join("drill")).unwrap();
    std::fs::write(src.join("lib.rs"), "pub mod drill;\npub mod run;\npub mod cli;\n").unwrap();
    std::fs::write(
        src.join("drill/mod.rs"),
        "// crate::cli in a comment is no import\nuse crate::{proxy, run::Runner};\n",
    )
    .unwrap();
    std::fs::write(src.join("run.rs"), "use crate::drill::Drill;\nfn f(_: crate::cli::Failure) {}\n").unwrap();
    std::fs::write(src.join("cli.rs"), "use crate::run;\n").unwrap();
    std::fs::write(src.join("extra.rs"), "").unwrap();
    let problems = violations(src);
    let expected = [
        "top-level module `extra` has no layer: place it in LAYERS".to_owned(),
        format!(
            "`drill` (layer 1) imports `run` (layer 3) in {}: dependencies point down",
            src.join("drill/mod.rs").display()
        ),
        format!("`run` imports `cli` ({}): nothing below the CLI may", src.join("run.rs").display()),
        "cycle between top-level modules: cli -> run -> cli".to_owned(),
    ];
    assert_eq!(problems, expected);
    assert_eq!(
        crate_paths("use crate::{a::{b, c}, d, e::f};\nlet x = crate::g::h(); crate::{ i };"),
        ["a", "d", "e", "g", "i"].map(String::from).into_iter().collect()
    );
}
