"""Prepares a gateway for the consumer API's contract test
(scripts/test-contract.sh): a provider of the simulated provider (a test
fixture) serving `contract-model`, a consumer subscribed to a free plan with
credits covering chat and the prompt API `contract` (published, one required
variable `topic`), and the consumer's key, printed on stdout.

Usage: consumer_setup.py <gateway URL> <admin token> <simulator URL>
"""

import json
import sys
import urllib.request
import uuid


def admin(base, token, method, path, body=None):
    request = urllib.request.Request(
        base + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Idempotency-Key": str(uuid.uuid4()),
        },
    )
    with urllib.request.urlopen(request) as resp:
        return json.loads(resp.read() or "null")


def main(base, token, sim):
    provider = admin(base, token, "POST", "/admin/v1/providers", {
        "name": "Simulated", "kind": "openai-compatible", "base_url": sim + "/v1",
        "models": [{"name": "contract-model", "input_price": "0.01", "output_price": "0.02"}]})
    admin(base, token, "POST", f"/admin/v1/providers/{provider['id']}/keys",
          {"label": "contract", "secret": "sim-key-contract-0001"})
    api = admin(base, token, "POST", "/admin/v1/prompt-apis", {
        "slug": "contract", "name": "Contract", "definition": {
            "models": ["contract-model"], "template": "Write about {{topic}}.",
            "variables": [{"name": "topic", "required": True, "max_length": 200}]}})
    admin(base, token, "POST", f"/admin/v1/prompt-apis/{api['id']}/lifecycle", {"action": "publish"})
    team = admin(base, token, "POST", "/admin/v1/teams", {"name": "contract"})
    consumer = admin(base, token, "POST", "/admin/v1/consumers", {"team_id": team["id"], "name": "contract"})
    key = admin(base, token, "POST", f"/admin/v1/consumers/{consumer['id']}/keys", {"name": "contract"})
    plan = admin(base, token, "POST", "/admin/v1/plans", {
        "name": "contract", "currency": "USD", "price": "0", "period": "month",
        "included_credits": "1000000", "overage": "block", "apis": ["chat", "contract"]})
    admin(base, token, "POST", "/admin/v1/subscriptions", {"consumer_id": consumer["id"], "plan_id": plan["id"]})
    print(key["secret"])


if __name__ == "__main__":
    main(*sys.argv[1:4])
