//! What an image is asked for besides its latent: a class (class-conditional models), some
//! attributes (attribute-conditional models; the others are drawn from their training
//! frequencies), or nothing; and the condition values the model then takes.

use gan_contract::{AttributeRequest, ModelInfo};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::Result;

/// Stream of a seed's generator that draws open attributes (stream 0 draws the latents).
const ATTRIBUTE_STREAM: u64 = 1;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ask {
    /// A class of a class-conditional model; None: the classes cycle.
    pub label: Option<usize>,
    /// The attributes fixed for an attribute-conditional model (empty: all drawn).
    pub attributes: AttributeRequest,
}

impl Ask {
    /// A request by class name or index (`label`) and by `name=class` pairs, checked against
    /// the model: a label for a model without classes, or an attribute it does not have, is
    /// refused with what the model does take.
    pub fn parse<'a>(
        info: &ModelInfo,
        label: Option<&str>,
        attributes: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self> {
        let label = label.map(|l| info.class_index(l)).transpose()?;
        let attributes = AttributeRequest::parse(&info.attributes, attributes)?;
        Ok(Self { label, attributes })
    }

    /// What `count` images from `seed` take: labels (the asked class, or classes cycling 0, 1,
    /// 2, … so a grid shows every class), or `count` rows of attribute classes (the fixed ones,
    /// the rest drawn per image from this seed), or nothing.
    pub fn conditions(&self, info: &ModelInfo, count: usize, seed: u64) -> Vec<i64> {
        let classes = info.num_classes();
        if classes > 0 {
            return match self.label {
                Some(l) => vec![l as i64; count],
                None => (0..count).map(|i| (i % classes) as i64).collect(),
            };
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(ATTRIBUTE_STREAM);
        (0..count)
            .flat_map(|_| self.attributes.row(&info.attributes, || rng.gen::<f64>()))
            .collect()
    }

    /// The fixed attributes as `name class` pairs, for captions ("" when none is fixed).
    pub fn describe(&self, info: &ModelInfo) -> String {
        info.attributes
            .iter()
            .zip(&self.attributes.fixed)
            .filter_map(|(a, c)| c.map(|c| format!("{} {}", a.name, a.classes[c])))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Splits `name=class` arguments (`--attr hair=long03`) into pairs.
pub fn pairs(args: &[String]) -> std::result::Result<Vec<(&str, &str)>, String> {
    args.iter()
        .map(|a| {
            a.split_once('=')
                .filter(|(k, v)| !k.is_empty() && !v.is_empty())
                .ok_or_else(|| format!("`{a}` is not name=class (e.g. hair=long03)"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use gan_contract::AttributeInfo;

    fn faces() -> ModelInfo {
        ModelInfo {
            format_version: Some(1),
            name: "faces".into(),
            architecture: "dcgan64".into(),
            dataset: "faces".into(),
            latent_dim: 4,
            class_names: vec![],
            attributes: vec![
                AttributeInfo::from_counts("hair", vec!["long".into(), "short".into()], &[1, 1]),
                AttributeInfo::from_counts(
                    "glasses",
                    vec!["none".into(), "round".into(), "square".into()],
                    &[8, 1, 1],
                ),
            ],
            channels: 3,
            height: 8,
            width: 8,
            attribution: String::new(),
        }
    }

    #[test]
    fn fixed_attributes_stay_and_open_ones_follow_the_frequencies() {
        let info = faces();
        let ask = Ask::parse(&info, None, [("glasses", "round")]).unwrap();
        let rows = ask.conditions(&info, 1000, 7);
        assert_eq!(rows.len(), 2000);
        assert!(rows.chunks(2).all(|r| r[1] == 1), "glasses fixed");
        let long = rows.chunks(2).filter(|r| r[0] == 0).count();
        assert!(
            (400..600).contains(&long),
            "hair drawn ~1:1, got {long} long"
        );
        // The same seed draws the same faces; another seed others.
        assert_eq!(ask.conditions(&info, 8, 7), ask.conditions(&info, 8, 7));
        assert_ne!(ask.conditions(&info, 8, 7), ask.conditions(&info, 8, 8));
        let open = Ask::default().conditions(&info, 1000, 3);
        let none = open.chunks(2).filter(|r| r[1] == 0).count();
        assert!((740..860).contains(&none), "glasses none ~80 %, got {none}");
        assert_eq!(ask.describe(&info), "glasses round");
    }

    #[test]
    fn requests_the_model_cannot_serve_are_refused() {
        let info = faces();
        let e = Ask::parse(&info, Some("3"), []).unwrap_err().to_string();
        assert!(e.contains("asked for attributes"), "{e}");
        let e = Ask::parse(&info, None, [("hair", "green")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("it has long, short"), "{e}");
        assert!(pairs(&["hair".into()])
            .unwrap_err()
            .contains("not name=class"));
        assert_eq!(pairs(&["hair=long".into()]).unwrap(), [("hair", "long")]);
    }
}
