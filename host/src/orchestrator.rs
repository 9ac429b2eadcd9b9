//! The programmatic API: an [`Orchestrator`] opens a store and one of its projects (config, store, plugins),
//! executes tasks and runs the backlog. The CLI is a thin layer over it.
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! use obra::orchestrator::{Orchestrator, OpenOptions};
//! use obra::state::NewTask;
//!
//! // The project whose workspace holds this directory (`project: Some(..)` names another one).
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
//!
//! // Or work through every ready task, in dependency and priority order, like `obra run`.
//! let summary = obra.run_project(&obra::orchestrator::RunOptions::default(), std::sync::Arc::new(obra::engine::events::Silent)).await?;
//! println!("{} executions; stopped because {}", summary.executions.len(), summary.stopped_because);
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};

use crate::config::{self, Config, ConfigReloader, ConfigSources, LoadedConfig, ReloadOutcome};
use crate::engine::rules::{LoopRule, NativeRule};
use crate::engine::{ConfigPoll, ConfigUpdate, ConfigWatch, Engine, LoopObserver, LoopPlugins, TaskOutcome};

pub mod breakpoints;
pub mod checkpoints;
pub mod configured;
pub mod lock;
mod parallel;
pub mod runner;
use crate::plugins::{LoadReport, PluginHost, PluginHostError};
use crate::state::{NewProject, NewTask, OpenSettings, Project, StateManager, Task, TaskStatus};
pub use runner::{RunOptions, RunSummary};

pub mod store_location;
pub mod tasks;
pub mod worktrees;
pub use store_location::Store;

/// How to open a project.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// Where to start looking for `.obra/` (the current directory by default).
    pub dir: Option<PathBuf>,
    /// `--profile`.
    pub profile: Option<String>,
    /// `--set` overrides.
    pub sets: Vec<String>,
    /// `--project`: the project to work on, by name or id.
    pub project: Option<String>,
    /// Said once when a command must compile plugins the compile cache lacks (the first run on a machine):
    /// the CLI prints "preparing plugins… (first run only)" on a terminal.
    pub preparing_plugins: Option<Notice>,
}

/// Something to tell the user, given by the face that opened the project (the application layer prints
/// nothing itself).
#[derive(Clone)]
pub struct Notice(pub Arc<dyn Fn() + Send + Sync>);

