//! Export end to end with the real ONNX Runtime library (scripts/fetch-onnxruntime installs it;
//! these tests fail, not skip, without it): parity with candle for both reference architectures,
//! metadata round-trips, and bad input.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use candle_core::{Device, Tensor};
use gan_contract::{
    keys, AttributeInfo, ModelInfo, INPUT_ATTRIBUTES, INPUT_LABEL, INPUT_Z, OUTPUT_IMAGE,
};
use gan_export::graph::{build_model, onnx_bytes};
use gan_export::macs::graph_macs;
use gan_export::onnx_proto::ModelProto;
use gan_export::verify::verify;
use gan_models::checkpoint::{write_tensor_file, CONFIG_KEY};
use gan_models::labels::LabelPrior;
use gan_models::{
    load_generator, save_generator, Architecture, DatasetInfo, Generator, Layer, ModelConfig,
};
use prost::Message;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

type Tensors = BTreeMap<String, Tensor>;
type Metadata = BTreeMap<String, String>;

fn info(classes: usize) -> DatasetInfo {
    DatasetInfo {
        name: "test-set".into(),
        class_names: (0..classes).map(|c| format!("class {c}")).collect(),
        attributes: vec![],
        attribution: "Test data © nobody, CC0".into(),
    }
}

/// A generator whose BatchNorm running statistics are no longer the trivial 0/1 (a few
/// training-mode forwards move them), saved as a generator file.
fn saved_generator(dir: &Path, config: &ModelConfig) -> std::path::PathBuf {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let g = Generator::init(config.generator.clone(), &mut rng, &Device::Cpu).unwrap();
    // Class affine layers start at zero; values of the order of their inputs' make a wrong
    // graph show.
    for (name, var) in g.net.params.trainable() {
        if name.ends_with(".gain") || name.ends_with(".shift") {
            let values = Tensor::randn(0f32, 0.5, var.shape(), &Device::Cpu).unwrap();
            var.set(&values).unwrap();
        }
    }
    for step in 0..3 {
        let z = (Tensor::randn(0f32, 1.0, (8, config.generator.latent_dim), &Device::Cpu).unwrap()
            * (1.0 + step as f64))
            .unwrap();
        let labels = LabelPrior::of(config)
            .draw(8, &mut rng, &Device::Cpu)
            .unwrap();
        g.forward_t(&z, labels.as_ref(), true).unwrap();
    }
    let path = dir.join("g.safetensors");
    save_generator(&path, &g, config, "test-model").unwrap();
    path
}

fn parity(config: ModelConfig) {
    let dir = tempfile::tempdir().unwrap();
    let loaded = load_generator(&saved_generator(dir.path(), &config), &Device::Cpu).unwrap();
    let bytes = onnx_bytes(&loaded, "test-model").unwrap();
    let results = verify(&bytes, &loaded, &[1, 3, 64], 11, None)
        .expect("verify with ONNX Runtime (installed by scripts/fetch-onnxruntime)");
    assert_eq!(results.len(), 3);
    for r in results {
        assert!(
            r.max_abs_diff <= 1e-4,
            "N={} diff {}",
            r.batch,
            r.max_abs_diff
        );
    }
}

#[test]
fn mnist_cdcgan_parity_with_onnx_runtime() {
    parity(
        Architecture::from_name("mnist-cdcgan", 1)
            .unwrap()
            .config(info(10))
            .unwrap(),
    );
}

/// Faces asked for by three attributes (hair 3, glasses 2, mouth 4 classes), at test width.
fn attribute_dcgan64() -> ModelConfig {
    let attribute = |name: &str, counts: &[usize]| {
        let classes = (0..counts.len()).map(|c| format!("{name}{c:02}")).collect();
        AttributeInfo::from_counts(name, classes, counts)
    };
    let info = DatasetInfo {
        attributes: vec![
            attribute("hair", &[5, 3, 2]),
            attribute("glasses", &[9, 1]),
            attribute("mouth", &[1, 1, 1, 1]),
        ],
        ..info(0)
    };
    let arch = Architecture::Dcgan64 {
        channels: 3,
        latent: 100,
        ngf: 16,
        ndf: 16,
        minibatch_stddev: true,
        spectral_norm: false,
        upsample: false,
        class_bn: false,
    };
    arch.config(info).unwrap()
}

