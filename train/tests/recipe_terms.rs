//! The recipe's label-driven terms on the committed labelled faces. The class term
//! (`--classifier-weight`): D's projection embedding learns to name the real faces' attributes,
//! which the projection alone does not teach it, and G's step carries the term for the
//! attributes it was asked for. The reconstruction term (`--reconstruction-weight`): G learns to
//! draw the very face whose attributes it was asked for.

use std::path::Path;

use candle_core::{Device, Tensor};
use gan_models::kernels::Kernels;
use gan_models::labels::LabelPrior;
use gan_train::architecture::ArchitectureOptions;
use gan_train::data::dataset::Dataset;
use gan_train::data::folder;
use gan_train::training::checkpoint::Models;
use gan_train::training::losses::class_loss;
use gan_train::training::optim::AdamConfig;
use gan_train::training::recipe::{LossKind, Recipe};
use gan_train::training::rng::{stream, Purpose};
use gan_train::training::trainer::train_step;

fn faces() -> Dataset {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/faces/train");
    let mut data =
        folder::load_labelled(&dir, &dir.join("labels.csv"), None, 64, 3, "fixture").unwrap();
    data.truncate(32);
    data
}

fn models(data: &Dataset, recipe: Recipe) -> Models {
    let arch = ArchitectureOptions {
        ngf: 8,
        ndf: 8,
        ..ArchitectureOptions::default()
    };
    let config = arch
        .build(3, false)
        .unwrap()
        .config(data.info.clone())
        .unwrap();
    let adam = AdamConfig::default();
    let init = &mut stream(1, Purpose::Init, 0);
    let mut models = Models::fresh(config, recipe, adam, adam, init, &Device::Cpu).unwrap();
    models.set_kernels(Kernels::Fast);
    models
}

fn hinge(classifier_weight: f64, reconstruction_weight: f64) -> Recipe {
    Recipe {
        loss: LossKind::Hinge,
        classifier_weight,
        reconstruction_weight,
        ..Recipe::default()
    }
}

/// `steps` steps of the recipe on the faces in two alternating batches of 16; the last G loss.
fn train(models: &mut Models, data: &Dataset, steps: u64) -> f32 {
    let all: Vec<usize> = (0..data.len()).collect();
    let mut loss_g = 0.0;
    for step in 0..steps {
        let half = (step as usize % 2) * 16;
        let (real, labels) = data.batch(&all[half..half + 16], &Device::Cpu).unwrap();
        loss_g = train_step(models, &real, labels.as_ref(), 1, step)
            .unwrap()
            .loss_g;
    }
    loss_g
}

/// D's class loss on every face after `steps` steps of the recipe, and the last step's G loss.
fn after_training(data: &Dataset, weight: f64, steps: u64) -> (f32, f32) {
    let mut models = models(data, hinge(weight, 0.0));
    let loss_g = train(&mut models, data, steps);
    let all: Vec<usize> = (0..data.len()).collect();
    let (real, labels) = data.batch(&all, &Device::Cpu).unwrap();
    let labels = labels.unwrap();
    let (_, scores) = models.d.forward_classified(&real, &labels, true).unwrap();
    let classes = models.config.discriminator.condition_classes();
    let ce = class_loss(&scores, &labels, &classes, None).unwrap();
    (ce.to_scalar::<f32>().unwrap(), loss_g)
}

#[test]
fn the_class_term_teaches_d_to_name_the_attributes() {
    let data = faces();
    let steps = 60;
    let (without, _) = after_training(&data, 0.0, steps);
    let (with, _) = after_training(&data, 1.0, steps);
    assert!(with.is_finite() && without.is_finite());
    assert!(
        with < 0.7 * without,
        "class loss on the real faces: {with} with the term, {without} without"
    );
}

#[test]
fn g_is_asked_for_its_attributes_by_the_term() {
    // One step from the same start: G's loss with the term is its adversarial loss plus the
    // weighted class loss of what D reads in its images, so it is larger by about the weight
    // times the class loss of untrained scores (about the mean log class count).
    let data = faces();
    let (_, plain) = after_training(&data, 0.0, 1);
    let (_, weighted) = after_training(&data, 1.0, 1);
    let fresh = models(&data, hinge(1.0, 0.0));
    let prior = LabelPrior::of(&fresh.config);
    let mut rng = stream(2, Purpose::Noise, 0);
    let asked = prior.draw(4, &mut rng, &Device::Cpu).unwrap().unwrap();
    let z = Tensor::randn(0f32, 1.0, (4, 100), &Device::Cpu).unwrap();
    let images = fresh.g.forward_t(&z, Some(&asked), true).unwrap();
    let (_, scores) = fresh.d.forward_classified(&images, &asked, true).unwrap();
    let classes = fresh.config.discriminator.condition_classes();
    let untrained = class_loss(&scores, &asked, &classes, None)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    let extra = weighted - plain;
    assert!(
        extra > 0.5 * untrained && extra < 2.0 * untrained,
        "G's loss rose by {extra}; untrained class loss {untrained}"
    );
}

/// Mean |G(z, a face's attributes) − that face| over the faces, G with batch statistics (a few
/// steps leave its running ones unsettled).
fn reconstruction_error(models: &Models, data: &Dataset) -> f32 {
    let all: Vec<usize> = (0..data.len()).collect();
    let (real, labels) = data.batch(&all, &Device::Cpu).unwrap();
    let z = Tensor::randn(0f32, 1.0, (data.len(), 100), &Device::Cpu).unwrap();
    let drawn = models.g.forward_t(&z, labels.as_ref(), true).unwrap();
    (drawn - real)
        .unwrap()
        .abs()
        .unwrap()
        .mean_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

#[test]
fn the_reconstruction_term_teaches_g_to_draw_the_face_it_was_asked_for() {
    let data = faces();
    // pix2pix's weight, and a G step ten times the default so that a few steps show it.
    let trained = |weight: f64| {
        let mut models = models(&data, hinge(0.0, weight));
        models.opt_g.config.lr = 2e-3;
        train(&mut models, &data, 60);
        models
    };
    let (plain, paired) = (trained(0.0), trained(100.0));
    let (without, with) = (
        reconstruction_error(&plain, &data),
        reconstruction_error(&paired, &data),
    );
    assert!(with.is_finite() && without.is_finite());
    assert!(
        with < 0.5 * without,
        "mean |G(z, attributes) − face|: {with} with the term, {without} without"
    );
}