impl std::fmt::Debug for Notice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Notice")
    }
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
    sources: ConfigSources,
    config: LoadedConfig,
    state: StateManager,
    project: Project,
    options: OpenOptions,
    plugins: tokio::sync::OnceCell<LoadedPlugins>,
    /// Whether the LLM answers, shared by every task this orchestrator executes.
    llm_health: Arc<crate::engine::LlmHealth>,
    /// The project directory's change tracker between agent runs, shared by the engines working there (a
    /// worktree's engine has its own).
    tracker: Arc<crate::workspace::watcher::TrackerSlot>,
    /// The project's run lock file (see [`lock`]).
    run_lock: PathBuf,
    /// The production log (`logging.production`).
    production_log: Option<Arc<crate::telemetry::production::ProductionLog>>,
    /// The project's configuration files as the last execution left them: each execution starts from a
    /// snapshot taken here, so an edit made between two executions applies to the next (ADR 9, ADR 34).
    reloader: std::sync::Mutex<ConfigReloader>,
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
    /// Make `options.dir` (or the current directory) a project: create `.obra/`, the database (unless
    /// `database.url` names a shared one) and a project row, with `--profile` as the project's profile. Fails
    /// if it already is one.
    pub async fn init(options: OpenOptions, name: Option<String>) -> Result<Self> {
        Self::init_with_config(options, name, PROJECT_CONFIG_TEMPLATE).await
    }

    /// [`Orchestrator::init`], writing `config_text` as the new `.obra/config.yaml` (when there is none yet).
    pub async fn init_with_config(options: OpenOptions, name: Option<String>, config_text: &str) -> Result<Self> {
        let root = options.start_dir()?;
        if root.join(".obra").join("obra.db").exists() {
            bail!("{} is already an Obra project (it has .obra/obra.db); `obra status` shows it", root.display());
        }
        std::fs::create_dir_all(root.join(".obra")).context("cannot create .obra/")?;
        let config_file = root.join(".obra").join("config.yaml");
        let wrote_config = !config_file.exists();
        if wrote_config {
            std::fs::write(&config_file, config_text).context("cannot write .obra/config.yaml")?;
        }
        let ignore_file = root.join(".obra").join(".gitignore");
        if !ignore_file.exists() {
            std::fs::write(&ignore_file, PROJECT_GITIGNORE).context("cannot write .obra/.gitignore")?;
        }
        let (sources, config) = load_config(Some(&root), options.profile.clone(), &options.sets)?;
        if wrote_config {
            // The user is creating this config: what `init` wrote is theirs (an existing file is not).
            config::trust::approve(&config, &root)?;
        }
        let database = &config.config.database;
        let settings = OpenSettings { busy_timeout: std::time::Duration::from_millis(database.busy_timeout_ms) };
        let (state, location) = match database.url.trim() {
            "" => {
                let path = store_location::resolve_db_path(&root, &database.path);
                (StateManager::open_with(&path, &settings).await?, path.display().to_string())
            }
            url => (StateManager::connect_with(url, &settings).await?, crate::state::redact_url(url)),
        };
        let name = name.unwrap_or_else(|| {
            root.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "project".into())
        });
        let project = state
            .create_project(&NewProject {
                name,
                workspace: root.clone(),
                description: String::new(),
                profile: options.profile.clone(),
            })
            .await?;
        Self::assemble(root, sources, config, state, &location, project, options)
    }

    /// Open the store `options` point at and the project they choose (see [`store`] for the rules), with
    /// the configuration of that project: its workspace's `.obra/config.yaml` and its profile, unless
    /// `--profile` names another.
    pub async fn open(options: OpenOptions) -> Result<Self> {
        let store = Store::open(&options, false).await?;
        let project = store.choose(options.project.as_deref(), &options.start_dir()?).await?;
        Self::with_project(store, project, &options)
    }

    /// Open a chosen project of an open store.
    pub fn with_project(store: Store, project: Project, options: &OpenOptions) -> Result<Self> {
        let root = PathBuf::from(&project.workspace);
        let (sources, config) = project_config(&project, options)?;
        Self::assemble(root, sources, config, store.state, &store.location, project, options.clone())
    }

    /// An orchestrator over `project` of the store at `location`, with the store's limits from `config`.
    fn assemble(
        root: PathBuf,
        sources: ConfigSources,
        config: LoadedConfig,
        state: StateManager,
        location: &str,
        project: Project,
        options: OpenOptions,
    ) -> Result<Self> {
        let run_lock = store_location::run_lock_path(&state, location, project.id)?;
        let state = state
            .with_max_dependency_depth(config.config.engine.max_dependency_depth as usize)
            .with_redaction(config.config.logging.redact);
        let production_log =
            crate::telemetry::production::ProductionLog::open(&config.config.logging, &root, &project.name);
        let reloader = std::sync::Mutex::new(ConfigReloader::new(sources.clone(), config.clone()));
        Ok(Self {
            reloader,
            root,
            sources,
            config,
            state,
            project,
            options,
            plugins: tokio::sync::OnceCell::new(),
            llm_health: Default::default(),
            tracker: Default::default(),
            run_lock,
            production_log,
        })
    }

    /// The project's production log, when `logging.production` is on.
    pub fn production_log(&self) -> Option<&Arc<crate::telemetry::production::ProductionLog>> {
        self.production_log.as_ref()
    }

    /// An observer that shows `printer`'s steps and also writes them to the production log (when on).
    pub fn observed(&self, printer: Arc<dyn LoopObserver>) -> Arc<dyn LoopObserver> {
        match &self.production_log {
            None => printer,
            Some(log) => {
                let logger = Arc::new(crate::telemetry::production::LogObserver::new(Arc::clone(log)));
                Arc::new(crate::telemetry::production::Tee(vec![printer, logger]))
            }
        }
    }

    /// Record in the production log that a command starts working through tasks (`run_started`).
    pub fn log_run_started(&self, command: &str, fields: serde_json::Value) {
        if let Some(log) = &self.production_log {
            let mut fields = fields;
            if let Some(obj) = fields.as_object_mut() {
                obj.insert("command".into(), serde_json::json!(command));
                obj.insert("project".into(), serde_json::json!(self.project.name));
                obj.insert("pid".into(), serde_json::json!(std::process::id()));
            }
            log.event("run_started", fields);
        }
    }

    /// Record how the command ended (`run_finished`), or the error that stopped it (`error`).
    pub fn log_run_finished(&self, result: std::result::Result<serde_json::Value, &anyhow::Error>) {
        if let Some(log) = &self.production_log {
            match result {
                Ok(fields) => log.event("run_finished", fields),
                Err(e) => log.event("error", serde_json::json!({ "where": "run", "error": format!("{e:#}") })),
            }
        }
    }

    /// Record a human's instruction or decision (`user_input`) in the production log.
    pub fn log_user_input(&self, action: &str, fields: serde_json::Value) {
        if let Some(log) = &self.production_log {
            let mut fields = fields;
            if let Some(obj) = fields.as_object_mut() {
                obj.insert("action".into(), serde_json::json!(action));
            }
            log.event("user_input", fields);
        }
    }

    /// The project's workspace: where the agents work and where its `.obra/` (config, plugins) is.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The resolved configuration and its layers.
    pub fn config(&self) -> &LoadedConfig {
        &self.config
    }

    /// How git and gh run for this project: async child processes limited by `git.command_timeout_secs`.
    pub fn git(&self) -> crate::workspace::git::Git {
        crate::workspace::git::Git::from_config(&self.config.config.git)
    }

    /// The configuration with its sources and project, as [`resolve_config`] gives it for this project.
    pub fn resolved_config(&self) -> ResolvedConfig {
        ResolvedConfig {
            sources: self.sources.clone(),
            config: self.config.clone(),
            project: Some(self.project.clone()),
            no_project_because: None,
        }
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
                    self.trusted_plugins_config()?,
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
                // Compile what the configuration uses (on a cold cache, seconds; the rest is compiled if a
                // command ever needs it), in parallel, saying so once.
                let names: Vec<&str> = self
                    .config
                    .config
                    .plugin_references()
                    .into_iter()
                    .map(|reference| by_path.get(reference).map_or(reference, String::as_str))
                    .collect();
                let notice = self.options.preparing_plugins.clone();
                host.prepare(&names, || {
                    tracing::info!("compiling plugins the compile cache lacks (first run only)");
                    if let Some(Notice(say)) = notice {
                        say();
                    }
                })?;
                Ok::<_, anyhow::Error>(LoadedPlugins { host, load_errors: errors, by_path })
            })
            .await
    }

    /// Whether the grants and pins that files inside the workspace set are approved (`obra config trust`).
    pub fn trust_status(&self) -> Result<config::TrustStatus> {
        config::trust::status_of(&self.config, &self.root)
    }

    /// Refuse to go on when the project's grants or pins are not approved, with what they are and the command
    /// that approves them.
    pub fn ensure_trusted(&self) -> Result<()> {
        match self.trust_status()?.refusal() {
            Some(message) => bail!("{message}"),
            None => Ok(()),
        }
    }

    /// The `plugins:` settings the plugin host is built from: the grants and pins of files inside the
    /// workspace only when they are approved; without them otherwise (ADR 34).
    fn trusted_plugins_config(&self) -> Result<crate::plugins::PluginsConfig> {
        if self.trust_status()?.is_trusted() {
            return Ok(self.config.config.plugins.clone());
        }
        Ok(config::trust::without_workspace_policy(&self.config, &self.root)?.config.plugins)
    }

    /// The files that make up the policy of an execution under `sources`: its configuration files, the
    /// project's templates, prompt rules and plugins, and the trust store.
    fn policy_files(&self, sources: &ConfigSources) -> crate::engine::integrity::PolicyFiles {
        let mut files = sources.files();
        files.extend(config::TrustStore::default_path().ok());
        crate::engine::integrity::PolicyFiles::of_project(&self.root, files)
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

    /// A task of this project, or an error that says where it is (another project, or nowhere).
    pub async fn task(&self, id: i64) -> Result<Task> {
        self.require_own_task(id).await?;
        self.state.require_task(id).await
    }

    /// Check that task `id` exists and belongs to this project, reading nothing else of it: a task whose
    /// stored row cannot be read can still be repaired (`obra task update ID --no-deps`).
    pub async fn require_own_task(&self, id: i64) -> Result<()> {
        match self.state.task_project(id).await? {
            None => bail!("task {id} does not exist; `obra status` lists the tasks of the project"),
            Some(project_id) if project_id != self.project.id => {
                let owner = self.state.project(project_id).await?.map(|p| p.name).unwrap_or_else(|| "?".into());
                bail!(
                    "task {id} belongs to project \"{owner}\", not to \"{}\"; add --project \"{owner}\" to work on it",
                    self.project.name
                );
            }
            Some(_) => Ok(()),
        }
    }

    /// Add a task to the backlog (see [`Orchestrator::create_task_in`] for one in a milestone).
    pub async fn create_task(&self, new: NewTask) -> Result<Task> {
        self.create_task_in(new, None).await
    }

    /// Resolve the plugins the configuration names (agent, LLM, enabled gates and rules).
    pub async fn loop_plugins(&self) -> Result<LoopPlugins> {
        self.resolve_loop_plugins(&self.config.config).await
    }

    /// Resolve the plugins `c` names (agent, LLM, enabled gates and rules), with the plugin host of this
    /// project (loaded from the configuration the project was opened with).
    pub async fn resolve_loop_plugins(&self, c: &Config) -> Result<LoopPlugins> {
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
        for (i, rule) in c.rules.iter().enumerate().filter(|(_, r)| r.enabled) {
            // Host-native rules (ADR 0014) are resolved by name before the plugins.
            let resolved = match NativeRule::resolve(&rule.plugin, &rule.config, &format!("rules[{i}].config")) {
                Some(native) => LoopRule::Native(
                    native.map_err(|e| anyhow::anyhow!("invalid configuration of the `{}` rule: {e}", rule.plugin))?,
                ),
                None => LoopRule::Plugin(self.lookup(&rule.plugin, |h, n| h.breakpoint_rule(n)).await?),
            };
            rules.push((rule.clone(), resolved));
        }
        Ok(LoopPlugins { agent, llm, gates, rules })
    }

    /// The configuration a task runs with: the project's, or, when the task was created with its own
    /// `--profile` (and none is given on this command line), the project's layers with that profile.
    pub fn config_for_task(&self, task: &Task) -> Result<(ConfigSources, LoadedConfig)> {
        match &task.profile {
            Some(profile) if self.options.profile.is_none() && task.profile != self.project.profile => {
                load_config(Some(&self.root), Some(profile.clone()), &self.options.sets)
                    .with_context(|| format!("in the configuration of task {} (profile {profile})", task.id))
            }
            _ => Ok((self.sources.clone(), self.config.clone())),
        }
    }

    /// The pid of a live obra process executing this project's tasks now, if any (tasks marked `running`
    /// without one were interrupted, and the next run resumes them).
    pub fn running_obra(&self) -> Option<u32> {
        lock::live_holder(&self.run_lock)
    }

    /// Refuse to start when the project's repository is in the middle of a merge, rebase or the like; take
    /// the project's run lock (failing at once, naming the holder's pid, when another process has
    /// it), then recover the tasks a killed process left `running`: they return to `pending` and resume
    /// their agent session. Hold the returned lock while executing tasks.
    pub async fn lock_for_running(&self, observer: &dyn LoopObserver) -> Result<lock::RunLock> {
        self.ensure_trusted()?;
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || crate::workspace::git::ensure_not_mid_operation(&root)).await??;
        let lock = lock::RunLock::acquire(&self.run_lock, &self.project.name)?;
        for task in self.state.recover_interrupted(self.project.id).await? {
            observer.step(&crate::engine::Step::Progress(format!(
                "task {} was left running by a stopped obra: {}",
                task.id,
                task.status_reason.as_deref().unwrap_or("")
            )));
        }
        Ok(lock)
    }

    /// Execute one task through the loop, holding the project's run lock; `observer` sees each step.
    pub async fn execute_task(&self, task_id: i64, observer: Arc<dyn LoopObserver>) -> Result<TaskOutcome> {
        // Fail on a bad id before loading any plugin.
        self.task(task_id).await?;
        let _lock = self.lock_for_running(observer.as_ref()).await?;
        if self.config.config.git.branch_per_task {
            return self.execute_in_worktree(task_id, observer).await;
        }
        self.execute_locked(task_id, observer).await
    }

    /// [`execute_task`](Self::execute_task) for a caller that holds the run lock.
    async fn execute_locked(&self, task_id: i64, observer: Arc<dyn LoopObserver>) -> Result<TaskOutcome> {
        self.execute_locked_in(task_id, self.root.clone(), observer).await
    }

    /// Execute a task (the run lock held) with `workspace` as the agent's workspace: the project root, or the
    /// task's worktree in a parallel run. The project's prompt templates apply either way.
    async fn execute_locked_in(
        &self,
        task_id: i64,
        workspace: PathBuf,
        observer: Arc<dyn LoopObserver>,
    ) -> Result<TaskOutcome> {
        let task = self.task(task_id).await?;
        if task.status() == TaskStatus::Blocked {
            bail!(
                "task {task_id} is {}; `obra task retry` the task it names, and it runs when that one completes",
                task.status_reason.as_deref().unwrap_or("blocked")
            );
        }
        let (sources, config) = self.config_for_task(&task)?;
        // The project's own configuration is taken as it stands now (one snapshot per execution); a task
        // with its own profile was just loaded from the files anyway.
        let shared = sources.profile == self.sources.profile;
        let config = if shared { self.snapshot_config(observer.as_ref()) } else { config };
        let policy = self.policy_files(&sources);
        let engine = match self.engine_for(&config, workspace.clone(), observer.clone()).await {
            Ok(engine) => engine,
            Err(e) if shared && config.config != self.config.config => {
                observer.step(&crate::engine::Step::ConfigRejected {
                    error: format!(
                        "the edited configuration names a plugin that cannot be used ({e:#}); the configuration \
                         Obra started with stays in force"
                    ),
                });
                self.engine_for(&self.config, workspace, observer).await?
            }
            Err(e) => return Err(e),
        };
        let engine = engine.with_policy_guard(policy);
        let watch = self.config_watch_for(sources, config);
        let outcome = engine.execute_task_watched(task_id, Some(&watch)).await;
        if shared {
            // What this execution reloaded is where the next one starts from.
            let reloader = watch.reloader.into_inner().unwrap_or_else(|e| e.into_inner());
            *self.reloader.lock().unwrap_or_else(|e| e.into_inner()) = reloader;
        }
        outcome
    }

    /// The project's configuration for an execution starting now: the last one, or, when the files changed
    /// since (while no agent ran), the new one, reported like a reload (settings that need a restart keep
    /// the values Obra started with).
    fn snapshot_config(&self, observer: &dyn LoopObserver) -> LoadedConfig {
        let mut reloader = self.reloader.lock().unwrap_or_else(|e| e.into_inner());
        match reloader.check() {
            ReloadOutcome::Unchanged => {}
            ReloadOutcome::Rejected(e) => {
                observer.step(&crate::engine::Step::ConfigRejected { error: e.to_string() });
            }
            ReloadOutcome::Reloaded(_, changed) => {
                let (needs_restart, applied): (Vec<String>, Vec<String>) =
                    changed.into_iter().partition(|k| config::needs_restart(k));
                observer.step(&crate::engine::Step::ConfigReloaded { applied, needs_restart });
            }
        }
        let current = reloader.current();
        LoadedConfig { config: config::live_part(&self.config.config, &current.config), layers: current.layers.clone() }
    }

    /// An engine with `config`'s plugins, working in `workspace`, with the project's prompt templates.
    async fn engine_for(
        &self,
        config: &LoadedConfig,
        workspace: PathBuf,
        observer: Arc<dyn LoopObserver>,
    ) -> Result<Engine> {
        let plugins = self.resolve_loop_plugins(&config.config).await?;
        let shares_tracker = workspace == self.root;
        let engine = Engine::new(config.config.clone(), self.state.clone(), plugins, workspace, observer)
            .with_llm_health(Arc::clone(&self.llm_health))
            .with_prompts_from(&self.root);
        Ok(if shares_tracker { engine.with_tracker_slot(Arc::clone(&self.tracker)) } else { engine })
    }

    /// A human approved task `task_id` at a breakpoint (it is completed now): commit its work as
    /// `git.commit_strategy` says, as a PROCEED would have, with an `Obra-Approved-By` trailer. Not when its
    /// last iteration's gates failed (said), and not for a task that works in its own worktree, whose branch
    /// the next `obra run` brings back.
    pub async fn commit_approved(&self, task_id: i64, by: &str, observer: Arc<dyn LoopObserver>) -> Result<()> {
        let task = self.task(task_id).await?;
        let (_, config) = self.config_for_task(&task)?;
        if config.config.git.commit_strategy == crate::config::CommitStrategy::Manual
            || task.status() != TaskStatus::Completed
        {
            return Ok(());
        }
        if worktrees::worktree_path(&self.root, task_id).exists() {
            observer.step(&crate::engine::Step::Progress(format!(
                "task {task_id} works in its own worktree: the next `obra run` merges its branch"
            )));
            return Ok(());
        }
        let engine = self.engine_for(&config, self.root.clone(), observer).await?;
        engine.commit_approved(&self.project, &task, by).await
    }

    /// Replay a task's recorded iterations through the gates, rules and thresholds of today's configuration
    /// (the task's profile applied), without running the agent or storing anything.
    pub async fn replay_task(&self, task_id: i64) -> Result<crate::engine::replay::ReplayReport> {
        self.ensure_trusted()?;
        let task = self.task(task_id).await?;
        let (_, config) = self.config_for_task(&task)?;
        let plugins = self.resolve_loop_plugins(&config.config).await?;
        let silent: Arc<dyn LoopObserver> = Arc::new(crate::engine::events::Silent);
        let engine = Engine::new(config.config.clone(), self.state.clone(), plugins, self.root.clone(), silent);
        engine.replay_task(task_id).await
    }

    /// A watch over this project's configuration files for the engine's iteration boundaries: a valid edit is
    /// applied with its plugins resolved, an invalid one is reported and ignored.
    pub fn config_watch(&self) -> ProjectConfigWatch<'_> {
        self.config_watch_for(self.sources.clone(), self.config.clone())
    }

    /// A watch over the layers `sources` name, starting from `config` (loaded from them).
    fn config_watch_for(&self, sources: ConfigSources, config: LoadedConfig) -> ProjectConfigWatch<'_> {
        let running = config.config.clone();
        let reloader = if sources.profile == self.sources.profile {
            // Continue from the project's reloader: its fingerprints are of the files `config` came from.
            self.reloader.lock().unwrap_or_else(|e| e.into_inner()).clone()
        } else {
            ConfigReloader::new(sources, config)
        };
        ProjectConfigWatch {
            orchestrator: self,
            reloader: std::sync::Mutex::new(reloader),
            running: std::sync::Mutex::new(running),
        }
    }
}

