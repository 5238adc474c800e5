//! Datasets: MNIST IDX files and image folders, loaded into one in-memory form, and the
//! augmentation applied to what D sees.

pub mod augment;
pub mod dataset;
pub mod folder;
pub mod labels;
pub mod mnist;
