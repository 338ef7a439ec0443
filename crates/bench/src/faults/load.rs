//! The steady load: complete flows of every type at a fixed rate through
//! the load balancer, every call journalled.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use super::journal::Journal;
use crate::load::{Recorder, Scenario, Target, VirtualUser};

/// The steady load of `scripts/faults`.
pub(crate) struct LoadOptions {
    pub(crate) base: String,
    /// Complete flows started per second, the four types in turn.
    pub(crate) rate: f64,
    pub(crate) duration: Duration,
    /// Users enrolled first, for sign-in, step-up and recovery.
    pub(crate) users: usize,
    /// Flows in flight at most; a flow due when that many are is skipped.
    pub(crate) max_in_flight: usize,
    pub(crate) journal: PathBuf,
    /// The provider double's control URL (`onfido` mode); none for the
    /// synthetic provider.
    pub(crate) control: Option<String>,
    /// The double answers a run's completion at once and delivers its
    /// webhook afterwards (as the provider answers its SDK first).
    pub(crate) background_delivery: bool,
    /// How long each user of the steady load takes at the provider before
    /// their run is completed (users are enrolled without it).
    pub(crate) capture: Duration,
}

const TYPES: [Scenario; 4] = [
    Scenario::Registration,
    Scenario::SignIn,
    Scenario::StepUp,
    Scenario::Recovery,
];

/// The line the load prints once its users are enrolled (`scripts/faults`
/// waits for it).
const STEADY_LOAD_STARTED: &str = "faults: load: steady load started";

#[allow(clippy::print_stdout)] // The command's output.
pub(crate) async fn load(options: LoadOptions) -> anyhow::Result<()> {
    let journal = Arc::new(Journal::create(&options.journal)?);
    let mut target = Target::new(&options.base)?.with_journal(journal.clone());
    if let Some(control) = options.control {
        target = target.with_control(control);
    }
    if options.background_delivery {
        target = target.with_background_delivery();
    }
    // Users, enrolled before the load (their registrations are journalled
    // and checked like the others).
    let mut users = Vec::new();
    let enrol_by = Instant::now() + Duration::from_secs(60);
    while users.len() < options.users {
        match target.register(&mut Recorder::default()).await {
            Ok(user) => users.push(user),
            Err(e) if Instant::now() > enrol_by => return Err(e.context("while enrolling users")),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    // The script injects its fault once the steady load runs.
    println!("{STEADY_LOAD_STARTED} ({} users enrolled)", users.len());
    let target = target.with_capture(options.capture);
    let pool: Arc<Mutex<Vec<VirtualUser>>> = Arc::new(Mutex::new(users));
    let in_flight = Arc::new(Semaphore::new(options.max_in_flight.max(1)));
    let (flows, failed, skipped) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let interval = Duration::from_secs_f64(1.0 / options.rate.max(0.1));
    let total = (options.duration.as_secs_f64() * options.rate).floor() as u64;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..total {
        tokio::time::sleep_until((start + interval.mul_f64(i as f64)).into()).await;
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            skipped.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let scenario = TYPES[(i % TYPES.len() as u64) as usize];
        let user = if scenario == Scenario::Registration {
            None
        } else {
            match pool.lock().ok().and_then(|mut users| users.pop()) {
                Some(user) => Some(user),
                None => {
                    skipped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            }
        };
        let (target, pool, flows, failed) =
            (target.clone(), pool.clone(), flows.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            let mut rec = Recorder::default();
            flows.fetch_add(1, Ordering::Relaxed);
            let Some(mut user) = user else {
                // A registration enrols a new user; it joins the others.
                match target.register(&mut rec).await {
                    Ok(user) => {
                        if let Ok(mut users) = pool.lock() {
                            users.insert(0, user);
                        }
                    }
                    Err(_) => _ = failed.fetch_add(1, Ordering::Relaxed),
                }
                return;
            };
            let outcome = target.run(scenario, &mut rec, &mut user).await;
            // A recovery that failed part-way leaves the user's passkey
            // unknown: that user runs no more flows.
            if outcome.is_err() {
                failed.fetch_add(1, Ordering::Relaxed);
            }
            if (outcome.is_ok() || scenario != Scenario::Recovery)
                && let Ok(mut users) = pool.lock()
            {
                users.insert(0, user);
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    journal.flush()?;
    println!(
        "faults: load: {} flows started ({} failed), {} skipped, in {:.0} s",
        flows.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        skipped.load(Ordering::Relaxed),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
