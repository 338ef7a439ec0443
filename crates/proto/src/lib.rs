//! Wire types: what travels over HTTP between the runtimes and their callers.
//!
//! Nothing here knows about the database or the domain's invariants; types are
//! plain data with serde derives. Error codes live here because they are part of
//! the public contract: a code, once published, never changes meaning.

pub mod core;
pub mod error;
pub mod integer;
pub mod management;
pub mod service;

pub use error::{ErrorBody, ErrorCode, ErrorDetail};
