//! Conditions as the networks take them: a class label per sample (u32 `[N]`) or a class per
//! attribute (u32 `[N, A]`), checked against each column's class count, as one-hot codes laid
//! end to end, and drawn at random for G's inputs.

use candle_core::{DType, Device, Tensor};
use gan_contract::AttributeInfo;
use rand::Rng;

use crate::config::ModelConfig;
use crate::error::{ModelError, Result};

/// The values of `labels` (`[N]` for one column, `[N, A]` for `classes.len()` columns) as u32,
/// row-major, rejecting a value of column k outside `0..classes[k]`.
pub(crate) fn label_values(labels: &Tensor, classes: &[usize]) -> Result<Vec<u32>> {
    let columns = match labels.dims() {
        [_] => 1,
        [_, a] => *a,
        dims => {
            return Err(ModelError::InvalidConfig(format!(
                "labels must be [N] or [N, A], got {dims:?}"
            )))
        }
    };
    if columns != classes.len() {
        return Err(ModelError::InvalidConfig(format!(
            "labels have {columns} columns, the model takes {}",
            classes.len()
        )));
    }
    let values = labels
        .to_dtype(DType::U32)?
        .flatten_all()?
        .to_vec1::<u32>()?;
    for (i, &v) in values.iter().enumerate() {
        let limit = classes[i % columns];
        if v as usize >= limit {
            return Err(ModelError::InvalidConfig(format!(
                "label {v} is outside 0..{limit}"
            )));
        }
    }
    Ok(values)
}

/// Where each column's classes start when all columns' classes are laid end to end: the
/// classes of the columns before it (the exporter's graph adds the same offsets).
pub fn code_offsets(classes: &[usize]) -> Vec<usize> {
    classes
        .iter()
        .scan(0, |start, &c| {
            let offset = *start;
            *start += c;
            Some(offset)
        })
        .collect()
}

/// The checked values shifted by their column's offset: indices into all columns' classes laid
/// end to end (the rows of a projection's embedding, the positions of [`one_hot`]'s ones).
pub(crate) fn code_indices(labels: &Tensor, classes: &[usize]) -> Result<Vec<u32>> {
    let offsets = code_offsets(classes);
    let mut values = label_values(labels, classes)?;
    for (i, v) in values.iter_mut().enumerate() {
        *v += offsets[i % classes.len()] as u32;
    }
    Ok(values)
}

/// f32 rows of one one-hot code per column, laid end to end (`[N, Σ classes]`).
pub fn one_hot(labels: &Tensor, classes: &[usize], device: &Device) -> Result<Tensor> {
    let width: usize = classes.iter().sum();
    let indices = code_indices(labels, classes)?;
    let rows = indices.len() / classes.len().max(1);
    let mut data = vec![0f32; rows * width];
    for (i, &index) in indices.iter().enumerate() {
        data[(i / classes.len()) * width + index as usize] = 1.0;
    }
    Ok(Tensor::from_vec(data, (rows, width), device)?)
}

/// How G's conditions are drawn when nobody asks for particular ones (its training fakes, the
/// EMA's BatchNorm re-measurement, evaluation): classes uniformly (MNIST's digits are
/// balanced), attributes each from its training frequencies.
#[derive(Debug, Clone, PartialEq)]
pub enum LabelPrior {
    None,
    Uniform(usize),
    Attributes(Vec<AttributeInfo>),
}

impl LabelPrior {
    pub fn of(config: &ModelConfig) -> Self {
        let g = &config.generator;
        if g.num_classes > 0 {
            LabelPrior::Uniform(g.num_classes)
        } else if !g.attribute_classes.is_empty() {
            LabelPrior::Attributes(config.dataset.attributes.clone())
        } else {
            LabelPrior::None
        }
    }

    /// Per condition column, the share of each class in the draws (none when unconditional).
    pub fn frequencies(&self) -> Vec<Vec<f64>> {
        match self {
            LabelPrior::None => vec![],
            LabelPrior::Uniform(n) => vec![vec![1.0 / *n as f64; *n]],
            LabelPrior::Attributes(attributes) => {
                attributes.iter().map(|a| a.frequencies.clone()).collect()
            }
        }
    }

