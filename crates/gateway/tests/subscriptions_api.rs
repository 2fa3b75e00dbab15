//! Subscriptions, the approval queue, payment methods and charges through the
//! management API of a real `tollgated` with the built-in test processor.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Gateway, client};
use reqwest::StatusCode;
use serde_json::{Value, json};

struct Api<'a> {
    gw: &'a Gateway,
    http: reqwest::Client,
}

impl Api<'_> {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        status: StatusCode,
    ) -> Value {
        let mut req = self
            .http
            .request(method, self.gw.url(path))
            .bearer_auth(&self.gw.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let got = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        assert_eq!(got, status, "{path}: {body}");
        body
    }
    async fn post(&self, path: &str, body: Value, status: StatusCode) -> Value {
        self.send(reqwest::Method::POST, path, Some(body), status)
            .await
    }
    async fn get(&self, path: &str) -> Value {
        self.send(reqwest::Method::GET, path, None, StatusCode::OK)
            .await
    }
    async fn consumer(&self, name: &str) -> String {
        let team = self
            .post(
                "/admin/v1/teams",
                json!({"name": format!("team of {name}")}),
                StatusCode::CREATED,
            )
            .await;
        let c = self
            .post(
                "/admin/v1/consumers",
                json!({"team_id": team["id"], "name": name}),
                StatusCode::CREATED,
            )
            .await;
        c["id"].as_str().unwrap().to_owned()
    }
    async fn card(&self, consumer: &str, number: &str, status: StatusCode) -> Value {
        let body = json!({"number": number, "exp_month": 12, "exp_year": 2030, "cvc": "123", "make_default": true});
        self.post(
            &format!("/admin/v1/consumers/{consumer}/payment-methods"),
            body,
            status,
        )
        .await
    }
    async fn plan(&self, name: &str, approval: bool) -> String {
        let plan = json!({"name": name, "currency": "USD", "price": "49.00", "period": "month",
            "included_credits": "20", "overage": "block", "approval_required": approval});
        self.post("/admin/v1/plans", plan, StatusCode::CREATED)
            .await["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

#[tokio::test]
async fn approval_queue_cards_and_the_first_charge() {
    let gw = Gateway::start();
    let api = Api {
        gw: &gw,
        http: client(),
    };
    let consumer = api.consumer("App").await;
    let plan = api.plan("Pro", true).await;

    let sub = api
        .post(
            "/admin/v1/subscriptions",
            json!({"consumer_id": consumer, "plan_id": plan}),
            StatusCode::CREATED,
        )
        .await;
    assert_eq!(sub["status"], "pending_approval");
    assert!(sub["current_period_end"].is_null());
    let sub_id = sub["id"].as_str().unwrap().to_owned();
    let queue = api
        .get("/admin/v1/subscriptions?status=pending_approval")
        .await;
    assert_eq!(queue["items"][0]["id"], sub_id.as_str());
    assert_eq!(
        api.get("/admin/v1/subscriptions?status=active").await["items"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    api.send(
        reqwest::Method::GET,
        "/admin/v1/subscriptions?status=sleeping",
        None,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let no_reason = api
        .post(
            &format!("/admin/v1/subscriptions/{sub_id}/reject"),
            json!({}),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    assert_eq!(no_reason["errors"][0]["field"], "reason");

    // A declining card is refused with the processor's codes; a good one is kept, number never.
    let declined = api
        .card(&consumer, "4000000000000002", StatusCode::PAYMENT_REQUIRED)
        .await;
    assert_eq!(
        (declined["code"].as_str(), declined["decline_code"].as_str()),
        (Some("card_declined"), Some("generic_decline"))
    );
    assert!(
        declined["type"]
            .as_str()
            .unwrap()
            .ends_with("/problems/card-error")
    );
    let cvc = api
        .card(&consumer, "4000000000000127", StatusCode::PAYMENT_REQUIRED)
        .await;
    assert_eq!(cvc["code"], "incorrect_cvc");
    let wrong = api
        .card(&consumer, "4242424242424241", StatusCode::PAYMENT_REQUIRED)
        .await;
    assert_eq!(wrong["code"], "incorrect_number");
    let card = api
        .card(&consumer, "4242 4242 4242 4242", StatusCode::CREATED)
        .await;
    assert_eq!(
        (
            card["brand"].as_str(),
            card["last4"].as_str(),
            card["is_default"].as_bool()
        ),
        (Some("visa"), Some("4242"), Some(true))
    );
    assert!(!card.to_string().contains("4242424242424242"));

    let active = api
        .post(
            &format!("/admin/v1/subscriptions/{sub_id}/approve"),
            json!({}),
            StatusCode::OK,
        )
        .await;
    assert_eq!(active["status"], "active");
    assert!(active["current_period_end"].is_string());
    api.post(
        &format!("/admin/v1/subscriptions/{sub_id}/approve"),
        json!({}),
        StatusCode::CONFLICT,
    )
    .await;
    let charges = api
        .get(&format!("/admin/v1/consumers/{consumer}/charges"))
        .await;
    assert_eq!(
        (
            charges["items"][0]["status"].as_str(),
            charges["items"][0]["amount"].as_str()
        ),
        (Some("succeeded"), Some("49.00"))
    );
    let not_due = api
        .post(
            &format!("/admin/v1/subscriptions/{sub_id}/renew"),
            json!({}),
            StatusCode::CONFLICT,
        )
        .await;
    assert!(
        not_due["detail"]
            .as_str()
            .unwrap()
            .contains("nothing is due")
    );

    let suspended = api
        .post(
            &format!("/admin/v1/subscriptions/{sub_id}/suspend"),
            json!({"reason": "abuse report"}),
            StatusCode::OK,
        )
        .await;
    assert_eq!(
        (
            suspended["status"].as_str(),
            suspended["status_reason"].as_str()
        ),
        (Some("suspended"), Some("abuse report"))
    );
    assert_eq!(
        api.post(
            &format!("/admin/v1/subscriptions/{sub_id}/resume"),
            json!({}),
            StatusCode::OK
        )
        .await["status"],
        "active"
    );
    let canceled = api
        .post(
            &format!("/admin/v1/subscriptions/{sub_id}/cancel"),
            json!({"reason": "customer left"}),
            StatusCode::OK,
        )
        .await;
    assert_eq!(canceled["status"], "canceled");
    api.post(
        &format!("/admin/v1/subscriptions/{sub_id}/dance"),
        json!({}),
        StatusCode::NOT_FOUND,
    )
    .await;

    let rejected_sub = api
        .post(
            "/admin/v1/subscriptions",
            json!({"consumer_id": consumer, "plan_id": plan}),
            StatusCode::CREATED,
        )
        .await;
    let rejected = api
        .post(
            &format!(
                "/admin/v1/subscriptions/{}/reject",
                rejected_sub["id"].as_str().unwrap()
            ),
            json!({"reason": "duplicate"}),
            StatusCode::OK,
        )
        .await;
    assert_eq!(rejected["status"], "rejected");

    let audit = api.get("/admin/v1/audit?limit=200").await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["target"] == sub_id.as_str())
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        vec![
            "subscription.cancel",
            "subscription.resume",
            "subscription.suspend",
            "subscription.approve",
            "subscription.create"
        ]
    );
}

#[tokio::test]
async fn a_failed_first_charge_is_past_due_until_a_good_card_pays() {
    let gw = Gateway::start();
    let api = Api {
        gw: &gw,
        http: client(),
    };
    let consumer = api.consumer("Broke").await;
    let plan = api.plan("Basic", false).await;
    let poor = api
        .card(&consumer, "4000000000009995", StatusCode::CREATED)
        .await;
    assert_eq!(
        poor["status"], "active",
        "a zero-amount check does not see the missing funds"
    );

    let sub = api
        .post(
            "/admin/v1/subscriptions",
            json!({"consumer_id": consumer, "plan_id": plan}),
            StatusCode::CREATED,
        )
        .await;
    assert_eq!(sub["status"], "past_due");
    assert!(
        sub["status_reason"]
            .as_str()
            .unwrap()
            .contains("insufficient_funds")
    );
    let since =
        chrono::DateTime::parse_from_rfc3339(sub["past_due_since"].as_str().unwrap()).unwrap();
    let grace = chrono::DateTime::parse_from_rfc3339(sub["grace_until"].as_str().unwrap()).unwrap();
    assert_eq!((grace - since).num_days(), 3, "the default grace period");
    let methods = api
        .get(&format!("/admin/v1/consumers/{consumer}/payment-methods"))
        .await;
    assert_eq!(
        (
            methods[0]["status"].as_str(),
            methods[0]["last_decline_code"].as_str()
        ),
        (Some("failed"), Some("insufficient_funds"))
    );

    let good = api
        .card(&consumer, "5555555555554444", StatusCode::CREATED)
        .await;
    assert_eq!(
        (good["brand"].as_str(), good["is_default"].as_bool()),
        (Some("mastercard"), Some(true))
    );
    let sub_id = sub["id"].as_str().unwrap();
    let paid = api
        .post(
            &format!("/admin/v1/subscriptions/{sub_id}/renew"),
            json!({}),
            StatusCode::OK,
        )
        .await;
    assert_eq!(paid["status"], "active");
    assert!(paid["grace_until"].is_null() && paid["past_due_since"].is_null());
    let usage = api
        .get(&format!("/admin/v1/subscriptions/{sub_id}/usage"))
        .await;
    assert_eq!(
        (
            usage["credits_included"].as_str(),
            usage["credits_used"].as_str(),
            usage["credits_left"].as_str(),
            usage["currency"].as_str()
        ),
        (Some("20.00"), Some("0.00"), Some("20.00"), Some("USD")),
        "{usage}"
    );
    assert_eq!(usage["period_end"], paid["current_period_end"]);

    // The audit entries of chosen targets only, newest first.
    let audit = api
        .get(&format!(
            "/admin/v1/audit?targets={sub_id},{}&limit=50",
            good["id"].as_str().unwrap()
        ))
        .await;
    let entries: Vec<(&str, &str)> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["target"].as_str().unwrap()))
        .collect();
    assert!(
        entries
            .iter()
            .all(|(_, t)| *t == sub_id || *t == good["id"]),
        "{entries:?}"
    );
    assert_eq!(
        entries.first().map(|e| e.0),
        Some("subscription.renew"),
        "{entries:?}"
    );
    assert!(
        entries.iter().any(|(a, _)| *a == "subscription.create"),
        "{entries:?}"
    );
    let many: Vec<String> = (0..21).map(|i| format!("sub_{i}")).collect();
    let refused = api
        .send(
            reqwest::Method::GET,
            &format!("/admin/v1/audit?targets={}", many.join(",")),
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    assert!(refused.to_string().contains("targets"), "{refused}");
    // Ids as documented: no empty ones, no spaces.
    for list in ["sub_1,,sub_2", "sub_1,%20sub_2", "sub_1,"] {
        let refused = api
            .send(
                reqwest::Method::GET,
                &format!("/admin/v1/audit?targets={list}"),
                None,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        assert_eq!(
            refused["errors"][0]["field"], "targets",
            "{list}: {refused}"
        );
    }
    let charges = api
        .get(&format!("/admin/v1/consumers/{consumer}/charges"))
        .await;
    let results: Vec<(&str, Option<&str>)> = charges["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["status"].as_str().unwrap(), c["decline_code"].as_str()))
        .collect();
    assert_eq!(
        results,
        vec![("succeeded", None), ("failed", Some("insufficient_funds"))]
    );

    // Only the default card can be charged; a removed card is gone for good.
    let poor_id = poor["id"].as_str().unwrap();
    api.send(
        reqwest::Method::DELETE,
        &format!("/admin/v1/payment-methods/{poor_id}"),
        None,
        StatusCode::NO_CONTENT,
    )
    .await;
    assert_eq!(
        api.get(&format!("/admin/v1/consumers/{consumer}/payment-methods"))
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );
    api.post(
        &format!("/admin/v1/payment-methods/{poor_id}/default"),
        json!({}),
        StatusCode::NOT_FOUND,
    )
    .await;

    // Card numbers and CVCs never reach the disk or the log.
    for number in ["4000000000009995", "5555555555554444", "4000000000000002"] {
        assert!(
            !common::stored_holds(&gw.dir, number.as_bytes()),
            "{number} stored"
        );
    }
}

/// Changing plan: a running paid period stays; a subscription with no
/// running period starts one on the new plan and is charged; bad requests are
/// refused with the field or the conflict named; the change is audited.
#[tokio::test]
async fn a_subscription_changes_plan() {
    let gw = Gateway::start();
    let api = Api {
        gw: &gw,
        http: client(),
    };
    let consumer = api.consumer("Mover").await;
    api.card(&consumer, "4242424242424242", StatusCode::CREATED)
        .await;
    let monthly = api.plan("Monthly", false).await;
    let open = api
        .post(
            "/admin/v1/plans",
            json!({"name": "Open", "currency": "USD", "price": "0", "period": "none", "overage": "block"}),
            StatusCode::CREATED,
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let sub = api
        .post(
            "/admin/v1/subscriptions",
            json!({"consumer_id": consumer, "plan_id": open}),
            StatusCode::CREATED,
        )
        .await;
    let id = sub["id"].as_str().unwrap();
    assert_eq!(sub["current_period_end"], Value::Null);
    let change = |plan: &str| json!({ "plan_id": plan });

    // From a plan without periods to a monthly one: a period starts and is paid.
    let moved = api
        .post(
            &format!("/admin/v1/subscriptions/{id}/change-plan"),
            change(&monthly),
            StatusCode::OK,
        )
        .await;
    assert_eq!(moved["plan_id"], monthly.as_str());
    assert_eq!(moved["status"], "active");
    assert!(moved["current_period_end"].is_string(), "{moved}");
    let charges = api
        .get(&format!("/admin/v1/consumers/{consumer}/charges"))
        .await;
    let paid: Vec<_> = charges["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["subscription_id"] == id && c["status"] == "succeeded")
        .collect();
    assert_eq!(paid.len(), 1, "{charges}");
    assert_eq!(paid[0]["amount"], "49.00");

    // Back to the open plan mid-period: no charge, no more renewals.
    let back = api
        .post(
            &format!("/admin/v1/subscriptions/{id}/change-plan"),
            change(&open),
            StatusCode::OK,
        )
        .await;
    assert_eq!(back["plan_id"], open.as_str());
    assert_eq!(back["current_period_end"], Value::Null);
    let charges_after = api
        .get(&format!("/admin/v1/consumers/{consumer}/charges"))
        .await;
    assert_eq!(charges_after["items"], charges["items"]);

    // Refusals: same plan (409), unknown plan (422 naming plan_id), missing
    // field (422), unknown subscription (404), canceled subscription (409).
    api.post(
        &format!("/admin/v1/subscriptions/{id}/change-plan"),
        change(&open),
        StatusCode::CONFLICT,
    )
    .await;
    let unknown = api
        .post(
            &format!("/admin/v1/subscriptions/{id}/change-plan"),
            change("plan_01jzzzzzzzzzzzzzzzzzzzzzzz"),
            StatusCode::NOT_FOUND,
        )
        .await;
    assert!(
        unknown["detail"].as_str().unwrap().contains("plan_id"),
        "{unknown}"
    );
    api.post(
        &format!("/admin/v1/subscriptions/{id}/change-plan"),
        json!({}),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    api.post(
        "/admin/v1/subscriptions/sub_01jzzzzzzzzzzzzzzzzzzzzzzz/change-plan",
        change(&monthly),
        StatusCode::NOT_FOUND,
    )
    .await;
    api.post(
        &format!("/admin/v1/subscriptions/{id}/cancel"),
        json!({"reason": "leaving"}),
        StatusCode::OK,
    )
    .await;
    let ended = api
        .post(
            &format!("/admin/v1/subscriptions/{id}/change-plan"),
            change(&monthly),
            StatusCode::CONFLICT,
        )
        .await;
    assert!(
        ended["detail"].as_str().unwrap().contains("canceled"),
        "{ended}"
    );

    let audit = api.get("/admin/v1/audit?limit=100").await;
    let changes = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "subscription.change_plan" && e["target"] == id)
        .count();
    assert_eq!(changes, 2, "{audit}");
}
