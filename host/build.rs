//! Builds the plugins workspace (`plugins/`) for wasm32-wasip2 and embeds the built-in plugins in `obra`.
//!
//! The plugins are a separate cargo workspace with their own target directory (`<target>/plugins-wasm`), so
//! the nested cargo never waits on the outer build's lock. Every plugin directory with a `plugin.toml` is
//! copied to `$OUT_DIR/plugins/<name>/`; those outside `plugins/testing/` are embedded as built-ins, and
//! the test plugins' directory is exported to tests as `OBRA_BUILT_PLUGINS_DIR`.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let repo = manifest_dir.parent().expect("host/ has a parent").to_path_buf();
    let plugins = repo.join("plugins");
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));

    println!("cargo:rerun-if-changed={}", repo.join("wit").display());
    watch_sources(&plugins);

    ensure_wasm_target();
    let wasm_target_dir = wasm_target_dir(&out_dir);
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&plugins)
        .args(["build", "--release", "--locked", "--workspace", "--target", "wasm32-wasip2", "--target-dir"])
        .arg(&wasm_target_dir);
    // The outer build's settings are for the host target; none of them may leak into the wasm build.
    for (key, _) in env::vars() {
        if key.starts_with("CARGO_FEATURE_")
            || key.starts_with("CARGO_CFG_")
            || matches!(
                key.as_str(),
                "RUSTFLAGS"
                    | "CARGO_ENCODED_RUSTFLAGS"
                    | "CARGO_TARGET_DIR"
                    | "CARGO_BUILD_TARGET"
                    | "CARGO_BUILD_RUSTFLAGS"
                    | "RUSTC_WORKSPACE_WRAPPER"
                    | "CARGO_LLVM_COV"
                    | "LLVM_PROFILE_FILE"
            )
        {
            cmd.env_remove(&key);
        }
    }
    let status = cmd.status().unwrap_or_else(|e| panic!("cannot run cargo to build the plugins: {e}"));
    if !status.success() {
        panic!(
            "building the plugins workspace failed (see the cargo output above). It needs the wasm32-wasip2 \
             target: `rustup target add wasm32-wasip2` (rust-toolchain.toml lists it, so rustup normally adds it)."
        );
    }

    let release = wasm_target_dir.join("wasm32-wasip2").join("release");
    let dist = out_dir.join("plugins");
    let _ = fs::remove_dir_all(&dist);
    let mut builtins =
        String::from("/// The built-in plugins, embedded at build time.\npub static BUILTINS: &[BuiltinPlugin] = &[\n");
    for (dir, testing) in plugin_dirs(&plugins) {
        let manifest_text = fs::read_to_string(dir.join("plugin.toml")).expect("read plugin.toml");
        let manifest: toml::Table =
            manifest_text.parse().unwrap_or_else(|e| panic!("{}: {e}", dir.join("plugin.toml").display()));
        let name = manifest["name"].as_str().expect("plugin.toml has a name").to_string();
        let wasm = manifest["wasm"].as_str().expect("plugin.toml names its wasm").to_string();
        let built = release.join(&wasm);
        let target = dist.join(&name);
        fs::create_dir_all(&target).expect("create plugin dist dir");
        let bytes =
            fs::read(&built).unwrap_or_else(|e| panic!("plugin {name}: {} was not built: {e}", built.display()));
        fs::write(target.join(&wasm), &bytes).expect("write the component");
        fs::write(target.join("plugin.toml"), pin_sha256(&manifest_text, &bytes)).expect("write plugin.toml");
        if !testing {
            writeln!(
                builtins,
                "    BuiltinPlugin {{ manifest: include_str!({:?}), wasm: include_bytes!({:?}) }},",
                target.join("plugin.toml"),
                target.join(&wasm)
            )
            .unwrap();
        }
    }
    builtins.push_str("];\n");
    fs::write(out_dir.join("builtin_plugins.rs"), builtins).expect("write builtin_plugins.rs");
    println!("cargo:rustc-env=OBRA_BUILT_PLUGINS_DIR={}", dist.display());
}

/// The manifest with `sha256 = "<hash of the component>"` added after its top-level `wasm = ...` line (before any
/// table), unless it already pins one: the host requires the pin for plugins loaded from a directory.
fn pin_sha256(manifest: &str, component: &[u8]) -> String {
    if manifest.lines().any(|l| l.trim_start().starts_with("sha256")) {
        return manifest.to_string();
    }
    let hash = hex::encode(Sha256::digest(component));
    let mut out = String::with_capacity(manifest.len() + 80);
    for line in manifest.lines() {
        out.push_str(line);
        out.push('\n');
        if line.trim_start().starts_with("wasm") && line.contains('=') {
            out.push_str(&format!("sha256 = \"{hash}\"\n"));
        }
    }
    out
}

/// `<target>/plugins-wasm`, found from OUT_DIR (`<target>/<profile>/build/<pkg>/out`).
fn wasm_target_dir(out_dir: &Path) -> PathBuf {
    out_dir.ancestors().nth(4).map(|target| target.join("plugins-wasm")).unwrap_or_else(|| out_dir.join("plugins-wasm"))
}

/// Every directory under `plugins/` (and `plugins/testing/`) holding a `plugin.toml`, with whether it is a
/// test plugin, sorted by path so the build is reproducible.
fn plugin_dirs(plugins: &Path) -> Vec<(PathBuf, bool)> {
    let mut found = Vec::new();
    for (base, testing) in [(plugins.to_path_buf(), false), (plugins.join("testing"), true)] {
        let Ok(entries) = fs::read_dir(&base) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.join("plugin.toml").is_file() {
                found.push((path, testing));
            }
        }
    }
    found.sort();
    found
}

/// Make sure the toolchain has the wasm32-wasip2 standard library. rust-toolchain.toml lists the target, but
/// rustup applies that list only when it installs the toolchain, not to one it already has: add it then, when
/// rustup is there (the build already runs under it), or fail with the one command to run.
fn ensure_wasm_target() {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let installed = Command::new(&rustc)
        .args(["--print", "target-libdir", "--target", "wasm32-wasip2"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
        .is_some_and(|dir| dir.is_dir() && fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_some()));
    if installed {
        return;
    }
    let added = Command::new("rustup").args(["target", "add", "wasm32-wasip2"]).status();
    match added {
        Ok(status) if status.success() => {
            println!("cargo:warning=added the wasm32-wasip2 target with `rustup target add wasm32-wasip2`")
        }
        _ => panic!(
            "the wasm32-wasip2 target is not installed and rustup could not add it; run `rustup target add \
             wasm32-wasip2` (the built-in plugins are compiled for it)"
        ),
    }
}

/// Ask cargo to rerun this script when any plugin source, manifest or Cargo file changes.
fn watch_sources(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name == "target" || name.to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            watch_sources(&path);
        } else {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}
