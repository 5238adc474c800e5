//! Finding and loading the ONNX Runtime shared library for `ort` (`load-dynamic`).
//!
//! `ort`'s own binaries come from a CDN (unreachable on many machines) and need glibc ≥ 2.39
//! on arm64, newer than Raspberry Pi OS; the library from PyPI's `onnxruntime` wheel works on
//! both (`scripts/fetch-onnxruntime`). Search order: an explicit path (`--ort-lib`),
//! `ORT_DYLIB_PATH`, then the known places; failing all, the error says which command fixes it.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The ONNX Runtime release `scripts/fetch-onnxruntime` installs.
pub const ORT_VERSION: &str = "1.32.0";
/// Environment variable naming the library, as `ort` itself uses.
pub const ENV_VAR: &str = "ORT_DYLIB_PATH";

#[derive(Debug, Clone, thiserror::Error)]
pub enum OrtSetupError {
    #[error(
        "ONNX Runtime library not found (looked at: {tried}).\n\
         Fix: run `scripts/fetch-onnxruntime` from the repository (it installs \
         libonnxruntime.so.{ORT_VERSION} into .ort/), or pass --ort-lib PATH, or set {ENV_VAR}."
    )]
    NotFound { tried: String },
    #[error("cannot load ONNX Runtime from {path}: {message}")]
    Load { path: PathBuf, message: String },
}

fn file_name() -> String {
    format!("libonnxruntime.so.{ORT_VERSION}")
}

/// Places a fetched or deployed library is looked for, in order.
pub fn known_places() -> Vec<PathBuf> {
    let name = file_name();
    let mut places = Vec::new();
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        // Deployed next to the binary, or in ../lib (the Pi layout in edge-runtime/deploy).
        places.push(dir.join(&name));
        places.push(dir.join("../lib").join(&name));
    }
    // The repository's own .ort/ (where scripts/fetch-onnxruntime puts it by default).
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    places.push(repo.join(".ort").join(std::env::consts::ARCH).join(&name));
    places.push(PathBuf::from("/usr/local/lib/gan-edge").join(&name));
    places
}

/// The library to load: `explicit`, else `ORT_DYLIB_PATH`, else the first known place that exists.
/// A named path that does not exist is an error, not a reason to pick another library.
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf, OrtSetupError> {
    let env = std::env::var_os(ENV_VAR).map(PathBuf::from);
    // A path the user named is used or reported, never silently replaced by another library.
    if let Some(path) = explicit.map(Path::to_path_buf).or(env) {
        return if path.is_file() {
            Ok(path)
        } else {
            Err(OrtSetupError::NotFound {
                tried: format!("{} (does not exist)", path.display()),
            })
        };
    }
    let mut tried = Vec::new();
    for place in known_places() {
        if place.is_file() {
            return Ok(place);
        }
        tried.push(place.display().to_string());
    }
    Err(OrtSetupError::NotFound {
        tried: tried.join(", "),
    })
}

/// The loaded library and the process's one ORT environment.
pub struct Runtime {
    pub library: PathBuf,
    pub environment: ort::environment::Environment,
}

static RUNTIME: OnceLock<Result<Runtime, OrtSetupError>> = OnceLock::new();

/// Loads the library and creates the process's one ORT environment (later calls reuse it, whatever
/// path they pass: ONNX Runtime allows one environment per process).
pub fn init(explicit: Option<&Path>) -> Result<&'static Runtime, OrtSetupError> {
    let result = RUNTIME.get_or_init(|| {
        let path = locate(explicit)?;
        let load = |message: String| OrtSetupError::Load {
            path: path.clone(),
            message,
        };
        let builder = ort::init_from(&path).map_err(|e| load(e.to_string()))?;
        let environment = builder
            .with_name("gan-toolkit")
            .build()
            .map_err(|e| load(e.to_string()))?;
        tracing::debug!("loaded ONNX Runtime from {}", path.display());
        Ok(Runtime {
            library: path,
            environment,
        })
    });
    result.as_ref().map_err(Clone::clone)
}
