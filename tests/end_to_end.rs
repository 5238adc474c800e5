//! dataset → train → checkpoint → export → ONNX → edge runtime → PNG, for both architectures:
//! a few real training steps on the committed fixtures, the export verified in ONNX Runtime,
//! then the edge runtime's own library loading that ONNX and drawing a grid whose pixels must
//! be candle's images of the same latents. A contract change that export and the edge runtime
//! do not both follow fails here.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use candle_core::{Device, Tensor};
use gan_edge_runtime::ask::Ask;
use gan_edge_runtime::latent;
use gan_edge_runtime::model::Generator as EdgeGenerator;
use gan_edge_runtime::render::grid_png;
use gan_models::kernels::Kernels;
use gan_models::LoadedGenerator;
use gan_tests::{faces_fixture, mnist_fixture, FACES_ATTRIBUTION};
use gan_train::architecture::ArchitectureOptions;
use gan_train::data::dataset::Dataset;
use gan_train::data::{folder, mnist};
use gan_train::preset::Preset;
use gan_train::training::optim::AdamConfig;
use gan_train::training::recipe::Recipe;
use gan_train::training::trainer::{train, Outcome, TrainOptions};

/// Trains `steps` steps of the shipped recipe for `data` into `run`.
fn train_steps(data: &Dataset, digits: bool, run: &Path, steps: u64) {
    let (mut arch, mut recipe) = (ArchitectureOptions::default(), Recipe::default());
    Preset::Shipped.apply(&mut arch, &mut recipe, digits);
    let config = arch
        .build(data.channels, digits)
        .unwrap()
        .config(data.info.clone())
        .unwrap();
    let opts = TrainOptions {
        // More epochs than the steps need: `max_steps` ends the run.
        epochs: 100,
        batch_size: 8,
        adam_g: AdamConfig::default(),
        adam_d: AdamConfig::default(),
        recipe,
        seed: 5,
        resume: false,
        log_every: 1,
        progress: false,
        max_steps: Some(steps),
        kernels: Kernels::Fast,
        init_from: None,
    };
    let summary = train(
        data,
        config,
        &opts,
        run,
        &Device::Cpu,
        &AtomicBool::new(false),
    )
    .unwrap();
    assert_eq!(
        summary.outcome,
        Outcome::Interrupted,
        "stopped by max_steps"
    );
    assert_eq!(summary.state.step, steps);
}

/// Exports the run's generator to `onnx`, verified against candle, and returns it.
fn export(run: &Path, onnx: &Path, name: &str) -> LoadedGenerator {
    let loaded = gan_export::load(run).unwrap();
    let bytes = gan_export::graph::onnx_bytes(&loaded, name).unwrap();
    let parity = gan_export::verify::verify(&bytes, &loaded, &[1, 3], 7, None).unwrap();
    assert!(parity
        .iter()
        .all(|p| p.max_abs_diff <= gan_export::verify::TOLERANCE));
    gan_export::write(onnx, &bytes).unwrap();
    loaded
}

/// The edge runtime's grid of `count` images for `seed`, decoded, beside candle's images of the
/// same latents and labels: every pixel within one step of 8-bit rounding.
fn edge_grid_is_candles_images(
    onnx: &Path,
    loaded: &LoadedGenerator,
    count: usize,
    ask: &Ask,
) -> image::RgbImage {
    let mut g = EdgeGenerator::load(onnx, None, Some(1)).unwrap();
    let info = g.info.clone();
    let config = &loaded.config;
    assert_eq!(info.latent_dim, config.generator.latent_dim);
    assert_eq!(info.num_classes(), config.generator.num_classes);
    assert_eq!(info.class_names, config.dataset.class_names);
    assert_eq!(
        vec![info.channels, info.height, info.width],
        config.image_shape().unwrap()
    );
    assert_eq!(info.attribution, config.dataset.attribution);
    assert_eq!(info.attributes, config.dataset.attributes);

    let seed = 11;
    let png = grid_png(&mut g, count, ask, seed, 1, None).unwrap();
    let grid = image::load_from_memory_with_format(&png, image::ImageFormat::Png)
        .unwrap()
        .to_rgb8();

    let z = latent::sample(seed, count, info.latent_dim);
    let zt = Tensor::from_vec(z, (count, info.latent_dim), &Device::Cpu).unwrap();
    // The conditions candle is given are computed here, not taken from the edge runtime.
    let labels: Vec<u32> = match (info.num_classes(), ask.label) {
        (0, _) => vec![],
        (_, Some(l)) => vec![l as u32; count],
        (k, None) => (0..count).map(|i| (i % k) as u32).collect(),
    };
    let lt = if !info.attributes.is_empty() {
        let rows: Vec<u32> = ask
            .conditions(&info, count, seed)
            .iter()
            .map(|&c| c as u32)
            .collect();
        for row in rows.chunks(info.attributes.len()) {
            for (c, fixed) in row.iter().zip(&ask.attributes.fixed) {
                assert!(
                    fixed.is_none_or(|f| f as u32 == *c),
                    "a fixed attribute was drawn"
                );
            }
        }
        Some(Tensor::from_vec(rows, (count, info.attributes.len()), &Device::Cpu).unwrap())
    } else {
        (!labels.is_empty()).then(|| Tensor::from_vec(labels, count, &Device::Cpu).unwrap())
    };
    let images = loaded.generator.forward_t(&zt, lt.as_ref(), false).unwrap();
    let images = images.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let batch =
        gan_grid::Batch::new(&images, count, info.channels, info.height, info.width).unwrap();
    let columns = match (info.num_classes(), ask.label) {
        (k, None) if k > 0 && count >= k => k,
        _ => (count as f64).sqrt().ceil() as usize,
    };
    let expected = batch.grid(columns, 1);
    assert_eq!(grid.dimensions(), expected.dimensions());
    let worst = grid
        .as_raw()
        .iter()
        .zip(expected.as_raw())
        .map(|(a, b)| a.abs_diff(*b))
        .max()
        .unwrap();
    assert!(
        worst <= 1,
        "edge PNG differs from candle's images by {worst} levels"
    );
    grid
}

