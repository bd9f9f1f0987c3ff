//! Tidy checks over the registry's sources, in the spirit of rust-analyzer's tidy tests: every
//! file opens with a `//!` line, `domain` is pure, and the layers import only downward.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files_below(directory: &Path, found: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(directory)
        .unwrap_or_else(|error| panic!("read {}: {error}", directory.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files_below(&path, found);
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            found.push(path);
        }
    }
}

/// Every `.rs` file under `registry/src` and `registry/tests` opens with a `//!` line saying
/// what lives there (STYLE.md 2.7).
#[test]
fn every_source_file_begins_with_a_module_doc_line() {
    let crate_root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for directory in ["src", "tests"] {
        rust_files_below(&crate_root.join(directory), &mut files);
    }
    assert!(
        files.len() > 10,
        "expected the registry's sources under {}, found {files:?}",
        crate_root.display()
    );
    let offenders: Vec<String> = files
        .iter()
        .filter(|path| {
            let text = std::fs::read_to_string(path)
                .unwrap_or_else(|error| panic!("read {}: {error}", path.display()));
            !text.starts_with("//!")
        })
        .map(|path| {
            path.strip_prefix(crate_root)
                .unwrap_or(path)
                .display()
                .to_string()
        })
        .collect();
    assert!(
        offenders.is_empty(),
        "these files do not begin with a `//!` line: {offenders:?}"
    );
}

/// The code of a Rust file with comments dropped: line comments, doc comments and the text
/// after `//` on a line (good enough for our sources, which put no `//` inside strings that
/// name a crate).
fn code_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .filter(|code| !code.trim().is_empty())
}

fn sources_below(relative: &str) -> Vec<(String, String)> {
    let crate_root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files_below(&crate_root.join(relative), &mut files);
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|error| panic!("read {}: {error}", path.display()));
            let name = path
                .strip_prefix(crate_root)
                .unwrap_or(&path)
                .display()
                .to_string();
            (name, text)
        })
        .collect()
}

/// The first-level modules a piece of code names as `crate::<module>`, in `use` lines and in
/// paths alike (`use crate::{a, b}` included).
fn crate_modules_named(code: &str) -> BTreeSet<String> {
    let mut named = BTreeSet::new();
    let identifier = |text: &str| -> String {
        text.chars()
            .take_while(|character| character.is_ascii_alphanumeric() || *character == '_')
            .collect()
    };
    for (position, _) in code.match_indices("crate::") {
        let rest = &code[position + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = group.split('}').next().unwrap_or("");
            for item in group.split(',') {
                let module = identifier(item.trim());
                if !module.is_empty() {
                    named.insert(module);
                }
            }
        } else {
            let module = identifier(rest);
            if !module.is_empty() {
                named.insert(module);
            }
        }
    }
    named
}

/// `src/<module>.rs` and everything under `src/<module>/` belong to `<module>`.
fn module_of(file: &str) -> Option<String> {
    let inside = file.strip_prefix("src/")?;
    let first = inside.split('/').next()?;
    Some(first.trim_end_matches(".rs").to_owned())
}

/// The edges `from -> to` between first-level modules of `registry/src`, from `crate::` paths.
fn module_edges() -> BTreeMap<String, BTreeSet<String>> {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (file, text) in sources_below("src") {
        let Some(from) = module_of(&file) else {
            continue;
        };
        let code: Vec<&str> = code_lines(&text).collect();
        for to in crate_modules_named(&code.join("\n")) {
            if to != from {
                edges.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    edges
}

/// A cycle among `members` (edges to other modules ignored), as the path that closes it.
fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>, members: &[&str]) -> Option<Vec<String>> {
    fn visit(
        module: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        members: &[&str],
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|seen| seen == module) {
            let mut cycle = path[start..].to_vec();
            cycle.push(module.to_owned());
            return Some(cycle);
        }
        if done.contains(module) {
            return None;
        }
        path.push(module.to_owned());
        let inside = edges
            .get(module)
            .into_iter()
            .flatten()
            .filter(|next| members.contains(&next.as_str()));
        for next in inside {
            if let Some(cycle) = visit(next, edges, members, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(module.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    members
        .iter()
        .find_map(|member| visit(member, edges, members, &mut Vec::new(), &mut done))
}

/// `domain` holds the rules and nothing else (ARCHITECTURE.md, STYLE.md 2.2): no async
/// functions, no runtime, database, HTTP, gRPC, AMQP or object-storage crate, no file system.
#[test]
fn domain_is_pure() {
    let forbidden_crates = [
        "tokio",
        "sqlx",
        "axum",
        "tonic",
        "lapin",
        "object_store",
        "reqwest",
    ];
    let files = sources_below("src/domain");
    assert!(
        files.len() >= 5,
        "expected the domain's files, found {}",
        files.len()
    );
    let mut offenders = Vec::new();
    for (file, text) in &files {
        for (number, code) in code_lines(text).enumerate() {
            let words: Vec<&str> = code
                .split(|character: char| !(character.is_ascii_alphanumeric() || character == '_'))
                .filter(|word| !word.is_empty())
                .collect();
            let names_crate = forbidden_crates.iter().any(|name| {
                code.contains(&format!("{name}::"))
                    || words.windows(2).any(|pair| pair == ["use", *name])
            });
            let is_async = words.contains(&"async") || code.contains(".await");
            let touches_files = code.contains("std::fs") || code.contains("fs::");
            if names_crate || is_async || touches_files {
                offenders.push(format!(
                    "{file} (code line {}): {}",
                    number + 1,
                    code.trim()
                ));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "domain must stay pure: {offenders:#?}"
    );
}

/// The lower layers never reach up: nothing in `domain` or `store` names the HTTP API, the web
/// UI, the handlers' shared state, the events relay or the wiring.
#[test]
fn domain_and_store_do_not_import_upward() {
    let edges = module_edges();
    assert!(
        edges
            .get("api")
            .is_some_and(|to| to.contains("store") || to.contains("state")),
        "the scan should see the API's imports, found {edges:?}"
    );
    for lower in ["domain", "store"] {
        let upward: Vec<&String> = edges
            .get(lower)
            .into_iter()
            .flatten()
            .filter(|to| ["api", "ui", "app", "state", "events"].contains(&to.as_str()))
            .collect();
        assert!(upward.is_empty(), "`{lower}` imports upward: {upward:?}");
    }
}

/// No import cycle among the wiring, the API, the UI, the shared state, the events relay and
/// the store.
#[test]
fn no_import_cycle_between_app_api_ui_state_events_and_store() {
    let members = ["app", "api", "ui", "state", "events", "store"];
    let edges = module_edges();
    assert_eq!(find_cycle(&edges, &members), None, "edges: {edges:?}");

    // The check itself finds a cycle when there is one.
    let mut with_cycle = edges.clone();
    with_cycle
        .entry("store".to_owned())
        .or_default()
        .insert("api".to_owned());
    assert!(find_cycle(&with_cycle, &members).is_some());
}
