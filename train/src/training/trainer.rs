//! The adversarial loop: a D step on real and G(z), then a G step through D with the
//! non-saturating loss; checkpoints, samples and metrics along the way.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use candle_core::{Device, Tensor};
use gan_models::kernels::Kernels;
use gan_models::labels::LabelPrior;
use gan_models::ModelConfig;
use indicatif::{ProgressBar, ProgressStyle};

use crate::data::augment::diff_augment;
use crate::data::dataset::Dataset;
use crate::error::{Result, TrainError};
use crate::training::checkpoint::{self, Models, TrainState};
use crate::training::ema;
use crate::training::losses::{
    balance_weights, class_loss, discriminator_loss, generator_loss, mean_probability,
};
use crate::training::metrics::{Interval, Metrics};
use crate::training::optim::AdamConfig;
use crate::training::recipe::Recipe;
use crate::training::rng::{normal, permutation, stream, weighted_order, Purpose};
use crate::training::samples::write_grid;

#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub epochs: u64,
    pub batch_size: usize,
    pub adam_g: AdamConfig,
    pub adam_d: AdamConfig,
    pub recipe: Recipe,
    pub seed: u64,
    pub resume: bool,
    /// Steps per metrics row.
    pub log_every: u64,
    pub progress: bool,
    /// Stop (with a checkpoint) after this many steps in this invocation; for tests and benches.
    pub max_steps: Option<u64>,
    pub kernels: Kernels,
    /// Start from this run directory's checkpoint (weights, EMA, Adam moments, position) with
    /// this run's recipe and Adam settings, into a new run directory: a second stage of training.
    /// A generator file (`export --safetensors`) instead starts G and its EMA from its weights,
    /// with a fresh D and fresh Adam states at step 0: fine-tuning a model whose run is gone.
    pub init_from: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Finished,
    /// Stopped early (Ctrl-C or `max_steps`) after writing a checkpoint.
    Interrupted,
}

pub struct Summary {
    pub outcome: Outcome,
    pub state: TrainState,
    pub images_per_s: f64,
}

/// One step's numbers.
pub struct StepStats {
    pub loss_d: f32,
    pub loss_g: f32,
    pub d_x: f32,
    pub d_g_z: f32,
}

