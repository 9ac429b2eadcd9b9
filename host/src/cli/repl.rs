//! `obra interactive`: a read-eval-print loop over every `obra` command.
//!
//! A line is split shell-style, prefixed with `obra` and parsed by the same clap definition as the command
//! line ([`Cli`]), so every command, including ones added later, works here without being listed. On a
//! terminal the line editor (rustyline, on its own thread so the async runtime stays free) offers history
//! across runs and Tab completion derived from the clap command tree plus ids from the store; a background
//! task announces breakpoints as they open. With stdin not a terminal, lines are read plainly and run.

mod complete;
mod editor;
mod watch;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::{Result, bail};
use clap::parser::ValueSource;
use clap::{Args, CommandFactory, FromArgMatches};

use super::Cli;
use super::args::{Command, GlobalArgs};
use crate::orchestrator::{OpenOptions, Store};

/// `obra interactive`.
#[derive(Debug, Args)]
#[command(after_help = "Type any obra command without the `obra` prefix, e.g. `task create \"Write hello\"`.\n\
Also: `use NAME|ID` (work on that project from now on), `execute ID` (= task execute ID), `help`, `exit`.\n\
On a terminal: Tab completes commands, flags, task, breakpoint and project ids; history is kept in \
$XDG_STATE_HOME/obra/history; Ctrl-C cancels the line (or the running command), Ctrl-D exits.\n\
With stdin not a terminal (e.g. `echo \"task list\" | obra interactive`), each line is run in turn, without a \
prompt; the exit code is 0 if every line succeeded, else the exit code of the last line that failed.")]
pub struct InteractiveArgs {
    /// Neither read nor write the history file.
    #[arg(long)]
    pub no_history: bool,
}

/// A project chosen with `use`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProjectRef {
    /// Its id.
    pub id: i64,
    /// Its name.
    pub name: String,
}

/// State shared between the loop, the completer and the breakpoint watcher.
#[derive(Default)]
pub(crate) struct Shared {
    /// The project chosen with `use`, if any.
    pub project: Mutex<Option<ProjectRef>>,
    /// What the store held at the last poll, for completion.
    pub snapshot: Mutex<watch::Snapshot>,
    /// Wakes the watcher early (after a command, which may have changed the store).
    pub refresh: tokio::sync::Notify,
}

impl Shared {
    fn project(&self) -> Option<ProjectRef> {
        self.project.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The session: the global flags `obra interactive` was given, and the current project.
pub(crate) struct Session {
    globals: GlobalArgs,
    shared: Arc<Shared>,
}

/// What to do after a line.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Flow {
    /// Read the next line; the line's exit code.
    Next(u8),
    /// Leave the loop.
    Exit,
}

impl Session {
    fn new(globals: GlobalArgs) -> Self {
        Self { globals, shared: Arc::new(Shared::default()) }
    }

    /// The prompt: `obra[project]> `, or `obra> ` before `use`.
    pub(crate) fn prompt(&self) -> String {
        match self.shared.project() {
            Some(p) => format!("obra[{}]> ", p.name),
            None => "obra> ".to_string(),
        }
    }

    /// How commands of this session open the project.
    fn open_options(&self) -> OpenOptions {
        OpenOptions {
            dir: self.globals.dir.clone(),
            profile: self.globals.profile.clone(),
            sets: self.globals.sets.clone(),
            project: self.shared.project().map(|p| p.id.to_string()).or_else(|| self.globals.project.clone()),
            preparing_plugins: Some(super::preparing_plugins_notice()),
        }
    }

    /// Make `wanted` (a project's id or name) the current project.
    async fn use_project(&self, wanted: &str) -> Result<ProjectRef> {
        let store = Store::open(&self.open_options(), false).await?;
        let projects = store.state.projects().await?;
        let list: Vec<ProjectRef> = projects.into_iter().map(|p| ProjectRef { id: p.id, name: p.name }).collect();
        let chosen = find_project(&list, wanted)?;
        *self.shared.project.lock().unwrap_or_else(|e| e.into_inner()) = Some(chosen.clone());
        self.shared.refresh.notify_one();
        Ok(chosen)
    }

