//! The ONNX contract between `export` and everything that runs an exported generator
//! (`train eval`, the edge runtime): tensor names, opset, the metadata a model carries, and one
//! ONNX Runtime wrapper that checks a model against all of it. `docs/onnx-contract.md` is its
//! prose form.

pub mod attributes;
pub mod error;
#[cfg(feature = "runtime")]
pub mod generator;
pub mod info;
pub mod names;

pub use attributes::{AttributeInfo, AttributeRequest};
pub use error::{ContractError, Result};
#[cfg(feature = "runtime")]
pub use generator::{Conditioning, OnnxGenerator, Signature};
pub use info::ModelInfo;
pub use names::{
    keys, INPUT_ATTRIBUTES, INPUT_LABEL, INPUT_Z, IR_VERSION, KIND_GENERATOR, OPSET, OUTPUT_IMAGE,
};
