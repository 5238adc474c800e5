//! Class labels as the networks take them: checked against the class count, and one-hot.

use candle_core::{DType, Device, Tensor};

use crate::error::{ModelError, Result};

/// The values of `labels` as u32, rejecting labels outside `0..classes`.
pub(crate) fn label_values(labels: &Tensor, classes: usize) -> Result<Vec<u32>> {
    let values = labels.to_dtype(DType::U32)?.to_vec1::<u32>()?;
    if let Some(&bad) = values.iter().find(|&&l| l as usize >= classes) {
        return Err(ModelError::InvalidConfig(format!(
            "label {bad} is outside 0..{classes}"
        )));
    }
    Ok(values)
}

/// `labels` as a u32 tensor, rejecting labels outside `0..classes`.
pub(crate) fn checked_labels(labels: &Tensor, classes: usize) -> Result<Tensor> {
    let labels = labels.to_dtype(DType::U32)?;
    label_values(&labels, classes)?;
    Ok(labels)
}

/// f32 one-hot rows for u32 labels, rejecting labels outside `0..classes`.
pub fn one_hot(labels: &Tensor, classes: usize, device: &Device) -> Result<Tensor> {
    let labels = label_values(labels, classes)?;
    let mut data = vec![0f32; labels.len() * classes];
    for (row, &label) in labels.iter().enumerate() {
        data[row * classes + label as usize] = 1.0;
    }
    Ok(Tensor::from_vec(data, (labels.len(), classes), device)?)
}
