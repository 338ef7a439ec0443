//! The drivers: clients running a scenario back to back (closed loop) or
//! flows started on a fixed schedule, and webhook ingestion.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;
use tokio::sync::{Mutex, mpsc};

use super::recorder::{join, note_error};
use super::{Client, Recorder, Scenario, Target, merge};

/// Each client runs `scenario` back to back for `duration`, its users in turn.
pub(crate) async fn closed_loop(
    target: &Target,
    scenario: Scenario,
    clients: Vec<Client>,
    duration: Duration,
) -> (Recorder, Vec<Client>) {
    let deadline = Instant::now() + duration;
    let mut tasks = Vec::new();
    for mut client in clients {
        let target = target.clone();
        tasks.push(tokio::spawn(async move {
            let mut rec = Recorder::default();
            while Instant::now() < deadline {
                let started = Instant::now();
                let outcome = target.run(scenario, &mut rec, client.take_turn()).await;
                rec.outcome(outcome, started);
            }
            (rec, client)
        }));
    }
    let mut clients = Vec::new();
    let mut recs = Vec::new();
    for task in tasks {
        match task.await {
            Ok((rec, client)) => {
                recs.push(rec);
                clients.push(client);
            }
            Err(_) => recs.push(Recorder {
                errors: 1,
                ..Recorder::default()
            }),
        }
    }
    (merge(recs), clients)
}

/// Flows started at `rate` per second for `duration`, each by a free
/// client (for its next user); a flow's latency counts from its scheduled
/// start. Each client carries its own recorder from flow to flow, so that
/// the generator allocates no histograms per flow (which would cost it CPU
/// the services need).
pub(crate) async fn fixed_rate(
    target: &Target,
    scenario: Scenario,
    clients: Vec<Client>,
    rate: f64,
    duration: Duration,
) -> (Recorder, Vec<Client>) {
    let (free_tx, free_rx) = mpsc::unbounded_channel::<(Client, Recorder)>();
    let free_rx = Arc::new(Mutex::new(free_rx));
    let start = Instant::now();
    for client in clients {
        let _ = free_tx.send((client, Recorder::default()));
    }
    let interval = Duration::from_secs_f64(1.0 / rate.max(0.1));
    let total = (duration.as_secs_f64() * rate).floor() as u64;
    let mut tasks = Vec::new();
    for i in 0..total {
        let scheduled = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(scheduled.into()).await;
        let (target, free_rx, free_tx) = (target.clone(), free_rx.clone(), free_tx.clone());
        tasks.push(tokio::spawn(async move {
            let free = free_rx.lock().await.recv().await;
            let Some((mut client, mut rec)) = free else {
                return;
            };
            let outcome = target.run(scenario, &mut rec, client.take_turn()).await;
            rec.outcome(outcome, scheduled);
            let _ = free_tx.send((client, rec));
        }));
    }
    let mut panicked = Recorder::default();
    for task in tasks {
        if task.await.is_err() {
            note_error(&mut panicked, anyhow::anyhow!("a flow's task panicked"));
        }
    }
    drop(free_tx);
    let mut clients = Vec::new();
    let mut recs = vec![panicked];
    while let Ok((client, rec)) = free_rx.lock().await.try_recv() {
        clients.push(client);
        recs.push(rec);
    }
    (merge(recs), clients)
}

/// Flows waiting for their identity result: `per_user` step-up flows of each
/// user, made by each client for its users, their runs settled at the
/// provider. Returns the run ids.
pub(crate) async fn awaiting_runs(
    target: &Target,
    clients: &[Client],
    per_user: usize,
) -> anyhow::Result<Vec<String>> {
    let webhooks = target.webhooks.clone().context("a webhook target")?;
    let mut tasks = Vec::new();
    for client in clients {
        let users: Vec<String> = client
            .users
            .iter()
            .map(|vu| vu.external_id.clone())
            .collect();
        let (target, webhooks) = (target.clone(), webhooks.clone());
        tasks.push(tokio::spawn(async move {
            let mut rec = Recorder::default();
            let mut runs = Vec::new();
            for user in users.iter().cycle().take(per_user * users.len()) {
                let run = target
                    .create(
                        &mut rec,
                        json!({ "type": "step_up", "external_user_id": user }),
                    )
                    .await?
                    .run;
                target.settle(&webhooks, &run).await;
                runs.push(run);
            }
            anyhow::Ok(runs)
        }));
    }
    let mut runs = Vec::new();
    for task in tasks {
        runs.extend(task.await??);
    }
    Ok(runs)
}

/// Delivers one signed webhook per run, `clients` at a time, as fast as they
/// are answered.
pub(crate) async fn deliver_all(target: &Target, runs: Vec<String>, clients: usize) -> Recorder {
    let Some(webhooks) = target.webhooks.clone() else {
        return Recorder {
            errors: 1,
            first_error: Some("not a webhook target".into()),
            ..Recorder::default()
        };
    };
    let queue = Arc::new(Mutex::new(runs));
    let mut tasks = Vec::new();
    for _ in 0..clients.max(1) {
        let (target, webhooks, queue) = (target.clone(), webhooks.clone(), queue.clone());
        tasks.push(tokio::spawn(async move {
            let mut rec = Recorder::default();
            loop {
                let run = queue.lock().await.pop();
                let Some(run) = run else { break };
                let started = Instant::now();
                let outcome = target.post_webhook(&mut rec, &webhooks, &run).await;
                rec.outcome(outcome, started);
            }
            rec
        }));
    }
    merge(join(tasks).await)
}
