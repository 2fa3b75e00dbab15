"""The official `openai` Python SDK against a real tollgated forwarding to the
simulated provider (a test fixture): a billed call succeeds; a refused call
surfaces as APIStatusError with status 402 and the gateway's message; through
a provider with a key pool, a stream is iterated chunk by chunk and ends with
its usage, an Anthropic provider answers in the OpenAI format (streamed too),
`models.list` shows the models the key may use, and a published prompt API
answers plain HTTP, plainly and streamed."""

import json
import os
import pathlib
import subprocess
import tempfile
import urllib.error
import urllib.request
import uuid

import openai
import pytest

TARGET = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", "/var/tmp/tollgate-target"))
# The simulator's address, once the gateway fixture started it.
SIM_URL = []


def start(args, marker):
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env={**os.environ, "RUST_LOG": "warn"})
    for line in proc.stdout:
        if line.startswith(marker):
            return proc, line.split()[-1]
    raise RuntimeError(f"{args[0]} did not start")


@pytest.fixture(scope="module")
def gateway():
    data = tempfile.mkdtemp(prefix="tollgate-sdk-")
    sim, sim_url = start([str(TARGET / "debug" / "sim-provider")], "sim-provider listening on ")
    SIM_URL[:] = [sim_url]
    config = pathlib.Path(data, "tollgated.toml")
    config.write_text(f'upstream_url = "{sim_url}/v1"\nprice_per_request = "0.02"\n')
    gw, base = start(
        [str(TARGET / "debug" / "tollgated"), "serve", "--listen", "127.0.0.1:0", "--data-dir", f"{data}/gw", "--config", str(config)],
        "tollgated listening on ",
    )
    token = pathlib.Path(data, "gw", "bootstrap-admin-token").read_text().strip()
    yield base, token
    for proc in (gw, sim):
        proc.terminate()
        proc.wait(timeout=10)


def admin(base, token, method, path, body=None):
    request = urllib.request.Request(
        base + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json", "Idempotency-Key": str(uuid.uuid4())},
    )
    with urllib.request.urlopen(request) as resp:
        return json.loads(resp.read() or "null")


def subscribed_key(base, token, name, top_up=None):
    team = admin(base, token, "POST", "/admin/v1/teams", {"name": f"team {name}"})
    consumer = admin(base, token, "POST", "/admin/v1/consumers", {"team_id": team["id"], "name": name})
    key = admin(base, token, "POST", f"/admin/v1/consumers/{consumer['id']}/keys", {"name": "sdk"})
    plan = admin(base, token, "POST", "/admin/v1/plans", {
        "name": f"plan {name}", "currency": "USD", "price": "0", "period": "month",
        "overage": "charge_wallet", "apis": ["chat"]})
    admin(base, token, "POST", "/admin/v1/subscriptions", {"consumer_id": consumer["id"], "plan_id": plan["id"]})
    if top_up:
        admin(base, token, "POST", f"/admin/v1/consumers/{consumer['id']}/wallets/USD/entries", {"kind": "top_up", "amount": top_up})
    return key["secret"]


def test_a_billed_call_succeeds(gateway):
    base, token = gateway
    client = openai.OpenAI(base_url=f"{base}/v1", api_key=subscribed_key(base, token, "paid", top_up="1.00"))
    completion = client.chat.completions.create(model="sim-small", messages=[{"role": "user", "content": "ping pong"}])
    assert completion.choices[0].message.content == "echo: ping pong"
    assert completion.usage.total_tokens == 5


def test_a_402_surfaces_with_status_and_our_message(gateway):
    base, token = gateway
    client = openai.OpenAI(base_url=f"{base}/v1", api_key=subscribed_key(base, token, "broke"), max_retries=0)
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="sim-small", messages=[{"role": "user", "content": "hi"}])
    error = caught.value
    assert error.status_code == 402
    assert "this call needs 0.02" in str(error)
    assert error.body["code"] == "insufficient_funds"
    assert error.response.json()["reason"] == "insufficient-funds"
    assert error.response.json()["required"] == "0.02"


