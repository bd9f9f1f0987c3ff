//! Unit tests of `ArtifactStore` on a temporary directory through LocalFileSystem.
//!
//! The same behaviour against a real S3 server is checked in `tests/artifacts_s3.rs`.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{self, StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};

use super::*;

const HELLO_WORLD_SHA256: &str = "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9";
const NO_LIMIT: u64 = u64::MAX;

fn open_store() -> (tempfile::TempDir, ArtifactStore) {
    let directory = tempfile::tempdir().expect("temporary directory");
    let store = ArtifactStore::from_destination(
        directory.path().to_str().expect("utf-8 temporary path"),
        &HashMap::new(),
    )
    .expect("local store");
    (directory, store)
}

fn path(raw: &str) -> ArtifactPath {
    ArtifactPath::parse(raw).expect("valid test path")
}

/// A body that arrives in the given chunks.
fn body(chunks: Vec<Bytes>) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send {
    stream::iter(chunks.into_iter().map(Ok))
}

fn one_chunk(text: &'static str) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send {
    body(vec![Bytes::from_static(text.as_bytes())])
}

/// `total` bytes of a repeating pattern, in chunks of `chunk` bytes.
fn patterned_chunks(total: usize, chunk: usize) -> Vec<Bytes> {
    let data: Vec<u8> = (0..total).map(|index| (index % 251) as u8).collect();
    data.chunks(chunk).map(Bytes::copy_from_slice).collect()
}

fn sha256_of(chunks: &[Bytes]) -> String {
    let mut hasher = Sha256::new();
    for chunk in chunks {
        hasher.update(chunk);
    }
    hex::encode(hasher.finalize())
}

async fn read_all(store: &ArtifactStore, artifact: &ArtifactPath) -> Vec<u8> {
    let download = store.get(artifact).await.expect("get");
    let chunks: Vec<Bytes> = download
        .stream
        .try_collect()
        .await
        .expect("download stream");
    let bytes = chunks.concat();
    assert_eq!(
        bytes.len() as u64,
        download.size,
        "announced size matches the bytes"
    );
    bytes
}

/// Every entry below `root`, hidden ones included, so nothing left behind can escape notice.
fn everything_below(root: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(directory) = pending.pop() {
        for entry in std::fs::read_dir(&directory).expect("read_dir") {
            let entry = entry.expect("dir entry");
            let entry_path = entry.path();
            found.push(
                entry_path
                    .strip_prefix(root)
                    .expect("below root")
                    .display()
                    .to_string(),
            );
            if entry_path.is_dir() {
                pending.push(entry_path);
            }
        }
    }
    found.sort();
    found
}

fn file(name: &str, size: u64) -> ArtifactEntry {
    ArtifactEntry {
        path: name.to_owned(),
        is_dir: false,
        file_size: Some(size),
    }
}

fn directory(name: &str) -> ArtifactEntry {
    ArtifactEntry {
        path: name.to_owned(),
        is_dir: true,
        file_size: None,
    }
}

#[tokio::test]
async fn put_and_get_round_trip_a_multi_chunk_body() {
    let (_directory, store) = open_store();
    let chunks = patterned_chunks(300_000, 7_001);
    let artifact = path("1/run/artifacts/model/model.onnx");

    let digest = store
        .put(&artifact, body(chunks.clone()), NO_LIMIT)
        .await
        .expect("put");

    assert_eq!(digest.size, 300_000);
    assert_eq!(digest.sha256, sha256_of(&chunks));
    assert_eq!(read_all(&store, &artifact).await, chunks.concat());
}

#[tokio::test]
async fn put_reports_the_known_sha256_and_overwrites() {
    let (_directory, store) = open_store();
    let artifact = path("notes.txt");
    store
        .put(&artifact, one_chunk("first version"), NO_LIMIT)
        .await
        .expect("first put");

    let digest = store
        .put(
            &artifact,
            body(vec![
                Bytes::from_static(b"hello "),
                Bytes::from_static(b"world"),
            ]),
            NO_LIMIT,
        )
        .await
        .expect("second put");

    assert_eq!(
        digest,
        FileDigest {
            size: 11,
            sha256: HELLO_WORLD_SHA256.to_owned()
        }
    );
    assert_eq!(read_all(&store, &artifact).await, b"hello world");
}

