//! The load: virtual users running complete flows over HTTP, closed-loop (as
//! fast as the service answers) or started at a fixed rate (latency measured
//! from each flow's scheduled start, so a slow service cannot hide its queue).
//!
//! The `scenario`s name what runs and the calls measured; a `Target` is a
//! service and its calls (`target`, with IDV results by `provider`), put
//! together into complete `flows`; `users` are enrolled before the load and
//! dealt to clients; the `drivers` run them; a `Recorder` keeps what they
//! measured; `phone` is the software authenticator of `builtin` mode.

mod drivers;
mod flows;
mod phone;
mod provider;
mod recorder;
mod scenario;
mod target;
mod users;

pub(crate) use drivers::{awaiting_runs, closed_loop, deliver_all, fixed_rate};
pub(crate) use phone::{assertion_response, registration_response};
pub(crate) use provider::Webhooks;
pub(crate) use recorder::{Recorder, merge};
pub(crate) use scenario::{
    COMPLETE_AT_PROVIDER, CREATE, OUTCOME, POSSESSION, READ, RELEASE_REFERENCE, STORE_REFERENCE,
    Scenario, Step, WEBHOOK, YARDSTICK, YARDSTICK_ONE_STATEMENT,
};
pub(crate) use target::{API_KEY, Target};
pub(crate) use users::{Client, VirtualUser, enrol, yardstick_clients};

#[cfg(test)]
mod tests;
