//! `obra demo`: a whole supervised run on the embedded defaults, in a scratch git repository, with the
//! built-in `replay` agent playing a recorded two-iteration story and no LLM.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};

use super::args::{DemoArgs, GlobalArgs};
use super::output::{StepPrinter, print_json};
use crate::orchestrator::{OpenOptions, Orchestrator};
use crate::state::NewTask;

/// The files of the demo workspace (`config/demo/workspace/`), embedded.
const WORKSPACE_FILES: &[(&str, &str)] = &[
    ("README.md", include_str!("../../../config/demo/workspace/README.md")),
    (".gitignore", include_str!("../../../config/demo/workspace/.gitignore")),
    ("test.sh", include_str!("../../../config/demo/workspace/test.sh")),
];

/// The recorded agent run the `replay` agent plays back (`config/demo/recording.json`).
const RECORDING: &str = include_str!("../../../config/demo/recording.json");

/// The demo project's configuration: the replay agent, no LLM, and the workspace's tests as a gate.
const DEMO_CONFIG: &str = "\
# The demo's settings: the built-in replay agent plays config/demo/recording.json; no LLM is needed.
agent:
  plugin: replay
llm:
  provider: none
agents:
  replay:
    recording: .obra/recording.json
gates:
  - plugin: response-format
  - plugin: tests
    enabled: true
    config:
      command: \"sh test.sh\"
      timeout_secs: 60
";

pub(super) async fn run(g: &GlobalArgs, args: DemoArgs) -> Result<ExitCode> {
    let dir = match args.dir {
        Some(dir) => dir,
        None => scratch_dir()?,
    };
    prepare_workspace(&dir)?;
    let printer = Arc::new(StepPrinter::new(args.json));
    let say = |text: &str| {
        if args.json {
            eprintln!("{text}");
        } else {
            println!("{text}");
        }
    };
    say(&format!("Obra demo in {}", dir.display()));
    say("  1. a scratch git repository with a README and a test script (test.sh), committed");

    let options = OpenOptions {
        dir: Some(dir.clone()),
        profile: g.profile.clone(),
        sets: g.sets.clone(),
        project: None,
        preparing_plugins: Some(super::preparing_plugins_notice()),
    };
    let obra = Orchestrator::init(options, Some("obra-demo".into())).await?;
    say(&format!(
        "  2. `obra init`: project \"{}\" with its SQLite store in {}",
        obra.project().name,
        obra.root().join(&obra.config().config.database.path).display()
    ));
    let task = obra
        .create_task(NewTask {
            project_id: obra.project().id,
            title: "Write calc.sh".into(),
            description: "Write calc.sh, a calculator with `add A B` and `mul A B` that prints the result, so that \
                          `sh test.sh` passes."
                .into(),
            priority: 5,
            depends_on: vec![],
            max_iterations: Some(3),
            profile: None,
        })
        .await?;
    say(&format!("  3. `obra task create`: task {} \"{}\"", task.id, task.title));
    say(&format!(
        "  4. `obra task execute {}`: agent {} (a recorded run), gates {}, LLM {}\n",
        task.id,
        obra.config().config.agent.plugin,
        obra.config()
            .config
            .gates
            .iter()
            .filter(|g| g.enabled)
            .map(|g| g.plugin.as_str())
            .collect::<Vec<_>>()
            .join(" + "),
        obra.config().config.llm.provider
    ));
    let outcome = obra.execute_task(task.id, printer).await?;
    say(&format!(
        "\nDone: task {} is {} after {} iteration(s). Look around:\n  obra -C {} task show {}\n  obra -C {} status\n  cat {}/calc.sh",
        task.id,
        outcome.status.as_str(),
        outcome.iterations,
        dir.display(),
        task.id,
        dir.display(),
        dir.display()
    ));
    if args.json {
        print_json(&outcome)?;
    }
    Ok(super::exit_for(outcome.status))
}

/// A new directory under the system's temp dir; kept after the demo so the user can look around.
fn scratch_dir() -> Result<PathBuf> {
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis();
    let dir = std::env::temp_dir().join(format!("obra-demo-{}-{stamp}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// Write the workspace files, the demo config and the recording, and commit the workspace with git.
fn prepare_workspace(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    if std::fs::read_dir(dir)?.next().is_some() {
        bail!("{} is not empty; give `obra demo --dir` a new or empty directory", dir.display());
    }
    for (name, text) in WORKSPACE_FILES {
        std::fs::write(dir.join(name), text).with_context(|| format!("cannot write {name}"))?;
    }
    std::fs::create_dir_all(dir.join(".obra"))?;
    std::fs::write(dir.join(".obra/config.yaml"), DEMO_CONFIG)?;
    std::fs::write(dir.join(".obra/recording.json"), RECORDING)?;

    let repo = git2::Repository::init(dir).context("cannot create the demo's git repository")?;
    let mut index = repo.index()?;
    index.add_all(["*"], git2::IndexAddOption::DEFAULT, None)?;
    index.write()?;
    let tree = repo.find_tree(index.write_tree()?)?;
    let signature = git2::Signature::now("Obra demo", "demo@obra.invalid")?;
    repo.commit(Some("HEAD"), &signature, &signature, "Demo workspace: README and tests", &tree, &[])?;
    Ok(())
}
