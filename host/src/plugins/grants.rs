//! The effective grant of a plugin: what its manifest requests AND the user's config allows.
//!
//! Every privileged capability call asks its [`EffectiveGrant`] first, before any side effect. A refusal is a
//! [`PluginError::Denied`] whose message names the plugin, what was refused, and the exact config line (and, when
//! the plugin never declared it, the manifest line) that would allow it.

use std::collections::BTreeSet;
use std::fmt;

use serde::Serialize;
use url::Url;

use super::config::{CommandPattern, LimitsConfig, UserGrant, WorkspaceAccess};
use super::manifest::{Capabilities, ManifestLimits};
use crate::contract::PluginError;

/// An HTTP origin: scheme, host and port (the default port filled in).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Origin {
    /// `http` or `https`.
    pub scheme: String,
    /// Host name or IP address, lowercase.
    pub host: String,
    /// Port, with the scheme's default filled in.
    pub port: u16,
}

impl Origin {
    /// The origin of an absolute `http`/`https` URL.
    pub fn of_url(url: &Url) -> Result<Origin, String> {
        let scheme = url.scheme();
        if scheme != "http" && scheme != "https" {
            return Err(format!("{url} is not an http or https URL"));
        }
        let host = url.host_str().ok_or_else(|| format!("{url} has no host"))?;
        let port = url.port_or_known_default().ok_or_else(|| format!("{url} has no port"))?;
        Ok(Origin { scheme: scheme.to_string(), host: host.to_ascii_lowercase(), port })
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let default = if self.scheme == "https" { 443 } else { 80 };
        if self.port == default {
            write!(f, "{}://{}", self.scheme, self.host)
        } else {
            write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
        }
    }
}

/// One entry of an `http` list: a literal origin, or `config:<key>` (the origin of the URL under `<key>` in the
/// plugin's config section, resolved per call).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub enum OriginSpec {
    /// A fixed origin.
    Origin(Origin),
    /// The origin of the URL stored under this (dotted) key of the plugin's config section.
    ConfigKey(String),
}

impl OriginSpec {
    /// Parse `https://host[:port]` (no path, query or credentials) or `config:<key>`.
    pub fn parse(text: &str) -> Result<OriginSpec, String> {
        if let Some(key) = text.strip_prefix("config:") {
            let key = key.trim();
            if key.is_empty() || key.split('.').any(str::is_empty) {
                return Err(format!("{text:?}: write config:<key>, e.g. \"config:base_url\""));
            }
            return Ok(OriginSpec::ConfigKey(key.to_string()));
        }
        let hint = "write an origin such as \"https://api.example.com\" or \"http://127.0.0.1:11434\", or config:<key>";
        let url = Url::parse(text).map_err(|e| format!("{text:?} is not an origin ({e}): {hint}"))?;
        if !url.username().is_empty() || url.password().is_some() || url.query().is_some() || url.path() != "/" {
            return Err(format!("{text:?} is not a bare origin (it has a path, query or credentials): {hint}"));
        }
        Origin::of_url(&url).map(OriginSpec::Origin).map_err(|e| format!("{e}: {hint}"))
    }

    /// The concrete origin this spec stands for, given the call's config section (JSON text).
    pub fn resolve(&self, config: &serde_json::Value) -> Option<Origin> {
        match self {
            OriginSpec::Origin(o) => Some(o.clone()),
            OriginSpec::ConfigKey(key) => {
                let value = key.split('.').try_fold(config, |v, part| v.get(part))?;
                Origin::of_url(&Url::parse(value.as_str()?).ok()?).ok()
            }
        }
    }
}

impl fmt::Display for OriginSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OriginSpec::Origin(o) => o.fmt(f),
            OriginSpec::ConfigKey(k) => write!(f, "config:{k}"),
        }
    }
}

/// A manifest's `program = "*"`: any program the user's config grants (for generic runners). Only manifests
/// have it: in the user's config every pattern names its program.
pub const ANY_PROGRAM: &str = "*";

/// A manifest's `env = ["*"]`: any variable the user's config grants.
pub const ANY_VARIABLE: &str = "*";

/// The rest pattern that also matches options: `-**` (any remaining arguments, those starting with `-` too).
pub const ANY_REST_WITH_OPTIONS: &str = "-**";

/// Whether `arg` is an option (or the `-` of standard input): it starts with `-`. Wildcards never match one
/// unless the pattern says so (ADR 36).
pub fn is_option(arg: &str) -> bool {
    arg.starts_with('-')
}

