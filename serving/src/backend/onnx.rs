//! ONNX models through ONNX Runtime (`ort`, with the shared library loaded at run time).
//!
//! The library is found once per process: an explicit path (`--onnxruntime-library` /
//! `ORT_DYLIB_PATH`), else the `onnxruntime` Python package of `./.venv` or of the active virtual
//! environment. `ort` panics when it cannot load the library, so every path is checked before it
//! is handed over, and a server with no library still starts its other backends: only loading an
//! ONNX model then fails, with a message that says how to get the library.
//!
//! `Session::run` takes `&mut self` in this `ort` release, so a loaded model keeps one session per
//! worker thread behind a mutex each. Every session runs its graph on a single thread: the
//! parallelism comes from the manager's worker threads, one per session.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, TryLockError};

use bytes::Bytes;
use ort::environment::Environment;
use ort::session::{Session, SessionInputValue, SessionOutputs};
use ort::value::{DynValue, TensorElementType, TensorRef, ValueType};

use super::{Backend, BackendError, Model};
use crate::tensor::{DataType, Tensor, TensorData, TensorSpec};

const PLATFORM: &str = "onnxruntime_onnx";

/// How to get the library, appended to every "library missing or unusable" message.
const LIBRARY_HINT: &str = "install the onnxruntime Python package (`python3 -m venv .venv && \
    .venv/bin/pip install onnxruntime`), which ships \
    site-packages/onnxruntime/capi/libonnxruntime.so.1.x, and pass that file with \
    --onnxruntime-library or ORT_DYLIB_PATH";

/// The process-wide ONNX Runtime environment: `ort` loads one library and allows one environment
/// per process. Only a success is kept, so a bad path given first does not stop a later, good one.
static RUNTIME: OnceLock<Runtime> = OnceLock::new();
/// Serialises attempts to build [`RUNTIME`].
static RUNTIME_INIT: Mutex<()> = Mutex::new(());

struct Runtime {
    library: PathBuf,
    environment: Environment,
}

pub struct OnnxBackend {
    /// The environment sessions are built in, or why there is none (given to every `load`).
    runtime: Result<&'static Runtime, String>,
}

impl OnnxBackend {
    /// Loads ONNX Runtime from `library`, or from the first library found in the usual places.
    ///
    /// An explicit library that does not exist or cannot be loaded is an error. With no explicit
    /// library and none found, the backend is built disabled: its `load` fails with
    /// [`BackendError::Runtime`], so servers that only serve candle models still start.
    pub fn new(library: Option<&Path>) -> Result<OnnxBackend, BackendError> {
        OnnxBackend::with_search_roots(library, &venv_roots())
    }

    /// [`OnnxBackend::new`], looking for the library in the given virtual environments.
    fn with_search_roots(
        library: Option<&Path>,
        venvs: &[PathBuf],
    ) -> Result<OnnxBackend, BackendError> {
        let library = match library {
            Some(path) => {
                if !path.is_file() {
                    return Err(BackendError::Runtime(format!(
                        "ONNX Runtime library {} does not exist; {LIBRARY_HINT}",
                        path.display()
                    )));
                }
                path.to_owned()
            }
            None => match venvs.iter().find_map(|venv| library_in_venv(venv)) {
                Some(path) => path,
                None => {
                    let reason = format!(
                        "no ONNX Runtime library found (looked in ./.venv/lib/python3*/site-packages/onnxruntime/capi/); {LIBRARY_HINT}"
                    );
                    tracing::warn!("{reason}; ONNX models will not load");
                    return Ok(OnnxBackend {
                        runtime: Err(reason),
                    });
                }
            },
        };
        let runtime = init_runtime(&library).map_err(BackendError::Runtime)?;
        // One library per process: silently running on another one than asked would hide a
        // misconfiguration.
        if !same_file(&runtime.library, &library) {
            return Err(BackendError::Runtime(format!(
                "ONNX Runtime is already loaded from {} in this process; cannot also load {}",
                runtime.library.display(),
                library.display()
            )));
        }
        Ok(OnnxBackend {
            runtime: Ok(runtime),
        })
    }