    /// Run one line; errors are printed here.
    pub(crate) async fn line(&self, line: &str) -> Flow {
        let mut words = match shell_words::split(line) {
            Ok(w) => w,
            Err(e) => {
                eprintln!("error: cannot split the line: {e}");
                return Flow::Next(2);
            }
        };
        let Some(first) = words.first().cloned() else { return Flow::Next(0) };
        match first.as_str() {
            "exit" | "quit" => return Flow::Exit,
            "use" => return Flow::Next(self.use_command(&words[1..]).await),
            "help" if words.len() == 1 => {
                print_help();
                return Flow::Next(0);
            }
            "execute" => {
                words.insert(0, "task".to_string());
            }
            _ => {}
        }
        let cli = match self.parse(&words) {
            Ok(cli) => cli,
            Err(e) => {
                let _ = e.print();
                return Flow::Next(if e.use_stderr() { e.exit_code().clamp(0, 255) as u8 } else { 0 });
            }
        };
        if matches!(cli.command, Command::Interactive(_)) {
            eprintln!("error: already in interactive mode");
            return Flow::Next(2);
        }
        let code = tokio::select! {
            result = super::run(cli) => match result {
                Ok(code) => exit_code_number(code),
                Err(e) if super::pipe::is_closed_stdout(&e) => super::pipe::exit_quietly(),
                Err(e) => {
                    eprintln!("error: {e}");
                    for cause in e.chain().skip(1) {
                        eprintln!("  caused by: {cause}");
                    }
                    1
                }
            },
            _ = tokio::signal::ctrl_c() => {
                eprintln!("interrupted");
                130
            }
        };
        self.shared.refresh.notify_one();
        Flow::Next(code)
    }

    async fn use_command(&self, args: &[String]) -> u8 {
        match args {
            [] => {
                match self.shared.project() {
                    Some(p) => println!("Using project #{}: {}", p.id, p.name),
                    None => println!("No project chosen; `use NAME|ID` chooses one."),
                }
                0
            }
            [wanted] => match self.use_project(wanted).await {
                Ok(p) => {
                    println!("✓ Using project #{}: {}", p.id, p.name);
                    0
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    1
                }
            },
            _ => {
                eprintln!("error: `use` takes one project name or id (quote a name with spaces)");
                2
            }
        }
    }

