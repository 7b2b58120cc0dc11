//! The stack graph: which stack consumes which stack's outputs, and the orders that follow.
//!
//! Edges run from a dependency to its dependent (A -> B means A is applied before B).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use petgraph::Direction;
use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;

/// Stacks and their dependency edges, indexed by stack name.
#[derive(Debug, Clone, Default)]
pub struct StackGraph {
    /// Each name is one allocation shared by its node and its key in `by_name`.
    graph: DiGraph<Arc<str>, ()>,
    /// Hashed (foldhash: fast, and seeded per process, since names come from whatever a
    /// pull request proposes), not ordered: building it is part of every change detection,
    /// and the order of names is never read from it.
    by_name: HashMap<Arc<str>, NodeIndex, foldhash::fast::RandomState>,
}

impl StackGraph {
    /// Builds a graph from `(stack, dependencies)` pairs, dependencies named by stack name.
    pub fn from_edges<'a>(stacks: impl IntoIterator<Item = (&'a str, Vec<&'a str>)>) -> Self {
        let stacks: Vec<(&str, Vec<&str>)> = stacks.into_iter().collect();
        let edges = stacks.iter().map(|(_, deps)| deps.len()).sum();
        let mut graph = DiGraph::with_capacity(stacks.len(), edges);
        let mut by_name: HashMap<Arc<str>, NodeIndex, _> =
            HashMap::with_capacity_and_hasher(stacks.len(), foldhash::fast::RandomState::default());
        for (name, deps) in &stacks {
            for n in std::iter::once(name).chain(deps) {
                // Looked up before a key is made: most names are met more than once.
                if !by_name.contains_key(*n) {
                    let name: Arc<str> = Arc::from(*n);
                    by_name.insert(Arc::clone(&name), graph.add_node(name));
                }
            }
        }
        for (name, deps) in &stacks {
            for dep in deps {
                let (from, to) = (by_name[*dep], by_name[*name]);
                if graph.find_edge(from, to).is_none() {
                    graph.add_edge(from, to, ());
                }
            }
        }
        Self { graph, by_name }
    }

    pub fn len(&self) -> usize {
        self.graph.node_count()
    }

    pub fn is_empty(&self) -> bool {
        self.graph.node_count() == 0
    }

    /// Position of a stack in insertion order.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).map(|i| i.index())
    }

    pub fn contains(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// Stacks `name` depends on directly, sorted.
    pub fn dependencies(&self, name: &str) -> Vec<&str> {
        self.neighbours(name, Direction::Incoming)
    }

    /// Stacks that depend on `name` directly, sorted.
    pub fn dependents(&self, name: &str) -> Vec<&str> {
        self.neighbours(name, Direction::Outgoing)
    }

    fn neighbours(&self, name: &str, direction: Direction) -> Vec<&str> {
        let Some(&node) = self.by_name.get(name) else {
            return Vec::new();
        };
        let mut names: Vec<&str> = self
            .graph
            .edges_directed(node, direction)
            .map(|e| {
                let other = if direction == Direction::Incoming {
                    e.source()
                } else {
                    e.target()
                };
                &*self.graph[other]
            })
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// Every cycle, as the stacks on it in walking order, starting from the smallest name.
    pub fn cycles(&self) -> Vec<Vec<String>> {
        let mut cycles: Vec<Vec<String>> = tarjan_scc(&self.graph)
            .into_iter()
            .filter(|scc| scc.len() > 1 || self.graph.find_edge(scc[0], scc[0]).is_some())
            .map(|scc| self.walk_cycle(&scc))
            .collect();
        cycles.sort();
        cycles
    }

    /// A closed walk through a strongly connected component, naming each stack once where
    /// a simple cycle covers them, else the shortest cycle through the first one.
    fn walk_cycle(&self, scc: &[NodeIndex]) -> Vec<String> {
        let members: BTreeSet<NodeIndex> = scc.iter().copied().collect();
        let start = *scc
            .iter()
            .min_by_key(|n| &self.graph[**n])
            .unwrap_or(&scc[0]);
        // Breadth-first search back to `start` inside the component gives the shortest cycle.
        let mut previous: BTreeMap<NodeIndex, NodeIndex> = BTreeMap::new();
        let mut queue = VecDeque::from([start]);
        let mut end = None;
        'search: while let Some(node) = queue.pop_front() {
            let mut next: Vec<NodeIndex> = self
                .graph
                .neighbors_directed(node, Direction::Outgoing)
                .filter(|n| members.contains(n))
                .collect();
            next.sort_by_key(|n| &self.graph[*n]);
            for n in next {
                if n == start {
                    end = Some(node);
                    break 'search;
                }
                if let std::collections::btree_map::Entry::Vacant(e) = previous.entry(n) {
                    e.insert(node);
                    queue.push_back(n);
                }
            }
        }
        let mut path = Vec::new();
        let mut cursor = end;
        while let Some(node) = cursor {
            path.push(self.graph[node].to_string());
            if node == start {
                break;
            }
            cursor = previous.get(&node).copied();
        }
        path.reverse();
        path
    }

    /// All stacks in an order where each comes after its dependencies; ties broken by name,
    /// so the order is stable. Stacks on cycles are left out.
    pub fn topological_order(&self) -> Vec<&str> {
        self.order_of(self.by_name.keys().map(|name| &**name))
    }

    /// The given stacks in dependency order (edges among them only).
    pub fn order_of<'a>(&'a self, names: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
        // Counted by node, not by name: change detection orders every affected stack and
        // dependent on each run, and sorted name lists per stack cost more than the walk.
        let selected: HashSet<NodeIndex> = names
            .into_iter()
            .filter_map(|n| self.by_name.get(n).copied())
            .collect();
        let mut remaining: HashMap<NodeIndex, usize> = selected
            .iter()
            .map(|&node| {
                let count = self
                    .graph
                    .neighbors_directed(node, Direction::Incoming)
                    .filter(|d| selected.contains(d))
                    .count();
                (node, count)
            })
            .collect();
        let mut ready: BTreeSet<(&str, NodeIndex)> = remaining
            .iter()
            .filter(|(_, c)| **c == 0)
            .map(|(n, _)| (&*self.graph[*n], *n))
            .collect();
        let mut order = Vec::with_capacity(selected.len());
        while let Some((name, node)) = ready.pop_first() {
            remaining.remove(&node);
            order.push(name);
            for dependent in self.graph.neighbors_directed(node, Direction::Outgoing) {
                if let Some(count) = remaining.get_mut(&dependent) {
                    *count -= 1;
                    if *count == 0 {
                        ready.insert((&*self.graph[dependent], dependent));
                    }
                }
            }
        }
        order
    }

    /// `names` plus everything they depend on, transitively.
    pub fn with_dependencies<'a>(&'a self, names: &[&'a str]) -> BTreeSet<&'a str> {
        self.closure(names, Direction::Incoming)
    }

    /// `names` plus everything that depends on them, transitively.
    pub fn with_dependents<'a>(&'a self, names: &[&'a str]) -> BTreeSet<&'a str> {
        self.closure(names, Direction::Outgoing)
    }

    fn closure<'a>(&'a self, names: &[&'a str], direction: Direction) -> BTreeSet<&'a str> {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<NodeIndex> = names
            .iter()
            .filter_map(|n| self.by_name.get(*n).copied())
            .collect();
        while let Some(node) = stack.pop() {
            if seen.insert(&*self.graph[node]) {
                stack.extend(self.graph.neighbors_directed(node, direction));
            }
        }
        seen
    }

    /// Edges as `(dependency, dependent)`, sorted.
    pub fn edges(&self) -> Vec<(&str, &str)> {
        let mut edges: Vec<(&str, &str)> = self
            .graph
            .edge_references()
            .map(|e| (&*self.graph[e.source()], &*self.graph[e.target()]))
            .collect();
        edges.sort_unstable();
        edges
    }

    /// The longest chain of dependencies by the given per-stack cost, and its total: the
    /// least time a perfectly parallel apply can take.
    pub fn critical_path<F: Fn(&str) -> f64>(&self, cost: F) -> (Vec<&str>, f64) {
        let order = self.topological_order();
        let mut best: BTreeMap<&str, (f64, Option<&str>)> = BTreeMap::new();
        for name in &order {
            let (before, via) = self
                .dependencies(name)
                .into_iter()
                .filter_map(|d| best.get(d).map(|(c, _)| (*c, Some(d))))
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .unwrap_or((0.0, None));
            best.insert(name, (before + cost(name), via));
        }
        let Some((&last, &(total, _))) = best.iter().max_by(|a, b| a.1.0.total_cmp(&b.1.0)) else {
            return (Vec::new(), 0.0);
        };
        let mut path = vec![last];
        let mut cursor = best[last].1;
        while let Some(name) = cursor {
            path.push(name);
            cursor = best[name].1;
        }
        path.reverse();
        (path, total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn webshop() -> StackGraph {
        StackGraph::from_edges([
            ("network", vec![]),
            ("data", vec![]),
            ("queue", vec![]),
            ("app", vec!["network", "data", "queue"]),
            ("dns", vec!["app"]),
        ])
    }

    #[test]
    fn topological_order_puts_dependencies_first_and_is_stable() {
        assert_eq!(
            webshop().topological_order(),
            vec!["data", "network", "queue", "app", "dns"]
        );
    }

    #[test]
    fn closures_follow_edges_transitively() {
        let g = webshop();
        assert_eq!(
            g.with_dependencies(&["dns"])
                .into_iter()
                .collect::<Vec<_>>(),
            vec!["app", "data", "dns", "network", "queue"]
        );
        assert_eq!(
            g.with_dependents(&["data"]).into_iter().collect::<Vec<_>>(),
            vec!["app", "data", "dns"]
        );
    }

    #[test]
    fn cycles_name_every_stack_on_them_in_order() {
        let g = StackGraph::from_edges([
            ("a", vec!["c"]),
            ("b", vec!["a"]),
            ("c", vec!["b"]),
            ("d", vec![]),
            ("e", vec!["e"]),
        ]);
        assert_eq!(g.cycles(), vec![vec!["a", "b", "c"], vec!["e"]]);
        assert!(webshop().cycles().is_empty());
    }

    #[test]
    fn critical_path_is_the_heaviest_chain() {
        let g = webshop();
        let (path, total) = g.critical_path(|n| match n {
            "network" => 10.0,
            "data" => 3.0,
            _ => 1.0,
        });
        assert_eq!(path, vec!["network", "app", "dns"]);
        assert!((total - 12.0).abs() < f64::EPSILON);
    }
}
