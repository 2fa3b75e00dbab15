"""The local Stripe-compatible server: a TEST FIXTURE standing in for Stripe,
which this machine cannot reach. Tests aim the gateway's `stripe` processor at
it, exactly as the simulated provider stands in for model providers.

It is localstripe (PyPI: "a fake but stateful Stripe server"; it speaks
Stripe's API, signs webhooks and serves a Stripe.js stand-in for Elements at
/js.stripe.com/v3/) with the additions below, each one something real Stripe
does that localstripe does not:

- Memory only. localstripe pickles its whole store, test card numbers
  included, to /tmp after every write; here nothing reaches the disk.
- `Idempotency-Key`: a POST repeated with the same key gets the first answer
  again (`Idempotent-Replayed: true`); the same key with other parameters is
  an `idempotency_error`.
- Card errors are `card_error`s with Stripe's codes: the test cards Stripe
  documents for declines fail with their `decline_code` (insufficient_funds,
  lost_card, stolen_card, expired_card, incorrect_cvc, processing_error,
  generic_decline), and a saved card can be made to decline its next charges
  (`POST /_fixture/payment_methods/{id}/decline`, as a bank refuses a card
  it accepted before).
- A SetupIntent for a customer attaches its card to that customer; a
  PaymentIntent's `latest_charge` is an id unless expanded; the balance has
  Stripe's shape (`object`, lists of amounts).
- Events localstripe never sends: `setup_intent.succeeded`,
  `setup_intent.requires_action`, `payment_intent.requires_action`,
  `payment_method.attached` / `detached` / `updated`, `charge.refunded`,
  `charge.dispute.created`.
- `POST /_fixture/disputes` (charge): opens a dispute, and `GET
  /v1/disputes[/{id}]` lists them; `POST /_fixture/payment_methods/{id}/expiry`
  (exp_month, exp_year): the card network updated a saved card.
- Webhooks are signed at delivery (`t` is the delivery time, as Stripe's),
  delivered at once and tried again on a failure (up to 5 times, 0.2 s then
  doubling); `GET /_fixture/deliveries` lists every attempt.
- Every answer of the API carries a `Request-Id` (`req_…`), as Stripe's do.
- `--secret-key KEY` (repeatable): only these secret keys are accepted, any
  other gets Stripe's 401 `Invalid API Key provided` (localstripe accepts
  every `sk_` key).
- `--port 0` picks a free port; it prints `stripe-fixture listening on URL`.

Usage: python stripe_fixture.py [--port N] [--secret-key KEY]…
Webhook endpoints: POST /_config/webhooks/{id} (url, secret[, events[]]).
"""

import argparse
import asyncio
import hashlib
import hmac
import json
import sys
import time

from aiohttp import ClientSession, ClientTimeout, web

from localstripe import resources, server, webhooks
from localstripe.errors import UserError
from localstripe.resources import (Charge, Event, PaymentIntent,
                                   PaymentMethod, Refund, SetupIntent,
                                   StripeObject, schedule_webhook)

# --- memory only ------------------------------------------------------------

resources.Store.dump_to_disk = lambda self: None
resources.Store.try_load_from_disk = lambda self: None

# --- card errors --------------------------------------------------------------

# Stripe's documented test cards that decline when saved or charged:
# number -> (code, decline_code, message).
DECLINING_CARDS = {
    '4000000000000002': ('card_declined', 'generic_decline',
                         'Your card was declined.'),
    '4000000000009995': ('card_declined', 'insufficient_funds',
                         'Your card has insufficient funds.'),
    '4000000000009987': ('card_declined', 'lost_card',
                         'Your card was declined.'),
    '4000000000009979': ('card_declined', 'stolen_card',
                         'Your card was declined.'),
    '4000000000000069': ('expired_card', 'expired_card',
                         'Your card has expired.'),
    '4000000000000127': ('incorrect_cvc', 'incorrect_cvc',
                         "Your card's security code is incorrect."),
    '4000000000000119': ('processing_error', 'processing_error',
                         'An error occurred while processing your card.'),
    '4242424242424241': ('incorrect_number', None,
                         'Your card number is incorrect.'),
}
# Attach fine, decline every charge (Stripe's 4000000000000341).
CHARGE_DECLINING_CARDS = {
    '4000000000000341': ('card_declined', 'generic_decline',
                         'Your card was declined.'),
}