    /// Parse `obra <words>` and apply the session's global flags where the line does not give its own.
    pub(crate) fn parse(&self, words: &[String]) -> Result<Cli, clap::Error> {
        let argv = std::iter::once("obra".to_string()).chain(words.iter().cloned());
        let matches = Cli::command().try_get_matches_from(argv)?;
        let mut cli = Cli::from_arg_matches(&matches)?;
        let from_line = |id: &str| matches.value_source(id) == Some(ValueSource::CommandLine);
        let g = &mut cli.global;
        if !from_line("project") {
            g.project = self.shared.project().map(|p| p.name).or_else(|| self.globals.project.clone());
        }
        if g.dir.is_none() {
            g.dir = self.globals.dir.clone();
        }
        if !from_line("profile") {
            g.profile = self.globals.profile.clone();
        }
        let mut sets = self.globals.sets.clone();
        sets.append(&mut g.sets);
        g.sets = sets;
        g.verbose = g.verbose.max(self.globals.verbose);
        Ok(cli)
    }
}

/// Find a project by id or name (exact, then ignoring case); an unknown one is an error naming the known ones.
pub(crate) fn find_project(projects: &[ProjectRef], wanted: &str) -> Result<ProjectRef> {
    let by_id = wanted.trim_start_matches('#').parse::<i64>().ok().and_then(|id| projects.iter().find(|p| p.id == id));
    let found = by_id
        .or_else(|| projects.iter().find(|p| p.name == wanted))
        .or_else(|| projects.iter().find(|p| p.name.eq_ignore_ascii_case(wanted)));
    match found {
        Some(p) => Ok(p.clone()),
        None if projects.is_empty() => bail!("no project \"{wanted}\": this store has no projects yet"),
        None => {
            let known: Vec<String> = projects.iter().map(|p| format!("#{} {}", p.id, p.name)).collect();
            bail!("no project \"{wanted}\"; known projects: {}", known.join(", "))
        }
    }
}

/// The number behind an [`ExitCode`] (which hides it).
fn exit_code_number(code: ExitCode) -> u8 {
    (0..=u8::MAX).find(|n| ExitCode::from(*n) == code).unwrap_or(1)
}

fn print_help() {
    let mut cmd = Cli::command().override_usage("<COMMAND> [OPTIONS]");
    println!("{}", cmd.render_help());
    println!(
        "Interactive mode:\n  use NAME|ID    Work on that project from now on (adds --project to every command)\n  \
         execute ID     Same as `task execute ID`\n  help [COMMAND] Help on a command\n  exit, quit     Leave (or Ctrl-D)"
    );
}

/// Where the history is kept: `$XDG_STATE_HOME/obra/history` (else the local data directory).
pub(crate) fn history_path() -> Option<PathBuf> {
    dirs::state_dir().or_else(dirs::data_local_dir).map(|d| d.join("obra").join("history"))
}

/// Run the REPL until `exit`, Ctrl-D or the end of the input.
pub async fn run(g: &GlobalArgs, args: InteractiveArgs) -> Result<ExitCode> {
    // Every line runs in this process: open each store once, not once per command.
    crate::orchestrator::store_location::keep_stores_open();
    let session = Session::new(g.clone());
    if let Some(wanted) = &g.project
        && let Err(e) = session.use_project(wanted).await
    {
        eprintln!("error: {e}");
    }
    if std::io::stdin().is_terminal() { interactive(session, args).await } else { piped(session).await }
}

/// Lines from a pipe or file: no prompt, no history, no completion; every line runs.
async fn piped(session: Session) -> Result<ExitCode> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<std::io::Result<String>>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let failed = line.is_err();
            if tx.send(line).is_err() || failed {
                break;
            }
        }
    });
    let mut last_failure = 0u8;
    while let Some(line) = rx.recv().await {
        let line = line?;
        match session.line(&line).await {
            Flow::Exit => break,
            Flow::Next(0) => {}
            Flow::Next(code) => {
                eprintln!("[exit code {code}]");
                last_failure = code;
            }
        }
    }
    Ok(ExitCode::from(last_failure))
}

