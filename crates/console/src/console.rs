//! [`Console`]: the facade the desktop shell calls. Each method is one user
//! action; the Tauri commands delegate to these one to one.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::Utc;
use rusqlite::Connection;
use tollgate_api::{AuditEntry, CreateTeam, NodeInfo, Page, Scope, Team, UpdateTeam};

use crate::client::{ClientOptions, GatewayClient, Target};
use crate::error::ConsoleError;
use crate::fleet::{Fleet, Health};
use crate::logs::Logs;
use crate::models::{
    ConnectionReport, FleetEntry, Instance, InstanceInput, KeyringStatus, NodesHealth, ReportError,
};
use crate::prompt_apis::Runs;
use crate::sensitive::Sensitive;
use crate::vault::{ADMIN_TOKEN, Vault, VaultError};
use crate::{db, registry};

const CURRENT_INSTANCE: &str = "current_instance";
const TEAMS_PAGE: u32 = 50;

pub struct Console {
    db: Mutex<Connection>,
    vault: Vault,
    options: ClientOptions,
    fleet: Mutex<Fleet>,
    pub(crate) runs: Runs,
    pub(crate) logs: Logs,
    pub(crate) alert_hub: crate::alerts::AlertHub,
}

/// Runs a blocking keyring call off the async runtime.
async fn vault_call<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, VaultError> + Send + 'static,
) -> Result<T, ConsoleError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ConsoleError::Storage(format!("keyring task failed: {e}")))?
        .map_err(ConsoleError::from)
}

fn report_error(e: &ConsoleError) -> ReportError {
    ReportError {
        code: e.code().as_str().to_owned(),
        message: e.to_string(),
    }
}

impl Console {
    pub fn open(
        data_dir: &Path,
        vault: Vault,
        options: ClientOptions,
    ) -> Result<Arc<Self>, ConsoleError> {
        let conn = db::open(data_dir)?;
        let mut fleet = Fleet::default();
        {
            let mut stmt = conn.prepare("SELECT instance_id, report FROM instance_health")?;
            let rows =
                stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
            for row in rows {
                let (id, json) = row?;
                if let Ok(report) = serde_json::from_str::<ConnectionReport>(&json) {
                    // Known from a previous run, but due for a fresh check now.
                    let health = Health {
                        failures: u32::from(!report.ok),
                        last_report: Some(report),
                        next_check_at: None,
                    };
                    fleet.health.insert(id, health);
                }
            }
        }
        Ok(Arc::new(Console {
            db: Mutex::new(conn),
            vault,
            options,
            fleet: Mutex::new(fleet),
            runs: Runs::default(),
            logs: Logs::new(data_dir),
            alert_hub: crate::alerts::AlertHub::default(),
        }))
    }

    pub(crate) fn db(&self) -> MutexGuard<'_, Connection> {
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn fleet(&self) -> MutexGuard<'_, Fleet> {
        self.fleet.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub async fn keyring_status(&self) -> KeyringStatus {
        let vault = self.vault.clone();
        match vault_call(move || vault.check()).await {
            Ok(()) => KeyringStatus {
                available: true,
                message: None,
            },
            Err(e) => KeyringStatus {
                available: false,
                message: Some(e.to_string()),
            },
        }
    }

    pub fn list_instances(&self) -> Result<Vec<Instance>, ConsoleError> {
        registry::list(&self.db())
    }

    pub fn instance(&self, id: &str) -> Result<Instance, ConsoleError> {
        registry::get(&self.db(), id)
    }