    /// The same prior with each attribute's shares raised to `power` and renormalised: 1 keeps
    /// the training mix, 0 draws every class equally often. Training can ask G for rare classes
    /// (a 2 % pair of glasses) more often than the data shows them. Classes and unconditional
    /// priors are unchanged, and so are the shares at power 1 (not renormalised, whose rounding
    /// could move a draw), so runs from before the option resume bit for bit.
    pub fn tempered(self, power: f64) -> Self {
        match self {
            LabelPrior::Attributes(attributes) if power != 1.0 => LabelPrior::Attributes(
                attributes
                    .into_iter()
                    .map(|a| {
                        let raised: Vec<f64> =
                            a.frequencies.iter().map(|f| f.powf(power)).collect();
                        let total: f64 = raised.iter().sum();
                        AttributeInfo {
                            frequencies: raised.iter().map(|r| r / total).collect(),
                            ..a
                        }
                    })
                    .collect(),
            ),
            other => other,
        }
    }

    /// Conditions for `n` samples: u32 `[n]`, `[n, A]`, or none.
    pub fn draw(&self, n: usize, rng: &mut impl Rng, device: &Device) -> Result<Option<Tensor>> {
        Ok(match self {
            LabelPrior::None => None,
            LabelPrior::Uniform(classes) => {
                let l: Vec<u32> = (0..n).map(|_| rng.gen_range(0..*classes as u32)).collect();
                Some(Tensor::from_vec(l, n, device)?)
            }
            LabelPrior::Attributes(attributes) => {
                let values: Vec<u32> = (0..n)
                    .flat_map(|_| {
                        attributes
                            .iter()
                            .map(|a| a.draw(rng.gen::<f64>()) as u32)
                            .collect::<Vec<_>>()
                    })
                    .collect();
                Some(Tensor::from_vec(values, (n, attributes.len()), device)?)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_codes_lie_end_to_end() {
        let labels = Tensor::new(&[[1u32, 0], [2, 1]], &Device::Cpu).unwrap();
        let codes = one_hot(&labels, &[3, 2], &Device::Cpu).unwrap();
        assert_eq!(
            codes.to_vec2::<f32>().unwrap(),
            [[0., 1., 0., 1., 0.], [0., 0., 1., 0., 1.]]
        );
        assert_eq!(code_indices(&labels, &[3, 2]).unwrap(), [1, 3, 2, 4]);
        let e = one_hot(&labels, &[3, 1], &Device::Cpu).unwrap_err();
        assert!(e.to_string().contains("label 1 is outside 0..1"), "{e}");
        let e = one_hot(&labels, &[3], &Device::Cpu).unwrap_err();
        assert!(
            e.to_string().contains("2 columns, the model takes 1"),
            "{e}"
        );
        let digits = Tensor::new(&[7u32, 0], &Device::Cpu).unwrap();
        let codes = one_hot(&digits, &[10], &Device::Cpu).unwrap();
        assert_eq!(codes.to_vec2::<f32>().unwrap()[0][7], 1.0);
    }

    #[test]
    fn tempered_priors_ask_for_rare_classes_more_often() {
        let glasses =
            AttributeInfo::from_counts("glasses", vec!["none".into(), "round".into()], &[81, 1]);
        let prior = LabelPrior::Attributes(vec![glasses]);
        let shares = |p: f64| prior.clone().tempered(p).frequencies()[0].clone();
        assert_eq!(shares(1.0), prior.frequencies()[0]);
        assert_eq!(shares(0.0), [0.5, 0.5]);
        let root = shares(0.5);
        assert!(
            (root[0] - 0.9).abs() < 1e-12 && (root[1] - 0.1).abs() < 1e-12,
            "{root:?}"
        );
        // Drawn as tempered: about 1 in 10 asks for the rare class, not 1 in 82.
        let mut rng = rand::rngs::mock::StepRng::new(0, u64::MAX / 1000);
        let drawn = prior
            .tempered(0.5)
            .draw(1000, &mut rng, &Device::Cpu)
            .unwrap();
        let rare = drawn
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<u32>()
            .unwrap();
        let rare = rare.iter().filter(|&&c| c == 1).count();
        assert!((90..=110).contains(&rare), "{rare} of 1000");
        assert_eq!(
            LabelPrior::Uniform(10).tempered(0.0),
            LabelPrior::Uniform(10)
        );
    }
}
