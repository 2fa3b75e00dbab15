//! The fleet's analytics against two real `tollgated` processes whose
//! traffic went through their data planes (the simulated provider, a test
//! fixture, answering), each synced into its own cache: the fleet's totals
//! equal the sum of each instance's figures and of the gateways' own stats;
//! the merged p95 is within the histograms' 1/16 of the exact p95 of every
//! latency; currencies stay apart; consumers stay per instance; bad inputs
//! give typed errors; and all of it works with a gateway stopped.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use chrono::{DateTime, DurationRound, Utc};
use common::admin::{
    admin, gateway_records, gateway_stats, http, metered_plan, simulated_provider,
    subscribed_consumer,
};
use common::{Gateway, input, test_vault};
use serde_json::json;
use tollgate_api::money::{format_amount, parse_amount};
use tollgate_api::{CallLog, CallStats, CostTotal};
use tollgate_console::Console;
use tollgate_console::client::ClientOptions;
use tollgate_console::logs::fleet::{FleetBreakdownQuery, FleetLogQuery};
use tollgate_console::logs::{
    LogBreakdownQuery, LogBucket, LogDimension, LogSeriesQuery, LogStatsQuery,
};

/// A chart point's requests, errors, 402s, tokens and cost per currency.
type PointSums = (i64, i64, i64, i64, BTreeMap<String, i64>);

/// A provider of the simulator in `currency`, and consumers on a plan
/// that charges their wallet: answers (name, consumer id, key).
async fn setup(
    gw: &Gateway,
    sim: &str,
    currency: &str,
    consumers: &[(&str, &str)],
) -> Vec<(String, String, String)> {
    let models = json!([{"name": "sim-small", "input_price": "1000", "output_price": "2000"}]);
    simulated_provider(gw, sim, "Sim", currency, models).await;
    let team = admin(gw, "POST", "/admin/v1/teams", json!({"name": "Fleet"})).await;
    let team = team["id"].as_str().unwrap();
    let plan = metered_plan(gw, "Metered", currency).await;
    let mut out = Vec::new();
    for (name, top_up) in consumers {
        let (cid, key) = subscribed_consumer(gw, team, name, &plan, currency, top_up).await;
        out.push(((*name).to_owned(), cid, key));
    }
    out
}

/// `n` chat calls with `key` (`max_tokens` varying); answers the statuses.
async fn calls(gw: &Gateway, key: &str, n: usize) -> Vec<u16> {
    let mut out = Vec::new();
    for i in 0..n {
        let resp = http()
            .post(format!("{}/v1/chat/completions", gw.base))
            .bearer_auth(key)
            .json(&json!({"model": "sim-small", "max_tokens": 4 + i % 9,
                          "messages": [{"role": "user", "content": format!("count to {i}")}]}))
            .send()
            .await
            .unwrap();
        out.push(resp.status().as_u16());
        let _ = resp.bytes().await;
    }
    out
}

/// Cost totals added per currency (as micro-units).
fn add_costs(into: &mut BTreeMap<String, i64>, cost: &[CostTotal]) {
    for c in cost {
        *into.entry(c.currency.clone()).or_default() += parse_amount(&c.amount).unwrap();
    }
}

fn formatted(costs: &BTreeMap<String, i64>) -> Vec<CostTotal> {
    costs
        .iter()
        .map(|(currency, micros)| CostTotal {
            currency: currency.clone(),
            amount: format_amount(*micros, 2),
        })
        .collect()
}

/// The exact nearest-rank percentile, as the gateway computes it.
fn exact_percentile(latencies: &mut [i64], p: f64) -> i64 {
    latencies.sort_unstable();
    let rank = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len());
    latencies[rank - 1]
}

