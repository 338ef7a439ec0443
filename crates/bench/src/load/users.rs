//! The simulated users and the clients that run their flows, and their
//! enrolment before the load.

use tokio::sync::mpsc;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

use super::{Recorder, Target};

/// A user of the service with a passkey, driven by one task at a time.
pub(crate) struct VirtualUser {
    pub(crate) external_id: String,
    /// The passkey's WebAuthn id, and (`external` mode) the counter the
    /// caller reports.
    pub(crate) credential: String,
    pub(crate) sign_count: u64,
    /// `builtin` mode: the user's phone, a software authenticator that holds
    /// the passkey's private key, verifies its user and signs each challenge.
    pub(super) phone: Option<Box<SoftPasskey>>,
}

/// One concurrent caller: it runs one flow at a time, for each of its users
/// in turn. Real users run a few flows a day; a user running flows back to
/// back for the whole benchmark would grow a history (IDV runs of the last
/// day, for the per-user limits) that no real user has.
pub(crate) struct Client {
    pub(super) users: Vec<VirtualUser>,
    pub(super) next: usize,
}

impl Client {
    /// The user whose turn it is.
    pub(super) fn take_turn(&mut self) -> &mut VirtualUser {
        let i = self.next % self.users.len();
        self.next = self.next.wrapping_add(1);
        &mut self.users[i]
    }
}

/// The yardstick's clients: `users_per_client` accounts each, numbered from
/// 0 as `yardstick::prepare` creates them.
pub(crate) fn yardstick_clients(clients: usize, users_per_client: usize) -> Vec<Client> {
    (0..clients.max(1))
        .map(|c| Client {
            users: (0..users_per_client.max(1))
                .map(|u| VirtualUser {
                    external_id: (c * users_per_client.max(1) + u).to_string(),
                    credential: String::new(),
                    sign_count: 0,
                    phone: None,
                })
                .collect(),
            next: 0,
        })
        .collect()
}

/// Registers `clients × users_per_client` users, `concurrency` at a time,
/// and deals them out to `clients` clients.
pub(crate) async fn enrol(
    target: &Target,
    clients: usize,
    users_per_client: usize,
    concurrency: usize,
) -> anyhow::Result<Vec<Client>> {
    let (clients, per_client) = (clients.max(1), users_per_client.max(1));
    let n = clients * per_client;
    let (tx, mut rx) = mpsc::channel(n);
    let mut tasks = Vec::new();
    let per_task = n.div_ceil(concurrency.max(1));
    for _ in 0..concurrency.max(1) {
        let (target, tx) = (target.clone(), tx.clone());
        tasks.push(tokio::spawn(async move {
            let mut rec = Recorder::default();
            for _ in 0..per_task {
                let vu = target.register(&mut rec).await?;
                if tx.send(vu).await.is_err() {
                    break;
                }
            }
            anyhow::Ok(())
        }));
    }
    drop(tx);
    let mut hands: Vec<Vec<VirtualUser>> = (0..clients).map(|_| Vec::new()).collect();
    let mut dealt = 0;
    while let Some(vu) = rx.recv().await {
        if dealt < n {
            hands[dealt % clients].push(vu);
            dealt += 1;
        }
    }
    for task in tasks {
        task.await??;
    }
    Ok(hands
        .into_iter()
        .map(|users| Client { users, next: 0 })
        .collect())
}
