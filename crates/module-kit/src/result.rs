//! What a module returns: an [`Outcome`] on success, a [`Failure`] otherwise.

use serde_json::{Map, Value};

/// Before/after state for diff mode. Ansible renders objects as sorted, indented JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct Diff {
    pub before: Value,
    pub after: Value,
}

/// Sets `key` in a module's return values; a value that cannot be represented becomes `null`.
pub(crate) fn insert_value(values: &mut Map<String, Value>, key: &str, value: impl serde::Serialize) {
    values.insert(
        key.to_string(),
        serde_json::to_value(value).unwrap_or(Value::Null),
    );
}

/// A successful run.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    pub changed: bool,
    pub msg: String,
    /// Shown only in diff mode.
    pub diff: Option<Diff>,
    pub warnings: Vec<String>,
    /// The module's own return values, merged into the top level of the result.
    pub values: Map<String, Value>,
}

impl Outcome {
    pub fn changed(msg: impl Into<String>) -> Self {
        Self {
            changed: true,
            msg: msg.into(),
            ..Self::default()
        }
    }

    pub fn unchanged(msg: impl Into<String>) -> Self {
        Self {
            changed: false,
            msg: msg.into(),
            ..Self::default()
        }
    }

    /// Adds a return value. Values that cannot be represented become `null`.
    pub fn with(mut self, key: &str, value: impl serde::Serialize) -> Self {
        insert_value(&mut self.values, key, value);
        self
    }

    pub fn with_diff(mut self, before: Value, after: Value) -> Self {
        self.diff = Some(Diff { before, after });
        self
    }

    pub fn warn(mut self, warning: impl Into<String>) -> Self {
        self.warnings.push(warning.into());
        self
    }
}

/// A failed run: a message for the operator, and the evidence (a command's rc and output).
#[derive(Debug, Default, Clone)]
pub struct Failure {
    pub msg: String,
    /// The failed command's rc/stdout/stderr, reported as `rc`, `stdout`, `stderr`.
    pub command: Option<Box<crate::command::Output>>,
    pub warnings: Vec<String>,
    pub values: Map<String, Value>,
}

impl Failure {
    pub fn new(msg: impl Into<String>) -> Self {
        Self {
            msg: msg.into(),
            ..Self::default()
        }
    }

    /// A parameter that parsed but whose value is not acceptable.
    /// Say what is wrong without repeating a long value in full: [`crate::echo::shown`].
    pub fn param(field: &str, problem: impl std::fmt::Display) -> Self {
        let field: String = field.chars().take(crate::echo::ECHO_LIMIT).collect();
        Self::new(format!("parameter `{field}`: {problem}"))
    }

    pub fn with(mut self, key: &str, value: impl serde::Serialize) -> Self {
        insert_value(&mut self.values, key, value);
        self
    }

    pub fn warn(mut self, warning: impl Into<String>) -> Self {
        self.warnings.push(warning.into());
        self
    }

    /// Prefixes the message with what was being done, keeping the evidence.
    pub fn context(mut self, what: impl std::fmt::Display) -> Self {
        self.msg = format!("{what}: {}", self.msg);
        self
    }
}

impl From<crate::command::CommandError> for Failure {
    fn from(err: crate::command::CommandError) -> Self {
        let mut failure = Failure::new(err.to_string());
        failure.command = err.output().map(|out| Box::new(out.clone()));
        failure
    }
}
