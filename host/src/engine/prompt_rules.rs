//! Prompt rules (the seeds' PromptRuleEngine): short binding instructions, each for some prompt types,
//! injected into the METADATA `rules` array and listed in the INSTRUCTION of those prompts.
//!
//! The built-in rules come from `config/prompt_rules.yaml` (embedded); a project's `.obra/prompt_rules.yaml`
//! extends them: a rule with a known id replaces the fields it gives, `enabled: false` removes the rule, a new
//! id adds one (it then needs `text` and `applies_to`).

use std::path::Path;

use serde::{Deserialize, Serialize};

/// The built-in rules file.
pub const BUILTIN_RULES: &str = include_str!("../../../config/prompt_rules.yaml");

/// The kinds of prompt Obra renders; each has a template of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromptType {
    /// The agent's task prompt.
    TaskExecution,
    /// The LLM's opinion of an iteration.
    Validation,
    /// The LLM writes the clarification request of a CLARIFY decision.
    Decision,
    /// The LLM diagnoses a failed iteration.
    ErrorAnalysis,
    /// The LLM writes a commit message.
    CommitMessage,
}

impl PromptType {
    /// Every prompt type.
    pub const ALL: [PromptType; 5] =
        [Self::TaskExecution, Self::Validation, Self::Decision, Self::ErrorAnalysis, Self::CommitMessage];

    /// The name used in files and metadata (also the template's file stem).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TaskExecution => "task_execution",
            Self::Validation => "validation",
            Self::Decision => "decision",
            Self::ErrorAnalysis => "error_analysis",
            Self::CommitMessage => "commit_message",
        }
    }

    /// The type named `name`, if any.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

/// How much a rule matters; rules are listed most severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleSeverity {
    /// Must never be broken.
    Critical,
    /// Important.
    High,
    /// Normal.
    Medium,
    /// A preference.
    Low,
}

/// One rule, resolved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PromptRule {
    /// Unique id.
    pub id: String,
    /// The instruction.
    pub text: String,
    /// The prompt types it is injected into.
    pub applies_to: Vec<PromptType>,
    /// How much it matters.
    pub severity: RuleSeverity,
}

/// A rule as written in a file: a built-in one has every field; an override may give only some.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleEntry {
    id: String,
    text: Option<String>,
    applies_to: Option<Vec<PromptType>>,
    severity: Option<RuleSeverity>,
    enabled: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    rules: Vec<RuleEntry>,
}

/// The rules in force: the built-in ones, with a project's overrides applied.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PromptRules {
    rules: Vec<PromptRule>,
}

/// The line of `text` that defines the rule `id` (1-based), for error messages.
fn line_of(text: &str, id: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let l = l.trim_start().trim_start_matches("- ").trim();
            l.strip_prefix("id:").is_some_and(|v| v.trim().trim_matches(['"', '\'']) == id)
        })
        .map(|i| i + 1)
}

impl PromptRules {
    /// The built-in rules of `config/prompt_rules.yaml`.
    pub fn builtin() -> Self {
        let mut rules = Self::default();
        rules
            .apply("config/prompt_rules.yaml (built in)", BUILTIN_RULES)
            .unwrap_or_else(|e| panic!("the embedded config/prompt_rules.yaml is invalid: {e}"));
        rules
    }

    /// The built-in rules with the project's `.obra/prompt_rules.yaml` (under `project_root`) applied, when
    /// it exists. Errors name the file, the line and the key.
    pub fn for_project(project_root: &Path) -> Result<Self, String> {
        let mut rules = Self::builtin();
        let path = project_root.join(".obra").join("prompt_rules.yaml");
        match std::fs::read_to_string(&path) {
            Ok(text) => rules.apply(&path.display().to_string(), &text)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        }
        Ok(rules)
    }

