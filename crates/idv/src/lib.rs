//! Identity-verification providers, behind `domain::idv::IdentityProvider`,
//! and the reading of their webhook deliveries, behind
//! `domain::idv::WebhookVerifier`.

pub mod onfido;
pub mod onfido_webhook;
pub mod synthetic;

pub use onfido::{OnfidoProvider, OnfidoSettings, Workflows, check_onfido_base_url};
pub use onfido_webhook::OnfidoWebhook;
pub use synthetic::SyntheticProvider;
