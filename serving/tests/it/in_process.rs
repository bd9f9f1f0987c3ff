//! The V2 gRPC rpcs end to end over a real socket, against an in-process manager with the
//! stand-in backend of `okla_serving::testing`, so the wire behaviour (and the load and unload
//! rules behind it) is tested without ONNX Runtime or a server process.

use std::sync::Arc;

use okla_proto::inference as pb;
use okla_proto::inference::grpc_inference_service_client::GrpcInferenceServiceClient;
use okla_serving::access::{Access, ModelControl};
use okla_serving::api::grpc::server;
use okla_serving::loader::ModelLimits;
use okla_serving::manager::{ManagerSettings, ModelManager};
use okla_serving::metrics::Metrics;
use okla_serving::repository::ModelRepository;
use okla_serving::request::VersionSelector;
use okla_serving::service::InferenceService;
use okla_serving::testing::FakeBackend;
use pb::model_infer_request::{InferInputTensor, InferRequestedOutputTensor};
use tonic::transport::Channel;
use tonic::{Code, Status};

/// A server on an ephemeral port over `double` (versions 1 and 2, label `stable` = 1,
/// batches of at most 4 rows) and `broken` (fails to load). The directory lives as long as
/// the returned guard, which the index and reloads read.
async fn start() -> (GrpcInferenceServiceClient<Channel>, tempfile::TempDir) {
    let repository = tempfile::tempdir().unwrap();
    let root = repository.path();
    for (file, text) in [
        ("double/1/model.fake", "ok"),
        ("double/2/model.fake", "ok"),
        ("broken/1/model.fake", "corrupt"),
    ] {
        let path = root.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    std::fs::write(
        root.join("double/config.toml"),
        "max_batch_size = 4\n[version_policy]\nall = {}\n[labels]\nstable = 1\n",
    )
    .unwrap();
    let metrics = Arc::new(Metrics::new());
    let settings = ManagerSettings {
        default_instances: 1,
        max_queue_size: 64,
        limits: ModelLimits::default(),
    };
    let manager = Arc::new(ModelManager::new(
        ModelRepository::new(root),
        vec![Arc::new(FakeBackend)],
        settings,
        metrics.clone(),
    ));
    manager.load_all().await.unwrap();
    let service = InferenceService::new(manager, metrics);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(server(
                service,
                Access::new(ModelControl::Explicit, false, Some(ADMIN_TOKEN), None),
                1 << 20,
            ))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    let client = GrpcInferenceServiceClient::connect(format!("http://{address}"))
        .await
        .unwrap();
    (client, repository)
}

/// The token `start` gives model control to.
const ADMIN_TOKEN: &str = "in-process-admin-token";

/// `message` with the admin token in its metadata.
fn as_admin<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {ADMIN_TOKEN}").parse().expect("ASCII"),
    );
    request
}

fn x_raw(rows: &[[f32; 2]]) -> pb::ModelInferRequest {
    let raw = rows
        .iter()
        .flatten()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    pb::ModelInferRequest {
        model_name: "double".into(),
        id: "r1".into(),
        inputs: vec![InferInputTensor {
            name: "x".into(),
            datatype: "FP32".into(),
            shape: vec![rows.len() as i64, 2],
            ..Default::default()
        }],
        raw_input_contents: vec![raw],
        ..Default::default()
    }
}

fn x_typed(rows: &[[f32; 2]]) -> pb::ModelInferRequest {
    let mut request = x_raw(rows);
    request.raw_input_contents.clear();
    request.inputs[0].contents = Some(pb::InferTensorContents {
        fp32_contents: rows.iter().flatten().copied().collect(),
        ..Default::default()
    });
    request
}

