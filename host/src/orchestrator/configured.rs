//! The plugins a configuration names, checked without loading any: what `obra status` shows. Loading compiles
//! components (seconds on a cold cache), so a read command only checks that each name is installed: a
//! built-in, a plugin directory on the search path, or the plugin directory a path reference names. `obra
//! doctor` and every execution load them for real.

use std::collections::BTreeSet;

use anyhow::{Result, bail};
use serde::Serialize;

use super::{Orchestrator, is_plugin_path};
use crate::engine::rules::NativeRule;
use crate::plugins::PluginHost;
use crate::plugins::manifest::Manifest;

/// The plugins the configuration names, by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfiguredPlugins {
    /// `agent.plugin`.
    pub agent: String,
    /// `llm.provider`, when an LLM is configured.
    pub llm: Option<String>,
    /// The enabled gates, by display name.
    pub gates: Vec<String>,
    /// The enabled breakpoint rules' plugins.
    pub rules: Vec<String>,
}

impl Orchestrator {
    /// The plugins the configuration names, each checked to be installed (nothing is loaded or compiled).
    pub fn configured_plugins(&self) -> Result<ConfiguredPlugins> {
        let config = &self.config().config;
        let installed = self.installed_plugin_names();
        let installed = |reference: &str| {
            if is_plugin_path(reference) {
                let path = self.root().join(reference);
                path.join("plugin.toml").is_file() || (path.is_file() && reference.ends_with(".toml"))
            } else {
                installed.contains(reference)
            }
        };
        let mut problems = Vec::new();
        let mut references = vec![config.agent.plugin.as_str()];
        if config.llm.enabled() {
            references.push(config.llm.provider.as_str());
        }
        references.extend(config.gates.iter().filter(|g| g.enabled).map(|g| g.plugin.as_str()));
        for reference in references {
            if !installed(reference) {
                problems.push(format!("{reference} is not installed"));
            }
        }
        for (i, rule) in config.rules.iter().enumerate().filter(|(_, r)| r.enabled) {
            // Host-native rules (ADR 14) are part of obra; their config is checked here as a run would.
            match NativeRule::resolve(&rule.plugin, &rule.config, &format!("rules[{i}].config")) {
                Some(Err(e)) => problems.push(format!("invalid configuration of the `{}` rule: {e}", rule.plugin)),
                Some(Ok(_)) => {}
                None if !installed(&rule.plugin) => problems.push(format!("{} is not installed", rule.plugin)),
                None => {}
            }
        }
        if !problems.is_empty() {
            bail!("{}; `obra plugin list` shows the installed plugins", problems.join("; "));
        }
        Ok(ConfiguredPlugins {
            agent: config.agent.plugin.clone(),
            llm: config.llm.enabled().then(|| config.llm.provider.clone()),
            gates: config.gates.iter().filter(|g| g.enabled).map(|g| g.display_name().to_string()).collect(),
            rules: config.rules.iter().filter(|r| r.enabled).map(|r| r.plugin.clone()).collect(),
        })
    }

    /// The names of the built-in plugins and of those on the search path, from their manifests alone.
    fn installed_plugin_names(&self) -> BTreeSet<String> {
        let mut names: BTreeSet<String> = crate::builtin::BUILTINS
            .iter()
            .filter_map(|b| Manifest::parse("built-in plugin", b.manifest).ok())
            .map(|m| m.name)
            .collect();
        let dirs = PluginHost::search_path_of(&self.config().config.plugins, Some(self.root()));
        for dir in dirs {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for entry in entries.flatten() {
                let manifest = entry.path().join("plugin.toml");
                if let Ok(text) = std::fs::read_to_string(&manifest)
                    && let Ok(m) = Manifest::parse(&manifest.display().to_string(), &text)
                {
                    names.insert(m.name);
                }
            }
        }
        names
    }
}
