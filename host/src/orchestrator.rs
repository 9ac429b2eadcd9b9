//! The programmatic API: an [`Orchestrator`] opens a project (config, store, plugins) and executes tasks.
//! The CLI is a thin layer over it.
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! use obra::orchestrator::{Orchestrator, OpenOptions};
//! use obra::state::NewTask;
//!
//! let obra = Orchestrator::open(OpenOptions::in_dir("/path/to/project")).await?;
//! let task = obra
//!     .create_task(NewTask {
//!         project_id: obra.project().id,
//!         title: "Add a --verbose flag".into(),
//!         description: "Wire it to the logger".into(),
//!         priority: 5,
//!         depends_on: vec![],
//!         max_iterations: None,
//!         profile: None,
//!     })
//!     .await?;
//! let outcome = obra.execute_task(task.id, std::sync::Arc::new(obra::engine::events::Silent)).await?;
//! println!("task {} is {:?} (confidence {:?})", task.id, outcome.status, outcome.confidence);
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};

use crate::config::{self, ConfigSources, LoadedConfig};
use crate::engine::{Engine, LoopObserver, LoopPlugins, TaskOutcome};
use crate::plugins::{LoadReport, PluginHost, PluginHostError};
use crate::state::{NewProject, NewTask, OpenSettings, Project, StateManager, Task};

/// How to open a project.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// Where to start looking for `.obra/` (the current directory by default).
    pub dir: Option<PathBuf>,
    /// `--profile`.
    pub profile: Option<String>,
    /// `--set` overrides.
    pub sets: Vec<String>,
}

impl OpenOptions {
    /// Options that look for the project at or above `dir`.
    pub fn in_dir(dir: impl Into<PathBuf>) -> Self {
        Self { dir: Some(dir.into()), ..Self::default() }
    }

    /// The directory to start from: `dir`, or the current directory; canonical.
    pub fn start_dir(&self) -> Result<PathBuf> {
        let dir = match &self.dir {
            Some(d) => d.clone(),
            None => std::env::current_dir().context("cannot read the current directory")?,
        };
        if !dir.is_dir() {
            bail!("{} is not a directory", dir.display());
        }
        Ok(dir.canonicalize()?)
    }
}

/// An open project: its configuration, its store and (loaded on first use) its plugins.
pub struct Orchestrator {
    root: PathBuf,
    config: LoadedConfig,
    state: StateManager,
    project: Project,
    plugins: tokio::sync::OnceCell<LoadedPlugins>,
}

/// The plugin host of a project and what loading the search path reported.
pub struct LoadedPlugins {
    /// The host with the built-ins and the search path's plugins loaded.
    pub host: PluginHost,
    /// Plugins found on the search path that failed to load (each error names the plugin or file).
    pub load_errors: Vec<PluginHostError>,
    /// Plugins the configuration names by path, mapped to the names in their manifests.
    pub by_path: std::collections::BTreeMap<String, String>,
}

impl LoadedPlugins {
    /// The plugin name a configuration reference stands for: itself, or the manifest name of a plugin given
    /// by path.
    pub fn resolve<'a>(&'a self, reference: &'a str) -> &'a str {
        self.by_path.get(reference).map(String::as_str).unwrap_or(reference)
    }
}

/// Whether a configuration reference to a plugin is a path (a directory or a plugin.toml) rather than a name.
fn is_plugin_path(reference: &str) -> bool {
    reference.contains('/') || reference.ends_with(".toml")
}