fn f32s(raw: &[u8]) -> Vec<f32> {
    raw.chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn assert_refused(result: Result<impl std::fmt::Debug, Status>, code: Code, words: &[&str]) {
    let status = result.expect_err("the request should be refused");
    assert_eq!(status.code(), code, "{}", status.message());
    for word in words {
        assert!(
            status.message().contains(word),
            "'{word}' missing from: {}",
            status.message()
        );
    }
}

#[tokio::test]
async fn health_and_metadata() {
    let (mut client, _repository) = start().await;
    let live = client.server_live(pb::ServerLiveRequest {}).await.unwrap();
    assert!(live.into_inner().live);
    // `broken` never becomes ready, so neither does the server as a whole.
    let ready = client
        .server_ready(pb::ServerReadyRequest {})
        .await
        .unwrap();
    assert!(!ready.into_inner().ready);
    let server = client
        .server_metadata(pb::ServerMetadataRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(server.name, "okla-serving");
    assert!(server.extensions.iter().any(|e| e == "model_repository"));

    let ready = |name: &str, version: &str| pb::ModelReadyRequest {
        name: name.into(),
        version: version.into(),
    };
    for version in ["", "1", "2", "stable"] {
        let answer = client.model_ready(ready("double", version)).await.unwrap();
        assert!(answer.into_inner().ready, "version '{version}'");
    }
    let answer = client.model_ready(ready("broken", "")).await.unwrap();
    assert!(!answer.into_inner().ready);
    assert_refused(
        client.model_ready(ready("nope", "")).await,
        Code::NotFound,
        &["nope"],
    );
    assert_refused(
        client.model_ready(ready("double", "9")).await,
        Code::NotFound,
        &["9"],
    );

    let metadata = |name: &str, version: &str| pb::ModelMetadataRequest {
        name: name.into(),
        version: version.into(),
    };
    let double = client
        .model_metadata(metadata("double", ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(double.name, "double");
    assert_eq!(double.versions, vec!["1", "2"]);
    assert_eq!(double.platform, "fake");
    assert_eq!(double.inputs[0].name, "x");
    assert_eq!(double.inputs[0].datatype, "FP32");
    assert_eq!(double.inputs[0].shape, vec![-1, 2]);
    assert_eq!(double.outputs[1].datatype, "INT64");
    assert_eq!(double.outputs[1].shape, vec![-1]);
    assert_refused(
        client.model_metadata(metadata("nope", "")).await,
        Code::NotFound,
        &["nope"],
    );
    assert_refused(
        client.model_metadata(metadata("broken", "")).await,
        Code::Unavailable,
        &["corrupt"],
    );
}

#[tokio::test]
async fn infer_answers_in_the_form_it_was_asked() {
    let (mut client, _repository) = start().await;
    let answer = client
        .model_infer(x_raw(&[[1.0, 2.0], [3.0, 4.5]]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.model_name, "double");
    assert_eq!(answer.model_version, "2");
    assert_eq!(answer.id, "r1");
    let names: Vec<&str> = answer.outputs.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["y", "n"]);
    assert_eq!(answer.outputs[0].shape, vec![2, 2]);
    assert_eq!(answer.outputs[1].shape, vec![2]);
    assert_eq!(answer.outputs[1].datatype, "INT64");
    assert_eq!(f32s(&answer.raw_output_contents[0]), [2.0, 4.0, 6.0, 9.0]);
    assert_eq!(
        answer.raw_output_contents[1],
        [3i64, 7]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<u8>>()
    );

    let mut request = x_raw(&[[1.0, 1.0]]);
    request.model_version = "stable".into();
    request.outputs = vec![InferRequestedOutputTensor {
        name: "n".into(),
        ..Default::default()
    }];
    let answer = client.model_infer(request).await.unwrap().into_inner();
    assert_eq!(answer.model_version, "1");
    assert_eq!(answer.outputs.len(), 1);
    assert_eq!(answer.outputs[0].name, "n");
    assert_eq!(answer.raw_output_contents.len(), 1);

    let answer = client
        .model_infer(x_typed(&[[0.5, 1.0]]))
        .await
        .unwrap()
        .into_inner();
    assert!(answer.raw_output_contents.is_empty());
    let y = answer.outputs[0].contents.as_ref().unwrap();
    assert_eq!(y.fp32_contents, [1.0, 2.0]);
    let n = answer.outputs[1].contents.as_ref().unwrap();
    assert_eq!(n.int64_contents, [1]);
}

#[tokio::test]
async fn bad_requests_are_refused_and_the_server_goes_on() {
    let (mut client, _repository) = start().await;
    let mut wrong_dtype = x_raw(&[[1.0, 2.0]]);
    wrong_dtype.inputs[0].datatype = "FP64".into();
    wrong_dtype.raw_input_contents[0].extend_from_slice(&[0; 8]);
    assert_refused(
        client.model_infer(wrong_dtype).await,
        Code::InvalidArgument,
        &["'x'", "FP32", "FP64"],
    );
    let mut wrong_shape = x_raw(&[[1.0, 2.0]]);
    wrong_shape.inputs[0].shape = vec![2, 1];
    assert_refused(
        client.model_infer(wrong_shape).await,
        Code::InvalidArgument,
        &["'x'", "[-1, 2]"],
    );
    let mut unknown_input = x_raw(&[[1.0, 2.0]]);
    unknown_input.inputs[0].name = "z".into();
    assert_refused(
        client.model_infer(unknown_input).await,
        Code::InvalidArgument,
        &["'z'"],
    );
    let mut missing_input = x_raw(&[]);
    missing_input.inputs.clear();
    missing_input.raw_input_contents.clear();
    assert_refused(
        client.model_infer(missing_input).await,
        Code::InvalidArgument,
        &["'x'"],
    );
    assert_refused(
        client.model_infer(x_raw(&[[0.0; 2]; 5])).await,
        Code::InvalidArgument,
        &["'x'", "5", "4"],
    );
    let mut short = x_raw(&[[1.0, 2.0]]);
    short.raw_input_contents[0].pop();
    assert_refused(
        client.model_infer(short).await,
        Code::InvalidArgument,
        &["'x'", "8 bytes", "7"],
    );
    let mut unknown_model = x_raw(&[[1.0, 2.0]]);
    unknown_model.model_name = "nope".into();
    assert_refused(
        client.model_infer(unknown_model).await,
        Code::NotFound,
        &["nope"],
    );
    let mut unknown_version = x_raw(&[[1.0, 2.0]]);
    unknown_version.model_version = "7".into();
    assert_refused(
        client.model_infer(unknown_version).await,
        Code::NotFound,
        &["7"],
    );
    let mut unknown_label = x_raw(&[[1.0, 2.0]]);
    unknown_label.model_version = "canary".into();
    assert_refused(
        client.model_infer(unknown_label).await,
        Code::NotFound,
        &["canary"],
    );
    let mut unknown_output = x_raw(&[[1.0, 2.0]]);
    unknown_output.outputs = vec![InferRequestedOutputTensor {
        name: "w".into(),
        ..Default::default()
    }];
    assert_refused(
        client.model_infer(unknown_output).await,
        Code::InvalidArgument,
        &["'w'"],
    );
    let mut broken = x_raw(&[[1.0, 2.0]]);
    broken.model_name = "broken".into();
    assert_refused(
        client.model_infer(broken).await,
        Code::Unavailable,
        &["corrupt"],
    );
    let answer = client.model_infer(x_raw(&[[1.0, 2.0]])).await.unwrap();
    assert_eq!(
        f32s(&answer.into_inner().raw_output_contents[0]),
        [2.0, 4.0]
    );
}

#[tokio::test]
async fn stream_answers_each_request_in_order() {
    let (mut client, _repository) = start().await;
    let mut bad = x_raw(&[[1.0, 2.0]]);
    bad.inputs[0].shape = vec![1, 3];
    let requests = futures::stream::iter(vec![x_raw(&[[1.0, 2.0]]), bad, x_typed(&[[3.0, 3.0]])]);
    let mut responses = client
        .model_stream_infer(requests)
        .await
        .unwrap()
        .into_inner();
    let mut answers = Vec::new();
    while let Some(answer) = responses.message().await.unwrap() {
        answers.push(answer);
    }
    assert_eq!(answers.len(), 3);
    let first = answers[0].infer_response.as_ref().unwrap();
    assert_eq!(f32s(&first.raw_output_contents[0]), [2.0, 4.0]);
    assert!(answers[1].infer_response.is_none());
    assert!(
        answers[1].error_message.contains("'x'"),
        "{}",
        answers[1].error_message
    );
    let third = answers[2].infer_response.as_ref().unwrap();
    assert_eq!(
        third.outputs[0].contents.as_ref().unwrap().fp32_contents,
        [6.0, 6.0]
    );
}

#[tokio::test]
async fn repository_index_load_and_unload() {
    let (mut client, _repository) = start().await;
    let index = |ready| pb::RepositoryIndexRequest {
        repository_name: String::new(),
        ready,
    };
    let all = client
        .repository_index(index(false))
        .await
        .unwrap()
        .into_inner();
    let rows: Vec<(&str, &str, &str)> = all
        .models
        .iter()
        .map(|m| (m.name.as_str(), m.version.as_str(), m.state.as_str()))
        .collect();
    assert_eq!(
        rows,
        [
            ("broken", "1", "UNAVAILABLE"),
            ("double", "1", "READY"),
            ("double", "2", "READY")
        ]
    );
    assert!(
        all.models[0].reason.contains("corrupt"),
        "{:?}",
        all.models[0]
    );
    let ready = client
        .repository_index(index(true))
        .await
        .unwrap()
        .into_inner();
    assert!(ready.models.iter().all(|m| m.name == "double"));

    let unload = |name: &str| {
        as_admin(pb::RepositoryModelUnloadRequest {
            model_name: name.into(),
            ..Default::default()
        })
    };
    let load = |name: &str| {
        as_admin(pb::RepositoryModelLoadRequest {
            model_name: name.into(),
            ..Default::default()
        })
    };
    // Model control needs the admin token.
    let anonymous = pb::RepositoryModelUnloadRequest {
        model_name: "double".into(),
        ..Default::default()
    };
    assert_refused(
        client.repository_model_unload(anonymous.clone()).await,
        Code::Unauthenticated,
        &["admin token"],
    );
    let mut wrong = tonic::Request::new(anonymous);
    wrong.metadata_mut().insert(
        "authorization",
        "Bearer not-the-token".parse().expect("ASCII"),
    );
    assert_refused(
        client.repository_model_unload(wrong).await,
        Code::Unauthenticated,
        &["token"],
    );
    client
        .repository_model_unload(unload("double"))
        .await
        .unwrap();
    let all = client
        .repository_index(index(false))
        .await
        .unwrap()
        .into_inner();
    let double = all.models.iter().find(|m| m.name == "double").unwrap();
    assert_eq!(
        (double.version.as_str(), double.state.as_str()),
        ("", "UNAVAILABLE")
    );
    assert_refused(
        client.model_infer(x_raw(&[[1.0, 2.0]])).await,
        Code::NotFound,
        &["double"],
    );
    assert_refused(
        client.repository_model_unload(unload("double")).await,
        Code::NotFound,
        &["double"],
    );

    client.repository_model_load(load("double")).await.unwrap();
    let answer = client.model_infer(x_raw(&[[1.0, 2.0]])).await.unwrap();
    assert_eq!(answer.into_inner().model_version, "2");

    assert_refused(
        client.repository_model_load(load("nope")).await,
        Code::NotFound,
        &["nope"],
    );
    assert_refused(
        client.repository_model_load(load("broken")).await,
        Code::InvalidArgument,
        &["corrupt"],
    );
    let mut with_config = load("double");
    with_config.get_mut().parameters.insert(
        "config".into(),
        pb::ModelRepositoryParameter {
            parameter_choice: Some(
                pb::model_repository_parameter::ParameterChoice::StringParam("{}".into()),
            ),
        },
    );
    assert_refused(
        client.repository_model_load(with_config).await,
        Code::Unimplemented,
        &["config"],
    );
}

#[tokio::test]
async fn rpcs_left_out_answer_unimplemented() {
    let (mut client, _repository) = start().await;
    let status = client
        .model_statistics(pb::ModelStatisticsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented);
}

/// A manager over `root` with the stand-in backend, every model in it loaded.
async fn manager_over(root: &std::path::Path) -> ModelManager {
    let manager = ModelManager::new(
        ModelRepository::new(root),
        vec![Arc::new(FakeBackend)],
        ManagerSettings {
            default_instances: 1,
            max_queue_size: 8,
            limits: ModelLimits::default(),
        },
        Arc::new(Metrics::new()),
    );
    manager.load_all().await.unwrap();
    manager
}

fn write(root: &std::path::Path, file: &str, text: &str) {
    let path = root.join(file);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn states(manager: &ModelManager, model: &str) -> Vec<(Option<u64>, String)> {
    manager
        .index(false)
        .into_iter()
        .filter(|entry| entry.name == model)
        .map(|entry| (entry.version, entry.state))
        .collect()
}

#[tokio::test]
async fn a_failed_replacement_leaves_the_old_version_serving_until_one_loads() {
    let repository = tempfile::tempdir().unwrap();
    let root = repository.path();
    write(root, "m/1/model.fake", "ok");
    let manager = manager_over(root).await;
    assert_eq!(manager.ready_versions("m"), [1]);

    // The policy (latest) now asks for version 2 only, which does not load.
    write(root, "m/2/model.fake", "corrupt");
    manager.sync_with_repository().await;
    assert_eq!(manager.ready_versions("m"), [1]);
    assert_eq!(
        states(&manager, "m"),
        [
            (Some(1), "READY".to_owned()),
            (Some(2), "UNAVAILABLE".to_owned())
        ]
    );
    let answering = manager.resolve("m", &VersionSelector::Latest).unwrap();
    assert_eq!(answering.version, 1);

    // Once the replacement loads, the old version goes in the same swap.
    write(root, "m/2/model.fake", "ok");
    manager.load_model("m").await.unwrap();
    assert_eq!(manager.ready_versions("m"), [2]);
    assert_eq!(states(&manager, "m"), [(Some(2), "READY".to_owned())]);
}

#[tokio::test]
async fn a_label_moves_only_to_a_ready_version() {
    let repository = tempfile::tempdir().unwrap();
    let root = repository.path();
    write(root, "m/1/model.fake", "ok");
    let config =
        |stable: u64| format!("[version_policy]\nall = {{}}\n[labels]\nstable = {stable}\n");
    write(root, "m/config.toml", &config(1));
    let manager = manager_over(root).await;
    let stable = VersionSelector::Label("stable".to_owned());
    assert_eq!(manager.resolve("m", &stable).unwrap().version, 1);

    write(root, "m/2/model.fake", "corrupt");
    write(root, "m/config.toml", &config(2));
    let failure = manager.load_model("m").await.unwrap_err();
    assert!(failure.to_string().contains("corrupt"), "{failure}");
    assert_eq!(manager.resolve("m", &stable).unwrap().version, 1);

    write(root, "m/2/model.fake", "ok");
    manager.load_model("m").await.unwrap();
    assert_eq!(manager.resolve("m", &stable).unwrap().version, 2);
    assert_eq!(manager.ready_versions("m"), [1, 2]);
}
