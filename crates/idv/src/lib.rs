//! Identity-verification providers, behind `domain::idv::IdentityProvider`.

pub mod synthetic;

pub use synthetic::SyntheticProvider;
