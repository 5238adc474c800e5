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
    /// The same share per requested class, averaged over the classes asked for: a model that
    /// always draws the commonest class (no glasses) scores that class's share of the requests
    /// in `requested`, but only 1 / (classes asked for) here.
    pub per_class: Vec<f64>,
    /// The commonest requested class's share of the requests: what `requested` would be for a
    /// model that ignores the request and always draws that class.
    pub commonest: Vec<f64>,
    pub real: Vec<f64>,
}

/// One attribute's shares: of all requests, averaged over the classes asked for, and the
/// commonest class's share of the requests.
fn shares(seen: &[u32], asked: &[u32]) -> (f64, f64, f64) {
    let mut per: std::collections::BTreeMap<u32, (usize, usize)> = Default::default();
    for (s, r) in seen.iter().zip(asked) {
        let e = per.entry(*r).or_default();
        e.0 += (s == r) as usize;
        e.1 += 1;
    }
    let n = asked.len().max(1) as f64;
    let hits: usize = per.values().map(|(h, _)| h).sum();
    let per_class =
        per.values().map(|&(h, c)| h as f64 / c as f64).sum::<f64>() / per.len().max(1) as f64;
    let commonest = per.values().map(|&(_, c)| c).max().unwrap_or(0) as f64 / n;
    (hits as f64 / n, per_class, commonest)
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
    let (mut plain, mut per_class, mut commonest) = (vec![], vec![], vec![]);
    for (k, &h) in heads.iter().enumerate() {
        let asked: Vec<u32> = requested.iter().skip(k).step_by(a).copied().collect();
        let (p, c, m) = shares(&judged.column(h), &asked);
        plain.push(p);
        per_class.push(c);
        commonest.push(m);
    }
    Ok(RequestedScore {
        names: attributes.iter().map(|a| a.name.clone()).collect(),
        requested: plain,
        per_class,
        commonest,
        real: heads.iter().map(|&h| judge.accuracy[h]).collect(),
    })
}

/// The per-attribute table of [`RequestedScore`].
pub fn requested_table(score: &RequestedScore) -> String {
    let mut table = String::from(
        "| attribute | requested class seen (generated) | mean over the classes asked for | \
         always the commonest class would score | judge accuracy (real held-out) |\n\
         |---|---|---|---|---|\n",
    );
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64 * 100.0;
    for (k, name) in score.names.iter().enumerate() {
        table += &format!(
            "| {name} | {:.2} % | {:.2} % | {:.2} % | {:.2} % |\n",
            score.requested[k] * 100.0,
            score.per_class[k] * 100.0,
            score.commonest[k] * 100.0,
            score.real[k] * 100.0
        );
    }
    table += &format!(
        "| mean | {:.2} % | {:.2} % | {:.2} % | {:.2} % |",
        score.mean() * 100.0,
        mean(&score.per_class),
        mean(&score.commonest),
        mean(&score.real)
    );
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_that_ignores_a_rare_class_scores_its_share_but_not_per_class() {
        // Nine faces asked for no glasses, one for glasses; the model never draws them.
        let asked = [0, 0, 0, 0, 0, 0, 0, 0, 0, 3];
        let (plain, per_class, commonest) = shares(&[0; 10], &asked);
        assert!((plain - 0.9).abs() < 1e-12);
        assert!((per_class - 0.5).abs() < 1e-12, "{per_class}");
        assert!((commonest - 0.9).abs() < 1e-12);
        // Drawing the rare class when asked: every share is perfect.
        let (plain, per_class, _) = shares(&asked, &asked);
        assert_eq!((plain, per_class), (1.0, 1.0));
        // Half right on both classes, in different proportions.
        let seen = [0, 0, 1, 1, 5, 5, 5, 5];
        let asked = [0, 0, 0, 0, 5, 5, 5, 7];
        let (plain, per_class, commonest) = shares(&seen, &asked);
        assert!((plain - 5.0 / 8.0).abs() < 1e-12);
        assert!((per_class - (0.5 + 1.0 + 0.0) / 3.0).abs() < 1e-12);
        assert!((commonest - 0.5).abs() < 1e-12);
    }
}
