//! Start-up failures end the process with a message that says what to do, never a panic.

use std::process::{Command, Output};

use crate::support::example_models;

fn start_until_exit(configure: impl FnOnce(&mut Command)) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_okla-serving"));
    command
        .args([
            "--host",
            "127.0.0.1",
            "--http-port",
            "0",
            "--grpc-port",
            "0",
        ])
        .arg("--model-repository")
        .arg(example_models())
        .env("RUST_LOG", "warn");
    configure(&mut command);
    command.output().expect("okla-serving runs")
}

fn assert_clean_failure(output: &Output, expected: &[&str]) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "the server started:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    for text in expected {
        assert!(stderr.contains(text), "missing {text:?} in:\n{stderr}");
    }
}

#[test]
fn a_missing_onnxruntime_library_is_a_clear_startup_error() {
    let output = start_until_exit(|command| {
        command.args([
            "--onnxruntime-library",
            "/nonexistent/libonnxruntime.so.1.32.0",
        ]);
    });
    assert_clean_failure(
        &output,
        &[
            "/nonexistent/libonnxruntime.so.1.32.0",
            "pip install onnxruntime",
        ],
    );
}

#[test]
fn onnx_models_without_any_runtime_library_fail_startup_with_guidance() {
    let empty = tempfile::tempdir().expect("temp dir");
    let output = start_until_exit(|command| {
        command
            .current_dir(empty.path())
            .env_remove("ORT_DYLIB_PATH")
            .env_remove("VIRTUAL_ENV");
    });
    assert_clean_failure(
        &output,
        &["no ONNX Runtime library found", "pip install onnxruntime"],
    );
}
