//! Where the store is, and which of its projects a command works on.
//!
//! A store holds any number of projects. It is the project-local `.obra/obra.db` when the command runs inside
//! a directory made by `obra init`, the database named by `database.url` when that is set (PostgreSQL for a
//! team), and otherwise the user's `~/.local/share/obra/obra.db`. The project is, in order: `--project`
//! (or `OBRA_PROJECT`), the one `obra project use` chose for this store, the one whose workspace holds the
//! current directory, the only one.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use super::OpenOptions;
use crate::config::{self, LoadedConfig};
use crate::state::{OpenSettings, Project, StateManager, redact_url};

/// An open store, before a project is chosen.
pub struct Store {
    /// The store.
    pub state: StateManager,
    /// Where it is, for messages (a file path, or a URL without its password).
    pub location: String,
    /// The directory holding `.obra/`, when the command runs inside a project made by `obra init`.
    pub local_root: Option<PathBuf>,
    /// The configuration the store was found with (no project's profile applied yet).
    pub config: LoadedConfig,
    /// The file that remembers `obra project use` for this store.
    selection_file: PathBuf,
}

/// Where the user-wide store lives when no project directory and no URL name one.
pub fn user_store_path() -> Result<PathBuf> {
    let base = dirs::data_dir().context("cannot find the user's data directory (set HOME or XDG_DATA_HOME)")?;
    Ok(base.join("obra").join("obra.db"))
}

/// Stores already open in this process, by location, when [`keep_stores_open`] asked for it: the REPL (and the
/// server and workers to come) run many commands in one process, and reopening costs a connection pool, its
/// worker threads, the migration check and a write probe per command.
static OPEN_STORES: std::sync::Mutex<Option<std::collections::HashMap<String, StateManager>>> =
    std::sync::Mutex::new(None);

/// Keep every store this process opens open for the rest of its life, and reuse it on the next open of the
/// same location (a store removed meanwhile is not noticed: only for long-lived processes such as the REPL).
pub fn keep_stores_open() {
    let mut open = OPEN_STORES.lock().unwrap_or_else(|e| e.into_inner());
    open.get_or_insert_with(Default::default);
}

/// The store at `key`, opened by `open` unless this process keeps it open already.
async fn reuse_or_open(
    key: &str,
    open: impl std::future::Future<Output = Result<StateManager>>,
) -> Result<StateManager> {
    let kept = OPEN_STORES.lock().unwrap_or_else(|e| e.into_inner()).as_ref().and_then(|m| m.get(key).cloned());
    if let Some(state) = kept {
        return Ok(state);
    }
    let state = open.await?;
    if let Some(map) = OPEN_STORES.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        map.insert(key.to_string(), state.clone());
    }
    Ok(state)
}

impl Store {
    /// Open the store `options` point at. With `create`, a missing user-wide store is created; a project-local
    /// one must exist (`obra init` makes it).
    pub async fn open(options: &OpenOptions, create: bool) -> Result<Self> {
        let start = options.start_dir()?;
        let local_root = config::find_project_root(&start);
        let (_, config) = super::load_config(local_root.as_deref(), options.profile.clone(), &options.sets)?;
        let settings =
            OpenSettings { busy_timeout: std::time::Duration::from_millis(config.config.database.busy_timeout_ms) };
        let url = config.config.database.url.trim().to_string();
        if !url.is_empty() {
            let state = reuse_or_open(&url, StateManager::connect_with(&url, &settings)).await?;
            let location = redact_url(&url);
            let selection_file = selection_dir()?.join(format!("current-project-{}", short_hash(&location)));
            return Ok(Self { state, location, local_root, config, selection_file });
        }
        let (path, selection_file) = match &local_root {
            Some(root) => {
                (resolve_db_path(root, &config.config.database.path), root.join(".obra").join("current-project"))
            }
            None => (user_store_path()?, selection_dir()?.join("current-project")),
        };
        if !path.exists() {
            match &local_root {
                Some(root) => bail!(
                    "the project's database {} is missing; run `obra init` in {} to make a new one",
                    path.display(),
                    root.display()
                ),
                None if !create => bail!(
                    "{} is not inside an Obra project and you have no projects yet; run `obra init` in your \
                     project's directory, `obra project create NAME`, or `obra demo` to try Obra",
                    start.display()
                ),
                None => {}
            }
        }
        let key = path.display().to_string();
        let state = reuse_or_open(&key, StateManager::open_with(&path, &settings)).await?;
        Ok(Self { state, location: key, local_root, config, selection_file })
    }

