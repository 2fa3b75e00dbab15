"""Schemathesis hooks of the contract test (scripts/test-contract.sh).

Each adapts a generated request to what a well-behaved client does and a
schema cannot say: rules that tie one field to another, to the resource's
state or to the clock. They touch only cases generated as valid (a case
meant to be invalid is sent as it was made), and never widen what the
server accepts:
- an `Idempotency-Key` names one logical request: a valid key is made
  unique per call (a key reused for another body is rightly refused 422);
- a key's `expires_at` and a deprecation's `sunset_at` must lie in the
  future: a past one is moved a day ahead of now;
- a body capture is listed once per API;
- a provider key's `reason` goes with a status change;
- live figures span at most 93 days and 1500 points, `from` before `to`:
  an out-of-bounds `to` is put an hour after `from`;
- an amount in a currency is no finer than the currency's minor unit: amounts
  tied to a currency (a plan's price, a ledger write) are sent in whole units;
- a provider lists each model once, and a model's fallback is another model;
- a prompt definition declares each variable once and uses every declared
  one, a placeholder names a declared variable, and a required variable has
  no default; a test run gives a value of the right length for each
  required variable and none for undeclared ones;
- a prompt API's slug is not one the gateway uses itself (`chat`, `models`).

On the consumer API (the gateway prepared by consumer_setup.py), valid
calls name what exists, so that they go all the way to the provider:
- a chat completion asks for `contract-model`, the model the gateway serves;
- a prompt API call goes to `contract` with its one required variable
  `topic` (of at most 200 characters), as `GET /apis/openapi.json` says.
"""

import re
import uuid
from datetime import datetime, timedelta, timezone

import schemathesis
from schemathesis.core.parameters import ParameterLocation


def negative(case, location):
    meta = getattr(case, "_meta", None)
    return meta is not None and meta.is_negative_at(location)


def positive(case):
    return not any(
        negative(case, location)
        for location in (
            ParameterLocation.BODY,
            ParameterLocation.QUERY,
            ParameterLocation.PATH,
            ParameterLocation.HEADER,
        )
    )


def parse_instant(text):
    if not isinstance(text, str):
        return None
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return at if at.tzinfo is not None else None


def whole_units(amount):
    """`"12.345"` → `"12"`; an amount that would become zero becomes 1."""
    if not isinstance(amount, str):
        return amount
    sign = "-" if amount.startswith("-") else ""
    whole = amount.lstrip("-").split(".")[0]
    if not whole.strip("0"):
        whole = "1"
    return sign + whole


@schemathesis.hook
def before_call(context, case, kwargs):
    headers = case.headers or {}
    if "Idempotency-Key" in headers and not negative(case, ParameterLocation.HEADER):
        headers["Idempotency-Key"] = str(uuid.uuid4())
    if not positive(case):
        return
    path = case.operation.path
    body = case.body
    if isinstance(body, dict):
        future_instants(body)
        if path == "/admin/v1/logs/settings":
            captures_once(body)
        elif path.startswith("/admin/v1/provider-keys/") and body.get("status") is None:
            body.pop("reason", None)
        elif path == "/admin/v1/plans" or path.startswith("/admin/v1/plans/"):
            if "price" in body:
                body["price"] = whole_units(body["price"])
        elif path.endswith("/entries"):
            if "amount" in body:
                body["amount"] = whole_units(body["amount"])
        elif path == "/admin/v1/providers" or path.startswith("/admin/v1/providers/"):
            models_once(body)
        if path.startswith("/admin/v1/prompt-apis"):
            if body.get("slug") in ("chat", "models"):
                body["slug"] = body["slug"] + "-api"
            definition = body.get("definition", body)
            if isinstance(definition, dict) and "template" in definition:
                consistent_definition(definition)
                if path == "/admin/v1/prompt-apis/run":
                    run_values(body, definition)
    if path == "/admin/v1/logs/stats" and case.query:
        bounded_range(case.query)
    if path == "/v1/chat/completions" and isinstance(body, dict):
        body["model"] = "contract-model"
    if path == "/apis/{slug}":
        case.path_parameters["slug"] = "contract"
        if isinstance(body, dict):
            variables = body.get("variables")
            topic = variables.get("topic") if isinstance(variables, dict) else None
            body["variables"] = {"topic": topic[:200] if isinstance(topic, str) else "tolls"}


def future_instants(body):
    now = datetime.now(timezone.utc)
    for field in ("expires_at", "sunset_at"):
        at = parse_instant(body.get(field))
        if at is not None and at <= now:
            body[field] = (now + timedelta(days=1)).isoformat()


def integer(value, otherwise):
    # `2.0` is the integer 2 in JSON.
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value == int(value):
        return int(value)
    return otherwise


def captures_once(body):
    bodies = body.get("bodies")
    if isinstance(bodies, list):
        seen, kept = set(), []
        for capture in bodies:
            api = capture.get("api") if isinstance(capture, dict) else None
            if api not in seen:
                seen.add(api)
                kept.append(capture)
        body["bodies"] = kept


def models_once(body):
    models = body.get("models")
    if not isinstance(models, list):
        return
    seen, kept = set(), []
    for model in models:
        if not isinstance(model, dict) or model.get("name") in seen:
            continue
        seen.add(model.get("name"))
        if model.get("fallback") == model.get("name"):
            model.pop("fallback", None)
        kept.append(model)
    body["models"] = kept


PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.S)


def consistent_definition(definition):
    template = definition.get("template")
    variables = definition.get("variables", [])
    if not isinstance(template, str) or not isinstance(variables, list):
        return
    # Braces are the template's syntax: generated text keeps none, then
    # every declared variable is placed once.
    text = template.replace("{", "").replace("}", "")
    seen, kept = set(), []
    for variable in variables:
        if not isinstance(variable, dict) or variable.get("name") in seen:
            continue
        seen.add(variable.get("name"))
        if variable.get("required"):
            variable.pop("default", None)
        default = variable.get("default")
        limit = integer(variable.get("max_length"), None)
        if isinstance(default, str) and limit is not None and len(default) > limit:
            variable["default"] = default[:limit]
        kept.append(variable)
        text += " {{" + str(variable.get("name")) + "}}"
    if not text.strip():
        text = "Answer in one sentence."
    definition["variables"] = kept
    definition["template"] = text[:100_000]


def run_values(body, definition):
    given = body.get("variables", {})
    if not isinstance(given, dict):
        return
    declared = {v.get("name"): v for v in definition.get("variables", []) if isinstance(v, dict)}
    values = {}
    for name, variable in declared.items():
        limit = integer(variable.get("max_length"), 1)
        value = given.get(name)
        if isinstance(value, str):
            values[name] = value[:limit]
        elif variable.get("required"):
            values[name] = "x"
    body["variables"] = values


def bounded_range(query):
    start = parse_instant(query.get("from"))
    end = parse_instant(query.get("to"))
    if start is None:
        return
    if end is None or not timedelta(0) < end - start <= timedelta(hours=1):
        query["to"] = (start + timedelta(hours=1)).isoformat()