def card_error(code, decline_code, message, **more):
    """A 402 `card_error` as Stripe answers it."""
    error = UserError(402, message, {'code': code, **more})
    error.body['error']['type'] = 'card_error'
    if decline_code:
        error.body['error']['decline_code'] = decline_code
    return error


def charge_decline(pm):
    """How a charge of this payment method fails, or None."""
    forced = getattr(pm, '_fixture_decline', None)
    if forced:
        return forced
    number = getattr(pm, '_card_number', None)
    return DECLINING_CARDS.get(number) or CHARGE_DECLINING_CARDS.get(number)


def attach_decline(pm):
    return DECLINING_CARDS.get(getattr(pm, '_card_number', None))


PaymentMethod._attaching_is_declined = lambda self: bool(attach_decline(self))
PaymentMethod._charging_is_declined = lambda self: bool(charge_decline(self))


def _set_auth_failure(self):
    self.status = 'failed'
    pm = PaymentMethod._api_retrieve(self.payment_method)
    code, decline_code, message = charge_decline(pm) or (
        'card_declined', 'generic_decline', 'Your card was declined.')
    self.failure_code = code
    self.failure_message = message
    self.outcome = {'type': 'issuer_declined', 'reason': decline_code}
    self._decline_code = decline_code


def _raise_failure(self):
    more = {'charge': self.id}
    if self.payment_intent:
        more['payment_intent'] = PaymentIntent._api_retrieve(
            self.payment_intent)._export()
    raise card_error(self.failure_code, getattr(self, '_decline_code', None),
                     self.failure_message, **more)


Charge._set_auth_failure = _set_auth_failure
Charge._raise_failure = _raise_failure

_last_payment_error = PaymentIntent.last_payment_error.fget


def last_payment_error(self):
    error = _last_payment_error(self)
    if error and self.latest_charge is not None:
        error['type'] = 'card_error'
        decline_code = getattr(self.latest_charge, '_decline_code', None)
        if decline_code:
            error['decline_code'] = decline_code
        error['payment_method'] = PaymentMethod._api_retrieve(
            self.latest_charge.payment_method)._export()
    elif error:
        error['type'] = 'card_error'
    return error


PaymentIntent.last_payment_error = property(last_payment_error)

_pi_export = PaymentIntent._export


def pi_export(self, expand=None):
    """`latest_charge` is the charge's id unless expanded, as in Stripe's API
    (localstripe always inlines the charge)."""
    obj = _pi_export(self, expand=expand)
    wanted = any(e.split('.')[0] == 'latest_charge' for e in expand or [])
    if isinstance(obj.get('latest_charge'), dict) and not wanted:
        obj['latest_charge'] = obj['latest_charge']['id']
    return obj


PaymentIntent._export = pi_export

# --- the balance in Stripe's shape (`GET /v1/balance` tests a secret key) -----

_balance_export = resources.Balance._export


def balance_export(self, expand=None):
    obj = _balance_export(self, expand=expand)
    obj['object'] = 'balance'
    for part in ('available', 'pending'):
        if isinstance(obj.get(part), dict):
            obj[part] = [obj[part]]
    return obj


resources.Balance._export = balance_export

# --- setup intents attach their card; the events localstripe does not send ----

_attach_pm = SetupIntent._attach_pm


def attach_pm(self, pm):
    decline = attach_decline(pm)
    if decline:
        self.payment_method = pm.id
        self.status = 'requires_payment_method'
        self.last_setup_error = {'code': decline[0],
                                 'decline_code': decline[1],
                                 'message': decline[2], 'type': 'card_error'}
        schedule_webhook(Event('setup_intent.setup_failed', self))
        raise card_error(*decline, setup_intent=self._export())
    _attach_pm(self, pm)
    if self.status == 'succeeded':
        setup_succeeded(self, pm)
    elif self.status == 'requires_action':
        schedule_webhook(Event('setup_intent.requires_action', self))


def setup_succeeded(intent, pm):
    if intent.customer and pm.customer != intent.customer:
        pm.customer = intent.customer
        schedule_webhook(Event('payment_method.attached', pm))
    schedule_webhook(Event('setup_intent.succeeded', intent))


SetupIntent._attach_pm = attach_pm
SetupIntent.last_setup_error = None

_setup_confirm = SetupIntent._api_confirm.__func__


@classmethod
def setup_confirm(cls, id, **kwargs):
    before = cls._api_retrieve(id).status
    obj = _setup_confirm(cls, id, **kwargs)
    # The second confirmation of a card that needed 3-D Secure.
    if (before == 'requires_action' and obj.status == 'succeeded' and
            obj.payment_method):
        setup_succeeded(obj, PaymentMethod._api_retrieve(obj.payment_method))
    return obj