    /// The project `obra project use` chose, if it still exists.
    pub async fn selected(&self) -> Result<Option<Project>> {
        let Ok(text) = std::fs::read_to_string(&self.selection_file) else { return Ok(None) };
        let Ok(id) = text.trim().parse::<i64>() else { return Ok(None) };
        self.state.project(id).await
    }

    /// Remember `project` as this store's current project.
    pub fn select(&self, project: &Project) -> Result<()> {
        if let Some(dir) = self.selection_file.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        std::fs::write(&self.selection_file, format!("{}\n", project.id))
            .with_context(|| format!("cannot write {}", self.selection_file.display()))
    }

    /// A project by id or name, or an error that lists the projects.
    pub async fn find(&self, reference: &str) -> Result<Project> {
        let reference = reference.trim();
        if let Some(project) = self.state.project_by_ref(reference).await? {
            return Ok(project);
        }
        // A number that is no project's id may still be a project's name.
        if reference.parse::<i64>().is_ok()
            && let Some(project) = self.state.project_by_name(reference).await?
        {
            return Ok(project);
        }
        let projects = self.state.projects().await?;
        match projects.as_slice() {
            [] => {
                bail!("there is no project \"{reference}\": the store {} holds no project yet", self.location)
            }
            _ => {
                let names: Vec<String> = projects.iter().map(|p| format!("{} ({})", p.name, p.id)).collect();
                let closest = projects
                    .iter()
                    .map(|p| (strsim::jaro_winkler(&p.name, reference), &p.name))
                    .filter(|(score, _)| *score > 0.8)
                    .max_by(|a, b| a.0.total_cmp(&b.0))
                    .map(|(_, n)| format!(" (did you mean \"{n}\"?)"))
                    .unwrap_or_default();
                bail!("there is no project \"{reference}\"{closest}; projects: {}", names.join(", "))
            }
        }
    }

    /// The project a command works on (see the module docs for the order).
    pub async fn choose(&self, explicit: Option<&str>, start: &Path) -> Result<Project> {
        if let Some(reference) = explicit.filter(|r| !r.trim().is_empty()) {
            return self.find(reference).await;
        }
        if let Some(project) = self.selected().await? {
            return Ok(project);
        }
        let projects = self.state.projects().await?;
        let holding = projects
            .iter()
            .filter(|p| start.starts_with(&p.workspace))
            // The deepest workspace wins; among projects sharing one, the oldest, so that creating a project
            // never changes which one a directory means.
            .max_by_key(|p| (Path::new(&p.workspace).components().count(), std::cmp::Reverse(p.id)));
        if let Some(project) = holding {
            return Ok(project.clone());
        }
        match projects.as_slice() {
            [only] => Ok(only.clone()),
            [] => bail!(
                "the store {} holds no project; run `obra init` in your project's directory or `obra project create NAME`",
                self.location
            ),
            many => {
                let names: Vec<String> = many.iter().map(|p| format!("{} ({})", p.name, p.id)).collect();
                bail!(
                    "which project? The store {} holds {}: {}. Choose one with --project NAME, or `obra project use NAME`",
                    self.location,
                    many.len(),
                    names.join(", ")
                )
            }
        }
    }
}

/// The SQLite file `database.path` names, relative to the project root unless absolute.
pub fn resolve_db_path(root: &Path, configured: &str) -> PathBuf {
    let path = Path::new(configured);
    if path.is_absolute() { path.to_path_buf() } else { root.join(path) }
}

