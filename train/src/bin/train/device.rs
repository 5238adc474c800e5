//! The compute device a command asked for.

use anyhow::Context;
use candle_core::Device;

use crate::cli::DeviceKind;

pub fn open(kind: DeviceKind) -> anyhow::Result<Device> {
    match kind {
        DeviceKind::Cpu => Ok(Device::Cpu),
        DeviceKind::Cuda => Device::new_cuda(0)
            .context("cannot open CUDA device 0 (was `train` built with --features cuda?)"),
    }
}
