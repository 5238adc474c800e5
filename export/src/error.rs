use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{0}")]
    Invalid(String),
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("{path}: cannot write: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("verification failed: max |candle − ONNX Runtime| = {diff:e} at N = {batch} (limit {limit:e})")]
    Mismatch { diff: f32, batch: usize, limit: f32 },
    #[error(transparent)]
    Contract(#[from] gan_contract::ContractError),
    #[error(transparent)]
    Model(#[from] gan_models::ModelError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

pub type Result<T, E = ExportError> = std::result::Result<T, E>;