    /// The library this backend runs on, if it has one.
    pub fn library(&self) -> Option<&Path> {
        self.runtime
            .as_ref()
            .ok()
            .map(|runtime| runtime.library.as_path())
    }
}

impl Backend for OnnxBackend {
    fn name(&self) -> &'static str {
        "onnx"
    }

    fn recognizes(&self, dir: &Path) -> bool {
        dir.join("model.onnx").is_file()
    }

    fn load(&self, dir: &Path, sessions: usize) -> Result<Arc<dyn Model>, BackendError> {
        let runtime = self
            .runtime
            .as_ref()
            .map_err(|reason| BackendError::Runtime(reason.clone()))?;
        let path = dir.join("model.onnx");
        let bytes = std::fs::read(&path)
            .map_err(|err| BackendError::Load(format!("cannot read {}: {err}", path.display())))?;
        super::external_data::check_confined(dir, &bytes).map_err(|reason| {
            BackendError::Load(format!("{} is refused: {reason}", path.display()))
        })?;
        // Every session comes from the same file, so the first one speaks for all, and a model
        // the protocol cannot serve is refused before the rest of the pool is built.
        let first = build_session(runtime, &path)?;
        let inputs = specs(
            &path,
            "input",
            first.inputs().iter().map(|o| (o.name(), o.dtype())),
        )?;
        let outputs = specs(
            &path,
            "output",
            first.outputs().iter().map(|o| (o.name(), o.dtype())),
        )?;
        let mut pool = Vec::with_capacity(sessions.max(1));
        pool.push(Mutex::new(first));
        while pool.len() < sessions {
            pool.push(Mutex::new(build_session(runtime, &path)?));
        }
        Ok(Arc::new(OnnxModel {
            sessions: pool,
            next: AtomicUsize::new(0),
            inputs,
            outputs,
        }))
    }
}

/// Where an `onnxruntime` Python package is looked for: `./.venv`, then the active virtual
/// environment (`$VIRTUAL_ENV`).
fn venv_roots() -> Vec<PathBuf> {
    let mut roots = vec![PathBuf::from(".venv")];
    if let Some(active) = std::env::var_os("VIRTUAL_ENV") {
        roots.push(PathBuf::from(active));
    }
    roots
}

fn library_in_venv(venv: &Path) -> Option<PathBuf> {
    let mut pythons: Vec<PathBuf> = std::fs::read_dir(venv.join("lib"))
        .ok()?
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().starts_with("python3"))
        .map(|entry| entry.path())
        .collect();
    // The newest Python first when a venv somehow holds several.
    pythons.sort_by(|a, b| b.cmp(a));
    pythons.iter().find_map(|python| {
        let capi = python.join("site-packages/onnxruntime/capi");
        let mut libraries: Vec<PathBuf> = std::fs::read_dir(&capi)
            .ok()?
            .filter_map(Result::ok)
            .filter(|entry| is_runtime_library(&entry.file_name().to_string_lossy()))
            .map(|entry| entry.path())
            .filter(|path| path.is_file())
            .collect();
        libraries.sort_by(|a, b| b.cmp(a));
        libraries.into_iter().next()
    })
}

/// `libonnxruntime.so.1.32.0` or `libonnxruntime.1.32.0.dylib`, but not the providers' libraries
/// (`libonnxruntime_providers_shared.so`) that sit next to it.
fn is_runtime_library(name: &str) -> bool {
    name.strip_prefix("libonnxruntime.")
        .is_some_and(|rest| rest.starts_with("so") || rest.ends_with(".dylib"))
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

fn init_runtime(library: &Path) -> Result<&'static Runtime, String> {
    if let Some(runtime) = RUNTIME.get() {
        return Ok(runtime);
    }
    let _init = RUNTIME_INIT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(runtime) = RUNTIME.get() {
        return Ok(runtime);
    }
    // `ort` resolves relative paths against the executable's directory, not the working
    // directory the user meant, so hand it an absolute path.
    let library = library.canonicalize().map_err(|err| {
        format!(
            "cannot open ONNX Runtime library {}: {err}; {LIBRARY_HINT}",
            library.display()
        )
    })?;
    let builder = ort::init_from(&library).map_err(|err| {
        format!(
            "cannot load ONNX Runtime library {}: {err}; {LIBRARY_HINT}",
            library.display()
        )
    })?;
    let environment = builder
        .with_name("okla-serving")
        .with_telemetry(false)
        .build()
        .map_err(|err| {
            format!(
                "cannot start ONNX Runtime from {}: {err}",
                library.display()
            )
        })?;
    tracing::info!(library = %library.display(), "ONNX Runtime loaded");
    Ok(RUNTIME.get_or_init(|| Runtime {
        library,
        environment,
    }))
}

