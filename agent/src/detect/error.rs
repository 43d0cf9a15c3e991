//! Errors of the detection path. Each message is a sentence that names the
//! problem and says what to do about it.

use std::path::PathBuf;

/// Everything that can go wrong while loading a model or analysing a frame.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    /// The ONNX Runtime shared library is not at the path we tried.
    #[error(
        "The ONNX Runtime library was not found at `{path}` (taken from {source_of_path}). \
         Install onnxruntime 1.31.x there, point `detect.runtime_library` in the agent config \
         or the `ORT_DYLIB_PATH` environment variable at libonnxruntime.so.1.31.x, or run `make setup`."
    )]
    RuntimeMissing {
        /// Path that was tried.
        path: PathBuf,
        /// Where the path came from (config key, environment variable or built-in default).
        source_of_path: String,
    },
    /// The library exists but could not be loaded or has the wrong version.
    #[error(
        "The ONNX Runtime library at `{path}` (taken from {source_of_path}) could not be used: {reason}. \
         Vigil needs onnxruntime 1.31.x; set `detect.runtime_library` or `ORT_DYLIB_PATH` to a \
         libonnxruntime.so.1.31.x file."
    )]
    RuntimeUnusable {
        /// Path that was tried.
        path: PathBuf,
        /// Where the path came from.
        source_of_path: String,
        /// What the loader said.
        reason: String,
    },
    /// The runtime was already loaded from another file in this process.
    #[error(
        "The ONNX Runtime library is already loaded from `{loaded}` in this process, so `{requested}` \
         cannot be used as well; configure a single runtime library."
    )]
    RuntimeAlreadyLoaded {
        /// The library in use.
        loaded: PathBuf,
        /// The library asked for now.
        requested: PathBuf,
    },
    /// Reading a file (manifest, labels, model) failed.
    #[error("Could not read `{path}`: {source}. Check that the file exists and is readable.")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The model manifest is not valid TOML or misses keys.
    #[error("The model manifest `{path}` is invalid: {reason}")]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong, as a sentence.
        reason: String,
    },
    /// The model file does not have the checksum the manifest promises.
    #[error(
        "The model file `{path}` has SHA-256 {found} but its manifest expects {expected}; \
         the file is corrupt or a different model. Re-run `make setup` (or models/fetch) to restore it."
    )]
    ModelChecksum {
        /// The model file.
        path: PathBuf,
        /// Checksum from the manifest.
        expected: String,
        /// Checksum of the file on disk.
        found: String,
    },
    /// ONNX Runtime refused the model file.
    #[error(
        "ONNX Runtime could not load the model `{path}`: {reason}. The file is corrupt or not an \
         ONNX model; restore it with `make setup` or point the manifest at a valid .onnx file."
    )]
    ModelLoad {
        /// The model file.
        path: PathBuf,
        /// What ONNX Runtime said.
        reason: String,
    },
    /// The model's inputs or outputs are not what its family needs.
    #[error(
        "The model `{path}` does not fit family `{family}`: {what} is {found} but {expected} was expected. \
         Check `family`, `input_width`/`input_height` and `labels` in the manifest, or re-export the model."
    )]
    ModelShape {
        /// The model file.
        path: PathBuf,
        /// The manifest's family.
        family: String,
        /// Which tensor / property.
        what: String,
        /// Expected value.
        expected: String,
        /// Value found in the model.
        found: String,
    },
    /// Running the model failed.
    #[error("Inference failed: {0}. This is unexpected for a model that loaded; check the logs of ONNX Runtime.")]
    Inference(String),
    /// The frame's buffer does not match its declared size.
    #[error(
        "Frame from camera `{camera_id}` is {width}x{height} {format} and needs {expected} bytes, \
         but has {found}; the frame source must deliver packed rows (RGB24: stride = width*3; \
         I420: Y, then U and V planes of ceil(width/2) x ceil(height/2))."
    )]
    BadFrame {
        /// Camera the frame came from.
        camera_id: String,
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
        /// Declared pixel format.
        format: &'static str,
        /// Bytes needed.
        expected: usize,
        /// Bytes delivered.
        found: usize,
    },
    /// Encoding a snapshot failed.
    #[error("Could not encode a snapshot JPEG: {0}")]
    Snapshot(String),
    /// The detection configuration has problems; each is one sentence.
    #[error("The detection configuration has {} problem(s):\n  - {}", .0.len(), .0.join("\n  - "))]
    Config(Vec<String>),
}

impl DetectError {
    /// Wraps an I/O error with the path it concerns.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DetectError::Io {
            path: path.into(),
            source,
        }
    }
}
