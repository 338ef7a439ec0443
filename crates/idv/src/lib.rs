//! Identity-verification providers, behind `domain::idv::IdentityProvider`.

pub mod onfido;
pub mod synthetic;

pub use onfido::{OnfidoProvider, OnfidoSettings, Workflows};
pub use synthetic::SyntheticProvider;
