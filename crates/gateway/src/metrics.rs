//! Prometheus metrics of one node, served at `GET /metrics` (the Prometheus
//! text format, version 0.0.4). Calls are counted by the usage writer from
//! their call log records, once per window and off the request path; what
//! is a state rather than an event (provider keys, leases, the database
//! pool, leadership) is read when the metrics are scraped.
//!
//! Label values are bounded: a model and a provider are named only when the
//! call was routed (a configured model, the provider's id), a refusal by its
//! problem type, so made-up model names never grow the metrics.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::store::{CallRecord, PoolStatus};

/// Buckets of call latencies, in seconds: 1 ms to 2 min.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];
/// Buckets of the usage writer's transactions, in seconds.
const WRITE_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

pub struct Metrics {
    registry: Registry,
    calls: IntCounterVec,
    call_seconds: HistogramVec,
    upstream_seconds: HistogramVec,
    tokens: IntCounterVec,
    cost: IntCounterVec,
    usage_lag: prometheus::Gauge,
    usage_write_seconds: Histogram,
    usage_write_retries: IntCounter,
    provider_keys: IntGaugeVec,
    providers: IntGaugeVec,
    leases: IntGauge,
    lease_seconds: Histogram,
    leads_jobs: IntGauge,
    pool: IntGaugeVec,
    pool_max: IntGauge,
    pool_waiting: IntGauge,
}