/// One element of an argument pattern, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgPattern<'a> {
    /// Matches exactly this argument.
    Literal(&'a str),
    /// `<prefix>*` (e.g. `--format=*`, `-*`): one argument that starts with the prefix.
    Prefix(&'a str),
    /// `*`: one argument that is not an option.
    One,
    /// `**` (last only): any remaining arguments, none of them an option.
    Rest,
    /// `-**` (last only): any remaining arguments, options included.
    RestWithOptions,
}

impl<'a> ArgPattern<'a> {
    /// Parse one pattern element: `*`, `**`, `-**`, a text ending in one `*` (a prefix), or a literal.
    pub fn parse(element: &'a str) -> Self {
        match element {
            "*" => Self::One,
            "**" => Self::Rest,
            ANY_REST_WITH_OPTIONS => Self::RestWithOptions,
            _ => match element.strip_suffix('*') {
                Some(prefix) if !prefix.contains('*') => Self::Prefix(prefix),
                _ => Self::Literal(element),
            },
        }
    }

    /// Whether this element consumes all remaining arguments.
    pub fn is_rest(self) -> bool {
        matches!(self, Self::Rest | Self::RestWithOptions)
    }

    /// Whether this single-argument element matches `arg`.
    fn matches_one(self, arg: &str) -> bool {
        match self {
            Self::Literal(l) => l == arg,
            Self::Prefix(p) => arg.starts_with(p),
            Self::One => !is_option(arg),
            Self::Rest | Self::RestWithOptions => false,
        }
    }

    /// This single-argument element restricted to arguments that are not options (none when nothing is left).
    fn without_options(self) -> Option<Self> {
        match self {
            Self::Literal(l) | Self::Prefix(l) if is_option(l) => None,
            Self::RestWithOptions => Some(Self::Rest),
            other => Some(other),
        }
    }

    /// The element matching what both single-argument elements match (none when they share nothing).
    fn intersect_one(self, other: Self) -> Option<Self> {
        use ArgPattern::*;
        match (self, other) {
            (Literal(l), o) | (o, Literal(l)) => o.matches_one(l).then_some(Literal(l)),
            (One, One) => Some(One),
            (One, Prefix(p)) | (Prefix(p), One) => (!is_option(p)).then_some(Prefix(p)),
            (Prefix(p), Prefix(q)) if p.starts_with(q) => Some(Prefix(p)),
            (Prefix(p), Prefix(q)) if q.starts_with(p) => Some(Prefix(q)),
            _ => None,
        }
    }

    /// The element as written in a pattern.
    fn text(self) -> String {
        match self {
            Self::Literal(l) => l.to_string(),
            Self::Prefix(p) => format!("{p}*"),
            Self::One => "*".into(),
            Self::Rest => "**".into(),
            Self::RestWithOptions => ANY_REST_WITH_OPTIONS.into(),
        }
    }
}

/// Whether `args` match the argument patterns `patterns`: a literal matches itself, `<prefix>*` one argument
/// starting with the prefix (`--format=*`; `-*` is any one option), `*` one argument that is not an option,
/// `**` the remaining arguments when none is an option, `-**` any remaining arguments. An argument is an option
/// when it starts with `-`.
pub fn args_match(patterns: &[String], args: &[String]) -> bool {
    matches_args(patterns, args, false)
}

/// [`args_match`]; with `loose`, `*` and `**` match options too (to tell a denial's reason).
fn matches_args(patterns: &[String], args: &[String], loose: bool) -> bool {
    match patterns.split_first().map(|(p, rest)| (ArgPattern::parse(p), rest)) {
        None => args.is_empty(),
        Some((ArgPattern::RestWithOptions, _)) => true,
        Some((ArgPattern::Rest, _)) => loose || !args.iter().any(|a| is_option(a)),
        Some((p, rest)) => match args.split_first() {
            Some((a, args_rest)) => {
                (p.matches_one(a) || (loose && p == ArgPattern::One)) && matches_args(rest, args_rest, loose)
            }
            None => false,
        },
    }
}

/// Whether `pattern` allows running `program` with `args`.
pub fn command_matches(pattern: &CommandPattern, program: &str, args: &[String]) -> bool {
    pattern.program == program && args_match(&pattern.args, args)
}

/// The argument lists both patterns match, as one pattern (none when they share none).
pub fn intersect_args(a: &[String], b: &[String]) -> Option<Vec<String>> {
    let a: Vec<ArgPattern> = a.iter().map(|x| ArgPattern::parse(x)).collect();
    let b: Vec<ArgPattern> = b.iter().map(|x| ArgPattern::parse(x)).collect();
    intersect_parsed(&a, &b).map(|v| v.into_iter().map(ArgPattern::text).collect())
}

fn intersect_parsed<'a>(a: &[ArgPattern<'a>], b: &[ArgPattern<'a>]) -> Option<Vec<ArgPattern<'a>>> {
    use ArgPattern::*;
    match (a.split_first(), b.split_first()) {
        (None, None) => Some(Vec::new()),
        (Some((RestWithOptions, _)), _) => Some(b.to_vec()),
        (_, Some((RestWithOptions, _))) => Some(a.to_vec()),
        (Some((Rest, _)), _) => b.iter().map(|p| p.without_options()).collect(),
        (_, Some((Rest, _))) => a.iter().map(|p| p.without_options()).collect(),
        (Some((x, xs)), Some((y, ys))) => {
            let head = x.intersect_one(*y)?;
            let mut rest = intersect_parsed(xs, ys)?;
            rest.insert(0, head);
            Some(rest)
        }
        _ => None,
    }
}

/// Quote one argument the way a shell user would read it.
fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty() && arg.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%^".contains(c));
    if plain { arg.to_string() } else { format!("'{}'", arg.replace('\'', r"'\''")) }
}