/// Runs one adversarial step on a batch. `step` selects the noise stream.
pub fn train_step(
    models: &mut Models,
    real: &Tensor,
    labels: Option<&Tensor>,
    seed: u64,
    step: u64,
) -> Result<StepStats> {
    let device = real.device();
    let batch = real.dim(0)?;
    let latent = models.config.generator.latent_dim;
    let mut rng = stream(seed, Purpose::Noise, step);
    let z = Tensor::from_vec(normal(&mut rng, batch * latent), (batch, latent), device)?;
    // The pixel term needs the real faces' own attributes; `train` refuses it without them.
    let paired = models.recipe.reconstruction_weight > 0.0 && labels.is_some();
    let fake_labels = match labels {
        Some(labels) if paired => Some(labels.clone()),
        _ => LabelPrior::of(&models.config)
            .tempered(models.recipe.request_power)
            .draw(batch, &mut rng, device)?,
    };
    let fake = models.g.forward_t(&z, fake_labels.as_ref(), true)?;
    let mut aug_rng = stream(seed, Purpose::Augment, step);
    let (recipe, kernels) = (models.recipe, models.d.net.kernels);
    let mut seen = |x: &Tensor| -> candle_core::Result<Tensor> {
        if recipe.diff_augment {
            diff_augment(x, !recipe.augment_keeps_colour, &mut aug_rng, kernels)
        } else {
            Ok(x.clone())
        }
    };
    let weight = recipe.classifier_weight;
    let classes = models.config.discriminator.condition_classes();
    let balance = recipe
        .class_balance
        .then(|| balance_weights(&LabelPrior::of(&models.config).frequencies()));
    // D's logits, and the weighted class term when the recipe has one.
    let judge = |d: &gan_models::Discriminator,
                 images: &Tensor,
                 labels: Option<&Tensor>,
                 frozen: bool|
     -> Result<(Tensor, Option<Tensor>)> {
        Ok(match labels {
            Some(labels) if weight > 0.0 => {
                let (logits, scores) = d.forward_classified(images, labels, frozen)?;
                let term = (class_loss(&scores, labels, &classes, balance.as_deref())? * weight)?;
                (logits, Some(term))
            }
            _ if frozen => (d.forward_frozen(images, labels)?, None),
            _ => (d.forward_t(images, labels, true)?, None),
        })
    };
    let plus = |loss: Tensor, term: Option<Tensor>| -> candle_core::Result<Tensor> {
        match term {
            Some(t) => loss + t,
            None => Ok(loss),
        }
    };

    // D: real → 1 (and, with the class term, named as its conditions), detached fake → 0.
    let (d_real, real_term) = judge(&models.d, &seen(real)?, labels, false)?;
    let d_fake = models
        .d
        .forward_t(&seen(&fake.detach())?, fake_labels.as_ref(), true)?;
    let loss_d = plus(discriminator_loss(&recipe, &d_real, &d_fake)?, real_term)?;
    models.opt_d.step(&loss_d.backward()?)?;

    // G through the updated D (non-saturating BCE or hinge; the class term for what it was asked).
    let (d_on_fake, fake_term) = judge(&models.d, &seen(&fake)?, fake_labels.as_ref(), true)?;
    let pixel_term = paired
        .then(|| (&fake - real)?.abs()?.mean_all()? * recipe.reconstruction_weight)
        .transpose()?;
    let loss_g = plus(
        plus(generator_loss(&recipe, &d_on_fake)?, fake_term)?,
        pixel_term,
    )?;
    models.opt_g.step(&loss_g.backward()?)?;
    if let Some(g_ema) = &models.g_ema {
        ema::update(
            g_ema,
            &models.g,
            ema::decay_at(models.recipe.ema_decay, models.opt_g.t),
        )?;
    }

    Ok(StepStats {
        loss_d: loss_d.to_scalar()?,
        loss_g: loss_g.to_scalar()?,
        d_x: mean_probability(&d_real)?,
        d_g_z: mean_probability(&d_fake)?,
    })
}

