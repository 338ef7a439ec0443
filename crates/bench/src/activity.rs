//! What PostgreSQL's backends were doing while a service was under load,
//! sampled from `pg_stat_activity` ten times a second. A second's summary
//! says how many of the service's backends were running a statement at once
//! and what most of them waited on, so that a burst of slow calls can be told
//! apart: a lock queue or a WAL flush shows as a wait event shared by many
//! backends, CPU contention as busy backends with no wait event, a stall
//! outside PostgreSQL as few busy backends. Autovacuum workers are counted in
//! every sample, so that a short vacuum between two seconds is not missed.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

/// How often `pg_stat_activity` is read.
pub(crate) const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// One reading of `pg_stat_activity`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Sample {
    /// The service's backends running a statement, by wait event
    /// (`type:event`; `None` is on CPU). A backend waiting on its client
    /// does not count: the statement is over or not yet sent.
    busy: BTreeMap<Option<String>, u32>,
    /// Autovacuum workers, in any database.
    autovacuum: u32,
}

/// Reads one sample of `database`'s backends, or `None` when the view cannot
/// be read.
pub(crate) async fn sample(conn: &mut sqlx::PgConnection, database: &str) -> Option<Sample> {
    let rows: Vec<(bool, Option<String>, i64)> = sqlx::query_as(
        "SELECT backend_type = 'autovacuum worker', \
                wait_event_type || ':' || wait_event, \
                count(*) \
         FROM pg_stat_activity \
         WHERE pid <> pg_backend_pid() \
           AND (backend_type = 'autovacuum worker' \
                OR (backend_type = 'client backend' AND datname = $1 AND state = 'active' \
                    AND wait_event_type IS DISTINCT FROM 'Client')) \
         GROUP BY 1, 2",
    )
    .bind(database)
    .fetch_all(conn)
    .await
    .ok()?;
    let mut sample = Sample::default();
    for (autovacuum, wait, n) in rows {
        let n = u32::try_from(n).unwrap_or(0);
        if autovacuum {
            sample.autovacuum += n;
        } else {
            *sample.busy.entry(wait).or_default() += n;
        }
    }
    Some(sample)
}

/// One second's samples, summarised by their peaks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Activity {
    pub(crate) samples: u32,
    /// The most autovacuum workers in one sample.
    pub(crate) autovacuum_workers: u32,
    /// The most of the service's backends running a statement in one sample.
    pub(crate) busy_backends: u32,
    /// The wait event the most backends shared in one sample, and how many
    /// (the earliest seen of equals).
    pub(crate) top_wait: Option<(String, u32)>,
}

impl Activity {
    pub(crate) fn add(&mut self, sample: &Sample) {
        self.samples += 1;
        self.autovacuum_workers = self.autovacuum_workers.max(sample.autovacuum);
        self.busy_backends = self.busy_backends.max(sample.busy.values().sum());
        for (wait, &n) in &sample.busy {
            let Some(wait) = wait else { continue };
            if self.top_wait.as_ref().is_none_or(|(_, top)| n > *top) {
                self.top_wait = Some((wait.clone(), n));
            }
        }
    }

    /// "busy backends / top wait ×backends", for the report's table.
    pub(crate) fn cell(&self) -> String {
        match &self.top_wait {
            Some((wait, n)) => format!("{} / {wait} ×{n}", self.busy_backends),
            None => format!("{} / –", self.busy_backends),
        }
    }

    pub(crate) fn json(&self) -> Value {
        json!({
            "activity_samples": self.samples,
            "autovacuum_workers": self.autovacuum_workers,
            "busy_backends": self.busy_backends,
            "top_wait": self.top_wait.as_ref().map(|(wait, _)| wait),
            "top_wait_backends": self.top_wait.as_ref().map(|(_, n)| n),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(autovacuum: u32, busy: &[(Option<&str>, u32)]) -> Sample {
        Sample {
            busy: busy
                .iter()
                .map(|(wait, n)| (wait.map(str::to_owned), *n))
                .collect(),
            autovacuum,
        }
    }

    #[test]
    fn a_second_keeps_the_peaks_of_its_samples() {
        let mut second = Activity::default();
        second.add(&sample(0, &[(None, 3), (Some("IO:WALSync"), 1)]));
        second.add(&sample(
            1,
            &[
                (None, 1),
                (Some("LWLock:WALWrite"), 6),
                (Some("IO:WALSync"), 1),
            ],
        ));
        second.add(&sample(0, &[(Some("Lock:transactionid"), 2)]));
        assert_eq!(
            second,
            Activity {
                samples: 3,
                autovacuum_workers: 1,
                busy_backends: 8,
                top_wait: Some(("LWLock:WALWrite".to_owned(), 6)),
            }
        );
        assert_eq!(second.cell(), "8 / LWLock:WALWrite ×6");
    }

    #[test]
    fn backends_on_cpu_have_no_wait_event() {
        let mut second = Activity::default();
        second.add(&sample(0, &[(None, 5)]));
        assert_eq!(second.busy_backends, 5);
        assert_eq!(second.top_wait, None);
        assert_eq!(second.cell(), "5 / –");
    }

    #[test]
    fn of_equal_waits_the_first_seen_stays_on_top() {
        let mut second = Activity::default();
        second.add(&sample(0, &[(Some("Lock:tuple"), 2)]));
        second.add(&sample(0, &[(Some("IO:WALSync"), 2)]));
        assert_eq!(second.top_wait, Some(("Lock:tuple".to_owned(), 2)));
    }
}