#[test]
fn class_bn_dcgan64_parity_and_macs() {
    let mut config = attribute_dcgan64();
    let Architecture::Dcgan64 { class_bn, .. } = &mut config.architecture else {
        unreachable!()
    };
    *class_bn = true;
    let config = config.architecture.config(config.dataset.clone()).unwrap();
    let affines = config
        .generator
        .net
        .layers
        .iter()
        .filter(|l| matches!(l, Layer::ClassAffine { .. }))
        .count();
    assert_eq!(affines, 4, "one after each of G's BatchNorms");
    parity(config.clone());
    let dir = tempfile::tempdir().unwrap();
    let loaded = load_generator(&saved_generator(dir.path(), &config), &Device::Cpu).unwrap();
    let model = build_model(&loaded, "faces-attr").unwrap();
    let plain = attribute_dcgan64().generator.net.macs().unwrap();
    let macs = graph_macs(&model).unwrap();
    assert_eq!(macs, config.generator.net.macs().unwrap());
    // ngf 16 (128, 64, 32, 16 channels), 3 + 2 + 4 classes: the code products and the scaling.
    let extra = 2 * (3 + 2 + 4) * (128 + 64 + 32 + 16) + 128 * 16 + 64 * 64 + 32 * 256 + 16 * 1024;
    assert_eq!(macs - plain, extra as u64);
}

#[test]
fn attribute_dcgan64_parity_and_contract() {
    parity(attribute_dcgan64());
    let dir = tempfile::tempdir().unwrap();
    let config = attribute_dcgan64();
    let loaded = load_generator(&saved_generator(dir.path(), &config), &Device::Cpu).unwrap();
    let model = build_model(&loaded, "faces-attr").unwrap();
    let graph = model.graph.as_ref().unwrap();
    let input = &graph.input[1];
    assert_eq!(input.name.as_deref(), Some(INPUT_ATTRIBUTES));
    let dims: Vec<Option<i64>> = input
        .r#type
        .as_ref()
        .unwrap()
        .tensor_type
        .as_ref()
        .unwrap()
        .shape
        .as_ref()
        .unwrap()
        .dim
        .iter()
        .map(|d| d.dim_value)
        .collect();
    assert_eq!(dims, [None, Some(3)], "[N, A] with a static A");
    let meta: BTreeMap<String, String> = model
        .metadata_props
        .iter()
        .map(|p| (p.key.clone().unwrap(), p.value.clone().unwrap()))
        .collect();
    let info = ModelInfo::from_metadata(|k| meta.get(k).cloned()).unwrap();
    assert_eq!(info.attributes, config.dataset.attributes);
    assert_eq!(info.attributes[1].frequencies, [0.9, 0.1]);
    assert_eq!(info.num_classes(), 0);
    // The generator file says the same.
    let st = ModelInfo::from_metadata(|k| loaded.metadata.get(k).cloned()).unwrap();
    assert_eq!(st.attributes, info.attributes);
    assert_eq!(
        graph_macs(&model).unwrap(),
        config.generator.net.macs().unwrap()
    );
}

#[test]
fn dcgan64_parity_with_onnx_runtime() {
    parity(
        Architecture::from_name("dcgan64", 3)
            .unwrap()
            .config(info(0))
            .unwrap(),
    );
}

/// The 64×64 G that upsamples by nearest neighbour + 3×3 convolution (exported as the
/// transposed convolutions the pairs equal).
fn upsampling_dcgan64() -> ModelConfig {
    let arch = Architecture::Dcgan64 {
        channels: 3,
        latent: 100,
        ngf: 22,
        ndf: 32,
        minibatch_stddev: true,
        spectral_norm: false,
        upsample: true,
        class_bn: false,
    };
    arch.config(info(0)).unwrap()
}

/// The same with a 5×5 last convolution: that pair does not fold, so its upsample exports as
/// an ONNX Resize.
fn resizing_dcgan64() -> ModelConfig {
    let mut config = upsampling_dcgan64();
    let layers = &mut config.generator.net.layers;
    let last_conv = layers
        .iter()
        .rposition(|l| matches!(l, Layer::Conv2d { .. }))
        .unwrap();
    let Layer::Conv2d {
        kernel, padding, ..
    } = &mut layers[last_conv]
    else {
        unreachable!()
    };
    (*kernel, *padding) = (5, 2);
    config
}

#[test]
fn upsampling_dcgan64_parity_with_onnx_runtime() {
    parity(upsampling_dcgan64());
    parity(resizing_dcgan64());
}

