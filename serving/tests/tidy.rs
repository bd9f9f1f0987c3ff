//! Layering rules of `serving/src`, checked on the source text: no import cycle between its
//! modules, a pure planner, and a `//!` line opening every file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read the source directory") {
        let path = entry.expect("read a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to: `manager` for `src/manager.rs`, `api` for
/// `src/api/grpc.rs`; `None` for the crate roots.
fn module_of(path: &Path) -> Option<String> {
    let relative = path.strip_prefix(src()).expect("a file under src");
    let first = relative.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main")).then(|| name.to_owned())
}

/// Lines of code, without comment lines.
fn code_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .filter(|line| !line.trim_start().starts_with("//"))
}

/// The top-level modules `text` names through `crate::`.
fn crate_paths(text: &str) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    for line in code_lines(text) {
        for (at, _) in line.match_indices("crate::") {
            let before = line[..at].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let rest = &line[at + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                used.insert(name);
            }
        }
    }
    used
}

fn import_graph(files: &[(PathBuf, String)]) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (path, text) in files {
        let Some(module) = module_of(path) else {
            continue;
        };
        let edges = graph.entry(module.clone()).or_default();
        edges.extend(crate_paths(text).into_iter().filter(|used| *used != module));
    }
    graph
}

/// A cycle in `graph` as the modules along it, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|seen| seen == node) {
            let mut cycle = path[start..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

fn sources() -> Vec<(PathBuf, String)> {
    let mut paths = Vec::new();
    rust_files(&src(), &mut paths);
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("read a source file");
            (path, text)
        })
        .collect()
}

#[test]
fn serving_modules_import_each_other_without_cycles() {
    let files = sources();
    let graph = import_graph(&files);
    assert!(graph.contains_key("manager") && graph["service"].contains("manager"));
    if let Some(cycle) = find_cycle(&graph) {
        panic!("import cycle: {}", cycle.join(" -> "));
    }
}

#[test]
fn the_cycle_check_finds_cycles() {
    let files = vec![
        (
            src().join("a.rs"),
            "use crate::b::X;\n// crate::c in a comment\n".to_owned(),
        ),
        (src().join("b.rs"), "fn f() { crate::a::g() }\n".to_owned()),
        (src().join("c.rs"), "use crate::a;\n".to_owned()),
    ];
    let graph = import_graph(&files);
    assert_eq!(
        find_cycle(&graph),
        Some(vec!["a".into(), "b".into(), "a".into()])
    );
    let files = vec![
        (src().join("a.rs"), "use crate::b::X;\n".to_owned()),
        (
            src().join("api/v2.rs"),
            "use crate::a;\nuse crate::api::json;\n".to_owned(),
        ),
    ];
    assert_eq!(find_cycle(&import_graph(&files)), None);
}

#[test]
fn the_planner_is_pure() {
    let text = std::fs::read_to_string(src().join("planner.rs")).expect("read planner.rs");
    let forbidden = [
        "async", ".await", "tokio", "tonic", "axum", "std::fs", "std::net", "reqwest", "crate::",
    ];
    for line in code_lines(&text) {
        for word in forbidden {
            assert!(
                !line.contains(word),
                "planner.rs must stay pure, but uses '{word}': {line}"
            );
        }
    }
}

#[test]
fn every_source_file_opens_with_a_module_comment() {
    for (path, text) in sources() {
        assert!(
            text.starts_with("//!"),
            "{} does not open with a `//!` line",
            path.display()
        );
    }
}
