//! Tidy checks over the registry's sources, in the spirit of rust-analyzer's tidy tests.

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
