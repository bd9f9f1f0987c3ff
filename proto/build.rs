//! Compiles the .proto files with protox (pure Rust), so no system `protoc` is needed.
//! Files without a service (the events) yield messages only.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/inference/grpc_service.proto",
        "proto/events/model_events.proto",
    ];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    println!("cargo:rerun-if-changed=proto");
    let descriptors = protox::compile(files, ["proto"])?;
    // Rpcs without a handler answer UNIMPLEMENTED, as the protocol asks of optional extensions.
    tonic_prost_build::configure()
        .generate_default_stubs(true)
        .compile_fds(descriptors)?;
    Ok(())
}