SetupIntent._api_confirm = setup_confirm

_pi_confirm = PaymentIntent._confirm


def pi_confirm(self, on_failure_now):
    _pi_confirm(self, on_failure_now)
    if self.next_action:
        schedule_webhook(Event('payment_intent.requires_action', self))


PaymentIntent._confirm = pi_confirm

_pm_attach = PaymentMethod._api_attach.__func__
_pm_detach = PaymentMethod._api_detach.__func__


@classmethod
def pm_attach(cls, id, customer=None, **kwargs):
    pm = cls._api_retrieve(id)
    decline = attach_decline(pm)
    if decline:
        raise card_error(*decline)
    obj = _pm_attach(cls, id, customer=customer, **kwargs)
    schedule_webhook(Event('payment_method.attached', obj))
    return obj


@classmethod
def pm_detach(cls, id, **kwargs):
    obj = _pm_detach(cls, id, **kwargs)
    schedule_webhook(Event('payment_method.detached', obj))
    return obj


PaymentMethod._api_attach = pm_attach
PaymentMethod._api_detach = pm_detach
# The routes captured the originals when localstripe registered them.
for i, (method, url, func) in enumerate(resources.extra_apis):
    if url == '/v1/payment_methods/{id}/attach':
        resources.extra_apis[i] = (method, url, PaymentMethod._api_attach)
    elif url == '/v1/payment_methods/{id}/detach':
        resources.extra_apis[i] = (method, url, PaymentMethod._api_detach)
    elif url == '/v1/setup_intents/{id}/confirm':
        resources.extra_apis[i] = (method, url, SetupIntent._api_confirm)

_refund_init = Refund.__init__


def refund_init(self, *args, **kwargs):
    _refund_init(self, *args, **kwargs)
    schedule_webhook(Event('charge.refunded', Charge._api_retrieve(self.charge)))


Refund.__init__ = refund_init

# --- disputes ------------------------------------------------------------------


class Dispute(StripeObject):
    object = 'dispute'
    _id_prefix = 'dp_'

    def __init__(self, charge=None, reason='fraudulent', **kwargs):
        if kwargs:
            raise UserError(400, 'Unexpected ' + ', '.join(kwargs.keys()))
        if not isinstance(charge, str) or not charge.startswith('ch_'):
            raise UserError(400, 'Bad request')
        charge_obj = Charge._api_retrieve(charge)
        if charge_obj.status != 'succeeded':
            raise UserError(400, 'Only a succeeded charge can be disputed.')
        super().__init__()
        self.charge = charge
        self.payment_intent = charge_obj.payment_intent
        self.amount = charge_obj.amount
        self.currency = charge_obj.currency
        self.reason = reason
        self.status = 'needs_response'
        self.metadata = {}


async def open_dispute(request):
    data = await server.get_post_data(request) or {}
    dispute = Dispute(**data)
    schedule_webhook(Event('charge.dispute.created', dispute))
    return server.json_response(dispute._export())


async def force_decline(request):
    pm = PaymentMethod._api_retrieve(request.match_info['id'])
    data = await server.get_post_data(request) or {}
    decline_code = data.get('decline_code', 'generic_decline')
    code = data.get('code', 'card_declined')
    pm._fixture_decline = (code, decline_code, data.get(
        'message', 'Your card was declined.'))
    return server.json_response(pm._export())


async def update_expiry(request):
    pm = PaymentMethod._api_retrieve(request.match_info['id'])
    data = await server.get_post_data(request) or {}
    try:
        month, year = int(data['exp_month']), int(data['exp_year'])
        assert 1 <= month <= 12 and 2000 <= year < 2100
    except (KeyError, ValueError, AssertionError):
        raise UserError(400, 'exp_month and exp_year are required')
    pm.card['exp_month'], pm.card['exp_year'] = month, year
    schedule_webhook(Event('payment_method.updated', pm))
    return server.json_response(pm._export())


# --- webhooks --------------------------------------------------------------------

DELIVERIES = []
ATTEMPTS = 5


