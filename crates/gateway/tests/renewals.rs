//! The billing state machine on a real SQLite store with the test processor,
//! driven by a manual clock: renewals with each test card, grace, expiry.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use tollgate_api::{OveragePolicy, PlanPeriod, RateLimits, SubscriptionStatus};
use tollgate_gateway::billing::{Billing, terms};
use tollgate_gateway::changes::{Change, ChangeFeed, ChangeListener};
use tollgate_gateway::crypto::SecretBox;
use tollgate_gateway::lifecycle;
use tollgate_gateway::payments::Processors;
use tollgate_gateway::payments::test_processor::TestProcessor;
use tollgate_gateway::payments::{CardDetails, PaymentProcessor};
use tollgate_gateway::store::sqlite::SqliteStore;
use tollgate_gateway::store::{AuditContext, NewCharge, NewConsumer, NewTeam, PlanSpec, Store};

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// What the store published on its change feed.
#[derive(Default)]
struct Heard(std::sync::Mutex<Vec<Change>>);

impl ChangeListener for Heard {
    fn changed(&self, change: &Change) {
        self.0.lock().unwrap().push(change.clone());
    }
}

impl Heard {
    fn take(&self) -> Vec<Change> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

struct World {
    billing: Billing,
    heard: Arc<Heard>,
    store: Arc<dyn Store>,
    audit: AuditContext,
    plan: tollgate_api::Plan,
    team: String,
    _dir: tempfile::TempDir,
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let feed = ChangeFeed::new();
    let heard = Arc::new(Heard::default());
    feed.subscribe(heard.clone());
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path(), feed).unwrap());
    let audit = AuditContext {
        token_id: "atk_test".into(),
        request_id: "req_test".into(),
    };
    let team = store
        .create_team(
            NewTeam {
                name: "T".into(),
                description: String::new(),
            },
            &audit,
        )
        .await
        .unwrap();
    let plan = store
        .create_plan(
            PlanSpec {
                name: "Monthly".into(),
                currency: "USD".into(),
                price_micros: 49_000_000,
                period: PlanPeriod::Month,
                included_micros: 0,
                overage: OveragePolicy::Block,
                approval_required: false,
                apis: vec![],
                models: vec![],
                rate_limits: RateLimits::default(),
            },
            &audit,
        )
        .await
        .unwrap();
    let billing = Billing::new(
        store.clone(),
        Arc::new(SecretBox::from_key([1; 32])),
        3,
        Processors::builtin(),
    )
    .await
    .unwrap();
    World {
        billing,
        heard,
        store,
        audit,
        plan,
        team: team.id,
        _dir: dir,
    }
}

impl World {
    /// A consumer with `number` on file and a subscription that started at `t0`.
    async fn subscriber(
        &self,
        name: &str,
        number: &str,
        exp: (u32, i32),
        t0: DateTime<Utc>,
    ) -> (String, String) {
        let consumer = self
            .store
            .create_consumer(
                NewConsumer {
                    team_id: self.team.clone(),
                    name: name.into(),
                    contact: String::new(),
                    metadata: Default::default(),
                },
                &self.audit,
            )
            .await
            .unwrap();
        let card = CardDetails {
            number: number.into(),
            exp_month: exp.0,
            exp_year: exp.1,
            cvc: "123".into(),
        };
        let token = TestProcessor.tokenize(card, t0).await.unwrap();
        self.store
            .add_payment_method(&consumer.id, "test", token, true, &self.audit)
            .await
            .unwrap();
        let state = lifecycle::start(terms(&self.plan), false, true, t0);
        let sub = self
            .store
            .create_subscription(&consumer.id, &self.plan.id, state, &self.audit)
            .await
            .unwrap();
        (consumer.id, sub.id)
    }
}

