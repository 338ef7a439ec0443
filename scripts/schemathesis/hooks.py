"""schemathesis hooks of scripts/test-api-contract (loaded via SCHEMATHESIS_HOOKS).

Each hook makes generated requests do what a real client's would, never what
a check judges; each says why.

The generator draws Idempotency-Key values from a small space ("0", "00",
…) and so sends the same key with many different requests, which the Core
API rightly refuses (`422 idempotency_key_reused`) before it looks at the
request: most cases would test only that refusal. Each well-formed key is
made unique here (a counter appended, still within the documented pattern),
so that every case reaches the operation behind it. Malformed keys are sent
as generated. Replays and reuse of a key are tested in the Rust suite
(`idempotency_keys_replay_and_refuse_reuse`).
"""

import hashlib
import hmac
import itertools
import json
import os
import re

import schemathesis
from schemathesis import GenerationMode

WELL_FORMED = re.compile(r"[!-~]{1,255}")
SIGNATURE = re.compile(r"[0-9a-f]{64}")
COUNTER = itertools.count()


@schemathesis.hook("before_call")
def unique_idempotency_keys(ctx, case, **kwargs):
    headers = case.headers or {}
    for name, value in list(headers.items()):
        if name.lower() == "idempotency-key" and isinstance(value, str) and WELL_FORMED.fullmatch(value):
            suffix = f"~{next(COUNTER)}"
            headers[name] = value[: 255 - len(suffix)] + suffix


USER_ID = re.compile(r"[A-Za-z0-9._~-]{1,128}")


@schemathesis.hook("before_call")
def new_users_for_registrations(ctx, case, **kwargs):
    """Registers a new user with each well-formed registration.

    The generator draws `external_user_id` from a small space too ("0",
    "customer-42"), and a user registers once: every later registration of
    the same id is refused (`409 user_already_enrolled`), so the flows the
    stateful phase should follow would hardly ever start. A counter is
    appended to a well-formed id of a registration (still within the pattern).
    """
    body = case.body
    if (
        case.operation.path != "/api/core/v1/flows"
        or case.method.upper() != "POST"
        or not isinstance(body, dict)
        or body.get("type") != "registration"
        or not isinstance(body.get("external_user_id"), str)
        or not USER_ID.fullmatch(body["external_user_id"])
    ):
        return
    suffix = f".{next(COUNTER)}"
    body["external_user_id"] = body["external_user_id"][: 128 - len(suffix)] + suffix


WEBHOOK = "/api/public/v1/providers/onfido/webhooks"


@schemathesis.hook("before_call")
def sign_webhook_deliveries(ctx, case, **kwargs):
    """Signs the positive cases of the provider's webhook as the provider does.

    The signature is an HMAC of the body under the webhook secret, which the
    generator cannot produce: unsigned, every delivery is refused (401) before
    its body is read. A positive case (schema-valid body, well-formed header)
    is sent with the body's exact bytes signed under the secret the runtime
    was started with (CONTRACT_WEBHOOK_SECRET); negative cases go as generated.
    """
    secret = os.environ.get("CONTRACT_WEBHOOK_SECRET")
    meta = getattr(case, "meta", None)
    if (
        not secret
        or case.operation.path != WEBHOOK
        or meta is None
        or meta.generation.mode != GenerationMode.POSITIVE
        or any(component.mode != GenerationMode.POSITIVE for component in meta.components.values())
        or not isinstance(case.body, dict)
    ):
        return
    headers = case.headers if case.headers is not None else {}
    name = next((n for n in headers if n.lower() == "x-sha2-signature"), None)
    if name is None or not SIGNATURE.fullmatch(str(headers[name])):
        return
    # The bytes requests sends for a JSON body (`json=`): json.dumps, UTF-8.
    body = json.dumps(case.body, allow_nan=False).encode("utf-8")
    headers[name] = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    case.headers = headers
