//! The V2 gRPC API against the real binary: the unchanged `tritonclient.grpc` package over the
//! example and test models (`serving/tests/triton_grpc.py`), and a repository holding a corrupt
//! model next to a good one, checked with our own generated client.

use std::path::Path;

use okla_proto::inference as pb;
use okla_proto::inference::grpc_inference_service_client::GrpcInferenceServiceClient;
use tonic::Code;

use crate::support::{ADMIN_TOKEN, Server, example_models, run_python_env, workspace_root};

fn link(target: &Path, link: &Path) {
    if let Some(parent) = link.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::os::unix::fs::symlink(target, link).unwrap();
}

/// The repository `triton_grpc.py` expects (its docstring lists the models). Version
/// directories are symlinks to the committed models, so nothing large is copied.
fn compatibility_repository() -> tempfile::TempDir {
    let repository = tempfile::tempdir().unwrap();
    let root = repository.path();
    let examples = example_models();
    for model in ["pricing", "lead_scoring", "pricing_mlp"] {
        link(&examples.join(model), &root.join(model));
    }
    link(
        &workspace_root().join("serving/tests/models/dtypes"),
        &root.join("dtypes"),
    );
    let pricing = examples.join("pricing/1");
    link(&pricing, &root.join("pricing_small/1"));
    std::fs::write(
        root.join("pricing_small/config.toml"),
        "max_batch_size = 4\n",
    )
    .unwrap();
    link(&pricing, &root.join("pricing_versions/1"));
    link(&pricing, &root.join("pricing_versions/2"));
    std::fs::write(
        root.join("pricing_versions/config.toml"),
        "[version_policy]\nall = {}\n\n[labels]\nstable = 1\n",
    )
    .unwrap();
    link(&pricing, &root.join("scratch/1"));
    repository
}

#[test]
fn tritonclient_grpc_works_unchanged() {
    let repository = compatibility_repository();
    let server = Server::start_controlled(repository.path(), &[]);
    let stdout = run_python_env(
        "triton_grpc.py",
        &["--url", &server.grpc],
        &[("OKLA_ADMIN_TOKEN", ADMIN_TOKEN)],
    );
    assert_eq!(stdout.lines().last(), Some("OK"), "{stdout}");
}

/// Bytes that are certainly not an ONNX model (xorshift, so the test needs no `rand`).
fn garbage(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect()
}

#[test]
fn corrupt_model_is_not_ready_and_the_good_one_serves() {
    let repository = tempfile::tempdir().unwrap();
    let root = repository.path();
    link(&example_models().join("pricing/1"), &root.join("good/1"));
    std::fs::create_dir_all(root.join("corrupt/1")).unwrap();
    std::fs::write(root.join("corrupt/1/model.onnx"), garbage(4096)).unwrap();
    let server = Server::start(root);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut client = GrpcInferenceServiceClient::connect(format!("http://{}", server.grpc))
            .await
            .unwrap();
        let live = client.server_live(pb::ServerLiveRequest {}).await.unwrap();
        assert!(live.into_inner().live);
        let ready = client
            .server_ready(pb::ServerReadyRequest {})
            .await
            .unwrap();
        assert!(
            !ready.into_inner().ready,
            "a server with an unloadable model is not ready"
        );

        let model_ready = |name: &str| pb::ModelReadyRequest {
            name: name.into(),
            version: String::new(),
        };
        let corrupt = client.model_ready(model_ready("corrupt")).await.unwrap();
        assert!(!corrupt.into_inner().ready);
        let good = client.model_ready(model_ready("good")).await.unwrap();
        assert!(good.into_inner().ready);

        let index = client
            .repository_index(pb::RepositoryIndexRequest::default())
            .await
            .unwrap()
            .into_inner();
        let row = index
            .models
            .iter()
            .find(|m| m.name == "corrupt")
            .expect("the corrupt model is listed");
        assert_eq!(
            (row.version.as_str(), row.state.as_str()),
            ("1", "UNAVAILABLE")
        );
        assert!(
            row.reason.contains("corrupt") && row.reason.len() > "corrupt".len() + 20,
            "the reason says what failed: {}",
            row.reason
        );

        let metadata = client
            .model_metadata(pb::ModelMetadataRequest {
                name: "corrupt".into(),
                version: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(metadata.code(), Code::Unavailable, "{}", metadata.message());
        assert!(
            metadata.message().contains("corrupt"),
            "{}",
            metadata.message()
        );

        let features: Vec<u8> = (0..8).flat_map(|i| (i as f32).to_le_bytes()).collect();
        let request = |model: &str| pb::ModelInferRequest {
            model_name: model.into(),
            inputs: vec![pb::model_infer_request::InferInputTensor {
                name: "features".into(),
                datatype: "FP32".into(),
                shape: vec![1, 8],
                ..Default::default()
            }],
            raw_input_contents: vec![features.clone()],
            ..Default::default()
        };
        let refused = client.model_infer(request("corrupt")).await.unwrap_err();
        assert_eq!(refused.code(), Code::Unavailable, "{}", refused.message());
        let answer = client
            .model_infer(request("good"))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(answer.outputs[0].name, "variable");
        assert_eq!(answer.outputs[0].shape, vec![1, 1]);
        assert_eq!(answer.raw_output_contents[0].len(), 4);
    });
}