impl Orchestrator {
    /// Make `options.dir` (or the current directory) a project: create `.obra/`, the database and a project
    /// row. Fails if it already is one.
    pub async fn init(options: OpenOptions, name: Option<String>) -> Result<Self> {
        let root = options.start_dir()?;
        if root.join(".obra").join("obra.db").exists() {
            bail!("{} is already an Obra project (it has .obra/obra.db); `obra status` shows it", root.display());
        }
        std::fs::create_dir_all(root.join(".obra")).context("cannot create .obra/")?;
        let config_file = root.join(".obra").join("config.yaml");
        if !config_file.exists() {
            std::fs::write(&config_file, PROJECT_CONFIG_TEMPLATE).context("cannot write .obra/config.yaml")?;
        }
        let config = load_config(&root, &options)?;
        let state = open_store(&root, &config).await?;
        let name = name.unwrap_or_else(|| {
            root.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "project".into())
        });
        let project = state
            .create_project(&NewProject { name, workspace: root.clone(), description: String::new(), profile: None })
            .await?;
        Ok(Self { root, config, state, project, plugins: tokio::sync::OnceCell::new() })
    }

    /// Open the project at or above `options.dir`.
    pub async fn open(options: OpenOptions) -> Result<Self> {
        let start = options.start_dir()?;
        let Some(root) = config::find_project_root(&start) else {
            bail!(
                "{} is not inside an Obra project (no .obra/ here or above); run `obra init` first, or `obra demo` to try Obra",
                start.display()
            );
        };
        let config = load_config(&root, &options)?;
        let path = db_path(&root, &config);
        let url = &config.config.database.url;
        if url.is_empty() && !path.exists() {
            bail!("the project's database {} is missing; run `obra init` in {}", path.display(), root.display());
        }
        let state = open_store(&root, &config).await?;
        let shown = if url.is_empty() { path.display().to_string() } else { crate::state::redact_url(url) };
        let project = state
            .projects()
            .await?
            .into_iter()
            .next()
            .with_context(|| format!("the database {shown} holds no project; run `obra init` again"))?;
        Ok(Self { root, config, state, project, plugins: tokio::sync::OnceCell::new() })
    }

    /// The project root (the directory holding `.obra/`), which is also the agents' workspace.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The resolved configuration and its layers.
    pub fn config(&self) -> &LoadedConfig {
        &self.config
    }

    /// The store.
    pub fn state(&self) -> &StateManager {
        &self.state
    }

    /// The project.
    pub fn project(&self) -> &Project {
        &self.project
    }

    /// The plugins: the built-ins and everything on the search path, loaded (from the compile cache when
    /// warm) on first use. Plugins that fail to load are reported in `load_errors` (shown by `obra plugin list`,
    /// and in the error when a missing plugin is looked up).
    pub async fn plugins(&self) -> Result<&LoadedPlugins> {
        self.plugins
            .get_or_try_init(|| async {
                let mut host = PluginHost::new(
                    self.config.config.plugins.clone(),
                    Some(Arc::new(self.state.clone()) as Arc<dyn crate::contract::KvStore>),
                )?;
                host.load_builtins(crate::builtin::BUILTINS)?;
                let LoadReport { errors, notes, .. } = host.load_search_path(Some(&self.root));
                for note in notes {
                    tracing::info!("{note}");
                }
                for error in &errors {
                    tracing::info!("a plugin was not loaded: {error}");
                }
                // Plugins the configuration names by path (`agent.plugin: ./my-agent`) are loaded from there.
                let mut by_path = std::collections::BTreeMap::new();
                for reference in self.config.config.plugin_references() {
                    if is_plugin_path(reference) {
                        let path = self.root.join(reference);
                        let name = host.load_path(&path).with_context(|| {
                            format!("cannot load the plugin {reference} named in the configuration")
                        })?;
                        by_path.insert(reference.to_string(), name);
                    }
                }
                Ok::<_, anyhow::Error>(LoadedPlugins { host, load_errors: errors, by_path })
            })
            .await
    }

    /// Look a plugin up; when it is missing, say which plugins failed to load, since one of them may be it.
    async fn lookup<T>(
        &self,
        reference: &str,
        find: impl FnOnce(&PluginHost, &str) -> Result<T, PluginHostError>,
    ) -> Result<T> {
        let plugins = self.plugins().await?;
        find(&plugins.host, plugins.resolve(reference)).map_err(|e| {
            if plugins.load_errors.is_empty() {
                anyhow::Error::new(e)
            } else {
                let failed: Vec<String> = plugins.load_errors.iter().map(|e| format!("  - {e}")).collect();
                anyhow::anyhow!("{e}\nThese plugins failed to load:\n{}", failed.join("\n"))
            }
        })
    }

    /// Add a task to the backlog.
    pub async fn create_task(&self, new: NewTask) -> Result<Task> {
        self.state.create_task(&new).await
    }

    /// Resolve the plugins the configuration names (agent, LLM, enabled gates and rules).
    pub async fn loop_plugins(&self) -> Result<LoopPlugins> {
        let c = &self.config.config;
        let agent = self.lookup(&c.agent.plugin, |h, n| h.agent(n)).await?;
        let llm = if c.llm.enabled() {
            let config = c.llm_config(&c.llm.provider).to_string();
            Some(self.lookup(&c.llm.provider, |h, n| h.llm_provider(n, &config)).await?)
        } else {
            None
        };
        let mut gates = Vec::new();
        for gate in c.gates.iter().filter(|g| g.enabled) {
            gates.push((gate.clone(), self.lookup(&gate.plugin, |h, n| h.quality_gate(n)).await?));
        }
        let mut rules = Vec::new();
        for rule in c.rules.iter().filter(|r| r.enabled) {
            rules.push((rule.clone(), self.lookup(&rule.plugin, |h, n| h.breakpoint_rule(n)).await?));
        }
        Ok(LoopPlugins { agent, llm, gates, rules })
    }

    /// Execute one task through the loop; `observer` sees each step.
    pub async fn execute_task(&self, task_id: i64, observer: Arc<dyn LoopObserver>) -> Result<TaskOutcome> {
        // Fail on a bad id before loading any plugin.
        self.state.require_task(task_id).await?;
        let plugins = self.loop_plugins().await?;
        let engine = Engine::new(self.config.config.clone(), self.state.clone(), plugins, self.root.clone(), observer);
        engine.execute_task(task_id).await
    }
}

