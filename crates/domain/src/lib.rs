//! The product's rules, independent of HTTP, SQL and the IDV provider's wire format.
//!
//! **Architecture invariant:** this crate does no IO and never reads the system
//! clock. Time arrives through [`Clock`]; persistence goes through the
//! [`Repository`] port, which the store crates implement.

pub mod audit;
pub mod clock;
pub mod credential;
pub mod custody;
pub mod error;
pub mod flow;
pub mod idempotency;
pub mod ids;
pub mod idv;
pub mod management;
pub mod operations;
pub mod operator;
pub mod overview;
pub mod possession;
pub mod retention;
pub mod rotation;
pub mod sealing;
pub mod service;
pub mod store;
pub mod tally;
pub mod user;

pub use audit::{Actor, AuditEvent, AuditEventType, AuditQuery, NewAuditEvent, Outcome, Subject};
pub use clock::{Clock, ManualClock};
pub use error::{DomainError, DomainResult, ErrorKind};
pub use store::{
    Change, Conflict, Effect, FlowLimits, FlowPrerequisites, FlowQuery, FlowWrite, Limit, Page,
    Purge, Repository, StoreError, StoreResult, UserCursor, UserQuery,
};
pub use user::{ExternalUserId, Pseudonym, User, UserId};