/// MACs counted on the exported graph agree with the config's count for every architecture,
/// and the upsampling faces G fits the Pi budget of 30 M per image.
#[test]
fn graph_macs_match_the_config_and_the_pi_budget() {
    let dir = tempfile::tempdir().unwrap();
    let configs = [
        Architecture::from_name("mnist-cdcgan", 1)
            .unwrap()
            .config(info(10))
            .unwrap(),
        Architecture::from_name("dcgan64", 3)
            .unwrap()
            .config(info(0))
            .unwrap(),
        upsampling_dcgan64(),
        resizing_dcgan64(),
    ];
    let mut counted = vec![];
    let mut resizes = vec![];
    for config in &configs {
        let loaded = load_generator(&saved_generator(dir.path(), config), &Device::Cpu).unwrap();
        let model = build_model(&loaded, "test-model").unwrap();
        let macs = graph_macs(&model).unwrap();
        assert_eq!(macs, config.generator.net.macs().unwrap());
        counted.push(macs);
        let nodes = &model.graph.as_ref().unwrap().node;
        resizes.push(
            nodes
                .iter()
                .filter(|n| n.op_type.as_deref() == Some("Resize"))
                .count(),
        );
    }
    assert!(counted[2] <= 30_000_000, "{} MACs", counted[2]);
    // The three 3×3 pairs inside the resizing G fold; only its last, 5×5 one resizes.
    assert_eq!(resizes, [0, 0, 0, 1]);
    // A graph with an op the counter does not know is refused, not under-counted.
    let loaded = load_generator(&saved_generator(dir.path(), &configs[0]), &Device::Cpu).unwrap();
    let mut model = build_model(&loaded, "test-model").unwrap();
    let graph = model.graph.as_mut().unwrap();
    graph.node[2].op_type = Some("MatMul".into());
    let e = graph_macs(&model).unwrap_err().to_string();
    assert!(e.contains("MatMul"), "{e}");
}

#[test]
fn graph_is_an_inference_graph_with_the_contract_and_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let config = Architecture::from_name("mnist-cdcgan", 1)
        .unwrap()
        .config(info(10))
        .unwrap();
    let loaded = load_generator(&saved_generator(dir.path(), &config), &Device::Cpu).unwrap();
    let model = ModelProto::decode(onnx_bytes(&loaded, "test-model").unwrap().as_slice()).unwrap();
    assert_eq!(model.ir_version, Some(8));
    assert_eq!(model.opset_import[0].version, Some(17));
    let graph = model.graph.as_ref().unwrap();
    let ops: Vec<&str> = graph
        .node
        .iter()
        .map(|n| n.op_type.as_deref().unwrap())
        .collect();
    assert!(
        !ops.contains(&"BatchNormalization"),
        "BN must be folded: {ops:?}"
    );
    assert_eq!(ops[..2], ["OneHot", "Concat"]);
    let names = |v: &Vec<gan_export::onnx_proto::ValueInfoProto>| {
        v.iter()
            .map(|i| i.name.clone().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&graph.input), [INPUT_Z, INPUT_LABEL]);
    assert_eq!(names(&graph.output), [OUTPUT_IMAGE]);
    let meta: BTreeMap<String, String> = model
        .metadata_props
        .iter()
        .map(|p| (p.key.clone().unwrap(), p.value.clone().unwrap()))
        .collect();
    let info = ModelInfo::from_metadata(|k| meta.get(k).cloned()).unwrap();
    assert_eq!((info.latent_dim, info.num_classes()), (100, 10));
    assert_eq!((info.channels, info.height, info.width), (1, 28, 28));
    assert_eq!(info.attribution, "Test data © nobody, CC0");
    assert_eq!(info.name, "test-model");
    assert_eq!(info.class_names[3], "class 3");
    assert_eq!(ModelConfig::from_json(&meta[CONFIG_KEY]).unwrap(), config);
    // The safetensors side carries the same config.
    assert_eq!(loaded.metadata[CONFIG_KEY], meta[CONFIG_KEY]);
    assert_eq!(loaded.config, config);
}

fn export(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_export"))
        .args(args)
        .output()
        .unwrap()
}

fn fails_with(out: &std::process::Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected failure: {stderr}");
    assert_ne!(out.status.code(), Some(101), "panicked: {stderr}");
    for n in needles {
        assert!(stderr.contains(n), "stderr lacks `{n}`: {stderr}");
    }
}