def test_an_unknown_key_is_an_authentication_error(gateway):
    base, _ = gateway
    client = openai.OpenAI(base_url=f"{base}/v1", api_key="tg_unknownkey12_secret", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        client.chat.completions.create(model="sim-small", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 401


def add_provider(base, token):
    """A provider of the simulated provider serving two models, with one key."""
    provider = admin(base, token, "POST", "/admin/v1/providers", {
        "name": "Simulated", "kind": "openai-compatible", "base_url": SIM_URL[0] + "/v1",
        "models": [{"name": name, "input_price": "1000", "output_price": "2000"}
                   for name in ("sim-routed", "sim-routed-large")]})
    admin(base, token, "POST", f"/admin/v1/providers/{provider['id']}/keys", {"label": "sdk", "secret": "sim-key-sdk-0001"})
    claude = admin(base, token, "POST", "/admin/v1/providers", {
        "name": "Simulated Anthropic", "kind": "anthropic", "base_url": SIM_URL[0] + "/v1",
        "models": [{"name": "claude-sdk", "input_price": "1000", "output_price": "2000"}]})
    admin(base, token, "POST", f"/admin/v1/providers/{claude['id']}/keys", {"label": "sdk", "secret": "sim-anth-sdk-0001"})



@pytest.fixture(scope="module")
def routed(gateway):
    base, token = gateway
    add_provider(base, token)
    return base, subscribed_key(base, token, "routed", top_up="5.00")


def test_streaming_chunks_arrive_and_end_with_usage(routed):
    base, key = routed
    client = openai.OpenAI(base_url=f"{base}/v1", api_key=key)
    stream = client.chat.completions.create(
        model="sim-routed", messages=[{"role": "user", "content": "ping pong"}], stream=True,
        stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: ping pong"
    assert chunks[-1].usage.total_tokens == 5
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) >= 3


def test_an_anthropic_provider_round_trips_plain_and_streamed(routed):
    base, key = routed
    client = openai.OpenAI(base_url=f"{base}/v1", api_key=key)
    completion = client.chat.completions.create(
        model="claude-sdk", messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "ping pong"}])
    assert completion.choices[0].message.content == "echo: ping pong"
    assert completion.choices[0].finish_reason == "stop"
    # The system prompt counts as input: 2 words of it and 2 of the message.
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (4, 3)
    chunks = list(client.chat.completions.create(
        model="claude-sdk", messages=[{"role": "user", "content": "ping pong"}], stream=True,
        stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: ping pong"
    assert chunks[-1].usage.total_tokens == 5


def test_models_list_shows_what_the_key_may_use(routed):
    base, key = routed
    client = openai.OpenAI(base_url=f"{base}/v1", api_key=key)
    assert [m.id for m in client.models.list()] == ["claude-sdk", "sim-routed", "sim-routed-large"]
    assert client.models.list().data[1].owned_by == "Simulated"



def call_api(base, key, slug, body):
    """POST /apis/{slug} with plain urllib: the status, headers and body."""
    request = urllib.request.Request(
        f"{base}/apis/{slug}", method="POST", data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request) as resp:
            return resp.status, resp.headers, resp.read().decode()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.headers, refused.read().decode()


def test_a_prompt_api_over_plain_http_plain_and_streamed(gateway, routed):
    base, token = gateway
    api = admin(base, token, "POST", "/admin/v1/prompt-apis", {
        "slug": "shout", "name": "Shout", "definition": {
            "models": ["sim-routed"], "template": "Shout {{word}}",
            "variables": [{"name": "word", "required": True, "max_length": 20}]}})
    admin(base, token, "POST", f"/admin/v1/prompt-apis/{api['id']}/lifecycle", {"action": "publish"})
    team = admin(base, token, "POST", "/admin/v1/teams", {"name": "team shout"})
    consumer = admin(base, token, "POST", "/admin/v1/consumers", {"team_id": team["id"], "name": "shouter"})
    key = admin(base, token, "POST", f"/admin/v1/consumers/{consumer['id']}/keys", {"name": "http"})["secret"]
    plan = admin(base, token, "POST", "/admin/v1/plans", {
        "name": "plan shout", "currency": "USD", "price": "0", "period": "month",
        "overage": "charge_wallet", "apis": ["shout"]})
    admin(base, token, "POST", "/admin/v1/subscriptions", {"consumer_id": consumer["id"], "plan_id": plan["id"]})
    admin(base, token, "POST", f"/admin/v1/consumers/{consumer['id']}/wallets/USD/entries", {"kind": "top_up", "amount": "5.00"})

    status, headers, body = call_api(base, key, "shout", {"variables": {"word": "hey"}})
    assert status == 200, body
    assert json.loads(body)["choices"][0]["message"]["content"] == "echo: Shout hey"
    assert headers["x-tollgate-model"] == "sim-routed"

    status, headers, body = call_api(base, key, "shout", {"variables": {"word": "ho"}, "stream": True})
    assert status == 200, body
    assert headers["content-type"] == "text/event-stream"
    data = [e[len("data: "):] for e in body.split("\n\n") if e.startswith("data: ")]
    assert data[-1] == "[DONE]"
    text = "".join(json.loads(d)["choices"][0]["delta"].get("content") or "" for d in data[:-1] if json.loads(d)["choices"])
    assert text == "echo: Shout ho"

    status, _, body = call_api(base, key, "shout", {"variables": {}})
    assert status == 422, body
    problem = json.loads(body)
    assert problem["reason"] == "invalid-variables"
    assert [e["field"] for e in problem["errors"]] == ["variables.word"]
