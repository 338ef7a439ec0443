//! `bench`: the Core API's benchmark harness. See docs/performance.md and
//! `scripts/bench`, which starts PostgreSQL and builds what this drives;
//! `bench webauthn` (`scripts/bench-webauthn`) measures assertion verification
//! by the built-in relying party.
//!
//! A load generator ([`load`]) drives complete flows over HTTP against the
//! product and, in the same run ([`run`], processes in [`services`]), the
//! mirror baseline ([`baseline`]: the product's store calls and nothing else)
//! and the fixed yardstick ([`yardstick`]: one UPDATE and one INSERT); the
//! [`report`] gives the figures, and [`rows`] checks that the baseline writes
//! rows of the product's size. [`faults`] and [`soak`] are the fault suite's
//! load and checks (`scripts/faults`).

mod baseline;
mod cli;
mod faults;
mod load;
mod overview;
mod report;
mod rows;
mod run;
mod services;
mod soak;
mod webauthn;
mod yardstick;

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    cli::Cli::parse().run().await
}
