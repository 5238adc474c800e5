//! The attributes an attribute-conditional model is asked for (one class per attribute, the
//! columns of the labels CSV it was trained on), and how a runtime fills in the ones a request
//! leaves open: from their training frequencies, so a partial request still gives natural images.

use serde::{Deserialize, Serialize};

use crate::error::{ContractError, Result};

/// More classes than this in one attribute is not a category (the labels reader's limit too).
pub const MAX_ATTRIBUTE_CLASSES: usize = 1000;

/// One attribute: column `k` of the `attributes` input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttributeInfo {
    pub name: String,
    /// Class names as in the CSV; a class's index is its position.
    pub classes: Vec<String>,
    /// Each class's share of the training images (sums to 1).
    pub frequencies: Vec<f64>,
}

impl AttributeInfo {
    /// An attribute with the frequencies of `counts` (images per class).
    pub fn from_counts(name: &str, classes: Vec<String>, counts: &[usize]) -> Self {
        let total = counts.iter().sum::<usize>().max(1) as f64;
        Self {
            name: name.to_string(),
            classes,
            frequencies: counts.iter().map(|&c| c as f64 / total).collect(),
        }
    }

    /// A class by name, or an error listing the valid ones.
    pub fn class_index(&self, class: &str) -> Result<usize> {
        self.classes.iter().position(|c| c == class).ok_or_else(|| {
            ContractError::Request(format!(
                "attribute `{}` has no class `{class}`: it has {}",
                self.name,
                self.classes.join(", ")
            ))
        })
    }

    /// The class whose cumulative frequency first exceeds `u` (uniform in [0, 1)): a draw from
    /// the training frequencies.
    pub fn draw(&self, u: f64) -> usize {
        let mut cumulative = 0.0;
        for (i, f) in self.frequencies.iter().enumerate() {
            cumulative += f;
            if u < cumulative {
                return i;
            }
        }
        // Rounding can leave the sum a hair under 1: the last class with any share.
        self.frequencies.iter().rposition(|&f| f > 0.0).unwrap_or(0)
    }

    /// Checks what a model file says about this attribute.
    fn check(&self) -> Result<()> {
        let bad = |m: String| {
            Err(ContractError::Metadata(format!(
                "attribute `{}`: {m}",
                self.name
            )))
        };
        let n = self.classes.len();
        if self.name.is_empty() {
            return bad("empty name".into());
        }
        if !(2..=MAX_ATTRIBUTE_CLASSES).contains(&n) {
            return bad(format!("{n} classes, not 2..={MAX_ATTRIBUTE_CLASSES}"));
        }
        let mut names: Vec<&str> = self.classes.iter().map(String::as_str).collect();
        names.sort_unstable();
        if names.windows(2).any(|w| w[0] == w[1]) || names.contains(&"") {
            return bad("class names are empty or repeated".into());
        }
        if self.frequencies.len() != n {
            return bad(format!(
                "{} frequencies for {n} classes",
                self.frequencies.len()
            ));
        }
        let sum: f64 = self.frequencies.iter().sum();
        if self.frequencies.iter().any(|f| !(0.0..=1.0).contains(f)) || (sum - 1.0).abs() > 1e-3 {
            return bad(format!(
                "frequencies are not shares summing to 1 (sum {sum})"
            ));
        }
        Ok(())
    }
}

/// Checks a model's attribute list: each attribute sound, no name twice.
pub fn check_attributes(attributes: &[AttributeInfo]) -> Result<()> {
    for (i, a) in attributes.iter().enumerate() {
        a.check()?;
        if attributes[..i].iter().any(|b| b.name == a.name) {
            return Err(ContractError::Metadata(format!(
                "attribute `{}` is named twice",
                a.name
            )));
        }
    }
    Ok(())
}

/// A request for some attributes by name (`hair=long03`), the rest left to the frequencies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttributeRequest {
    /// Per attribute, in column order: the class asked for, if any.
    pub fixed: Vec<Option<usize>>,
}

