//! The overview support and fraud teams open the dashboard on: flows by type
//! and outcome, and the audit events that matter to them (IDV declines and
//! manual reviews, refused possession proofs, credentials suspended and
//! revoked), counted per hour or per day over a bounded period.
//!
//! Flows are counted by the hour they were created in and the state they
//! read as now ([`crate::flow::Flow::as_of`]). A flow stops changing once it
//! has ended or passed its expiry, so an hour whose flows have all stopped
//! changing has final counts: the roll-up ([`roll_up`], run by the Core API's
//! housekeeping) stores them, per hour, type and state, and the overview reads
//! those hours from it. Only the hours after the last one rolled up, and the
//! partial hours at either end of a period, are counted from the flows
//! themselves. Counts rolled up stay when retention or a user's deletion
//! later removes the flows (as the audit events they also produced stay).

use time::{Duration, OffsetDateTime};

use crate::audit::{AuditEventType, Outcome};
use crate::flow::{FlowState, FlowType};
use crate::store::{Repository, StoreResult};

/// The longest period an overview covers: a month of hours is 744 buckets.
pub const MAX_PERIOD: Duration = Duration::days(31);

/// The audit events an overview counts. The stores' indexes for the overview
/// are partial on exactly this list (their migrations name it too).
pub const OVERVIEW_EVENTS: &[AuditEventType] = &[
    AuditEventType::FlowInReview,
    AuditEventType::FlowFailed,
    AuditEventType::FlowRequestRejected,
    AuditEventType::CredentialCounterRegression,
    AuditEventType::CredentialBackupEligibilityChanged,
    AuditEventType::CredentialSuspended,
    AuditEventType::CredentialActivated,
    AuditEventType::CredentialRevoked,
];

/// How long one count covers. Buckets are aligned on UTC hours or days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    Hour,
    Day,
}

impl Bucket {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hour => "hour",
            Self::Day => "day",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "hour" => Some(Self::Hour),
            "day" => Some(Self::Day),
            _ => None,
        }
    }

    pub fn seconds(self) -> i64 {
        match self {
            Self::Hour => 3_600,
            Self::Day => 86_400,
        }
    }

    /// The start of the bucket `at` falls in.
    pub fn start_of(self, at: OffsetDateTime) -> OffsetDateTime {
        let secs = at.unix_timestamp();
        let start = secs.div_euclid(self.seconds()) * self.seconds();
        OffsetDateTime::from_unix_timestamp(start).unwrap_or(at)
    }
}

/// Why a period cannot be counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeriodRefusal {
    /// `to` is not after `from`.
    Empty,
    /// Longer than [`MAX_PERIOD`].
    TooLong,
}

/// A period `[from, to)` counted in buckets, as of `now`: a flow past its
/// expiry counts as expired even if nothing touched it since.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverviewQuery {
    pub from: OffsetDateTime,
    pub to: OffsetDateTime,
    pub bucket: Bucket,
    pub now: OffsetDateTime,
}

impl OverviewQuery {
    pub fn new(
        from: OffsetDateTime,
        to: OffsetDateTime,
        bucket: Bucket,
        now: OffsetDateTime,
    ) -> Result<Self, PeriodRefusal> {
        if to <= from {
            return Err(PeriodRefusal::Empty);
        }
        if to - from > MAX_PERIOD {
            return Err(PeriodRefusal::TooLong);
        }
        Ok(Self {
            from,
            to,
            bucket,
            now,
        })
    }
}

impl OverviewQuery {
    /// The whole UTC hours inside the period, `[first, end)`: the hours the
    /// roll-up may answer for. Empty (`end <= first`) when the period holds
    /// no whole hour.
    pub fn whole_hours(&self) -> (OffsetDateTime, OffsetDateTime) {
        let floor = Bucket::Hour.start_of(self.from);
        let first = if floor == self.from {
            floor
        } else {
            floor + Duration::HOUR
        };
        (first, Bucket::Hour.start_of(self.to))
    }
}

/// How long after an instant every flow created before it is taken to be
/// written, and every flow past its expiry to be beyond any replica's last
/// write: the slack for transactions still in flight and for replicas' clocks
/// apart. The roll-up counts an hour only once its end, and the expiry of its
/// flows still open, are this far behind the clock.
pub const SETTLE_MARGIN: Duration = Duration::minutes(5);

/// The most hours one roll-up step counts, in one transaction.
pub const ROLL_UP_STEP_HOURS: u32 = 24;

/// What one roll-up step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RollUpStep {
    /// Hours counted by this step (hours without flows included).
    pub hours: u32,
    /// Every hour before this one is rolled up; `None` while nothing is.
    pub counted_to: Option<OffsetDateTime>,
}

/// What a roll-up did: hours counted, and where the roll-up stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RollUpReport {
    pub hours: u64,
    pub counted_to: Option<OffsetDateTime>,
}

