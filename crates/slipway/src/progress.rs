//! Progress on stderr while stacks run: one live line per running stack (which stack, which
//! step, elapsed) on a terminal, plain lines otherwise. Never interleaved engine output.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Debug)]
pub struct Progress {
    /// `None` when stderr is not a terminal or the engine's output is being streamed.
    multi: Option<MultiProgress>,
    bars: Mutex<BTreeMap<String, ProgressBar>>,
    stage: String,
}

impl Progress {
    pub fn new(stage: &str, live: bool) -> Self {
        let multi = (live && std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Self {
            multi,
            bars: Mutex::new(BTreeMap::new()),
            stage: stage.to_owned(),
        }
    }

    /// A stack moved to a new step.
    pub fn step(&self, stack: &str, step: &str) {
        let Some(multi) = &self.multi else {
            eprintln!("{}/{stack}: {step}", self.stage);
            return;
        };
        let Ok(mut bars) = self.bars.lock() else {
            return;
        };
        let bar = bars.entry(stack.to_owned()).or_insert_with(|| {
            let bar = multi.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {prefix} {wide_msg} {elapsed:>4}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_prefix(format!("{}/{stack}", self.stage));
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        bar.set_message(step.to_owned());
    }

    /// A stack finished; `line` says how.
    pub fn finish(&self, stack: &str, line: &str) {
        if let Some(multi) = &self.multi {
            if let Ok(mut bars) = self.bars.lock() {
                if let Some(bar) = bars.remove(stack) {
                    bar.finish_and_clear();
                    multi.remove(&bar);
                }
            }
            let _ = multi.println(line);
        } else {
            eprintln!("{line}");
        }
    }

    /// A message that is not about one stack.
    pub fn note(&self, line: &str) {
        match &self.multi {
            Some(multi) => {
                let _ = multi.println(line);
            }
            None => eprintln!("{line}"),
        }
    }
}
