use tollgate_api::{
    AddPaymentMethod, BillingCheck, Charge, CreateLedgerEntry, CreatePlan, CreateSubscription,
    LedgerEntry, Page, PaymentMethod, PaymentSettings, Plan, Subscription, UpdatePaymentSettings,
    UpdatePlan, Wallet,
};

use super::{CommandResult, ConsoleState};

#[tauri::command]
pub async fn list_plans(
    console: ConsoleState<'_>,
    instance_id: String,
    cursor: Option<String>,
) -> CommandResult<Page<Plan>> {
    Ok(console.list_plans(&instance_id, cursor).await?)
}

#[tauri::command]
pub async fn create_plan(
    console: ConsoleState<'_>,
    instance_id: String,
    input: CreatePlan,
    idempotency_key: String,
) -> CommandResult<Plan> {
    Ok(console
        .create_plan(&instance_id, input, &idempotency_key)
        .await?)
}

/// `status` and `consumerId` null mean "any".
#[tauri::command]
pub async fn list_subscriptions(
    console: ConsoleState<'_>,
    instance_id: String,
    status: Option<String>,
    consumer_id: Option<String>,
    cursor: Option<String>,
) -> CommandResult<Page<Subscription>> {
    Ok(console
        .list_subscriptions(&instance_id, status, consumer_id, cursor)
        .await?)
}

#[tauri::command]
pub async fn create_subscription(
    console: ConsoleState<'_>,
    instance_id: String,
    input: CreateSubscription,
    idempotency_key: String,
) -> CommandResult<Subscription> {
    Ok(console
        .create_subscription(&instance_id, input, &idempotency_key)
        .await?)
}

#[tauri::command]
pub async fn subscription_action(
    console: ConsoleState<'_>,
    instance_id: String,
    subscription_id: String,
    action: String,
    reason: String,
) -> CommandResult<Subscription> {
    Ok(console
        .subscription_action(&instance_id, &subscription_id, &action, &reason)
        .await?)
}

#[tauri::command]
pub async fn change_subscription_plan(
    console: ConsoleState<'_>,
    instance_id: String,
    subscription_id: String,
    plan_id: String,
) -> CommandResult<Subscription> {
    Ok(console
        .change_subscription_plan(&instance_id, &subscription_id, &plan_id)
        .await?)
}

#[tauri::command]
pub async fn list_payment_methods(
    console: ConsoleState<'_>,
    instance_id: String,
    consumer_id: String,
) -> CommandResult<Vec<PaymentMethod>> {
    Ok(console
        .list_payment_methods(&instance_id, &consumer_id)
        .await?)
}

/// A refused card fails with `card_error`, its message naming the processor's codes.
#[tauri::command]
pub async fn add_payment_method(
    console: ConsoleState<'_>,
    instance_id: String,
    consumer_id: String,
    card: AddPaymentMethod,
) -> CommandResult<PaymentMethod> {
    Ok(console
        .add_payment_method(&instance_id, &consumer_id, card)
        .await?)
}

#[tauri::command]
pub async fn set_default_payment_method(
    console: ConsoleState<'_>,
    instance_id: String,
    method_id: String,
) -> CommandResult<PaymentMethod> {
    Ok(console
        .set_default_payment_method(&instance_id, &method_id)
        .await?)
}

#[tauri::command]
pub async fn remove_payment_method(
    console: ConsoleState<'_>,
    instance_id: String,
    method_id: String,
) -> CommandResult<()> {
    Ok(console
        .remove_payment_method(&instance_id, &method_id)
        .await?)
}

#[tauri::command]
pub async fn list_charges(
    console: ConsoleState<'_>,
    instance_id: String,
    consumer_id: String,
    cursor: Option<String>,
) -> CommandResult<Page<Charge>> {
    Ok(console
        .list_charges(&instance_id, &consumer_id, cursor)
        .await?)
}

#[tauri::command]
pub async fn list_wallets(
    console: ConsoleState<'_>,
    instance_id: String,
    consumer_id: String,
) -> CommandResult<Vec<Wallet>> {
    Ok(console.list_wallets(&instance_id, &consumer_id).await?)
}

#[tauri::command]
pub async fn list_ledger(
    console: ConsoleState<'_>,
    instance_id: String,
    consumer_id: String,
    currency: String,
    cursor: Option<String>,
) -> CommandResult<Page<LedgerEntry>> {
    Ok(console
        .list_ledger(&instance_id, &consumer_id, &currency, cursor)
        .await?)
}

#[tauri::command]
pub async fn create_ledger_entry(
    console: ConsoleState<'_>,
    instance_id: String,
    consumer_id: String,
    currency: String,
    input: CreateLedgerEntry,
    idempotency_key: String,
) -> CommandResult<LedgerEntry> {
    Ok(console
        .create_ledger_entry(
            &instance_id,
            &consumer_id,
            &currency,
            input,
            &idempotency_key,
        )
        .await?)
}

#[tauri::command]
pub async fn payment_settings(
    console: ConsoleState<'_>,
    instance_id: String,
) -> CommandResult<PaymentSettings> {
    Ok(console.payment_settings(&instance_id).await?)
}

/// Guarded by the `version` the admin saw; a stale one fails with `precondition_failed`.
#[tauri::command]
pub async fn update_payment_settings(
    console: ConsoleState<'_>,
    instance_id: String,
    update: UpdatePaymentSettings,
    version: i64,
) -> CommandResult<PaymentSettings> {
    Ok(console
        .update_payment_settings(&instance_id, update, version)
        .await?)
}

#[tauri::command]
pub async fn check_billing(
    console: ConsoleState<'_>,
    instance_id: String,
) -> CommandResult<BillingCheck> {
    Ok(console.check_billing(&instance_id).await?)
}

/// Guarded by the `version` the admin saw; the currency never changes.
#[tauri::command]
pub async fn update_plan(
    console: ConsoleState<'_>,
    instance_id: String,
    plan_id: String,
    update: UpdatePlan,
    version: i64,
) -> CommandResult<Plan> {
    Ok(console
        .update_plan(&instance_id, &plan_id, update, version)
        .await?)
}

/// Refused with `conflict` while anyone subscribes to the plan.
#[tauri::command]
pub async fn delete_plan(
    console: ConsoleState<'_>,
    instance_id: String,
    plan_id: String,
    version: i64,
) -> CommandResult<()> {
    Ok(console.delete_plan(&instance_id, &plan_id, version).await?)
}