fn load_config(root: &Path, options: &OpenOptions) -> Result<LoadedConfig> {
    let sources = ConfigSources::from_process(Some(root.to_path_buf()), options.profile.clone(), options.sets.clone());
    Ok(config::load(&sources)?)
}

/// Open the store the configuration names: `database.url` when set, else the SQLite file `database.path`.
async fn open_store(root: &Path, config: &LoadedConfig) -> Result<StateManager> {
    let database = &config.config.database;
    let settings = OpenSettings { busy_timeout: std::time::Duration::from_millis(database.busy_timeout_ms) };
    if database.url.is_empty() {
        StateManager::open_with(&db_path(root, config), &settings).await
    } else {
        StateManager::connect_with(&database.url, &settings).await
    }
}

fn db_path(root: &Path, config: &LoadedConfig) -> PathBuf {
    let path = Path::new(&config.config.database.path);
    if path.is_absolute() { path.to_path_buf() } else { root.join(path) }
}

/// The `.obra/config.yaml` that `obra init` writes: commented pointers, no settings.
const PROJECT_CONFIG_TEMPLATE: &str = "\
# This project's Obra settings. Name only what you change; every key and its default is in
# config/default.yaml of Obra's sources (or run `obra --help`). Examples:
#
# agent:
#   plugin: claude-code
# gates:
#   - plugin: response-format
#   - plugin: tests
#     enabled: true
#     config:
#       command: \"cargo test\"
# llm:
#   provider: none      # no local LLM: heuristics alone decide
";

/// The plugins outside any project: built-ins and the user's search path, under the user's config (for
/// `obra plugin check` by a plugin author).
pub async fn standalone_plugins(options: &OpenOptions) -> Result<LoadedPlugins> {
    let sources = ConfigSources::from_process(None, options.profile.clone(), options.sets.clone());
    let config = config::load(&sources)?;
    let mut host = PluginHost::new(config.config.plugins, None)?;
    host.load_builtins(crate::builtin::BUILTINS)?;
    let report = host.load_search_path(None);
    Ok(LoadedPlugins { host, load_errors: report.errors, by_path: Default::default() })
}