    /// Adds an instance: the row and the keyring entry are written together, or neither.
    pub async fn add_instance(&self, input: InstanceInput) -> Result<Instance, ConsoleError> {
        let valid = registry::validate(&input, true)?;
        let token = input.admin_token.ok_or(ConsoleError::MissingToken)?;
        // Refuse early, before anything is written, when there is no keyring.
        let vault = self.vault.clone();
        vault_call(move || vault.check()).await?;
        let mut conn = self.db();
        let tx = conn.transaction()?;
        let instance = registry::insert(&tx, &valid)?;
        // The keyring call is short and must happen inside the transaction: on
        // failure the row is rolled back.
        self.vault.set(
            &instance.id,
            ADMIN_TOKEN,
            &Sensitive::new(token.expose().trim().to_owned()),
        )?;
        if let Err(e) = tx.commit() {
            let _ = self.vault.delete(&instance.id, ADMIN_TOKEN);
            return Err(e.into());
        }
        drop(conn);
        tracing::info!(instance = %instance.id, "instance added");
        Ok(instance)
    }

    pub async fn update_instance(
        &self,
        id: &str,
        input: InstanceInput,
    ) -> Result<Instance, ConsoleError> {
        let valid = registry::validate(&input, false)?;
        let mut conn = self.db();
        let tx = conn.transaction()?;
        let instance = registry::update(&tx, id, &valid)?;
        if let Some(token) = input.admin_token.filter(|t| !t.expose().trim().is_empty()) {
            self.vault.set(
                id,
                ADMIN_TOKEN,
                &Sensitive::new(token.expose().trim().to_owned()),
            )?;
        }
        tx.commit()?;
        drop(conn);
        self.fleet().health.remove(id);
        Ok(instance)
    }

    /// Removes an instance and its keyring entry. With no keyring the entry
    /// cannot be removed, so nothing is.
    pub async fn remove_instance(&self, id: &str) -> Result<(), ConsoleError> {
        self.instance(id)?;
        let (vault, owned) = (self.vault.clone(), id.to_owned());
        vault_call(move || vault.delete(&owned, ADMIN_TOKEN)).await?;
        let mut conn = self.db();
        let tx = conn.transaction()?;
        registry::delete(&tx, id)?;
        if db::get_setting(&tx, CURRENT_INSTANCE)?.as_deref() == Some(id) {
            db::set_setting(&tx, CURRENT_INSTANCE, None)?;
        }
        tx.commit()?;
        drop(conn);
        self.fleet().health.remove(id);
        self.forget_log_cache(id, true);
        Ok(())
    }

    async fn token(&self, id: &str) -> Result<Sensitive<String>, ConsoleError> {
        let (vault, owned) = (self.vault.clone(), id.to_owned());
        vault_call(move || vault.get(&owned, ADMIN_TOKEN))
            .await?
            .ok_or(ConsoleError::MissingToken)
    }

    /// A management-API client for an instance, with its token from the keyring.
    pub async fn client(&self, id: &str) -> Result<GatewayClient, ConsoleError> {
        let instance = self.instance(id)?;
        let token = self.token(id).await?;
        Ok(GatewayClient::new(&target(&instance), token, self.options)?)
    }

    async fn run_test(&self, target: Target, token: Sensitive<String>) -> ConnectionReport {
        let checked_at = Utc::now();
        let client = match GatewayClient::new(&target, token, self.options) {
            Ok(client) => client,
            Err(e) => return failed_report(checked_at, &ConsoleError::Gateway(e)),
        };
        match client.info().await {
            Ok(timed) => ConnectionReport {
                nodes: nodes_health(&client, &timed.info.token.scopes).await,
                ok: true,
                checked_at,
                latency_ms: Some(timed.latency.as_secs_f64() * 1000.0),
                version: Some(timed.info.version),
                instance_id: Some(timed.info.instance_id),
                instance_name: Some(timed.info.name),
                scopes: timed.info.token.scopes,
                clock_skew_ms: Some(timed.clock_skew_ms),
                error: None,
            },
            Err(e) => failed_report(checked_at, &ConsoleError::Gateway(e)),
        }
    }

