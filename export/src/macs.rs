//! Multiply-accumulates per image, counted from an exported ONNX graph rather than from the model
//! config: the Pi budget is a claim about what the edge runtime will run, so it is checked on the
//! file the edge runtime loads. Per-sample shapes are walked node by node from the graph's inputs
//! and initializers; only the ops the exporter writes are known, any other is refused.

use std::collections::HashMap;

use crate::error::{ExportError, Result};
use crate::onnx_proto::{AttributeProto, ModelProto, NodeProto, TensorProto};

fn invalid(message: String) -> ExportError {
    ExportError::Invalid(message)
}

fn attribute<'a>(node: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    node.attribute
        .iter()
        .find(|a| a.name.as_deref() == Some(name))
}

/// An `ints` attribute's first value (square kernels, equal strides and pads), or `default`.
fn first_int(node: &NodeProto, name: &str, default: usize) -> usize {
    attribute(node, name)
        .and_then(|a| a.ints.first())
        .map_or(default, |&v| v as usize)
}

fn raw(t: &TensorProto) -> &[u8] {
    t.raw_data.as_deref().unwrap_or_default()
}

fn int64s(t: &TensorProto) -> Vec<i64> {
    raw(t)
        .chunks_exact(8)
        .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
        .collect()
}

fn floats(t: &TensorProto) -> Vec<f32> {
    raw(t)
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
        .collect()
}

/// Σ over the graph's Gemm, MatMul, Conv, ConvTranspose and Mul nodes of their
/// multiply-accumulates for one sample.
pub fn graph_macs(model: &ModelProto) -> Result<u64> {
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| invalid("the model has no graph".into()))?;
    let constants: HashMap<&str, &TensorProto> = graph
        .initializer
        .iter()
        .filter_map(|t| Some((t.name.as_deref()?, t)))
        .collect();
    // Per-sample shapes: the batch dimension dropped.
    let mut shapes: HashMap<String, Vec<usize>> = HashMap::new();
    for input in &graph.input {
        let dims = input
            .r#type
            .as_ref()
            .and_then(|t| t.tensor_type.as_ref())
            .and_then(|t| t.shape.as_ref())
            .map(|s| &s.dim[..])
            .unwrap_or_default();
        let per_sample = dims
            .iter()
            .skip(1)
            .map(|d| d.dim_value.map(|v| v as usize))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| invalid("an input has a symbolic non-batch dimension".into()))?;
        shapes.insert(input.name.clone().unwrap_or_default(), per_sample);
    }
    let mut total = 0u64;
    for node in &graph.node {
        let op = node.op_type.as_deref().unwrap_or_default();
        let input = |i: usize| -> Result<&Vec<usize>> {
            let name = node.input.get(i).map(String::as_str).unwrap_or_default();
            shapes
                .get(name)
                .ok_or_else(|| invalid(format!("{op} reads {name:?}, which has no known shape")))
        };
        let constant = |i: usize| -> Result<&TensorProto> {
            let name = node.input.get(i).map(String::as_str).unwrap_or_default();
            constants
                .get(name)
                .copied()
                .ok_or_else(|| invalid(format!("{op} needs {name:?} as an initializer")))
        };
        let weight = |i: usize| -> Result<Vec<usize>> {
            Ok(constant(i)?.dims.iter().map(|&d| d as usize).collect())
        };
        let (shape, macs) = match op {
            "OneHot" => match int64s(constant(1)?)[..] {
                [depth] => {
                    let mut shape = input(0)?.clone();
                    shape.push(depth as usize);
                    (shape, 0)
                }
                _ => return Err(invalid("OneHot's depth is not a scalar".into())),
            },
            "Add" => (input(0)?.clone(), 0),
            "ReduceSum" if attribute(node, "keepdims").and_then(|a| a.i) == Some(0) => {
                let mut shape = input(0)?.clone();
                // Axes count the batch dimension; the shapes here do not.
                let mut axes: Vec<usize> = int64s(constant(1)?)
                    .iter()
                    .map(|&a| a as usize)
                    .filter(|&a| a >= 1 && a <= shape.len())
                    .collect();
                axes.sort_unstable();
                for a in axes.into_iter().rev() {
                    shape.remove(a - 1);
                }
                (shape, 0)
            }
            "Concat" => {
                let width = (0..node.input.len())
                    .map(|i| {
                        input(i)?.first().copied().ok_or_else(|| {
                            invalid(format!("Concat reads a scalar {:?}", node.input[i]))
                        })
                    })
                    .sum::<Result<usize>>()?;
                (vec![width], 0)
            }
            // A code `[classes]` times an initializer `[classes, C]`.
            "MatMul" => match (&input(0)?[..], &weight(1)?[..]) {
                ([k], [rows, cols]) if k == rows => (vec![*cols], (rows * cols) as u64),
                _ => {
                    return Err(invalid(
                        "MatMul does not take a vector times a matrix".into(),
                    ))
                }
            },
            // An element-wise scale (a class affine layer's): one multiply per element.
            "Mul" => {
                let x = input(0)?.clone();
                let n = x.iter().product::<usize>() as u64;
                (x, n)
            }
            "Gemm" => match weight(1)?[..] {
                [out, inp] => (vec![out], (out * inp) as u64),
                _ => return Err(invalid("Gemm's weight is not a matrix".into())),
            },
            "Reshape" => {
                let target = int64s(constant(1)?);
                let Some(per_sample) = target.get(1..) else {
                    return Err(invalid("Reshape's target shape is empty".into()));
                };
                (per_sample.iter().map(|&d| d as usize).collect(), 0)
            }
            "Flatten" => (vec![input(0)?.iter().product()], 0),
            "Conv" | "ConvTranspose" => {
                let (s, p) = (first_int(node, "strides", 1), first_int(node, "pads", 0));
                let (w, x) = (weight(1)?, input(0)?);
                let [a, b, k, _] = w[..] else {
                    return Err(invalid(format!("{op}'s weight is not 4-D")));
                };
                let [c, h, wd] = x[..] else {
                    return Err(invalid(format!("{op} reads a {x:?} input")));
                };
                if op == "Conv" {
                    let side = |v: usize| (v + 2 * p).saturating_sub(k) / s.max(1) + 1;
                    let (oh, ow) = (side(h), side(wd));
                    (vec![a, oh, ow], (a * oh * ow * c * k * k) as u64)
                } else {
                    let side = |v: usize| ((v.max(1) - 1) * s + k).saturating_sub(2 * p);
                    (vec![b, side(h), side(wd)], (h * wd * a * b * k * k) as u64)
                }
            }
            "Resize" => {
                let scales = floats(constant(2)?);
                let x = input(0)?;
                if scales.len() != x.len() + 1 {
                    return Err(invalid(format!("Resize has {} scales", scales.len())));
                }
                let scaled = x
                    .iter()
                    .zip(&scales[1..])
                    .map(|(&d, &f)| (d as f32 * f).floor() as usize)
                    .collect();
                (scaled, 0)
            }
            "Relu" | "LeakyRelu" | "Tanh" | "BatchNormalization" => (input(0)?.clone(), 0),
            other => return Err(invalid(format!("no MAC count for ONNX op {other}"))),
        };
        total += macs;
        for out in &node.output {
            shapes.insert(out.clone(), shape.clone());
        }
    }
    Ok(total)
}
