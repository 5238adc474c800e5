//! Where the end-to-end tests find the project's committed fixtures.

use std::path::{Path, PathBuf};

/// The 320 + 200 MNIST digits of `train/tests/fixtures/mnist`.
pub fn mnist_fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../train/tests/fixtures/mnist")
}

/// 16 real 64×64 faces (see `fixtures/faces/README.md`).
pub fn faces_fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/faces")
}

/// The attribution the face fixtures carry.
pub const FACES_ATTRIBUTION: &str =
    "Design: \"Adventurer\" by Lisa Wischofsky (DiceBear), CC BY 4.0";
