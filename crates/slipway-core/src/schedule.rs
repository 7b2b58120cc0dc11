//! Which stack instances may start now: a dependency queue over the stack graph.
//!
//! Pure bookkeeping, driven by the executor: it asks for ready work, reports each result,
//! and the queue decides what becomes ready and what must be skipped. A failed stack
//! skips everything downstream of it while independent stacks carry on.

use std::collections::{BTreeMap, BTreeSet};

use crate::graph::StackGraph;

/// Direction in which the graph is walked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Walk {
    /// Dependencies first (plan, apply).
    Forward,
    /// Dependents first (destroy).
    Reverse,
}

/// The state of one stack in a walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Waiting,
    Running,
    Succeeded,
    Failed,
    /// Not run because something it waits for failed or was skipped; names that stack.
    Skipped {
        because: String,
    },
}

/// Dependency-ordered work queue over a selection of stacks.
#[derive(Debug, Clone)]
pub struct DependencyQueue {
    /// For each stack, the selected stacks it must wait for.
    waits_for: BTreeMap<String, BTreeSet<String>>,
    status: BTreeMap<String, Status>,
}

impl DependencyQueue {
    /// A queue over `selected` stacks of `graph`; edges to unselected stacks are ignored.
    pub fn new(graph: &StackGraph, selected: &BTreeSet<&str>, walk: Walk) -> Self {
        let waits_for = selected
            .iter()
            .map(|name| {
                let before = match walk {
                    Walk::Forward => graph.dependencies(name),
                    Walk::Reverse => graph.dependents(name),
                };
                let before = before
                    .into_iter()
                    .filter(|n| selected.contains(n))
                    .map(str::to_owned)
                    .collect();
                ((*name).to_owned(), before)
            })
            .collect();
        let status = selected
            .iter()
            .map(|n| ((*n).to_owned(), Status::Waiting))
            .collect();
        Self { waits_for, status }
    }

    /// Stacks whose prerequisites all succeeded, not yet started; marks them running.
    pub fn take_ready(&mut self, limit: usize) -> Vec<String> {
        let ready: Vec<String> = self
            .status
            .iter()
            .filter(|(name, status)| {
                **status == Status::Waiting
                    && self.waits_for[*name]
                        .iter()
                        .all(|d| self.status[d] == Status::Succeeded)
            })
            .map(|(name, _)| name.clone())
            .take(limit)
            .collect();
        for name in &ready {
            self.status.insert(name.clone(), Status::Running);
        }
        ready
    }

    /// Records a finished stack. A failure skips every stack waiting on it, transitively.
    pub fn finish(&mut self, name: &str, succeeded: bool) {
        if succeeded {
            self.status.insert(name.to_owned(), Status::Succeeded);
            return;
        }
        self.status.insert(name.to_owned(), Status::Failed);
        let mut frontier = vec![name.to_owned()];
        while let Some(failed) = frontier.pop() {
            let blocked: Vec<String> = self
                .waits_for
                .iter()
                .filter(|(n, before)| {
                    before.contains(&failed) && self.status[*n] == Status::Waiting
                })
                .map(|(n, _)| n.clone())
                .collect();
            for n in blocked {
                self.status.insert(
                    n.clone(),
                    Status::Skipped {
                        because: failed.clone(),
                    },
                );
                frontier.push(n);
            }
        }
    }

    /// True when nothing is waiting or running.
    pub fn is_done(&self) -> bool {
        self.status
            .values()
            .all(|s| !matches!(s, Status::Waiting | Status::Running))
    }

    pub fn running(&self) -> usize {
        self.status
            .values()
            .filter(|s| **s == Status::Running)
            .count()
    }

    pub fn status(&self) -> &BTreeMap<String, Status> {
        &self.status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph() -> StackGraph {
        // network -> app <- data ; queue alone ; app -> web
        StackGraph::from_edges([
            ("network", vec![]),
            ("data", vec![]),
            ("queue", vec![]),
            ("app", vec!["network", "data"]),
            ("web", vec!["app"]),
        ])
    }

    fn all(g: &StackGraph) -> BTreeSet<&str> {
        g.topological_order().into_iter().collect()
    }

    #[test]
    fn forward_walk_releases_dependents_after_their_dependencies() {
        let g = graph();
        let mut q = DependencyQueue::new(&g, &all(&g), Walk::Forward);
        assert_eq!(q.take_ready(10), vec!["data", "network", "queue"]);
        assert!(q.take_ready(10).is_empty());
        q.finish("data", true);
        assert!(q.take_ready(10).is_empty(), "app still waits for network");
        q.finish("network", true);
        assert_eq!(q.take_ready(10), vec!["app"]);
        q.finish("app", true);
        q.finish("queue", true);
        assert_eq!(q.take_ready(10), vec!["web"]);
        q.finish("web", true);
        assert!(q.is_done());
    }

    #[test]
    fn parallelism_limit_is_respected() {
        let g = graph();
        let mut q = DependencyQueue::new(&g, &all(&g), Walk::Forward);
        assert_eq!(q.take_ready(2).len(), 2);
        assert_eq!(q.running(), 2);
        assert_eq!(q.take_ready(2), vec!["queue"]);
    }

    #[test]
    fn failure_skips_dependents_transitively_and_independents_finish() {
        let g = graph();
        let mut q = DependencyQueue::new(&g, &all(&g), Walk::Forward);
        q.take_ready(10);
        q.finish("network", false);
        q.finish("data", true);
        q.finish("queue", true);
        assert!(q.take_ready(10).is_empty());
        assert!(q.is_done());
        assert_eq!(
            q.status()["app"],
            Status::Skipped {
                because: "network".into()
            }
        );
        assert_eq!(
            q.status()["web"],
            Status::Skipped {
                because: "app".into()
            }
        );
        assert_eq!(q.status()["queue"], Status::Succeeded);
    }

    #[test]
    fn reverse_walk_destroys_dependents_first() {
        let g = graph();
        let mut q = DependencyQueue::new(&g, &all(&g), Walk::Reverse);
        assert_eq!(q.take_ready(10), vec!["queue", "web"]);
        q.finish("web", true);
        assert_eq!(q.take_ready(10), vec!["app"]);
        q.finish("app", true);
        assert_eq!(q.take_ready(10), vec!["data", "network"]);
    }

    #[test]
    fn unselected_stacks_do_not_block() {
        let g = graph();
        let selected: BTreeSet<&str> = ["app", "web"].into_iter().collect();
        let mut q = DependencyQueue::new(&g, &selected, Walk::Forward);
        assert_eq!(q.take_ready(10), vec!["app"]);
    }
}
