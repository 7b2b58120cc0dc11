//! What a benchmark hands back to `cargo xtask bench`: its headline figures against their
//! targets, and whether it failed outright.

/// One headline figure of a benchmark, against its target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Figure {
    pub name: String,
    pub measured: String,
    pub target: String,
    /// `None` when the benchmark does not say (its own output does).
    pub met: Option<bool>,
}

impl Figure {
    pub fn new(name: &str, measured: String, target: &str, met: bool) -> Self {
        Self {
            name: name.to_owned(),
            measured,
            target: target.to_owned(),
            met: Some(met),
        }
    }
}

/// What one benchmark hands back: its figures, and whether it failed outright (errors, a
/// server that died) as opposed to missing a target, which is only reported.
#[derive(Debug, Default)]
pub struct Report {
    pub figures: Vec<Figure>,
    pub failed: bool,
}

impl From<Vec<Figure>> for Report {
    fn from(figures: Vec<Figure>) -> Self {
        Self {
            figures,
            failed: false,
        }
    }
}
