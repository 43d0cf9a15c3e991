//! Loading the ONNX Runtime shared library (ort `load-dynamic`).
//!
//! ort keeps one loaded library and one environment per process, so this module
//! keeps them in a process-wide slot and refuses a second, different library
//! rather than silently using the first.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::error::DetectError;

/// Environment variable that overrides the default library path.
pub const ORT_DYLIB_ENV: &str = "ORT_DYLIB_PATH";

/// Version of ONNX Runtime the agent is built and tested against.
pub const EXPECTED_ORT_VERSION: &str = "1.31.x";

/// The process-wide runtime: the library path it came from and the ort environment.
static RUNTIME: Mutex<Option<(PathBuf, ort::environment::Environment)>> = Mutex::new(None);

/// Where a library path came from; named in errors so the user knows what to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LibrarySource {
    /// `detect.runtime_library` in the agent config.
    Config,
    /// The `ORT_DYLIB_PATH` environment variable.
    Env,
    /// The built-in default next to the source tree.
    Default,
}

impl std::fmt::Display for LibrarySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LibrarySource::Config => f.write_str("config key `detect.runtime_library`"),
            LibrarySource::Env => write!(f, "environment variable `{ORT_DYLIB_ENV}`"),
            LibrarySource::Default => write!(
                f,
                "the built-in default; `{ORT_DYLIB_ENV}` and `detect.runtime_library` are unset"
            ),
        }
    }
}

/// The built-in default: `<repo>/.deps/onnxruntime/libonnxruntime.so.1.31.1`, where `make setup` puts it.
pub fn default_library_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(".deps/onnxruntime/libonnxruntime.so.1.31.1")
}

/// Picks the library path: config value, else `ORT_DYLIB_PATH`, else [`default_library_path`].
pub fn resolve_library_path(configured: Option<&Path>) -> (PathBuf, LibrarySource) {
    if let Some(p) = configured {
        return (p.to_path_buf(), LibrarySource::Config);
    }
    match std::env::var_os(ORT_DYLIB_ENV) {
        Some(v) if !v.is_empty() => (PathBuf::from(v), LibrarySource::Env),
        _ => (default_library_path(), LibrarySource::Default),
    }
}

/// Loads ONNX Runtime (once per process) and returns its environment.
///
/// Calling again with the same library is cheap and returns the same environment.
pub fn init_runtime(
    configured: Option<&Path>,
) -> Result<ort::environment::Environment, DetectError> {
    let (path, source) = resolve_library_path(configured);
    let mut slot = RUNTIME.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((loaded, env)) = slot.as_ref() {
        if same_file(loaded, &path) {
            return Ok(env.clone());
        }
        return Err(DetectError::RuntimeAlreadyLoaded {
            loaded: loaded.clone(),
            requested: path,
        });
    }
    // Check ourselves first: ort's own loader falls back to the executable's
    // directory and its message does not say what to do.
    if !path.is_file() {
        return Err(DetectError::RuntimeMissing {
            path,
            source_of_path: source.to_string(),
        });
    }
    let unusable = |reason: String| DetectError::RuntimeUnusable {
        path: path.clone(),
        source_of_path: source.to_string(),
        reason,
    };
    let builder = ort::init_from(&path).map_err(|e| unusable(e.to_string()))?;
    let env = builder
        .with_name("vigil-detect")
        .with_telemetry(false)
        .build()
        .map_err(|e| unusable(e.to_string()))?;
    let canonical = path.canonicalize().unwrap_or(path);
    *slot = Some((canonical, env.clone()));
    Ok(env)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}
