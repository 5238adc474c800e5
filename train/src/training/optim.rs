//! Adam with its state exposed, so checkpoints can save and restore it exactly (candle-nn's
//! `AdamW` keeps its moments private).

use std::collections::{BTreeMap, HashMap};

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use gan_models::kernels::adam::{self, AdamStep};

use crate::error::{Result, TrainError};

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdamConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
}

impl Default for AdamConfig {
    /// DCGAN's settings: lr 2e-4, betas (0.5, 0.999).
    fn default() -> Self {
        Self {
            lr: 2e-4,
            beta1: 0.5,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

pub struct Adam {
    pub config: AdamConfig,
    /// Steps taken, for bias correction.
    pub t: u64,
    /// Update CPU tensors with candle's element-wise ops (the reference) instead of in place.
    pub candle_ops: bool,
    params: Vec<(String, Var)>,
    moments: BTreeMap<String, (Tensor, Tensor)>,
}

impl Adam {
    pub fn new(params: &BTreeMap<String, Var>, config: AdamConfig) -> Result<Self> {
        let mut moments = BTreeMap::new();
        for (name, var) in params {
            // Two tensors, not two handles on one: the CPU update writes them in place.
            let zeros = || var.as_tensor().zeros_like();
            moments.insert(name.clone(), (zeros()?, zeros()?));
        }
        Ok(Self {
            config,
            t: 0,
            candle_ops: false,
            params: params.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            moments,
        })
    }

    /// One update of every parameter that has a gradient in `grads`.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.t += 1;
        let AdamConfig {
            lr,
            beta1,
            beta2,
            eps,
        } = self.config;
        let bc1 = 1.0 - beta1.powi(self.t as i32);
        let bc2 = 1.0 - beta2.powi(self.t as i32);
        for (name, var) in &self.params {
            let Some(g) = grads.get(var.as_tensor()) else {
                continue;
            };
            let (m, v) = self
                .moments
                .get_mut(name)
                .expect("moments exist for every param");
            if var.device().is_cpu() && !self.candle_ops {
                // Three in-place passes instead of a dozen allocating candle ops per tensor
                // (docs/performance.md).
                let step = AdamStep {
                    lr,
                    beta1,
                    beta2,
                    bc1,
                    bc2,
                    eps,
                };
                adam::update_in_place(var.as_tensor(), m, v, g, &step)?;
            } else {
                *m = ((&*m * beta1)? + (g * (1.0 - beta1))?)?;
                *v = ((&*v * beta2)? + (g.sqr()? * (1.0 - beta2))?)?;
                let denom = ((&*v / bc2)?.sqrt()? + eps)?;
                let update = ((&*m / bc1)? / denom)?;
                var.set(&(var.as_tensor() - (update * lr)?)?)?;
            }
        }
        Ok(())
    }

    /// Moments as named tensors (`{prefix}.m.{param}` / `{prefix}.v.{param}`).
    pub fn state(&self, prefix: &str) -> Vec<(String, &Tensor)> {
        self.moments
            .iter()
            .flat_map(|(name, (m, v))| {
                [
                    (format!("{prefix}.m.{name}"), m),
                    (format!("{prefix}.v.{name}"), v),
                ]
            })
            .collect()
    }

    pub fn load_state(
        &mut self,
        prefix: &str,
        t: u64,
        tensors: &HashMap<String, Tensor>,
    ) -> Result<()> {
        for (name, (m, v)) in self.moments.iter_mut() {
            for (kind, slot) in [("m", m), ("v", v)] {
                let key = format!("{prefix}.{kind}.{name}");
                let t = tensors
                    .get(&key)
                    .ok_or_else(|| TrainError::OptimizerState {
                        key: key.clone(),
                        problem: "missing from the checkpoint".into(),
                    })?;
                if t.dims() != slot.dims() {
                    return Err(TrainError::OptimizerState {
                        key,
                        problem: format!("shape {:?}, expected {:?}", t.dims(), slot.dims()),
                    });
                }
                *slot = t.clone();
            }
        }
        self.t = t;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn minimises_a_quadratic() {
        let x = Var::new(&[3f32, -2.0], &Device::Cpu).unwrap();
        let params = BTreeMap::from([("x".to_string(), x.clone())]);
        let cfg = AdamConfig {
            lr: 0.1,
            beta1: 0.5,
            beta2: 0.999,
            eps: 1e-8,
        };
        let mut adam = Adam::new(&params, cfg).unwrap();
        // First Adam step moves each coordinate by lr against its gradient's sign.
        let loss = x.as_tensor().sqr().unwrap().sum_all().unwrap();
        adam.step(&loss.backward().unwrap()).unwrap();
        let v = x.as_tensor().to_vec1::<f32>().unwrap();
        assert!(
            (v[0] - 2.9).abs() < 1e-5 && (v[1] + 1.9).abs() < 1e-5,
            "{v:?}"
        );
        for _ in 0..300 {
            let loss = x.as_tensor().sqr().unwrap().sum_all().unwrap();
            adam.step(&loss.backward().unwrap()).unwrap();
        }
        let v = x.as_tensor().to_vec1::<f32>().unwrap();
        assert!(v.iter().all(|a| a.abs() < 0.05), "{v:?}");
    }

    #[test]
    fn in_place_update_matches_candle_ops() {
        let run = |candle_ops: bool| {
            let x = Var::new(&[[3f32, -2.0, 0.5], [1e-3, -7.0, 0.0]], &Device::Cpu).unwrap();
            let params = BTreeMap::from([("x".to_string(), x.clone())]);
            let mut adam = Adam::new(&params, AdamConfig::default()).unwrap();
            adam.candle_ops = candle_ops;
            for _ in 0..5 {
                let loss = (x.as_tensor().sqr().unwrap().sum_all().unwrap()
                    + x.as_tensor().sum_all().unwrap())
                .unwrap();
                adam.step(&loss.backward().unwrap()).unwrap();
            }
            let mut out = x
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            for (_, t) in adam.state("s") {
                out.extend(t.flatten_all().unwrap().to_vec1::<f32>().unwrap());
            }
            out
        };
        let (fused, reference) = (run(false), run(true));
        assert_eq!(fused.len(), reference.len());
        for (a, b) in fused.iter().zip(&reference) {
            assert!(
                (a - b).abs() <= 1e-6 * b.abs().max(1.0),
                "{fused:?} vs {reference:?}"
            );
        }
        // The parameters moved, and the two moments are distinct tensors.
        assert_ne!(fused[..6], [3f32, -2.0, 0.5, 1e-3, -7.0, 0.0]);
        assert_ne!(fused[6..12], fused[12..18]);
    }
}
