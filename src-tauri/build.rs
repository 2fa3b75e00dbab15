// Declares the app's commands so that capabilities can grant them one by one
// (least privilege); nothing else reaches the backend.
fn main() {
    println!("cargo:rerun-if-changed=capabilities");
    println!("cargo:rerun-if-changed=icons");
    println!("cargo:rerun-if-changed=tauri.conf.json");
    let commands = &[
        "keyring_status",
        "list_instances",
        "add_instance",
        "update_instance",
        "remove_instance",
        "test_connection",
        "probe_instance",
        "fleet_overview",
        "refresh_fleet",
        "current_instance",
        "set_current_instance",
        "list_teams",
        "create_team",
        "update_team",
        "delete_team",
        "list_audit",
        "list_consumers",
        "create_consumer",
        "update_consumer",
        "list_consumer_keys",
        "create_consumer_key",
        "rotate_consumer_key",
        "revoke_consumer_key",
        "find_keys",
        "list_plans",
        "create_plan",
        "list_subscriptions",
        "create_subscription",
        "subscription_action",
        "change_subscription_plan",
        "payment_settings",
        "update_payment_settings",
        "check_billing",
        "update_plan",
        "delete_plan",
        "list_payment_methods",
        "add_payment_method",
        "set_default_payment_method",
        "remove_payment_method",
        "list_charges",
        "list_wallets",
        "list_ledger",
        "create_ledger_entry",
    ];
    tauri_build::try_build(
        tauri_build::Attributes::new()
            .app_manifest(tauri_build::AppManifest::new().commands(commands)),
    )
    .expect("tauri build script");
}