    /// Tests a saved instance, and records the result in the fleet overview.
    pub async fn test_connection(&self, id: &str) -> Result<ConnectionReport, ConsoleError> {
        let instance = self.instance(id)?;
        let report = match self.token(id).await {
            Ok(token) => self.run_test(target(&instance), token).await,
            Err(e) => failed_report(Utc::now(), &e),
        };
        self.record(id, report.clone())?;
        Ok(report)
    }

    /// The nodes serving an instance, each with its last heartbeat, whether
    /// it leads the jobs and the leases it holds.
    pub async fn instance_nodes(&self, id: &str) -> Result<Vec<NodeInfo>, ConsoleError> {
        Ok(self.client(id).await?.nodes().await?.items)
    }

    /// Tests the add/edit form before saving; nothing is stored. On edit
    /// (`existing_id`), an empty token field means the stored token.
    pub async fn probe(
        &self,
        input: InstanceInput,
        existing_id: Option<&str>,
    ) -> Result<ConnectionReport, ConsoleError> {
        let valid = registry::validate(&input, existing_id.is_none())?;
        let token = match (
            input.admin_token.filter(|t| !t.expose().trim().is_empty()),
            existing_id,
        ) {
            (Some(t), _) => Sensitive::new(t.expose().trim().to_owned()),
            (None, Some(id)) => self.token(id).await?,
            (None, None) => return Err(ConsoleError::validation("admin_token", "is required")),
        };
        let target = Target {
            base_url: valid.base_url,
            ca_cert_pem: valid.ca_cert_pem,
            tls_verify: valid.tls_verify,
        };
        Ok(self.run_test(target, token).await)
    }

    fn record(&self, id: &str, report: ConnectionReport) -> Result<(), ConsoleError> {
        let json =
            serde_json::to_string(&report).map_err(|e| ConsoleError::Storage(e.to_string()))?;
        // The instance may have been removed while it was being checked.
        self.db().execute(
            "INSERT INTO instance_health (instance_id, report, checked_at) SELECT ?1, ?2, ?3 \
             WHERE EXISTS (SELECT 1 FROM instances WHERE id = ?1) \
             ON CONFLICT (instance_id) DO UPDATE SET report = excluded.report, checked_at = excluded.checked_at",
            rusqlite::params![id, json, report.checked_at.to_rfc3339()],
        )?;
        self.fleet()
            .health
            .entry(id.to_owned())
            .or_default()
            .record(report);
        Ok(())
    }

    pub fn fleet_overview(&self) -> Result<Vec<FleetEntry>, ConsoleError> {
        let instances = self.list_instances()?;
        let fleet = self.fleet();
        Ok(instances
            .into_iter()
            .map(|instance| {
                let health = fleet.health.get(&instance.id).cloned().unwrap_or_default();
                FleetEntry {
                    state: health.state(),
                    last_report: health.last_report,
                    failures: health.failures,
                    next_check_at: health.next_check_at,
                    instance,
                }
            })
            .collect())
    }

    /// Makes every instance due for a check now.
    pub fn refresh_fleet(&self) {
        for health in self.fleet().health.values_mut() {
            health.next_check_at = None;
        }
    }

    /// Checks every instance that is due; returns how many were checked.
    pub async fn run_due_checks(&self) -> usize {
        let now = Utc::now();
        let due: Vec<String> = match self.list_instances() {
            Ok(list) => {
                let fleet = self.fleet();
                list.into_iter()
                    .filter(|i| fleet.health.get(&i.id).is_none_or(|h| h.due(now)))
                    .map(|i| i.id)
                    .collect()
            }
            Err(e) => {
                tracing::warn!(error = %e, "fleet check could not list instances");
                return 0;
            }
        };
        let checks = due.iter().map(|id| self.test_connection(id));
        for (id, result) in due.iter().zip(futures_util::future::join_all(checks).await) {
            if let Err(e) = result {
                tracing::debug!(instance = %id, error = %e, "fleet check skipped");
            }
        }
        due.len()
    }