#[tokio::test]
async fn renewal_with_each_test_card() {
    let w = world().await;
    let t0 = at("2026-11-01T00:00:00Z");
    let renewal = at("2026-12-01T00:00:00Z");
    let cases = [
        (
            "good",
            "4242424242424242",
            (12, 2030),
            SubscriptionStatus::Active,
            None,
        ),
        (
            "funds",
            "4000000000009995",
            (12, 2030),
            SubscriptionStatus::PastDue,
            Some("insufficient_funds"),
        ),
        (
            "decline",
            "4000000000000341",
            (12, 2030),
            SubscriptionStatus::PastDue,
            Some("generic_decline"),
        ),
        (
            "expires",
            "4242424242424242",
            (11, 2026),
            SubscriptionStatus::PastDue,
            Some("expired_card"),
        ),
    ];
    for (name, number, exp, status, reason) in cases {
        let (consumer, sub) = w.subscriber(name, number, exp, t0).await;
        w.heard.take();
        assert!(
            w.billing
                .process_due(&sub, renewal - Duration::seconds(1))
                .await
                .unwrap()
                .is_none(),
            "{name}: nothing due before the end"
        );
        let after = w
            .billing
            .process_due(&sub, renewal)
            .await
            .unwrap()
            .expect("renewal due");
        assert_eq!(after.status, status, "{name}");
        // The renewal job's write reached the change feed like an admin's.
        assert_eq!(
            w.heard.take(),
            vec![Change::Subscription {
                subscription_id: sub.clone(),
                consumer_id: consumer.clone()
            }],
            "{name}"
        );
        match reason {
            None => {
                assert_eq!(after.current_period_start, Some(renewal));
                assert_eq!(after.current_period_end, Some(at("2027-01-01T00:00:00Z")));
            }
            Some(code) => {
                assert!(
                    after.status_reason.as_deref().unwrap().contains(code),
                    "{name}: {:?}",
                    after.status_reason
                );
                assert_eq!(after.past_due_since, Some(renewal));
            }
        }
        let (charges, _) = w.store.charges(&consumer, None, 10).await.unwrap();
        assert_eq!(charges.len(), 1, "{name}: one charge recorded");
        assert_eq!(charges[0].amount, "49.00");
    }
}

#[tokio::test]
async fn grace_then_expiry_and_recovery_by_paying() {
    let w = world().await;
    let t0 = at("2026-11-01T00:00:00Z");
    let due = at("2026-12-01T00:00:00Z");
    let (consumer, sub) = w
        .subscriber("late", "4000000000009995", (12, 2030), t0)
        .await;
    w.billing.process_due(&sub, due).await.unwrap();
    // Within grace nothing changes; the run over all live subscriptions agrees.
    assert!(
        w.billing
            .process_due(&sub, due + Duration::days(3) - Duration::seconds(1))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(w.billing.run_due(due + Duration::days(2)).await, 0);
    assert_eq!(w.billing.run_due(due + Duration::days(3)).await, 1);
    let expired = w.store.subscription(&sub).await.unwrap();
    assert_eq!(expired.status, SubscriptionStatus::Expired);
    assert_eq!(
        expired.status_reason.as_deref(),
        Some("the grace period ended without payment")
    );
    assert_eq!(
        w.billing.run_due(due + Duration::days(30)).await,
        0,
        "expired subscriptions are left alone"
    );

    // A new card and "renew now": active again from the payment.
    let token = TestProcessor
        .tokenize(
            CardDetails {
                number: "4242424242424242".into(),
                exp_month: 1,
                exp_year: 2031,
                cvc: "999".into(),
            },
            t0,
        )
        .await
        .unwrap();
    w.store
        .add_payment_method(&consumer, "test", token, true, &w.audit)
        .await
        .unwrap();
    let paid_at = due + Duration::days(5);
    let back = w.billing.renew_now(&sub, paid_at, &w.audit).await.unwrap();
    assert_eq!(
        (back.status, back.current_period_start),
        (SubscriptionStatus::Active, Some(paid_at))
    );
    assert_eq!(back.current_period_end, Some(at("2027-01-06T00:00:00Z")));
}

/// A node charged a period and stopped before it renewed the subscription
/// (the charge is stored, the subscription is not): the next run renews it
/// as paid, without charging the card again.
#[tokio::test]
async fn a_period_charged_by_a_node_that_stopped_is_renewed_without_a_second_charge() {
    let w = world().await;
    let t0 = at("2026-11-01T00:00:00Z");
    let renewal = at("2026-12-01T00:00:00Z");
    let (consumer, sub) = w
        .subscriber("stopped", "4242424242424242", (12, 2030), t0)
        .await;
    // What the stopped node left: this period's renewal charge, succeeded.
    w.store
        .record_charge(NewCharge {
            consumer_id: consumer.clone(),
            payment_method_id: None,
            subscription_id: Some(sub.clone()),
            amount_micros: 49_000_000,
            currency: "USD".into(),
            failure: None,
            processor_charge_id: Some("ch_left_by_the_stopped_node".into()),
            idempotency_key: format!("renewal:{sub}:{}", renewal.timestamp()),
        })
        .await
        .unwrap();
    let after = w
        .billing
        .process_due(&sub, renewal)
        .await
        .unwrap()
        .expect("renewal due");
    assert_eq!(after.status, SubscriptionStatus::Active);
    assert_eq!(after.current_period_start, Some(renewal));
    assert_eq!(after.current_period_end, Some(at("2027-01-01T00:00:00Z")));
    let (charges, _) = w.store.charges(&consumer, None, 10).await.unwrap();
    assert_eq!(charges.len(), 1, "the card was not charged again");
    assert_eq!(
        charges[0].processor_charge_id.as_deref(),
        Some("ch_left_by_the_stopped_node")
    );
    // An admin's "renew now" afterwards finds nothing due.
    assert!(w.billing.renew_now(&sub, renewal, &w.audit).await.is_err());
}
