//! Builds the ONNX model of a generator by walking its (BN-folded) layer list: one match arm per
//! layer type. The interface is `gan_contract`'s (docs/onnx-contract.md): `z` [N, latent]
//! (+ `label` int64 [N], or `attributes` int64 [N, A]) → `image` [N, C, H, W], config in
//! `metadata_props`.

use gan_contract::{INPUT_ATTRIBUTES, INPUT_LABEL, INPUT_Z, IR_VERSION, OPSET, OUTPUT_IMAGE};
use gan_models::checkpoint::contract_metadata;
use gan_models::gan::G_PREFIX;
use gan_models::labels::code_offsets;
use gan_models::{Layer, LoadedGenerator};
use prost::Message;

use crate::error::{ExportError, Result};
use crate::fold::{inference_layers, HostTensor};
use crate::onnx_proto::*;

#[derive(Default)]
struct Builder {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
}

impl Builder {
    fn node(&mut self, op: &str, inputs: &[&str], output: &str, attributes: Vec<AttributeProto>) {
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.to_string()],
            name: Some(format!("{op}_{}", self.nodes.len())),
            op_type: Some(op.to_string()),
            attribute: attributes,
        });
    }

    fn floats(&mut self, name: String, shape: &[usize], data: &[f32]) -> String {
        let raw = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializer(name, shape, data_type::FLOAT, raw)
    }

    fn int64s(&mut self, name: String, shape: &[usize], data: &[i64]) -> String {
        let raw = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializer(name, shape, data_type::INT64, raw)
    }

    fn initializer(&mut self, name: String, shape: &[usize], ty: i32, raw: Vec<u8>) -> String {
        self.initializers.push(TensorProto {
            dims: shape.iter().map(|&d| d as i64).collect(),
            data_type: Some(ty),
            name: Some(name.clone()),
            raw_data: Some(raw),
        });
        name
    }

    fn host(&mut self, layer: usize, t: &HostTensor) -> String {
        self.floats(format!("l{layer}.{}", t.name), &t.shape, &t.data)
    }
}

fn ints(name: &str, values: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(attribute_type::INTS),
        ints: values.to_vec(),
        ..Default::default()
    }
}

fn int(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(attribute_type::INT),
        i: Some(value),
        ..Default::default()
    }
}

fn string(name: &str, value: &str) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(attribute_type::STRING),
        s: Some(value.as_bytes().to_vec()),
        ..Default::default()
    }
}

fn float(name: &str, value: f32) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(attribute_type::FLOAT),
        f: Some(value),
        ..Default::default()
    }
}

fn conv_attributes(kernel: usize, stride: usize, padding: usize) -> Vec<AttributeProto> {
    let (k, s, p) = (kernel as i64, stride as i64, padding as i64);
    vec![
        ints("kernel_shape", &[k, k]),
        ints("strides", &[s, s]),
        ints("pads", &[p, p, p, p]),
        ints("dilations", &[1, 1]),
    ]
}

fn value_info(name: &str, elem_type: i32, dims: &[Option<usize>]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| match d {
            Some(v) => Dimension {
                dim_value: Some(*v as i64),
                dim_param: None,
            },
            None => Dimension {
                dim_value: None,
                dim_param: Some("N".into()),
            },
        })
        .collect();
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor {
                elem_type: Some(elem_type),
                shape: Some(TensorShapeProto { dim }),
            }),
        }),
    }
}

