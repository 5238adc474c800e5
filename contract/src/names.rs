//! The names and versions an exported generator is held to.

/// ONNX opset of the exported graph: ONNX Runtime ≥ 1.16 loads it.
pub const OPSET: i64 = 17;
/// ONNX IR version matching [`OPSET`].
pub const IR_VERSION: i64 = 8;
/// Input: float32 `[N, latent_dim]`, standard normal.
pub const INPUT_Z: &str = "z";
/// Input of class-conditional models only: int64 `[N]`, a class index per image.
pub const INPUT_LABEL: &str = "label";
/// Input of attribute-conditional models only: int64 `[N, A]`, column k a class index of
/// attribute k (the order of [`keys::ATTRIBUTES`]).
pub const INPUT_ATTRIBUTES: &str = "attributes";
/// Value of [`keys::KIND`] in a generator safetensors file.
pub const KIND_GENERATOR: &str = "generator";
/// Output: float32 `[N, C, H, W]` in `[-1, 1]`.
pub const OUTPUT_IMAGE: &str = "image";

/// Keys of the ONNX `metadata_props` and of the generator safetensors' `__metadata__`.
pub mod keys {
    pub const FORMAT_VERSION: &str = "format_version";
    pub const MODEL_NAME: &str = "model_name";
    pub const ARCHITECTURE: &str = "architecture";
    pub const DATASET: &str = "dataset";
    pub const LATENT_DIM: &str = "latent_dim";
    pub const NUM_CLASSES: &str = "num_classes";
    /// A JSON list of strings, one per class, in class-index order.
    pub const CLASS_NAMES: &str = "class_names";
    /// A JSON list, in column order, of `{"name", "classes", "frequencies"}`: what the
    /// `attributes` input's columns mean. `[]` (or absent) for other models.
    pub const ATTRIBUTES: &str = "attributes";
    pub const CHANNELS: &str = "channels";
    pub const HEIGHT: &str = "height";
    pub const WIDTH: &str = "width";
    /// The dataset's attribution and licence text, shown beside what the model draws.
    pub const ATTRIBUTION: &str = "attribution";
    /// The full training-side model config as JSON (opaque to runtimes).
    pub const CONFIG: &str = "config";
    /// Safetensors only: `generator` or `checkpoint`.
    pub const KIND: &str = "kind";
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/onnx-contract.md is the contract in prose: every name here must appear in it as
    /// code (`name`), so the page and the crate cannot drift apart.
    #[test]
    fn the_contract_page_names_every_constant() {
        let page = include_str!("../../docs/onnx-contract.md");
        let names = [
            INPUT_Z,
            INPUT_LABEL,
            INPUT_ATTRIBUTES,
            OUTPUT_IMAGE,
            KIND_GENERATOR,
            keys::FORMAT_VERSION,
            keys::MODEL_NAME,
            keys::ARCHITECTURE,
            keys::DATASET,
            keys::LATENT_DIM,
            keys::NUM_CLASSES,
            keys::CLASS_NAMES,
            keys::ATTRIBUTES,
            keys::CHANNELS,
            keys::HEIGHT,
            keys::WIDTH,
            keys::ATTRIBUTION,
            keys::CONFIG,
            keys::KIND,
        ];
        for name in names {
            assert!(
                page.contains(&format!("`{name}`")),
                "docs/onnx-contract.md lacks `{name}`"
            );
        }
        assert!(page.contains(&format!("Opset {OPSET}, IR version {IR_VERSION}")));
    }
}
