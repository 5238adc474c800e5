//! Whether an attribute-conditional model draws what it is asked for: it is asked for the
//! attribute combinations of real held-out faces (their natural mix), and the face judge says,
//! per attribute, how often it sees the requested class, beside how often it is right on the
//! real held-out faces themselves (the best a model can expect to score).

use gan_contract::AttributeInfo;

use crate::data::labels::Labels;
use crate::error::{Result, TrainError};
use crate::evaluation::judge::{Judge, Judgement};

/// Per attribute (the model's order): the share of samples whose judged class is the
/// requested one, and the judge's accuracy on real held-out faces.
#[derive(Debug, Clone)]
pub struct RequestedScore {
    pub names: Vec<String>,
    pub requested: Vec<f64>,
    pub real: Vec<f64>,
}

impl RequestedScore {
    pub fn mean(&self) -> f64 {
        self.requested.iter().sum::<f64>() / self.requested.len().max(1) as f64
    }
}

/// `n` requests (`n × attributes`): the held-out rows in order, repeated as often as needed.
pub fn requests(held_out: &Labels, n: usize) -> Result<Vec<u32>> {
    let a = held_out.attributes.len();
    if held_out.is_empty() {
        return Err(TrainError::Metric(
            "the held-out labels have no rows".into(),
        ));
    }
    Ok(held_out
        .values()
        .chunks_exact(a)
        .cycle()
        .take(n)
        .flatten()
        .copied()
        .collect())
}

/// For each of the model's `attributes`, the judge head of the same name (its classes must be
/// the model's, in the same order, or the comparison would be meaningless).
fn heads_of(judge: &Judge, attributes: &[AttributeInfo]) -> Result<Vec<usize>> {
    attributes
        .iter()
        .map(|a| {
            let head = judge.heads.iter().position(|h| h.name == a.name);
            match head {
                Some(h) if judge.heads[h].classes == a.classes => Ok(h),
                Some(_) => Err(TrainError::Metric(format!(
                    "the judge's classes of `{}` are not the model's",
                    a.name
                ))),
                None => Err(TrainError::Metric(format!(
                    "the judge has no head for the model's attribute `{}`",
                    a.name
                ))),
            }
        })
        .collect()
}

/// Scores `judged` (the judge's view of the samples) against what each sample was asked for.
pub fn score_requested(
    judge: &Judge,
    judged: &Judgement,
    requested: &[u32],
    attributes: &[AttributeInfo],
) -> Result<RequestedScore> {
    let heads = heads_of(judge, attributes)?;
    let a = attributes.len();
    if requested.len() != judged.len() * a {
        return Err(TrainError::Metric(format!(
            "{} requests for {} judged images of {a} attributes",
            requested.len(),
            judged.len()
        )));
    }
    let requested_share = heads
        .iter()
        .enumerate()
        .map(|(k, &h)| {
            let seen = judged.column(h);
            let hits = seen
                .iter()
                .zip(requested.iter().skip(k).step_by(a))
                .filter(|(s, r)| s == r)
                .count();
            hits as f64 / seen.len().max(1) as f64
        })
        .collect();
    Ok(RequestedScore {
        names: attributes.iter().map(|a| a.name.clone()).collect(),
        requested: requested_share,
        real: heads.iter().map(|&h| judge.accuracy[h]).collect(),
    })
}

/// The per-attribute table of [`RequestedScore`].
pub fn requested_table(score: &RequestedScore) -> String {
    let mut table = String::from(
        "| attribute | requested class seen (generated) | judge accuracy (real held-out) |\n|---|---|---|\n",
    );
    for ((name, r), real) in score.names.iter().zip(&score.requested).zip(&score.real) {
        table += &format!("| {name} | {:.2} % | {:.2} % |\n", r * 100.0, real * 100.0);
    }
    let real_mean = score.real.iter().sum::<f64>() / score.real.len().max(1) as f64;
    table += &format!(
        "| mean | {:.2} % | {:.2} % |",
        score.mean() * 100.0,
        real_mean * 100.0
    );
    table
}
