//! `obra plugin list|info|check`. Inside a project the project's config, grants and `.obra/plugins/` apply;
//! outside one (a plugin author checking a build) the user's config and the built-ins do.

use std::process::ExitCode;

use anyhow::{Result, bail};
use serde_json::json;

use super::args::{GlobalArgs, PluginCommand};
use super::open_options;
use super::output::print_json;
use crate::orchestrator::{LoadedPlugins, Orchestrator, standalone_plugins};
use crate::plugins::{GrantSummary, PluginInfo, PluginSource};

pub(super) async fn run(g: &GlobalArgs, cmd: PluginCommand) -> Result<ExitCode> {
    let options = open_options(g);
    let project = match crate::config::find_project_root(&options.start_dir()?) {
        Some(_) => Some(Orchestrator::open(options.clone()).await?),
        None => None,
    };
    let standalone;
    let plugins: &LoadedPlugins = match &project {
        Some(o) => o.plugins().await?,
        None => {
            standalone = standalone_plugins(&options).await?;
            &standalone
        }
    };
    match cmd {
        PluginCommand::List(a) => {
            let list = plugins.host.list();
            let errors: Vec<String> = plugins.load_errors.iter().map(ToString::to_string).collect();
            if a.json {
                print_json(&json!({ "plugins": list, "load_errors": errors }))?;
            } else {
                println!("{:<24} {:<16} {:<8} {:<10} DESCRIPTION", "NAME", "KIND", "VERSION", "SOURCE");
                for p in &list {
                    println!(
                        "{:<24} {:<16} {:<8} {:<10} {}",
                        p.name,
                        p.kind.as_str(),
                        p.version,
                        source(p),
                        p.description
                    );
                }
                for e in &errors {
                    eprintln!("warning: not loaded: {e}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        PluginCommand::Info(a) => {
            let Some(info) = plugins.host.info(&a.name) else {
                let names: Vec<String> = plugins.host.list().into_iter().map(|p| p.name).collect();
                bail!("there is no plugin named {:?}; loaded plugins: {}", a.name, names.join(", "));
            };
            if a.json {
                print_json(&info)?;
            } else {
                print_info(&info);
            }
            Ok(ExitCode::SUCCESS)
        }
        PluginCommand::Check(a) => {
            let report = plugins.host.check(&a.path);
            if a.json {
                print_json(&report)?;
            } else {
                println!(
                    "Checking {}{}",
                    report.path.display(),
                    report.name.as_ref().map(|n| format!(" (plugin {n:?})")).unwrap_or_default()
                );
                for step in &report.steps {
                    println!("  {} {:<10} {}", if step.ok { "ok  " } else { "FAIL" }, step.step, step.detail);
                }
                if let Some(grant) = &report.grant {
                    print_grant(grant);
                }
                println!(
                    "{}",
                    if report.ok {
                        "The plugin is ready to use."
                    } else {
                        "The plugin cannot be loaded; fix the FAIL lines above."
                    }
                );
            }
            Ok(if report.ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
    }
}

fn source(p: &PluginInfo) -> &'static str {
    match p.source {
        PluginSource::Builtin => "built-in",
        PluginSource::Directory { .. } => "directory",
    }
}

fn print_info(info: &PluginInfo) {
    println!("{} {} ({}, API {})", info.name, info.version, info.kind.as_str(), info.api_version);
    println!("  {}", info.description);
    match &info.source {
        PluginSource::Builtin => println!("  source:  built into obra"),
        PluginSource::Directory { path } => println!("  source:  {}", path.display()),
    }
    println!("  sha256:  {}", info.sha256);
    println!("  imports: {}", info.imports.join(", "));
    print_grant(&info.grant);
}

fn print_grant(grant: &GrantSummary) {
    println!("  effective grant (manifest and config both allow):");
    let or_none = |v: &[String]| if v.is_empty() { "none".to_string() } else { v.join(", ") };
    println!("    commands:  {}", or_none(&grant.commands));
    println!("    env:       {}", or_none(&grant.env));
    println!("    http:      {}", or_none(&grant.http));
    println!("    workspace: {}   llm: {}   kv: {}", grant.workspace.as_str(), grant.llm, grant.kv);
    let l = &grant.limits;
    println!(
        "    limits:    {} MiB memory, {} ms CPU and {} s wall clock per call",
        l.memory_mb, l.cpu_ms_per_call, l.call_timeout_secs
    );
    for refused in &grant.refused {
        println!("    refused:   {refused}");
    }
}
