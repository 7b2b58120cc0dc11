//! Hints as data: what the user can do about an error travels with it as a value and is
//! rendered once, after the error and its causes, by the front end. A hint attached with
//! [`WithHelp::help`] never becomes the headline of the error it explains.

use std::fmt;

/// A hint riding on an error chain; its `source` is the error it explains.
#[derive(Debug)]
pub struct Help {
    pub help: String,
    source: Box<dyn std::error::Error + Send + Sync + 'static>,
}

impl fmt::Display for Help {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Front ends list hints apart; shown inline, it reads as the error it explains.
        write!(f, "{}", self.source)
    }
}

impl std::error::Error for Help {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

/// `error`, with a hint.
pub fn with_help(error: impl Into<anyhow::Error>, help: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Help {
        help: help.into(),
        source: error.into().into(),
    })
}

/// Attaches a hint to an error.
pub trait WithHelp<T> {
    fn help(self, help: impl Into<String>) -> anyhow::Result<T>;
}

impl<T, E: Into<anyhow::Error>> WithHelp<T> for Result<T, E> {
    fn help(self, help: impl Into<String>) -> anyhow::Result<T> {
        self.map_err(|error| with_help(error, help))
    }
}

/// An error for people: the error, each cause once, then the hints, each with one
/// indentation. Messages that carry their own `help:` lines keep them.
pub fn render(error: &anyhow::Error) -> String {
    let mut messages: Vec<String> = Vec::new();
    let mut hints: Vec<&str> = Vec::new();
    for layer in error.chain() {
        if let Some(help) = layer.downcast_ref::<Help>() {
            hints.push(&help.help);
            continue;
        }
        let message = layer.to_string();
        // A layer that wraps another (`{0:#}`-style) repeats it: show each text once.
        if messages.last().is_some_and(|last| last == &message) {
            continue;
        }
        messages.push(message);
    }
    let mut text = String::new();
    for (i, message) in messages.iter().enumerate() {
        if i == 0 {
            text.push_str(&format!("error: {message}"));
        } else {
            text.push_str(&format!("\n  caused by: {message}"));
        }
    }
    for hint in hints {
        text.push_str(&format!("\n  help: {hint}"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    fn unreachable_record() -> anyhow::Result<()> {
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "connection refused (127.0.0.1:5432)",
        ))
        .context("cannot open the run record")
        .help("start the database, or point SLIPWAY_STORE_URL at one that runs")
        .context("cannot find what was last released to dev")
    }

    #[test]
    fn hints_follow_the_error_and_its_causes_once_with_one_indentation() {
        let text = render(&unreachable_record().unwrap_err());
        insta::assert_snapshot!(text, @r"
        error: cannot find what was last released to dev
          caused by: cannot open the run record
          caused by: connection refused (127.0.0.1:5432)
          help: start the database, or point SLIPWAY_STORE_URL at one that runs
        ");
    }

    #[test]
    fn an_error_without_hints_renders_as_its_chain() {
        let error = anyhow::anyhow!("unknown stage `qa`");
        assert_eq!(render(&error), "error: unknown stage `qa`");
    }
}