/// Rolls up every hour whose flows have stopped changing at `now`, in steps
/// of at most [`ROLL_UP_STEP_HOURS`] (each its own short transaction);
/// `None` when another replica is rolling up.
pub async fn roll_up(
    repo: &dyn Repository,
    now: OffsetDateTime,
) -> StoreResult<Option<RollUpReport>> {
    let settled_at = now - SETTLE_MARGIN;
    let mut report = RollUpReport::default();
    loop {
        let Some(step) = repo
            .roll_up_flow_counts(settled_at, ROLL_UP_STEP_HOURS)
            .await?
        else {
            return Ok((report.hours > 0).then_some(report));
        };
        report.hours += u64::from(step.hours);
        report.counted_to = step.counted_to;
        if step.hours < ROLL_UP_STEP_HOURS {
            return Ok(Some(report));
        }
    }
}

/// The states of a flow that has not ended: one past its expiry counts as
/// `expired`.
pub const OPEN_STATES: &[FlowState] = &[
    FlowState::Pending,
    FlowState::AwaitingVerification,
    FlowState::Verified,
    FlowState::InReview,
];

/// Flows created in a bucket, of one type, in one state now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowCount {
    pub bucket_start: OffsetDateTime,
    pub flow_type: FlowType,
    pub state: FlowState,
    pub count: u64,
}

/// Audit events of one type, outcome and reason that occurred in a bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventCount {
    pub bucket_start: OffsetDateTime,
    pub event_type: AuditEventType,
    pub outcome: Outcome,
    pub reason: Option<String>,
    pub count: u64,
}

/// The counts of a period; buckets with nothing to count are left out.
/// Both lists are ordered by bucket, then by their other fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overview {
    pub flows: Vec<FlowCount>,
    pub events: Vec<EventCount>,
}

impl Overview {
    /// Puts both lists in their documented order (the stores group, they
    /// need not sort).
    pub fn sorted(mut self) -> Self {
        self.flows.sort_by(|a, b| {
            (a.bucket_start, a.flow_type.as_str(), a.state.as_str()).cmp(&(
                b.bucket_start,
                b.flow_type.as_str(),
                b.state.as_str(),
            ))
        });
        self.events.sort_by(|a, b| {
            (
                a.bucket_start,
                a.event_type.as_str(),
                a.outcome.as_str(),
                &a.reason,
            )
                .cmp(&(
                    b.bucket_start,
                    b.event_type.as_str(),
                    b.outcome.as_str(),
                    &b.reason,
                ))
        });
        self
    }
}

/// The SQL list of [`OVERVIEW_EVENTS`], as the partial indexes name it.
pub fn overview_events_sql() -> String {
    OVERVIEW_EVENTS
        .iter()
        .map(|t| format!("'{}'", t.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn buckets_start_on_utc_hours_and_days() {
        let at = datetime!(2026-06-01 09:42:13 UTC);
        assert_eq!(
            Bucket::Hour.start_of(at),
            datetime!(2026-06-01 09:00:00 UTC)
        );
        assert_eq!(Bucket::Day.start_of(at), datetime!(2026-06-01 00:00:00 UTC));
    }

    #[test]
    fn whole_hours_leave_out_partial_hours_at_either_end() {
        let q = |from, to| OverviewQuery::new(from, to, Bucket::Day, to).unwrap();
        assert_eq!(
            q(
                datetime!(2026-06-01 09:42:00 UTC),
                datetime!(2026-06-02 07:10:00 UTC)
            )
            .whole_hours(),
            (
                datetime!(2026-06-01 10:00:00 UTC),
                datetime!(2026-06-02 07:00:00 UTC)
            )
        );
        assert_eq!(
            q(
                datetime!(2026-06-01 09:00:00 UTC),
                datetime!(2026-06-01 11:00:00 UTC)
            )
            .whole_hours(),
            (
                datetime!(2026-06-01 09:00:00 UTC),
                datetime!(2026-06-01 11:00:00 UTC)
            )
        );
        let (first, end) = q(
            datetime!(2026-06-01 09:10:00 UTC),
            datetime!(2026-06-01 09:50:00 UTC),
        )
        .whole_hours();
        assert!(end < first, "no whole hour");
    }

    #[test]
    fn periods_are_bounded() {
        let from = datetime!(2026-06-01 00:00:00 UTC);
        assert!(OverviewQuery::new(from, from + MAX_PERIOD, Bucket::Hour, from).is_ok());
        assert_eq!(
            OverviewQuery::new(
                from,
                from + MAX_PERIOD + Duration::SECOND,
                Bucket::Day,
                from
            ),
            Err(PeriodRefusal::TooLong)
        );
        assert_eq!(
            OverviewQuery::new(from, from, Bucket::Day, from),
            Err(PeriodRefusal::Empty)
        );
    }
}
