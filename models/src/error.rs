use std::path::PathBuf;

/// Everything that can go wrong while building, loading or saving a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("unknown architecture `{0}` (known: mnist-cdcgan, dcgan64)")]
    UnknownArchitecture(String),
    #[error("invalid model config: {0}")]
    InvalidConfig(String),
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    /// Reading or writing the file failed (`action`: "read", "write").
    #[error("{path}: cannot {action}: {source}")]
    Io {
        path: PathBuf,
        action: &'static str,
        source: std::io::Error,
    },
    #[error("{path}: not a safetensors file: {source}")]
    NotSafetensors {
        path: PathBuf,
        source: safetensors::SafeTensorError,
    },
    #[error("{path}: corrupt tensor data: {source}")]
    CorruptTensors {
        path: PathBuf,
        source: candle_core::Error,
    },
    #[error("missing tensor `{0}`")]
    MissingTensor(String),
    #[error("tensor `{name}` has shape {found:?}, expected {expected:?}")]
    ShapeMismatch {
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("tensor `{0}` holds NaN or infinite values")]
    NonFinite(String),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

pub type Result<T, E = ModelError> = std::result::Result<T, E>;