async def send_webhook(event):
    payload = json.dumps(event._export(), sort_keys=True).encode('utf-8')
    for endpoint in list(webhooks._webhooks.values()):
        if endpoint.events is not None and event.type not in endpoint.events:
            continue
        pause = 0.2
        for attempt in range(1, ATTEMPTS + 1):
            t = int(time.time())
            signature = hmac.new(endpoint.secret.encode('utf-8'),
                                 b'%d.%s' % (t, payload),
                                 hashlib.sha256).hexdigest()
            headers = {'Content-Type': 'application/json; charset=utf-8',
                       'Stripe-Signature': 't=%d,v1=%s' % (t, signature)}
            status = None
            try:
                async with ClientSession(timeout=ClientTimeout(total=10)) as s:
                    async with s.post(endpoint.url, data=payload,
                                      headers=headers) as r:
                        status = r.status
            except Exception as e:  # noqa: BLE001 - any failure is retried
                status = 'error: %s' % type(e).__name__
            DELIVERIES.append({'event': event.id, 'type': event.type,
                               'url': endpoint.url, 'attempt': attempt,
                               'status': status})
            if isinstance(status, int) and 200 <= status < 300:
                break
            await asyncio.sleep(pause)
            pause *= 2


webhooks._send_webhook = send_webhook


async def deliveries(request):
    return server.json_response({'data': DELIVERIES})


# --- idempotency -------------------------------------------------------------------

REPLIES = {}


@web.middleware
async def idempotency(request, handler):
    key = request.headers.get('Idempotency-Key')
    if request.method != 'POST' or not key:
        return await handler(request)
    body = await request.read()
    fingerprint = hashlib.sha256(request.path.encode() + b'\0' + body).hexdigest()
    scope = (request.headers.get('Authorization', ''), key)
    seen = REPLIES.get(scope)
    if seen is not None:
        if seen[0] != fingerprint:
            error = UserError(400, 'Keys for idempotent requests can only be '
                              'used with the same parameters they were first '
                              'used with.')
            error.body['error']['type'] = 'idempotency_error'
            return error.to_response()
        return web.Response(status=seen[1], body=seen[2],
                            content_type='application/json',
                            headers={'Idempotent-Replayed': 'true'})
    response = await handler(request)
    if isinstance(response, web.Response) and response.status < 500:
        REPLIES[scope] = (fingerprint, response.status, response.body)
    return response


# --- secret keys ----------------------------------------------------------------

ACCEPTED_KEYS = set()


@web.middleware
async def known_keys(request, handler):
    key = server.get_api_key(request)
    if ACCEPTED_KEYS and key is not None and key not in ACCEPTED_KEYS:
        error = UserError(401, 'Invalid API Key provided: %s****%s'
                          % (key[:8], key[-4:]))
        return error.to_response()
    return await handler(request)


# --- request ids -------------------------------------------------------------------

@web.middleware
async def request_id(request, handler):
    """Every answer of Stripe's API names its request (`Request-Id`)."""
    response = await handler(request)
    if request.path.startswith('/v1/'):
        response.headers['Request-Id'] = 'req_' + resources.random_id(14)
    return response


def build_app():
    app = web.Application(middlewares=[request_id, server.error_middleware,
                                       known_keys, idempotency,
                                       server.auth_middleware])
    app.on_response_prepare.append(server.add_cors_headers)
    for method, url, func in resources.extra_apis:
        app.router.add_route(method, url, server.api_extra(func, url))
    for route in server.app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get('path') or info.get('formatter')
        if path and not any(path == url for _, url, _ in resources.extra_apis):
            app.router.add_route(route.method, path, route.handler)
    for method, url, func in (
            ('GET', '/v1/disputes/{id}', server.api_retrieve),
            ('GET', '/v1/disputes', server.api_list_all)):
        app.router.add_route(method, url, func(Dispute, url))
    app.router.add_post('/_fixture/disputes', open_dispute)
    app.router.add_post('/_fixture/payment_methods/{id}/decline', force_decline)
    app.router.add_post('/_fixture/payment_methods/{id}/expiry', update_expiry)
    app.router.add_get('/_fixture/deliveries', deliveries)
    return app


async def main(port):
    runner = web.AppRunner(build_app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, '127.0.0.1', port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]
    print('stripe-fixture listening on http://127.0.0.1:%d' % bound, flush=True)
    await asyncio.Event().wait()


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--port', type=int, default=0)
    parser.add_argument('--secret-key', action='append', default=[])
    args = parser.parse_args()
    ACCEPTED_KEYS.update(args.secret_key)
    try:
        asyncio.run(main(args.port))
    except KeyboardInterrupt:
        sys.exit(0)