/// A provider as this node routes to it, and how many of its keys are in
/// each state.
pub struct ProviderKeys {
    pub id: String,
    pub name: String,
    pub kind: &'static str,
    pub states: Vec<(&'static str, i64)>,
}

/// What the node is, read when the metrics are scraped.
pub struct Snapshot {
    pub providers: Vec<ProviderKeys>,
    pub leases: i64,
    pub leads_jobs: bool,
    pub pool: PoolStatus,
}

impl Metrics {
    pub fn new() -> prometheus::Result<Metrics> {
        let registry = Registry::new_custom(Some("tollgate".into()), None)?;
        let counter = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels)
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            IntGaugeVec::new(Opts::new(name, help), labels)
        };
        let latency = |name: &str, help: &str, labels: &[&str]| {
            HistogramVec::new(
                HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()),
                labels,
            )
        };
        let metrics = Metrics {
            calls: counter(
                "calls_total",
                "Data-plane calls answered, by HTTP status, refusal reason (problem type), model and provider id.",
                &["status", "reason", "model", "provider"],
            )?,
            call_seconds: latency(
                "call_duration_seconds",
                "Time from a call's arrival to its answer's head (to its end when streamed), by outcome: served (2xx), refused (4xx), failed (5xx).",
                &["outcome"],
            )?,
            upstream_seconds: latency(
                "upstream_duration_seconds",
                "Time the provider took to answer, by provider id.",
                &["provider"],
            )?,
            tokens: counter(
                "tokens_total",
                "Tokens used by served calls, by model, provider id and direction (prompt or completion).",
                &["model", "provider", "direction"],
            )?,
            cost: counter(
                "charged_micros_total",
                "What calls were charged, in millionths of the currency.",
                &["currency"],
            )?,
            usage_lag: prometheus::Gauge::new(
                "usage_writer_lag_seconds",
                "How long the oldest call of the usage writer's last window waited, from its answer until the window was stored.",
            )?,
            usage_write_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "usage_write_duration_seconds",
                    "Time the usage writer took to store a window (its tries included).",
                )
                .buckets(WRITE_BUCKETS.to_vec()),
            )?,
            usage_write_retries: IntCounter::new(
                "usage_write_retries_total",
                "Windows the store refused, tried again (the database away).",
            )?,
            provider_keys: gauge(
                "provider_keys",
                "Provider keys by provider id and state as this node routes: active, resting (rate limited), benched (found invalid or exhausted), expired, or the stored status (invalid, exhausted, disabled).",
                &["provider", "state"],
            )?,
            providers: gauge(
                "provider_info",
                "One per provider: its id, name and kind (join on `provider`).",
                &["provider", "name", "kind"],
            )?,
            leases: IntGauge::new(
                "leases",
                "Leases this node holds: parts of wallets' balances and of included credits set aside for its calls.",
            )?,
            lease_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "lease_request_duration_seconds",
                    "Time this node's requests for more of a wallet or of included credits took in the database; the consumer's calls on this node wait for them.",
                )
                .buckets(WRITE_BUCKETS.to_vec()),
            )?,
            leads_jobs: IntGauge::new(
                "leads_jobs",
                "1 when this node runs the jobs (renewals, call-log pruning, giving back silent nodes' leases).",
            )?,
            pool: gauge(
                "database_connections",
                "Database connections of this node, by state: in_use or idle.",
                &["state"],
            )?,
            pool_max: IntGauge::new(
                "database_connections_max",
                "The most database connections this node opens.",
            )?,
            pool_waiting: IntGauge::new(
                "database_waiting",
                "Tasks waiting for a database connection.",
            )?,
            registry,
        };
        metrics.register()?;
        Ok(metrics)
    }

    fn register(&self) -> prometheus::Result<()> {
        let r = &self.registry;
        r.register(Box::new(self.calls.clone()))?;
        r.register(Box::new(self.call_seconds.clone()))?;
        r.register(Box::new(self.upstream_seconds.clone()))?;
        r.register(Box::new(self.tokens.clone()))?;
        r.register(Box::new(self.cost.clone()))?;
        r.register(Box::new(self.usage_lag.clone()))?;
        r.register(Box::new(self.usage_write_seconds.clone()))?;
        r.register(Box::new(self.usage_write_retries.clone()))?;
        r.register(Box::new(self.provider_keys.clone()))?;
        r.register(Box::new(self.providers.clone()))?;
        r.register(Box::new(self.leases.clone()))?;
        r.register(Box::new(self.lease_seconds.clone()))?;
        r.register(Box::new(self.leads_jobs.clone()))?;
        r.register(Box::new(self.pool.clone()))?;
        r.register(Box::new(self.pool_max.clone()))?;
        r.register(Box::new(self.pool_waiting.clone()))?;
        let info = IntGaugeVec::new(
            Opts::new("build_info", "The running tollgated's version."),
            &["version"],
        )?;
        info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        r.register(Box::new(info))
    }

    /// Counts one answered call from its call log record.
    pub fn call(&self, record: &CallRecord) {
        // Named only when routed: a configured model and provider.
        let (model, provider) = match &record.provider_id {
            Some(provider) => (record.model.as_deref().unwrap_or(""), provider.as_str()),
            None => ("", ""),
        };
        let status = record.status.to_string();
        let reason = record.reason.as_deref().unwrap_or("");
        self.calls
            .with_label_values(&[status.as_str(), reason, model, provider])
            .inc();
        let outcome = match record.status {
            200..=399 => "served",
            400..=499 => "refused",
            _ => "failed",
        };
        self.call_seconds
            .with_label_values(&[outcome])
            .observe(seconds(record.latency_us));
        if let Some(upstream) = record.upstream_us.filter(|_| !provider.is_empty()) {
            self.upstream_seconds
                .with_label_values(&[provider])
                .observe(seconds(upstream));
        }
        for (direction, tokens) in [
            ("prompt", record.tokens_in),
            ("completion", record.tokens_out),
        ] {
            if tokens > 0 {
                self.tokens
                    .with_label_values(&[model, provider, direction])
                    .inc_by(tokens.unsigned_abs());
            }
        }
        if let (Some(currency), cost @ 1..) = (&record.currency, record.cost_micros) {
            self.cost
                .with_label_values(&[currency.as_str()])
                .inc_by(cost.unsigned_abs());
        }
    }

    /// The usage writer stored a window: how long its oldest call waited
    /// for it and how long the store took.
    pub fn window_stored(&self, lag: std::time::Duration, took: std::time::Duration) {
        self.usage_lag.set(lag.as_secs_f64());
        self.usage_write_seconds.observe(took.as_secs_f64());
    }

    /// A lease request came back (granted or not) after `took`.
    pub fn lease_answered(&self, took: std::time::Duration) {
        self.lease_seconds.observe(took.as_secs_f64());
    }

    /// The store refused a window; it is tried again.
    pub fn window_retried(&self) {
        self.usage_write_retries.inc();
    }

    /// The metrics in the Prometheus text format, `now` being what
    /// [`Snapshot`] says.
    pub fn render(&self, now: Snapshot) -> prometheus::Result<String> {
        self.provider_keys.reset();
        self.providers.reset();
        for p in &now.providers {
            self.providers
                .with_label_values(&[p.id.as_str(), &p.name, p.kind])
                .set(1);
            for (state, keys) in &p.states {
                self.provider_keys
                    .with_label_values(&[p.id.as_str(), state])
                    .set(*keys);
            }
        }
        self.leases.set(now.leases);
        self.leads_jobs.set(i64::from(now.leads_jobs));
        let pool = now.pool;
        self.pool
            .with_label_values(&["in_use"])
            .set(to_i64(pool.open.saturating_sub(pool.idle)));
        self.pool
            .with_label_values(&["idle"])
            .set(to_i64(pool.idle));
        self.pool_max.set(to_i64(pool.max));
        self.pool_waiting.set(to_i64(pool.waiting));
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        String::from_utf8(out).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }
}

