//! How the CLI shows the runner's events: on the terminal (`terminal`), or as one JSON object
//! per line on stdout for CI systems (`json_lines`, chosen by `--json`); and the one place
//! Ctrl-C is turned into the interrupt engine steps obey.

mod json_lines;
mod terminal;

use std::sync::{Arc, OnceLock};

use slipway_engine::{Interrupt, InterruptTrigger};
use slipway_runner::events::{Event, InterruptSource, Observer};

pub use json_lines::JsonLines;
pub use terminal::Terminal;

/// The observer for this invocation: JSON lines on stdout when asked, else the terminal.
pub fn observer(json: bool) -> Arc<dyn Observer> {
    if json {
        Arc::new(JsonLines::stdout())
    } else {
        Arc::new(Terminal::stderr())
    }
}

/// Ctrl-C, wired to the engine steps' interrupt the first time an executor asks for it.
///
/// The handler is installed then, before any engine starts, and not earlier: until then
/// Ctrl-C keeps its usual meaning and stops slipway at once. It is installed at all (rather
/// than letting the terminal's SIGINT reach the engines alone) because a slipway started in
/// the background inherits SIGINT ignored, and its children would inherit that too (an
/// ignored signal stays ignored across exec) unless a handler replaced it.
pub fn ctrl_c(observer: Arc<dyn Observer>, grace: std::time::Duration) -> InterruptSource {
    let installed: Arc<OnceLock<Interrupt>> = Arc::new(OnceLock::new());
    InterruptSource::new(move || {
        installed
            .get_or_init(|| {
                let (trigger, interrupt) = Interrupt::channel();
                listen(trigger, Arc::clone(&observer), grace);
                interrupt
            })
            .clone()
    })
}

fn listen(trigger: InterruptTrigger, observer: Arc<dyn Observer>, grace: std::time::Duration) {
    let sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt());
    let Ok(mut sigint) = sigint else {
        observer.observe(&Event::Note {
            severity: slipway_runner::events::Severity::Warning,
            stage: None,
            stack: None,
            message: "warning: cannot listen for Ctrl-C; an interrupt stops engine steps without saving their state".to_owned(),
        });
        return;
    };
    tokio::spawn(async move {
        if sigint.recv().await.is_some() {
            observer.observe(&Event::Interrupted {
                grace_ms: u64::try_from(grace.as_millis()).unwrap_or(u64::MAX),
            });
            trigger.fire();
        }
    });
}
