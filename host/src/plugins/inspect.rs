//! Reading a component's imports and exports (with wasmparser, before anything is compiled) and checking them
//! against its manifest: a plugin may import only the capabilities its manifest declares and the host provides,
//! and must export the interface of its kind.

use serde::Serialize;
use wasmparser::{Parser, Payload};

use super::bindings::{self, Capability};
use super::config::WorkspaceAccess;
use super::manifest::{Manifest, PluginKind};

/// WASI 0.2 packages the host links (locked down: no preopens, env, args). `wasi:sockets` is deliberately absent:
/// plugins reach the network only through `obra:plugin/http`.
const WASI_PACKAGES: &[&str] = &["wasi:io", "wasi:cli", "wasi:clocks", "wasi:filesystem", "wasi:random"];

/// The top-level imports and exports of a component, by name (e.g. `obra:plugin/log@0.1.0`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ComponentInterfaces {
    /// Imported names.
    pub imports: Vec<String>,
    /// Exported names.
    pub exports: Vec<String>,
}

/// Read the top-level imports and exports of a component. Fails when the bytes are not a component.
pub fn read_interfaces(bytes: &[u8]) -> Result<ComponentInterfaces, String> {
    if !Parser::is_component(bytes) {
        return Err(if Parser::is_core_wasm(bytes) {
            "it is a core WebAssembly module, not a component: build it for wasm32-wasip2 (or run `wasm-tools component new`)".into()
        } else {
            "it is not a WebAssembly component".into()
        });
    }
    let mut out = ComponentInterfaces::default();
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| format!("it is not a valid component: {e}"))?;
        match payload {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 0 => {
                for import in reader {
                    let import = import.map_err(|e| format!("it is not a valid component: {e}"))?;
                    out.imports.push(import.name.name.to_string());
                }
            }
            Payload::ComponentExportSection(reader) if depth == 0 => {
                for export in reader {
                    let export = export.map_err(|e| format!("it is not a valid component: {e}"))?;
                    out.exports.push(export.name.name.to_string());
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Split `ns:pkg/iface@version` into (`ns:pkg`, `iface`, `version`).
fn split_name(name: &str) -> Option<(&str, &str, &str)> {
    let (path, version) = name.split_once('@')?;
    let (package, interface) = path.split_once('/')?;
    Some((package, interface, version))
}

/// Why `manifest` may not import `name`, if it may not.
fn refuse_import(manifest: &Manifest, name: &str) -> Option<String> {
    let plugin = &manifest.name;
    let Some((package, interface, version)) = split_name(name) else {
        return Some(format!("plugin {plugin:?} imports {name:?}, which this host does not provide"));
    };
    if package == "obra:plugin" {
        if version != manifest.api_version {
            return Some(format!(
                "plugin {plugin:?} imports {name} but its manifest says api-version = \"{}\": rebuild it against obra:plugin@{} or fix api-version",
                manifest.api_version, manifest.api_version
            ));
        }
        let Some((_, needs)) = bindings::capability_interfaces(version).iter().find(|(i, _)| *i == interface) else {
            return Some(format!("plugin {plugin:?} imports {name}, which is not a host capability"));
        };
        let caps = &manifest.capabilities;
        let (declared, how) = match needs {
            Capability::Always => (true, ""),
            Capability::Commands => {
                (!caps.commands.is_empty(), "commands = [ { program = \"...\", args = [\"**\"] } ]")
            }
            Capability::Http => (!caps.http.is_empty(), "http = [\"https://...\"]"),
            Capability::Workspace => (caps.workspace != WorkspaceAccess::None, "workspace = \"read\" (or \"write\")"),
            Capability::Llm if manifest.kind == PluginKind::LlmProvider => {
                return Some(format!(
                    "plugin {plugin:?} imports {name}, but an llm-provider may not use the llm capability (it would ask itself)"
                ));
            }
            Capability::Llm => (caps.llm, "llm = true"),
            Capability::Kv => (caps.kv, "kv = true"),
        };
        return (!declared).then(|| {
            format!(
                "plugin {plugin:?} imports {name}, but its manifest does not declare that capability: add {how} under [capabilities] in its plugin.toml (and grant it in your config), or rebuild the plugin without it"
            )
        });
    }
    if package == "wasi:sockets" {
        return Some(format!(
            "plugin {plugin:?} imports {name}: plugins get no direct network access; use obra:plugin/http with an http grant"
        ));
    }
    if !(WASI_PACKAGES.contains(&package) && version.starts_with("0.2.")) {
        return Some(format!("plugin {plugin:?} imports {name}, which this host does not provide"));
    }
    None
}

/// Check a component's imports against its manifest: every refused import, one line each.
pub fn check_imports(manifest: &Manifest, interfaces: &ComponentInterfaces) -> Vec<String> {
    interfaces.imports.iter().filter_map(|i| refuse_import(manifest, i)).collect()
}

/// Check a component exports the interface of its manifest's kind: the problem, if it does not.
pub fn check_export(manifest: &Manifest, interfaces: &ComponentInterfaces) -> Option<String> {
    let wanted = manifest.export_interface();
    if interfaces.exports.contains(&wanted) {
        return None;
    }
    let found = if interfaces.exports.is_empty() { "nothing".to_string() } else { interfaces.exports.join(", ") };
    Some(format!(
        "plugin {:?} is declared as kind = \"{}\" but does not export {wanted} (it exports {found}): build it for the {}-plugin world",
        manifest.name, manifest.kind, manifest.kind
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::config::CommandPattern;

    fn manifest(kind: &str, caps: &str) -> Manifest {
        Manifest::parse(
            "t/plugin.toml",
            &format!("api-version = \"0.1.0\"\nname = \"t\"\nversion = \"0.1.0\"\nkind = \"{kind}\"\n[capabilities]\n{caps}\n"),
        )
        .unwrap()
    }

    fn ifaces(imports: &[&str], exports: &[&str]) -> ComponentInterfaces {
        ComponentInterfaces {
            imports: imports.iter().map(|s| s.to_string()).collect(),
            exports: exports.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn declared_capabilities_and_wasi_are_accepted() {
        let m = manifest("agent", "commands = [ { program = \"claude\", args = [\"**\"] } ]\nworkspace = \"read\"");
        let i = ifaces(
            &[
                "obra:plugin/types@0.1.0",
                "obra:plugin/log@0.1.0",
                "obra:plugin/process@0.1.0",
                "obra:plugin/workspace@0.1.0",
                "wasi:cli/environment@0.2.6",
                "wasi:io/streams@0.2.6",
            ],
            &["obra:plugin/agent@0.1.0"],
        );
        assert_eq!(check_imports(&m, &i), Vec::<String>::new());
        assert_eq!(check_export(&m, &i), None);
        assert_eq!(m.capabilities.commands, vec![CommandPattern::new("claude", &["**"])]);
    }

    #[test]
    fn undeclared_and_unprovided_imports_are_named() {
        let m = manifest("quality-gate", "");
        let i = ifaces(
            &[
                "obra:plugin/process@0.1.0",
                "wasi:http/outgoing-handler@0.2.0",
                "wasi:sockets/tcp@0.2.0",
                "obra:plugin/kv@0.1.0",
            ],
            &["obra:plugin/agent@0.1.0"],
        );
        let mut p = check_imports(&m, &i);
        p.extend(check_export(&m, &i));
        assert_eq!(p.len(), 5, "{p:#?}");
        assert!(p[0].contains("imports obra:plugin/process@0.1.0, but its manifest does not declare"), "{}", p[0]);
        assert!(p[0].contains("commands = "), "{}", p[0]);
        assert!(p[1].contains("wasi:http/outgoing-handler@0.2.0, which this host does not provide"), "{}", p[1]);
        assert!(p[2].contains("no direct network access"), "{}", p[2]);
        assert!(p[3].contains("kv = true"), "{}", p[3]);
        assert!(p[4].contains("does not export obra:plugin/quality-gate@0.1.0"), "{}", p[4]);
    }

    #[test]
    fn llm_provider_may_not_import_llm_and_versions_must_match() {
        let m = manifest("llm-provider", "");
        let i = ifaces(&["obra:plugin/llm@0.1.0", "obra:plugin/log@0.2.0"], &["obra:plugin/llm-provider@0.1.0"]);
        assert_eq!(check_export(&m, &i), None);
        let p = check_imports(&m, &i);
        assert_eq!(p.len(), 2);
        assert!(p[0].contains("an llm-provider may not use the llm capability"));
        assert!(p[1].contains("api-version = \"0.1.0\""));
    }

    #[test]
    fn non_components_are_explained() {
        assert!(read_interfaces(b"\0asm\x01\0\0\0").unwrap_err().contains("core WebAssembly module"));
        assert!(read_interfaces(b"hello").unwrap_err().contains("not a WebAssembly component"));
    }
}