/// An argument longer than this many bytes is shown by its size only (a prompt, a script, a document).
pub const MAX_SHOWN_ARG_BYTES: usize = 200;

/// A command line for messages is cut after this many bytes, naming how many arguments were left out.
pub const MAX_SHOWN_COMMAND_BYTES: usize = 1000;

/// A command line for messages and logs: `sh -c 'echo pwned'`, bounded so that no message quotes a prompt or
/// any other long argument: an argument over [`MAX_SHOWN_ARG_BYTES`] shows as `<argument: 12.3 KB>`, and the
/// whole line stops near [`MAX_SHOWN_COMMAND_BYTES`] with `... (N more arguments)`.
pub fn display_command(program: &str, args: &[String]) -> String {
    let mut line = shell_quote(program);
    for (i, arg) in args.iter().enumerate() {
        if line.len() >= MAX_SHOWN_COMMAND_BYTES {
            let more = args.len() - i;
            line.push_str(&format!(" ... ({more} more argument{})", if more == 1 { "" } else { "s" }));
            break;
        }
        line.push(' ');
        if arg.len() > MAX_SHOWN_ARG_BYTES {
            line.push_str(&format!("<argument: {}>", human_size(arg.len())));
        } else {
            line.push_str(&shell_quote(arg));
        }
    }
    line
}

/// The options of a refused command line, quoted as [`display_command`] quotes arguments (a huge one by its size).
fn display_options(options: &[&str]) -> String {
    let shown: Vec<String> = options
        .iter()
        .map(|o| {
            if o.len() > MAX_SHOWN_ARG_BYTES { format!("<argument: {}>", human_size(o.len())) } else { shell_quote(o) }
        })
        .collect();
    shown.join(" ")
}

/// `345 B`, `12.3 KB`, `4.5 MB` (powers of 1000, as `ls -h --si`).
fn human_size(bytes: usize) -> String {
    match bytes {
        0..1000 => format!("{bytes} B"),
        1000..1_000_000 => format!("{:.1} KB", bytes as f64 / 1e3),
        _ => format!("{:.1} MB", bytes as f64 / 1e6),
    }
}

/// A command pattern as a TOML inline table, for manifest hints.
fn toml_flow(p: &CommandPattern) -> String {
    let args: Vec<String> = p.args.iter().map(|a| format!("{a:?}")).collect();
    format!("{{ program = {:?}, args = [{}] }}", p.program, args.join(", "))
}

/// What a capability call needs from the workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkspaceOp {
    /// Reading a file or listing a directory.
    Read,
    /// Writing or removing a file.
    Write,
}

/// The effective grant of one plugin: the manifest's request intersected with the user's config, plus the
/// effective limits. Owned by the plugin's runtime; consulted before every privileged host call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EffectiveGrant {
    /// The plugin's name.
    pub plugin: String,
    /// What the manifest requests.
    pub requested: Capabilities,
    /// What the user's config allows.
    pub allowed: UserGrant,
    /// Command patterns both allow (each the intersection of a requested and an allowed pattern).
    pub commands: Vec<CommandPattern>,
    /// Environment variables both allow.
    pub env: BTreeSet<String>,
    /// Workspace access both allow.
    pub workspace: WorkspaceAccess,
    /// Whether both allow the LLM capability.
    pub llm: bool,
    /// Whether both allow the kv capability.
    pub kv: bool,
    /// The effective limits: the host's ceilings, lowered by the manifest.
    pub limits: LimitsConfig,
}

impl EffectiveGrant {
    /// Intersect a manifest's request with the user's grant for `plugin`, and lower `ceilings` by the manifest's
    /// limits.
    pub fn new(
        plugin: &str,
        requested: &Capabilities,
        allowed: &UserGrant,
        ceilings: &LimitsConfig,
        manifest_limits: &ManifestLimits,
    ) -> EffectiveGrant {
        let mut commands: Vec<CommandPattern> = Vec::new();
        for m in &requested.commands {
            // A manifest's program `*` (a generic runner such as the `command` agent) asks for whatever
            // programs the user grants; the user's own patterns always name their program.
            for u in allowed.commands.iter().filter(|u| m.program == ANY_PROGRAM || u.program == m.program) {
                if let Some(args) = intersect_args(&m.args, &u.args) {
                    let p = CommandPattern { program: u.program.clone(), args };
                    if !commands.contains(&p) {
                        commands.push(p);
                    }
                }
            }
        }
        let allowed_env: BTreeSet<&String> = allowed.env.iter().collect();
        let lower = |ceiling: u64, asked: Option<u64>| asked.map_or(ceiling, |a| a.min(ceiling));
        let m = manifest_limits;
        EffectiveGrant {
            plugin: plugin.to_string(),
            requested: requested.clone(),
            allowed: allowed.clone(),
            commands,
            env: if requested.env.iter().any(|e| e == ANY_VARIABLE) {
                allowed.env.iter().filter(|e| *e != ANY_VARIABLE).cloned().collect()
            } else {
                requested.env.iter().filter(|e| allowed_env.contains(e)).cloned().collect()
            },
            workspace: requested.workspace.min(allowed.workspace),
            llm: requested.llm && allowed.llm,
            kv: requested.kv && allowed.kv,
            limits: LimitsConfig {
                memory_mb: lower(ceilings.memory_mb, m.memory_mb),
                cpu_ms_per_call: lower(ceilings.cpu_ms_per_call, m.cpu_ms_per_call),
                call_timeout_secs: lower(ceilings.call_timeout_secs, m.call_timeout_secs),
                host_call_timeout_secs: lower(ceilings.host_call_timeout_secs, m.host_call_timeout_secs),
                max_output_bytes: lower(ceilings.max_output_bytes, m.max_output_bytes),
                max_http_body_bytes: lower(ceilings.max_http_body_bytes, m.max_http_body_bytes),
                max_file_read_bytes: lower(ceilings.max_file_read_bytes, m.max_file_read_bytes),
                max_children: lower(ceilings.max_children, m.max_children),
                max_http_streams: lower(ceilings.max_http_streams, m.max_http_streams),
                kv_total_bytes: lower(ceilings.kv_total_bytes, m.kv_total_bytes),
                kv_value_bytes: lower(ceilings.kv_value_bytes, m.kv_value_bytes),
                log_bytes_per_call: lower(ceilings.log_bytes_per_call, m.log_bytes_per_call),
                progress_bytes_per_call: lower(ceilings.progress_bytes_per_call, m.progress_bytes_per_call),
            },
        }
    }

