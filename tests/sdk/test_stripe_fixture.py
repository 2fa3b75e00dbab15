"""The official `stripe` Python library judges the local Stripe-compatible
server (tests/stripe-fixture, a test fixture): every flow the gateway's
`stripe` processor relies on is driven through the SDK, and every webhook
the fixture sends must pass the SDK's own signature check. An SDK that
accepts the fixture's answers shows the fixture speaks Stripe's dialect.
"""

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
import stripe

FIXTURE = os.path.join(os.path.dirname(__file__), '..', 'stripe-fixture',
                       'stripe_fixture.py')
SECRET_KEY = 'sk_test_fixture_51TollgateTests'
WEBHOOK_SECRET = 'whsec_fixture_tollgate_tests'


class Receiver(BaseHTTPRequestHandler):
    """A webhook endpoint that keeps what it is sent."""
    received = []

    def do_POST(self):  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers['Content-Length']))
        Receiver.received.append((body, self.headers['Stripe-Signature']))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope='module')
def fixture_url():
    proc = subprocess.Popen([sys.executable, FIXTURE, '--port', '0', '--secret-key', SECRET_KEY],
                            stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith('stripe-fixture listening on '), line
        url = line.split()[-1]
        hooks = ThreadingHTTPServer(('127.0.0.1', 0), Receiver)
        threading.Thread(target=hooks.serve_forever, daemon=True).start()
        r = requests.post(url + '/_config/webhooks/tests', data={
            'url': 'http://127.0.0.1:%d/webhooks/stripe' % hooks.server_port,
            'secret': WEBHOOK_SECRET})
        assert r.status_code == 200, r.text
        stripe.api_key = SECRET_KEY
        stripe.api_base = url
        stripe.max_network_retries = 0
        started = time.time()
        yield url
        hooks.shutdown()
        # Memory only: localstripe alone pickles its store, card numbers
        # included, to this file after every write.
        pickle = '/tmp/localstripe.pickle'
        assert not os.path.exists(pickle) or os.path.getmtime(pickle) < started
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def events_of(kind, about, bound=10.0):
    """The events of type `kind` about object `about`, each checked by the
    SDK's signature verification, once at least one arrived (polled)."""
    deadline = time.monotonic() + bound
    while True:
        found = []
        for body, header in list(Receiver.received):
            event = stripe.Webhook.construct_event(body, header, WEBHOOK_SECRET)
            if event.type == kind and about in json.dumps(event.data.object.to_dict()):
                found.append(event)
        if found or time.monotonic() > deadline:
            assert found, f'no {kind} event about {about} within {bound} s'
            return found
        time.sleep(0.05)


def saved_card(number='4242424242424242'):
    customer = stripe.Customer.create(email='ada@example.com')
    intent = stripe.SetupIntent.create(customer=customer.id, usage='off_session')
    intent = stripe.SetupIntent.confirm(intent.id, payment_method_data={
        'type': 'card',
        'card': {'number': number, 'exp_month': 12, 'exp_year': 2099,
                 'cvc': '123'}})
    return customer, intent


def test_a_setup_intent_saves_a_card_on_its_customer_and_says_so(fixture_url):
    customer, intent = saved_card()
    assert intent.status == 'succeeded'
    method = stripe.PaymentMethod.retrieve(intent.payment_method)
    assert method.customer == customer.id
    assert (method.card.last4, method.card.exp_month, method.card.exp_year) == ('4242', 12, 2099)
    assert 'number' not in method.card and 'cvc' not in method.card
    succeeded = events_of('setup_intent.succeeded', intent.id)
    assert succeeded[0].data.object.payment_method == method.id
    attached = events_of('payment_method.attached', method.id)
    assert attached[0].data.object.customer == customer.id


@pytest.mark.parametrize('number, code, decline_code', [
    ('4000000000000002', 'card_declined', 'generic_decline'),
    ('4000000000009995', 'card_declined', 'insufficient_funds'),
    ('4000000000009987', 'card_declined', 'lost_card'),
    ('4000000000009979', 'card_declined', 'stolen_card'),
    ('4000000000000069', 'expired_card', 'expired_card'),
    ('4000000000000127', 'incorrect_cvc', 'incorrect_cvc'),
    ('4000000000000119', 'processing_error', 'processing_error'),
])
def test_a_declined_card_is_a_card_error_with_its_decline_code(fixture_url, number, code, decline_code):
    with pytest.raises(stripe.CardError) as raised:
        saved_card(number)
    assert raised.value.http_status == 402
    assert raised.value.code == code
    assert raised.value.error.decline_code == decline_code
    assert raised.value.error.type == 'card_error'


def test_an_off_session_payment_succeeds_then_declines_with_the_banks_code(fixture_url):
    customer, intent = saved_card()
    paid = stripe.PaymentIntent.create(
        amount=1500, currency='usd', customer=customer.id,
        payment_method=intent.payment_method, confirm=True, off_session=True,
        idempotency_key='renewal-1')
    assert paid.status == 'succeeded'
    assert paid.latest_charge.startswith('ch_')
    events_of('payment_intent.succeeded', paid.id)

    r = requests.post(f'{fixture_url}/_fixture/payment_methods/{intent.payment_method}/decline',
                      data={'decline_code': 'insufficient_funds'},
                      auth=(SECRET_KEY, ''))
    assert r.status_code == 200, r.text
    with pytest.raises(stripe.CardError) as raised:
        stripe.PaymentIntent.create(
            amount=1500, currency='usd', customer=customer.id,
            payment_method=intent.payment_method, confirm=True,
            off_session=True, idempotency_key='renewal-2')
    assert raised.value.error.decline_code == 'insufficient_funds'
    failed = raised.value.error.payment_intent
    assert failed.status == 'requires_payment_method'
    assert failed.last_payment_error.decline_code == 'insufficient_funds'
    events_of('payment_intent.payment_failed', failed.id)


def test_a_card_that_needs_the_customer_asks_for_an_action(fixture_url):
    customer, intent = saved_card('4000002760003184')
    assert intent.status == 'requires_action'
    events_of('setup_intent.requires_action', intent.id)
    # The customer passes 3-D Secure on the card page: confirmed again.
    intent = stripe.SetupIntent.confirm(intent.id)
    assert intent.status == 'succeeded'
    events_of('setup_intent.succeeded', intent.id)
    pending = stripe.PaymentIntent.create(
        amount=900, currency='eur', customer=customer.id,
        payment_method=intent.payment_method, confirm=True, off_session=True)
    assert pending.status == 'requires_action'
    assert pending.next_action is not None
    events_of('payment_intent.requires_action', pending.id)


def test_an_idempotency_key_replays_the_first_answer_and_refuses_other_parameters(fixture_url):
    first = stripe.Customer.create(email='once@example.com', idempotency_key='customer-once')
    again = stripe.Customer.create(email='once@example.com', idempotency_key='customer-once')
    assert again.id == first.id
    assert again.last_response.headers.get('Idempotent-Replayed') == 'true'
    with pytest.raises(stripe.IdempotencyError):
        stripe.Customer.create(email='other@example.com', idempotency_key='customer-once')


def test_refunds_disputes_and_a_new_expiry_are_events(fixture_url):
    customer, intent = saved_card()
    paid = stripe.PaymentIntent.create(
        amount=2500, currency='usd', customer=customer.id,
        payment_method=intent.payment_method, confirm=True, off_session=True)
    refund = stripe.Refund.create(payment_intent=paid.id, amount=1000)
    assert refund.status == 'succeeded' and refund.amount == 1000
    refunded = events_of('charge.refunded', paid.latest_charge)
    assert refunded[0].data.object.amount_refunded == 1000

    other = stripe.PaymentIntent.create(
        amount=700, currency='usd', customer=customer.id,
        payment_method=intent.payment_method, confirm=True, off_session=True)
    r = requests.post(f'{fixture_url}/_fixture/disputes', data={'charge': other.latest_charge},
                      auth=(SECRET_KEY, ''))
    assert r.status_code == 200, r.text
    dispute = events_of('charge.dispute.created', other.latest_charge)[0].data.object
    assert (dispute.amount, dispute.currency, dispute.status) == (700, 'usd', 'needs_response')
    assert stripe.Dispute.retrieve(dispute.id).charge == other.latest_charge
    assert dispute.id in [d.id for d in stripe.Dispute.list().data]

    r = requests.post(f'{fixture_url}/_fixture/payment_methods/{intent.payment_method}/expiry',
                      data={'exp_month': 3, 'exp_year': 2031}, auth=(SECRET_KEY, ''))
    assert r.status_code == 200, r.text
    updated = events_of('payment_method.updated', intent.payment_method)[0].data.object
    assert (updated.card.exp_month, updated.card.exp_year) == (3, 2031)

    method = stripe.PaymentMethod.detach(intent.payment_method)
    assert method.customer is None
    events_of('payment_method.detached', intent.payment_method)


def test_the_fixtures_signatures_are_fresh_and_the_sdk_refuses_them_tampered(fixture_url):
    saved_card()
    body, header = Receiver.received[-1]
    stripe.Webhook.construct_event(body, header, WEBHOOK_SECRET)
    # Signed at delivery, as Stripe does: within the SDK's 5-minute tolerance.
    t = int(header.split(',')[0].removeprefix('t='))
    assert abs(time.time() - t) < 60
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(body.replace(b'"livemode"', b'"livemodE"'), header, WEBHOOK_SECRET)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(body, header, 'whsec_another')


def test_a_secret_key_it_was_not_given_is_refused_as_stripe_refuses_it(fixture_url):
    balance = stripe.Balance.retrieve()
    assert balance.object == 'balance' and balance.available[0].currency
    assert balance.last_response.request_id.startswith('req_')
    with pytest.raises(stripe.AuthenticationError) as raised:
        stripe.Balance.retrieve(api_key='sk_test_not_the_fixtures_key_1234')
    assert raised.value.http_status == 401
    assert 'sk_test_****1234' in raised.value.user_message
    assert 'not_the_fixtures_key' not in str(raised.value)