/// The run lock file of project `project_id` in the store at `location` (see [`super::lock`]): next to a
/// SQLite file, else in the user's state directory, keyed by the store's location.
pub fn run_lock_path(state: &StateManager, location: &str, project_id: i64) -> Result<PathBuf> {
    if state.backend() == crate::state::Backend::Sqlite && location != ":memory:" {
        let dir = Path::new(location).parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        return Ok(dir.join(format!("run-{project_id}.lock")));
    }
    Ok(selection_dir()?.join("locks").join(format!("{}-project-{project_id}.lock", short_hash(location))))
}

fn selection_dir() -> Result<PathBuf> {
    let base = dirs::state_dir()
        .or_else(dirs::data_local_dir)
        .context("cannot find the user's state directory (set HOME or XDG_STATE_HOME)")?;
    Ok(base.join("obra"))
}

fn short_hash(text: &str) -> String {
    hex::encode(&Sha256::digest(text.as_bytes())[..6])
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::ConfigSources;
    use crate::state::NewProject;

    async fn store_with(projects: &[(&str, &str)], selection: &Path) -> Store {
        let state = StateManager::open_in_memory().await.unwrap();
        for (name, workspace) in projects {
            let new = NewProject {
                name: name.to_string(),
                workspace: PathBuf::from(workspace),
                description: String::new(),
                profile: None,
            };
            state.create_project(&new).await.unwrap();
        }
        let sources = ConfigSources { user_file: Some(selection.with_extension("none")), ..Default::default() };
        let config = config::load(&sources).unwrap();
        Store { state, location: "test".into(), local_root: None, config, selection_file: selection.to_path_buf() }
    }

    #[tokio::test]
    async fn the_project_is_the_flag_then_use_then_the_deepest_oldest_workspace_then_the_only_one() {
        let dir = tempfile::tempdir().unwrap();
        let selection = dir.path().join("current-project");
        let store = store_with(&[("a", "/w"), ("b", "/w"), ("c", "/w/sub")], &selection).await;
        let name = |p: Project| p.name;
        assert_eq!(name(store.choose(None, Path::new("/w/sub/x")).await.unwrap()), "c", "deepest workspace");
        assert_eq!(name(store.choose(None, Path::new("/w")).await.unwrap()), "a", "oldest of a shared workspace");
        assert_eq!(name(store.choose(Some("b"), Path::new("/w/sub")).await.unwrap()), "b", "the flag wins");
        assert_eq!(name(store.choose(Some("3"), Path::new("/")).await.unwrap()), "c", "an id works too");
        let err = store.choose(None, Path::new("/elsewhere")).await.unwrap_err().to_string();
        assert!(err.contains("which project?") && err.contains("a (1), b (2), c (3)"), "{err}");
        let err = store.find("bb").await.unwrap_err().to_string();
        assert!(err.contains("did you mean \"b\"?"), "{err}");

        store.select(&store.find("b").await.unwrap()).unwrap();
        assert_eq!(
            name(store.choose(None, Path::new("/w/sub")).await.unwrap()),
            "b",
            "`project use` beats the workspace"
        );
        assert_eq!(name(store.choose(Some("a"), Path::new("/w/sub")).await.unwrap()), "a", "the flag beats `use`");

        let only = store_with(&[("solo", "/somewhere")], &dir.path().join("other")).await;
        assert_eq!(name(only.choose(None, Path::new("/elsewhere")).await.unwrap()), "solo", "the only project");
    }

    #[test]
    fn relative_database_paths_are_relative_to_the_project_root() {
        assert_eq!(resolve_db_path(Path::new("/p"), ".obra/obra.db"), PathBuf::from("/p/.obra/obra.db"));
        assert_eq!(resolve_db_path(Path::new("/p"), "/var/obra.db"), PathBuf::from("/var/obra.db"));
    }
}
