#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    /// A model that breaks the contract, a bad label, or ONNX Runtime failing.
    #[error(transparent)]
    Contract(#[from] gan_contract::ContractError),
    #[error("{0}")]
    Request(String),
    #[error("display {target}: {message}")]
    Display { target: String, message: String },
    /// A `fb:` path that is neither a framebuffer device nor given a geometry (a plain file).
    #[error("display {target}: not a framebuffer device ({source}); a plain file needs its geometry and pixel format given")]
    NotAFramebuffer {
        target: String,
        source: std::io::Error,
    },
    /// A display's file or device failed (`action`: "cannot open", "write failed", …).
    #[error("display {target}: {action}: {source}")]
    DisplayIo {
        target: String,
        action: &'static str,
        source: std::io::Error,
    },
    /// The runtime's own state went wrong (e.g. a model that answered with the wrong size).
    #[error("{0}")]
    Runtime(String),
    #[error(transparent)]
    Image(#[from] gan_grid::GridError),
}

pub type Result<T, E = EdgeError> = std::result::Result<T, E>;