fn within_a_sixteenth(ours: i64, exact: i64) {
    assert!(
        (ours - exact).abs() * 16 <= exact.max(16),
        "{ours} vs exact {exact}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn fleet_figures_are_the_exact_merge_of_every_instance() {
    let sim = tollgate_sim_provider::spawn("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let sim = format!("http://{sim}");
    let mut east = Gateway::start("fleet-east");
    let west = Gateway::start("fleet-west");
    // East bills in USD, west in EUR: the fleet's revenue must keep them apart.
    let east_people = setup(&east, &sim, "USD", &[("Alice", "100"), ("Broke", "0")]).await;
    let west_people = setup(&west, &sim, "EUR", &[("Carol", "100"), ("Dave", "100")]).await;
    let key = |people: &[(String, String, String)], name: &str| {
        people.iter().find(|p| p.0 == name).unwrap().2.clone()
    };
    let mut statuses = calls(&east, &key(&east_people, "Alice"), 12).await;
    statuses.extend(calls(&east, &key(&east_people, "Broke"), 5).await);
    statuses.extend(calls(&east, "tg_notakey1234_secret0000", 3).await);
    statuses.extend(calls(&west, &key(&west_people, "Carol"), 9).await);
    statuses.extend(calls(&west, &key(&west_people, "Dave"), 4).await);
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 25);
    assert_eq!(statuses.iter().filter(|s| **s == 402).count(), 5);
    assert_eq!(statuses.iter().filter(|s| **s == 401).count(), 3);

    let data = tempfile::tempdir().unwrap();
    let console = Console::open(data.path(), test_vault(), ClientOptions::default()).unwrap();
    let east_id = console
        .add_instance(input("East", &east.base, Some(&east.token)))
        .await
        .unwrap()
        .id;
    let west_id = console
        .add_instance(input("West", &west.base, Some(&west.token)))
        .await
        .unwrap()
        .id;
    for id in [&east_id, &west_id] {
        console.sync_logs(id, |_| {}).await.unwrap();
    }
    let east_records = gateway_records(&east).await;
    let west_records = gateway_records(&west).await;
    assert_eq!((east_records.len(), west_records.len()), (20, 13));
    let all: Vec<&CallLog> = east_records.iter().chain(&west_records).collect();
    let minute = chrono::Duration::minutes(1);
    let from = all
        .iter()
        .map(|r| r.at)
        .min()
        .unwrap()
        .duration_trunc(minute)
        .unwrap();
    let to = all
        .iter()
        .map(|r| r.at)
        .max()
        .unwrap()
        .duration_trunc(minute)
        .unwrap()
        + minute * 2;
    let range = FleetLogQuery {
        from,
        to,
        bucket: Some(LogBucket::Minute),
        instances: None,
    };

    // The checks, run online and again with a gateway stopped.
    let check = async |console: &Console, east_theirs: &CallStats, west_theirs: &CallStats| {
        let fleet = console.fleet_log_stats(range.clone()).await.unwrap();
        let mut per_instance = Vec::new();
        for id in [&east_id, &west_id] {
            let q = LogStatsQuery {
                from: Some(from),
                to: Some(to),
                bucket: Some(LogBucket::Minute),
            };
            per_instance.push(console.log_stats(id, q).await.unwrap());
        }
        // Totals: the sum of each instance's figures, of the gateways' own
        // stats, and of the records.
        for sum_of in [
            &per_instance[..],
            &[east_theirs.clone(), west_theirs.clone()][..],
        ] {
            assert_eq!(
                fleet.requests,
                sum_of.iter().map(|s| s.requests).sum::<i64>()
            );
            assert_eq!(fleet.errors, sum_of.iter().map(|s| s.errors).sum::<i64>());
            assert_eq!(
                fleet.tokens_in,
                sum_of.iter().map(|s| s.tokens_in).sum::<i64>()
            );
            assert_eq!(
                fleet.tokens_out,
                sum_of.iter().map(|s| s.tokens_out).sum::<i64>()
            );
            let payment_required: i64 = sum_of
                .iter()
                .flat_map(|s| &s.series)
                .map(|p| p.payment_required)
                .sum();
            assert_eq!(fleet.payment_required, payment_required);
            let mut costs = BTreeMap::new();
            for s in sum_of {
                add_costs(&mut costs, &s.cost);
            }
            assert_eq!(fleet.cost, formatted(&costs));
        }
        assert_eq!(fleet.requests, 33);
        assert_eq!(fleet.errors, 8);
        assert_eq!(fleet.payment_required, 5);
        assert_eq!(
            fleet.tokens_out,
            all.iter().map(|r| r.tokens_out).sum::<i64>()
        );
        // Two currencies, never added together.
        let currencies: Vec<&str> = fleet.cost.iter().map(|c| c.currency.as_str()).collect();
        assert_eq!(currencies, ["EUR", "USD"]);
        for total in &fleet.cost {
            let sum: i64 = all
                .iter()
                .filter(|r| r.currency.as_deref() == Some(total.currency.as_str()))
                .map(|r| parse_amount(&r.cost).unwrap())
                .sum();
            assert!(sum > 0);
            assert_eq!(parse_amount(&total.amount).unwrap(), sum);
        }
        // Percentiles from the merged histograms: within 1/16 of the exact
        // ones over every latency of both gateways.
        let mut latencies: Vec<i64> = all.iter().map(|r| r.latency_us).collect();
        within_a_sixteenth(fleet.latency_p50_us, exact_percentile(&mut latencies, 0.50));
        within_a_sixteenth(fleet.latency_p95_us, exact_percentile(&mut latencies, 0.95));
        within_a_sixteenth(fleet.latency_p99_us, exact_percentile(&mut latencies, 0.99));
        // Reasons, added by name.
        let reasons: Vec<(&str, u16, i64)> = fleet
            .by_reason
            .iter()
            .map(|r| (r.reason.as_str(), r.status, r.count))
            .collect();
        assert_eq!(
            reasons,
            [("insufficient-funds", 402, 5), ("invalid-api-key", 401, 3)]
        );
        // Each member's part is that instance's own figures.
        assert_eq!(fleet.instances.len(), 2);
        for (member, own) in fleet.instances.iter().zip(&per_instance) {
            assert_eq!(
                (
                    member.requests,
                    member.errors,
                    member.tokens_out,
                    &member.cost
                ),
                (own.requests, own.errors, own.tokens_out, &own.cost)
            );
            assert_eq!(member.latency_p95_us, own.latency_p95_us);
            assert!(member.cache.last_sync_at.is_some());
        }
        assert_eq!(
            (
                fleet.instances[0].name.as_str(),
                fleet.instances[1].name.as_str()
            ),
            ("East", "West")
        );

        // One instance's scope is that instance's figures.
        let east_only = console
            .fleet_log_stats(FleetLogQuery {
                instances: Some(vec![east_id.clone()]),
                ..range.clone()
            })
            .await
            .unwrap();
        assert_eq!(
            (east_only.requests, east_only.errors, &east_only.cost),
            (
                per_instance[0].requests,
                per_instance[0].errors,
                &per_instance[0].cost
            )
        );
        assert_eq!(east_only.latency_p95_us, per_instance[0].latency_p95_us);
        assert_eq!(east_only.instances.len(), 1);

        // The chart: each point is the sum of the instances' points.
        let series = console.fleet_log_series(range.clone()).await.unwrap();
        assert_eq!(series.bucket_seconds, 60);
        let mut expected: BTreeMap<DateTime<Utc>, PointSums> = BTreeMap::new();
        for id in [&east_id, &west_id] {
            let points = console
                .log_series(
                    id,
                    LogSeriesQuery {
                        from,
                        to,
                        bucket: Some(LogBucket::Minute),
                        dimension: None,
                        value: None,
                    },
                )
                .await
                .unwrap();
            for p in points {
                let e = expected.entry(p.at).or_default();
                e.0 += p.requests;
                e.1 += p.errors;
                e.2 += p.payment_required;
                e.3 += p.tokens_out;
                add_costs(&mut e.4, &p.cost);
            }
        }
        let got: BTreeMap<_, _> = series
            .points
            .iter()
            .map(|p| {
                let mut costs = BTreeMap::new();
                add_costs(&mut costs, &p.cost);
                (
                    p.at,
                    (
                        p.requests,
                        p.errors,
                        p.payment_required,
                        p.tokens_out,
                        costs,
                    ),
                )
            })
            .collect();
        assert_eq!(got, expected);
        assert_eq!(series.points.iter().map(|p| p.requests).sum::<i64>(), 33);

        // Consumers stay per instance, named; each row is that instance's.
        let by_consumer = console
            .fleet_log_breakdown(FleetBreakdownQuery {
                from,
                to,
                dimension: LogDimension::Consumer,
                limit: Some(50),
                bucket: None,
                instances: None,
                revenue_currency: None,
            })
            .await
            .unwrap();
        for (id, name, people) in [
            (&east_id, "East", &east_people),
            (&west_id, "West", &west_people),
        ] {
            let own = console
                .log_breakdown(
                    id,
                    LogBreakdownQuery {
                        from,
                        to,
                        dimension: LogDimension::Consumer,
                        limit: Some(50),
                        bucket: None,
                    },
                )
                .await
                .unwrap();
            for row in own.iter().filter(|r| r.value.is_some()) {
                let fleet_row = by_consumer
                    .iter()
                    .find(|f| {
                        f.instance_id.as_deref() == Some(id.as_str()) && f.row.value == row.value
                    })
                    .unwrap();
                assert_eq!(fleet_row.instance_name.as_deref(), Some(name));
                assert_eq!(&fleet_row.row, row);
                assert!(people.iter().any(|p| Some(&p.1) == row.value.as_ref()));
            }
        }
        let alice = &east_people[0].1;
        let alice_row = by_consumer
            .iter()
            .find(|r| r.row.value.as_ref() == Some(alice))
            .unwrap();
        assert_eq!(alice_row.row.requests, 12);
        // The calls without a consumer (east's bad key) are a row of their own.
        let anonymous: Vec<_> = by_consumer
            .iter()
            .filter(|r| r.row.value.is_none())
            .collect();
        assert_eq!(anonymous.len(), 1);
        assert_eq!(anonymous[0].row.requests, 3);

        // Models are the same name on both: one row, added.
        let by_model = console
            .fleet_log_breakdown(FleetBreakdownQuery {
                from,
                to,
                dimension: LogDimension::Model,
                limit: None,
                bucket: None,
                instances: None,
                revenue_currency: None,
            })
            .await
            .unwrap();
        let small = by_model
            .iter()
            .find(|r| r.row.value.as_deref() == Some("sim-small"))
            .unwrap();
        assert!(small.instance_id.is_none());
        let asked = all
            .iter()
            .filter(|r| r.model.as_deref() == Some("sim-small"))
            .count();
        assert!(asked >= 30, "{asked}");
        assert_eq!(small.row.requests, asked as i64);
        assert_eq!(small.row.cost, fleet.cost);

        // Top earners in EUR: only west's consumers, the most first.
        let earners = console
            .fleet_log_breakdown(FleetBreakdownQuery {
                from,
                to,
                dimension: LogDimension::Consumer,
                limit: Some(10),
                bucket: None,
                instances: None,
                revenue_currency: Some("EUR".into()),
            })
            .await
            .unwrap();
        let names: Vec<&str> = earners
            .iter()
            .map(|r| r.instance_name.as_deref().unwrap())
            .collect();
        assert_eq!(names, ["West", "West"]);
        let eur = |r: &tollgate_console::logs::fleet::FleetBreakdownRow| {
            parse_amount(
                &r.row
                    .cost
                    .iter()
                    .find(|c| c.currency == "EUR")
                    .unwrap()
                    .amount,
            )
            .unwrap()
        };
        assert!(eur(&earners[0]) >= eur(&earners[1]));
        assert_eq!(earners[0].row.value.as_ref(), Some(&west_people[0].1));

        // 402s by reason over time.
        let reasons = console
            .fleet_log_breakdown_series(FleetBreakdownQuery {
                from,
                to,
                dimension: LogDimension::Reason,
                limit: None,
                bucket: Some(LogBucket::Minute),
                instances: None,
                revenue_currency: None,
            })
            .await
            .unwrap();
        let funds = reasons
            .iter()
            .find(|s| s.series.value.as_deref() == Some("insufficient-funds"))
            .unwrap();
        assert_eq!(funds.series.requests, 5);
        assert_eq!(
            funds
                .series
                .points
                .iter()
                .map(|p| p.payment_required)
                .sum::<i64>(),
            5
        );
    };

    let east_theirs = gateway_stats(&east, from, to).await;
    let west_theirs = gateway_stats(&west, from, to).await;
    assert_eq!(east_theirs.requests + west_theirs.requests, 33);
    check(&console, &east_theirs, &west_theirs).await;

    // Offline: east stopped; its sync fails, the figures stay the same.
    east.stop();
    let down = console.sync_logs(&east_id, |_| {}).await.unwrap_err();
    assert_eq!(down.code(), "connection_refused", "{down}");
    check(&console, &east_theirs, &west_theirs).await;
    let fleet = console.fleet_log_stats(range.clone()).await.unwrap();
    let east_cache = &fleet.instances[0].cache;
    assert_eq!(
        east_cache.last_error.as_ref().unwrap().code,
        "connection_refused"
    );
    assert!(east_cache.last_sync_at.is_some());
    assert!(fleet.instances[1].cache.last_error.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_fleet_queries_give_typed_errors() {
    let gw = Gateway::start("fleet-bad");
    let (console, _data, id) = common::console_with(&gw, "Only").await;
    let now = Utc::now();
    let hour = chrono::Duration::hours(1);
    let range = |from: DateTime<Utc>, to: DateTime<Utc>| FleetLogQuery {
        from,
        to,
        bucket: None,
        instances: None,
    };
    let breakdown = |from: DateTime<Utc>, to: DateTime<Utc>| FleetBreakdownQuery {
        from,
        to,
        dimension: LogDimension::Reason,
        limit: None,
        bucket: None,
        instances: None,
        revenue_currency: None,
    };
    let field = |e: tollgate_console::ConsoleError| {
        let code = e.code().as_str();
        let ipc = tollgate_console::IpcError::from(e);
        (
            code,
            ipc.fields
                .first()
                .map(|f| f.field.clone())
                .unwrap_or_default(),
        )
    };

    // `from` after `to` (and equal), for every query.
    for (from, to) in [(now, now - hour), (now, now)] {
        let e = console.fleet_log_stats(range(from, to)).await.unwrap_err();
        assert_eq!(field(e), ("validation", "from".into()));
        let e = console.fleet_log_series(range(from, to)).await.unwrap_err();
        assert_eq!(field(e), ("validation", "from".into()));
        let e = console
            .fleet_log_breakdown(breakdown(from, to))
            .await
            .unwrap_err();
        assert_eq!(field(e), ("validation", "from".into()));
        let e = console
            .fleet_log_breakdown_series(breakdown(from, to))
            .await
            .unwrap_err();
        assert_eq!(field(e), ("validation", "from".into()));
    }
    // A range too long for the bucket asked for.
    let month = range(now - chrono::Duration::days(30), now);
    let e = console
        .fleet_log_series(FleetLogQuery {
            bucket: Some(LogBucket::Minute),
            ..month.clone()
        })
        .await
        .unwrap_err();
    assert_eq!(field(e), ("validation", "bucket".into()));
    let e = console
        .fleet_log_breakdown_series(FleetBreakdownQuery {
            bucket: Some(LogBucket::Minute),
            ..breakdown(month.from, month.to)
        })
        .await
        .unwrap_err();
    assert_eq!(field(e), ("validation", "bucket".into()));
    // The default bucket fits any range.
    let fitted = console.fleet_log_series(month.clone()).await.unwrap();
    assert_eq!(fitted.bucket_seconds, 3_600);
    assert!(fitted.points.is_empty());
    // An unknown instance, an empty list.
    let unknown = FleetLogQuery {
        instances: Some(vec![id.clone(), "inst_nope".into()]),
        ..range(now - hour, now)
    };
    let e = console.fleet_log_stats(unknown.clone()).await.unwrap_err();
    assert_eq!(e.code(), "not_found");
    assert!(e.to_string().contains("inst_nope"), "{e}");
    assert_eq!(
        console.fleet_log_series(unknown).await.unwrap_err().code(),
        "not_found"
    );
    let e = console
        .fleet_log_stats(FleetLogQuery {
            instances: Some(Vec::new()),
            ..range(now - hour, now)
        })
        .await
        .unwrap_err();
    assert_eq!(field(e), ("validation", "instances".into()));
    // Limits and the revenue currency.
    for limit in [0, 501] {
        let e = console
            .fleet_log_breakdown(FleetBreakdownQuery {
                limit: Some(limit),
                ..breakdown(now - hour, now)
            })
            .await
            .unwrap_err();
        assert_eq!(field(e), ("validation", "limit".into()));
    }
    let e = console
        .fleet_log_breakdown(FleetBreakdownQuery {
            revenue_currency: Some("dollars".into()),
            ..breakdown(now - hour, now)
        })
        .await
        .unwrap_err();
    assert_eq!(field(e), ("validation", "revenue_currency".into()));
    // An empty cache answers zeros, not an error.
    let empty = console
        .fleet_log_stats(range(now - hour, now))
        .await
        .unwrap();
    assert_eq!((empty.requests, empty.cost.len()), (0, 0));
    assert_eq!(empty.instances.len(), 1);
    // And the query types refuse unknown fields at the IPC boundary.
    let raw = json!({"from": now, "to": now, "instance": ["x"]});
    assert!(serde_json::from_value::<FleetLogQuery>(raw).is_err());
}