/// A session of the model file at `path`; from the file rather than its bytes, so ONNX Runtime
/// resolves external data against the model's directory, not the server's working directory.
fn build_session(runtime: &Runtime, path: &Path) -> Result<Session, BackendError> {
    let load_error = |err: String| {
        BackendError::Load(format!(
            "ONNX Runtime cannot load {}: {err}",
            path.display()
        ))
    };
    Session::builder(&runtime.environment)
        .map_err(|err| load_error(err.to_string()))?
        .with_intra_threads(1)
        .map_err(|err| load_error(err.to_string()))?
        .with_inter_threads(1)
        .map_err(|err| load_error(err.to_string()))?
        .commit_from_file(path)
        .map_err(|err| load_error(err.to_string()))
}

/// Declared inputs or outputs as [`TensorSpec`]s; anything the V2 protocol cannot carry is refused
/// here, at load time, rather than on the first request.
fn specs<'a>(
    path: &Path,
    kind: &str,
    outlets: impl Iterator<Item = (&'a str, &'a ValueType)>,
) -> Result<Vec<TensorSpec>, BackendError> {
    outlets
        .map(|(name, value_type)| {
            let ValueType::Tensor { ty, shape, .. } = value_type else {
                return Err(BackendError::Load(non_tensor_message(
                    path, kind, name, value_type,
                )));
            };
            let dtype = datatype(*ty).ok_or_else(|| {
                BackendError::Load(format!(
                    "{}: {kind} '{name}' has element type {ty}, which okla-serving does not serve \
                     (supported: bool, uint8/16/32/64, int8/16/32/64, float, double, string); \
                     export the model with one of those, e.g. cast float16 to float32",
                    path.display()
                ))
            })?;
            let shape = shape.iter().map(|&dim| usize::try_from(dim).ok()).collect();
            Ok(TensorSpec {
                name: name.to_owned(),
                dtype,
                shape,
            })
        })
        .collect()
}

fn non_tensor_message(path: &Path, kind: &str, name: &str, value_type: &ValueType) -> String {
    let is_zipmap = matches!(value_type, ValueType::Sequence(inner) if inner.is_map());
    let advice = if is_zipmap {
        "this is scikit-learn's ZipMap (skl2onnx's default for classifiers); export the classifier \
         with options={id(model): {\"zipmap\": False}} to get a `probabilities` tensor instead"
    } else {
        "the KServe V2 protocol carries tensors only; change the graph so it returns a tensor"
    };
    format!(
        "{}: {kind} '{name}' is a {value_type}, not a tensor: {advice}",
        path.display()
    )
}

fn datatype(ty: TensorElementType) -> Option<DataType> {
    Some(match ty {
        TensorElementType::Float32 => DataType::Fp32,
        TensorElementType::Float64 => DataType::Fp64,
        TensorElementType::Int8 => DataType::Int8,
        TensorElementType::Int16 => DataType::Int16,
        TensorElementType::Int32 => DataType::Int32,
        TensorElementType::Int64 => DataType::Int64,
        TensorElementType::Uint8 => DataType::Uint8,
        TensorElementType::Uint16 => DataType::Uint16,
        TensorElementType::Uint32 => DataType::Uint32,
        TensorElementType::Uint64 => DataType::Uint64,
        TensorElementType::Bool => DataType::Bool,
        TensorElementType::String => DataType::Bytes,
        _ => return None,
    })
}

/// Takes a session even if a previous holder panicked: a panic inside `run` leaves no
/// half-updated Rust state behind, and ONNX Runtime's own state is per call.
fn lock(session: &Mutex<Session>) -> MutexGuard<'_, Session> {
    session
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

