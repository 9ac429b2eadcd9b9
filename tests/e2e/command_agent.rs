//! The `command` agent (the seeds' CustomAgent): any CLI, configured by an argument template. A small script
//! agent in each prompt mode (argument, stdin, file) with text and JSON-lines output and session resume; the
//! REAL claude CLI configured as a command agent; and the refusal when the program is not granted.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{Project, text};

/// A script agent `my-agent` on the project's PATH: it records its arguments and standard input, writes
/// hello.txt, and prints text or JSON lines (with a session id) as `MODE` says.
fn with_script_agent(project: &mut Project) -> std::path::PathBuf {
    let bin = project.home().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = project.home().join("calls");
    std::fs::create_dir_all(&log).unwrap();
    let script = format!(
        r#"#!/bin/sh
n=$(cat {log}/.n 2>/dev/null || echo 0); echo $((n+1)) > {log}/.n
i=0
for a in "$@"; do printf '%s' "$a" > {log}/call-$n-arg-$i; i=$((i+1)); done
cat /proc/$$/cmdline > {log}/call-$n-cmdline
file_mode=
for a in "$@"; do case "$a" in /dev/stdin) file_mode=1; cp "$a" {log}/call-$n-prompt-file;; esac; done
if [ -z "$file_mode" ] && [ ! -t 0 ]; then cat > {log}/call-$n-stdin; fi
case "$1" in --version) echo "my-agent 1.2.3"; exit 0;; esac
printf 'hello from my-agent\n' > hello.txt
if [ "$MY_AGENT_FORMAT" = jsonl ]; then
  echo '{{"type":"start"}}'
  echo 'a line that is not JSON'
  echo '{{"type":"result","text":"wrote hello.txt","session":"sess-42","usage":{{"in":7,"out":3}}}}'
else
  echo "working..."
  echo "Wrote hello.txt"
fi
"#,
        log = log.display()
    );
    let path = bin.join("my-agent");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let sys_path = std::env::var("PATH").unwrap_or_default();
    project.set_env("PATH", &format!("{}:{sys_path}", bin.display()));
    log
}

