//! What `obra init` finds out about a new project: the command that runs its tests and whether an LLM answers,
//! and the `.obra/config.yaml` it writes from that.

use std::path::Path;
use std::time::Duration;

/// How long `obra init` waits for an LLM server to answer.
const PROBE_TIMEOUT: Duration = Duration::from_millis(1500);

/// The test command found in a project, and what it was found by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestCommand {
    /// The command the tests gate runs.
    pub command: String,
    /// What it was found by, e.g. "Cargo.toml".
    pub found_by: String,
}

/// Every test command `dir`'s files suggest, the most specific first: pytest, cargo, npm, go, make.
pub fn detect_tests(dir: &Path) -> Vec<TestCommand> {
    let found = |command: &str, by: String| TestCommand { command: command.to_string(), found_by: by };
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok();
    let mut out = Vec::new();
    if let Some(by) = pytest_marker(dir) {
        out.push(found("pytest", by));
    }
    if dir.join("Cargo.toml").is_file() {
        out.push(found("cargo test", "Cargo.toml".into()));
    }
    if let Some(text) = read("package.json")
        && let Ok(json) = serde_json::from_str::<serde_json::Value>(&text)
        && let Some(script) = json["scripts"]["test"].as_str()
        // `npm init`'s placeholder fails on purpose: it is no test suite.
        && !script.contains("no test specified")
    {
        out.push(found("npm test", "the test script of package.json".into()));
    }
    if dir.join("go.mod").is_file() {
        out.push(found("go test ./...", "go.mod".into()));
    }
    for name in ["GNUmakefile", "makefile", "Makefile"] {
        if let Some(text) = read(name)
            && has_make_target(&text, "test")
        {
            out.push(found("make test", format!("the test target of {name}")));
            break;
        }
    }
    out
}

/// What says a Python project's tests run with pytest, if anything does.
fn pytest_marker(dir: &Path) -> Option<String> {
    if dir.join("pytest.ini").is_file() {
        return Some("pytest.ini".into());
    }
    for (name, marker) in [("pyproject.toml", "pytest"), ("setup.cfg", "[tool:pytest]"), ("tox.ini", "[pytest]")] {
        if std::fs::read_to_string(dir.join(name)).is_ok_and(|t| t.contains(marker)) {
            return Some(format!("{name} (mentions pytest)"));
        }
    }
    let tests = dir.join("tests");
    let has_test_files = std::fs::read_dir(&tests).ok()?.flatten().any(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        name.starts_with("test_") && name.ends_with(".py")
    });
    has_test_files.then(|| "tests/test_*.py".into())
}

/// Whether a Makefile defines `target` (a rule `target:`, not a variable `target := ...`).
fn has_make_target(makefile: &str, target: &str) -> bool {
    makefile.lines().any(|line| {
        if line.starts_with(['\t', ' ', '#']) {
            return false;
        }
        let Some((names, rest)) = line.split_once(':') else { return false };
        !rest.starts_with('=') && !names.contains('=') && names.split_whitespace().any(|n| n == target)
    })
}

/// The LLM `obra init` chooses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LlmChoice {
    /// An Ollama server answered at this URL, with its version.
    Ollama {
        /// The server's base URL.
        base_url: String,
        /// The version it reported.
        version: String,
    },
    /// An OpenAI-compatible API, its key in the environment variable `key_env`.
    OpenAi {
        /// The API's base URL, ending in /v1.
        base_url: String,
        /// The model to ask.
        model: String,
        /// The environment variable holding the key.
        key_env: String,
    },
    /// No LLM answers: heuristics alone decide.
    None {
        /// Where an Ollama server was looked for.
        ollama_url: String,
    },
}

/// Ask the Ollama server at `ollama_url` for its version (`/api/version`, a short timeout); else look for an
/// OpenAI-compatible key in `env`; else no LLM.
pub async fn detect_llm(ollama_url: &str, env: &dyn Fn(&str) -> Option<String>) -> LlmChoice {
    let base = ollama_url.trim_end_matches('/').to_string();
    if let Some(version) = ollama_version(&base).await {
        return LlmChoice::Ollama { base_url: base, version };
    }
    let set = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    if set("OPENAI_API_KEY").is_some() {
        return LlmChoice::OpenAi {
            base_url: set("OPENAI_BASE_URL").unwrap_or_else(|| "https://api.openai.com/v1".into()),
            model: set("OPENAI_MODEL").unwrap_or_else(|| "gpt-4o-mini".into()),
            key_env: "OPENAI_API_KEY".into(),
        };
    }
    if set("OPENROUTER_API_KEY").is_some() {
        return LlmChoice::OpenAi {
            base_url: "https://openrouter.ai/api/v1".into(),
            model: set("OPENAI_MODEL").unwrap_or_else(|| "openai/gpt-4o-mini".into()),
            key_env: "OPENROUTER_API_KEY".into(),
        };
    }
    LlmChoice::None { ollama_url: base }
}

