//! A root module's outputs as the engine reports them (`output -json`, or the state file).

use std::collections::BTreeMap;

/// One root-module output.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct Output {
    pub value: serde_json::Value,
    #[serde(default)]
    pub sensitive: bool,
}

impl Output {
    /// The outputs' names for a log line, sensitive ones marked; never their values.
    pub fn names(outputs: &BTreeMap<String, Output>) -> String {
        outputs
            .iter()
            .map(|(name, o)| {
                if o.sensitive {
                    format!("{name} (sensitive)")
                } else {
                    name.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}
