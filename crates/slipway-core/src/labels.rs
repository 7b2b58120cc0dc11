//! Worker labels: what a `slipway worker` says of itself (`--labels tier=prod,region=eu`) and
//! what a stage asks of the worker that runs its work (`worker_labels = { tier = "prod" }`).
//! A worker may run a stage's work when it carries every label the stage asks for, with the
//! same value; labels the stage does not name do not matter.

use std::collections::BTreeMap;
use std::fmt;

/// A set of `name=value` labels, ordered by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Labels(pub BTreeMap<String, String>);

impl Labels {
    /// Reads `name=value` pairs separated by commas (`tier=prod,region=eu`). Empty text is no
    /// label.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut labels = BTreeMap::new();
        for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((name, value)) = pair.split_once('=') else {
                return Err(format!(
                    "`{pair}` is not a label: write it as `name=value`, as in `tier=prod`"
                ));
            };
            let (name, value) = (name.trim(), value.trim());
            if let Some(problem) = label_problem(name, value) {
                return Err(format!("label `{pair}`: `{name}` {problem}"));
            }
            if let Some(earlier) = labels.insert(name.to_owned(), value.to_owned()) {
                if earlier != value {
                    return Err(format!(
                        "label `{name}` is given twice, as `{earlier}` and as `{value}`"
                    ));
                }
            }
        }
        Ok(Self(labels))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether a worker carrying these labels may run work that asks for `required`.
    pub fn satisfy(&self, required: &Labels) -> bool {
        required
            .0
            .iter()
            .all(|(name, value)| self.0.get(name) == Some(value))
    }

    /// The labels of `required` these lack (or carry with another value).
    pub fn missing<'a>(&self, required: &'a Labels) -> Vec<(&'a str, &'a str)> {
        required
            .0
            .iter()
            .filter(|(name, value)| self.0.get(*name) != Some(value))
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect()
    }
}

impl From<BTreeMap<String, String>> for Labels {
    fn from(labels: BTreeMap<String, String>) -> Self {
        Self(labels)
    }
}

impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (name, value)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{name}={value}")?;
        }
        Ok(())
    }
}

/// What is wrong with a label, if anything: names are letters, digits, `-`, `_`, `.` and
/// `/`; values are not empty and hold no `,` or `=` (which `--labels` separates with).
pub fn label_problem(name: &str, value: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("is an empty name");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
    {
        return Some("is not a label name (letters, digits, `-`, `_`, `.` and `/`)");
    }
    if value.is_empty() {
        return Some("has an empty value");
    }
    if value.contains([',', '=']) || value.chars().any(char::is_control) {
        return Some("has a value holding `,`, `=` or a control character");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_parse_from_the_command_line() {
        let labels = Labels::parse("tier=prod, region = eu").unwrap();
        assert_eq!(labels.to_string(), "region=eu,tier=prod");
        assert!(Labels::parse("").unwrap().is_empty());
        assert_eq!(
            Labels::parse("prod").unwrap_err(),
            "`prod` is not a label: write it as `name=value`, as in `tier=prod`"
        );
        assert_eq!(
            Labels::parse("tier=prod,tier=dev").unwrap_err(),
            "label `tier` is given twice, as `prod` and as `dev`"
        );
        assert!(Labels::parse("ti er=prod").is_err());
        assert!(Labels::parse("tier=").is_err());
    }

    #[test]
    fn a_worker_satisfies_a_stage_carrying_each_label_with_its_value() {
        let worker = Labels::parse("tier=prod,region=eu").unwrap();
        assert!(worker.satisfy(&Labels::default()));
        assert!(worker.satisfy(&Labels::parse("tier=prod").unwrap()));
        assert!(!worker.satisfy(&Labels::parse("tier=dev").unwrap()));
        assert!(!worker.satisfy(&Labels::parse("tier=prod,gpu=yes").unwrap()));
        assert_eq!(
            worker.missing(&Labels::parse("tier=dev,region=eu,gpu=yes").unwrap()),
            vec![("gpu", "yes"), ("tier", "dev")]
        );
        assert!(!Labels::default().satisfy(&Labels::parse("tier=prod").unwrap()));
    }
}
