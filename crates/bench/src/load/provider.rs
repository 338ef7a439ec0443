//! How an IDV result reaches a service: the synthetic provider's outcome,
//! a signed webhook, or a run completed at the provider double.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use serde_json::json;

use super::{COMPLETE_AT_PROVIDER, OUTCOME, Recorder, Target, WEBHOOK};

/// How IDV results reach a target in webhook mode: signed deliveries, and the
/// provider double to settle the run at first (the product re-reads it there).
#[derive(Clone)]
pub(crate) struct Webhooks {
    pub(crate) double: Option<Arc<testkit::onfido_double::OnfidoDouble>>,
    pub(crate) secret: String,
}

impl Target {
    /// Completes `run` at the provider double, which delivers the webhook.
    pub(super) async fn complete_at_double(&self, control: &str, run: &str) -> anyhow::Result<()> {
        let sent = crate::faults::Journal::now();
        let answer = async {
            let response = self
                .client
                .post(format!("{control}/workflow_runs/{run}/complete"))
                .json(&if self.background_delivery {
                    json!({ "status": "approved", "deliver": "background" })
                } else {
                    json!({ "status": "approved" })
                })
                .send()
                .await?;
            let status = response.status();
            Ok::<_, reqwest::Error>((status, response.bytes().await?))
        }
        .await;
        if let Some(journal) = &self.journal {
            journal.call(
                COMPLETE_AT_PROVIDER,
                run,
                sent,
                answer.as_ref().ok().map(|(s, b)| (*s, b.as_ref())),
            );
        }
        let (status, bytes) = answer.context(COMPLETE_AT_PROVIDER)?;
        if !status.is_success() {
            bail!(
                "{COMPLETE_AT_PROVIDER}: HTTP {status}: {}",
                String::from_utf8_lossy(&bytes)
            );
        }
        Ok(())
    }

    pub(super) async fn outcome(&self, rec: &mut Recorder, run: &str) -> anyhow::Result<()> {
        if let Some(control) = &self.control {
            tokio::time::sleep(self.capture).await;
            return self.complete_at_double(control, run).await;
        }
        if let Some(webhooks) = &self.webhooks {
            return self.deliver(rec, webhooks, run).await;
        }
        self.call(
            rec,
            OUTCOME,
            reqwest::Method::POST,
            &format!("/api/core/v1/synthetic/runs/{run}/outcome"),
            Some(json!({ "outcome": "approved" })),
        )
        .await
        .map(drop)
    }

    pub(super) async fn deliver(
        &self,
        rec: &mut Recorder,
        webhooks: &Webhooks,
        run: &str,
    ) -> anyhow::Result<()> {
        self.settle(webhooks, run).await;
        self.post_webhook(rec, webhooks, run).await
    }

    /// Settles the run at the provider double (which has no webhook URL, so it
    /// delivers nothing): the product re-reads the run there.
    pub(super) async fn settle(&self, webhooks: &Webhooks, run: &str) {
        if let Some(double) = &webhooks.double {
            double.complete_run(run, "approved").await;
        }
    }

    pub(super) async fn post_webhook(
        &self,
        rec: &mut Recorder,
        webhooks: &Webhooks,
        run: &str,
    ) -> anyhow::Result<()> {
        #[allow(clippy::disallowed_methods)] // The provider stamps its events with real time.
        let completed = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)?;
        let body = serde_json::to_vec(&json!({ "payload": {
            "resource_type": "workflow_run",
            "action": "workflow_run.completed",
            "object": {
                "id": run, "status": "approved", "completed_at_iso8601": completed,
                "href": format!("https://api.eu.onfido.com/v3.6/workflow_runs/{run}"),
            },
        }}))?;
        let signature = testkit::onfido_double::sign(&webhooks.secret, &body);
        let started = Instant::now();
        let response = self
            .client
            .post(format!(
                "{}/api/public/v1/providers/onfido/webhooks",
                self.base
            ))
            .header("content-type", "application/json")
            .header("x-sha2-signature", signature)
            .body(body)
            .send()
            .await
            .context(WEBHOOK)?;
        let status = response.status();
        let text = response.text().await?;
        rec.step(WEBHOOK, started);
        if !status.is_success() {
            bail!("{WEBHOOK}: HTTP {status}: {text}");
        }
        Ok(())
    }
}
