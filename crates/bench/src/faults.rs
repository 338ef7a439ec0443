//! The fault suite's load and its check (`scripts/faults`): complete flows of
//! every type at a steady rate through the load balancer, every call written
//! to a journal; then, after a fault, one line of figures read from that
//! journal and from the database: calls, errors by code, the slowest failure,
//! seconds to recover after the fault ended, and lost writes (a call answered
//! 2xx whose effect the database does not hold).
//!
//! A scenario's processes and faults are the script's; here are the load
//! (`load`, its `journal`), the provider double it runs against (`double`),
//! and the check: the scenario's line and what it must meet (`check`), from
//! the journal and what the database holds (`database`).

mod check;
mod database;
mod double;
mod journal;
mod load;

#[cfg(test)]
mod tests;

pub(crate) use check::{CheckOptions, ProviderOutage, check};
pub(crate) use double::double;
pub(crate) use journal::{Entry, Journal, read_journal};
pub(crate) use load::{LoadOptions, load};
