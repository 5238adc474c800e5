use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    #[error("{path}: {message}")]
    Model { path: PathBuf, message: String },
    #[error("{0}")]
    Request(String),
    #[error("display {target}: {message}")]
    Display { target: String, message: String },
    #[error("ONNX Runtime: {0}")]
    Runtime(String),
    #[error(transparent)]
    Setup(#[from] gan_ort::OrtSetupError),
    #[error(transparent)]
    Image(#[from] gan_grid::GridError),
}

pub type Result<T, E = EdgeError> = std::result::Result<T, E>;
