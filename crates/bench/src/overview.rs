//! `bench overview` (`scripts/bench-user-search`, `scripts/bench-overview-sqlite`):
//! the Management API's overview over a month (November 2026) already written
//! to the database: the roll-up as the Core API's housekeeping runs it (a
//! first pass over the month, then the pass that counts the next hour, then
//! one with nothing to count), then the overview's counts through the store,
//! for the periods the dashboard asks for. Times are the client's: the
//! store's statements, their round trips and the decoding of their rows.

use std::sync::Arc;
use std::time::{Duration, Instant};

use domain::Repository;
use domain::overview::{Bucket, OverviewQuery, roll_up};
use time::macros::datetime;

/// Overview calls per period; the median is reported.
const REPEATS: usize = 5;

#[allow(clippy::print_stdout)] // The figures are the command's output.
pub(crate) async fn main(repo: Arc<dyn Repository>) -> anyhow::Result<()> {
    let first_pass = datetime!(2026-11-30 23:10:00 UTC);
    let next_hour = datetime!(2026-12-01 00:10:00 UTC);
    let month = datetime!(2026-11-01 00:00:00 UTC);
    // Before any hour is rolled up, the month is counted from the flows.
    let live = OverviewQuery::new(month, next_hour, Bucket::Hour, next_hour)
        .map_err(|e| anyhow::anyhow!("period refused: {e:?}"))?;
    let started = Instant::now();
    repo.overview(&live).await?;
    println!(
        "{:<52} {:>9.1} ms",
        "30 days per hour, nothing rolled up (one call)",
        ms(started.elapsed())
    );
    println!();
    println!("{:<52} {:>12}  hours counted", "roll-up pass", "time");
    for (name, now) in [
        ("first pass over the month", first_pass),
        ("incremental pass (one more hour)", next_hour),
        ("pass with nothing to count", next_hour),
    ] {
        let started = Instant::now();
        let report = roll_up(&*repo, now)
            .await?
            .ok_or_else(|| anyhow::anyhow!("another replica is rolling up"))?;
        println!(
            "{name:<52} {:>9.1} ms  {} (counted to {})",
            ms(started.elapsed()),
            report.hours,
            report
                .counted_to
                .map_or_else(|| "nothing".to_owned(), |t| t.to_string())
        );
    }
    let now = next_hour;
    let week = datetime!(2026-11-20 00:00:00 UTC);
    println!();
    println!(
        "{:<52} {:>12}  flow counts, event counts",
        "overview (median of 5)", "time"
    );
    for (name, from, to, bucket) in [
        ("30 days, hour buckets", month, now, Bucket::Hour),
        ("30 days, day buckets", month, now, Bucket::Day),
        (
            "7 days, hour buckets",
            week,
            week + time::Duration::days(7),
            Bucket::Hour,
        ),
        (
            "7 days, day buckets",
            week,
            week + time::Duration::days(7),
            Bucket::Day,
        ),
        (
            "24 hours to now, hour buckets (partial first hour)",
            now - time::Duration::DAY,
            now,
            Bucket::Hour,
        ),
    ] {
        let q = OverviewQuery::new(from, to, bucket, now)
            .map_err(|e| anyhow::anyhow!("period refused: {e:?}"))?;
        let mut times = Vec::with_capacity(REPEATS);
        let mut sizes = (0, 0);
        for _ in 0..REPEATS {
            let started = Instant::now();
            let counted = repo.overview(&q).await?;
            times.push(started.elapsed());
            sizes = (counted.flows.len(), counted.events.len());
        }
        times.sort();
        println!(
            "{name:<52} {:>9.1} ms  {}, {}",
            ms(times[REPEATS / 2]),
            sizes.0,
            sizes.1
        );
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