/// The [`ConfigWatch`] of an open project (see [`Orchestrator::config_watch`]).
pub struct ProjectConfigWatch<'a> {
    orchestrator: &'a Orchestrator,
    reloader: std::sync::Mutex<ConfigReloader>,
    running: std::sync::Mutex<Config>,
}
#[async_trait::async_trait]
impl ConfigWatch for ProjectConfigWatch<'_> {
    async fn poll(&self) -> ConfigPoll {
        let (previous, outcome) = {
            let mut reloader = self.reloader.lock().unwrap_or_else(|e| e.into_inner());
            let previous = reloader.current().clone();
            (previous, reloader.check())
        };
        let (loaded, changed) = match outcome {
            ReloadOutcome::Unchanged => return ConfigPoll::Unchanged,
            ReloadOutcome::Rejected(e) => {
                tracing::info!("configuration edit rejected, the previous configuration stays in force: {e}");
                return ConfigPoll::Rejected(e.to_string());
            }
            ReloadOutcome::Reloaded(loaded, changed) => (loaded, changed),
        };
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let live = config::live_part(&running, &loaded.config);
        let (needs_restart, applied): (Vec<String>, Vec<String>) =
            changed.into_iter().partition(|k| config::needs_restart(k));
        match self.orchestrator.resolve_loop_plugins(&live).await {
            Ok(plugins) => {
                if !needs_restart.is_empty() {
                    tracing::info!(
                        "configuration changes that need a restart were not applied: {}",
                        needs_restart.join(", ")
                    );
                }
                *self.running.lock().unwrap_or_else(|e| e.into_inner()) = live.clone();
                ConfigPoll::Reloaded(Box::new(ConfigUpdate { config: live, plugins, applied, needs_restart }))
            }
            Err(e) => {
                self.reloader.lock().unwrap_or_else(|e| e.into_inner()).restore(previous);
                let error = format!(
                    "the edited configuration names a plugin that cannot be used ({e:#}); the previous configuration stays in force"
                );
                tracing::info!("{error}");
                ConfigPoll::Rejected(error)
            }
        }
    }
}