impl AttributeRequest {
    /// Parses `name=class` pairs against `attributes`; an unknown name or class, or a name given
    /// twice, is refused with the valid ones listed.
    pub fn parse<'a>(
        attributes: &[AttributeInfo],
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self> {
        let mut fixed = vec![None; attributes.len()];
        for (name, class) in pairs {
            let k = attributes
                .iter()
                .position(|a| a.name == name)
                .ok_or_else(|| {
                    ContractError::Request(if attributes.is_empty() {
                        format!("unknown attribute `{name}`: this model takes no attributes")
                    } else {
                        format!(
                            "unknown attribute `{name}`: this model knows {}",
                            attributes
                                .iter()
                                .map(|a| a.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    })
                })?;
            if fixed[k].is_some() {
                return Err(ContractError::Request(format!(
                    "attribute `{name}` is given twice"
                )));
            }
            fixed[k] = Some(attributes[k].class_index(class)?);
        }
        Ok(Self { fixed })
    }

    /// One row of the `attributes` input: the fixed classes, and for every other attribute a
    /// class drawn from its frequencies with the next of `uniforms` (each in [0, 1)).
    pub fn row(&self, attributes: &[AttributeInfo], mut uniforms: impl FnMut() -> f64) -> Vec<i64> {
        attributes
            .iter()
            .enumerate()
            .map(|(k, a)| {
                let u = uniforms();
                self.fixed
                    .get(k)
                    .copied()
                    .flatten()
                    .unwrap_or_else(|| a.draw(u)) as i64
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hair() -> AttributeInfo {
        AttributeInfo::from_counts(
            "hair",
            vec!["long".into(), "short".into(), "bald".into()],
            &[6, 3, 1],
        )
    }

    fn glasses() -> AttributeInfo {
        AttributeInfo::from_counts("glasses", vec!["none".into(), "round".into()], &[1, 1])
    }

    #[test]
    fn draws_follow_the_frequencies() {
        let a = hair();
        assert_eq!(a.frequencies, [0.6, 0.3, 0.1]);
        let draws: Vec<usize> = [0.0, 0.59, 0.6, 0.89, 0.9, 0.999_999_9]
            .iter()
            .map(|&u| a.draw(u))
            .collect();
        assert_eq!(draws, [0, 0, 1, 1, 2, 2]);
        let mut counts = [0usize; 3];
        for i in 0..1000 {
            counts[a.draw((i as f64 + 0.5) / 1000.0)] += 1;
        }
        assert_eq!(counts, [600, 300, 100]);
    }

    #[test]
    fn requests_name_the_valid_choices() {
        let attributes = [hair(), glasses()];
        let r = AttributeRequest::parse(&attributes, [("glasses", "round")]).unwrap();
        assert_eq!(r.fixed, [None, Some(1)]);
        // The open attribute takes its draw, the fixed one its class.
        assert_eq!(r.row(&attributes, || 0.95), [2, 1]);
        let e = AttributeRequest::parse(&attributes, [("hat", "x")]).unwrap_err();
        assert!(
            e.to_string().contains("this model knows hair, glasses"),
            "{e}"
        );
        let e = AttributeRequest::parse(&attributes, [("hair", "curly")]).unwrap_err();
        assert!(e.to_string().contains("it has long, short, bald"), "{e}");
        let e =
            AttributeRequest::parse(&attributes, [("hair", "long"), ("hair", "bald")]).unwrap_err();
        assert!(e.to_string().contains("given twice"), "{e}");
        let e = AttributeRequest::parse(&[], [("hair", "long")]).unwrap_err();
        assert!(e.to_string().contains("takes no attributes"), "{e}");
    }

    #[test]
    fn unsound_attribute_lists_are_refused() {
        let mut one_class = hair();
        one_class.classes.truncate(1);
        one_class.frequencies = vec![1.0];
        let mut skewed = hair();
        skewed.frequencies[0] = 0.9;
        let mut short = hair();
        short.frequencies.pop();
        for (list, wanted) in [
            (vec![one_class], "1 classes"),
            (vec![skewed], "summing to 1"),
            (vec![short], "2 frequencies for 3 classes"),
            (vec![hair(), hair()], "named twice"),
        ] {
            let e = check_attributes(&list).unwrap_err().to_string();
            assert!(e.contains(wanted), "{e}");
        }
        check_attributes(&[hair(), glasses()]).unwrap();
    }
}
