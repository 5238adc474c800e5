//! What a model says about itself in its metadata, so a runtime never guesses: latent size,
//! classes, image shape, and the text to credit its dataset with.

use std::collections::BTreeMap;

use crate::attributes::{check_attributes, AttributeInfo};
use crate::error::{ContractError, Result};
use crate::names::keys;

/// Largest latent size, channel count or side a runtime accepts from metadata.
const MAX_DIM: usize = 4096;

#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    /// Version of the training-side config format (absent in hand-made models).
    pub format_version: Option<u32>,
    pub name: String,
    /// Architecture name (`mnist-cdcgan`, `dcgan64`); empty when the model does not say.
    pub architecture: String,
    pub dataset: String,
    pub latent_dim: usize,
    /// One name per class, in class-index order; empty for an unconditional model.
    pub class_names: Vec<String>,
    /// Attribute-conditional models: the `attributes` input's columns, in order; else empty.
    pub attributes: Vec<AttributeInfo>,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub attribution: String,
}

impl ModelInfo {
    pub fn num_classes(&self) -> usize {
        self.class_names.len()
    }

    /// Values per image (`C·H·W`).
    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// A class by name ("7", "seven"), or by index.
    pub fn class_index(&self, label: &str) -> Result<usize> {
        if !self.attributes.is_empty() {
            return Err(ContractError::Request(format!(
                "model `{}` is asked for attributes (name=class), not a label",
                self.name
            )));
        }
        if self.class_names.is_empty() {
            return Err(ContractError::Request(format!(
                "model `{}` is unconditional: it takes no label",
                self.name
            )));
        }
        self.class_names
            .iter()
            .position(|n| n == label)
            .or_else(|| {
                label
                    .parse::<usize>()
                    .ok()
                    .filter(|&i| i < self.num_classes())
            })
            .ok_or_else(|| {
                ContractError::Request(format!(
                    "unknown label `{label}`: this model knows {}",
                    self.class_names.join(", ")
                ))
            })
    }

    /// The contract's key/value pairs (sorted by key).
    pub fn to_metadata(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::from([
            (keys::MODEL_NAME.into(), self.name.clone()),
            (keys::ARCHITECTURE.into(), self.architecture.clone()),
            (keys::DATASET.into(), self.dataset.clone()),
            (keys::LATENT_DIM.into(), self.latent_dim.to_string()),
            (keys::NUM_CLASSES.into(), self.num_classes().to_string()),
            (
                keys::CLASS_NAMES.into(),
                serde_json::Value::from(self.class_names.clone()).to_string(),
            ),
            (
                keys::ATTRIBUTES.into(),
                serde_json::to_string(&self.attributes).expect("attributes serialize"),
            ),
            (keys::CHANNELS.into(), self.channels.to_string()),
            (keys::HEIGHT.into(), self.height.to_string()),
            (keys::WIDTH.into(), self.width.to_string()),
            (keys::ATTRIBUTION.into(), self.attribution.clone()),
        ]);
        if let Some(v) = self.format_version {
            m.insert(keys::FORMAT_VERSION.into(), v.to_string());
        }
        m
    }

