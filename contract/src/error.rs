use std::path::PathBuf;

/// A model that breaks the contract, or a runtime failure while running one.
#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    /// The model's metadata is missing a key or holds a value the contract does not allow.
    #[error("{0}")]
    Metadata(String),
    /// The graph's inputs or outputs are not the contract's.
    #[error("{0}")]
    Signature(String),
    /// A request the model cannot serve (wrong batch, labels out of range).
    #[error("{0}")]
    Request(String),
    #[error("{path}: cannot read model: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[cfg(feature = "runtime")]
    #[error("ONNX Runtime: {0}")]
    Runtime(#[from] ort::Error),
    #[cfg(feature = "runtime")]
    #[error(transparent)]
    Setup(#[from] gan_ort_setup::OrtSetupError),
    /// Any of the above about one model file.
    #[error("{path}: {source}")]
    Model {
        path: PathBuf,
        source: Box<ContractError>,
    },
}

impl ContractError {
    /// This error, said about the model file at `path`.
    pub fn in_file(self, path: impl Into<PathBuf>) -> Self {
        match self {
            e @ (ContractError::Model { .. } | ContractError::Read { .. }) => e,
            #[cfg(feature = "runtime")]
            e @ ContractError::Setup(_) => e,
            e => ContractError::Model {
                path: path.into(),
                source: Box::new(e),
            },
        }
    }
}

pub type Result<T, E = ContractError> = std::result::Result<T, E>;
