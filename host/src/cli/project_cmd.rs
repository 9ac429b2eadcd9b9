//! `obra project ...`: the projects of a store.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use serde_json::json;

use super::args::{GlobalArgs, InitArgs, ProjectCommand};
use super::open_options;
use super::output::print_json;
use crate::orchestrator::{Orchestrator, Store};
use crate::state::NewProject;

pub(super) async fn run(g: &GlobalArgs, cmd: ProjectCommand) -> Result<ExitCode> {
    let options = open_options(g);
    match cmd {
        ProjectCommand::Create(a) => {
            let store = Store::open(&options, true).await?;
            if let Some(profile) = &g.profile {
                // Fail now, not at the first command that loads the project's configuration.
                crate::config::load(&crate::config::ConfigSources::from_process(
                    None,
                    Some(profile.clone()),
                    Vec::new(),
                ))?;
            }
            let workspace = match a.workspace {
                Some(dir) => dir,
                None => options.start_dir()?,
            };
            if !workspace.is_dir() {
                bail!(
                    "the workspace {} is not a directory; create it first or pass another --workspace",
                    workspace.display()
                );
            }
            let workspace =
                workspace.canonicalize().with_context(|| format!("cannot resolve {}", workspace.display()))?;
            let project = store
                .state
                .create_project(&NewProject {
                    name: a.name,
                    workspace,
                    description: a.description,
                    profile: g.profile.clone(),
                })
                .await?;
            if a.json {
                print_json(&project)?;
            } else {
                println!(
                    "Created project {} \"{}\" in {}{}\n  store: {}\nMake it the current one with: obra project use {}",
                    project.id,
                    project.name,
                    project.workspace,
                    project.profile.as_deref().map(|p| format!(" (profile {p})")).unwrap_or_default(),
                    store.location,
                    project.id
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ProjectCommand::List(a) => {
            let store = Store::open(&options, true).await?;
            let projects = store.state.projects().await?;
            let current = store.choose(g.project.as_deref(), &options.start_dir()?).await.ok().map(|p| p.id);
            if a.json {
                let list: Vec<_> =
                    projects.iter().map(|p| json!({ "project": p, "current": Some(p.id) == current })).collect();
                print_json(&list)?;
            } else if projects.is_empty() {
                println!("No projects in {}. Create one: obra project create NAME (or obra init)", store.location);
            } else {
                for p in &projects {
                    let mark = if Some(p.id) == current { "*" } else { " " };
                    let profile = p.profile.as_deref().map(|p| format!("  [{p}]")).unwrap_or_default();
                    println!("{mark}{:>4}  {:<24} {}{profile}", p.id, p.name, p.workspace);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ProjectCommand::Show(a) => {
            let store = Store::open(&options, false).await?;
            let project = match a.project.as_deref().or(g.project.as_deref()) {
                Some(reference) => store.find(reference).await?,
                None => store.choose(None, &options.start_dir()?).await?,
            };
            let counts = store.state.task_counts(project.id).await?;
            let open = store.state.breakpoints(project.id, true).await?;
            if a.json {
                let counts: serde_json::Map<String, serde_json::Value> =
                    counts.into_iter().map(|(k, v)| (k, json!(v))).collect();
                print_json(
                    &json!({ "project": project, "task_counts": counts, "open_breakpoints": open.len(), "store": store.location }),
                )?;
            } else {
                println!("Project {} \"{}\"", project.id, project.name);
                println!("  workspace: {}", project.workspace);
                if !project.description.is_empty() {
                    println!("  about:     {}", project.description);
                }
                println!("  profile:   {}", project.profile.as_deref().unwrap_or("(none)"));
                println!("  created:   {}", project.created_at);
                println!("  store:     {}", store.location);
                let summary: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
                println!("  tasks:     {}", if summary.is_empty() { "none".to_string() } else { summary.join(", ") });
                println!("  open breakpoints: {}", open.len());
            }
            Ok(ExitCode::SUCCESS)
        }
        ProjectCommand::Use(a) => {
            let store = Store::open(&options, false).await?;
            let project = store.find(&a.project).await?;
            store.select(&project)?;
            println!("Using project {} \"{}\" ({})", project.id, project.name, project.workspace);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `obra init`: make the current directory a project. A new `.obra/config.yaml` enables the tests gate with the
/// test command the project's files suggest and chooses an LLM that answers (or none), saying what it found.
pub(super) async fn init(g: &GlobalArgs, a: InitArgs) -> Result<ExitCode> {
    let options = open_options(g);
    let root = options.start_dir()?;
    let mut found = Vec::new();
    let obra = if root.join(".obra/config.yaml").exists() || root.join(".obra/obra.db").exists() {
        Orchestrator::init(options, a.name).await?
    } else {
        // The LLM is looked for where the user's configuration (or OBRA_… / --set) would put it.
        let outside =
            crate::config::load(&crate::config::ConfigSources::from_process(None, g.profile.clone(), g.sets.clone()))?;
        let ollama = outside.config.llm_config("ollama");
        let url = ollama["base_url"].as_str().unwrap_or("http://127.0.0.1:11434").to_string();
        let model = ollama["model"].as_str().unwrap_or("?").to_string();
        let tests = super::setup::detect_tests(&root);
        let llm = super::setup::detect_llm(&url, &|name| std::env::var(name).ok()).await;
        found = super::setup::findings(&tests, &llm, &model);
        match &g.profile {
            // The profile's gates and LLM apply; the project's file would override them.
            Some(profile) => {
                found.push(format!("profile {profile}: its settings apply; the above is not written to the config"));
                Orchestrator::init(options, a.name).await?
            }
            None => {
                let text = super::setup::project_config(&tests, &llm);
                Orchestrator::init_with_config(options, a.name, &text).await?
            }
        }
    };
    println!(
        "Initialised Obra project \"{}\" in {}\n  database: {}\n  config:   {}",
        obra.project().name,
        obra.root().display(),
        obra.root().join(&obra.config().config.database.path).display(),
        obra.root().join(".obra/config.yaml").display(),
    );
    for line in &found {
        println!("  {line}");
    }
    println!(
        "Next: obra doctor, then obra task create \"...\" --description \"...\" (or obra task import backlog.md), \
         then obra run"
    );
    Ok(ExitCode::SUCCESS)
}
