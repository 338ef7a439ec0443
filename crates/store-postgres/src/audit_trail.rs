//! Audit maintenance on PostgreSQL: monthly partitions, retention by dropping
//! partitions, seals and archive manifests.
//!
//! One maintainer at a time: the lease is a session advisory lock on a
//! connection of the maintainer's own, outside the pool, so the lock goes when
//! the connection closes, whatever happens to the maintainer. Each replica keeps
//! that connection between runs ([`MaintenanceSession`]).
//!
//! Behind a pooler in transaction mode (`DB_POOLER_MODE=transaction`) no
//! session lasts beyond a transaction: the lease is then a transaction-scoped
//! advisory lock in a transaction the maintainer's connection keeps open
//! while it leads (the pooler keeps it on one server session meanwhile, and
//! ends it, lock and all, if the maintainer goes), and the lease's work runs
//! on the pool, each step in transactions of its own.
//!
//! [`session`] keeps the maintainer's connection and takes the lock,
//! [`lease`] carries out the maintainer's steps, [`partitions`] creates and
//! drops the monthly partitions, [`seals`] reads and writes the seals (and
//! the events they cover), [`archives`] the archive manifests.

mod archives;
mod lease;
mod partitions;
mod seals;
mod session;

pub(crate) use archives::{archives, record_archive};
pub(crate) use partitions::months;
pub(crate) use seals::{events_of_month, seals, seals_of_month};
pub use session::MAINTENANCE_APPLICATION_NAME;
pub(crate) use session::{MaintenanceSession, lead};

/// `pg_try_advisory_lock` key of audit maintenance ("bpaudit1").
pub const MAINTENANCE_LOCK: i64 = 0x6270_6175_6469_7431;