/// The terminal REPL: line editor thread, breakpoint watcher, and the loop.
async fn interactive(session: Session, args: InteractiveArgs) -> Result<ExitCode> {
    let history = if args.no_history { None } else { history_path() };
    let helper = complete::ReplHelper::new(session.shared.clone());
    let mut editor = editor::LineEditor::spawn(helper, history)?;
    let watcher = tokio::spawn(watch::watch(session.open_options(), session.shared.clone(), editor.printer.take()));
    println!("Obra interactive mode. Type `help` for the commands, `exit` or Ctrl-D to leave.");
    loop {
        match editor.read(session.prompt()).await {
            editor::Input::Line(line) => match session.line(&line).await {
                Flow::Exit => break,
                Flow::Next(0) => {}
                Flow::Next(code) => eprintln!("[exit code {code}]"),
            },
            editor::Input::Interrupted => {}
            editor::Input::Eof => break,
            editor::Input::Failed(e) => {
                watcher.abort();
                bail!("cannot read the line: {e}");
            }
        }
    }
    watcher.abort();
    println!("Goodbye!");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Session {
        Session::new(GlobalArgs::default())
    }

    fn words(line: &str) -> Vec<String> {
        shell_words::split(line).unwrap()
    }

    #[test]
    fn lines_split_like_a_shell() {
        assert_eq!(
            words(r#"task create "Write hello world" -d 'say "hi"'"#),
            ["task", "create", "Write hello world", "-d", r#"say "hi""#]
        );
        assert_eq!(words(r"task create two\ words"), ["task", "create", "two words"]);
        assert_eq!(words("   "), Vec::<String>::new());
        assert!(shell_words::split(r#"task create "unclosed"#).is_err());
    }

    #[test]
    fn the_prompt_names_the_current_project() {
        let s = session();
        assert_eq!(s.prompt(), "obra> ");
        *s.shared.project.lock().unwrap() = Some(ProjectRef { id: 2, name: "Demo Project".into() });
        assert_eq!(s.prompt(), "obra[Demo Project]> ");
    }

    #[test]
    fn projects_are_found_by_id_or_name_and_unknown_ones_are_listed() {
        let list = vec![ProjectRef { id: 1, name: "alpha".into() }, ProjectRef { id: 2, name: "Demo Project".into() }];
        assert_eq!(find_project(&list, "2").unwrap().name, "Demo Project");
        assert_eq!(find_project(&list, "#1").unwrap().name, "alpha");
        assert_eq!(find_project(&list, "demo project").unwrap().id, 2);
        let err = find_project(&list, "nope").unwrap_err().to_string();
        assert!(err.contains("\"nope\"") && err.contains("#1 alpha") && err.contains("#2 Demo Project"), "{err}");
        assert!(find_project(&[], "x").unwrap_err().to_string().contains("no projects"));
    }

    #[test]
    fn the_session_project_and_flags_apply_unless_the_line_gives_its_own() {
        let globals = GlobalArgs {
            dir: Some("/somewhere".into()),
            profile: Some("minimal".into()),
            sets: vec!["engine.max_iterations=2".into()],
            ..GlobalArgs::default()
        };
        let s = Session::new(globals);
        *s.shared.project.lock().unwrap() = Some(ProjectRef { id: 3, name: "web".into() });
        let cli = s.parse(&words("task list --set a=b")).unwrap();
        assert_eq!(cli.global.project.as_deref(), Some("web"));
        assert_eq!(cli.global.dir.as_deref(), Some(std::path::Path::new("/somewhere")));
        assert_eq!(cli.global.profile.as_deref(), Some("minimal"));
        assert_eq!(cli.global.sets, ["engine.max_iterations=2", "a=b"]);
        let cli = s.parse(&words("status --project other --profile production -C /else")).unwrap();
        assert_eq!(cli.global.project.as_deref(), Some("other"));
        assert_eq!(cli.global.profile.as_deref(), Some("production"));
        assert_eq!(cli.global.dir.as_deref(), Some(std::path::Path::new("/else")));
    }

    #[test]
    fn bad_commands_are_clap_errors_and_help_is_not_a_failure() {
        let s = session();
        let err = s.parse(&words("tsk list")).unwrap_err();
        assert!(err.use_stderr());
        assert_eq!(err.exit_code(), 2);
        let help = s.parse(&words("task --help")).unwrap_err();
        assert!(!help.use_stderr());
    }

    #[tokio::test]
    async fn exit_blank_lines_and_unclosed_quotes() {
        let s = session();
        assert_eq!(s.line("exit").await, Flow::Exit);
        assert_eq!(s.line("quit").await, Flow::Exit);
        assert_eq!(s.line("   ").await, Flow::Next(0));
        assert_eq!(s.line("task create \"oops").await, Flow::Next(2));
        assert_eq!(s.line("interactive").await, Flow::Next(2));
        assert_eq!(s.line("use a b").await, Flow::Next(2));
    }

    #[test]
    fn exit_codes_are_recovered() {
        assert_eq!(exit_code_number(ExitCode::SUCCESS), 0);
        assert_eq!(exit_code_number(ExitCode::from(3)), 3);
        assert_eq!(exit_code_number(ExitCode::FAILURE), 1);
    }
}
