//! Scoring generators: the judge (digits, face parts) and FID in its features, SWD, and diversity.

pub mod diversity;
pub mod eval;
pub mod fid;
pub mod judge;
pub mod parts;
pub mod requested;
pub mod swd;
