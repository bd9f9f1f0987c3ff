//! `inference-bench`: a load generator for any KServe V2 gRPC server, and the in-process floor.
//!
//! * `grpc`: `--concurrency` tokio tasks (spread over `--connections` HTTP/2 connections) send
//!   one pre-built `ModelInfer` request (raw FP32 input of `--batch` rows, as tritonclient
//!   sends it) in a closed loop for `--seconds`, after `--warmup-seconds` of the same load.
//!   Every combination of the comma-separated `--concurrency` and `--batch` lists is measured.
//!   The input name and width come from ModelMetadata, or from `--input-name`/`--features` for
//!   servers whose metadata lists no inputs. It knows nothing of okla-serving, so the same binary
//!   measures MLServer or Triton.
//! * `frame`: writes the same request as one length-prefixed gRPC message, for h2load `-d`.
//! * `floor`: ONNX Runtime in this process (`ort`, one session, one intra-op thread, one calling
//!   thread) running `session.run` on the same kind of input: what a request costs without any
//!   server. Input tensors are built inside the timed loop, as a server must build them.
//!
//! Figures: requests/s and inferences/s (requests × batch rows) of successful calls finished in
//! the window, p50/p99 latency of calls started in it. Any failed call is counted and shown;
//! more than 1% fails the process.
//!
//! Run: `cargo run -p okla-bench --release --bin inference-bench -- grpc --target 127.0.0.1:8001 --model pricing`
//! (`bench/run_inference.sh` runs the whole comparison).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use hdrhistogram::Histogram;
use okla_proto::inference::grpc_inference_service_client::GrpcInferenceServiceClient;
use okla_proto::inference::model_infer_request::InferInputTensor;
use okla_proto::inference::{ModelInferRequest, ModelMetadataRequest};
use serde::Serialize;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Channel, Endpoint};

#[derive(Debug, Parser)]
#[command(
    name = "inference-bench",
    about = "Load generator for KServe V2 gRPC servers"
)]
struct Args {
    #[command(subcommand)]
    mode: Mode,
    /// Print one JSON object per measurement instead of a table row.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Closed-loop ModelInfer calls over gRPC.
    Grpc(GrpcArgs),
    /// In-process ONNX Runtime session.run, single thread.
    Floor(FloorArgs),
    /// Writes one length-prefixed gRPC ModelInfer message (what h2load sends with `-d`).
    Frame(FrameArgs),
}