    /// Apply the rules file `text` (named `source` in errors) over the rules so far.
    pub fn apply(&mut self, source: &str, text: &str) -> Result<(), String> {
        if text.trim().is_empty() {
            return Ok(());
        }
        let file: RulesFile = serde_yaml::from_str(text).map_err(|e| {
            let line = e.location().map(|l| format!(", line {}", l.line())).unwrap_or_default();
            format!("{source}{line}: {e}")
        })?;
        let mut seen = std::collections::HashSet::new();
        for entry in file.rules {
            let at = |key: &str| {
                let line = line_of(text, &entry.id).map(|l| format!(", line {l}")).unwrap_or_default();
                format!("{source}{line}: rule `{}`, key `{key}`", entry.id)
            };
            let id_ok =
                !entry.id.is_empty() && entry.id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !id_ok {
                return Err(format!("{}: the id must be letters, digits, _ or - (got {:?})", at("id"), entry.id));
            }
            if !seen.insert(entry.id.clone()) {
                return Err(format!("{}: the id appears twice in this file", at("id")));
            }
            if entry.text.as_deref().is_some_and(|t| t.trim().is_empty()) {
                return Err(format!("{}: the text is empty", at("text")));
            }
            if entry.applies_to.as_ref().is_some_and(Vec::is_empty) {
                return Err(format!("{}: applies to no prompt type (give at least one)", at("applies_to")));
            }
            let position = self.rules.iter().position(|r| r.id == entry.id);
            if entry.enabled == Some(false) {
                if let Some(i) = position {
                    self.rules.remove(i);
                }
                continue;
            }
            match position {
                Some(i) => {
                    let rule = &mut self.rules[i];
                    if let Some(t) = entry.text {
                        rule.text = t.trim().to_string();
                    }
                    if let Some(a) = entry.applies_to {
                        rule.applies_to = a;
                    }
                    if let Some(s) = entry.severity {
                        rule.severity = s;
                    }
                }
                None => {
                    let text = entry.text.ok_or_else(|| format!("{}: a new rule needs a text", at("text")))?;
                    let applies_to = entry.applies_to.ok_or_else(|| {
                        let types: Vec<&str> = PromptType::ALL.iter().map(|t| t.as_str()).collect();
                        format!("{}: a new rule needs applies_to (any of {})", at("applies_to"), types.join(", "))
                    })?;
                    self.rules.push(PromptRule {
                        id: entry.id,
                        text: text.trim().to_string(),
                        applies_to,
                        severity: entry.severity.unwrap_or(RuleSeverity::Medium),
                    });
                }
            }
        }
        Ok(())
    }

    /// The rules for one prompt type, most severe first (file order among equals).
    pub fn for_prompt(&self, prompt: PromptType) -> Vec<&PromptRule> {
        let mut rules: Vec<&PromptRule> = self.rules.iter().filter(|r| r.applies_to.contains(&prompt)).collect();
        rules.sort_by_key(|r| r.severity);
        rules
    }

    /// Every rule in force.
    pub fn all(&self) -> &[PromptRule] {
        &self.rules
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_rules_cover_every_prompt_type_most_severe_first() {
        let rules = PromptRules::builtin();
        for t in PromptType::ALL {
            assert!(!rules.for_prompt(t).is_empty(), "no rule for {}", t.as_str());
        }
        let task = rules.for_prompt(PromptType::TaskExecution);
        assert_eq!(task[0].id, "no_secrets");
        assert!(task.windows(2).all(|w| w[0].severity <= w[1].severity));
    }

    #[test]
    fn a_project_file_overrides_adds_and_disables_by_id() {
        let mut rules = PromptRules::builtin();
        let n = rules.all().len();
        rules
            .apply(
                "p.yaml",
                "rules:\n  - id: stay_in_scope\n    severity: low\n  - id: say_when_blocked\n    enabled: false\n  \
                 - id: use_tabs\n    text: Indent with tabs.\n    applies_to: [task_execution, commit_message]\n",
            )
            .unwrap();
        assert_eq!(rules.all().len(), n);
        let task = rules.for_prompt(PromptType::TaskExecution);
        assert!(task.iter().all(|r| r.id != "say_when_blocked"));
        assert_eq!(task.last().unwrap().id, "stay_in_scope");
        let added = task.iter().find(|r| r.id == "use_tabs").unwrap();
        assert_eq!((added.severity, added.text.as_str()), (RuleSeverity::Medium, "Indent with tabs."));
        assert!(rules.for_prompt(PromptType::CommitMessage).iter().any(|r| r.id == "use_tabs"));
    }

    #[test]
    fn bad_files_name_the_file_line_and_key() {
        let mut rules = PromptRules::builtin();
        let e = rules.apply("p.yaml", "rules:\n  - id: x\n    txt: hi\n").unwrap_err();
        assert!(e.starts_with("p.yaml, line 3") && e.contains("unknown field `txt`"), "{e}");
        let e = rules.apply("p.yaml", "rules:\n  - id: x\n    text: hi\n    applies_to: [review]\n").unwrap_err();
        assert!(e.contains("line 4") && e.contains("unknown variant `review`"), "{e}");
        let e = rules.apply("p.yaml", "rules:\n  - id: fresh\n    text: hi\n").unwrap_err();
        assert!(e.contains("p.yaml, line 2: rule `fresh`, key `applies_to`"), "{e}");
        let e = rules
            .apply("p.yaml", "rules:\n  - id: a\n    enabled: false\n  - id: a\n    enabled: false\n")
            .unwrap_err();
        assert!(e.contains("appears twice"), "{e}");
        let e = rules.apply("p.yaml", "rules:\n  - id: stay_in_scope\n    text: \" \"\n").unwrap_err();
        assert!(e.contains("key `text`") && e.contains("empty"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".obra")).unwrap();
        std::fs::write(dir.path().join(".obra/prompt_rules.yaml"), "rules: 3\n").unwrap();
        let e = PromptRules::for_project(dir.path()).unwrap_err();
        assert!(e.contains("prompt_rules.yaml") && e.contains("line 1"), "{e}");
    }
}
