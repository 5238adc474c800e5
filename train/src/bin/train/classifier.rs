//! `train classifier`: the digit judge that `train eval` scores digit generators with.

use std::process::ExitCode;

use anyhow::Context;
use candle_core::Device;
use gan_train::data::mnist;
use gan_train::evaluation::judge::train_judge;

use crate::cli::ClassifierArgs;

pub fn run(args: ClassifierArgs) -> anyhow::Result<ExitCode> {
    let device = Device::Cpu;
    let mut train = mnist::load(&args.data, mnist::Split::Train)?;
    if let Some(n) = args.limit {
        train.truncate(n);
    }
    let test = mnist::load(&args.data, mnist::Split::Test)?;
    let bar = indicatif::ProgressBar::new(0);
    let judge = train_judge(&train, &test, args.epochs, args.seed, &device, &bar)?;
    bar.finish_and_clear();
    judge
        .save(&args.out)
        .with_context(|| format!("cannot write the judge to {}", args.out.display()))?;
    println!(
        "test accuracy {:.2} % on {} images; wrote {}",
        judge.test_accuracy * 100.0,
        test.len(),
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}