    fn config_key(&self, field: &str) -> String {
        format!("plugins.grants.{}.{field}", self.plugin)
    }

    /// Allow running `program args` only when both manifest and config allow it.
    pub fn check_command(&self, program: &str, args: &[String]) -> Result<(), PluginError> {
        if self.commands.iter().any(|p| command_matches(p, program, args)) {
            return Ok(());
        }
        let shown = display_command(program, args);
        if let Some(p) = self.commands.iter().find(|p| p.program == program && matches_args(&p.args, args, true)) {
            let options: Vec<&str> = args.iter().filter(|a| is_option(a)).map(|a| a.as_str()).collect();
            return Err(PluginError::Denied(format!(
                "plugin {:?} may not run {shown:?}: the granted pattern {} matches it only if its wildcards match \
                 the option{} {}, and `*`/`**` never match an argument starting with `-`; a pattern that allows \
                 an option names it (\"--format=*\", \"-*\" for any one option, \"-**\" for any remaining \
                 arguments, options included) in {} in your config",
                self.plugin,
                p.to_yaml_flow(),
                if options.len() == 1 { "" } else { "s" },
                display_options(&options),
                self.config_key("commands")
            )));
        }
        let literal = CommandPattern { program: program.to_string(), args: args.to_vec() };
        let declared = self
            .requested
            .commands
            .iter()
            .find(|p| (p.program == ANY_PROGRAM || p.program == program) && args_match(&p.args, args))
            .map(|p| CommandPattern { program: program.to_string(), args: p.args.clone() });
        let config_line = format!(
            "add it to {} in your config (e.g. - {})",
            self.config_key("commands"),
            declared.as_ref().unwrap_or(&literal).to_yaml_flow()
        );
        Err(PluginError::Denied(match declared {
            Some(_) => format!("plugin {:?} may not run {shown:?}: {config_line}", self.plugin),
            None => format!(
                "plugin {:?} may not run {shown:?}: the plugin's manifest does not declare it; its plugin.toml must list it under [capabilities] commands (e.g. {}), and you must {config_line}",
                self.plugin,
                toml_flow(&literal)
            ),
        }))
    }

    /// Allow giving the child environment variable `name` only when both manifest and config allow it.
    pub fn check_env(&self, name: &str) -> Result<(), PluginError> {
        if self.env.contains(name) {
            return Ok(());
        }
        let config_line = format!("add it to {} in your config (e.g. env: [{name}])", self.config_key("env"));
        Err(PluginError::Denied(if self.requested.env.iter().any(|e| e == name || e == ANY_VARIABLE) {
            format!("plugin {:?} may not pass the environment variable {name} to a program: {config_line}", self.plugin)
        } else {
            format!(
                "plugin {:?} may not pass the environment variable {name} to a program: the plugin's manifest does not declare it; its plugin.toml must list it under [capabilities] env (e.g. env = [{name:?}]), and you must {config_line}",
                self.plugin
            )
        }))
    }

    /// The variables a child receives from Obra's own environment: those granted and set there.
    pub fn passed_through_env(&self) -> Vec<(String, String)> {
        self.env.iter().filter_map(|k| std::env::var(k).ok().map(|v| (k.clone(), v))).collect()
    }

