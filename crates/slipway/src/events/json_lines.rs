//! `--json`: every event as one JSON object on its own line of stdout, written whole (never
//! interleaved), for CI systems to read as it happens. docs/events.md is the schema.

use std::io::Write;
use std::sync::Mutex;

use serde::Serialize;
use slipway_runner::events::{Event, Observer};

#[derive(Debug)]
pub struct JsonLines {
    out: Mutex<std::io::Stdout>,
}

impl JsonLines {
    pub fn stdout() -> Self {
        Self {
            out: Mutex::new(std::io::stdout()),
        }
    }

    /// One line holding `value`; a reader that has gone away (a closed pipe) is not an
    /// error worth stopping a delivery for.
    pub fn write(&self, value: &impl Serialize) {
        let Ok(line) = serde_json::to_string(value) else {
            return;
        };
        if let Ok(mut out) = self.out.lock() {
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    }
}

impl Observer for JsonLines {
    fn observe(&self, event: &Event) {
        self.write(event);
    }
}
