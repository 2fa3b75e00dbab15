"""`tollgate doctor classify FILE` on the real desktop binary: every case of
the corpus (tests/doctor/corpus, expectations in tests/doctor/expected.json)
prints one JSON object with the documented keys and values; bad input exits 2
with the reason."""

import json
import subprocess

from conftest import CONSOLE_BIN, REPO

CORPUS = REPO / "tests" / "doctor"
CAUSES = {
    "insufficient-funds", "budget-exceeded", "quota-exceeded", "rate-limited",
    "subscription-expired", "subscription-past-due", "subscription-pending-approval",
    "not-subscribed", "payment-method-invalid", "payment-required",
    "invalid-credentials", "unknown",
}
ORIGINS = {"gateway", "provider", "payment-processor", "unknown"}


def run(*args, stdin=None):
    return subprocess.run([CONSOLE_BIN, "doctor", "classify", *args], input=stdin,
                          capture_output=True, text=True, timeout=30)


def test_classify_prints_one_json_object_per_corpus_case():
    expected = json.loads((CORPUS / "expected.json").read_text())
    files = sorted((CORPUS / "corpus").glob("*.http"))
    assert len(files) == len(expected)
    for path in files:
        done = run(str(path))
        assert done.returncode == 0, (path.name, done.stderr)
        lines = done.stdout.strip().splitlines()
        assert len(lines) == 1, (path.name, done.stdout)
        answer = json.loads(lines[0])
        assert set(answer) == {"cause", "origin", "system", "confidence", "evidence", "fix"}
        assert answer["cause"] in CAUSES and answer["origin"] in ORIGINS
        assert 0 <= answer["confidence"] <= 1
        assert all(set(e) == {"field", "value"} for e in answer["evidence"])
        want = expected[path.name]
        assert (answer["cause"], answer["origin"], answer["system"]) == (
            want["cause"], want["origin"], want["system"]), path.name


def test_classify_reads_standard_input():
    text = (CORPUS / "corpus" / "deepseek-402-insufficient-balance.http").read_text()
    done = run("-", stdin=text)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["system"] == "deepseek"


def test_bad_input_exits_2_with_the_reason(tmp_path):
    body_only = tmp_path / "body.json"
    body_only.write_text('{"error": "Quota exceeded"}')
    done = run(str(body_only))
    assert done.returncode == 2
    assert "status line" in done.stderr and done.stdout == ""
    done = run(str(tmp_path / "missing.http"))
    assert done.returncode == 2 and "cannot read" in done.stderr
    binary = tmp_path / "binary.http"
    binary.write_bytes(b"HTTP/1.1 402 X\r\n\r\n\xff\xfe")
    done = run(str(binary))
    assert done.returncode == 2 and "UTF-8" in done.stderr
