"""Schemathesis hooks of the contract test (scripts/test-contract.sh).

Each adapts a generated request to what a well-behaved client does and a
schema cannot say, never what the server accepts:
- an `Idempotency-Key` names one logical request: a valid key is made
  unique per call (a key reused for another body is rightly refused 422);
- a key's `expires_at` must lie in the future: a valid past one is moved a
  day ahead of now;
- a body capture is listed once per API, and a provider key's `reason`
  goes with a status change (`map_body`).
"""

import uuid
from datetime import datetime, timedelta, timezone

import schemathesis
from schemathesis.core.parameters import ParameterLocation


def negative(case, location):
    meta = getattr(case, "_meta", None)
    return meta is not None and meta.is_negative_at(location)


@schemathesis.hook
def before_call(context, case, kwargs):
    headers = case.headers or {}
    if "Idempotency-Key" in headers and not negative(case, ParameterLocation.HEADER):
        headers["Idempotency-Key"] = str(uuid.uuid4())
    body = case.body
    if isinstance(body, dict) and isinstance(body.get("expires_at"), str):
        try:
            at = datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
        except ValueError:
            return
        now = datetime.now(timezone.utc)
        if at.tzinfo is not None and at <= now:
            body["expires_at"] = (now + timedelta(days=1)).isoformat()


@schemathesis.hook
def map_body(context, body):
    """Business rules across fields, which a schema cannot state, applied to
    positive cases as a client following the documented rules would."""
    if not isinstance(body, dict):
        return body
    # A body capture is listed once per API.
    bodies = body.get("bodies")
    if isinstance(bodies, list):
        seen, kept = set(), []
        for b in bodies:
            api = b.get("api") if isinstance(b, dict) else None
            if api in seen:
                continue
            seen.add(api)
            kept.append(b)
        body["bodies"] = kept
    # A reason goes with a provider key's status change.
    operation = getattr(context, "operation", None)
    path = getattr(operation, "path", "") or ""
    if path.startswith("/admin/v1/provider-keys/") and body.get("status") is None:
        body.pop("reason", None)
    return body
