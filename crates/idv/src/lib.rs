//! Identity-verification providers, behind `domain::idv::IdentityProvider`.

pub mod onfido;
pub mod synthetic;

pub use onfido::{OnfidoProvider, OnfidoSettings, Workflows, check_onfido_base_url};
pub use synthetic::SyntheticProvider;
