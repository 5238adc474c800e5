//! The training checkpoint: G, D, both Adam states and the loop position in one safetensors file
//! (config and state in its metadata), replaced atomically, so a crash leaves the previous one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::Device;
use gan_models::checkpoint::{
    load_generator, strip_ema_prefix, write_tensor_file, CONFIG_KEY, EMA_PREFIX, KIND_KEY,
};
use gan_models::gan::{D_PREFIX, G_PREFIX};
use gan_models::{Discriminator, Generator, ModelConfig, Params, TensorFile};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use crate::training::ema;
use crate::training::optim::{Adam, AdamConfig};
use crate::training::recipe::Recipe;

pub use gan_models::checkpoint::CHECKPOINT_FILE_NAME as CHECKPOINT_FILE;
const STATE_KEY: &str = "train_state";

/// Where the loop is; with the seed this is the whole RNG state (see `rng.rs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    pub seed: u64,
    pub batch_size: usize,
    /// Optimizer steps completed.
    pub step: u64,
    /// Epoch in progress (or the next one, when `batch_in_epoch` is 0).
    pub epoch: u64,
    /// Next batch of `epoch` to run.
    pub batch_in_epoch: u64,
    pub adam_g: AdamConfig,
    pub adam_d: AdamConfig,
    pub adam_g_t: u64,
    pub adam_d_t: u64,
    /// Training wall time so far, seconds.
    pub elapsed_s: f64,
    /// Checkpoints written before the recipe was stored used the classic one.
    #[serde(default)]
    pub recipe: Recipe,
    /// The run this one continued with another recipe (`train --init-from`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_from: Option<StartedFrom>,
}

/// Where a second-stage run started: the first stage's run directory, step and recipe, or a
/// generator file (step 0, no recipe: the file does not keep one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StartedFrom {
    pub run: String,
    pub step: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipe: Option<Recipe>,
}

/// Everything training mutates.
pub struct Models {
    pub config: ModelConfig,
    pub recipe: Recipe,
    pub g: Generator,
    /// The EMA of G's weights, when the recipe keeps one.
    pub g_ema: Option<Generator>,
    pub d: Discriminator,
    pub opt_g: Adam,
    pub opt_d: Adam,
}

impl Models {
    pub fn fresh(
        config: ModelConfig,
        recipe: Recipe,
        adam_g: AdamConfig,
        adam_d: AdamConfig,
        init: &mut rand_chacha::ChaCha8Rng,
        device: &Device,
    ) -> Result<Self> {
        let g = Generator::init(config.generator.clone(), init, device)?;
        let d = Discriminator::init(config.discriminator.clone(), init, device)?;
        let g_ema = (recipe.ema_decay > 0.0)
            .then(|| ema::start(&g))
            .transpose()?;
        let opt_g = Adam::new(g.net.params.trainable(), adam_g)?;
        let opt_d = Adam::new(d.net.params.trainable(), adam_d)?;
        Ok(Self {
            config,
            recipe,
            g,
            g_ema,
            d,
            opt_g,
            opt_d,
        })
    }

    /// Replaces G and its EMA by a generator file's (inference) weights, with G's Adam state
    /// fresh: fine-tuning an exported model. The file must hold this architecture's G.
    pub fn start_generator_from(&mut self, path: &Path, device: &Device) -> Result<()> {
        let loaded = load_generator(path, device)?;
        refuse_other_generator(path, "the file's generator", &loaded.config, &self.config)?;
        self.g = loaded.generator;
        self.g_ema = self
            .g_ema
            .is_some()
            .then(|| ema::start(&self.g))
            .transpose()?;
        self.opt_g = Adam::new(self.g.net.params.trainable(), self.opt_g.config)?;
        Ok(())
    }

    /// Fresh models with the classic recipe and DCGAN's Adam for both networks, initialised from
    /// `seed`, on `kernels`: where step benchmarks and kernel comparisons start.
    pub fn classic(
        config: ModelConfig,
        seed: u64,
        kernels: gan_models::kernels::Kernels,
        device: &Device,
    ) -> Result<Self> {
        let adam = AdamConfig::default();
        let init = &mut crate::training::rng::stream(seed, crate::training::rng::Purpose::Init, 0);
        let mut models = Self::fresh(config, Recipe::default(), adam, adam, init, device)?;
        models.set_kernels(kernels);
        Ok(models)
    }

    /// Continues these models under another recipe and Adam settings (the moments are kept):
    /// an EMA is started from G when the new recipe keeps one and there was none, dropped when
    /// it keeps none.
    pub fn restart(
        &mut self,
        recipe: Recipe,
        adam_g: AdamConfig,
        adam_d: AdamConfig,
    ) -> Result<()> {
        self.g_ema = match (recipe.ema_decay > 0.0, self.g_ema.take()) {
            (true, Some(ema)) => Some(ema),
            (true, None) => Some(ema::start(&self.g)?),
            (false, _) => None,
        };
        self.recipe = recipe;
        self.opt_g.config = adam_g;
        self.opt_d.config = adam_d;
        Ok(())
    }

    /// Picks the CPU kernels for the networks (and their Adam updates).
    pub fn set_kernels(&mut self, backend: gan_models::kernels::Kernels) {
        self.g.net.kernels = backend;
        self.d.net.kernels = backend;
        if let Some(g) = &mut self.g_ema {
            g.net.kernels = backend;
        }
        // The reference path is candle's own ops throughout, the optimiser's included.
        let candle_ops = backend == gan_models::kernels::Kernels::Candle;
        self.opt_g.candle_ops = candle_ops;
        self.opt_d.candle_ops = candle_ops;
    }

