//! The generated bindings of `wit/` (package `obra:plugin@0.1.0`). Hidden: plugin authors use the re-exports
//! and helpers of the crate root instead.
//!
//! The host capability imports (`process`, `http`, `workspace`, `llm`, `kv`, `log`) and the shared `types`
//! are generated once, in [`caps`]; the four plugin worlds are generated in their own modules with `with`
//! pointing back at [`caps`], so every world shares one set of import bindings and types. Each world's
//! `export!` macro is public (`pub_export_macro`), which also makes wit-bindgen keep the export half of the
//! world's type information out of this library: it is emitted only where a plugin invokes the macro.

/// The host capability world: every import, plus the shared types (also the unused ones, which the
/// plugin worlds refer to).
pub mod caps {
    wit_bindgen::generate!({
        world: "host-capabilities",
        path: "../../wit",
        generate_unused_types: true,
        additional_derives: [PartialEq],
        runtime_path: "obra_plugin_sdk::__private::wit_bindgen::rt",
    });
}

macro_rules! plugin_world {
    ($module:ident, $world:literal, $default:literal) => {
        #[doc = concat!("The `", $world, "` world.")]
        pub mod $module {
            wit_bindgen::generate!({
                world: $world,
                path: "../../wit",
                with: {
                    "obra:plugin/types@0.1.0": crate::bindings::caps::obra::plugin::types,
                    "obra:plugin/process@0.1.0": crate::bindings::caps::obra::plugin::process,
                    "obra:plugin/http@0.1.0": crate::bindings::caps::obra::plugin::http,
                    "obra:plugin/workspace@0.1.0": crate::bindings::caps::obra::plugin::workspace,
                    "obra:plugin/llm@0.1.0": crate::bindings::caps::obra::plugin::llm,
                    "obra:plugin/kv@0.1.0": crate::bindings::caps::obra::plugin::kv,
                    "obra:plugin/log@0.1.0": crate::bindings::caps::obra::plugin::log,
                },
                additional_derives: [PartialEq],
                pub_export_macro: true,
                export_macro_name: "export",
                default_bindings_module: $default,
                runtime_path: "obra_plugin_sdk::__private::wit_bindgen::rt",
            });
        }
    };
}

plugin_world!(agent_world, "agent-plugin", "obra_plugin_sdk::bindings::agent_world");
plugin_world!(llm_provider_world, "llm-provider-plugin", "obra_plugin_sdk::bindings::llm_provider_world");
plugin_world!(quality_gate_world, "quality-gate-plugin", "obra_plugin_sdk::bindings::quality_gate_world");
plugin_world!(breakpoint_rule_world, "breakpoint-rule-plugin", "obra_plugin_sdk::bindings::breakpoint_rule_world");
