//! `train classifier`: the judge that `train eval` scores generators with, trained on MNIST's
//! digits or on an image folder's labels CSV.

use std::process::ExitCode;

use anyhow::Context;
use candle_core::Device;
use gan_train::data::dataset::Dataset;
use gan_train::data::{folder, mnist};
use gan_train::evaluation::judge::train_judge;

use crate::cli::ClassifierArgs;

pub fn run(args: ClassifierArgs) -> anyhow::Result<ExitCode> {
    let device = Device::Cpu;
    let (mut train, test) = load(&args)?;
    if let Some(n) = args.limit {
        train.truncate(n);
    }
    let bar = indicatif::ProgressBar::new(0);
    let judge = train_judge(&train, &test, args.epochs, args.seed, &device, &bar)?;
    bar.finish_and_clear();
    judge
        .save(&args.out)
        .with_context(|| format!("cannot write the judge to {}", args.out.display()))?;
    println!("held-out accuracy on {} images:", test.len());
    for (head, accuracy) in judge.heads.iter().zip(&judge.accuracy) {
        println!(
            "  {:<12} {:>7.2} %  ({} classes)",
            head.name,
            accuracy * 100.0,
            head.classes.len()
        );
    }
    println!("wrote {}", args.out.display());
    Ok(ExitCode::SUCCESS)
}

/// The training images and the held-out ones, labelled alike.
fn load(args: &ClassifierArgs) -> anyhow::Result<(Dataset, Dataset)> {
    let (Some(labels), Some(held_out)) = (&args.labels, &args.held_out) else {
        return Ok((
            mnist::load(&args.data, mnist::Split::Train)?,
            mnist::load(&args.data, mnist::Split::Test)?,
        ));
    };
    let (size, channels) = (args.image_size, args.channels);
    let train = folder::load_labelled(&args.data, labels, None, size, channels, "")?;
    let held_out_labels = args
        .held_out_labels
        .clone()
        .unwrap_or_else(|| held_out.join("labels.csv"));
    let known = &train.attributes().expect("loaded with labels").attributes;
    let test = folder::load_labelled(held_out, &held_out_labels, Some(known), size, channels, "")?;
    Ok((train, test))
}
