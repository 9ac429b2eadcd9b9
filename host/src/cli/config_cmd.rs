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
use crate::orchestrator::{ResolvedConfig, resolve_config};

pub(super) async fn run(g: &GlobalArgs, cmd: ConfigCommand) -> Result<ExitCode> {
    match cmd {
        ConfigCommand::Show(a) => {
            let resolved = resolve_config(&open_options(g)).await?;
            let (loaded, sources) = (&resolved.config, &resolved.sources);
            let mut entries = loaded.provenance();
            if let Some(key) = &a.key {
                entries = config::select(&entries, key)?;
            }
            let trust = match &sources.project_root {
                Some(root) => Some(config::trust::status_of(loaded, root)?),
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
                println!("# {}", describe_scope(&resolved));
                if let Some(trust) = &trust {
                    println!("# trust: {}", trust.summary());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ConfigCommand::Trust(a) => trust(g, a).await,
        ConfigCommand::Validate(a) => {
            // The configuration a run here would use (the project's stored profile included), or one file.
            let resolved = match &a.file {
                Some(_) => None,
                None => Some(resolve_config(&open_options(g)).await),
            };
            let sources = match &resolved {
                Some(Ok(r)) => r.sources.clone(),
                _ => sources(g)?,
            };
            let result: Result<LoadedConfig, String> = match (&a.file, resolved.as_ref()) {
                (Some(file), _) => config::validate_file(file).map_err(|e| e.to_string()),
                (None, Some(Ok(r))) => Ok(r.config.clone()),
                (None, Some(Err(e))) => Err(match e.downcast_ref::<config::ConfigError>() {
                    Some(e) => e.to_string(),
                    None => format!("{e:#}"),
                }),
                (None, None) => unreachable!("resolved whenever no file is given"),
            };
            let layers: Vec<String> = match &result {
                Ok(LoadedConfig { layers, .. }) => layers.iter().map(|l| l.source.to_string()).collect(),
                Err(_) => Vec::new(),
            };
            let mut error = result.as_ref().err().cloned();
            // The project's prompt templates and rules (.obra/templates/, .obra/prompt_rules.yaml).
            if error.is_none()
                && a.file.is_none()
                && let Some(root) = &sources.project_root
                && let Err(e) = PromptRenderer::for_project(root)
            {
                error = Some(format!("{e:#}"));
            }
            let summary = match (&result, resolved.as_ref()) {
                (Ok(c), Some(Ok(r))) => Some(effective(&c.config, r)),
                _ => None,
            };
            if a.json {
                print_json(&json!({ "ok": error.is_none(), "error": error, "layers": layers,
                                    "profile": sources.profile, "project": resolved.as_ref()
                                        .and_then(|r| r.as_ref().ok()).and_then(|r| r.project.as_ref())
                                        .map(|p| &p.name),
                                    "effective": summary }))?;
            } else if let Some(e) = &error {
                eprintln!("error: {e}");
            } else {
                let plural = if layers.len() == 1 { "" } else { "s" };
                println!("configuration OK ({} layer{plural}: {})", layers.len(), layers.join(", "));
                if let Some(summary) = &summary {
                    println!(
                        "  a run uses: {} iteration(s), gates {}, agent {}, LLM {}",
                        summary["max_iterations"],
                        summary["gates"]
                            .as_array()
                            .map(|g| g.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(", "))
                            .unwrap_or_default(),
                        summary["agent"].as_str().unwrap_or("?"),
                        summary["llm"].as_str().unwrap_or("?"),
                    );
                }
            }
            Ok(if error.is_some() { ExitCode::FAILURE } else { ExitCode::SUCCESS })
        }
    }
}

/// What a run under `config` uses, in brief: the iteration limit, the enabled gates by name (`lint` for the
/// second tests gate), the agent and the LLM; shared by `config validate`, `doctor` and `status`.
pub(super) fn effective(config: &config::Config, resolved: &ResolvedConfig) -> serde_json::Value {
    json!({
        "project": resolved.project.as_ref().map(|p| &p.name),
        "profile": resolved.sources.profile,
        "max_iterations": config.engine.max_iterations,
        "gates": config.gates.iter().filter(|g| g.enabled).map(|g| g.display_name()).collect::<Vec<_>>(),
        "agent": config.agent.plugin,
        "llm": config.llm.provider,
    })
}

/// The `# ...` line of `config show` that says whose configuration it is.
fn describe_scope(resolved: &ResolvedConfig) -> String {
    let profile = match &resolved.sources.profile {
        Some(p) => format!("profile {p}"),
        None => "no profile".to_string(),
    };
    match (&resolved.project, &resolved.no_project_because) {
        (Some(project), _) => format!("configuration of project \"{}\" ({profile})", project.name),
        (None, Some(why)) if resolved.sources.project_root.is_some() => {
            format!("configuration of this directory ({profile}); no project's stored profile applies: {why}")
        }
        (None, _) => format!("configuration outside any project ({profile})"),
    }
}

/// `obra config trust [--revoke]`: approve (or withdraw the approval of) exactly the grants and pins that the
/// project's own files set; the approval is kept in the user's data directory, outside the workspace.
async fn trust(g: &GlobalArgs, a: ConfigTrustArgs) -> Result<ExitCode> {
    let resolved = resolve_config(&open_options(g)).await?;
    let sources = resolved.sources.clone();
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
    let approved = config::trust::approve(&resolved.config, &root)?;
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

/// The layers of the current (or `-C`) directory, without a project's stored profile: where user profiles
/// are looked for (`obra profile`), and what `config validate` names when the configuration does not load.
pub(super) fn sources(g: &GlobalArgs) -> Result<ConfigSources> {
    let options = open_options(g);
    let root = config::find_project_root(&options.start_dir()?);
    Ok(ConfigSources::from_process(root, options.profile, options.sets))
}
