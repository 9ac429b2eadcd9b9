//! `obra config show|validate|trust`: the resolved configuration with the layer each value comes from, checks
//! of the layers, and the approval of a project's grants and pins. Inside a project its `.obra/config.yaml` is
//! a layer; outside one it is not.

use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;

use super::args::{ConfigCommand, ConfigTrustArgs, GlobalArgs};
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
            let sources = sources(g)?;
            let trust = match &sources.project_root {
                Some(root) => Some(config::trust::status_of(&loaded, root)?),
                None => None,
            };
            let untrusted = trust.as_ref().is_some_and(|t| !t.is_trusted());
            if a.json {
                print_json(&entries)?;
            } else {
                for e in &entries {
                    // Grants and pins from a workspace file that is not approved are shown but not used.
                    let ignored = untrusted
                        && (e.key.starts_with("plugins.grants") || e.key.starts_with("plugins.pins"))
                        && sources
                            .project_root
                            .as_ref()
                            .is_some_and(|r| e.source.to_string().starts_with(&r.display().to_string()));
                    let note = if ignored { "  (NOT TRUSTED: not used until `obra config trust`)" } else { "" };
                    println!("{} = {}    # {}{note}", e.key, e.value_text(), e.source);
                }
                if let Some(trust) = &trust {
                    println!("# trust: {}", trust.summary());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ConfigCommand::Trust(a) => trust(g, a),
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

/// `obra config trust [--revoke]`: approve (or withdraw the approval of) exactly the grants and pins that the
/// project's own files set; the approval is kept in the user's data directory, outside the workspace.
fn trust(g: &GlobalArgs, a: ConfigTrustArgs) -> Result<ExitCode> {
    let sources = sources(g)?;
    let Some(root) = sources.project_root.clone() else {
        anyhow::bail!(
            "not inside a project: `obra config trust` approves the grants of a project's .obra/config.yaml; run \
             it in the project's directory (or give -C DIR)"
        );
    };
    let store_path = config::TrustStore::default_path()?;
    if a.revoke {
        let mut store = config::TrustStore::read(&store_path)?;
        let had = store.revoke(&root);
        store.write(&store_path)?;
        if a.json {
            print_json(&json!({ "status": if had { "revoked" } else { "not_trusted" }, "root": root }))?;
        } else if had {
            println!(
                "withdrew the approval of {}'s grants and pins; runs there stop until you trust them again",
                root.display()
            );
        } else {
            println!("{} had no approval to withdraw", root.display());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let loaded = config::load(&sources)?;
    let approved = config::trust::approve(&loaded, &root)?;
    match (&approved, a.json) {
        (None, true) => print_json(&json!({ "status": "not_needed", "root": root }))?,
        (None, false) => println!(
            "nothing to approve: no file inside {} sets plugins.grants or plugins.pins (those of your user config \
             need no approval)",
            root.display()
        ),
        (Some(policy), true) => print_json(&json!({
            "status": "trusted",
            "root": policy.root,
            "sha256": policy.sha256,
            "files": policy.layers.iter().map(|l| l.file.display().to_string()).collect::<Vec<_>>(),
        }))?,
        (Some(policy), false) => println!(
            "approved these grants and pins of {} (sha256 {}), recorded in {}:\n{}\nThey count until this content \
             changes; then runs stop and ask you again.",
            policy.root.display(),
            policy.sha256,
            store_path.display(),
            policy.describe()
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// The layers the current (or `-C`) directory uses: its project's config when it is inside one.
pub(super) fn sources(g: &GlobalArgs) -> Result<ConfigSources> {
    let options = open_options(g);
    let root = config::find_project_root(&options.start_dir()?);
    Ok(ConfigSources::from_process(root, options.profile, options.sets))
}
