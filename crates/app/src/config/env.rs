//! Reading variables: each helper names its variable in the error it returns.

use secrecy::SecretString;
use std::collections::HashMap;
use std::fmt::Display;
use std::ops::RangeInclusive;
use std::str::FromStr;
use std::time::Duration;

/// A variable with a value the service cannot use.
#[derive(Debug, thiserror::Error)]
#[error("{variable}: {reason}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub reason: String,
}

pub(crate) fn err(variable: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        variable,
        reason: reason.into(),
    }
}

/// The variables given to the service; empty values count as unset.
pub(crate) struct Env(pub(crate) HashMap<String, String>);

impl Env {
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    pub(crate) fn text(&self, name: &str, default: &str) -> String {
        self.get(name).unwrap_or(default).to_owned()
    }

    pub(crate) fn parse<T: FromStr>(
        &self,
        name: &'static str,
        default: T,
    ) -> Result<T, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => raw
                .parse()
                .map_err(|_| err(name, format!("cannot parse {raw:?}"))),
        }
    }

    /// A number within `range`.
    pub(crate) fn bounded<T>(
        &self,
        name: &'static str,
        default: T,
        range: RangeInclusive<T>,
    ) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + Display,
    {
        let value = self.parse(name, default)?;
        if range.contains(&value) {
            Ok(value)
        } else {
            Err(err(
                name,
                format!("must be between {} and {}", range.start(), range.end()),
            ))
        }
    }

    /// A number above zero.
    pub(crate) fn positive<T>(&self, name: &'static str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + Default,
    {
        let value = self.parse(name, default)?;
        if value > T::default() {
            Ok(value)
        } else {
            Err(err(name, "must be positive"))
        }
    }

    /// Whole seconds within `range`.
    pub(crate) fn seconds(
        &self,
        name: &'static str,
        default: Duration,
        range: RangeInclusive<u64>,
    ) -> Result<Duration, ConfigError> {
        self.bounded(name, default.as_secs(), range)
            .map(Duration::from_secs)
    }

    /// Whole seconds, where `0` (or unset, when `default` is `None`) turns the thing off.
    pub(crate) fn seconds_or_off(
        &self,
        name: &'static str,
        default: Option<Duration>,
        max: u64,
    ) -> Result<Option<Duration>, ConfigError> {
        let secs = self.bounded(name, default.map_or(0, |d| d.as_secs()), 0..=max)?;
        Ok((secs > 0).then(|| Duration::from_secs(secs)))
    }

    pub(crate) fn flag(&self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.get(name).map(str::to_ascii_lowercase).as_deref() {
            None => Ok(default),
            Some("true" | "1" | "yes" | "on") => Ok(true),
            Some("false" | "0" | "no" | "off") => Ok(false),
            Some(other) => Err(err(name, format!("expected true or false, got {other:?}"))),
        }
    }

    /// One of the named values; unset is `default`.
    pub(crate) fn choice<T: Clone>(
        &self,
        name: &'static str,
        choices: &[(&str, T)],
        default: T,
    ) -> Result<T, ConfigError> {
        let Some(raw) = self.get(name) else {
            return Ok(default);
        };
        match choices.iter().find(|(word, _)| *word == raw) {
            Some((_, value)) => Ok(value.clone()),
            None => {
                let words: Vec<&str> = choices.iter().map(|(word, _)| *word).collect();
                Err(err(
                    name,
                    format!("expected {}, got {raw:?}", words.join(" or ")),
                ))
            }
        }
    }

    /// An `http://` or `https://` URL.
    pub(crate) fn http_url(&self, name: &'static str) -> Result<Option<String>, ConfigError> {
        match self.get(name) {
            None => Ok(None),
            Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
                Ok(Some(url.to_owned()))
            }
            Some(_) => Err(err(name, "must be an http:// or https:// URL")),
        }
    }

    /// A comma-separated list, each entry trimmed, empty entries dropped.
    pub(crate) fn list(&self, name: &str) -> Option<Vec<String>> {
        self.get(name).map(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|entry| !entry.is_empty())
                .map(str::to_owned)
                .collect()
        })
    }

    pub(crate) fn secret(&self, name: &str) -> Option<SecretString> {
        self.get(name).map(|v| SecretString::from(v.to_owned()))
    }

    /// Every variable whose name starts with one of `prefixes`, sorted by name.
    pub(crate) fn secrets_with_prefix(&self, prefixes: &[&str]) -> Vec<(String, SecretString)> {
        let mut options: Vec<_> = self
            .0
            .keys()
            .filter(|k| prefixes.iter().any(|p| k.starts_with(p)))
            .filter_map(|k| Some((k.clone(), self.secret(k)?)))
            .collect();
        options.sort_by(|a, b| a.0.cmp(&b.0));
        options
    }
}
