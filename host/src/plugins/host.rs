//! `PluginHost`: loads plugins (built-in, from the search path, or by path), keeps them by name, and hands out
//! typed handles; also `check` for `obra plugin check` and `list`/`info` for `obra plugin list|info`.
//!
//! Loading checks every plugin (manifest, pin, imports and exports) but compiles only a plugin named by path;
//! the built-ins and the search path's plugins are compiled when first needed, or together, in parallel, by
//! [`PluginHost::prepare`] (which blocks: call it before the runtime gets busy, or in `spawn_blocking`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::bindings::{ExportCall, ExportReturn, SelfDescription};
use super::cache::CacheOutcome;
use super::cache::default_cache_dir;
use super::config::PluginsConfig;
use super::grants::EffectiveGrant;
use super::handles::{AgentHandle, BreakpointRuleHandle, LlmProviderHandle, QualityGateHandle};
use super::host_report::{CheckReport, CheckStep, GrantSummary, LoadReport, PluginHostError, PluginInfo, PluginSource};
use super::inspect::{self, ComponentInterfaces};
use super::instance::{CompileFailure, Deferred, PluginInstance, Prepared, compile_and_link};
use super::instance_state::HostServices;
use super::manifest::{Manifest, ManifestError, PluginKind, sha256_hex};
use super::wasm_engine::PluginEngine;
use crate::contract::{Agent, BreakpointRule, CallContext, KvStore, LlmProvider, PluginError, QualityGate};

/// A plugin compiled into the `obra` binary (the lead's build.rs embeds the built-ins as a list of these).
#[derive(Debug, Clone, Copy)]
pub struct BuiltinPlugin<'a> {
    /// The text of its `plugin.toml`.
    pub manifest: &'a str,
    /// Its component's bytes.
    pub wasm: &'a [u8],
}

/// When a plugin's component is compiled: at load (a plugin named by path, `obra plugin check`), or when a
/// command first needs it (the built-ins and the search path, of which a command uses a few).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compile {
    Now,
    OnFirstUse,
}

/// How a plugin is being loaded, which decides what a name clash means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Builtin,
    SearchPath,
    Explicit,
}

struct Loaded {
    info: PluginInfo,
    instance: Arc<PluginInstance>,
}

/// Where a loaded plugin's manifest is, for messages: `built-in plugin NAME` or its `plugin.toml`.
fn manifest_file(info: &PluginInfo) -> String {
    match &info.source {
        PluginSource::Builtin => format!("built-in plugin {}", info.name),
        PluginSource::Directory { path } => path.join("plugin.toml").display().to_string(),
    }
}

/// Prepare the plugins of `list` one after another, taking the next index from `next` (one worker of
/// [`PluginHost::prepare`]); failures are kept by each plugin and reported by the caller.
fn prepare_from(list: &[&Loaded], next: &std::sync::atomic::AtomicUsize) {
    while let Some(loaded) = list.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed)) {
        let _ = loaded.instance.prepare();
    }
}

/// A plugin to build: its manifest and where its component is.
struct Candidate<'a> {
    file: String,
    manifest_text: &'a str,
    source: PluginSource,
    wasm: Option<&'a [u8]>,
}

/// The plugins of one Obra process.
pub struct PluginHost {
    config: PluginsConfig,
    engine: Arc<PluginEngine>,
    services: Arc<HostServices>,
    plugins: BTreeMap<String, Loaded>,
}

impl PluginHost {
    /// A host with no plugins yet. `kv` backs the `kv` capability (none: plugins using it get an error).
    pub fn new(config: PluginsConfig, kv: Option<Arc<dyn KvStore>>) -> Result<Self, PluginHostError> {
        config.validate().map_err(PluginHostError::Config)?;
        let cache_dir = config.cache_dir.clone().or_else(default_cache_dir);
        let engine = PluginEngine::new(cache_dir).map_err(PluginHostError::Engine)?;
        let services = HostServices::new(kv).map_err(PluginHostError::Engine)?;
        Ok(Self { config, engine: Arc::new(engine), services: Arc::new(services), plugins: BTreeMap::new() })
    }