/// Trains `config` on `data` into `run_dir`, or resumes the run there.
pub fn train(
    data: &Dataset,
    config: ModelConfig,
    opts: &TrainOptions,
    run_dir: &Path,
    device: &Device,
    stop: &AtomicBool,
) -> Result<Summary> {
    if opts.batch_size == 0 {
        return Err(TrainError::Setting(
            "the batch size must be at least 1".into(),
        ));
    }
    opts.recipe.validate()?;
    if opts.recipe.classifier_weight > 0.0 && !config.discriminator.is_projection() {
        return Err(TrainError::Setting(
            "the class term reads D's projection: it needs a conditional D that ends in one \
             (--labels, or --projection on MNIST)"
                .into(),
        ));
    }
    if opts.recipe.reconstruction_weight > 0.0 && config.generator.attribute_classes.is_empty() {
        return Err(TrainError::Setting(
            "the reconstruction term asks G for a real face's attributes: it needs --labels".into(),
        ));
    }
    if opts.recipe.request_power != 1.0 && config.generator.attribute_classes.is_empty() {
        return Err(TrainError::Setting(
            "the request power reweighs the attributes G is asked for: it needs --labels".into(),
        ));
    }
    // Each image's weight in an epoch's draws, when rare classes are drawn more often.
    let draw_weights = match (opts.recipe.oversample_rare > 0.0, data.attributes()) {
        (false, _) => None,
        (true, Some(labels)) => Some(labels.rarity_weights(opts.recipe.oversample_rare)),
        (true, None) => {
            return Err(TrainError::Setting(
                "oversampling rare classes reads the images' attributes: it needs --labels".into(),
            ))
        }
    };
    if data.image_shape().as_slice() != config.image_shape()?.as_slice() {
        return Err(TrainError::Setting(format!(
            "dataset images are {:?} but the architecture makes {:?}",
            data.image_shape(),
            config.image_shape()?
        )));
    }
    if config.is_conditional() && !data.is_labelled() && data.attributes().is_none() {
        return Err(TrainError::Setting(
            "a conditional architecture needs labelled data".into(),
        ));
    }
    let batches = (data.len() / opts.batch_size) as u64;
    if batches == 0 {
        return Err(TrainError::Setting(format!(
            "batch size {} is larger than the dataset ({} images)",
            opts.batch_size,
            data.len()
        )));
    }
    std::fs::create_dir_all(run_dir.join("samples")).map_err(|source| TrainError::Write {
        path: run_dir.to_path_buf(),
        source,
    })?;

    let load = |dir: &Path| -> Result<(Models, TrainState)> {
        let (models, state) = checkpoint::load(dir, &config, device)?;
        if state.batch_size != opts.batch_size {
            return Err(TrainError::checkpoint(
                checkpoint::path(dir),
                format!(
                    "checkpoint was trained with batch size {}, not {}",
                    state.batch_size, opts.batch_size
                ),
            ));
        }
        Ok((models, state))
    };
    let refuse_existing = || {
        if checkpoint::path(run_dir).exists() {
            return Err(TrainError::CheckpointExists {
                path: checkpoint::path(run_dir),
            });
        }
        Ok(())
    };
    let (mut models, mut state) = if opts.resume {
        load(run_dir)?
    } else if let Some(parent) = opts.init_from.as_ref().filter(|p| !p.is_file()) {
        refuse_existing()?;
        let (mut models, mut state) = load(parent)?;
        models.restart(opts.recipe, opts.adam_g, opts.adam_d)?;
        state.started_from = Some(checkpoint::StartedFrom {
            run: parent.display().to_string(),
            step: state.step,
            recipe: Some(state.recipe),
        });
        state.recipe = opts.recipe;
        (state.adam_g, state.adam_d) = (opts.adam_g, opts.adam_d);
        (models, state)
    } else {
        refuse_existing()?;
        let mut init = stream(opts.seed, Purpose::Init, 0);
        let mut models = Models::fresh(
            config,
            opts.recipe,
            opts.adam_g,
            opts.adam_d,
            &mut init,
            device,
        )?;
        let mut state = first_state(opts);
        // A generator file: G from its weights, beside the fresh D (drawn as a fresh run's).
        if let Some(file) = &opts.init_from {
            models.start_generator_from(file, device)?;
            state.started_from = Some(checkpoint::StartedFrom {
                run: file.display().to_string(),
                step: 0,
                recipe: None,
            });
        }
        (models, state)
    };
    models.set_kernels(opts.kernels);
    let mut metrics = Metrics::open(run_dir, state.step)?;
    let total =
        (opts.epochs.saturating_sub(state.epoch) * batches).saturating_sub(state.batch_in_epoch);
    let bar = progress_bar(opts.progress, total);
    // The EMA generator's BatchNorm statistics are measured afresh before it is saved or used.
    // Returns the seconds spent on each of the two, for the epoch's cost beyond its steps.
    let save = |models: &mut Models, state: &TrainState| -> Result<(f64, f64)> {
        let t = Instant::now();
        if let Some(g) = &mut models.g_ema {
            let prior = LabelPrior::of(&models.config);
            ema::recalibrate_batch_norm(g, &prior, state.seed, state.step, device)?;
        }
        let recalibrate_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        checkpoint::save(run_dir, models, state)?;
        Ok((recalibrate_s, t.elapsed().as_secs_f64()))
    };

    let started = Instant::now();
    let elapsed_before = state.elapsed_s;
    let mut interval = Interval::default();
    let mut interval_start = Instant::now();
    let mut interval_images = 0usize;
    let mut steps_here = 0u64;
    while state.epoch < opts.epochs {
        let epoch_start = Instant::now();
        let order = match &draw_weights {
            Some(weights) => weighted_order(state.seed, state.epoch, weights)?,
            None => permutation(state.seed, state.epoch, data.len()),
        };
        while state.batch_in_epoch < batches {
            if stop.load(Ordering::SeqCst) || opts.max_steps.is_some_and(|m| steps_here >= m) {
                state.elapsed_s = elapsed_before + started.elapsed().as_secs_f64();
                save(&mut models, &state)?;
                metrics.flush()?;
                bar.abandon_with_message("interrupted: checkpoint written");
                return Ok(Summary {
                    outcome: Outcome::Interrupted,
                    images_per_s: rate(steps_here, opts.batch_size, started),
                    state,
                });
            }
            let b = state.batch_in_epoch as usize * opts.batch_size;
            let (real, labels) = data.batch(&order[b..b + opts.batch_size], device)?;
            let s = train_step(&mut models, &real, labels.as_ref(), state.seed, state.step)?;
            state.step += 1;
            state.batch_in_epoch += 1;
            state.adam_g_t = models.opt_g.t;
            state.adam_d_t = models.opt_d.t;
            steps_here += 1;
            interval.add(s.loss_d, s.loss_g, s.d_x, s.d_g_z);
            interval_images += opts.batch_size;
            if state.step % opts.log_every.max(1) == 0 || state.batch_in_epoch == batches {
                let ips = interval_images as f32 / interval_start.elapsed().as_secs_f32();
                metrics.push(interval.take(state.step, state.epoch, ips));
                interval_start = Instant::now();
                interval_images = 0;
            }
            bar.inc(1);
            bar.set_message(format!(
                "{:.0} img/s epoch {}/{} loss_d {:.3} loss_g {:.3} D(x) {:.2} D(G(z)) {:.2}",
                bar.per_sec() * opts.batch_size as f64,
                state.epoch + 1,
                opts.epochs,
                s.loss_d,
                s.loss_g,
                s.d_x,
                s.d_g_z
            ));
        }
        let finished_epoch = state.epoch;
        state.epoch += 1;
        state.batch_in_epoch = 0;
        state.elapsed_s = elapsed_before + started.elapsed().as_secs_f64();
        let steps_s = epoch_start.elapsed().as_secs_f64();
        let (recalibrate_s, checkpoint_s) = save(&mut models, &state)?;
        let t = Instant::now();
        metrics.flush()?;
        metrics.plot()?;
        let metrics_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let grid = sample_path(run_dir, finished_epoch);
        let prior = LabelPrior::of(&models.config);
        write_grid(
            models.inference_generator(),
            &prior,
            state.seed,
            &grid,
            device,
        )?;
        let samples_s = t.elapsed().as_secs_f64();
        // What an epoch costs besides its steps (docs/performance.md measures it).
        tracing::info!(
            epoch = finished_epoch + 1,
            step = state.step,
            elapsed_s = state.elapsed_s as u64,
            steps_s = format!("{steps_s:.2}"),
            ema_batch_norm_s = format!("{recalibrate_s:.3}"),
            checkpoint_s = format!("{checkpoint_s:.3}"),
            metrics_plot_s = format!("{metrics_s:.3}"),
            samples_s = format!("{samples_s:.3}"),
            "epoch done, wrote {}",
            grid.display()
        );
    }
    bar.finish_with_message("done");
    Ok(Summary {
        outcome: Outcome::Finished,
        images_per_s: rate(steps_here, opts.batch_size, started),
        state,
    })
}

/// Step 0 of a run with these options.
fn first_state(opts: &TrainOptions) -> TrainState {
    TrainState {
        seed: opts.seed,
        batch_size: opts.batch_size,
        step: 0,
        epoch: 0,
        batch_in_epoch: 0,
        adam_g: opts.adam_g,
        adam_d: opts.adam_d,
        adam_g_t: 0,
        adam_d_t: 0,
        elapsed_s: 0.0,
        recipe: opts.recipe,
        started_from: None,
    }
}

pub fn sample_path(run_dir: &Path, epoch: u64) -> PathBuf {
    run_dir
        .join("samples")
        .join(format!("epoch-{:03}.png", epoch + 1))
}

fn rate(steps: u64, batch: usize, since: Instant) -> f64 {
    steps as f64 * batch as f64 / since.elapsed().as_secs_f64().max(1e-9)
}

fn progress_bar(visible: bool, total: u64) -> ProgressBar {
    if !visible {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {pos}/{len} steps {per_sec} ETA {eta} {msg}",
        )
        .expect("static template")
        .progress_chars("=> "),
    );
    bar
}
