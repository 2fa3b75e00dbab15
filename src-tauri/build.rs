// The IPC commands are declared once, as the `#[tauri::command]` functions
// of `src/commands/`: this script reads them (`build/ipc.rs`) and makes
// everything else that names them — the permissions (one per command, so
// that capabilities grant them one by one: least privilege), the main
// window's capability, the invoke handler and the UI's TypeScript
// functions. Nothing else reaches the backend.

#[path = "build/ipc.rs"]
mod ipc;

use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=capabilities");
    println!("cargo:rerun-if-changed=icons");
    println!("cargo:rerun-if-changed=tauri.conf.json");
    println!("cargo:rerun-if-changed=src-tauri/src/commands");
    println!("cargo:rerun-if-changed=src-tauri/build");
    let commands = ipc::commands(Path::new("src-tauri/src/commands"));
    ipc::write_if_changed(
        Path::new("capabilities/default.json"),
        &ipc::capability(&commands),
    );
    ipc::write_if_changed(
        Path::new("ui/src/bindings/commands.ts"),
        &ipc::typescript_module(&commands),
    );
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    ipc::write_if_changed(
        &Path::new(&out).join("handler.rs"),
        &ipc::handler(&commands),
    );
    // Tauri keeps the names for the whole build: they live as long as it.
    let names: Vec<&'static str> = commands
        .iter()
        .map(|c| &*Box::leak(c.name.clone().into_boxed_str()))
        .collect();
    tauri_build::try_build(
        tauri_build::Attributes::new()
            .app_manifest(tauri_build::AppManifest::new().commands(names.leak())),
    )
    .expect("tauri build script");
}