    /// Allow a request to `url` only when its origin is allowed by both manifest and config. `config` is the
    /// plugin's config section of the current call (for `config:<key>` entries).
    pub fn check_url(&self, url: &str, config: &serde_json::Value) -> Result<Url, PluginError> {
        let parsed = Url::parse(url).map_err(|e| {
            PluginError::Fatal(format!("plugin {:?} asked for an invalid URL {url:?}: {e}", self.plugin))
        })?;
        let origin = Origin::of_url(&parsed).map_err(|e| {
            PluginError::Denied(format!(
                "plugin {:?} may not request {url:?}: {e}; only http and https are allowed",
                self.plugin
            ))
        })?;
        let resolves_to = |list: &[String]| {
            list.iter().filter_map(|s| OriginSpec::parse(s).ok()).any(|s| s.resolve(config).as_ref() == Some(&origin))
        };
        let requested = resolves_to(&self.requested.http);
        if requested && resolves_to(&self.allowed.http) {
            return Ok(parsed);
        }
        // A `config:<key>` entry whose key holds no URL in this call's config can explain the refusal.
        let unresolved: Vec<String> = self
            .requested
            .http
            .iter()
            .filter_map(|s| match OriginSpec::parse(s) {
                Ok(spec @ OriginSpec::ConfigKey(_)) if spec.resolve(config).is_none() => Some(spec.to_string()),
                _ => None,
            })
            .collect();
        let note = if unresolved.is_empty() {
            String::new()
        } else {
            format!(
                " (note: its manifest's {} names no URL in the plugin's config section of this call)",
                unresolved.join(", ")
            )
        };
        let config_line = format!("add it to {} in your config (e.g. - \"{origin}\")", self.config_key("http"));
        Err(PluginError::Denied(if requested {
            format!("plugin {:?} may not connect to {origin}: {config_line}", self.plugin)
        } else {
            format!(
                "plugin {:?} may not connect to {origin}: the plugin's manifest does not declare it; its plugin.toml must list it under [capabilities] http (e.g. http = [\"{origin}\"]), and you must {config_line}{note}",
                self.plugin
            )
        }))
    }

    /// Allow a workspace operation on `path` only when both manifest and config grant enough access.
    pub fn check_workspace(&self, op: WorkspaceOp, path: &str) -> Result<(), PluginError> {
        let needed = match op {
            WorkspaceOp::Read => WorkspaceAccess::Read,
            WorkspaceOp::Write => WorkspaceAccess::Write,
        };
        if self.workspace >= needed {
            return Ok(());
        }
        let verb = match op {
            WorkspaceOp::Read => "read",
            WorkspaceOp::Write => "write",
        };
        let level = needed.as_str();
        let config_line = format!("set {} to {level} in your config", self.config_key("workspace"));
        Err(PluginError::Denied(if self.requested.workspace >= needed {
            format!("plugin {:?} may not {verb} {path:?} in the workspace: {config_line}", self.plugin)
        } else {
            format!(
                "plugin {:?} may not {verb} {path:?} in the workspace: the plugin's manifest does not declare it; its plugin.toml must set workspace = \"{level}\" under [capabilities], and you must {config_line}",
                self.plugin
            )
        }))
    }

    fn check_flag(&self, granted: bool, requested: bool, field: &str, what: &str) -> Result<(), PluginError> {
        if granted {
            return Ok(());
        }
        let config_line = format!("set {} to true in your config", self.config_key(field));
        Err(PluginError::Denied(if requested {
            format!("plugin {:?} may not {what}: {config_line}", self.plugin)
        } else {
            format!(
                "plugin {:?} may not {what}: the plugin's manifest does not declare it; its plugin.toml must set {field} = true under [capabilities], and you must {config_line}",
                self.plugin
            )
        }))
    }

    /// Allow the `llm` capability only when both manifest and config grant it.
    pub fn check_llm(&self) -> Result<(), PluginError> {
        self.check_flag(self.llm, self.requested.llm, "llm", "ask the LLM")
    }

    /// Allow the `kv` capability only when both manifest and config grant it.
    pub fn check_kv(&self) -> Result<(), PluginError> {
        self.check_flag(self.kv, self.requested.kv, "kv", "use key-value storage")
    }

