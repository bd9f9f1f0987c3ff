//! `ArtifactStore` against a real S3 server on loopback (moto in CI), through `s3://` destinations.
//!
//! Run with `bash .ci/run`, which starts moto and sets `TEST_S3_ENDPOINT`; by hand:
//! `moto_server -H 127.0.0.1 -p 5077 &` then
//! `TEST_S3_ENDPOINT=http://127.0.0.1:5077 cargo test -p okla-registry --test artifacts_s3`.
//! Each test creates its own bucket (unsigned PUT, which moto accepts) and empties and
//! deletes it at the end.

use std::collections::HashMap;

use bytes::Bytes;
use futures::stream::{self, Stream, StreamExt};
use okla_registry::artifacts::{
    ArtifactEntry, ArtifactError, ArtifactPath, ArtifactStore, FileDigest,
};
use sha2::{Digest, Sha256};

const MIB: usize = 1024 * 1024;
const NO_LIMIT: u64 = u64::MAX;

/// A bucket of its own on the test server, and the settings to reach it.
struct TestBucket {
    endpoint: String,
    name: String,
    environment: HashMap<String, String>,
}

impl TestBucket {
    async fn create() -> TestBucket {
        let endpoint = std::env::var("TEST_S3_ENDPOINT").expect(
            "TEST_S3_ENDPOINT is unset: run `bash .ci/run`, which starts moto and sets it \
             (or start `moto_server -H 127.0.0.1 -p 5077` and set TEST_S3_ENDPOINT=http://127.0.0.1:5077)",
        );
        let endpoint = endpoint.trim_end_matches('/').to_owned();
        let name = format!("okla-test-{}", uuid::Uuid::new_v4().simple());
        let response = reqwest::Client::new()
            .put(format!("{endpoint}/{name}"))
            .send()
            .await
            .unwrap_or_else(|error| panic!("cannot reach the S3 server at {endpoint}: {error}"));
        assert!(
            response.status().is_success(),
            "creating bucket {name}: {}",
            response.status()
        );

        let environment = [
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_DEFAULT_REGION", "us-east-1"),
            ("MLFLOW_S3_ENDPOINT_URL", endpoint.as_str()),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect();
        TestBucket {
            endpoint,
            name,
            environment,
        }
    }

    fn store(&self, prefix: &str) -> ArtifactStore {
        ArtifactStore::from_destination(&format!("s3://{}/{prefix}", self.name), &self.environment)
            .expect("s3 destination")
    }

    /// Multipart uploads the server still holds open; aborted ones must not be among them.
    async fn open_multipart_uploads(&self) -> usize {
        let listing = reqwest::Client::new()
            .get(format!("{}/{}?uploads", self.endpoint, self.name))
            .send()
            .await
            .expect("list multipart uploads")
            .text()
            .await
            .expect("multipart upload listing");
        listing.matches("<Upload>").count()
    }

    /// Deletes every object through the store, checks that none is left, then the bucket.
    async fn delete(self) {
        let whole_bucket = self.store("");
        for entry in whole_bucket
            .list(&ArtifactPath::root())
            .await
            .expect("list bucket")
        {
            whole_bucket
                .delete(&path(&entry.path))
                .await
                .expect("empty bucket");
        }
        // Digesting the bucket root also sees keys that listings below a prefix would not.
        let leftovers: Vec<_> = whole_bucket
            .digest_tree(&ArtifactPath::root())
            .await
            .expect("digest bucket");
        assert_eq!(leftovers, [], "bucket {} is empty", self.name);
        let response = reqwest::Client::new()
            .delete(format!("{}/{}", self.endpoint, self.name))
            .send()
            .await
            .expect("delete bucket");
        assert!(
            response.status().is_success(),
            "deleting bucket {}: {}",
            self.name,
            response.status()
        );
    }
}

fn path(raw: &str) -> ArtifactPath {
    ArtifactPath::parse(raw).expect("valid test path")
}

/// `total` bytes of a repeating pattern, produced chunk by chunk as a client would send them.
fn generated_body(
    total: usize,
    chunk: usize,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send {
    stream::unfold(0_usize, move |offset| async move {
        if offset >= total {
            return None;
        }
        let end = (offset + chunk).min(total);
        let bytes: Vec<u8> = (offset..end).map(|index| (index % 251) as u8).collect();
        Some((Ok(Bytes::from(bytes)), end))
    })
}

async fn expected_digest(total: usize, chunk: usize) -> FileDigest {
    let mut hasher = Sha256::new();
    let mut body = std::pin::pin!(generated_body(total, chunk));
    while let Some(bytes) = body.next().await {
        hasher.update(bytes.expect("generated chunk"));
    }
    FileDigest {
        size: total as u64,
        sha256: hex::encode(hasher.finalize()),
    }
}

async fn download_digest(store: &ArtifactStore, artifact: &ArtifactPath) -> FileDigest {
    let download = store.get(artifact).await.expect("get");
    let mut hasher = Sha256::new();
    let mut size = 0_u64;
    let mut stream = download.stream;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.expect("download chunk");
        size += chunk.len() as u64;
        hasher.update(&chunk);
    }
    assert_eq!(size, download.size, "announced size matches the bytes");
    FileDigest {
        size,
        sha256: hex::encode(hasher.finalize()),
    }
}

fn one_chunk(text: &'static str) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send {
    stream::iter([Ok(Bytes::from_static(text.as_bytes()))])
}

#[tokio::test]
async fn put_get_list_digest_and_delete_round_trip_on_s3() {
    let bucket = TestBucket::create().await;
    let store = bucket.store("mlflow/artifacts");
    assert_eq!(
        store.destination(),
        format!("s3://{}/mlflow/artifacts", bucket.name)
    );

    // Larger than one 10 MiB buffer, so the put goes through an S3 multipart upload.
    let big_size = 2 * 10 * MIB + 123_457;
    let big = path("1/run/artifacts/model/weights.bin");
    let digest = store
        .put(&big, generated_body(big_size, MIB), NO_LIMIT)
        .await
        .expect("big put");
    assert_eq!(digest, expected_digest(big_size, MIB).await);
    assert_eq!(download_digest(&store, &big).await, digest);

    let small = path("1/run/artifacts/model/MLmodel");
    store
        .put(&small, one_chunk("hello world"), NO_LIMIT)
        .await
        .expect("small put");
    store
        .put(
            &path("1/run/artifacts/notes [draft].txt"),
            one_chunk("notes"),
            NO_LIMIT,
        )
        .await
        .expect("put");

    assert_eq!(
        store.list(&path("1/run/artifacts")).await.expect("list"),
        [
            ArtifactEntry {
                path: "model".to_owned(),
                is_dir: true,
                file_size: None
            },
            ArtifactEntry {
                path: "notes [draft].txt".to_owned(),
                is_dir: false,
                file_size: Some(5)
            },
        ]
    );
    assert_eq!(store.list(&small).await.expect("list a file"), []);
    assert_eq!(
        store
            .list(&path("1/nothing"))
            .await
            .expect("list a missing dir"),
        []
    );
    assert!(matches!(
        store.get(&path("1/run/missing")).await,
        Err(ArtifactError::NotFound { .. })
    ));

    let tree = store
        .digest_tree(&path("1/run/artifacts/model"))
        .await
        .expect("digest_tree");
    assert_eq!(
        tree,
        [
            (
                "MLmodel".to_owned(),
                FileDigest {
                    size: 11,
                    sha256: "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
                        .to_owned(),
                },
            ),
            ("weights.bin".to_owned(), digest.clone()),
        ]
    );
    assert_eq!(
        store.digest_tree(&big).await.expect("digest of a file"),
        [("weights.bin".to_owned(), digest)]
    );

    // The prefix keeps the store's keys apart from the rest of the bucket.
    let whole_bucket = bucket.store("");
    assert_eq!(
        whole_bucket
            .list(&ArtifactPath::root())
            .await
            .expect("list bucket"),
        [ArtifactEntry {
            path: "mlflow".to_owned(),
            is_dir: true,
            file_size: None
        }]
    );

    store
        .delete(&path("1/run/artifacts/model"))
        .await
        .expect("delete a directory");
    assert_eq!(
        store.list(&path("1/run/artifacts")).await.expect("list"),
        [ArtifactEntry {
            path: "notes [draft].txt".to_owned(),
            is_dir: false,
            file_size: Some(5)
        }]
    );
    store
        .delete(&path("1/run/artifacts/notes [draft].txt"))
        .await
        .expect("delete a file");
    assert_eq!(
        store.list(&ArtifactPath::root()).await.expect("list root"),
        []
    );

    bucket.delete().await;
}

#[tokio::test]
async fn multipart_upload_assembles_parts_in_order_on_s3() {
    let bucket = TestBucket::create().await;
    let store = bucket.store("prefix");
    let artifact = path("2/models/m-1/artifacts/model.onnx");
    let upload_id = store
        .create_multipart(&artifact)
        .await
        .expect("create_multipart");

    // Three 6 MiB parts make an 18 MiB file, so completing it is itself an S3 multipart upload.
    let part_size = 6 * MIB;
    let mut whole_file = Sha256::new();
    let mut parts = Vec::new();
    for part_number in [2_u32, 3, 1] {
        let seed = part_number as usize;
        let part_body = generated_body(part_size + seed, MIB);
        let etag = store
            .put_part(&artifact, &upload_id, part_number, part_body, NO_LIMIT)
            .await
            .expect("put_part");
        assert_eq!(etag, expected_digest(part_size + seed, MIB).await.sha256);
        parts.push((part_number, etag));
    }
    // The parts in number order, as the assembled file must contain them.
    for part_number in 1..=3_usize {
        let mut body = std::pin::pin!(generated_body(part_size + part_number, MIB));
        while let Some(bytes) = body.next().await {
            whole_file.update(bytes.expect("generated chunk"));
        }
    }

    let mut wrong = parts.clone();
    wrong[0].1 = "0".repeat(64);
    match store
        .complete_multipart(&artifact, &upload_id, &wrong, NO_LIMIT)
        .await
    {
        Err(ArtifactError::InvalidUpload { reason, .. }) => {
            assert!(reason.contains("part 2"), "{reason}")
        }
        other => panic!("expected an etag mismatch on part 2, got {other:?}"),
    }

    let digest = store
        .complete_multipart(&artifact, &upload_id, &parts, NO_LIMIT)
        .await
        .expect("complete");
    assert_eq!(digest.size, (3 * part_size + 6) as u64);
    assert_eq!(digest.sha256, hex::encode(whole_file.finalize()));
    assert_eq!(download_digest(&store, &artifact).await, digest);
    assert_eq!(
        store.list(&ArtifactPath::root()).await.expect("list root"),
        [ArtifactEntry {
            path: "2".to_owned(),
            is_dir: true,
            file_size: None
        }]
    );

    let aborted = path("2/models/m-1/artifacts/aborted.bin");
    let aborted_id = store
        .create_multipart(&aborted)
        .await
        .expect("create_multipart");
    store
        .put_part(&aborted, &aborted_id, 1, one_chunk("abc"), NO_LIMIT)
        .await
        .expect("put_part");
    store
        .abort_multipart(&aborted, &aborted_id)
        .await
        .expect("abort");
    let after_abort = store
        .put_part(&aborted, &aborted_id, 2, one_chunk("x"), NO_LIMIT)
        .await;
    assert!(
        matches!(after_abort, Err(ArtifactError::InvalidUpload { .. })),
        "{after_abort:?}"
    );
    assert!(matches!(
        store.get(&aborted).await,
        Err(ArtifactError::NotFound { .. })
    ));

    // Completed and aborted uploads leave no state behind, hidden or not.
    let whole_bucket = bucket.store("");
    let keys: Vec<String> = whole_bucket
        .digest_tree(&ArtifactPath::root())
        .await
        .expect("digest bucket")
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(keys, ["prefix/2/models/m-1/artifacts/model.onnx"]);

    bucket.delete().await;
}

#[tokio::test]
async fn failed_uploads_leave_nothing_on_s3() {
    let bucket = TestBucket::create().await;
    let store = bucket.store("");
    let artifact = path("run/too-large.bin");

    // Past the 10 MiB buffer before the limit trips, so an S3 multipart upload had started.
    let limit = (10 * MIB + MIB / 2) as u64;
    let outcome = store
        .put(&artifact, generated_body(12 * MIB, MIB), limit)
        .await;
    assert!(
        matches!(outcome, Err(ArtifactError::TooLarge { limit: reported, .. }) if reported == limit),
        "{outcome:?}"
    );

    let failing_body = generated_body(11 * MIB, MIB).chain(stream::iter([Err(
        std::io::Error::new(std::io::ErrorKind::ConnectionReset, "client went away"),
    )]));
    let outcome = store
        .put(&path("run/broken.bin"), failing_body, NO_LIMIT)
        .await;
    assert!(
        matches!(outcome, Err(ArtifactError::BodyRead { .. })),
        "{outcome:?}"
    );

    assert_eq!(store.list(&path("run")).await.expect("list"), []);
    assert!(matches!(
        store.get(&artifact).await,
        Err(ArtifactError::NotFound { .. })
    ));
    assert_eq!(
        bucket.open_multipart_uploads().await,
        0,
        "aborted uploads are gone from the server"
    );

    let refused = store
        .put(&ArtifactPath::root(), one_chunk("x"), NO_LIMIT)
        .await;
    assert!(
        matches!(refused, Err(ArtifactError::InvalidPath { .. })),
        "{refused:?}"
    );

    bucket.delete().await;
}

#[tokio::test]
async fn abandoned_uploads_expire_on_s3() {
    let bucket = TestBucket::create().await;
    let store = bucket.store("prefix");
    let abandoned = path("2/abandoned.bin");
    let upload_id = store
        .create_multipart(&abandoned)
        .await
        .expect("create_multipart");
    store
        .put_part(&abandoned, &upload_id, 1, one_chunk("abc"), NO_LIMIT)
        .await
        .expect("put_part");
    let hour_ago = okla_registry::domain::now_millis() - 3_600_000;
    assert_eq!(store.expire_uploads(hour_ago).await.expect("expire"), 0);
    let later = okla_registry::domain::now_millis() + 2000;
    assert_eq!(store.expire_uploads(later).await.expect("expire"), 1);
    let after = store
        .put_part(&abandoned, &upload_id, 2, one_chunk("x"), NO_LIMIT)
        .await;
    assert!(after.is_err(), "the expired upload is gone: {after:?}");
}