/// The version an Ollama server at `base` reports, if it answers in time.
async fn ollama_version(base: &str) -> Option<String> {
    let client = reqwest::Client::builder().timeout(PROBE_TIMEOUT).connect_timeout(PROBE_TIMEOUT).build().ok()?;
    let reply = client.get(format!("{base}/api/version")).send().await.ok()?;
    if !reply.status().is_success() {
        return None;
    }
    let json: serde_json::Value = serde_json::from_slice(&reply.bytes().await.ok()?).ok()?;
    json["version"].as_str().map(str::to_string)
}

/// What `obra init` says it found, one line each.
pub fn findings(tests: &[TestCommand], llm: &LlmChoice, ollama_model: &str) -> Vec<String> {
    let mut lines = Vec::new();
    match tests.split_first() {
        Some((chosen, others)) => {
            let mut line = format!(
                "tests: `{}` (found by {}); the tests gate runs it after each agent run",
                chosen.command, chosen.found_by
            );
            if !others.is_empty() {
                let list: Vec<String> = others.iter().map(|t| format!("`{}`", t.command)).collect();
                line.push_str(&format!(" (also possible: {})", list.join(", ")));
            }
            lines.push(line);
        }
        None => lines.push(
            "tests: no test command found (pytest, Cargo.toml, package.json, go.mod, Makefile); the tests gate \
             is off — enable it in .obra/config.yaml"
                .into(),
        ),
    }
    lines.push(match llm {
        LlmChoice::Ollama { base_url, version } => format!(
            "LLM: Ollama {version} answers at {base_url}; it will be asked for model {ollama_model} \
             (`ollama pull {ollama_model}`, or set llms.ollama.model)"
        ),
        LlmChoice::OpenAi { base_url, model, key_env } => {
            format!("LLM: ${key_env} is set; the OpenAI-compatible API at {base_url} with model {model}")
        }
        LlmChoice::None { ollama_url } => format!(
            "LLM: none answers (no Ollama at {ollama_url}, no OPENAI_API_KEY or OPENROUTER_API_KEY): \
             llm.provider: none, decisions use the gates and heuristics alone"
        ),
    });
    lines
}

