//! Class labels as the networks take them: checked against the class count, and one-hot.

use candle_core::{DType, Device, Tensor};

use crate::error::{ModelError, Result};

/// `labels` as u32, rejecting labels outside `0..classes`.
pub(crate) fn checked_labels(labels: &Tensor, classes: usize) -> Result<Tensor> {
    let labels = labels.to_dtype(DType::U32)?;
    if let Some(&bad) = labels
        .to_vec1::<u32>()?
        .iter()
        .find(|&&l| l as usize >= classes)
    {
        return Err(ModelError::InvalidConfig(format!(
            "label {bad} is outside 0..{classes}"
        )));
    }
    Ok(labels)
}

/// f32 one-hot rows for u32 labels, rejecting labels outside `0..classes`.
pub fn one_hot(labels: &Tensor, classes: usize, device: &Device) -> Result<Tensor> {
    let labels = checked_labels(labels, classes)?.to_vec1::<u32>()?;
    let mut data = vec![0f32; labels.len() * classes];
    for (row, &label) in labels.iter().enumerate() {
        data[row * classes + label as usize] = 1.0;
    }
    Ok(Tensor::from_vec(data, (labels.len(), classes), device)?)
}