#[tokio::test]
async fn put_of_an_empty_body_stores_an_empty_file() {
    let (_directory, store) = open_store();
    let digest = store
        .put(&path("empty"), body(Vec::new()), NO_LIMIT)
        .await
        .expect("put");
    assert_eq!(digest.size, 0);
    assert_eq!(
        digest.sha256,
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert!(read_all(&store, &path("empty")).await.is_empty());
}

#[tokio::test]
async fn large_put_goes_multipart_and_round_trips() {
    let (directory, store) = open_store();
    let chunks = patterned_chunks(UPLOAD_PART_BYTES * 2 + 12_345, 1 << 20);
    let artifact = path("big/weights.bin");

    let digest = store
        .put(&artifact, body(chunks.clone()), NO_LIMIT)
        .await
        .expect("put");

    assert_eq!(digest.sha256, sha256_of(&chunks));
    assert_eq!(read_all(&store, &artifact).await, chunks.concat());
    assert_eq!(
        everything_below(directory.path()),
        ["big", "big/weights.bin"]
    );
}

#[tokio::test]
async fn get_of_a_missing_file_or_a_directory_is_not_found() {
    let (_directory, store) = open_store();
    store
        .put(&path("dir/file"), one_chunk("x"), NO_LIMIT)
        .await
        .expect("put");
    for missing in ["nope.txt", "dir"] {
        match store.get(&path(missing)).await {
            Err(ArtifactError::NotFound { path }) => assert_eq!(path, missing),
            other => panic!("get {missing}: expected NotFound, got {other:?}"),
        }
    }
    assert!(matches!(
        store.get(&ArtifactPath::root()).await,
        Err(ArtifactError::InvalidPath { .. })
    ));
}

#[tokio::test]
async fn put_of_the_root_is_refused() {
    let (_directory, store) = open_store();
    let outcome = store
        .put(&ArtifactPath::root(), one_chunk("x"), NO_LIMIT)
        .await;
    assert!(
        matches!(outcome, Err(ArtifactError::InvalidPath { .. })),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn list_follows_mlflow_semantics() {
    let (_directory, store) = open_store();
    for (name, text) in [
        ("1/run/artifacts/notes.txt", "hello"),
        ("1/run/artifacts/model/MLmodel", "flavors: {}"),
        ("1/run/artifacts/model/data/weights.bin", "0123456789"),
        ("1/run/artifacts/plots/loss curve [1].png", "png"),
    ] {
        store
            .put(&path(name), one_chunk(text), NO_LIMIT)
            .await
            .expect("put");
    }
    // An upload in progress must not show up as a `.okla-mpu` directory at the root.
    store
        .create_multipart(&path("1/run/artifacts/big.bin"))
        .await
        .expect("create_multipart");

    assert_eq!(
        store.list(&path("1/run/artifacts")).await.expect("list"),
        [directory("model"), file("notes.txt", 5), directory("plots")]
    );
    assert_eq!(
        store
            .list(&path("1/run/artifacts/model"))
            .await
            .expect("list"),
        [file("MLmodel", 11), directory("data")]
    );
    assert_eq!(
        store
            .list(&path("1/run/artifacts/plots"))
            .await
            .expect("list"),
        [file("loss curve [1].png", 3)]
    );
    assert_eq!(
        store.list(&ArtifactPath::root()).await.expect("list root"),
        [directory("1")]
    );
    assert_eq!(
        store
            .list(&path("1/run/artifacts/notes.txt"))
            .await
            .expect("list a file"),
        []
    );
    assert_eq!(
        store
            .list(&path("1/run/missing"))
            .await
            .expect("list a missing dir"),
        []
    );
    assert_eq!(
        store
            .list(&path("1/run/artifacts/notes.txt/below"))
            .await
            .expect("list below a file"),
        []
    );
}

#[tokio::test]
async fn delete_removes_a_file_or_a_whole_directory() {
    let (directory, store) = open_store();
    for name in [
        "run/keep.txt",
        "run/model/MLmodel",
        "run/model/data/a.bin",
        "run/model/data/b/c.bin",
    ] {
        store
            .put(&path(name), one_chunk("x"), NO_LIMIT)
            .await
            .expect("put");
    }
    // Empty directories are invisible to object_store, yet they must go too.
    std::fs::create_dir_all(directory.path().join("run/model/empty/deeper"))
        .expect("create_dir_all");

    store
        .delete(&path("run/model"))
        .await
        .expect("delete directory");
    assert_eq!(
        store.list(&path("run")).await.expect("list"),
        [file("keep.txt", 1)]
    );

    store
        .delete(&path("run/keep.txt"))
        .await
        .expect("delete file");
    assert_eq!(store.list(&ArtifactPath::root()).await.expect("list"), []);
    assert_eq!(everything_below(directory.path()), Vec::<String>::new());

    store
        .delete(&path("never/existed"))
        .await
        .expect("deleting nothing succeeds");
    assert!(matches!(
        store.delete(&ArtifactPath::root()).await,
        Err(ArtifactError::InvalidPath { .. })
    ));
}

#[tokio::test]
async fn digest_tree_hashes_every_file_below_a_directory() {
    let (_directory, store) = open_store();
    store
        .put(&path("m/MLmodel"), one_chunk("hello world"), NO_LIMIT)
        .await
        .expect("put");
    store
        .put(&path("m/data/model.onnx"), one_chunk(""), NO_LIMIT)
        .await
        .expect("put");
    store
        .put(&path("elsewhere.txt"), one_chunk("x"), NO_LIMIT)
        .await
        .expect("put");
    store
        .create_multipart(&path("m/in-progress.bin"))
        .await
        .expect("create_multipart");

    let tree = store.digest_tree(&path("m")).await.expect("digest_tree");
    let names: Vec<&str> = tree.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["MLmodel", "data/model.onnx"]);
    assert_eq!(
        tree[0].1,
        FileDigest {
            size: 11,
            sha256: HELLO_WORLD_SHA256.to_owned()
        }
    );
    assert_eq!(tree[1].1.size, 0);

    let single = store
        .digest_tree(&path("m/MLmodel"))
        .await
        .expect("digest of a file");
    assert_eq!(single, [("MLmodel".to_owned(), tree[0].1.clone())]);
    assert_eq!(
        store
            .digest_tree(&path("missing"))
            .await
            .expect("digest of nothing"),
        []
    );

    let everything = store
        .digest_tree(&ArtifactPath::root())
        .await
        .expect("digest of the root");
    let names: Vec<&str> = everything.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["elsewhere.txt", "m/MLmodel", "m/data/model.onnx"]);
}

#[tokio::test]
async fn multipart_assembles_parts_in_part_number_order() {
    let (directory, store) = open_store();
    let artifact = path("run/model.bin");
    let upload_id = store
        .create_multipart(&artifact)
        .await
        .expect("create_multipart");
    let texts = ["first-", "second-", "third"];
    let mut parts = Vec::new();
    // Upload out of order as well: only the part numbers decide the order.
    for part_number in [3_u32, 1, 2] {
        let text = texts[part_number as usize - 1];
        let etag = store
            .put_part(
                &artifact,
                &upload_id,
                part_number,
                one_chunk(text),
                NO_LIMIT,
            )
            .await
            .expect("put_part");
        assert_eq!(etag, hex::encode(Sha256::digest(text.as_bytes())));
        parts.push((part_number, format!("\"{}\"", etag.to_uppercase())));
    }

    let digest = store
        .complete_multipart(&artifact, &upload_id, &parts, NO_LIMIT)
        .await
        .expect("complete");

    assert_eq!(read_all(&store, &artifact).await, b"first-second-third");
    assert_eq!(digest.size, 18);
    assert_eq!(
        digest.sha256,
        hex::encode(Sha256::digest(b"first-second-third"))
    );
    assert_eq!(
        everything_below(directory.path()),
        ["run", "run/model.bin"],
        "upload state is gone"
    );
    assert!(matches!(
        store
            .complete_multipart(&artifact, &upload_id, &parts, NO_LIMIT)
            .await,
        Err(ArtifactError::InvalidUpload { .. })
    ));
}

#[tokio::test]
async fn multipart_rejects_a_wrong_etag_or_a_missing_part_by_number() {
    let (directory, store) = open_store();
    let artifact = path("run/model.bin");
    let upload_id = store
        .create_multipart(&artifact)
        .await
        .expect("create_multipart");
    let first_etag = store
        .put_part(&artifact, &upload_id, 1, one_chunk("a"), NO_LIMIT)
        .await
        .expect("part 1");
    let second_etag = store
        .put_part(&artifact, &upload_id, 2, one_chunk("b"), NO_LIMIT)
        .await
        .expect("part 2");

    let wrong_etag = [(1, first_etag.clone()), (2, first_etag.clone())];
    match store
        .complete_multipart(&artifact, &upload_id, &wrong_etag, NO_LIMIT)
        .await
    {
        Err(ArtifactError::InvalidUpload { reason, .. }) => {
            assert!(reason.contains("part 2 has etag"), "{reason}")
        }
        other => panic!("expected an etag mismatch, got {other:?}"),
    }
    let missing_part = [(1, first_etag.clone()), (3, second_etag.clone())];
    match store
        .complete_multipart(&artifact, &upload_id, &missing_part, NO_LIMIT)
        .await
    {
        Err(ArtifactError::InvalidUpload { reason, .. }) => {
            assert!(reason.contains("part 3 was never"), "{reason}")
        }
        other => panic!("expected a missing part, got {other:?}"),
    }
    let listed_twice = [(1, first_etag.clone()), (1, first_etag.clone())];
    assert!(matches!(
        store
            .complete_multipart(&artifact, &upload_id, &listed_twice, NO_LIMIT)
            .await,
        Err(ArtifactError::InvalidUpload { .. })
    ));
    assert!(matches!(
        store.get(&artifact).await,
        Err(ArtifactError::NotFound { .. })
    ));

    // A refused list leaves the upload usable.
    let right = [(2, second_etag), (1, first_etag)];
    store
        .complete_multipart(&artifact, &upload_id, &right, NO_LIMIT)
        .await
        .expect("complete");
    assert_eq!(read_all(&store, &artifact).await, b"ab");
    assert_eq!(everything_below(directory.path()), ["run", "run/model.bin"]);
}

#[tokio::test]
async fn multipart_refuses_bad_upload_ids_and_other_paths() {
    let (_directory, store) = open_store();
    let artifact = path("a.bin");
    let upload_id = store
        .create_multipart(&artifact)
        .await
        .expect("create_multipart");
    let unknown_id = uuid::Uuid::new_v4().to_string();
    for bad_id in ["not-a-uuid", "../../a.bin", unknown_id.as_str()] {
        let outcome = store
            .put_part(&artifact, bad_id, 1, one_chunk("x"), NO_LIMIT)
            .await;
        assert!(
            matches!(outcome, Err(ArtifactError::InvalidUpload { .. })),
            "{bad_id}: {outcome:?}"
        );
    }
    let other_path = store
        .put_part(&path("b.bin"), &upload_id, 1, one_chunk("x"), NO_LIMIT)
        .await;
    assert!(
        matches!(other_path, Err(ArtifactError::InvalidUpload { .. })),
        "{other_path:?}"
    );
    for bad_number in [0, 10_001] {
        let outcome = store
            .put_part(&artifact, &upload_id, bad_number, one_chunk("x"), NO_LIMIT)
            .await;
        assert!(
            matches!(outcome, Err(ArtifactError::InvalidUpload { .. })),
            "{bad_number}: {outcome:?}"
        );
    }
    let too_large = store
        .put_part(&artifact, &upload_id, 1, one_chunk("xyz"), 2)
        .await;
    assert!(
        matches!(too_large, Err(ArtifactError::TooLarge { limit: 2, .. })),
        "{too_large:?}"
    );
    assert!(matches!(
        store
            .complete_multipart(&artifact, &upload_id, &[], NO_LIMIT)
            .await,
        Err(ArtifactError::InvalidUpload { .. })
    ));
}

#[tokio::test]
async fn abort_multipart_cleans_up_and_may_be_repeated() {
    let (directory, store) = open_store();
    let artifact = path("run/model.bin");
    let upload_id = store
        .create_multipart(&artifact)
        .await
        .expect("create_multipart");
    store
        .put_part(&artifact, &upload_id, 1, one_chunk("abc"), NO_LIMIT)
        .await
        .expect("part");

    assert!(matches!(
        store
            .abort_multipart(&path("run/other.bin"), &upload_id)
            .await,
        Err(ArtifactError::InvalidUpload { .. })
    ));
    store
        .abort_multipart(&artifact, &upload_id)
        .await
        .expect("abort");
    store
        .abort_multipart(&artifact, &upload_id)
        .await
        .expect("abort again");

    assert_eq!(everything_below(directory.path()), Vec::<String>::new());
    let after_abort = store
        .put_part(&artifact, &upload_id, 2, one_chunk("x"), NO_LIMIT)
        .await;
    assert!(
        matches!(after_abort, Err(ArtifactError::InvalidUpload { .. })),
        "{after_abort:?}"
    );
}

#[tokio::test]
async fn too_large_leaves_nothing_behind() {
    let (directory, store) = open_store();
    // Small enough to stay in memory, then large enough to have started a multipart upload.
    for (limit, chunks) in [
        (10, patterned_chunks(20, 3)),
        (
            UPLOAD_PART_BYTES as u64 + 5,
            patterned_chunks(UPLOAD_PART_BYTES + 1_000_000, 1 << 20),
        ),
    ] {
        let outcome = store
            .put(&path("deep/dir/too-large.bin"), body(chunks), limit)
            .await;
        match outcome {
            Err(ArtifactError::TooLarge {
                path,
                limit: reported,
            }) => {
                assert_eq!(path, "deep/dir/too-large.bin");
                assert_eq!(reported, limit);
            }
            other => panic!("limit {limit}: expected TooLarge, got {other:?}"),
        }
        assert_eq!(
            everything_below(directory.path()),
            Vec::<String>::new(),
            "limit {limit}"
        );
    }
}

#[tokio::test]
async fn a_failing_body_leaves_nothing_behind() {
    let (directory, store) = open_store();
    for chunk_count in [2, 12] {
        let mut items: Vec<Result<Bytes, std::io::Error>> =
            patterned_chunks(chunk_count << 20, 1 << 20)
                .into_iter()
                .map(Ok)
                .collect();
        items.push(Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "client went away",
        )));

        let outcome = store
            .put(&path("run/broken.bin"), stream::iter(items), NO_LIMIT)
            .await;

        assert!(
            matches!(outcome, Err(ArtifactError::BodyRead { .. })),
            "{outcome:?}"
        );
        assert_eq!(
            everything_below(directory.path()),
            Vec::<String>::new(),
            "{chunk_count} MiB"
        );
    }
}