    /// The configuration the host was built with.
    pub fn config(&self) -> &PluginsConfig {
        &self.config
    }

    /// The directories searched for `<name>/plugin.toml`, in order: the project's `.obra/plugins/`, the user's
    /// `~/.local/share/obra/plugins/`, then `plugins.search_path`.
    pub fn search_path(&self, project_dir: Option<&Path>) -> Vec<PathBuf> {
        Self::search_path_of(&self.config, project_dir)
    }

    /// [`PluginHost::search_path`] for `config`, without a host.
    pub fn search_path_of(config: &PluginsConfig, project_dir: Option<&Path>) -> Vec<PathBuf> {
        let mut dirs = Vec::new();
        if let Some(project) = project_dir {
            dirs.push(project.join(".obra").join("plugins"));
        }
        if let Some(data) = dirs::data_dir() {
            dirs.push(data.join("obra").join("plugins"));
        }
        dirs.extend(config.search_path.iter().cloned());
        dirs
    }

    /// Load the built-in plugins. Fails on the first broken one (a build error, not a user error).
    pub fn load_builtins(&mut self, builtins: &[BuiltinPlugin<'_>]) -> Result<(), PluginHostError> {
        for builtin in builtins {
            let name = Manifest::parse("built-in plugin", builtin.manifest).map(|m| m.name).unwrap_or_default();
            let candidate = Candidate {
                file: format!("built-in plugin {name}"),
                manifest_text: builtin.manifest,
                source: PluginSource::Builtin,
                wasm: Some(builtin.wasm),
            };
            let loaded = self.build(candidate, Compile::OnFirstUse, &mut Vec::new())?;
            self.insert(loaded, Origin::Builtin)?;
        }
        Ok(())
    }

    /// Load every plugin directory on the search path. A broken plugin does not stop the others.
    pub fn load_search_path(&mut self, project_dir: Option<&Path>) -> LoadReport {
        let mut report = LoadReport::default();
        for dir in self.search_path(project_dir) {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut plugin_dirs: Vec<PathBuf> =
                entries.flatten().map(|e| e.path()).filter(|p| p.join("plugin.toml").is_file()).collect();
            plugin_dirs.sort();
            for plugin_dir in plugin_dirs {
                match self.load_dir(&plugin_dir, Origin::SearchPath) {
                    Ok(Some(name)) => report.loaded.push(name),
                    Ok(None) => report.notes.push(format!(
                        "{}: shadowed by a plugin of the same name found earlier on the search path",
                        plugin_dir.display()
                    )),
                    Err(e) => report.errors.push(e),
                }
            }
        }
        report
    }

    /// Load one plugin given by path (its directory or its `plugin.toml`); it replaces a search-path plugin of
    /// the same name. Returns its name.
    pub fn load_path(&mut self, path: &Path) -> Result<String, PluginHostError> {
        let dir = plugin_dir_of(path)?;
        Ok(self.load_dir(&dir, Origin::Explicit)?.expect("explicit loads are never shadowed"))
    }

    fn load_dir(&mut self, dir: &Path, origin: Origin) -> Result<Option<String>, PluginHostError> {
        let manifest_path = dir.join("plugin.toml");
        let text = std::fs::read_to_string(&manifest_path).map_err(|e| PluginHostError::Io {
            path: manifest_path.clone(),
            message: format!("cannot read the manifest: {e}"),
        })?;
        let candidate = Candidate {
            file: manifest_path.display().to_string(),
            manifest_text: &text,
            source: PluginSource::Directory { path: dir.to_path_buf() },
            wasm: None,
        };
        let when = if origin == Origin::Explicit { Compile::Now } else { Compile::OnFirstUse };
        let loaded = self.build(candidate, when, &mut Vec::new())?;
        self.insert(loaded, origin)
    }

    /// Register a loaded plugin under its name, applying the clash rules. `None`: shadowed (not inserted).
    fn insert(&mut self, mut loaded: Loaded, origin: Origin) -> Result<Option<String>, PluginHostError> {
        let name = loaded.info.name.clone();
        let file = manifest_file(&loaded.info);
        if let Some(existing) = self.plugins.get(&name) {
            match (&existing.info.source, origin) {
                (PluginSource::Builtin, Origin::Builtin) => {
                    return Err(PluginHostError::Refused {
                        plugin: name,
                        file,
                        problems: vec!["two built-in plugins have this name".into()],
                    });
                }
                (PluginSource::Builtin, _) if !self.config.allow_override_builtin => {
                    return Err(PluginHostError::BuiltinClash { plugin: name, file });
                }
                (PluginSource::Builtin, _) => {
                    tracing::info!(plugin = %name, "{file} replaces the built-in plugin (plugins.allow_override_builtin)");
                    loaded.info.overrides_builtin = true;
                }
                (_, Origin::SearchPath) => return Ok(None),
                (_, _) => {
                    tracing::info!(plugin = %name, "{file} replaces the plugin loaded earlier")
                }
            }
        }
        self.plugins.insert(name.clone(), loaded);
        Ok(Some(name))
    }

    /// Run every load step on a candidate, recording each in `steps`; the first failure stops. Compiling is
    /// the one step `when` may leave for the plugin's first use.
    fn build(&self, c: Candidate<'_>, when: Compile, steps: &mut Vec<CheckStep>) -> Result<Loaded, PluginHostError> {
        let mut step = |step: &'static str, ok: bool, detail: String| steps.push(CheckStep { step, ok, detail });

        let manifest =
            Manifest::parse(&c.file, c.manifest_text).inspect_err(|e| step("manifest", false, e.to_string()))?;
        step(
            "manifest",
            true,
            format!("{} {} ({}, API {})", manifest.name, manifest.version, manifest.kind, manifest.api_version),
        );
        let refused = |problems: Vec<String>| PluginHostError::Refused {
            plugin: manifest.name.clone(),
            file: c.file.clone(),
            problems,
        };

        let (component_path, owned);
        let wasm: &[u8] = match (c.wasm, &c.source) {
            (Some(bytes), _) => {
                component_path = None;
                bytes
            }
            (None, PluginSource::Directory { path }) => {
                let file = component_file(path, &manifest).inspect_err(|e| step("component", false, e.to_string()))?;
                owned = std::fs::read(&file).map_err(|e| {
                    let e =
                        PluginHostError::Io { path: file.clone(), message: format!("cannot read the component: {e}") };
                    step("component", false, e.to_string());
                    e
                })?;
                component_path = Some(file);
                &owned
            }
            (None, PluginSource::Builtin) => unreachable!("built-ins carry their bytes"),
        };
        let wasm_file = component_path.as_ref().map_or_else(|| c.file.clone(), |p| p.display().to_string());

        let sha256 = sha256_hex(wasm);
        manifest.verify_sha256(&wasm_file, wasm).inspect_err(|e| step("sha256", false, e.to_string()))?;
        // A plugin installed from a directory must pin its component: the grant the user gave is for exactly
        // that component, so a swapped .wasm must not inherit it. Built-ins are pinned by the binary itself.
        if manifest.sha256.is_none() && matches!(c.source, PluginSource::Directory { .. }) {
            let e = PluginHostError::Manifest(ManifestError {
                file: c.file.clone(),
                line: None,
                key: Some("sha256".into()),
                message: format!(
                    "a plugin installed from a directory must pin its component: add sha256 = \"{sha256}\" to \
                     its plugin.toml (the sha256 of {wasm_file})"
                ),
            });
            step("sha256", false, e.to_string());
            return Err(e);
        }
        // A pin in the configuration (`plugins.pins.<name>`) holds even when the manifest was rewritten with
        // the component, e.g. inside the workspace (ADR 34).
        if let Some(pin) = self.config.pins.get(&manifest.name)
            && !pin.trim().eq_ignore_ascii_case(&sha256)
        {
            let e = PluginHostError::Manifest(ManifestError {
                file: c.file.clone(),
                line: None,
                key: Some("sha256".into()),
                message: format!(
                    "plugins.pins.{} in your configuration pins the component to sha256 {}, but {wasm_file} has \
                     {sha256}; if you replaced the plugin on purpose, update the pin",
                    manifest.name,
                    pin.trim()
                ),
            });
            step("sha256", false, e.to_string());
            return Err(e);
        }
        step(
            "sha256",
            true,
            match &manifest.sha256 {
                Some(_) => format!("matches ({sha256})"),
                None => format!("not given in the manifest (the component's is {sha256})"),
            },
        );

        let interfaces: ComponentInterfaces = inspect::read_interfaces(wasm).map_err(|e| {
            step("component", false, format!("{wasm_file}: {e}"));
            refused(vec![format!("{wasm_file}: {e}")])
        })?;
        step("component", true, format!("{} imports, {} exports", interfaces.imports.len(), interfaces.exports.len()));

        let import_problems = inspect::check_imports(&manifest, &interfaces);
        let export_problem = inspect::check_export(&manifest, &interfaces);
        step(
            "imports",
            import_problems.is_empty(),
            if import_problems.is_empty() { interfaces.imports.join(", ") } else { import_problems.join("\n") },
        );
        step(
            "exports",
            export_problem.is_none(),
            export_problem.clone().unwrap_or_else(|| manifest.export_interface()),
        );
        let mut problems = import_problems;
        problems.extend(export_problem);
        if !problems.is_empty() {
            return Err(refused(problems));
        }

        let component = match when {
            Compile::Now => {
                let prepared =
                    compile_and_link(&self.engine, &manifest.name, wasm, &sha256, &manifest.api_version, manifest.kind)
                        .map_err(|e| {
                            match &e {
                                CompileFailure::Compile(_) => step("compile", false, e.to_string()),
                                CompileFailure::Link(_) => {
                                    step("compile", true, "compiled".into());
                                    step("link", false, e.to_string());
                                }
                            }
                            refused(vec![e.to_string()])
                        })?;
                step("compile", true, format!("{:?}", prepared.cache()).to_lowercase());
                step("link", true, "pre-instantiated".into());
                Ok(prepared)
            }
            Compile::OnFirstUse => Err(Deferred {
                wasm: Arc::from(wasm),
                sha256: sha256.clone(),
                api_version: manifest.api_version.clone(),
                kind: manifest.kind,
            }),
        };
        let cache = component.as_ref().map_or(CacheOutcome::NotYet, Prepared::cache);

        let grant = self.effective_grant(&manifest);
        let info = PluginInfo {
            name: manifest.name.clone(),
            version: manifest.version.clone(),
            kind: manifest.kind,
            api_version: manifest.api_version.clone(),
            description: manifest.description.clone(),
            source: c.source,
            component: component_path,
            sha256,
            cache,
            imports: interfaces.imports,
            grant: GrantSummary::of(&grant),
            overrides_builtin: false,
            instances_created: 0,
        };
        let instance =
            PluginInstance::new(&manifest.name, grant, self.engine.clone(), self.services.clone(), component);
        Ok(Loaded { info, instance: Arc::new(instance) })
    }

    /// What a plugin with this manifest gets under the current config: its request intersected with the grant.
    fn effective_grant(&self, manifest: &Manifest) -> EffectiveGrant {
        EffectiveGrant::new(
            &manifest.name,
            &manifest.capabilities,
            &self.config.grant_for(&manifest.name),
            &self.config.limits,
            &manifest.limits,
        )
    }

    /// `obra plugin check <path>`: run every load step on a plugin directory (or its `plugin.toml`) without
    /// registering it, and report each step and the effective grant under the current config.
    pub fn check(&self, path: &Path) -> CheckReport {
        let mut report =
            CheckReport { path: path.to_path_buf(), name: None, kind: None, steps: Vec::new(), grant: None, ok: false };
        let dir = match plugin_dir_of(path) {
            Ok(dir) => dir,
            Err(e) => {
                report.steps.push(CheckStep { step: "manifest", ok: false, detail: e.to_string() });
                return report;
            }
        };
        let manifest_path = dir.join("plugin.toml");
        let text = match std::fs::read_to_string(&manifest_path) {
            Ok(text) => text,
            Err(e) => {
                let detail = format!("{}: cannot read the manifest: {e}", manifest_path.display());
                report.steps.push(CheckStep { step: "manifest", ok: false, detail });
                return report;
            }
        };
        if let Ok(manifest) = Manifest::parse(&manifest_path.display().to_string(), &text) {
            let grant = self.effective_grant(&manifest);
            report.name = Some(manifest.name);
            report.kind = Some(manifest.kind);
            report.grant = Some(GrantSummary::of(&grant));
        }
        let candidate = Candidate {
            file: manifest_path.display().to_string(),
            manifest_text: &text,
            source: PluginSource::Directory { path: dir },
            wasm: None,
        };
        report.ok = self.build(candidate, Compile::Now, &mut report.steps).is_ok();
        report
    }

    fn get(&self, name: &str, kind: PluginKind) -> Result<Arc<PluginInstance>, PluginHostError> {
        let available = || self.names(kind);
        match self.plugins.get(name) {
            Some(p) if p.info.kind == kind => Ok(p.instance.clone()),
            Some(p) => Err(PluginHostError::WrongKind {
                name: name.to_string(),
                actual: p.info.kind,
                wanted: kind,
                available: available(),
            }),
            None => Err(PluginHostError::NotFound { kind, name: name.to_string(), available: available() }),
        }
    }

    /// The names of the loaded plugins of `kind`, sorted.
    pub fn names(&self, kind: PluginKind) -> Vec<String> {
        self.plugins.values().filter(|p| p.info.kind == kind).map(|p| p.info.name.clone()).collect()
    }

    /// The agent plugin `name`.
    pub fn agent(&self, name: &str) -> Result<Arc<dyn Agent>, PluginHostError> {
        Ok(Arc::new(AgentHandle(self.get(name, PluginKind::Agent)?)))
    }

    /// The LLM provider plugin `name`, bound to its config section `config` (JSON text).
    pub fn llm_provider(&self, name: &str, config: &str) -> Result<Arc<dyn LlmProvider>, PluginHostError> {
        let instance = self.get(name, PluginKind::LlmProvider)?;
        Ok(Arc::new(LlmProviderHandle { instance, config: config.to_string() }))
    }

    /// The quality-gate plugin `name`.
    pub fn quality_gate(&self, name: &str) -> Result<Arc<dyn QualityGate>, PluginHostError> {
        Ok(Arc::new(QualityGateHandle(self.get(name, PluginKind::QualityGate)?)))
    }

    /// The breakpoint-rule plugin `name`.
    pub fn breakpoint_rule(&self, name: &str) -> Result<Arc<dyn BreakpointRule>, PluginHostError> {
        Ok(Arc::new(BreakpointRuleHandle(self.get(name, PluginKind::BreakpointRule)?)))
    }

    /// Every loaded plugin, by kind then name.
    pub fn list(&self) -> Vec<PluginInfo> {
        let mut all: Vec<PluginInfo> = self.plugins.values().map(Self::info_of).collect();
        all.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
        all
    }

    fn info_of(loaded: &Loaded) -> PluginInfo {
        PluginInfo {
            instances_created: loaded.instance.instantiations(),
            cache: loaded.instance.cache_outcome(),
            ..loaded.info.clone()
        }
    }

    /// Compile the plugins named in `names` that are not compiled yet (names of no loaded plugin are passed
    /// over: host-native rules), in parallel where cores allow. `notice` is called once, before, when at least
    /// one is not in the compile cache (the first run on a machine, or after an upgrade). Fails on the first
    /// plugin that cannot be compiled, naming it.
    pub fn prepare(&self, names: &[&str], notice: impl FnOnce()) -> Result<(), PluginHostError> {
        let mut wanted: Vec<&Loaded> = names.iter().filter_map(|n| self.plugins.get(*n)).collect();
        wanted.sort_by(|a, b| a.info.name.cmp(&b.info.name));
        wanted.dedup_by(|a, b| a.info.name == b.info.name);
        let to_compile: Vec<&Loaded> = wanted.into_iter().filter(|l| l.instance.needs_compiling()).collect();
        if !to_compile.is_empty() {
            notice();
        }
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(to_compile.len());
        let next = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 1..workers {
                scope.spawn(|| prepare_from(&to_compile, &next));
            }
            prepare_from(&to_compile, &next);
        });
        for loaded in self.plugins.values().filter(|l| names.contains(&l.info.name.as_str())) {
            if let Err(e) = loaded.instance.prepare() {
                return Err(PluginHostError::Refused {
                    plugin: loaded.info.name.clone(),
                    file: manifest_file(&loaded.info),
                    problems: vec![e.to_string()],
                });
            }
        }
        Ok(())
    }

    /// One loaded plugin.
    pub fn info(&self, name: &str) -> Option<PluginInfo> {
        self.plugins.get(name).map(Self::info_of)
    }

    /// Ask a plugin to describe itself (`info` of agents and providers, `describe` of gates and rules).
    pub async fn describe(&self, name: &str) -> Result<SelfDescription, PluginError> {
        let loaded = self.plugins.get(name).ok_or_else(|| PluginError::Fatal(format!("no plugin named {name:?}")))?;
        let call = match loaded.info.kind {
            PluginKind::Agent => ExportCall::AgentInfo,
            PluginKind::LlmProvider => ExportCall::ProviderInfo,
            PluginKind::QualityGate => ExportCall::GateDescribe,
            PluginKind::BreakpointRule => ExportCall::RuleDescribe,
        };
        match loaded.instance.call(&CallContext::default(), call).await? {
            ExportReturn::Description(d) => Ok(d),
            other => Err(PluginError::Fatal(format!("internal error: unexpected {other:?}"))),
        }
    }

    /// Compiled-component cache statistics: (loaded from cache, compiled).
    pub fn cache_stats(&self) -> (u64, u64) {
        (self.engine.cache.hits(), self.engine.cache.compilations())
    }

    /// The compiled-component cache directory in use, if any.
    pub fn cache_dir(&self) -> Option<&Path> {
        self.engine.cache.dir()
    }
}