#[derive(Debug, clap::Args)]
struct FrameArgs {
    #[arg(long)]
    model: String,
    #[arg(long)]
    input_name: String,
    #[arg(long)]
    features: usize,
    #[arg(long)]
    batch: usize,
    /// Where to write the frame.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Debug, clap::Args)]
struct GrpcArgs {
    /// host:port of the gRPC endpoint.
    #[arg(long)]
    target: String,
    #[arg(long)]
    model: String,
    /// Model version to ask for; empty lets the server choose.
    #[arg(long, default_value = "")]
    version: String,
    /// Input tensor name; default: the first input in ModelMetadata.
    #[arg(long)]
    input_name: Option<String>,
    /// Elements per row (the input's second dimension); default: from ModelMetadata.
    #[arg(long)]
    features: Option<usize>,
    /// Comma-separated concurrency levels.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    concurrency: Vec<usize>,
    /// Comma-separated rows per request.
    #[arg(long, value_delimiter = ',', default_value = "1,32")]
    batch: Vec<usize>,
    /// HTTP/2 connections shared by the tasks (at most one per task).
    #[arg(long, default_value_t = 4)]
    connections: usize,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    #[arg(long, default_value_t = 2)]
    warmup_seconds: u64,
    /// Label printed with the figures (e.g. okla-serving, mlserver).
    #[arg(long, default_value = "server")]
    label: String,
}

#[derive(Debug, clap::Args)]
struct FloorArgs {
    /// The .onnx file.
    #[arg(long)]
    model_file: PathBuf,
    /// ONNX Runtime's shared library.
    #[arg(long, env = "ORT_DYLIB_PATH")]
    onnxruntime_library: PathBuf,
    #[arg(long, value_delimiter = ',', default_value = "1,32")]
    batch: Vec<usize>,
    #[arg(long, default_value_t = 5)]
    seconds: u64,
}

#[derive(Debug, Serialize)]
struct Measurement {
    label: String,
    mode: &'static str,
    concurrency: usize,
    batch: usize,
    requests_per_second: f64,
    inferences_per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

impl Measurement {
    fn print(&self, json: bool) -> anyhow::Result<()> {
        if json {
            println!("{}", serde_json::to_string(self)?);
        } else {
            println!(
                "{:<14} {:<6} c={:<3} batch={:<3} {:>10.0} req/s {:>11.0} inf/s  p50 {:>8.3} ms  p99 {:>8.3} ms  errors {}",
                self.label,
                self.mode,
                self.concurrency,
                self.batch,
                self.requests_per_second,
                self.inferences_per_second,
                self.p50_ms,
                self.p99_ms,
                self.errors
            );
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    match args.mode {
        Mode::Grpc(grpc) => run_grpc(grpc, args.json).await,
        Mode::Floor(floor) => {
            tokio::task::spawn_blocking(move || run_floor(floor, args.json)).await?
        }
        Mode::Frame(frame) => write_frame(&frame),
    }
}

/// The request the load generator sends: raw FP32 rows, as tritonclient sends them.
fn infer_request(
    model: &str,
    version: &str,
    input_name: &str,
    width: usize,
    batch: usize,
) -> ModelInferRequest {
    let raw: Vec<u8> = features(batch * width)
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    ModelInferRequest {
        model_name: model.to_owned(),
        model_version: version.to_owned(),
        inputs: vec![InferInputTensor {
            name: input_name.to_owned(),
            datatype: "FP32".into(),
            shape: vec![batch as i64, width as i64],
            ..Default::default()
        }],
        raw_input_contents: vec![raw],
        ..Default::default()
    }
}

fn write_frame(args: &FrameArgs) -> anyhow::Result<()> {
    let message = prost::Message::encode_to_vec(&infer_request(
        &args.model,
        "",
        &args.input_name,
        args.features,
        args.batch,
    ));
    // gRPC's framing: a compression flag byte, then the message length, big-endian.
    let mut frame = vec![0u8];
    frame.extend_from_slice(&u32::try_from(message.len())?.to_be_bytes());
    frame.extend_from_slice(&message);
    std::fs::write(&args.out, frame).with_context(|| format!("writing {}", args.out.display()))
}

/// Deterministic pseudo-random features in [0, 1), so every run sends the same bytes.
fn features(count: usize) -> Vec<f32> {
    let mut state: u32 = 0x9E37_79B9;
    (0..count)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state >> 8) as f32 / (1u32 << 24) as f32
        })
        .collect()
}

/// `authorization: Bearer $OKLA_SERVING_TOKEN`, for a node started with `--require-token` (the
/// token is read from the environment, never a flag, so it stays out of the process list).
fn authorization() -> anyhow::Result<Option<MetadataValue<Ascii>>> {
    match std::env::var("OKLA_SERVING_TOKEN") {
        Ok(token) if !token.is_empty() => {
            Ok(Some(format!("Bearer {token}").parse().context(
                "OKLA_SERVING_TOKEN holds characters gRPC metadata cannot carry",
            )?))
        }
        _ => Ok(None),
    }
}

async fn run_grpc(args: GrpcArgs, json: bool) -> anyhow::Result<()> {
    let authorization = authorization()?;
    let endpoint = Endpoint::from_shared(format!("http://{}", args.target))?.tcp_nodelay(true);
    let first = endpoint
        .connect()
        .await
        .with_context(|| format!("cannot connect to {}", args.target))?;
    let (input_name, width) = input_shape(first.clone(), &args).await?;
    let connections_wanted = args.connections.max(1);
    let mut channels = vec![first];
    while channels.len() < connections_wanted {
        channels.push(endpoint.connect().await?);
    }
    for &batch in &args.batch {
        let request = infer_request(&args.model, &args.version, &input_name, width, batch);
        for &concurrency in &args.concurrency {
            let used = &channels[..connections_wanted.min(concurrency)];
            let warmup = Duration::from_secs(args.warmup_seconds);
            let window = Duration::from_secs(args.seconds);
            let measured = closed_loop(
                used,
                &request,
                authorization.as_ref(),
                concurrency,
                warmup,
                window,
            )
            .await?;
            let m = Measurement {
                label: args.label.clone(),
                mode: "grpc",
                concurrency,
                batch,
                requests_per_second: measured.successes as f64 / window.as_secs_f64(),
                inferences_per_second: (measured.successes * batch as u64) as f64
                    / window.as_secs_f64(),
                p50_ms: measured.latency_us.value_at_quantile(0.5) as f64 / 1000.0,
                p99_ms: measured.latency_us.value_at_quantile(0.99) as f64 / 1000.0,
                errors: measured.errors,
            };
            m.print(json)?;
            if let Some(sample) = &measured.error_sample {
                eprintln!("  first error: {sample}");
            }
            if measured.errors * 100 > measured.successes.max(1) {
                bail!("more than 1% of calls failed at c={concurrency} batch={batch}");
            }
        }
    }
    Ok(())
}

/// The input name and row width, from flags or ModelMetadata.
async fn input_shape(channel: Channel, args: &GrpcArgs) -> anyhow::Result<(String, usize)> {
    if let (Some(name), Some(width)) = (&args.input_name, args.features) {
        return Ok((name.clone(), width));
    }
    let metadata = GrpcInferenceServiceClient::new(channel)
        .model_metadata(ModelMetadataRequest {
            name: args.model.clone(),
            version: args.version.clone(),
        })
        .await
        .context("ModelMetadata failed; pass --input-name and --features")?
        .into_inner();
    let input = metadata
        .inputs
        .first()
        .context("the model's metadata lists no inputs; pass --input-name and --features")?;
    let width = match args.features {
        Some(width) => width,
        None => match input.shape.as_slice() {
            [_, width] if *width > 0 => *width as usize,
            shape => bail!("input shape {shape:?} is not [batch, features]; pass --features"),
        },
    };
    Ok((
        args.input_name
            .clone()
            .unwrap_or_else(|| input.name.clone()),
        width,
    ))
}

struct Measured {
    successes: u64,
    errors: u64,
    error_sample: Option<String>,
    latency_us: Histogram<u64>,
}

impl Measured {
    fn new() -> Measured {
        Measured {
            successes: 0,
            errors: 0,
            error_sample: None,
            latency_us: new_histogram(),
        }
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

async fn closed_loop(
    channels: &[Channel],
    request: &ModelInferRequest,
    authorization: Option<&MetadataValue<Ascii>>,
    concurrency: usize,
    warmup: Duration,
    window: Duration,
) -> anyhow::Result<Measured> {
    let request = Arc::new(request.clone());
    let start = Instant::now() + warmup;
    let end = start + window;
    let tasks: Vec<_> = (0..concurrency)
        .map(|task| {
            let mut client =
                GrpcInferenceServiceClient::new(channels[task % channels.len()].clone())
                    .max_decoding_message_size(256 * 1024 * 1024);
            let request = request.clone();
            let authorization = authorization.cloned();
            tokio::spawn(async move {
                let mut measured = Measured::new();
                loop {
                    let sent = Instant::now();
                    if sent >= end {
                        break;
                    }
                    let mut call = tonic::Request::new(ModelInferRequest::clone(&request));
                    if let Some(value) = &authorization {
                        call.metadata_mut().insert("authorization", value.clone());
                    }
                    let result = client.model_infer(call).await;
                    let done = Instant::now();
                    if sent < start {
                        continue;
                    }
                    match result {
                        Ok(_) if done <= end => {
                            measured.successes += 1;
                            let micros = done.duration_since(sent).as_micros().max(1) as u64;
                            let _ = measured.latency_us.record(micros);
                        }
                        Ok(_) => {
                            let micros = done.duration_since(sent).as_micros().max(1) as u64;
                            let _ = measured.latency_us.record(micros);
                        }
                        Err(status) => {
                            measured.errors += 1;
                            measured
                                .error_sample
                                .get_or_insert_with(|| status.to_string());
                        }
                    }
                }
                measured
            })
        })
        .collect();
    let mut total = Measured::new();
    for task in tasks {
        let measured = task.await?;
        total.successes += measured.successes;
        total.errors += measured.errors;
        if total.error_sample.is_none() {
            total.error_sample = measured.error_sample;
        }
        total.latency_us.add(&measured.latency_us)?;
    }
    Ok(total)
}

fn run_floor(args: FloorArgs, json: bool) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.onnxruntime_library.is_file(),
        "ONNX Runtime library {} not found (pip install onnxruntime ships it in site-packages/onnxruntime/capi/)",
        args.onnxruntime_library.display()
    );
    let environment = ort::init_from(&args.onnxruntime_library)?.build()?;
    let mut session = ort::session::Session::builder(&environment)?
        .with_intra_threads(1)
        .map_err(|err| anyhow::anyhow!("{err}"))?
        .commit_from_file(&args.model_file)?;
    let input = session
        .inputs()
        .first()
        .context("the model has no inputs")?;
    let name = input.name().to_owned();
    let width = match input.dtype().tensor_shape().map(|shape| shape.to_vec()) {
        Some(shape) if shape.len() == 2 && shape[1] > 0 => shape[1] as usize,
        other => bail!("input shape {other:?} is not [batch, features]"),
    };
    for &batch in &args.batch {
        let values = features(batch * width);
        let mut latency_us = new_histogram();
        let mut runs = 0u64;
        let window = Duration::from_secs(args.seconds);
        let started = Instant::now();
        while started.elapsed() < window {
            let sent = Instant::now();
            let tensor = ort::value::Tensor::from_array(([batch, width], values.clone()))?;
            let outputs = session.run(ort::inputs![name.as_str() => tensor])?;
            drop(outputs);
            let _ = latency_us.record(sent.elapsed().as_micros().max(1) as u64);
            runs += 1;
        }
        let seconds = started.elapsed().as_secs_f64();
        Measurement {
            label: "in-process".into(),
            mode: "floor",
            concurrency: 1,
            batch,
            requests_per_second: runs as f64 / seconds,
            inferences_per_second: (runs * batch as u64) as f64 / seconds,
            p50_ms: latency_us.value_at_quantile(0.5) as f64 / 1000.0,
            p99_ms: latency_us.value_at_quantile(0.99) as f64 / 1000.0,
            errors: 0,
        }
        .print(json)?;
    }
    Ok(())
}
