//! Re-record the Claude Code stream-json fixtures in `tests/fixtures/claude/` by running the REAL pinned CLI
//! against [`FakeAnthropic`]:
//!
//! ```text
//! tests/install-agent-clis.sh
//! cargo run -p obra-testkit --example record_claude_fixtures            # all scenarios
//! cargo run -p obra-testkit --example record_claude_fixtures -- api_500 # some of them
//! ```
//!
//! For each scenario it writes `<name>.stdout.jsonl` (the CLI's stdout, verbatim), `<name>.requests.json`
//! (a summary of what the CLI sent to the fake) and prints the exit code and command line; keep
//! `tests/fixtures/claude/README.md` in step with what it prints.

use std::path::{Path, PathBuf};

use obra_testkit::{AnthropicReply, FakeAnthropic, RecordedRequest, require_claude};
use serde_json::{Value, json};

struct Scenario {
    name: &'static str,
    prompt: &'static str,
    args: &'static [&'static str],
    script: fn() -> Vec<AnthropicReply>,
    /// Files to create in the working directory before the run.
    setup: &'static [(&'static str, &'static str)],
    /// Environment overrides on top of the test kit's defaults.
    env: &'static [(&'static str, &'static str)],
    /// Variables of the test kit's environment to remove.
    unset: &'static [&'static str],
    /// Point ANTHROPIC_BASE_URL at a closed port instead of the fake.
    closed_port: bool,
}

impl Scenario {
    fn new(name: &'static str, prompt: &'static str, script: fn() -> Vec<AnthropicReply>) -> Scenario {
        Scenario { name, prompt, args: &[], script, setup: &[], env: &[], unset: &[], closed_port: false }
    }
}

fn scenarios() -> Vec<Scenario> {
    const ACCEPT_EDITS: &[&str] = &["--permission-mode", "acceptEdits"];
    vec![
        Scenario {
            args: ACCEPT_EDITS,
            ..Scenario::new("success_write", "Create hello.txt containing the line: Hello from Obra", || {
                vec![
                    AnthropicReply::write_file("hello.txt", "Hello from Obra\n")
                        .with_text_before("I'll create the file."),
                    AnthropicReply::text("Created hello.txt with the requested line."),
                ]
            })
        },
        Scenario {
            args: &["--permission-mode", "acceptEdits", "--max-turns", "1"],
            ..Scenario::new("error_max_turns", "Create notes.txt containing: first turn only", || {
                vec![
                    AnthropicReply::write_file("notes.txt", "first turn only\n"),
                    AnthropicReply::text("UNUSED: the CLI should stop after one turn."),
                ]
            })
        },
        Scenario::new("api_429", "Say hello", || {
            vec![
                AnthropicReply::rate_limited().retry_after(2),
                AnthropicReply::text("UNUSED: reached only if the CLI retried."),
            ]
        }),
        Scenario::new("api_500", "Say hello", || {
            vec![AnthropicReply::server_error(), AnthropicReply::text("UNUSED: reached only if the CLI retried.")]
        }),
        Scenario::new("permission_denied", "Run: python3 -c 'print(6*7)'", || {
            vec![
                AnthropicReply::bash("python3 -c 'print(6*7)'"),
                AnthropicReply::text("I need permission to run python3."),
            ]
        }),
        Scenario::new("permission_denied_file_write", "Run the shell command: touch bash-was-here.txt", || {
            vec![
                AnthropicReply::bash("touch bash-was-here.txt"),
                AnthropicReply::text("I was not allowed to run the command."),
            ]
        }),
        Scenario {
            args: &["--dangerously-skip-permissions"],
            ..Scenario::new("bypass_permissions_bash", "Run the shell command: touch bash-was-here.txt", || {
                vec![AnthropicReply::bash("touch bash-was-here.txt"), AnthropicReply::text("Done.")]
            })
        },
        Scenario {
            args: &["--dangerously-skip-permissions"],
            unset: &["IS_SANDBOX"],
            ..Scenario::new("root_without_is_sandbox", "Say hello", || vec![AnthropicReply::text("UNUSED")])
        },
        Scenario {
            env: &[("CLAUDE_CODE_MAX_RETRIES", "1")],
            ..Scenario::new("api_429_retried", "Say hello", || {
                vec![AnthropicReply::rate_limited().retry_after(1), AnthropicReply::text("Hello after the retry.")]
            })
        },
        Scenario::new("api_529_overloaded", "Say hello", || {
            vec![AnthropicReply::overloaded(), AnthropicReply::text("UNUSED")]
        }),
        Scenario::new("stream_error_recovered", "Say hello", || {
            vec![
                AnthropicReply::stream_error("overloaded_error", "Overloaded"),
                AnthropicReply::text("Hello after the stream error."),
            ]
        }),
        Scenario::new("stream_error_persistent", "Say hello", || {
            let mut script = vec![AnthropicReply::stream_error("overloaded_error", "Overloaded"); 4];
            script.push(AnthropicReply::text("UNUSED: reached only after a fifth attempt."));
            script
        }),
        Scenario { closed_port: true, ..Scenario::new("connection_refused", "Say hello", Vec::new) },
        Scenario {
            args: ACCEPT_EDITS,
            setup: &[("greeting.txt", "hello world\n")],
            ..Scenario::new("edit_after_read", "In greeting.txt replace world by Obra", || {
                vec![
                    AnthropicReply::read_file("greeting.txt"),
                    AnthropicReply::edit_file("greeting.txt", "world", "Obra"),
                    AnthropicReply::text("Replaced."),
                ]
            })
        },
        Scenario {
            args: ACCEPT_EDITS,
            setup: &[("calc.py", "def add(a, b):\n    return a - b\n")],
            ..Scenario::new("edit_without_read", "Fix add() in calc.py so it returns the sum", || {
                vec![
                    AnthropicReply::edit_file("calc.py", "return a - b", "return a + b"),
                    AnthropicReply::text("Fixed add() to return the sum."),
                ]
            })
        },
    ]
}

