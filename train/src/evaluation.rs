//! Scoring generators: the digit judge and FID in its features, SWD, and feature diversity.

pub mod diversity;
pub mod eval;
pub mod fid;
pub mod judge;
pub mod swd;