    /// The contract's metadata, checked: `custom` looks up one key (ONNX `metadata_props` or
    /// safetensors `__metadata__`).
    pub fn from_metadata(custom: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let bad = |m: String| ContractError::Metadata(m);
        let get = |key: &str| -> Result<String> {
            custom(key).ok_or_else(|| {
                bad(format!(
                    "metadata lacks '{key}' (not exported by this toolkit's 'export'?)"
                ))
            })
        };
        let num = |key: &str| -> Result<usize> {
            let v = get(key)?;
            v.parse::<usize>()
                .ok()
                .filter(|&n| n > 0 && n <= MAX_DIM)
                .ok_or_else(|| bad(format!("metadata `{key}` = `{v}` is not a sensible size")))
        };
        let class_names: Vec<String> =
            serde_json::from_str(&get(keys::CLASS_NAMES)?).map_err(|e| {
                bad(format!(
                    "metadata `{}` is not a JSON list of strings: {e}",
                    keys::CLASS_NAMES
                ))
            })?;
        let num_classes: usize = get(keys::NUM_CLASSES)?
            .parse()
            .map_err(|_| bad(format!("metadata `{}` is not a number", keys::NUM_CLASSES)))?;
        if num_classes != class_names.len() {
            return Err(bad(format!(
                "metadata says {num_classes} classes but names {}",
                class_names.len()
            )));
        }
        // Absent in models exported before attributes existed: none.
        let attributes: Vec<AttributeInfo> = match custom(keys::ATTRIBUTES) {
            None => Vec::new(),
            Some(text) => serde_json::from_str(&text).map_err(|e| {
                bad(format!(
                    "metadata `{}` is not a JSON list of {{\"name\", \"classes\", \"frequencies\"}}: {e}",
                    keys::ATTRIBUTES
                ))
            })?,
        };
        check_attributes(&attributes)?;
        if !attributes.is_empty() && num_classes > 0 {
            return Err(bad(format!(
                "metadata names both {num_classes} classes and {} attributes; a model takes one or the other",
                attributes.len()
            )));
        }
        let channels = num(keys::CHANNELS)?;
        if channels != 1 && channels != 3 {
            return Err(bad(format!(
                "{channels} channels: only gray or RGB images can be shown"
            )));
        }
        let format_version = custom(keys::FORMAT_VERSION)
            .map(|v| {
                v.parse::<u32>().map_err(|_| {
                    bad(format!(
                        "metadata `{}` = `{v}` is not a version number",
                        keys::FORMAT_VERSION
                    ))
                })
            })
            .transpose()?;
        Ok(ModelInfo {
            format_version,
            name: get(keys::MODEL_NAME)?,
            architecture: custom(keys::ARCHITECTURE).unwrap_or_default(),
            dataset: custom(keys::DATASET).unwrap_or_default(),
            latent_dim: num(keys::LATENT_DIM)?,
            class_names,
            attributes,
            channels,
            height: num(keys::HEIGHT)?,
            width: num(keys::WIDTH)?,
            attribution: custom(keys::ATTRIBUTION).unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digits() -> ModelInfo {
        ModelInfo {
            format_version: Some(1),
            name: "m".into(),
            architecture: "mnist-cdcgan".into(),
            dataset: "mnist".into(),
            latent_dim: 100,
            class_names: (0..10).map(|i| i.to_string()).collect(),
            attributes: vec![],
            channels: 1,
            height: 28,
            width: 28,
            attribution: "LeCun et al.".into(),
        }
    }

    #[test]
    fn metadata_round_trips() {
        let info = digits();
        let m = info.to_metadata();
        assert_eq!(
            m[keys::CLASS_NAMES],
            r#"["0","1","2","3","4","5","6","7","8","9"]"#
        );
        assert_eq!(
            ModelInfo::from_metadata(|k| m.get(k).cloned()).unwrap(),
            info
        );
    }

    #[test]
    fn attributes_round_trip_and_old_models_have_none() {
        let mut info = digits();
        info.class_names.clear();
        info.attributes = vec![AttributeInfo::from_counts(
            "glasses",
            vec!["none".into(), "round".into()],
            &[3, 1],
        )];
        let mut m = info.to_metadata();
        assert_eq!(
            m[keys::ATTRIBUTES],
            r#"[{"name":"glasses","classes":["none","round"],"frequencies":[0.75,0.25]}]"#
        );
        assert_eq!(
            ModelInfo::from_metadata(|k| m.get(k).cloned()).unwrap(),
            info
        );
        m.remove(keys::ATTRIBUTES);
        let old = ModelInfo::from_metadata(|k| m.get(k).cloned()).unwrap();
        assert!(old.attributes.is_empty());
        m.insert(keys::ATTRIBUTES.into(), "[{\"name\":\"glasses\"}]".into());
        let e = ModelInfo::from_metadata(|k| m.get(k).cloned()).unwrap_err();
        assert!(
            e.to_string()
                .contains("metadata `attributes` is not a JSON list"),
            "{e}"
        );
    }

    #[test]
    fn bad_metadata_is_named() {
        let mut m = digits().to_metadata();
        m.insert(keys::NUM_CLASSES.into(), "9".into());
        let e = ModelInfo::from_metadata(|k| m.get(k).cloned()).unwrap_err();
        assert!(e.to_string().contains("9 classes but names 10"), "{e}");
        m.remove(keys::LATENT_DIM);
        m.insert(keys::NUM_CLASSES.into(), "10".into());
        let e = ModelInfo::from_metadata(|k| m.get(k).cloned()).unwrap_err();
        assert!(e.to_string().contains("metadata lacks 'latent_dim'"), "{e}");
        m.insert(keys::LATENT_DIM.into(), "0".into());
        let e = ModelInfo::from_metadata(|k| m.get(k).cloned()).unwrap_err();
        assert!(e.to_string().contains("not a sensible size"), "{e}");
    }

    #[test]
    fn classes_by_name_or_index() {
        let info = digits();
        assert_eq!(info.class_index("7").unwrap(), 7);
        assert!(info.class_index("10").is_err());
        let mut plain = info.clone();
        plain.class_names.clear();
        assert!(plain
            .class_index("1")
            .unwrap_err()
            .to_string()
            .contains("unconditional"));
    }
}