/// The `.obra/config.yaml` that `obra init` writes: the tests gate with the command found, the LLM chosen,
/// and pointers to every other key.
pub fn project_config(tests: &[TestCommand], llm: &LlmChoice) -> String {
    let mut text = String::from(
        "# This project's Obra settings (written by `obra init`). Name only what you change: `obra config show`\n\
         # prints every key with its value and the layer it comes from, `obra config validate` checks this file.\n",
    );
    match tests.first() {
        Some(t) => text.push_str(&format!(
            "\n# The tests gate runs this after each agent run (found by {}).\ngates:\n  - plugin: response-format\n  \
             - plugin: tests\n    enabled: true\n    config:\n      command: {}\n",
            t.found_by,
            serde_json::to_string(&t.command).expect("a string serialises")
        )),
        None => text.push_str(
            "\n# No test command was found. Enable the tests gate with yours:\n# gates:\n#   - plugin: response-format\n\
             #   - plugin: tests\n#     enabled: true\n#     config:\n#       command: \"make test\"\n",
        ),
    }
    match llm {
        LlmChoice::Ollama { base_url, .. } => {
            text.push_str(&format!("\n# Ollama answered at {base_url} when this was written.\nllm:\n  provider: ollama\n"));
            if base_url != "http://127.0.0.1:11434" {
                text.push_str(&format!("llms:\n  ollama:\n    base_url: {base_url}\n"));
            }
        }
        LlmChoice::OpenAi { base_url, model, key_env } => text.push_str(&format!(
            "\n# ${key_env} was set when this was written.\nllm:\n  provider: openai\nllms:\n  openai:\n    \
             base_url: {base_url}\n    model: {model}\n    api_key_env: {key_env}\n"
        )),
        LlmChoice::None { .. } => text.push_str(
            "\n# No LLM answered when this was written: heuristics alone decide. For an LLM's opinion, e.g.\n\
             # `provider: ollama` with a server at llms.ollama.base_url (`obra doctor` checks it).\nllm:\n  provider: none\n",
        ),
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, content) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        }
        dir
    }

    fn commands(files: &[(&str, &str)]) -> Vec<String> {
        detect_tests(layout(files).path()).into_iter().map(|t| t.command).collect()
    }

    #[test]
    fn each_layout_gives_its_test_command() {
        assert_eq!(commands(&[("pytest.ini", "[pytest]\n")]), ["pytest"]);
        assert_eq!(commands(&[("pyproject.toml", "[tool.pytest.ini_options]\n")]), ["pytest"]);
        assert_eq!(commands(&[("tests/test_app.py", "def test_x(): pass\n")]), ["pytest"]);
        assert_eq!(commands(&[("Cargo.toml", "[package]\nname = \"x\"\n")]), ["cargo test"]);
        assert_eq!(commands(&[("package.json", r#"{"scripts": {"test": "jest"}}"#)]), ["npm test"]);
        assert_eq!(commands(&[("go.mod", "module x\n")]), ["go test ./..."]);
        assert_eq!(commands(&[("Makefile", "all: build\n\ntest: all\n\t./run-tests\n")]), ["make test"]);
        assert_eq!(commands(&[("Makefile", "build test: deps\n")]), ["make test"]);
        assert_eq!(commands(&[("Cargo.toml", ""), ("Makefile", "test:\n\tcargo test\n")]), ["cargo test", "make test"]);
    }

    #[test]
    fn look_alikes_are_not_test_commands() {
        assert!(commands(&[]).is_empty());
        assert!(commands(&[("pyproject.toml", "[project]\nname = \"x\"\n")]).is_empty());
        assert!(commands(&[("tests/helper.py", "")]).is_empty());
        assert!(commands(&[("package.json", r#"{"scripts": {"build": "tsc"}}"#)]).is_empty());
        let npm_init = r#"{"scripts": {"test": "echo \"Error: no test specified\" && exit 1"}}"#;
        assert!(commands(&[("package.json", npm_init)]).is_empty());
        assert!(commands(&[("Makefile", "test := 1\ntesting:\n\techo\n")]).is_empty());
    }

    #[test]
    fn the_config_enables_the_tests_gate_and_chooses_the_llm() {
        let tests = vec![TestCommand { command: "cargo test".into(), found_by: "Cargo.toml".into() }];
        let none = LlmChoice::None { ollama_url: "http://127.0.0.1:11434".into() };
        let text = project_config(&tests, &none);
        assert!(!text.contains("sources") && !text.contains("default.yaml"), "{text}");
        assert!(text.contains("`obra config show`"), "{text}");
        let value: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(value["gates"][1]["config"]["command"], "cargo test");
        assert_eq!(value["gates"][1]["enabled"], true);
        assert_eq!(value["llm"]["provider"], "none");

        let openai = LlmChoice::OpenAi {
            base_url: "https://api.openai.com/v1".into(),
            model: "gpt-4o-mini".into(),
            key_env: "OPENAI_API_KEY".into(),
        };
        let value: serde_yaml::Value = serde_yaml::from_str(&project_config(&[], &openai)).unwrap();
        assert!(value.get("gates").is_none());
        assert_eq!(value["llm"]["provider"], "openai");
        assert_eq!(value["llms"]["openai"]["api_key_env"], "OPENAI_API_KEY");
    }

    #[tokio::test]
    async fn an_llm_is_chosen_only_when_one_can_answer() {
        // Nothing listens on the discard port: no Ollama; the key decides.
        let closed = "http://127.0.0.1:9";
        assert_eq!(detect_llm(closed, &|_| None).await, LlmChoice::None { ollama_url: closed.into() });
        let with_key = |name: &str| (name == "OPENAI_API_KEY").then(|| "sk-test".to_string());
        assert!(
            matches!(detect_llm(closed, &with_key).await, LlmChoice::OpenAi { key_env, .. } if key_env == "OPENAI_API_KEY")
        );
    }
}
