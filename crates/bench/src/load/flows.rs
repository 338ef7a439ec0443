//! Complete flows, made of a target's calls.

use serde_json::{Value, json};

use super::target::unique;
use super::{
    Recorder, STORE_REFERENCE, Scenario, Target, VirtualUser, YARDSTICK, YARDSTICK_ONE_STATEMENT,
};

impl Target {
    /// A new user with a passkey and a biometric reference.
    pub(crate) async fn register(&self, rec: &mut Recorder) -> anyhow::Result<VirtualUser> {
        let external_id = unique("bench-user");
        let flow = self
            .create(
                rec,
                json!({ "type": "registration", "external_user_id": external_id }),
            )
            .await?;
        self.call(
            rec,
            STORE_REFERENCE,
            reqwest::Method::PUT,
            &format!("/api/core/v1/flows/{}/biometric-reference", flow.id),
            Some(json!({ "token": "ZW5jcnlwdGVkLWJpb21ldHJpYy10b2tlbg" })),
        )
        .await?;
        let (credential, phone) = self.register_credential(rec, &flow).await?;
        self.outcome(rec, &flow.run).await?;
        self.finish(rec, &flow.id).await?;
        Ok(VirtualUser {
            external_id,
            credential,
            sign_count: 0,
            phone,
        })
    }

    /// One complete flow of `scenario` for `vu` (registration enrols a new user
    /// and leaves `vu` as it is).
    pub(crate) async fn run(
        &self,
        scenario: Scenario,
        rec: &mut Recorder,
        vu: &mut VirtualUser,
    ) -> anyhow::Result<()> {
        if let Some(flow) = scenario.creates_only() {
            return self.create(rec, creation(flow, vu)).await.map(drop);
        }
        if scenario.yardstick() {
            let (step, path) = match scenario {
                Scenario::Yardstick => (YARDSTICK, format!("/yardstick/{}", vu.external_id)),
                _ => (
                    YARDSTICK_ONE_STATEMENT,
                    format!("/yardstick/{}/one-statement", vu.external_id),
                ),
            };
            let body = json!({ "kind": "flow.created", "detail": {
                "correlation_id": unique("bench-correlation"), "actor": "api_key:bench",
                "flow_type": "sign_in", "reason": "requested by the customer's backend",
            }});
            return self
                .call(rec, step, reqwest::Method::POST, &path, Some(body))
                .await
                .map(drop);
        }
        match scenario.flow() {
            Scenario::Registration => self.register(rec).await.map(drop),
            Scenario::SignIn => {
                let flow = self
                    .create(
                        rec,
                        json!({ "type": "sign_in", "external_user_id": vu.external_id }),
                    )
                    .await?;
                self.assert(rec, &flow, vu).await?;
                self.finish(rec, &flow.id).await
            }
            Scenario::StepUp | Scenario::StepUpWebhook => {
                let flow = self
                    .create(
                        rec,
                        json!({ "type": "step_up", "external_user_id": vu.external_id,
                                "transaction_context": { "payee": "ACME Ltd", "amount": "2500.00 EUR" } }),
                    )
                    .await?;
                self.release(rec, &flow.id).await?;
                self.assert(rec, &flow, vu).await?;
                self.outcome(rec, &flow.run).await?;
                self.finish(rec, &flow.id).await
            }
            _ => {
                // Recovery: a new phone's passkey replaces the old one.
                let flow = self
                    .create(
                        rec,
                        json!({ "type": "recovery", "external_user_id": vu.external_id }),
                    )
                    .await?;
                let (credential, phone) = self.register_credential(rec, &flow).await?;
                self.outcome(rec, &flow.run).await?;
                self.finish(rec, &flow.id).await?;
                vu.credential = credential;
                vu.sign_count = 0;
                vu.phone = phone;
                Ok(())
            }
        }
    }
}

/// The body of `POST /flows` that starts `flow` for `vu` (registration: for
/// a new user), as the complete flows send it.
fn creation(flow: Scenario, vu: &VirtualUser) -> Value {
    match flow {
        Scenario::Registration => {
            json!({ "type": "registration", "external_user_id": unique("bench-user") })
        }
        Scenario::SignIn => json!({ "type": "sign_in", "external_user_id": vu.external_id }),
        Scenario::StepUp => json!({ "type": "step_up", "external_user_id": vu.external_id,
            "transaction_context": { "payee": "ACME Ltd", "amount": "2500.00 EUR" } }),
        _ => json!({ "type": "recovery", "external_user_id": vu.external_id }),
    }
}