#[tokio::test]
async fn a_dropped_upload_is_aborted() {
    let (directory, store) = open_store();
    // Enough to start a multipart upload, then a body that never ends, as a stalled client.
    let started = stream::iter(
        patterned_chunks(UPLOAD_PART_BYTES + (1 << 20), 1 << 20)
            .into_iter()
            .map(Ok),
    );
    let stalled = started.chain(stream::pending::<Result<Bytes, std::io::Error>>());

    let outcome = tokio::time::timeout(
        Duration::from_millis(500),
        store.put(&path("run/stalled.bin"), stalled, NO_LIMIT),
    )
    .await;
    assert!(outcome.is_err(), "the upload cannot have finished");

    // The abort runs on a spawned task; give it a moment.
    for _ in 0..50 {
        if everything_below(directory.path()).is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("left behind: {:?}", everything_below(directory.path()));
}

#[test]
fn from_destination_understands_mlflow_destinations() {
    let parent = tempfile::tempdir().expect("temporary directory");
    let created = parent.path().join("new/artifacts");
    let url = url::Url::from_directory_path(&created)
        .expect("file url")
        .to_string();

    let store =
        ArtifactStore::from_destination(&url, &HashMap::new()).expect("file:// destination");
    assert!(created.is_dir(), "the root is created");
    assert!(
        store.destination().starts_with("file:///"),
        "{}",
        store.destination()
    );

    let environment: HashMap<String, String> = [
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("MLFLOW_S3_ENDPOINT_URL", "http://127.0.0.1:9/"),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value.to_owned()))
    .collect();
    let s3 = ArtifactStore::from_destination("s3://models/mlflow/", &environment)
        .expect("s3 destination");
    assert_eq!(s3.destination(), "s3://models/mlflow");

    for bad in ["", "s3://", "gs://bucket", "file://relative/path"] {
        let outcome = ArtifactStore::from_destination(bad, &environment);
        assert!(
            matches!(outcome, Err(ArtifactError::Config(_))),
            "{bad:?}: {outcome:?}"
        );
    }
    let mut bad_flag = environment.clone();
    bad_flag.insert("MLFLOW_S3_IGNORE_TLS".to_owned(), "maybe".to_owned());
    assert!(matches!(
        ArtifactStore::from_destination("s3://models", &bad_flag),
        Err(ArtifactError::Config(_))
    ));
}