fn config(agent: &str, extra_grant: &str) -> String {
    format!(
        r#"agent:
  plugin: command
  timeout_secs: 60
agents:
  command:
    program: my-agent
{agent}
llm:
  provider: none
engine:
  max_iterations: 1
gates:
  - plugin: response-format
plugins:
  grants:
    command:
      commands: [{{ program: my-agent, args: ["-**"] }}]
      env: [PATH, MY_AGENT_FORMAT{extra_grant}]
"#
    )
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

const HOSTILE: &str = "Write hello.txt. $(touch /tmp/obra-pwned) `id`; it's \"quoted\" && echo {prompt}\nsecond line";

#[test]
fn the_prompt_arrives_byte_identical_as_an_argument_on_stdin_or_in_a_file() {
    for (mode, agent) in [
        ("argument", "    args: [\"--task\", \"{task_id}\", \"-p\", \"{prompt}\"]\n"),
        ("stdin", "    args: [\"--task\", \"{task_id}\", \"--stdin\"]\n    prompt_via: stdin\n"),
        ("file", "    args: [\"--task\", \"{task_id}\", \"--file\", \"{prompt_file}\"]\n    prompt_via: file\n"),
    ] {
        let mut project = Project::new();
        let log = with_script_agent(&mut project);
        project.write_config(&config(agent, ""));
        let id = project.create_task("Hostile", HOSTILE);
        let out = project.obra(&["task", "execute", &id.to_string()]);
        assert_eq!(out.status.code(), Some(0), "{mode}: {}", text(&out));
        assert_eq!(read(&project.path().join("hello.txt")), "hello from my-agent\n");
        assert_eq!(read(&log.join("call-0-arg-1")), id.to_string());
        let prompt = match mode {
            "argument" => read(&log.join("call-0-arg-3")),
            "stdin" => read(&log.join("call-0-stdin")),
            _ => read(&log.join("call-0-prompt-file")),
        };
        assert!(prompt.contains(HOSTILE), "{mode}: the prompt arrived whole: {prompt}");
        assert!(!Path::new("/tmp/obra-pwned").exists());
        if mode == "file" {
            assert_eq!(read(&log.join("call-0-arg-3")), "/dev/stdin", "{{prompt_file}} names standard input");
            assert!(!project.path().join(".obra/prompts").exists(), "no copy of the prompt on disk");
        }
        let shown = project.obra_json(&["task", "show", &id.to_string(), "--json"], 0);
        let i = &shown["interactions"][0]["interaction"];
        assert_eq!(i["outcome"], "success");
        assert!(i["summary"].as_str().unwrap().ends_with("Wrote hello.txt"), "{i}");
    }
}

#[test]
fn by_default_the_prompt_goes_to_stdin_and_never_into_the_agents_argv() {
    let mut project = Project::new();
    let log = with_script_agent(&mut project);
    // Only the program: the default args ([]) and prompt_via (null: stdin when no argument holds {prompt}).
    project.write_config(&config("", ""));
    let id = project.create_task("Hostile", HOSTILE);
    let out = project.obra(&["task", "execute", &id.to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(read(&log.join("call-0-stdin")).contains(HOSTILE), "the prompt arrived whole on stdin");
    // What `ps` and every user of the machine see: the running agent's own /proc/<pid>/cmdline.
    let cmdline = std::fs::read(log.join("call-0-cmdline")).unwrap();
    let argv: Vec<String> = cmdline.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
    assert!(argv.iter().any(|a| a.ends_with("my-agent")), "{argv:?}");
    assert!(!argv.iter().any(|a| a.contains("Write hello.txt") || a.contains("METADATA")), "{argv:?}");
    assert!(!log.join("call-0-arg-0").exists(), "no arguments at all");
}

#[test]
fn json_lines_give_the_summary_usage_and_a_session_that_the_next_iteration_resumes() {
    let mut project = Project::new();
    let log = with_script_agent(&mut project);
    project.set_env("MY_AGENT_FORMAT", "jsonl");
    let agent = "    args: [\"{prompt}\"]\n    resume_args: [\"--resume\", \"{session_id}\"]\n    output:\n      \
                 format: jsonl\n      result_match: {path: /type, equals: result}\n      summary_path: /text\n      \
                 session_path: /session\n      input_tokens_path: /usage/in\n      output_tokens_path: /usage/out\n";
    // A gate that fails once, so the task needs a second iteration.
    let cfg = config(agent, "")
        .replace(
            "max_iterations: 1",
            "max_iterations: 2\n  decision:\n    proceed_threshold: 0.85\n    escalate_threshold: 0.3\nrules: []",
        )
        .replace(
            "gates:\n  - plugin: response-format\n",
            "gates:\n  - plugin: tests\n    enabled: true\n    config:\n      command: \"test -f .second || { touch .second; exit 1; }\"\n",
        );
    project.write_config(&cfg);
    let id = project.create_task("Twice", "do it");
    let out = project.obra(&["task", "execute", &id.to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let shown = project.obra_json(&["task", "show", &id.to_string(), "--json"], 0);
    let runs = shown["interactions"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{shown}");
    let first = &runs[0]["interaction"];
    assert_eq!((first["summary"].as_str(), first["session_id"].as_str()), (Some("wrote hello.txt"), Some("sess-42")));
    assert_eq!((first["input_tokens"].as_i64(), first["output_tokens"].as_i64()), (Some(7), Some(3)));
    assert!(!log.join("call-0-arg-1").exists(), "the first run starts fresh");
    assert_eq!(read(&log.join("call-1-arg-1")), "--resume");
    assert_eq!(read(&log.join("call-1-arg-2")), "sess-42", "the second run resumes the session");
}

#[test]
fn without_a_grant_the_run_is_refused_naming_the_config_line_and_bad_templates_are_config_errors() {
    let mut project = Project::new();
    let log = with_script_agent(&mut project);
    let cfg = config("    args: [\"{prompt}\"]\n", "")
        .replace("commands: [{ program: my-agent, args: [\"-**\"] }]", "commands: []");
    project.write_config(&cfg);
    let id = project.create_task("Refused", "x");
    let out = project.obra(&["task", "execute", &id.to_string()]);
    let said = text(&out);
    assert_ne!(out.status.code(), Some(0), "{said}");
    assert!(
        said.contains("may not run")
            && said.contains("plugins.grants.command.commands")
            && said.contains("program: my-agent"),
        "{said}"
    );
    assert!(log.read_dir().unwrap().next().is_none(), "nothing ran");
    let doctor = text(&project.obra(&["doctor"]));
    assert!(doctor.contains("none is granted") || doctor.contains("may not run"), "{doctor}");

    project.write_config(&config("    args: [\"{promt}\"]\n", ""));
    let id = project.create_task("Bad template", "x");
    let out = project.obra(&["task", "execute", &id.to_string()]);
    let said = text(&out);
    assert!(said.contains("args[0]") && said.contains("unknown placeholder `{promt}`"), "{said}");
    let doctor = project.obra(&["doctor"]);
    assert_eq!(doctor.status.code(), Some(1), "{}", text(&doctor));
}

#[test]
fn doctor_runs_the_configured_version_command() {
    let mut project = Project::new();
    with_script_agent(&mut project);
    project.write_config(&config("    args: [\"{prompt}\"]\n", ""));
    let said = text(&project.obra(&["doctor"]));
    assert!(said.contains("ok    agent command") && said.contains("my-agent 1.2.3"), "{said}");
}

/// A script agent that misbehaves as `MODE` says: hangs, kills itself, or prints no JSON.
fn with_misbehaving_agent(project: &mut Project) {
    let bin = project.home().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = r#"#!/bin/sh
case "$MY_AGENT_MODE" in
  hang) sleep 60 ;;
  crash) echo "starting"; kill -9 $$ ;;
  garbage) echo "this is not JSON"; echo "neither is this" ;;
esac
"#;
    let path = bin.join("my-agent");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let sys_path = std::env::var("PATH").unwrap_or_default();
    project.set_env("PATH", &format!("{}:{sys_path}", bin.display()));
}

#[test]
fn a_hanging_a_crashing_and_a_garbage_printing_agent_are_told_apart() {
    for (mode, outcome) in [("hang", "timeout"), ("crash", "crashed"), ("garbage", "unparseable")] {
        let mut project = Project::new();
        with_misbehaving_agent(&mut project);
        project.set_env("MY_AGENT_MODE", mode);
        let agent = "    args: [\"{prompt}\"]\n    output:\n      format: jsonl\n      summary_path: /result\n";
        let cfg = config(agent, ", MY_AGENT_MODE").replace("timeout_secs: 60", "timeout_secs: 3");
        project.write_config(&cfg);
        let id = project.create_task("Misbehave", mode);
        let out = project.obra(&["task", "execute", &id.to_string()]);
        assert_ne!(out.status.code(), Some(0), "{mode}: {}", text(&out));
        let shown = project.obra_json(&["task", "show", &id.to_string(), "--json"], 0);
        let i = &shown["interactions"][0]["interaction"];
        assert_eq!(i["outcome"], outcome, "{mode}: {shown}");
        assert_ne!(shown["task"]["status"], "completed", "{mode}");
        assert!(!i["summary"].as_str().unwrap_or("").is_empty(), "{mode}: a reason is stored");
    }
}