    /// The generator inference should use: the EMA when there is one.
    pub fn inference_generator(&self) -> &Generator {
        self.g_ema.as_ref().unwrap_or(&self.g)
    }
}

/// Refuses a file whose G (`found`, described as `what`) is not the one this run builds.
fn refuse_other_generator(
    path: &Path,
    what: &str,
    found: &ModelConfig,
    expected: &ModelConfig,
) -> Result<()> {
    if found.architecture == expected.architecture && found.generator == expected.generator {
        return Ok(());
    }
    Err(TrainError::checkpoint(
        path,
        format!(
            "{what} is of architecture {:?} making {:?} images, or of other widths or \
             conditions; this run asks for {:?} making {:?}",
            found.architecture,
            found.image_shape()?,
            expected.architecture,
            expected.image_shape()?
        ),
    ))
}

pub fn path(run_dir: &Path) -> PathBuf {
    run_dir.join(CHECKPOINT_FILE)
}

pub fn save(run_dir: &Path, models: &Models, state: &TrainState) -> Result<()> {
    let mut tensors: Vec<(String, &candle_core::Tensor)> = Vec::new();
    tensors.extend(models.g.net.params.tensors().map(|(k, v)| (k.clone(), v)));
    tensors.extend(models.d.net.params.tensors().map(|(k, v)| (k.clone(), v)));
    if let Some(g) = &models.g_ema {
        tensors.extend(
            g.net
                .params
                .tensors()
                .map(|(k, v)| (format!("{EMA_PREFIX}{k}"), v)),
        );
    }
    tensors.extend(models.opt_g.state("opt_g"));
    tensors.extend(models.opt_d.state("opt_d"));
    let state_json = serde_json::to_string(state).expect("state serialises");
    let metadata = BTreeMap::from([
        (KIND_KEY.to_string(), "checkpoint".to_string()),
        (CONFIG_KEY.to_string(), models.config.to_json()),
        (STATE_KEY.to_string(), state_json.clone()),
    ]);
    write_tensor_file(&path(run_dir), tensors, metadata)?;
    // A human-readable copy; the safetensors file stays the one source of truth.
    let readable = serde_json::json!({ "state": state, "config": models.config });
    let text = serde_json::to_vec_pretty(&readable).expect("json serialises");
    let json_path = run_dir.join("checkpoint.json");
    gan_models::atomic::atomic_write(&json_path, &text).map_err(|source| TrainError::Write {
        path: json_path,
        source,
    })
}

/// Loads the run's checkpoint, refusing one whose architecture differs from `expected`.
pub fn load(
    run_dir: &Path,
    expected: &ModelConfig,
    device: &Device,
) -> Result<(Models, TrainState)> {
    let file_path = path(run_dir);
    if !file_path.is_file() {
        return Err(TrainError::checkpoint(
            &file_path,
            "no checkpoint to resume from",
        ));
    }
    from_file(TensorFile::read(&file_path, device)?, &file_path, expected)
}

/// The training state in a parsed checkpoint file; `file_path` only names it in errors.
pub fn from_file(
    file: TensorFile,
    file_path: &Path,
    expected: &ModelConfig,
) -> Result<(Models, TrainState)> {
    let file_path = file_path.to_path_buf();
    if file.metadata.get(KIND_KEY).map(String::as_str) != Some("checkpoint") {
        return Err(TrainError::checkpoint(
            &file_path,
            "not a training checkpoint",
        ));
    }
    let config = file.config(&file_path)?;
    refuse_other_generator(&file_path, "checkpoint", &config, expected)?;
    let state: TrainState = file
        .metadata
        .get(STATE_KEY)
        .and_then(|s| serde_json::from_str(s).ok())
        .ok_or_else(|| {
            TrainError::checkpoint(&file_path, "missing or unreadable training state")
        })?;
    let wrap = |e: gan_models::ModelError| TrainError::in_file(&file_path, "", e);
    let g = Generator::new(
        config.generator.clone(),
        Params::from_tensors(&config.generator.net, G_PREFIX, &file.tensors).map_err(wrap)?,
    );
    let g_ema = if state.recipe.ema_decay > 0.0 {
        let tensors = strip_ema_prefix(&file.tensors);
        let params = Params::from_tensors(&config.generator.net, G_PREFIX, &tensors);
        Some(Generator::new(
            config.generator.clone(),
            params.map_err(|e| TrainError::in_file(&file_path, "the EMA copy of G: ", e))?,
        ))
    } else {
        None
    };
    let d = Discriminator::new(
        config.discriminator.clone(),
        Params::from_tensors(&config.discriminator.net, D_PREFIX, &file.tensors).map_err(wrap)?,
    );
    let mut opt_g = Adam::new(g.net.params.trainable(), state.adam_g)?;
    let mut opt_d = Adam::new(d.net.params.trainable(), state.adam_d)?;
    let wrap_opt = |e: TrainError| TrainError::in_file(&file_path, "", e);
    opt_g
        .load_state("opt_g", state.adam_g_t, &file.tensors)
        .map_err(wrap_opt)?;
    opt_d
        .load_state("opt_d", state.adam_d_t, &file.tensors)
        .map_err(wrap_opt)?;
    Ok((
        Models {
            config,
            recipe: state.recipe,
            g,
            g_ema,
            d,
            opt_g,
            opt_d,
        },
        state,
    ))
}
