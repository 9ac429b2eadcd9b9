//! `obra config show|validate`: the resolved configuration with the layer each value comes from, and checks of
//! the layers. Inside a project its `.obra/config.yaml` is a layer; outside one it is not.

use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;

use super::args::{ConfigCommand, GlobalArgs};
use super::open_options;
use super::output::print_json;
use crate::config::{self, ConfigSources, LoadedConfig};
use crate::engine::prompt::PromptRenderer;

pub(super) fn run(g: &GlobalArgs, cmd: ConfigCommand) -> Result<ExitCode> {
    match cmd {
        ConfigCommand::Show(a) => {
            let loaded = config::load(&sources(g)?)?;
            let mut entries = loaded.provenance();
            if let Some(key) = &a.key {
                entries = config::select(&entries, key)?;
            }
            if a.json {
                print_json(&entries)?;
            } else {
                for e in &entries {
                    println!("{} = {}    # {}", e.key, e.value_text(), e.source);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ConfigCommand::Validate(a) => {
            let sources = sources(g)?;
            let result = match &a.file {
                Some(file) => config::validate_file(file),
                None => config::load(&sources),
            };
            let layers: Vec<String> = match &result {
                Ok(LoadedConfig { layers, .. }) => layers.iter().map(|l| l.source.to_string()).collect(),
                Err(_) => Vec::new(),
            };
            let mut error = result.as_ref().err().map(ToString::to_string);
            // The project's prompt templates and rules (.obra/templates/, .obra/prompt_rules.yaml).
            if error.is_none()
                && a.file.is_none()
                && let Some(root) = &sources.project_root
                && let Err(e) = PromptRenderer::for_project(root)
            {
                error = Some(format!("{e:#}"));
            }
            if a.json {
                print_json(&json!({ "ok": error.is_none(), "error": error, "layers": layers }))?;
            } else if let Some(e) = &error {
                eprintln!("error: {e}");
            } else {
                let plural = if layers.len() == 1 { "" } else { "s" };
                println!("configuration OK ({} layer{plural}: {})", layers.len(), layers.join(", "));
            }
            Ok(if error.is_some() { ExitCode::FAILURE } else { ExitCode::SUCCESS })
        }
    }
}

/// The layers the current (or `-C`) directory uses: its project's config when it is inside one.
pub(super) fn sources(g: &GlobalArgs) -> Result<ConfigSources> {
    let options = open_options(g);
    let root = config::find_project_root(&options.start_dir()?);
    Ok(ConfigSources::from_process(root, options.profile, options.sets))
}
