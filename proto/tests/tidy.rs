//! Tidy checks over okla-proto's own sources.

#[test]
fn every_source_file_begins_with_a_module_doc_line() {
    okla_test_support::tidy::assert_every_file_opens_with_module_doc(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")),
        &["src", "tests"],
        3,
    );
}