#[test]
fn cli_writes_both_files_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let config = Architecture::from_name("mnist-cdcgan", 1)
        .unwrap()
        .config(info(10))
        .unwrap();
    let src = saved_generator(dir.path(), &config);
    let onnx = dir.path().join("out.onnx");
    let st = dir.path().join("out.safetensors");
    let o = export(&[
        "--checkpoint",
        src.to_str().unwrap(),
        "--onnx",
        onnx.to_str().unwrap(),
        "--safetensors",
        st.to_str().unwrap(),
        "--verify",
        "--name",
        "digits",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("verify N=64") && stdout.contains("verify passed"),
        "{stdout}"
    );
    let macs = format!(
        "generator: {} multiply-accumulates per image",
        config.generator.net.macs().unwrap()
    );
    assert!(stdout.contains(&macs), "{stdout}");
    assert!(onnx.is_file());
    assert_eq!(
        load_generator(&st, &Device::Cpu).unwrap().metadata[keys::MODEL_NAME],
        "digits"
    );
    // No output flag: both files beside the input.
    let o = export(&["--checkpoint", src.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        dir.path().join("mnist-cdcgan.onnx").is_file()
            && dir.path().join("mnist-cdcgan.safetensors").is_file()
    );
}

#[test]
fn bad_input_is_reported_and_nothing_half_written() {
    let dir = tempfile::tempdir().unwrap();
    let config = Architecture::from_name("mnist-cdcgan", 1)
        .unwrap()
        .config(info(10))
        .unwrap();
    let good = saved_generator(dir.path(), &config);
    let out = dir.path().join("x.onnx");
    let out_s = out.to_str().unwrap();

    fails_with(
        &export(&["--checkpoint", "/no/such/run", "--onnx", out_s]),
        &["/no/such/run", "no such file"],
    );

    let garbage = dir.path().join("garbage.safetensors");
    std::fs::write(&garbage, b"not a safetensors file at all").unwrap();
    fails_with(
        &export(&["--checkpoint", garbage.to_str().unwrap(), "--onnx", out_s]),
        &["garbage.safetensors", "not a safetensors file"],
    );

    let file = gan_models::TensorFile::read(&good, &Device::Cpu).unwrap();
    let rewrite = |name: &str, edit: &dyn Fn(&mut Tensors, &mut Metadata)| {
        let mut tensors: BTreeMap<String, Tensor> = file.tensors.clone().into_iter().collect();
        let mut meta: BTreeMap<String, String> = file.metadata.clone().into_iter().collect();
        edit(&mut tensors, &mut meta);
        let path = dir.path().join(name);
        write_tensor_file(&path, tensors.iter().map(|(k, v)| (k.clone(), v)), meta).unwrap();
        path
    };
    let unknown = rewrite("unknown.safetensors", &|_, m| {
        let c = m[CONFIG_KEY].replace("\"mnist-cdcgan\"", "\"resnet-9000\"");
        m.insert(CONFIG_KEY.into(), c);
    });
    fails_with(
        &export(&["--checkpoint", unknown.to_str().unwrap(), "--onnx", out_s]),
        &["unknown.safetensors", "resnet-9000"],
    );
    let missing = rewrite("missing.safetensors", &|t, _| {
        t.remove("g.4.weight");
    });
    fails_with(
        &export(&["--checkpoint", missing.to_str().unwrap(), "--onnx", out_s]),
        &["missing.safetensors", "g.4.weight"],
    );
    let misshaped = rewrite("misshaped.safetensors", &|t, _| {
        t.insert(
            "g.0.weight".into(),
            Tensor::zeros((3, 3), candle_core::DType::F32, &Device::Cpu).unwrap(),
        );
    });
    fails_with(
        &export(&["--checkpoint", misshaped.to_str().unwrap(), "--onnx", out_s]),
        &["misshaped.safetensors", "g.0.weight", "shape"],
    );
    let nan = rewrite("nan.safetensors", &|t, _| {
        let w = t["g.7.bias"].clone();
        t.insert("g.7.bias".into(), (w * f64::NAN).unwrap());
    });
    fails_with(
        &export(&["--checkpoint", nan.to_str().unwrap(), "--onnx", out_s]),
        &["nan.safetensors", "g.7.bias", "NaN"],
    );
    assert!(!out.exists(), "no output may be written on failure");

    let nowhere = dir.path().join("no/such/dir/g.onnx");
    fails_with(
        &export(&[
            "--checkpoint",
            good.to_str().unwrap(),
            "--onnx",
            nowhere.to_str().unwrap(),
        ]),
        &["no/such/dir/g.onnx", "cannot write"],
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
}
