//! A prediction from okla-serving over KServe V2 gRPC with okla-client: the `pricing` example
//! model's 8 features for one car, and the price it predicts.
//!
//! ```sh
//! ORT_DYLIB_PATH=$(echo $PWD/.venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.1*) \
//!     cargo run -p okla-serving -- --model-repository examples/models &
//! cargo run -p okla-client --example predict_grpc -- \
//!     --serving http://127.0.0.1:8001 --model pricing --routing-key user-42
//! ```
//!
//! With a sticky deployment, the same `--routing-key` always reaches the same version; the
//! answering version is printed.

use clap::Parser;
use okla_client::{InputTensor, Predictor};

#[derive(Debug, Parser)]
#[command(about = "Predict a car's price with the pricing model over V2 gRPC")]
struct Args {
    /// okla-serving's gRPC endpoint.
    #[arg(long, default_value = "http://127.0.0.1:8001")]
    serving: String,
    /// A model with pricing's signature: input `features`, FP32 [-1, 8].
    #[arg(long, default_value = "pricing")]
    model: String,
    /// Ask for this version instead of letting the deployment route the request.
    #[arg(long)]
    version: Option<u64>,
    /// Sent as the V2 parameter `routing_key` (sticky deployments).
    #[arg(long)]
    routing_key: Option<String>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run(Args::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> okla_client::Result<()> {
    let mut predictor = Predictor::connect(&args.serving).await?;
    if let Some(key) = &args.routing_key {
        predictor = predictor.with_routing_key(key.clone());
    }
    // Toyota, 2019, 60 000 km, 1.6 l, petrol, sedan, sold in the capital, listed 12 days
    // (examples/models/README.md lists the columns and their codes).
    let features = vec![3.0, 2019.0, 60000.0, 1.6, 0.0, 1.0, 4.0, 12.0];
    let prediction = predictor
        .predict(
            &args.model,
            args.version,
            vec![InputTensor::fp32("features", [1, 8], features)],
        )
        .await?;
    println!(
        "{} version {} answered",
        prediction.model_name, prediction.model_version
    );
    for output in &prediction.outputs {
        println!(
            "{} {} {:?}: {:?}",
            output.name, output.datatype, output.shape, output.data
        );
    }
    Ok(())
}