/// The configuration of `project`: its workspace's `.obra/config.yaml`, the profile `--profile` names or else
/// the one stored with the project (`obra init --profile`, `obra project create --profile`), the user's
/// config, `OBRA_…` variables and `--set`. Every command that works on a project resolves its configuration
/// here (through [`Orchestrator::open`] or [`resolve_config`]).
pub fn project_config(project: &Project, options: &OpenOptions) -> Result<(ConfigSources, LoadedConfig)> {
    let root = PathBuf::from(&project.workspace);
    let profile = options.profile.clone().or_else(|| project.profile.clone());
    load_config(Some(&root), profile, &options.sets)
        .with_context(|| format!("in the configuration of project \"{}\"", project.name))
}

/// A configuration as a command resolves it, and the project it belongs to.
#[derive(Debug, Clone)]
pub struct ResolvedConfig {
    /// Where its layers came from.
    pub sources: ConfigSources,
    /// The layers and the merged configuration.
    pub config: LoadedConfig,
    /// The project it is the configuration of; none outside any project (the defaults, the user's config and
    /// the overrides only).
    pub project: Option<Project>,
    /// Why no project was chosen, when none was.
    pub no_project_because: Option<String>,
}

/// The configuration the commands `options` describe work with, resolved as [`Orchestrator::open`] resolves it
/// for a run: the project is chosen the same way (see [`store`]) and its configuration comes from
/// [`project_config`], its stored profile included. Where no project is chosen (outside any project, or a
/// store without one) and `--project` names none, it is the configuration of the directory: the nearest
/// `.obra/config.yaml` above it, if any, with `--profile`. A configuration that does not load is the error.
/// `obra config show|validate|trust` use it without opening a project; every other command opens one.
pub async fn resolve_config(options: &OpenOptions) -> Result<ResolvedConfig> {
    let start = options.start_dir()?;
    let local_root = config::find_project_root(&start);
    let (sources, config) = load_config(local_root.as_deref(), options.profile.clone(), &options.sets)?;
    let explicit = options.project.as_deref().is_some_and(|p| !p.trim().is_empty());
    let chosen = match Store::open(options, false).await {
        Ok(store) => store.choose(options.project.as_deref(), &start).await,
        Err(e) => Err(e),
    };
    match chosen {
        Ok(project) => {
            let (sources, config) = project_config(&project, options)?;
            Ok(ResolvedConfig { sources, config, project: Some(project), no_project_because: None })
        }
        Err(e) if explicit => Err(e),
        Err(e) => Ok(ResolvedConfig { sources, config, project: None, no_project_because: Some(format!("{e:#}")) }),
    }
}