struct OnnxModel {
    sessions: Vec<Mutex<Session>>,
    /// Where the next `run` starts looking for a free session, so load spreads over the pool.
    next: AtomicUsize,
    inputs: Vec<TensorSpec>,
    outputs: Vec<TensorSpec>,
}

impl OnnxModel {
    /// A free session if there is one; otherwise waits for the one this call was dealt. The
    /// manager runs as many workers as there are sessions, so waiting is rare.
    fn session(&self) -> MutexGuard<'_, Session> {
        let count = self.sessions.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % count;
        for offset in 0..count {
            match self.sessions[(start + offset) % count].try_lock() {
                Ok(guard) => return guard,
                Err(TryLockError::Poisoned(poisoned)) => return poisoned.into_inner(),
                Err(TryLockError::WouldBlock) => {}
            }
        }
        lock(&self.sessions[start])
    }
}

impl Model for OnnxModel {
    fn platform(&self) -> &'static str {
        PLATFORM
    }

    fn inputs(&self) -> &[TensorSpec] {
        &self.inputs
    }

    fn outputs(&self) -> &[TensorSpec] {
        &self.outputs
    }

    fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, BackendError> {
        let values = inputs
            .iter()
            .map(|tensor| Ok((tensor.name.as_str(), input_value(tensor)?)))
            .collect::<Result<Vec<(&str, SessionInputValue<'_>)>, BackendError>>()?;
        let mut session = self.session();
        let outputs = session
            .run(values)
            .map_err(|err| BackendError::Run(format!("ONNX Runtime: {err}")))?;
        self.outputs
            .iter()
            .map(|spec| output_tensor(&outputs, spec))
            .collect()
    }
}

/// Wraps a request tensor for ONNX Runtime. Numeric data is borrowed, not copied.
fn input_value(tensor: &Tensor) -> Result<SessionInputValue<'_>, BackendError> {
    let shape = tensor.shape.clone();
    let wrap = |err: ort::Error| {
        BackendError::Run(format!(
            "cannot pass input '{}' to ONNX Runtime: {err}",
            tensor.name
        ))
    };
    macro_rules! borrowed {
        ($values:expr) => {
            TensorRef::from_array_view((shape, $values.as_slice()))
                .map(SessionInputValue::from)
                .map_err(wrap)
        };
    }
    match &tensor.data {
        TensorData::Bool(v) => borrowed!(v),
        TensorData::Uint8(v) => borrowed!(v),
        TensorData::Uint16(v) => borrowed!(v),
        TensorData::Uint32(v) => borrowed!(v),
        TensorData::Uint64(v) => borrowed!(v),
        TensorData::Int8(v) => borrowed!(v),
        TensorData::Int16(v) => borrowed!(v),
        TensorData::Int32(v) => borrowed!(v),
        TensorData::Int64(v) => borrowed!(v),
        TensorData::Fp32(v) => borrowed!(v),
        TensorData::Fp64(v) => borrowed!(v),
        TensorData::Bytes(elements) => {
            // ONNX strings are UTF-8; BYTES elements are arbitrary bytes, so check each one.
            let strings = elements
                .iter()
                .enumerate()
                .map(|(index, element)| {
                    String::from_utf8(element.to_vec()).map_err(|_| {
                        BackendError::Run(format!(
                            "input '{}' element {index} is not UTF-8, which ONNX string tensors require",
                            tensor.name
                        ))
                    })
                })
                .collect::<Result<Vec<String>, BackendError>>()?;
            ort::value::Tensor::from_string_array((shape, strings.as_slice()))
                .map(|value| SessionInputValue::from(value.into_dyn()))
                .map_err(wrap)
        }
    }
}

