//! Tidy checks over a crate's own sources, in the spirit of rust-analyzer's tidy tests: the
//! `.rs` files below a directory, whether each opens with a `//!` line, and the `use crate::`
//! edges between modules (for layering rules).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Every `.rs` file below `directory`, recursively, sorted; none when it does not exist.
pub fn rust_files(directory: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    collect(directory, &mut found);
    found.sort();
    found
}

fn collect(directory: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(directory) else {
        return;
    };
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            collect(&path, found);
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            found.push(path);
        }
    }
}

/// Whether `text` opens with a `//!` line saying what the file is for.
pub fn opens_with_module_doc(text: &str) -> bool {
    text.starts_with("//!")
}

/// Fails the test unless every `.rs` file below `crate_root`'s `directories` (e.g. `src`,
/// `tests`) opens with a `//!` line, naming those that do not. `at_least` guards against a
/// check that passes because it found nothing.
pub fn assert_every_file_opens_with_module_doc(
    crate_root: &Path,
    directories: &[&str],
    at_least: usize,
) {
    let files: Vec<PathBuf> = directories
        .iter()
        .flat_map(|directory| rust_files(&crate_root.join(directory)))
        .collect();
    assert!(
        files.len() >= at_least,
        "expected at least {at_least} sources under {}, found {files:?}",
        crate_root.display()
    );
    let offenders: Vec<String> = files
        .iter()
        .filter(|path| {
            let text = std::fs::read_to_string(path)
                .unwrap_or_else(|error| panic!("read {}: {error}", path.display()));
            !opens_with_module_doc(&text)
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

/// The top-level modules `text` imports with `use crate::…` (also `pub use`, `pub(crate) use`
/// and grouped `use crate::{a, b::c}`): the edges a layering rule checks.
pub fn crate_imports(text: &str) -> BTreeSet<String> {
    let mut modules = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("use crate::") {
        let before = &rest[..at];
        let starts_statement = before
            .chars()
            .next_back()
            .is_none_or(|c| c.is_whitespace() || c == ';' || c == '{' || c == ')');
        rest = &rest[at + "use crate::".len()..];
        let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
        let in_comment = before[line_start..].contains("//");
        if !starts_statement || in_comment {
            continue;
        }
        let statement = &rest[..rest.find(';').unwrap_or(rest.len())];
        match statement.strip_prefix('{') {
            Some(group) => {
                let group = group.strip_suffix('}').unwrap_or(group);
                for item in split_top_level(group) {
                    if let Some(module) = first_segment(item) {
                        modules.insert(module);
                    }
                }
            }
            None => {
                if let Some(module) = first_segment(statement) {
                    modules.insert(module);
                }
            }
        }
    }
    modules
}

fn first_segment(path: &str) -> Option<String> {
    let segment: String = path
        .trim()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    (!segment.is_empty() && segment != "self").then_some(segment)
}

/// `a, b::{c, d}, e` split at the commas outside braces.
fn split_top_level(group: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (index, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                items.push(&group[start..index]);
                start = index + 1;
            }
            _ => {}
        }
    }
    items.push(&group[start..]);
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imports_name_the_top_level_modules() {
        let text = "//! x\nuse std::fmt;\nuse crate::store::Store;\npub(crate) use crate::domain::{self, Model};\n\
                    use crate::{api::routes, metrics::{Metrics, Timer}, self};\n\
                    // use crate::commented::Out;\nfn f() { let _ = \"use crate::quoted\"; }\n";
        let modules: Vec<String> = crate_imports(text).into_iter().collect();
        assert_eq!(modules, ["api", "domain", "metrics", "store"]);
    }

    #[test]
    fn module_doc_lines() {
        assert!(opens_with_module_doc("//! The store.\nuse x;"));
        assert!(!opens_with_module_doc("/// Item doc.\nfn f() {}"));
        assert!(!opens_with_module_doc("\n//! late"));
    }

    #[test]
    fn rust_files_are_found_recursively_and_sorted() {
        let directory = std::env::temp_dir().join(format!("okla-tidy-{}", std::process::id()));
        std::fs::create_dir_all(directory.join("b/c")).unwrap();
        std::fs::write(directory.join("b/c/z.rs"), "").unwrap();
        std::fs::write(directory.join("a.rs"), "").unwrap();
        std::fs::write(directory.join("notes.md"), "").unwrap();
        let found = rust_files(&directory);
        std::fs::remove_dir_all(&directory).unwrap();
        assert_eq!(found, [directory.join("a.rs"), directory.join("b/c/z.rs")]);
        assert!(rust_files(&directory).is_empty());
    }
}