/// The content type of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

fn seconds(micros: i64) -> f64 {
    micros.max(0) as f64 / 1e6
}

fn to_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_routed_call_is_counted_by_model_and_provider_and_a_refusal_by_reason_only() {
        let metrics = Metrics::new().unwrap();
        metrics.call(&CallRecord {
            status: 200,
            model: Some("sim-small".into()),
            provider_id: Some("prv_1".into()),
            latency_us: 2_000,
            upstream_us: Some(1_500),
            tokens_in: 5,
            tokens_out: 7,
            cost_micros: 10_000,
            currency: Some("USD".into()),
            ..CallRecord::default()
        });
        metrics.call(&CallRecord {
            status: 404,
            model: Some("made-up-model-1234".into()),
            reason: Some("model-not-found".into()),
            latency_us: 100,
            ..CallRecord::default()
        });
        let text = metrics
            .render(Snapshot {
                providers: vec![ProviderKeys {
                    id: "prv_1".into(),
                    name: "Sim".into(),
                    kind: "openai-compatible",
                    states: vec![("active", 2), ("resting", 1)],
                }],
                leases: 3,
                leads_jobs: true,
                pool: PoolStatus {
                    max: 16,
                    open: 4,
                    idle: 3,
                    waiting: 0,
                },
            })
            .unwrap();
        for line in [
            r#"tollgate_calls_total{model="sim-small",provider="prv_1",reason="",status="200"} 1"#,
            r#"tollgate_calls_total{model="",provider="",reason="model-not-found",status="404"} 1"#,
            r#"tollgate_tokens_total{direction="completion",model="sim-small",provider="prv_1"} 7"#,
            r#"tollgate_charged_micros_total{currency="USD"} 10000"#,
            r#"tollgate_provider_keys{provider="prv_1",state="resting"} 1"#,
            r#"tollgate_provider_info{kind="openai-compatible",name="Sim",provider="prv_1"} 1"#,
            r#"tollgate_database_connections{state="in_use"} 1"#,
            "tollgate_leases 3",
            "tollgate_leads_jobs 1",
            r#"tollgate_call_duration_seconds_bucket{outcome="served",le="0.0025"} 1"#,
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        assert!(!text.contains("made-up-model"), "{text}");
    }
}