    /// Runs [`Console::run_due_checks`] every second until the console is
    /// dropped. The shell spawns it on its async runtime.
    pub async fn monitor_fleet(console: std::sync::Weak<Console>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let Some(console) = console.upgrade() else {
                break;
            };
            console.run_due_checks().await;
        }
    }

    pub fn current_instance(&self) -> Result<Option<String>, ConsoleError> {
        let conn = self.db();
        let current = db::get_setting(&conn, CURRENT_INSTANCE)?;
        // Fall back to the first instance when none (or a removed one) is set.
        match current {
            Some(id) if registry::get(&conn, &id).is_ok() => Ok(Some(id)),
            _ => Ok(registry::list(&conn)?.into_iter().next().map(|i| i.id)),
        }
    }

    pub fn set_current_instance(&self, id: &str) -> Result<(), ConsoleError> {
        let conn = self.db();
        registry::get(&conn, id)?;
        db::set_setting(&conn, CURRENT_INSTANCE, Some(id))?;
        Ok(())
    }

    pub async fn list_teams(
        &self,
        id: &str,
        cursor: Option<String>,
    ) -> Result<Page<Team>, ConsoleError> {
        Ok(self
            .client(id)
            .await?
            .list_teams(TEAMS_PAGE, cursor.as_deref())
            .await?)
    }

    /// Creates a team; `idempotency_key` makes a retried click safe.
    pub async fn create_team(
        &self,
        id: &str,
        body: CreateTeam,
        idempotency_key: &str,
    ) -> Result<Team, ConsoleError> {
        let body = CreateTeam {
            name: body.name.trim().to_owned(),
            description: body.description.trim().to_owned(),
        };
        if body.name.is_empty() {
            return Err(ConsoleError::validation("name", "is required"));
        }
        Ok(self
            .client(id)
            .await?
            .create_team(&body, idempotency_key)
            .await?)
    }

    pub async fn update_team(
        &self,
        id: &str,
        team_id: &str,
        patch: UpdateTeam,
        version: i64,
    ) -> Result<Team, ConsoleError> {
        Ok(self
            .client(id)
            .await?
            .update_team(team_id, &patch, version)
            .await?)
    }

    pub async fn delete_team(
        &self,
        id: &str,
        team_id: &str,
        version: i64,
    ) -> Result<(), ConsoleError> {
        Ok(self.client(id).await?.delete_team(team_id, version).await?)
    }

    pub async fn list_audit(
        &self,
        id: &str,
        cursor: Option<String>,
    ) -> Result<Page<AuditEntry>, ConsoleError> {
        Ok(self
            .client(id)
            .await?
            .list_audit(TEAMS_PAGE, cursor.as_deref())
            .await?)
    }
}

fn target(instance: &Instance) -> Target {
    Target {
        base_url: instance.base_url.clone(),
        ca_cert_pem: instance.ca_cert_pem.clone(),
        tls_verify: instance.tls_verify,
    }
}

/// The instance's nodes, when the token may read them (a gateway older
/// than the node list, or one that fails to answer, gives none).
async fn nodes_health(client: &GatewayClient, scopes: &[Scope]) -> Option<NodesHealth> {
    if !scopes
        .iter()
        .any(|s| matches!(s, Scope::Read | Scope::Admin))
    {
        return None;
    }
    match client.nodes().await {
        Ok(list) => Some(NodesHealth::of(&list.items)),
        Err(e) => {
            tracing::debug!(error = %e, "the instance's nodes could not be read");
            None
        }
    }
}

fn failed_report(checked_at: chrono::DateTime<Utc>, e: &ConsoleError) -> ConnectionReport {
    ConnectionReport {
        ok: false,
        checked_at,
        latency_ms: None,
        version: None,
        instance_id: None,
        instance_name: None,
        scopes: Vec::new(),
        clock_skew_ms: None,
        error: Some(report_error(e)),
        nodes: None,
    }
}
