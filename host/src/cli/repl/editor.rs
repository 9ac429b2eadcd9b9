//! The line editor on its own thread: rustyline's `readline` blocks, so it runs there and hands lines to the
//! async loop through channels. The history file is loaded at start and appended to after every line.

use std::path::{Path, PathBuf};
use std::sync::mpsc;

use anyhow::{Context, Result};
use rustyline::config::{CompletionType, Config};
use rustyline::error::ReadlineError;
use rustyline::history::FileHistory;
use rustyline::{Editor, ExternalPrinter};

use super::complete::ReplHelper;

/// What the user typed.
#[derive(Debug)]
pub(crate) enum Input {
    /// A line (without its newline).
    Line(String),
    /// Ctrl-C: the line was abandoned.
    Interrupted,
    /// Ctrl-D on an empty line.
    Eof,
    /// The terminal failed.
    Failed(String),
}

/// Prints above the prompt without corrupting the line being typed.
pub(crate) type Printer = Box<dyn ExternalPrinter + Send>;

/// A handle on the editor thread.
pub(crate) struct LineEditor {
    prompts: mpsc::Sender<String>,
    lines: tokio::sync::mpsc::UnboundedReceiver<Input>,
    /// The editor's external printer (`None` if the terminal does not support one).
    pub printer: Option<Printer>,
}

impl LineEditor {
    /// Start the editor thread with this completer and history file.
    pub(crate) fn spawn(helper: ReplHelper, history: Option<PathBuf>) -> Result<Self> {
        let (prompt_tx, prompt_rx) = mpsc::channel::<String>();
        let (line_tx, line_rx) = tokio::sync::mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = mpsc::sync_channel::<Result<Option<Printer>>>(1);
        std::thread::Builder::new()
            .name("obra-readline".into())
            .spawn(move || {
                let mut editor = match new_editor(helper, history.as_deref()) {
                    Ok(e) => e,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let printer = editor.create_external_printer().ok().map(|p| Box::new(p) as Printer);
                if ready_tx.send(Ok(printer)).is_err() {
                    return;
                }
                while let Ok(prompt) = prompt_rx.recv() {
                    let input = match editor.readline(&prompt) {
                        Ok(line) => {
                            remember(&mut editor, history.as_deref(), &line);
                            Input::Line(line)
                        }
                        Err(ReadlineError::Interrupted) => Input::Interrupted,
                        Err(ReadlineError::Eof) => Input::Eof,
                        Err(e) => Input::Failed(e.to_string()),
                    };
                    if line_tx.send(input).is_err() {
                        return;
                    }
                }
            })
            .context("cannot start the line editor thread")?;
        let printer = ready_rx.recv().context("the line editor thread stopped")??;
        Ok(Self { prompts: prompt_tx, lines: line_rx, printer })
    }

    /// Show `prompt` and wait for the user's line.
    pub(crate) async fn read(&mut self, prompt: String) -> Input {
        if self.prompts.send(prompt).is_err() {
            return Input::Failed("the line editor thread stopped".into());
        }
        self.lines.recv().await.unwrap_or_else(|| Input::Failed("the line editor thread stopped".into()))
    }
}

fn new_editor(helper: ReplHelper, history: Option<&Path>) -> Result<Editor<ReplHelper, FileHistory>> {
    let config = Config::builder()
        .history_ignore_dups(true)?
        .history_ignore_space(true)
        .auto_add_history(false)
        .completion_type(CompletionType::List)
        .build();
    let mut editor = Editor::with_config(config).context("cannot start the line editor")?;
    editor.set_helper(Some(helper));
    if let Some(path) = history {
        let loaded = if path.exists() {
            editor.load_history(path).map_err(anyhow::Error::from)
        } else {
            std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")))
                .map_err(anyhow::Error::from)
                .and_then(|()| editor.save_history(path).map_err(anyhow::Error::from))
        };
        if let Err(e) = loaded {
            eprintln!("warning: history file {}: {e}", path.display());
        }
    }
    Ok(editor)
}

/// Add a line to the history (not blank ones, nor `exit`) and append it to the file.
fn remember(editor: &mut Editor<ReplHelper, FileHistory>, history: Option<&Path>, line: &str) {
    let trimmed = line.trim();
    if trimmed.is_empty() || matches!(trimmed, "exit" | "quit") {
        return;
    }
    if matches!(editor.add_history_entry(line), Ok(true))
        && let Some(path) = history
        && let Err(e) = editor.append_history(path)
    {
        eprintln!("warning: cannot save the history to {}: {e}", path.display());
    }
}