/// Handlers run on a multi-threaded runtime, so every operation must give a `Send` future,
/// and downloads must fit `axum::body::Body::from_stream`. The futures are never polled.
#[test]
fn every_operation_gives_a_send_future() {
    fn is_send<T: Send>(_: T) {}
    fn fits_a_response_body<S>(_: S)
    where
        S: futures::TryStream + Send + 'static,
        S::Ok: Into<Bytes>,
        S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
    }
    let (_directory, store) = open_store();
    let artifact = path("a");
    is_send(store.put(&artifact, one_chunk("x"), NO_LIMIT));
    is_send(store.get(&artifact));
    is_send(store.list(&artifact));
    is_send(store.delete(&artifact));
    is_send(store.digest_tree(&artifact));
    is_send(store.create_multipart(&artifact));
    is_send(store.put_part(&artifact, "id", 1, one_chunk("x"), NO_LIMIT));
    is_send(store.complete_multipart(&artifact, "id", &[], NO_LIMIT));
    is_send(store.abort_multipart(&artifact, "id"));
    fits_a_response_body(stream::empty::<Result<Bytes, ArtifactError>>().boxed());
}

#[tokio::test]
async fn abandoned_uploads_expire_and_live_ones_stay() {
    let (directory, store) = open_store();
    let abandoned = path("run/abandoned.bin");
    let upload_id = store
        .create_multipart(&abandoned)
        .await
        .expect("create_multipart");
    store
        .put_part(&abandoned, &upload_id, 1, one_chunk("abc"), NO_LIMIT)
        .await
        .expect("part");
    let cutoff = crate::domain::now_millis() + 1000;
    // Nothing was written after the cutoff, so the upload is abandoned...
    assert_eq!(store.expire_uploads(cutoff).await.expect("expire"), 1);
    assert_eq!(everything_below(directory.path()), Vec::<String>::new());
    let after = store
        .put_part(&abandoned, &upload_id, 2, one_chunk("x"), NO_LIMIT)
        .await;
    assert!(
        matches!(after, Err(ArtifactError::InvalidUpload { .. })),
        "{after:?}"
    );
    // ...while one with a part newer than the cutoff stays.
    let live = path("run/live.bin");
    let live_id = store.create_multipart(&live).await.expect("create");
    let long_ago = crate::domain::now_millis() - 3_600_000;
    assert_eq!(store.expire_uploads(long_ago).await.expect("expire"), 0);
    store
        .put_part(&live, &live_id, 1, one_chunk("abc"), NO_LIMIT)
        .await
        .expect("the upload is still there");
}

#[tokio::test]
async fn an_assembled_file_over_the_limit_is_refused_and_nothing_appears() {
    let (_directory, store) = open_store();
    let artifact = path("run/model.bin");
    let upload_id = store
        .create_multipart(&artifact)
        .await
        .expect("create_multipart");
    let mut parts = Vec::new();
    for (part_number, text) in [(1, "abcd"), (2, "efgh")] {
        let etag = store
            .put_part(&artifact, &upload_id, part_number, one_chunk(text), 4)
            .await
            .expect("each part is within the limit");
        parts.push((part_number, etag));
    }
    let refused = store
        .complete_multipart(&artifact, &upload_id, &parts, 7)
        .await;
    assert!(
        matches!(refused, Err(ArtifactError::TooLarge { limit: 7, .. })),
        "{refused:?}"
    );
    assert!(store.get(&artifact).await.is_err(), "no file appeared");
    // The parts stay until the upload is aborted, completed within the limit, or expires.
    store
        .complete_multipart(&artifact, &upload_id, &parts, 8)
        .await
        .expect("within the limit");
}