/// The generator as an ONNX `ModelProto`.
pub fn build_model(loaded: &LoadedGenerator, model_name: &str) -> Result<ModelProto> {
    let config = &loaded.config;
    let g = &config.generator;
    let layers = inference_layers(&g.net, &loaded.generator.net.params, G_PREFIX)?;
    let mut b = Builder::default();
    let mut inputs = vec![value_info(
        INPUT_Z,
        data_type::FLOAT,
        &[None, Some(g.latent_dim)],
    )];

    // Conditioning: one_hot(label) ++ z, inside the graph.
    let mut x = INPUT_Z.to_string();
    // The conditions' one-hot codes, `[N, classes]`, for class affine layers.
    let mut code = None;
    if g.num_classes > 0 {
        inputs.push(value_info(INPUT_LABEL, data_type::INT64, &[None]));
        let depth = b.int64s("one_hot.depth".into(), &[], &[g.num_classes as i64]);
        let values = b.floats("one_hot.values".into(), &[2], &[0.0, 1.0]);
        b.node(
            "OneHot",
            &[INPUT_LABEL, &depth, &values],
            "one_hot",
            vec![int("axis", -1)],
        );
        b.node(
            "Concat",
            &["one_hot", INPUT_Z],
            "generator_input",
            vec![int("axis", 1)],
        );
        x = "generator_input".into();
        code = Some("one_hot");
    }
    // Attributes: each column's one-hot code, laid end to end (column k's classes after the
    // classes of columns 0..k), ++ z: the class indices shifted by their column's offset, one
    // OneHot over all classes, summed over the columns.
    if !g.attribute_classes.is_empty() {
        let a = g.attribute_classes.len();
        inputs.push(value_info(
            INPUT_ATTRIBUTES,
            data_type::INT64,
            &[None, Some(a)],
        ));
        let offsets: Vec<i64> = code_offsets(&g.attribute_classes)
            .into_iter()
            .map(|o| o as i64)
            .collect();
        let total: usize = g.attribute_classes.iter().sum();
        let offsets = b.int64s("attributes.offsets".into(), &[a], &offsets);
        let depth = b.int64s("attributes.depth".into(), &[], &[total as i64]);
        let values = b.floats("attributes.values".into(), &[2], &[0.0, 1.0]);
        let axes = b.int64s("attributes.axes".into(), &[1], &[1]);
        b.node(
            "Add",
            &[INPUT_ATTRIBUTES, &offsets],
            "attribute_indices",
            vec![],
        );
        b.node(
            "OneHot",
            &["attribute_indices", &depth, &values],
            "attribute_one_hot",
            vec![int("axis", -1)],
        );
        b.node(
            "ReduceSum",
            &["attribute_one_hot", &axes],
            "attribute_codes",
            vec![int("keepdims", 0)],
        );
        b.node(
            "Concat",
            &["attribute_codes", INPUT_Z],
            "generator_input",
            vec![int("axis", 1)],
        );
        x = "generator_input".into();
        code = Some("attribute_codes");
    }

    let last = layers.len() - 1;
    for (i, l) in layers.iter().enumerate() {
        let out = if i == last {
            OUTPUT_IMAGE.to_string()
        } else {
            format!("h{i}")
        };
        let params: Vec<String> = l.tensors.iter().map(|t| b.host(i, t)).collect();
        let mut ins: Vec<&str> = vec![&x];
        ins.extend(params.iter().map(String::as_str));
        match &l.layer {
            Layer::Linear { .. } => b.node("Gemm", &ins, &out, vec![int("transB", 1)]),
            Layer::Conv2d {
                kernel,
                stride,
                padding,
                ..
            } => b.node(
                "Conv",
                &ins,
                &out,
                conv_attributes(*kernel, *stride, *padding),
            ),
            Layer::ConvTranspose2d {
                kernel,
                stride,
                padding,
                ..
            } => b.node(
                "ConvTranspose",
                &ins,
                &out,
                conv_attributes(*kernel, *stride, *padding),
            ),
            // Unfolded (no weighted layer before it): inputs are x, scale, bias, mean, var.
            Layer::BatchNorm2d { .. } => b.node(
                "BatchNormalization",
                &ins,
                &out,
                vec![float("epsilon", gan_models::net::BN_EPS as f32)],
            ),
            Layer::Reshape { shape } => {
                let mut target = vec![-1i64];
                target.extend(shape.iter().map(|&d| d as i64));
                let shape_name = b.int64s(format!("l{i}.shape"), &[target.len()], &target);
                b.node("Reshape", &[&x, &shape_name], &out, vec![])
            }
            Layer::Flatten => b.node("Flatten", &[&x], &out, vec![int("axis", 1)]),
            Layer::Upsample { factor } => {
                // Output pixel (y, x) reads input (⌊y/f⌋, ⌊x/f⌋): candle's nearest upsample.
                let f = *factor as f32;
                let scales = b.floats(format!("l{i}.scales"), &[4], &[1.0, 1.0, f, f]);
                b.node(
                    "Resize",
                    &[&x, "", &scales],
                    &out,
                    vec![
                        string("mode", "nearest"),
                        string("coordinate_transformation_mode", "asymmetric"),
                        string("nearest_mode", "floor"),
                    ],
                )
            }
            // x · (1 + code·gain) + code·shift, the per-sample terms shaped [N, C, 1, 1].
            Layer::ClassAffine { channels, .. } => {
                let Some(code) = code else {
                    return Err(ExportError::Invalid(
                        "a class affine layer needs a conditional generator".into(),
                    ));
                };
                let shape = b.int64s(format!("l{i}.shape"), &[4], &[-1, *channels as i64, 1, 1]);
                let one = b.floats(format!("l{i}.one"), &[], &[1.0]);
                let (gain, shift) = (&params[0], &params[1]);
                // Intermediate names; the layer's initializers are `l{i}.gain` and `l{i}.shift`.
                let t = |what: &str| format!("l{i}.affine_{what}");
                b.node("MatMul", &[code, gain], &t("gain_nc"), vec![]);
                b.node("Add", &[&t("gain_nc"), &one], &t("scale_nc"), vec![]);
                b.node("Reshape", &[&t("scale_nc"), &shape], &t("scale"), vec![]);
                b.node("MatMul", &[code, shift], &t("shift_nc"), vec![]);
                b.node("Reshape", &[&t("shift_nc"), &shape], &t("shift"), vec![]);
                b.node("Mul", &[&x, &t("scale")], &t("scaled"), vec![]);
                b.node("Add", &[&t("scaled"), &t("shift")], &out, vec![])
            }
            Layer::Relu => b.node("Relu", &[&x], &out, vec![]),
            Layer::LeakyRelu { slope } => b.node(
                "LeakyRelu",
                &[&x],
                &out,
                vec![float("alpha", *slope as f32)],
            ),
            Layer::Tanh => b.node("Tanh", &[&x], &out, vec![]),
            Layer::MinibatchStddev | Layer::Projection { .. } => {
                return Err(ExportError::Invalid(format!(
                    "{:?} belongs in a discriminator, not a generator",
                    l.layer
                )))
            }
        }
        x = out;
    }

    let image = config.image_shape()?;
    if !matches!(layers.last().map(|l| &l.layer), Some(Layer::Tanh)) {
        return Err(ExportError::Invalid(
            "the generator must end in tanh so its output is in [-1, 1]".into(),
        ));
    }
    let metadata_props = contract_metadata(config, model_name)?
        .into_iter()
        .map(|(k, v)| StringStringEntryProto {
            key: Some(k),
            value: Some(v),
        })
        .collect();
    Ok(ModelProto {
        ir_version: Some(IR_VERSION),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(OPSET),
        }],
        producer_name: Some("gan-toolkit export".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        doc_string: Some(format!(
            "{model_name}: generator, BatchNorm folded, inference only"
        )),
        graph: Some(GraphProto {
            node: b.nodes,
            name: Some(model_name.into()),
            initializer: b.initializers,
            input: inputs,
            output: vec![value_info(
                OUTPUT_IMAGE,
                data_type::FLOAT,
                &[None, Some(image[0]), Some(image[1]), Some(image[2])],
            )],
        }),
        metadata_props,
    })
}

/// The serialised model.
pub fn onnx_bytes(loaded: &LoadedGenerator, model_name: &str) -> Result<Vec<u8>> {
    Ok(build_model(loaded, model_name)?.encode_to_vec())
}