    /// Requests the manifest makes that the user's config does not allow, one line each, for `obra plugin check`.
    pub fn refused_requests(&self) -> Vec<String> {
        let mut out = Vec::new();
        for m in &self.requested.commands {
            if m.program == ANY_PROGRAM {
                if self.commands.is_empty() {
                    out.push(format!(
                        "commands: it runs the programs you grant, and none is granted: add - {{ program: <the \
                         program>, args: [\"-**\"] }} to {}",
                        self.config_key("commands")
                    ));
                }
                continue;
            }
            let covered =
                self.allowed.commands.iter().any(|u| {
                    u.program == m.program && intersect_args(&m.args, &u.args).as_deref() == Some(&m.args[..])
                });
            if !covered {
                out.push(format!(
                    "command {} is not (fully) allowed: add - {} to {}",
                    m.to_yaml_flow(),
                    m.to_yaml_flow(),
                    self.config_key("commands")
                ));
            }
        }
        for e in self.requested.env.iter().filter(|e| *e != ANY_VARIABLE && !self.env.contains(*e)) {
            out.push(format!("env {e} is not allowed: add it to {}", self.config_key("env")));
        }
        for h in self.requested.http.iter().filter(|h| !self.allowed.http.contains(h)) {
            out.push(format!("http {h} is not allowed as written: add \"{h}\" to {}", self.config_key("http")));
        }
        if self.requested.workspace > self.workspace {
            out.push(format!(
                "workspace {} is not allowed: set {} to {}",
                self.requested.workspace.as_str(),
                self.config_key("workspace"),
                self.requested.workspace.as_str()
            ));
        }
        if self.requested.llm && !self.llm {
            out.push(format!("llm is not allowed: set {} to true", self.config_key("llm")));
        }
        if self.requested.kv && !self.kv {
            out.push(format!("kv is not allowed: set {} to true", self.config_key("kv")));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn grant(requested: Capabilities, allowed: UserGrant) -> EffectiveGrant {
        EffectiveGrant::new("exec-outside-grant", &requested, &allowed, &LimitsConfig::default(), &Default::default())
    }

    #[test]
    fn argument_patterns_match_literal_one_and_rest() {
        assert!(args_match(&s(&["-c", "*"]), &s(&["-c", "echo hi"])));
        assert!(!args_match(&s(&["-c", "*"]), &s(&["-c"])));
        assert!(!args_match(&s(&["-c", "*"]), &s(&["-c", "a", "b"])));
        assert!(args_match(&s(&["**"]), &s(&[])));
        assert!(args_match(&s(&["-p", "**"]), &s(&["-p", "x", "y"])));
        assert!(!args_match(&s(&["-p", "**"]), &s(&["-q"])));
        assert!(args_match(&s(&[]), &s(&[])));
        assert!(!args_match(&s(&[]), &s(&["x"])));
    }

    #[test]
    fn wildcards_never_match_options_unless_the_pattern_says_so() {
        let yes = |p: &[&str], a: &[&str]| args_match(&s(p), &s(a));
        assert!(yes(&["*"], &["x"]) && !yes(&["*"], &["-x"]) && !yes(&["*"], &["-"]));
        assert!(yes(&["**"], &["a", "b"]) && !yes(&["**"], &["a", "--b"]));
        assert!(yes(&["-*"], &["-x"]) && yes(&["-*"], &["--long=1"]) && !yes(&["-*"], &["x"]));
        assert!(yes(&["--*"], &["--long"]) && !yes(&["--*"], &["-l"]));
        assert!(yes(&["--format=*"], &["--format=%H"]) && !yes(&["--format=*"], &["--output=/x"]));
        assert!(yes(&["-**"], &[]) && yes(&["-**"], &["--anything", "x", "-y"]));
        assert!(yes(&["a*b"], &["a*b"]) && !yes(&["a*b"], &["axb"]), "a `*` inside is literal");
        assert_eq!(ArgPattern::parse("*.py"), ArgPattern::Literal("*.py"));
    }

    /// The red team's finding: `git log *` / `git diff *` style grants let a plugin pass options that write
    /// files (`--output`), run programs (`-c core.pager=...`, `--exec`, `--upload-pack`) or point git at another
    /// repository (`--git-dir`). None of them gets through a wildcard; a pattern naming an option still works.
    #[test]
    fn git_options_do_not_slip_through_wildcards() {
        let requested = Capabilities {
            commands: vec![
                CommandPattern::new("git", &["log", "*"]),
                CommandPattern::new("git", &["diff", "*"]),
                CommandPattern::new("git", &["log", "**"]),
                CommandPattern::new("git", &["diff", "*", "**"]),
                CommandPattern::new("git", &["log", "--format=*", "*"]),
            ],
            ..Default::default()
        };
        let allowed = UserGrant { commands: vec![CommandPattern::new("git", &["-**"])], ..Default::default() };
        let g = grant(requested, allowed);
        assert_eq!(g.commands.len(), 5, "{:?}", g.commands);
        let hostile: &[&[&str]] = &[
            &["log", "--output=/outside/x"],
            &["diff", "--output=/outside/x"],
            &["log", "--output", "/outside/x"],
            &["diff", "HEAD", "--output=/outside/x"],
            &["log", "-c", "core.pager=touch /tmp/pwned"],
            &["diff", "-c", "core.pager=touch /tmp/pwned"],
            &["log", "--exec=touch /tmp/pwned"],
            &["diff", "HEAD", "--exec", "touch /tmp/pwned"],
            &["log", "--upload-pack=touch /tmp/pwned"],
            &["diff", "--upload-pack=touch /tmp/pwned"],
            &["log", "--git-dir=/outside/repo"],
            &["diff", "--git-dir=/outside/repo", "HEAD"],
            &["log", "--format=%H", "--output=/outside/x"],
            &["log", "-"],
        ];
        for args in hostile {
            let e = g.check_command("git", &s(args)).expect_err(&format!("git {args:?} must be refused"));
            let PluginError::Denied(message) = e else { panic!("{e:?}") };
            assert!(message.contains("plugins.grants.exec-outside-grant.commands"), "{message}");
        }
        let e = g.check_command("git", &s(&["log", "--output=/outside/x"])).unwrap_err().to_string();
        assert!(e.contains("never match an argument starting with `-`") && e.contains("--output=/outside/x"), "{e}");
        for args in [&["log", "HEAD"][..], &["diff", "HEAD~1"], &["log", "a", "b"], &["log", "--format=%H", "HEAD"]] {
            g.check_command("git", &s(args)).unwrap_or_else(|e| panic!("git {args:?}: {e}"));
        }
        // The user's grant decides too: `git **` in the config keeps options out even of a manifest's `-**`.
        let requested = Capabilities { commands: vec![CommandPattern::new("git", &["-**"])], ..Default::default() };
        let allowed = UserGrant { commands: vec![CommandPattern::new("git", &["log", "**"])], ..Default::default() };
        let g = grant(requested, allowed);
        assert!(g.check_command("git", &s(&["log", "--git-dir=/x"])).is_err());
        assert!(g.check_command("git", &s(&["log", "HEAD"])).is_ok());
    }

    #[test]
    fn argument_patterns_intersect() {
        assert_eq!(intersect_args(&s(&["-**"]), &s(&["-c", "*"])), Some(s(&["-c", "*"])));
        assert_eq!(intersect_args(&s(&["**"]), &s(&["-c", "*"])), None, "`**` holds no option");
        assert_eq!(intersect_args(&s(&["**"]), &s(&["x", "-**"])), Some(s(&["x", "**"])));
        assert_eq!(intersect_args(&s(&["--format=*"]), &s(&["*"])), None);
        assert_eq!(intersect_args(&s(&["--format=*"]), &s(&["-*"])), Some(s(&["--format=*"])));
        assert_eq!(intersect_args(&s(&["--*"]), &s(&["--format=json"])), Some(s(&["--format=json"])));
        assert_eq!(intersect_args(&s(&["v*"]), &s(&["*"])), Some(s(&["v*"])));
        assert_eq!(intersect_args(&s(&["-c", "*"]), &s(&["-*", "ls"])), Some(s(&["-c", "ls"])));
        assert_eq!(intersect_args(&s(&["-c", "*"]), &s(&["*", "ls"])), None, "`*` is no option");
        assert_eq!(intersect_args(&s(&["-c", "*"]), &s(&["-x", "**"])), None);
        assert_eq!(intersect_args(&s(&["a", "**"]), &s(&["*", "b", "**"])), Some(s(&["a", "b", "**"])));
        assert_eq!(intersect_args(&s(&["a"]), &s(&["a", "b"])), None);
    }

    #[test]
    fn command_needs_both_manifest_and_config() {
        let requested = Capabilities { commands: vec![CommandPattern::new("sh", &["-c", "*"])], ..Default::default() };
        let g = grant(requested.clone(), UserGrant::default());
        let e = g.check_command("sh", &s(&["-c", "echo pwned"])).unwrap_err();
        assert_eq!(
            e,
            PluginError::Denied(
                r#"plugin "exec-outside-grant" may not run "sh -c 'echo pwned'": add it to plugins.grants.exec-outside-grant.commands in your config (e.g. - { program: sh, args: ["-c", "*"] })"#
                    .into()
            )
        );
        let allowed = UserGrant { commands: vec![CommandPattern::new("sh", &["-**"])], ..Default::default() };
        let g = grant(requested, allowed);
        g.check_command("sh", &s(&["-c", "echo ok"])).unwrap();
        let e = g.check_command("sh", &s(&["-x"])).unwrap_err().to_string();
        assert!(
            e.contains("manifest does not declare it") && e.contains(r#"{ program = "sh", args = ["-x"] }"#),
            "{e}"
        );
        assert!(e.contains("plugins.grants.exec-outside-grant.commands"), "{e}");
    }

    #[test]
    fn env_needs_both() {
        let requested = Capabilities { env: s(&["A", "B"]), ..Default::default() };
        let allowed = UserGrant { env: s(&["B", "C"]), ..Default::default() };
        let g = grant(requested, allowed);
        assert_eq!(g.env.iter().collect::<Vec<_>>(), vec!["B"]);
        g.check_env("B").unwrap();
        assert!(g.check_env("A").unwrap_err().to_string().contains("plugins.grants.exec-outside-grant.env"));
        assert!(g.check_env("C").unwrap_err().to_string().contains("manifest does not declare it"));
    }

    #[test]
    fn origins_match_scheme_host_and_port_exactly() {
        let requested =
            Capabilities { http: s(&["https://api.example.com", "config:server.url"]), ..Default::default() };
        let allowed =
            UserGrant { http: s(&["https://api.example.com:443", "config:server.url"]), ..Default::default() };
        let g = grant(requested, allowed);
        let cfg = serde_json::json!({"server": {"url": "http://127.0.0.1:11434/api"}});
        g.check_url("https://api.example.com/v1/x?y=1", &cfg).unwrap();
        g.check_url("http://127.0.0.1:11434/api/chat", &cfg).unwrap();
        let e = g.check_url("http://127.0.0.1:11435/api/chat", &cfg).unwrap_err().to_string();
        assert!(e.contains("http://127.0.0.1:11435") && e.contains("manifest does not declare"), "{e}");
        assert!(g.check_url("http://api.example.com/", &cfg).is_err());
        let e = g.check_url("http://127.0.0.1:11434/", &serde_json::json!({})).unwrap_err().to_string();
        assert!(e.contains("its manifest's config:server.url names no URL"), "{e}");
        assert!(matches!(g.check_url("file:///etc/passwd", &cfg), Err(PluginError::Denied(_))));
    }

    #[test]
    fn origin_specs_parse() {
        assert!(OriginSpec::parse("https://x.org").is_ok());
        assert!(OriginSpec::parse("https://x.org/").is_ok());
        assert!(OriginSpec::parse("https://x.org/path").is_err());
        assert!(OriginSpec::parse("x.org").is_err());
        assert!(OriginSpec::parse("config:").is_err());
        assert_eq!(OriginSpec::parse("config:a.b").unwrap(), OriginSpec::ConfigKey("a.b".into()));
    }

    #[test]
    fn workspace_flags_and_limits() {
        let requested = Capabilities { workspace: WorkspaceAccess::Write, llm: true, ..Default::default() };
        let allowed = UserGrant { workspace: WorkspaceAccess::Read, kv: true, ..Default::default() };
        let limits = ManifestLimits { memory_mb: Some(64), cpu_ms_per_call: Some(1_000_000), ..Default::default() };
        let g = EffectiveGrant::new("p", &requested, &allowed, &LimitsConfig::default(), &limits);
        g.check_workspace(WorkspaceOp::Read, "a.txt").unwrap();
        let e = g.check_workspace(WorkspaceOp::Write, "a.txt").unwrap_err().to_string();
        assert!(e.contains("set plugins.grants.p.workspace to write"), "{e}");
        assert!(g.check_llm().unwrap_err().to_string().contains("plugins.grants.p.llm"));
        assert!(g.check_kv().unwrap_err().to_string().contains("manifest does not declare"));
        assert_eq!(g.limits.memory_mb, 64);
        assert_eq!(g.limits.cpu_ms_per_call, 60_000);
        assert_eq!(g.refused_requests().len(), 2);
    }

    #[test]
    fn commands_are_displayed_shell_quoted() {
        assert_eq!(display_command("sh", &s(&["-c", "echo 'hi'"])), r#"sh -c 'echo '\''hi'\'''"#);
        assert_eq!(display_command("git", &s(&["status", ""])), "git status ''");
    }

    #[test]
    fn long_arguments_are_shown_by_their_size_and_long_command_lines_are_cut() {
        let prompt = format!("<METADATA>\n{}\n</METADATA>", "secret line\n".repeat(1000));
        let shown = display_command("claude", &s(&["-p", &prompt, "--output-format", "stream-json"]));
        assert_eq!(shown, "claude -p <argument: 12.0 KB> --output-format stream-json");
        let edge = "y".repeat(MAX_SHOWN_ARG_BYTES);
        assert_eq!(display_command("x", std::slice::from_ref(&edge)), format!("x {edge}"));
        let many: Vec<String> = (0..400).map(|i| format!("--flag-{i}")).collect();
        let shown = display_command("x", &many);
        assert!(shown.len() < MAX_SHOWN_COMMAND_BYTES + 40, "{}", shown.len());
        assert!(shown.ends_with(" more arguments)") && shown.starts_with("x --flag-0 --flag-1 "), "{shown}");
        assert_eq!(human_size(999), "999 B");
        assert_eq!(human_size(4_500_000), "4.5 MB");
    }

    #[test]
    fn a_wildcard_manifest_gets_exactly_what_the_user_grants() {
        let requested = Capabilities {
            commands: vec![CommandPattern::new(ANY_PROGRAM, &["-**"])],
            env: vec![ANY_VARIABLE.into()],
            ..Capabilities::default()
        };
        let none = EffectiveGrant::new(
            "command",
            &requested,
            &UserGrant::default(),
            &LimitsConfig::default(),
            &Default::default(),
        );
        assert!(none.commands.is_empty() && none.env.is_empty());
        let e = none.check_command("my-agent", &["go".into()]).unwrap_err().to_string();
        assert!(e.contains("plugins.grants.command.commands") && e.contains("program: my-agent"), "{e}");
        assert!(!e.contains("manifest does not declare"), "{e}");
        assert!(none.refused_requests()[0].contains("none is granted"), "{:?}", none.refused_requests());
        let user = UserGrant {
            commands: vec![CommandPattern::new("my-agent", &["--print", "**"])],
            env: vec!["MY_KEY".into()],
            ..UserGrant::default()
        };
        let g = EffectiveGrant::new("command", &requested, &user, &LimitsConfig::default(), &Default::default());
        assert_eq!(g.commands, [CommandPattern::new("my-agent", &["--print", "**"])]);
        assert!(g.check_command("my-agent", &["--print".into(), "x".into()]).is_ok());
        assert!(g.check_command("my-agent", &["--exec".into()]).is_err());
        assert!(g.check_command("sh", &["-c".into(), "x".into()]).is_err(), "only the granted program");
        assert!(g.check_command("*", &[]).is_err(), "`*` is not a program");
        assert!(g.check_env("MY_KEY").is_ok() && g.check_env("HOME").is_err());
        assert!(g.refused_requests().is_empty());
    }
}
