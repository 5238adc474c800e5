use std::path::{Path, PathBuf};

/// Errors of the training library; each names the file it is about where there is one.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{path}: {message}")]
    Data { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Checkpoint { path: PathBuf, message: String },
    /// A fresh run pointed at a run directory that already holds a checkpoint.
    #[error("{path}: a checkpoint already exists: resume it, or train into a new run directory")]
    CheckpointExists { path: PathBuf },
    /// A training or evaluation setting outside what it can be.
    #[error("invalid setting: {0}")]
    Setting(String),
    /// Images or features that a metric cannot score (too few, wrong shape).
    #[error("cannot score: {0}")]
    Metric(String),
    /// A dataset whose parts disagree (pixels, labels, shapes).
    #[error("invalid dataset: {0}")]
    Dataset(String),
    /// A checkpoint's optimizer state that is missing or does not fit the model.
    #[error("optimizer state `{key}`: {problem}")]
    OptimizerState { key: String, problem: String },
    /// Reading a file or folder failed (`action`: "read", "read image folder").
    #[error("{path}: cannot {action}: {source}")]
    Io {
        path: PathBuf,
        action: &'static str,
        source: std::io::Error,
    },
    /// An error about one file's contents (`context` says which part, or is empty).
    #[error("{path}: {context}{source}")]
    InFile {
        path: PathBuf,
        context: &'static str,
        source: Box<TrainError>,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Model(#[from] gan_models::ModelError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error(transparent)]
    Image(#[from] gan_grid::GridError),
    /// An ONNX model that breaks the contract, or ONNX Runtime failing.
    #[error(transparent)]
    Contract(#[from] gan_contract::ContractError),
}

impl TrainError {
    /// `source` said about the file at `path`, after `context` ("" for none).
    pub fn in_file(path: &Path, context: &'static str, source: impl Into<TrainError>) -> Self {
        TrainError::InFile {
            path: path.to_path_buf(),
            context,
            source: Box::new(source.into()),
        }
    }

    pub fn data(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        TrainError::Data {
            path: path.into(),
            message: message.into(),
        }
    }

    pub fn checkpoint(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        TrainError::Checkpoint {
            path: path.into(),
            message: message.into(),
        }
    }
}

pub type Result<T, E = TrainError> = std::result::Result<T, E>;