/// Copies one declared output out of ONNX Runtime's memory, with the shape the run produced.
fn output_tensor(outputs: &SessionOutputs<'_>, spec: &TensorSpec) -> Result<Tensor, BackendError> {
    // `SessionOutputs::get` asserts on an empty name; ONNX forbids them, but a file may not care.
    let found = if spec.name.is_empty() {
        None
    } else {
        outputs.get(&spec.name)
    };
    let value: &DynValue = found.ok_or_else(|| {
        BackendError::Run(format!("ONNX Runtime returned no output '{}'", spec.name))
    })?;
    let wrap =
        |err: ort::Error| BackendError::Run(format!("cannot read output '{}': {err}", spec.name));
    macro_rules! copied {
        ($variant:ident, $ty:ty) => {{
            let (shape, values) = value.try_extract_tensor::<$ty>().map_err(wrap)?;
            (shape.to_vec(), TensorData::$variant(values.to_vec()))
        }};
    }
    let (shape, data) = match spec.dtype {
        DataType::Bool => copied!(Bool, bool),
        DataType::Uint8 => copied!(Uint8, u8),
        DataType::Uint16 => copied!(Uint16, u16),
        DataType::Uint32 => copied!(Uint32, u32),
        DataType::Uint64 => copied!(Uint64, u64),
        DataType::Int8 => copied!(Int8, i8),
        DataType::Int16 => copied!(Int16, i16),
        DataType::Int32 => copied!(Int32, i32),
        DataType::Int64 => copied!(Int64, i64),
        DataType::Fp32 => copied!(Fp32, f32),
        DataType::Fp64 => copied!(Fp64, f64),
        DataType::Bytes => {
            let (shape, strings) = value.try_extract_strings().map_err(wrap)?;
            let elements = strings.into_iter().map(Bytes::from).collect();
            (shape.to_vec(), TensorData::Bytes(elements))
        }
    };
    let shape = shape
        .iter()
        .map(|&dim| usize::try_from(dim))
        .collect::<Result<Vec<usize>, _>>()
        .map_err(|_| {
            BackendError::Run(format!(
                "output '{}' has a negative dimension in shape {shape:?}",
                spec.name
            ))
        })?;
    Tensor::new(spec.name.clone(), shape, data)
        .map_err(|err| BackendError::Run(format!("output '{}': {err}", spec.name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_runtime_library_is_picked_from_capi() {
        assert!(is_runtime_library("libonnxruntime.so.1.32.0"));
        assert!(is_runtime_library("libonnxruntime.so"));
        assert!(is_runtime_library("libonnxruntime.1.32.0.dylib"));
        assert!(!is_runtime_library("libonnxruntime_providers_shared.so"));
        assert!(!is_runtime_library("onnxruntime_pybind11_state.so"));
    }

    #[test]
    fn a_venv_without_onnxruntime_yields_no_library() {
        let venv = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(venv.path().join("lib/python3.11/site-packages")).unwrap();
        assert_eq!(library_in_venv(venv.path()), None);
        let capi = venv
            .path()
            .join("lib/python3.11/site-packages/onnxruntime/capi");
        std::fs::create_dir_all(&capi).unwrap();
        std::fs::write(capi.join("libonnxruntime_providers_shared.so"), b"").unwrap();
        assert_eq!(library_in_venv(venv.path()), None);
        std::fs::write(capi.join("libonnxruntime.so.1.32.0"), b"").unwrap();
        assert_eq!(
            library_in_venv(venv.path()),
            Some(capi.join("libonnxruntime.so.1.32.0"))
        );
    }

    #[test]
    fn without_a_library_the_backend_is_disabled_and_says_how_to_get_one() {
        let empty_venv = tempfile::tempdir().unwrap();
        let backend =
            OnnxBackend::with_search_roots(None, &[empty_venv.path().to_owned()]).unwrap();
        assert_eq!(backend.library(), None);
        let model_dir = tempfile::tempdir().unwrap();
        std::fs::write(model_dir.path().join("model.onnx"), b"").unwrap();
        assert!(backend.recognizes(model_dir.path()));
        match backend.load(model_dir.path(), 1) {
            Err(BackendError::Runtime(message)) => {
                assert!(message.contains("pip install onnxruntime"), "{message}");
                assert!(message.contains("libonnxruntime.so"), "{message}");
            }
            Err(other) => panic!("expected a runtime error, got {other}"),
            Ok(_) => panic!("a disabled backend loaded a model"),
        }
    }

    #[test]
    fn onnx_element_types_map_to_v2_datatypes() {
        assert_eq!(datatype(TensorElementType::Float32), Some(DataType::Fp32));
        assert_eq!(datatype(TensorElementType::String), Some(DataType::Bytes));
        assert_eq!(datatype(TensorElementType::Float16), None);
        assert_eq!(datatype(TensorElementType::Bfloat16), None);
    }
}