fn load_config(root: Option<&Path>, profile: Option<String>, sets: &[String]) -> Result<(ConfigSources, LoadedConfig)> {
    let sources = ConfigSources::from_process(root.map(Path::to_path_buf), profile, sets.to_vec());
    let config = config::load(&sources)?;
    Ok((sources, config))
}

/// `.obra/.gitignore`, written by `obra init`: git leaves out Obra's machine-local state (the store, its logs,
/// task worktrees, the watcher's index, scratch files), so a `git add -A` does not commit them; the project's
/// configuration (`config.yaml`, `templates/`, `prompt_rules.yaml`, `ignore`, `plugins/`) stays committable.
const PROJECT_GITIGNORE: &str = "# Obra's machine-local state (written by `obra init`; the rest of .obra/ is meant to be committed)\n\
/obra.db\n/obra.db-*\n/run-*.lock\n/logs/\n/worktrees/\n/watch-index\n/watch-flush\n/checkpoint-flush.*\n/prompts/\n";

/// The `.obra/config.yaml` that `obra init` writes: commented pointers, no settings.
const PROJECT_CONFIG_TEMPLATE: &str = "\
# This project's Obra settings. Name only what you change: `obra config show` prints every key with its
# value and the layer it comes from (the defaults are built into obra). Examples:
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
