//! The 402 doctor against real gateways: each Tollgate cause reproduced (a
//! consumer's real call refused), diagnosed from each starting point — the
//! consumer, the key prefix, the request id in the log cache, the pasted
//! response —, fixed in one step through the console, re-checked, and the
//! consumer's next call served. Calls go to the simulated provider (a test
//! fixture); everything else is real.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::admin::{admin, provider_with_key};
use common::{Gateway, console_with};
use serde_json::{Value, json};
use tollgate_console::Console;
use tollgate_console::doctor::{
    Diagnosis, DoctorCause, DoctorStart, EvidenceSource, FixAction, Origin,
};

struct World {
    gw: Gateway,
    console: Arc<Console>,
    _data: tempfile::TempDir,
    id: String,
    team: String,
}

struct Consumer {
    id: String,
    key: String,
    prefix: String,
}

/// One consumer call as it was answered.
struct Answer {
    status: u16,
    request_id: String,
    /// The raw response: status line, headers, blank line, body.
    raw: String,
}

impl World {
    async fn new(name: &str) -> World {
        World::on(Gateway::start(name)).await
    }

    async fn on(gw: Gateway) -> World {
        let sim = tollgate_sim_provider::spawn("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let sim = format!("http://{sim}");
        provider_with_key(
            &gw,
            &sim,
            "Sim",
            "USD",
            json!([{"name": "sim-small", "input_price": "1000", "output_price": "2000"}]),
            "sim-key-good-0042",
        )
        .await;
        let team = admin(&gw, "POST", "/admin/v1/teams", json!({"name": "Acme"})).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let (console, data, id) = console_with(&gw, "Doctor").await;
        World {
            gw,
            console,
            _data: data,
            id,
            team,
        }
    }

    async fn plan(&self, body: Value) -> String {
        let mut plan =
            json!({"currency": "USD", "price": "0", "period": "month", "apis": ["chat"]});
        plan.as_object_mut()
            .unwrap()
            .extend(body.as_object().unwrap().clone());
        admin(&self.gw, "POST", "/admin/v1/plans", plan).await["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn consumer(&self, name: &str) -> Consumer {
        let c = admin(
            &self.gw,
            "POST",
            "/admin/v1/consumers",
            json!({"team_id": self.team, "name": name}),
        )
        .await;
        let id = c["id"].as_str().unwrap().to_owned();
        let key = admin(
            &self.gw,
            "POST",
            &format!("/admin/v1/consumers/{id}/keys"),
            json!({"name": "k"}),
        )
        .await;
        Consumer {
            id,
            key: key["secret"].as_str().unwrap().to_owned(),
            prefix: key["key"]["display_prefix"].as_str().unwrap().to_owned(),
        }
    }

    async fn subscribe(&self, c: &Consumer, plan: &str) -> Value {
        admin(
            &self.gw,
            "POST",
            "/admin/v1/subscriptions",
            json!({"consumer_id": c.id, "plan_id": plan}),
        )
        .await
    }

    async fn card(&self, c: &Consumer, number: &str, default: bool) -> Value {
        admin(
            &self.gw,
            "POST",
            &format!("/admin/v1/consumers/{}/payment-methods", c.id),
            json!({"number": number, "exp_month": 12, "exp_year": 2031, "cvc": "123", "make_default": default}),
        )
        .await
    }

    async fn top_up(&self, c: &Consumer, currency: &str, amount: &str) {
        admin(
            &self.gw,
            "POST",
            &format!("/admin/v1/consumers/{}/wallets/{currency}/entries", c.id),
            json!({"kind": "top_up", "amount": amount}),
        )
        .await;
    }

    /// The consumer's chat call, as the raw HTTP answer an admin would paste.
    async fn call(&self, c: &Consumer) -> Answer {
        self.call_model(c, "sim-small").await
    }

    async fn call_model(&self, c: &Consumer, model: &str) -> Answer {
        let resp = reqwest::Client::new()
            .post(format!("{}/v1/chat/completions", self.gw.base))
            .bearer_auth(&c.key)
            .json(&json!({"model": model, "max_tokens": 16,
                          "messages": [{"role": "user", "content": "hello"}]}))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let mut raw = format!("HTTP/1.1 {}\r\n", resp.status());
        for (name, value) in resp.headers() {
            raw.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap_or("")));
        }
        let request_id = resp
            .headers()
            .get("x-request-id")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        raw.push_str("\r\n");
        raw.push_str(&resp.text().await.unwrap());
        Answer {
            status,
            request_id,
            raw,
        }
    }

