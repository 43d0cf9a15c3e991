//! The runtime library errors. Its own test binary (process) because ONNX
//! Runtime can be loaded only once per process.

use vigil_agent::detect::error::DetectError;
use vigil_agent::detect::runtime::init_runtime;

mod detect_support;

#[test]
fn missing_or_bad_runtime_library_gives_clear_errors_then_the_good_one_loads() {
    let dir = detect_support::tempdir();
    let missing = dir.path().join("nope/libonnxruntime.so.1.31.1");
    let err = match init_runtime(Some(&missing)) {
        Err(e) => e,
        Ok(_) => panic!("a missing library must not load"),
    };
    let msg = err.to_string();
    assert!(matches!(err, DetectError::RuntimeMissing { .. }), "{msg}");
    assert!(msg.contains(&missing.display().to_string()), "{msg}");
    assert!(
        msg.contains("ORT_DYLIB_PATH") && msg.contains("1.31.x"),
        "{msg}"
    );
    assert!(msg.contains("detect.runtime_library"), "{msg}");

    let garbage = dir.path().join("libonnxruntime.so");
    if let Err(e) = std::fs::write(&garbage, b"this is not a shared library") {
        panic!("{e}");
    }
    let err = match init_runtime(Some(&garbage)) {
        Err(e) => e,
        Ok(_) => panic!("a garbage file must not load"),
    };
    let msg = err.to_string();
    assert!(matches!(err, DetectError::RuntimeUnusable { .. }), "{msg}");
    assert!(
        msg.contains(&garbage.display().to_string()) && msg.contains("1.31.x"),
        "{msg}"
    );

    let good = detect_support::runtime_lib();
    if let Err(e) = init_runtime(Some(&good)) {
        panic!("{e}");
    }
    // Same library again is fine; a different one is refused by name.
    assert!(init_runtime(Some(&good)).is_ok());
    let other = dir.path().join("other.so");
    if let Err(e) = std::fs::copy(&good, &other) {
        panic!("{e}");
    }
    let msg = match init_runtime(Some(&other)) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("a second library must be refused"),
    };
    assert!(msg.contains("already loaded"), "{msg}");
}
