//! Field-level validation errors in the shape Laravel answers with.

use std::collections::BTreeMap;

/// Field name → messages, as in Laravel's `{"errors": {"field": ["..."]}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidationErrors(BTreeMap<String, Vec<String>>);

impl ValidationErrors {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn single(field: &str, message: impl Into<String>) -> Self {
        let mut e = Self::new();
        e.add(field, message);
        e
    }

    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0
            .entry(field.to_owned())
            .or_default()
            .push(message.into());
    }

    /// Adds every message of `other`.
    pub fn merge(&mut self, other: Self) {
        for (field, messages) in other.0 {
            self.0.entry(field).or_default().extend(messages);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn fields(&self) -> &BTreeMap<String, Vec<String>> {
        &self.0
    }

    /// Laravel's summary: the first message, plus "(and N more errors)".
    pub fn summary(&self) -> String {
        let all: Vec<&String> = self.0.values().flatten().collect();
        match all.split_first() {
            None => "The given data was invalid.".to_owned(),
            Some((first, [])) => (*first).clone(),
            Some((first, rest)) => {
                let n = rest.len();
                let noun = if n == 1 { "error" } else { "errors" };
                format!("{first} (and {n} more {noun})")
            }
        }
    }

    pub fn into_result(self) -> Result<(), Self> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(self)
        }
    }
}
