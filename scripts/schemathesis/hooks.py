"""schemathesis hooks of scripts/test-api-contract (loaded via SCHEMATHESIS_HOOKS).

The generator draws Idempotency-Key values from a small space ("0", "00",
…) and so sends the same key with many different requests, which the Core
API rightly refuses (`422 idempotency_key_reused`) before it looks at the
request: most cases would test only that refusal. Each well-formed key is
made unique here (a counter appended, still within the documented pattern),
so that every case reaches the operation behind it. Malformed keys are sent
as generated. Replays and reuse of a key are tested in the Rust suite
(`idempotency_keys_replay_and_refuse_reuse`).
"""

import itertools
import re

import schemathesis

WELL_FORMED = re.compile(r"[!-~]{1,255}")
COUNTER = itertools.count()


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    headers = case.headers or {}
    for name, value in list(headers.items()):
        if name.lower() == "idempotency-key" and isinstance(value, str) and WELL_FORMED.fullmatch(value):
            suffix = f"~{next(COUNTER)}"
            headers[name] = value[: 255 - len(suffix)] + suffix