    /// Syncs the cache until it holds the request (the gateway writes its
    /// log every 50 ms).
    async fn sync_until(&self, request_id: &str) {
        for _ in 0..100 {
            self.console.sync_logs(&self.id, |_| {}).await.unwrap();
            let found = self
                .console
                .diagnose(
                    &self.id,
                    DoctorStart::RequestId {
                        request_id: request_id.to_owned(),
                    },
                )
                .await;
            if found.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{request_id} never reached the cache");
    }

    async fn diagnose(&self, start: DoctorStart) -> Diagnosis {
        self.console.diagnose(&self.id, start).await.unwrap()
    }

    /// The refusal diagnosed from all four starting points: each must name
    /// `cause` first, live. Answers the consumer-started diagnosis.
    async fn diagnose_everywhere(
        &self,
        c: &Consumer,
        refused: &Answer,
        cause: DoctorCause,
    ) -> Diagnosis {
        self.sync_until(&refused.request_id).await;
        let starts = [
            DoctorStart::Consumer {
                consumer_id: c.id.clone(),
            },
            DoctorStart::KeyPrefix {
                prefix: c.prefix.clone(),
            },
            DoctorStart::RequestId {
                request_id: refused.request_id.clone(),
            },
            DoctorStart::Response {
                text: refused.raw.clone(),
            },
        ];
        let mut first = None;
        for start in starts {
            let d = self.diagnose(start.clone()).await;
            assert_eq!(d.source, EvidenceSource::Live, "{start:?}");
            assert_eq!(d.cause(), cause, "{start:?} found {:#?}", d.findings);
            assert_eq!(d.consumer_id.as_deref(), Some(c.id.as_str()), "{start:?}");
            let top = &d.findings[0];
            assert!(!top.evidence.is_empty() && !top.fix.is_empty(), "{top:#?}");
            if matches!(
                start,
                DoctorStart::RequestId { .. } | DoctorStart::Response { .. }
            ) {
                assert!(d.refusal.is_some(), "{start:?}: the refusal is classified");
            }
            first.get_or_insert(d);
        }
        first.unwrap()
    }

    /// Applies the top finding's one-step fix (confirmed) and checks the
    /// re-check no longer finds the cause.
    async fn fix(&self, c: &Consumer, d: &Diagnosis) -> FixAction {
        let action = d.findings[0]
            .action
            .clone()
            .unwrap_or_else(|| panic!("no fix for {:#?}", d.findings[0]));
        assert!(action.applies(), "{action:?}");
        let start = DoctorStart::Consumer {
            consumer_id: c.id.clone(),
        };
        // Never without the admin's confirmation.
        let refused = self
            .console
            .apply_fix(&self.id, start.clone(), action.clone(), false)
            .await
            .unwrap_err();
        assert_eq!(refused.code(), "validation");
        let outcome = self
            .console
            .apply_fix(&self.id, start, action.clone(), true)
            .await
            .unwrap();
        assert!(outcome.resolved, "{:#?}", outcome.recheck.findings);
        assert_eq!(outcome.before, d.cause());
        assert_ne!(outcome.recheck.cause(), d.cause());
        let history = self.console.list_doctor_fixes(&self.id).unwrap();
        assert_eq!(history[0].outcome, "resolved");
        assert_eq!(history[0].cause_before, d.cause().as_str());
        action
    }

    /// The gateway audited the fix's write (about `target`, or anything
    /// when it is empty).
    async fn audited(&self, target: &str, action: &str) {
        let audit = admin(
            &self.gw,
            "GET",
            &format!("/admin/v1/audit?limit=20&targets={target}"),
            Value::Null,
        )
        .await;
        assert!(
            audit["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["action"] == action),
            "{action} on {target}: {audit}"
        );
    }
}

fn evidence_says(d: &Diagnosis, words: &str) -> bool {
    d.findings[0]
        .evidence
        .iter()
        .any(|e| e.what.contains(words))
}

#[tokio::test(flavor = "multi_thread")]
async fn insufficient_funds_is_topped_up() {
    let w = World::new("doctor-funds").await;
    let plan = w
        .plan(json!({"name": "Metered", "overage": "charge_wallet"}))
        .await;
    let c = w.consumer("Broke").await;
    w.subscribe(&c, &plan).await;
    // Some spending first, so the burn rate has something to say.
    w.top_up(&c, "USD", "0.10").await;
    let refused = loop {
        let a = w.call(&c).await;
        if a.status == 402 {
            break a;
        }
        assert_eq!(a.status, 200, "{}", a.raw);
    };
    let d = w
        .diagnose_everywhere(&c, &refused, DoctorCause::InsufficientFunds)
        .await;
    assert!(evidence_says(&d, "burn rate"), "{:#?}", d.findings[0]);
    assert!(evidence_says(&d, "Last top-up"), "{:#?}", d.findings[0]);
    let FixAction::TopUpWallet {
        currency, amount, ..
    } = w.fix(&c, &d).await
    else {
        panic!("a top-up was expected");
    };
    assert_eq!((currency.as_str(), amount.as_str()), ("USD", "10.00"));
    w.audited("", "wallet.top_up").await;
    assert_eq!(w.call(&c).await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wallet_in_another_currency_is_a_currency_mismatch() {
    let w = World::new("doctor-currency").await;
    let plan = w
        .plan(json!({"name": "Dollars", "overage": "charge_wallet"}))
        .await;
    let c = w.consumer("Euro").await;
    w.subscribe(&c, &plan).await;
    w.top_up(&c, "EUR", "50").await;
    let refused = w.call(&c).await;
    assert_eq!(refused.status, 402, "{}", refused.raw);
    let d = w
        .diagnose_everywhere(&c, &refused, DoctorCause::CurrencyMismatch)
        .await;
    assert!(evidence_says(&d, "EUR wallet"), "{:#?}", d.findings[0]);
    w.fix(&c, &d).await;
    assert_eq!(w.call(&c).await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plan_granting_nothing_is_a_misconfiguration() {
    let w = World::new("doctor-zero").await;
    let plan = w
        .plan(json!({"name": "Empty", "overage": "block", "included_credits": "0"}))
        .await;
    let c = w.consumer("Starved").await;
    w.subscribe(&c, &plan).await;
    let refused = w.call(&c).await;
    assert_eq!(refused.status, 402, "{}", refused.raw);
    let d = w
        .diagnose_everywhere(&c, &refused, DoctorCause::PlanGrantsNoCredits)
        .await;
    // The setting is on the plan: the doctor opens it rather than guessing.
    assert_eq!(
        d.findings[0].action,
        Some(FixAction::OpenSetting {
            screen: tollgate_console::doctor::SettingScreen::Plans,
            target: Some(plan.clone()),
        })
    );
    // The admin gives the plan credits; the doctor finds nothing left.
    admin(
        &w.gw,
        "PATCH",
        &format!("/admin/v1/plans/{plan}"),
        json!({"included_credits": "5"}),
    )
    .await;
    let again = w
        .diagnose(DoctorStart::Consumer {
            consumer_id: c.id.clone(),
        })
        .await;
    assert_eq!(
        again.cause(),
        DoctorCause::NoProblemFound,
        "{:#?}",
        again.findings
    );
    assert_eq!(w.call(&c).await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_subscription_without_a_card_then_past_due_is_charged_again() {
    let w = World::new("doctor-card").await;
    let plan = w
        .plan(json!({"name": "Pro", "price": "9.00", "overage": "block", "included_credits": "5"}))
        .await;
    let c = w.consumer("Cardless").await;
    let sub = w.subscribe(&c, &plan).await;
    assert_eq!(sub["status"], "past_due", "{sub}");
    let refused = w.call(&c).await;
    assert_eq!(refused.status, 402, "{}", refused.raw);
    let d = w
        .diagnose_everywhere(&c, &refused, DoctorCause::PaymentMethodInvalid)
        .await;
    assert!(evidence_says(&d, "No card on file"), "{:#?}", d.findings[0]);
    // No card to switch to: the consumer must add one.
    assert!(!d.findings[0].action.as_ref().unwrap().applies());

    // The consumer adds a card; now an ordinary retry pays.
    w.card(&c, "4242424242424242", true).await;
    let refused = w.call(&c).await;
    let d = w
        .diagnose_everywhere(&c, &refused, DoctorCause::SubscriptionPastDue)
        .await;
    let sub_id = sub["id"].as_str().unwrap();
    assert_eq!(
        w.fix(&c, &d).await,
        FixAction::RetryCharge {
            subscription_id: sub_id.to_owned()
        }
    );
    w.audited(sub_id, "subscription.renew").await;
    assert_eq!(w.call(&c).await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_declined_renewal_is_paid_with_the_other_card() {
    let w = World::new("doctor-decline").await;
    let plan = w
        .plan(json!({"name": "Pro", "price": "9.00", "overage": "block", "included_credits": "5"}))
        .await;
    let c = w.consumer("Poor").await;
    w.card(&c, "4000000000009995", true).await;
    let sub = w.subscribe(&c, &plan).await;
    assert_eq!(sub["status"], "past_due", "{sub}");
    let good = w.card(&c, "5555555555554444", false).await;
    let refused = w.call(&c).await;
    assert_eq!(refused.status, 402, "{}", refused.raw);
    let d = w
        .diagnose_everywhere(&c, &refused, DoctorCause::SubscriptionPastDue)
        .await;
    assert!(
        evidence_says(&d, "insufficient_funds"),
        "{:#?}",
        d.findings[0]
    );
    let action = w.fix(&c, &d).await;
    assert_eq!(
        action,
        FixAction::SetDefaultPaymentMethod {
            payment_method_id: good["id"].as_str().unwrap().to_owned(),
            then_retry_subscription_id: Some(sub["id"].as_str().unwrap().to_owned()),
        }
    );
    w.audited(good["id"].as_str().unwrap(), "payment_method.set_default")
        .await;
    assert_eq!(w.call(&c).await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn pending_approval_is_approved_and_suspended_is_resumed() {
    let w = World::new("doctor-approval").await;
    let plan = w
        .plan(json!({"name": "Gated", "overage": "block", "included_credits": "5", "approval_required": true}))
        .await;
    let c = w.consumer("Waiting").await;
    let sub = w.subscribe(&c, &plan).await;
    let sub_id = sub["id"].as_str().unwrap().to_owned();
    let refused = w.call(&c).await;
    assert_eq!(refused.status, 403, "{}", refused.raw);
    let d = w
        .diagnose_everywhere(&c, &refused, DoctorCause::SubscriptionPendingApproval)
        .await;
    w.fix(&c, &d).await;
    w.audited(&sub_id, "subscription.approve").await;
    assert_eq!(w.call(&c).await.status, 200);

    admin(
        &w.gw,
        "POST",
        &format!("/admin/v1/subscriptions/{sub_id}/suspend"),
        json!({"reason": "chargeback under review"}),
    )
    .await;
    let refused = w.call(&c).await;
    assert_eq!(refused.status, 403, "{}", refused.raw);
    let d = w
        .diagnose_everywhere(&c, &refused, DoctorCause::SubscriptionSuspended)
        .await;
    assert!(
        evidence_says(&d, "chargeback under review"),
        "{:#?}",
        d.findings[0]
    );
    w.fix(&c, &d).await;
    w.audited(&sub_id, "subscription.resume").await;
    assert_eq!(w.call(&c).await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_subscription_is_renewed() {
    // No grace, renewals every second: a failed first charge expires at once.
    let gw = Gateway::start_configured(
        "doctor-expired",
        "grace_days = 0\nrenewal_interval_secs = 1\n",
    );
    let w = World::on(gw).await;
    let plan = w
        .plan(json!({"name": "Pro", "price": "9.00", "overage": "block", "included_credits": "5"}))
        .await;
    let c = w.consumer("Lapsed").await;
    w.card(&c, "4000000000009995", true).await;
    let sub = w.subscribe(&c, &plan).await;
    let sub_id = sub["id"].as_str().unwrap().to_owned();
    // The renewal job runs every second; allow it 30 s, then insist.
    let mut status = Value::Null;
    for _ in 0..300 {
        status = admin(
            &w.gw,
            "GET",
            &format!("/admin/v1/subscriptions/{sub_id}"),
            Value::Null,
        )
        .await["status"]
            .clone();
        if status == "expired" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, "expired", "the renewal job never expired {sub_id}");
    // The consumer has since added a card that pays.
    w.card(&c, "4242424242424242", true).await;
    let refused = w.call(&c).await;
    assert_eq!(refused.status, 402, "{}", refused.raw);
    let d = w
        .diagnose_everywhere(&c, &refused, DoctorCause::SubscriptionExpired)
        .await;
    assert_eq!(
        w.fix(&c, &d).await,
        FixAction::RenewSubscription {
            subscription_id: sub_id.clone()
        }
    );
    assert_eq!(w.call(&c).await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rate_limit_is_not_a_payment_problem() {
    let w = World::new("doctor-rate").await;
    let plan = w
        .plan(
            json!({"name": "Slow", "overage": "block", "included_credits": "5",
                     "rate_limits": {"requests_per_minute": 1}}),
        )
        .await;
    let c = w.consumer("Hasty").await;
    w.subscribe(&c, &plan).await;
    assert_eq!(w.call(&c).await.status, 200);
    let refused = w.call(&c).await;
    assert_eq!(refused.status, 429, "{}", refused.raw);
    w.sync_until(&refused.request_id).await;
    for start in [
        DoctorStart::RequestId {
            request_id: refused.request_id.clone(),
        },
        DoctorStart::Response {
            text: refused.raw.clone(),
        },
    ] {
        let d = w.diagnose(start).await;
        assert_eq!(d.cause(), DoctorCause::RateLimited, "{:#?}", d.findings);
        assert!(d.findings[0].title.contains("not a payment problem"));
        assert!(evidence_says(&d, "1 requests"), "{:#?}", d.findings[0]);
    }
    // From the consumer alone nothing is owed.
    let d = w
        .diagnose(DoctorStart::Consumer {
            consumer_id: c.id.clone(),
        })
        .await;
    assert_eq!(d.cause(), DoctorCause::NoProblemFound, "{:#?}", d.findings);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_exhausted_provider_key_is_put_back() {
    let w = World::new("doctor-provider").await;
    // A second provider whose only key the provider refuses as spent.
    let sim = tollgate_sim_provider::spawn("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let key = provider_with_key(
        &w.gw,
        &format!("http://{sim}"),
        "Spent",
        "USD",
        json!([{"name": "sim-large", "input_price": "1", "output_price": "2"}]),
        "sim-key-fail-402",
    )
    .await;
    let plan = w
        .plan(json!({"name": "Any", "overage": "block", "included_credits": "5"}))
        .await;
    let c = w.consumer("Large").await;
    w.subscribe(&c, &plan).await;
    let refused = w.call_model(&c, "sim-large").await;
    assert_eq!(refused.status, 503, "{}", refused.raw);
    let d = w
        .diagnose_everywhere(&c, &refused, DoctorCause::ProviderKeyExhausted)
        .await;
    assert_eq!(d.findings[0].origin, Origin::Provider);
    let FixAction::ReEnableProviderKey { key_id, .. } = w.fix(&c, &d).await else {
        panic!("a re-enable was expected");
    };
    assert_eq!(key_id, key["id"].as_str().unwrap());
    let keys = admin(
        &w.gw,
        "GET",
        &format!(
            "/admin/v1/providers/{}/keys",
            key["provider_id"].as_str().unwrap()
        ),
        Value::Null,
    )
    .await;
    assert_eq!(keys[0]["status"], "active");
}

#[tokio::test(flavor = "multi_thread")]
async fn broken_payment_settings_then_a_retry() {
    let w = World::new("doctor-settings").await;
    let plan = w
        .plan(json!({"name": "Pro", "price": "9.00", "overage": "block", "included_credits": "5"}))
        .await;
    let c = w.consumer("Stranded").await;
    w.card(&c, "4242424242424242", true).await;
    // The processor is removed after the card was added.
    admin(
        &w.gw,
        "PUT",
        "/admin/v1/billing/settings",
        json!({"processor": "none"}),
    )
    .await;
    let sub = w.subscribe(&c, &plan).await;
    assert_eq!(sub["status"], "past_due", "{sub}");
    let refused = w.call(&c).await;
    assert_eq!(refused.status, 503, "{}", refused.raw);
    let d = w
        .diagnose_everywhere(&c, &refused, DoctorCause::PaymentSettingsBroken)
        .await;
    assert_eq!(
        d.findings[0].action,
        Some(FixAction::OpenSetting {
            screen: tollgate_console::doctor::SettingScreen::Billing,
            target: None
        })
    );
    // The admin sets a processor; the renewal can now be charged again.
    admin(
        &w.gw,
        "PUT",
        "/admin/v1/billing/settings",
        json!({"processor": "test"}),
    )
    .await;
    let d = w
        .diagnose(DoctorStart::Consumer {
            consumer_id: c.id.clone(),
        })
        .await;
    assert_eq!(
        d.cause(),
        DoctorCause::SubscriptionPastDue,
        "{:#?}",
        d.findings
    );
    w.fix(&c, &d).await;
    assert_eq!(w.call(&c).await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_api_no_plan_covers_and_an_unpriced_model() {
    let w = World::new("doctor-coverage").await;
    let plan = w
        .plan(json!({"name": "Elsewhere", "overage": "block", "included_credits": "5", "apis": ["summarize"]}))
        .await;
    let c = w.consumer("Lost").await;
    w.subscribe(&c, &plan).await;
    admin(
        &w.gw,
        "POST",
        "/admin/v1/providers",
        json!({"name": "Free", "kind": "openai-compatible", "base_url": "http://127.0.0.1:9/v1",
               "currency": "USD", "models": [{"name": "free-model", "input_price": "0", "output_price": "0"}]}),
    )
    .await;
    let refused = w.call(&c).await;
    assert_eq!(refused.status, 403, "{}", refused.raw);
    let d = w
        .diagnose_everywhere(&c, &refused, DoctorCause::NotSubscribed)
        .await;
    let causes: Vec<DoctorCause> = d.findings.iter().map(|f| f.cause).collect();
    assert!(causes.contains(&DoctorCause::ApiNotCovered), "{causes:?}");
    assert!(
        causes.contains(&DoctorCause::ModelWithoutPrice),
        "{causes:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn offline_the_cache_answers_and_says_so() {
    let mut w = World::new("doctor-offline").await;
    let plan = w
        .plan(json!({"name": "Metered", "overage": "charge_wallet"}))
        .await;
    let c = w.consumer("Remote").await;
    w.subscribe(&c, &plan).await;
    let refused = w.call(&c).await;
    assert_eq!(refused.status, 402);
    w.sync_until(&refused.request_id).await;
    w.gw.stop();
    for start in [
        DoctorStart::RequestId {
            request_id: refused.request_id.clone(),
        },
        DoctorStart::Consumer {
            consumer_id: c.id.clone(),
        },
        DoctorStart::Response {
            text: refused.raw.clone(),
        },
    ] {
        let d = w.diagnose(start.clone()).await;
        assert_eq!(d.source, EvidenceSource::Cache, "{start:?}");
        assert!(d.offline_reason.is_some());
        assert_eq!(
            d.cause(),
            DoctorCause::InsufficientFunds,
            "{start:?}: {:#?}",
            d.findings
        );
        assert!(
            d.findings[0]
                .evidence
                .iter()
                .any(|e| e.at.is_some() && e.source == EvidenceSource::Cache),
            "{:#?}",
            d.findings[0]
        );
        assert!(d.findings[0].fix.contains("cannot be reached"));
    }
    // A fix cannot be applied offline, and says why.
    let err = w
        .console
        .apply_fix(
            &w.id,
            DoctorStart::Consumer {
                consumer_id: c.id.clone(),
            },
            FixAction::TopUpWallet {
                consumer_id: c.id.clone(),
                currency: "USD".into(),
                amount: "10".into(),
            },
            true,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("cannot be reached"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_starts_and_fixes_are_refused_with_the_field() {
    let w = World::new("doctor-bad").await;
    let cases = [
        (
            DoctorStart::Consumer {
                consumer_id: "".into(),
            },
            "consumer_id",
        ),
        (
            DoctorStart::Consumer {
                consumer_id: "con_x; drop".into(),
            },
            "consumer_id",
        ),
        (
            DoctorStart::KeyPrefix {
                prefix: "tg_".into(),
            },
            "prefix",
        ),
        (
            DoctorStart::KeyPrefix {
                prefix: "sk-abcdef".into(),
            },
            "prefix",
        ),
        (
            DoctorStart::RequestId {
                request_id: "123".into(),
            },
            "request_id",
        ),
        (
            DoctorStart::RequestId {
                request_id: "req_01notcached".into(),
            },
            "request_id",
        ),
        (
            DoctorStart::Response {
                text: "{\"error\":1}".into(),
            },
            "text",
        ),
        (
            DoctorStart::KeyPrefix {
                prefix: "tg_zzzzzzzz".into(),
            },
            "prefix",
        ),
    ];
    for (start, field) in cases {
        let err = w.console.diagnose(&w.id, start.clone()).await.unwrap_err();
        assert_eq!(err.code(), "validation", "{start:?}: {err}");
        assert!(err.to_string().contains(field), "{start:?}: {err}");
    }
    let start = DoctorStart::Consumer {
        consumer_id: "con_01unknown".into(),
    };
    for (action, field) in [
        (
            FixAction::TopUpWallet {
                consumer_id: "con_1".into(),
                currency: "usd".into(),
                amount: "10".into(),
            },
            "currency",
        ),
        (
            FixAction::TopUpWallet {
                consumer_id: "con_1".into(),
                currency: "USD".into(),
                amount: "-5".into(),
            },
            "amount",
        ),
        (
            FixAction::RetryCharge {
                subscription_id: "plan_1".into(),
            },
            "subscription_id",
        ),
        (
            FixAction::OpenSetting {
                screen: tollgate_console::doctor::SettingScreen::Plans,
                target: None,
            },
            "action",
        ),
    ] {
        let err = w
            .console
            .apply_fix(&w.id, start.clone(), action.clone(), true)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "validation", "{action:?}: {err}");
        assert!(err.to_string().contains(field), "{action:?}: {err}");
    }
}
