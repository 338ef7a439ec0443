//! The running double: what a test holds, and what its handlers share.

use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::json;
use tokio::net::TcpListener;

use super::config::{
    DeliveryOutcome, Fault, OnfidoDoubleConfig, RecordedRequest, Route, WebhookFault,
};
use super::deliveries::{WEBHOOK_TIMEOUT, deliver_once};
use super::dispatch::dispatch;
use super::listener::{ConnHandle, KillableListener};
use super::state::{DoubleState, Run};
use super::{now, ts};

/// The running double; stops accepting connections when dropped.
pub struct OnfidoDouble {
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for OnfidoDouble {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl OnfidoDouble {
    pub async fn start(config: OnfidoDoubleConfig) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared {
            root: format!("http://{addr}"),
            http: reqwest::Client::builder()
                .timeout(WEBHOOK_TIMEOUT)
                .no_proxy()
                .build()
                .expect("webhook HTTP client"),
            state: Mutex::new(DoubleState::new(config)),
        });
        let app = axum::Router::new()
            .fallback(dispatch)
            .with_state(shared.clone())
            .into_make_service_with_connect_info::<ConnHandle>();
        let server = tokio::spawn(async move {
            let _ = axum::serve(KillableListener::new(listener), app).await;
        });
        Self { shared, server }
    }

    /// `http://127.0.0.1:<port>/v3.6`, what `BIOMETRIC_PASSKEY_IDV_ONFIDO_BASE_URL` is set to.
    pub fn base_url(&self) -> String {
        self.shared.base_url()
    }

    /// `http://127.0.0.1:<port>/__control`; `POST {control_url}/workflow_runs/{id}/complete {"status": …}`.
    pub fn control_url(&self) -> String {
        format!("{}/__control", self.shared.root)
    }

    pub fn set_webhook_url(&self, url: impl Into<String>) {
        self.shared.state().config.webhook_url = Some(url.into());
    }

    /// Moves an open run via `processing` to `status` (approved|declined|review|abandoned|error),
    /// fills `output`/`reasons`/`error`, and delivers `workflow_run.completed` to the webhook URL
    /// under the webhook fault in force. One outcome per attempt (none without a URL).
    ///
    /// Panics on an unknown run, a run already finished, or another status.
    pub async fn complete_run(&self, run_id: &str, status: &str) -> Vec<DeliveryOutcome> {
        let plan = self
            .shared
            .complete(run_id, status)
            .unwrap_or_else(|(code, message)| {
                panic!("complete_run({run_id}, {status}): {code} {message}")
            })
            .1;
        self.shared.deliver(plan).await
    }

    /// Delivers `body` once with the given `X-SHA2-Signature` (None: no header). Panics without a webhook URL.
    pub async fn deliver_raw(&self, body: &[u8], signature: Option<&str>) -> DeliveryOutcome {
        let url = self
            .shared
            .state()
            .config
            .webhook_url
            .clone()
            .expect("deliver_raw needs a webhook URL");
        deliver_once(&self.shared.http, &url, body, signature).await
    }

    /// The next `times` calls to `route` misbehave (replacing any fault set before).
    pub fn set_route_fault(&self, route: Route, fault: Fault, times: usize) {
        let mut state = self.shared.state();
        if times == 0 {
            state.route_faults.remove(&route);
        } else {
            state.route_faults.insert(route, (fault, times));
        }
    }

    /// Applies to every delivery from now until set back to `WebhookFault::None`.
    pub fn set_webhook_fault(&self, fault: WebhookFault) {
        self.shared.state().webhook_fault = fault;
    }

    /// After each later completion, `GET /workflow_runs/{id}` answers the run as it was before
    /// for this many reads.
    pub fn set_read_lag(&self, reads: usize) {
        self.shared.state().read_lag = reads;
    }

    /// The API requests received, in order (control-plane calls excluded):
    /// the last [`RECORDED_REQUESTS`](super::RECORDED_REQUESTS) of them, so that a long load run does
    /// not grow the double without bound.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.state().requests.iter().cloned().collect()
    }

    /// Deletes the applicant at once, as the provider's retention or another
    /// integration might; later reads answer 404.
    pub fn delete_applicant(&self, applicant_id: &str) {
        if let Some(applicant) = self.shared.state().applicants.get_mut(applicant_id) {
            applicant.deleted = true;
        }
    }

    /// Schedules the applicant's deletion: reads show `delete_at`, and runs
    /// can no longer be created for it.
    pub fn schedule_applicant_deletion(&self, applicant_id: &str) {
        if let Some(applicant) = self.shared.state().applicants.get_mut(applicant_id) {
            applicant.json["delete_at"] = json!(ts(now() + time::Duration::days(7)));
        }
    }

    /// The ids of every applicant created so far (deleted ones included), in no order.
    pub fn applicant_ids(&self) -> Vec<String> {
        self.shared.state().applicants.keys().cloned().collect()
    }

    pub fn applicants_created(&self) -> usize {
        self.shared.state().applicants_created
    }

    pub fn runs_created(&self) -> usize {
        self.shared.state().runs_created
    }

    /// The ids of every run created so far, in no order.
    pub fn run_ids(&self) -> Vec<String> {
        self.shared.state().runs.keys().cloned().collect()
    }

    /// The run as it now is (no read lag), as `GET /workflow_runs/{id}` would show it.
    pub fn run(&self, run_id: &str) -> Option<serde_json::Value> {
        self.shared.state().runs.get(run_id).map(Run::to_json)
    }
}

/// What every handler of one double shares.
pub(super) struct Shared {
    /// `http://127.0.0.1:<port>`
    pub(super) root: String,
    pub(super) http: reqwest::Client,
    state: Mutex<DoubleState>,
}

impl Shared {
    pub(super) fn state(&self) -> MutexGuard<'_, DoubleState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(super) fn base_url(&self) -> String {
        format!("{}/v3.6", self.root)
    }
}
