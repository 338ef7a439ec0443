//! Identity-verification providers, behind `domain::idv::IdentityProvider`,
//! and the reading of their webhook deliveries, behind
//! `domain::idv::WebhookVerifier`.

pub mod onfido;
pub mod synthetic;

pub use onfido::webhook::OnfidoWebhook;
pub use onfido::{OnfidoProvider, OnfidoSettings, Workflows, check_onfido_base_url};
pub use synthetic::SyntheticProvider;