/// Quote `arg` for a POSIX shell when it needs it.
fn shell_quote(arg: &str) -> String {
    let plain = arg.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:@%+,".contains(c));
    if plain && !arg.is_empty() { arg.to_string() } else { format!("'{}'", arg.replace('\'', "'\\''")) }
}

fn summarize(req: &RecordedRequest) -> Value {
    let mut v = json!({
        "method": req.method,
        "path": req.path,
    });
    if let Some(body) = &req.json {
        let tools: Vec<&str> =
            body["tools"].as_array().map(|t| t.iter().filter_map(|t| t["name"].as_str()).collect()).unwrap_or_default();
        let messages: Vec<Value> = body["messages"]
            .as_array()
            .map(|m| {
                m.iter()
                    .map(|m| {
                        let content = match &m["content"] {
                            Value::String(s) => json!([{"type": "text", "chars": s.len()}]),
                            Value::Array(blocks) => Value::Array(
                                blocks
                                    .iter()
                                    .map(|b| {
                                        let mut s = json!({"type": b["type"]});
                                        for key in ["name", "tool_use_id", "is_error", "input"] {
                                            if !b[key].is_null() {
                                                s[key] = b[key].clone();
                                            }
                                        }
                                        if b["type"] == "tool_result" {
                                            s["content"] = b["content"].clone();
                                        }
                                        if let Some(t) = b["text"].as_str() {
                                            s["text"] = if t.len() > 200 {
                                                json!(format!(
                                                    "{}... ({} chars)",
                                                    &t[..t.floor_char_boundary(200)],
                                                    t.len()
                                                ))
                                            } else {
                                                json!(t)
                                            };
                                        }
                                        s
                                    })
                                    .collect(),
                            ),
                            other => other.clone(),
                        };
                        json!({"role": m["role"], "content": content})
                    })
                    .collect()
            })
            .unwrap_or_default();
        v["model"] = body["model"].clone();
        v["stream"] = body["stream"].clone();
        v["max_tokens"] = body["max_tokens"].clone();
        v["tools"] = json!(tools);
        v["messages"] = json!(messages);
        v["body_keys"] = json!(body.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()));
    }
    let interesting = ["user-agent", "anthropic-version", "anthropic-beta", "x-stainless-retry-count", "x-api-key"];
    v["headers"] = json!(
        req.headers
            .iter()
            .filter(|(k, _)| interesting.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect::<serde_json::Map<_, _>>()
    );
    v
}

fn main() {
    let Some(cli) = require_claude() else {
        eprintln!("{}", obra_testkit::claude::install_hint());
        std::process::exit(2);
    };
    let wanted: Vec<String> = std::env::args().skip(1).collect();
    let out_dir: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join("claude");
    std::fs::create_dir_all(&out_dir).expect("create fixtures dir");
    for sc in scenarios() {
        if !wanted.is_empty() && !wanted.iter().any(|w| w == sc.name) {
            continue;
        }
        let fake = FakeAnthropic::start((sc.script)());
        let base_url = if sc.closed_port {
            // Bind a port, then free it: nothing listens there any more.
            let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a probe port");
            format!("http://{}", probe.local_addr().expect("probe address"))
        } else {
            fake.base_url()
        };
        let mut env = cli.env(&base_url);
        for (k, v) in sc.env {
            env.set_var(*k, *v);
        }
        for k in sc.unset {
            env.remove_var(k);
        }
        for (path, content) in sc.setup {
            std::fs::write(env.workdir().join(path), content).expect("setup file");
        }
        let out = env.run_print(sc.prompt, sc.args);
        std::fs::write(out_dir.join(format!("{}.stdout.jsonl", sc.name)), &out.stdout).expect("write stdout");
        let stderr_path = out_dir.join(format!("{}.stderr.txt", sc.name));
        if out.stderr.is_empty() {
            let _ = std::fs::remove_file(&stderr_path);
        } else {
            std::fs::write(&stderr_path, &out.stderr).expect("write stderr");
        }
        let requests: Vec<Value> = fake.requests().iter().map(summarize).collect();
        std::fs::write(
            out_dir.join(format!("{}.requests.json", sc.name)),
            serde_json::to_string_pretty(&requests).expect("json") + "\n",
        )
        .expect("write requests");
        let files: Vec<String> = std::fs::read_dir(env.workdir())
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        let mut cmd: Vec<String> = sc.unset.iter().map(|k| format!("-u {k}")).collect();
        if !cmd.is_empty() {
            cmd.insert(0, "env".to_string());
        }
        cmd.extend(sc.env.iter().map(|(k, v)| format!("{k}={v}")));
        cmd.push("claude".to_string());
        cmd.extend(obra_testkit::ClaudeEnv::print_args(sc.prompt).iter().map(|a| shell_quote(a)));
        cmd.extend(sc.args.iter().map(|a| shell_quote(a)));
        println!("== {}", sc.name);
        println!("   command: {} </dev/null", cmd.join(" "));
        println!("   exit code: {:?}{}", out.exit_code, if out.timed_out { " (TIMED OUT)" } else { "" });
        println!(
            "   requests: {} ({} main-conversation), script left: {}",
            fake.requests().len(),
            fake.message_requests().len(),
            fake.remaining()
        );
        println!("   files in workdir: {files:?}");
        if let Some(result) = out.result() {
            println!("   result: {result}");
        }
        if !out.stderr.trim().is_empty() {
            println!("   stderr: {}", out.stderr.trim());
        }
    }
}