#[test]
fn digits_train_export_and_draw_on_the_edge() {
    let data = mnist::load(&mnist_fixture(), mnist::Split::Train).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    train_steps(&data, true, &run, 3);
    let onnx = dir.path().join("digits.onnx");
    let loaded = export(&run, &onnx, "e2e-digits");
    // A grid of every digit, then one of only sevens.
    let all = edge_grid_is_candles_images(&onnx, &loaded, 10, &Ask::default());
    assert_eq!(all.dimensions(), (10 * 29 + 1, 29 + 1));
    let seven = Ask {
        label: Some(7),
        ..Ask::default()
    };
    let sevens = edge_grid_is_candles_images(&onnx, &loaded, 4, &seven);
    assert_eq!(sevens.dimensions(), (2 * 29 + 1, 2 * 29 + 1));
}

#[test]
fn faces_train_export_and_draw_on_the_edge() {
    let data = folder::load(&faces_fixture(), 64, 3, FACES_ATTRIBUTION).unwrap();
    assert_eq!(data.len(), 16);
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    train_steps(&data, false, &run, 2);
    let onnx = dir.path().join("faces.onnx");
    let loaded = export(&run, &onnx, "e2e-faces");
    let grid = edge_grid_is_candles_images(&onnx, &loaded, 4, &Ask::default());
    assert_eq!(grid.dimensions(), (2 * 65 + 1, 2 * 65 + 1));
    let cell = |i: u32| {
        image::imageops::crop_imm(&grid, 1 + 65 * (i % 2), 1 + 65 * (i / 2), 64, 64).to_image()
    };
    assert_ne!(cell(0), cell(1), "different latents draw different faces");
}

/// Faces with the fixtures' labels CSV: an attribute-conditional model, trained, exported with
/// its attributes in the metadata, and asked for some attributes on the edge, the rest drawn.
#[test]
fn attribute_faces_train_export_and_draw_what_is_asked() {
    let faces = faces_fixture();
    let data = folder::load_labelled(
        &faces,
        &faces.join("labels.csv"),
        None,
        64,
        3,
        FACES_ATTRIBUTION,
    )
    .unwrap();
    let attributes = &data.info.attributes;
    assert_eq!(attributes.len(), 9);
    assert_eq!(attributes[6].name, "glasses");
    assert_eq!(attributes[6].frequencies, [15.0 / 16.0, 1.0 / 16.0]);
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    train_steps(&data, false, &run, 2);
    let onnx = dir.path().join("faces-attr.onnx");
    let loaded = export(&run, &onnx, "e2e-faces-attr");
    assert_eq!(loaded.config.generator.attribute_classes[6], 2);
    let g = EdgeGenerator::load(&onnx, None, Some(1)).unwrap();
    let ask = Ask::parse(
        &g.info,
        None,
        [("glasses", "variant02"), ("hair", "long09")],
    )
    .unwrap();
    let grid = edge_grid_is_candles_images(&onnx, &loaded, 4, &ask);
    assert_eq!(grid.dimensions(), (2 * 65 + 1, 2 * 65 + 1));
    // Nothing fixed: the edge still runs it, every attribute drawn.
    edge_grid_is_candles_images(&onnx, &loaded, 3, &Ask::default());
}

/// The contract's names reach the edge runtime unchanged: what export writes is what the edge
/// runtime's loader demands, read back from the ONNX file itself; the generator safetensors
/// file carries the same description.
#[test]
fn the_exported_graph_speaks_the_contract() {
    let data = mnist::load(&mnist_fixture(), mnist::Split::Train).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    train_steps(&data, true, &run, 1);
    let onnx = dir.path().join("g.onnx");
    let loaded = export(&run, &onnx, "e2e-contract");
    let g = gan_contract::OnnxGenerator::load(&onnx, None, Some(1)).unwrap();
    assert_eq!(g.signature.conditioning, gan_contract::Conditioning::Label);
    assert_eq!(g.signature.image, Some([1, 28, 28]));
    let info = g.info().unwrap();
    assert_eq!(info.name, "e2e-contract");
    assert_eq!(info.architecture, "mnist-cdcgan");
    assert_eq!(info.format_version, Some(loaded.config.format_version));

    let st = dir.path().join("g.safetensors");
    gan_models::save_generator(&st, &loaded.generator, &loaded.config, "e2e-contract").unwrap();
    let file = gan_models::TensorFile::read(&st, &Device::Cpu).unwrap();
    let from_st = gan_contract::ModelInfo::from_metadata(|k| file.metadata.get(k).cloned());
    assert_eq!(from_st.unwrap(), info);
    assert_eq!(
        file.metadata[gan_contract::keys::KIND],
        gan_contract::KIND_GENERATOR
    );
}
