//! `obra profile list|show`: the built-in profiles and the user's (`~/.config/obra/profiles/*.yaml`). An
//! invalid user profile is listed with its error (file and line), never left out.

use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;

use super::args::{GlobalArgs, ProfileCommand};
use super::config_cmd::sources;
use super::output::print_json;
use crate::config::{self, ProfileInfo, ProfileOrigin};

pub(super) fn run(g: &GlobalArgs, cmd: ProfileCommand) -> Result<ExitCode> {
    let sources = sources(g)?;
    match cmd {
        ProfileCommand::List(a) => {
            let list = config::list_profiles(&sources);
            if a.json {
                let items: Vec<_> = list
                    .iter()
                    .map(|p| {
                        json!({
                            "name": p.name,
                            "origin": p.origin,
                            "overrides_builtin": p.overrides_builtin,
                            "description": description(p),
                            "error": p.error.as_ref().map(ToString::to_string),
                        })
                    })
                    .collect();
                print_json(&items)?;
            } else {
                for p in &list {
                    let origin = match (&p.origin, p.overrides_builtin) {
                        (ProfileOrigin::BuiltIn, _) => "built in".to_string(),
                        (ProfileOrigin::User(path), false) => format!("user, {}", path.display()),
                        (ProfileOrigin::User(path), true) => {
                            format!("user, {}; overrides the built-in profile", path.display())
                        }
                    };
                    let what = match &p.error {
                        Some(e) => format!("INVALID: {e}"),
                        None => description(p),
                    };
                    println!("{:<16} ({origin})  {what}", p.name);
                }
                for (name, error) in list.iter().filter_map(|p| p.error.as_ref().map(|e| (&p.name, e))) {
                    eprintln!("warning: profile {name} cannot be used: {error}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ProfileCommand::Show(a) => {
            let profile = config::find_profile(&sources, &a.name)?;
            let changes = profile.changes()?;
            if a.json {
                print_json(&json!({
                    "name": profile.name,
                    "origin": profile.origin,
                    "overrides_builtin": profile.overrides_builtin,
                    "yaml": profile.yaml,
                    "changes": changes,
                }))?;
            } else {
                println!("# profile {}", profile.source().to_string().trim_start_matches("profile "));
                println!("{}", profile.yaml.trim_end());
                println!("\n# keys it changes (value    # default):");
                for c in &changes {
                    let default = c.default.as_ref().map(ToString::to_string).unwrap_or_else(|| "(none)".into());
                    println!("{} = {}    # default {default}", c.key, c.value);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The first comment line of a profile, without its `# name:` prefix.
fn description(p: &ProfileInfo) -> String {
    let first = p.yaml.lines().find(|l| l.trim_start().starts_with('#')).unwrap_or("");
    let text = first.trim_start().trim_start_matches('#').trim();
    text.strip_prefix(&format!("{}:", p.name)).unwrap_or(text).trim().to_string()
}
