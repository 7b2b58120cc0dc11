//! A run's events as server-sent events: first every recorded event after the one the
//! client names (`Last-Event-ID`, or `?after=`), then each new one as the record gets it.
//! Every message carries the event's number in its run as its id, so a client that
//! reconnects continues where it stopped; nothing is sent twice or skipped.
//!
//! A stack run's live log is the same stream narrowed to its stack instance's engine lines
//! (`engine_output`, redacted like every log) and ending with its `stack_finished`.
//!
//! The record is the only source: events written by this server's jobs wake the stream at
//! once (the [`Pulse`]); those written by another process (`slipway resume` on a laptop)
//! are found within [`POLL`]. The stream ends once the run has finished and its last event
//! was sent; a run waiting for approval is not finished.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::Stream;
use slipway_store::{RunEvent, RunStatus, Store as _, UnixMillis};

use crate::AppState;

/// How often a stream looks at the record when nothing woke it.
const POLL: Duration = Duration::from_millis(500);
/// How long after a run finished its last events may still be on their way to the record.
const SETTLE: Duration = Duration::from_secs(2);
/// Events read from the record at once.
const PAGE: u32 = 500;

/// Says "events were recorded" to every waiting stream.
#[derive(Clone)]
pub(crate) struct Pulse(tokio::sync::watch::Sender<u64>);

impl Default for Pulse {
    fn default() -> Self {
        Self(tokio::sync::watch::Sender::new(0))
    }
}

impl Pulse {
    pub fn pulse(&self) {
        self.0.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.0.subscribe()
    }
}

/// One stack instance of a run: its engine's lines, then its end.
#[derive(Debug, Clone)]
pub(crate) struct StackLines {
    pub stage: String,
    pub instance: String,
    pub stack: String,
}

impl StackLines {
    /// Whether `event` is this stack instance's, and whether it is its last.
    fn matches(&self, event: &serde_json::Value) -> (bool, bool) {
        let kind = event.get("event").and_then(|k| k.as_str());
        let ours = ["stage", "instance", "stack"]
            .iter()
            .zip([&self.stage, &self.instance, &self.stack])
            .all(|(field, want)| event.get(*field).and_then(|v| v.as_str()) == Some(want));
        match kind {
            Some("engine_output") if ours => (true, false),
            Some("stack_finished") if ours => (true, true),
            _ => (false, false),
        }
    }
}

struct Follow {
    state: AppState,
    /// Only one stack instance's lines, ending with its end.
    only: Option<StackLines>,
    /// That stack instance's end was sent.
    stack_ended: bool,
    run: i64,
    after: i64,
    pending: VecDeque<RunEvent>,
    pulses: tokio::sync::watch::Receiver<u64>,
    /// The run has finished and its events have had time to reach the record.
    settled: bool,
    /// The record failed; the client was told.
    ended: bool,
}

/// The stream of run `run`'s events after number `after`; with `only`, just one stack
/// instance's engine lines and its end (a live log).
pub(crate) fn follow(
    state: AppState,
    run: i64,
    after: i64,
    only: Option<StackLines>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let pulses = state.events.subscribe();
    let follow = Follow {
        only,
        stack_ended: false,
        state,
        run,
        after,
        pending: VecDeque::new(),
        pulses,
        settled: false,
        ended: false,
    };
    let stream = futures_util::stream::unfold(follow, |mut follow| async move {
        let event = follow.next().await?;
        Some((Ok(event), follow))
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

impl Follow {
    async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                self.after = event.seq;
                if let Some(only) = &self.only {
                    let (ours, last) = only.matches(&event.event);
                    if !ours {
                        continue;
                    }
                    self.stack_ended = last;
                }
                return Some(message(&event));
            }
            if self.ended || self.stack_ended {
                return None;
            }
            let store = &self.state.store;
            match store.run_events(self.run, self.after, PAGE).await {
                Ok(events) if !events.is_empty() => {
                    self.pending.extend(events);
                    continue;
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::error!(run = self.run, error = %error, "cannot read run events");
                    self.ended = true;
                    return Some(
                        SseEvent::default()
                            .event("error")
                            .data("the record could not be read"),
                    );
                }
            }
            if self.settled {
                // The last look after the run settled found nothing more.
                return None;
            }
            match store.run(self.run).await {
                Ok(Some(run)) if run.status != RunStatus::Running => {
                    // Events recorded up to now are read once more before the stream ends.
                    self.settled = run
                        .finished_at
                        .is_none_or(|at| UnixMillis::now().since(at) > SETTLE);
                    if self.settled {
                        continue;
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) => return None,
                Err(error) => {
                    tracing::error!(run = self.run, error = %error, "cannot read the run");
                    return None;
                }
            }
            // A stream never holds a stopping server up: the client reconnects to the next
            // one with `Last-Event-ID` and misses nothing.
            if self.state.stopping.is_stopping() {
                return None;
            }
            tokio::select! {
                _ = self.pulses.changed() => {}
                () = tokio::time::sleep(POLL) => {}
                () = self.state.stopping.stopped() => {}
            }
        }
    }
}

fn message(event: &RunEvent) -> SseEvent {
    let kind = event
        .event
        .get("event")
        .and_then(|k| k.as_str())
        .unwrap_or("event")
        .to_owned();
    SseEvent::default()
        .id(event.seq.to_string())
        .event(kind)
        .data(event.event.to_string())
}