/// The plugin directory of `path` (a directory, or a `plugin.toml` in one).
fn plugin_dir_of(path: &Path) -> Result<PathBuf, PluginHostError> {
    let dir = if path.is_dir() { path.to_path_buf() } else { path.parent().unwrap_or(Path::new(".")).to_path_buf() };
    if !dir.join("plugin.toml").is_file() {
        return Err(PluginHostError::Io {
            path: path.to_path_buf(),
            message: "no plugin.toml here: give a plugin directory or its plugin.toml".into(),
        });
    }
    Ok(dir)
}

/// The component file of a plugin directory: the manifest's `wasm`, or the only `*.wasm` beside it.
fn component_file(dir: &Path, manifest: &Manifest) -> Result<PathBuf, PluginHostError> {
    if let Some(name) = &manifest.wasm {
        return Ok(dir.join(name));
    }
    let io = |message: String| PluginHostError::Io { path: dir.to_path_buf(), message };
    let mut wasm: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| io(format!("cannot list the plugin directory: {e}")))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
        .collect();
    match wasm.len() {
        1 => Ok(wasm.remove(0)),
        0 => {
            Err(io("no .wasm component in the plugin directory: build the plugin, or set `wasm` in plugin.toml".into()))
        }
        _ => Err(io(format!(
            "several .wasm files in the plugin directory; set `wasm = \"<file>.wasm\"` in plugin.toml to say which ({})",
            wasm.iter().filter_map(|p| p.file_name()?.to_str()).collect::<Vec<_>>().join(", ")
        ))),
    }
}
