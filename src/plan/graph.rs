//! The step DAG: the default pipeline plus the plan's own steps, checked for
//! unknown ids, duplicates and cycles, and expanded per cell.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::ops::Range;

use petgraph::algo::{tarjan_scc, toposort};
use petgraph::graph::{DiGraph, NodeIndex};
use serde::Serialize;

use super::raw::{OnFailure, StepKind, StepSection};
use super::suggest::{Closeness, did_you_mean};

/// One step of the pipeline, before expansion per cell.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Step {
    pub(crate) id: String,
    pub(crate) kind: StepKind,
    pub(crate) per_cell: bool,
    pub(crate) needs: Vec<String>,
    pub(crate) on_failure: OnFailure,
    /// Built in (the default pipeline) rather than declared by the plan.
    pub(crate) builtin: bool,
    /// Index into the plan's `[[step]]` list for declared steps.
    #[serde(skip)]
    pub(crate) declared: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct StepGraph {
    /// In a topological order: every step after all it needs.
    pub(crate) steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GraphError {
    pub(crate) span: Range<usize>,
    pub(crate) message: String,
    pub(crate) hint: Option<String>,
}

fn builtin(id: &str, kind: StepKind, per_cell: bool, needs: &[&str]) -> Step {
    Step {
        id: id.into(),
        kind,
        per_cell,
        needs: needs.iter().map(|s| s.to_string()).collect(),
        on_failure: if per_cell {
            OnFailure::Continue
        } else {
            OnFailure::Abort
        },
        builtin: true,
        declared: None,
    }
}

/// `preflight -> (per cell: scale -> ready -> load -> cooldown) -> analyze -> report -> gate`;
/// `load` covers warm-up and the measured window, which one engine run spans.
pub(crate) fn default_steps() -> Vec<Step> {
    vec![
        builtin("preflight", StepKind::Check, false, &[]),
        builtin("scale", StepKind::Scale, true, &["preflight"]),
        builtin("ready", StepKind::Ready, true, &["scale"]),
        builtin("load", StepKind::Load, true, &["ready"]),
        builtin("cooldown", StepKind::Sleep, true, &["load"]),
        builtin("analyze", StepKind::Analyze, false, &["cooldown"]),
        builtin("report", StepKind::Report, false, &["analyze"]),
        builtin("gate", StepKind::Gate, false, &["report"]),
    ]
}

fn default_per_cell(kind: StepKind) -> bool {
    matches!(
        kind,
        StepKind::Scale | StepKind::Ready | StepKind::Load | StepKind::Scrape
    )
}

/// Kinds that act on one cell's system or load and cannot run once per run.
fn per_cell_only(kind: StepKind) -> bool {
    matches!(kind, StepKind::Scale | StepKind::Ready | StepKind::Load)
}

pub(crate) fn build(declared: &[StepSection]) -> Result<StepGraph, Vec<GraphError>> {
    let mut errors = Vec::new();
    let mut steps = default_steps();
    let mut declared_at: HashMap<String, Range<usize>> = HashMap::new();
    for (i, s) in declared.iter().enumerate() {
        let id = s.id.value.trim().to_owned();
        if id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            errors.push(GraphError {
                span: s.id.span.clone(),
                message: format!("step id `{id}` must be letters, digits, `-` or `_`"),
                hint: None,
            });
            continue;
        }
        if declared_at.contains_key(&id) {
            errors.push(GraphError {
                span: s.id.span.clone(),
                message: format!("step id `{id}` is declared twice"),
                hint: Some("step ids are unique; rename one of them".into()),
            });
            continue;
        }
        declared_at.insert(id.clone(), s.id.span.clone());
        let per_cell = s.per_cell.unwrap_or_else(|| default_per_cell(s.uses.value));
        if !per_cell && per_cell_only(s.uses.value) {
            errors.push(GraphError {
                span: s.uses.span.clone(),
                message: format!(
                    "step `{id}`: a `{}` step runs per cell, but it sets `per_cell = false`",
                    kind_name(s.uses.value)
                ),
                hint: Some("remove `per_cell = false`".into()),
            });
        }
        let step = Step {
            id: id.clone(),
            kind: s.uses.value,
            per_cell,
            needs: s.needs.iter().map(|n| n.value.trim().to_owned()).collect(),
            on_failure: s.on_failure.unwrap_or(if per_cell {
                OnFailure::Continue
            } else {
                OnFailure::Abort
            }),
            builtin: false,
            declared: Some(i),
        };
        match steps.iter_mut().find(|st| st.id == id) {
            Some(existing) => *existing = step,
            None => steps.push(step),
        }
    }
    // `before = [x]` is `x.needs += [this]`.
    for s in declared {
        for target in &s.before {
            if let Some(t) = steps.iter_mut().find(|st| st.id == target.value.trim()) {
                let me = s.id.value.trim().to_owned();
                if !t.needs.contains(&me) {
                    t.needs.push(me);
                }
            }
        }
    }

    let ids: Vec<String> = steps.iter().map(|s| s.id.clone()).collect();
    let unknown = |name: &str, span: &Range<usize>, field: &str, owner: &str| GraphError {
        span: span.clone(),
        message: format!("step `{owner}` {field} `{name}`, which is no step of this plan"),
        hint: Some(
            did_you_mean(name, ids.iter().map(String::as_str), Closeness::Similar)
                .unwrap_or_else(|| format!("the steps are: {}", ids.join(", "))),
        ),
    };
    for s in declared {
        for n in &s.needs {
            if !ids.contains(&n.value.trim().to_owned()) {
                errors.push(unknown(n.value.trim(), &n.span, "needs", &s.id.value));
            }
        }
        for b in &s.before {
            if !ids.contains(&b.value.trim().to_owned()) {
                errors.push(unknown(b.value.trim(), &b.span, "runs before", &s.id.value));
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }

    let mut graph: DiGraph<usize, ()> = DiGraph::new();
    let nodes: Vec<NodeIndex> = (0..steps.len()).map(|i| graph.add_node(i)).collect();
    let index: HashMap<&str, usize> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();
    for (i, s) in steps.iter().enumerate() {
        for n in &s.needs {
            graph.add_edge(nodes[index[n.as_str()]], nodes[i], ());
        }
    }
    match toposort(&graph, None) {
        Ok(order) => Ok(StepGraph {
            steps: order.into_iter().map(|n| steps[graph[n]].clone()).collect(),
        }),
        Err(_) => {
            for scc in tarjan_scc(&graph) {
                let is_cycle = scc.len() > 1 || graph.find_edge(scc[0], scc[0]).is_some();
                if !is_cycle {
                    continue;
                }
                let chain = cycle_chain(&graph, &scc);
                let names: Vec<&str> = chain.iter().map(|n| steps[graph[*n]].id.as_str()).collect();
                let first = &steps[graph[chain[0]]];
                let span = first
                    .declared
                    .map(|d| declared[d].id.span.clone())
                    .or_else(|| {
                        chain
                            .iter()
                            .find_map(|n| steps[graph[*n]].declared)
                            .map(|d| declared[d].id.span.clone())
                    })
                    .unwrap_or(0..0);
                errors.push(GraphError {
                    span,
                    message: format!("steps form a cycle: {} -> {}", names.join(" -> "), names[0]),
                    hint: Some("remove one of these `needs` (or `before`) links".into()),
                });
            }
            Err(errors)
        }
    }
}

/// Orders a strongly connected component as one walk `a -> b -> ... -> a`
/// along `needs` edges, starting from its first declared node.
fn cycle_chain(graph: &DiGraph<usize, ()>, scc: &[NodeIndex]) -> Vec<NodeIndex> {
    let start = *scc.iter().min_by_key(|n| graph[**n]).unwrap_or(&scc[0]);
    let in_scc = |n: NodeIndex| scc.contains(&n);
    // breadth-first from start's successors back to start gives a shortest cycle
    let mut prev: HashMap<NodeIndex, NodeIndex> = HashMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(n) = queue.pop_front() {
        for m in graph.neighbors(n) {
            if !in_scc(m) || prev.contains_key(&m) {
                continue;
            }
            prev.insert(m, n);
            if m == start {
                let mut chain = vec![];
                let mut cur = n;
                while cur != start {
                    chain.push(cur);
                    cur = prev[&cur];
                }
                chain.push(start);
                chain.reverse();
                return chain;
            }
            queue.push_back(m);
        }
    }
    scc.to_vec()
}

/// One node of the graph expanded per cell.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Node {
    pub(crate) step: usize,
    pub(crate) cell: Option<usize>,
}

/// Adds the per-cell nodes of one more cell, `c` (a search probe decided
/// while the run goes on), wired as [`expand`] wires every cell: after cell
/// `c - 1`, and before the plan-level steps that need per-cell ones.
pub(crate) fn expand_cell(
    graph: &StepGraph,
    g: &mut DiGraph<Node, ()>,
    c: usize,
) -> Vec<NodeIndex> {
    let index: HashMap<&str, usize> = graph
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();
    let find = |g: &DiGraph<Node, ()>, step: usize, cell: Option<usize>| {
        g.node_indices()
            .find(|n| g[*n].step == step && g[*n].cell == cell)
    };
    let mut added = Vec::new();
    let mut at: HashMap<usize, NodeIndex> = HashMap::new();
    for (i, s) in graph.steps.iter().enumerate() {
        if s.per_cell {
            let n = g.add_node(Node {
                step: i,
                cell: Some(c),
            });
            at.insert(i, n);
            added.push(n);
        }
    }
    for (i, s) in graph.steps.iter().enumerate() {
        for need in &s.needs {
            let j = index[need.as_str()];
            match (graph.steps[j].per_cell, s.per_cell) {
                (true, true) => {
                    g.add_edge(at[&j], at[&i], ());
                }
                (true, false) => {
                    if let Some(p) = find(g, i, None) {
                        g.add_edge(at[&j], p, ());
                    }
                }
                (false, true) => {
                    if let Some(p) = find(g, j, None) {
                        g.add_edge(p, at[&i], ());
                    }
                }
                (false, false) => {}
            }
        }
    }
    if c > 0 {
        for (a, sa) in graph.steps.iter().enumerate() {
            let last = sa.per_cell
                && !graph
                    .steps
                    .iter()
                    .any(|s| s.per_cell && s.needs.contains(&sa.id));
            if !last {
                continue;
            }
            let Some(prev) = find(g, a, Some(c - 1)) else {
                continue;
            };
            for (b, sb) in graph.steps.iter().enumerate() {
                let first = sb.per_cell
                    && !sb
                        .needs
                        .iter()
                        .any(|n| graph.steps[index[n.as_str()]].per_cell);
                if first {
                    g.add_edge(prev, at[&b], ());
                }
            }
        }
    }
    added
}

/// The graph with every per-cell step repeated once per cell. Cells run one
/// at a time in matrix order: each cell's nodes wait for every node of the
/// cell before.
pub(crate) fn expand(graph: &StepGraph, cells: usize) -> DiGraph<Node, ()> {
    let mut g = DiGraph::new();
    let mut at: HashMap<(usize, Option<usize>), NodeIndex> = HashMap::new();
    for (i, s) in graph.steps.iter().enumerate() {
        if s.per_cell {
            for c in 0..cells {
                at.insert(
                    (i, Some(c)),
                    g.add_node(Node {
                        step: i,
                        cell: Some(c),
                    }),
                );
            }
        } else {
            at.insert(
                (i, None),
                g.add_node(Node {
                    step: i,
                    cell: None,
                }),
            );
        }
    }
    let index: HashMap<&str, usize> = graph
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();
    for (i, s) in graph.steps.iter().enumerate() {
        for n in &s.needs {
            let j = index[n.as_str()];
            let dep = &graph.steps[j];
            match (dep.per_cell, s.per_cell) {
                (true, true) => {
                    for c in 0..cells {
                        g.add_edge(at[&(j, Some(c))], at[&(i, Some(c))], ());
                    }
                }
                (true, false) => {
                    for c in 0..cells {
                        g.add_edge(at[&(j, Some(c))], at[&(i, None)], ());
                    }
                }
                (false, true) => {
                    for c in 0..cells {
                        g.add_edge(at[&(j, None)], at[&(i, Some(c))], ());
                    }
                }
                (false, false) => {
                    g.add_edge(at[&(j, None)], at[&(i, None)], ());
                }
            }
        }
    }
    // Sequencing: the last per-cell steps of one cell before the first of the next.
    let per_cell = |i: &usize| graph.steps[*i].per_cell;
    let needs_per_cell = |i: usize| {
        graph.steps[i]
            .needs
            .iter()
            .any(|n| per_cell(&index[n.as_str()]))
    };
    let needed_by_per_cell = |i: usize| {
        graph
            .steps
            .iter()
            .any(|s| s.per_cell && s.needs.contains(&graph.steps[i].id))
    };
    let firsts: Vec<usize> = (0..graph.steps.len())
        .filter(per_cell)
        .filter(|i| !needs_per_cell(*i))
        .collect();
    let lasts: Vec<usize> = (0..graph.steps.len())
        .filter(per_cell)
        .filter(|i| !needed_by_per_cell(*i))
        .collect();
    for c in 1..cells {
        for &a in &lasts {
            for &b in &firsts {
                g.add_edge(at[&(a, Some(c - 1))], at[&(b, Some(c))], ());
            }
        }
    }
    g
}

impl StepGraph {
    /// The graph as an indented text listing.
    pub(crate) fn to_text(&self) -> String {
        let mut out = String::new();
        for s in &self.steps {
            let scope = if s.per_cell { "per cell" } else { "once" };
            let needs = if s.needs.is_empty() {
                String::new()
            } else {
                format!("  <- {}", s.needs.join(", "))
            };
            let origin = if s.builtin { "" } else { "  (plan)" };
            let _ = writeln!(
                out,
                "  {:<14} {:<8} {:<9}{needs}{origin}",
                s.id,
                kind_name(s.kind),
                scope
            );
        }
        out
    }

    /// Graphviz dot of the step graph; per-cell steps are grouped in a cluster.
    pub(crate) fn to_dot(&self, cells: usize) -> String {
        let mut out = String::from("digraph loadmatrix {\n  rankdir=LR;\n  node [shape=box];\n");
        let _ = writeln!(
            out,
            "  subgraph cluster_cell {{\n    label=\"per cell (x{cells}, one at a time)\";"
        );
        for s in self.steps.iter().filter(|s| s.per_cell) {
            let _ = writeln!(
                out,
                "    \"{}\" [label=\"{}\\n{}\"];",
                s.id,
                s.id,
                kind_name(s.kind)
            );
        }
        out.push_str("  }\n");
        for s in self.steps.iter().filter(|s| !s.per_cell) {
            let _ = writeln!(
                out,
                "  \"{}\" [label=\"{}\\n{}\"];",
                s.id,
                s.id,
                kind_name(s.kind)
            );
        }
        for s in &self.steps {
            for n in &s.needs {
                let _ = writeln!(out, "  \"{n}\" -> \"{}\";", s.id);
            }
        }
        out.push_str("}\n");
        out
    }
}

pub(crate) fn kind_name(kind: StepKind) -> &'static str {
    match kind {
        StepKind::Check => "check",
        StepKind::Scale => "scale",
        StepKind::Ready => "ready",
        StepKind::Load => "load",
        StepKind::Exec => "exec",
        StepKind::Sleep => "sleep",
        StepKind::Scrape => "scrape",
        StepKind::Analyze => "analyze",
        StepKind::Report => "report",
        StepKind::Gate => "gate",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(text: &str) -> Vec<StepSection> {
        #[derive(serde::Deserialize)]
        struct Wrapper {
            step: Vec<StepSection>,
        }
        toml::from_str::<Wrapper>(text).unwrap().step
    }

    fn node_names(graph: &StepGraph, g: &DiGraph<Node, ()>, n: NodeIndex) -> String {
        let node = &g[n];
        match node.cell {
            Some(c) => format!("{}@{c}", graph.steps[node.step].id),
            None => graph.steps[node.step].id.clone(),
        }
    }

    fn has_edge(graph: &StepGraph, g: &DiGraph<Node, ()>, from: &str, to: &str) -> bool {
        g.edge_indices().any(|e| {
            let (a, b) = g.edge_endpoints(e).unwrap();
            node_names(graph, g, a) == from && node_names(graph, g, b) == to
        })
    }

    #[test]
    fn default_pipeline_is_in_order() {
        let g = build(&[]).unwrap();
        let ids: Vec<&str> = g.steps.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "preflight",
                "scale",
                "ready",
                "load",
                "cooldown",
                "analyze",
                "report",
                "gate"
            ]
        );
    }

    #[test]
    fn per_cell_needs_bind_within_the_cell_and_cells_run_in_turn() {
        let g = build(&steps(
            r#"
            [[step]]
            id = "restart-lb"
            uses = "exec"
            per_cell = true
            needs = ["scale"]
            before = ["load"]
            "#,
        ))
        .unwrap();
        let x = expand(&g, 2);
        assert!(has_edge(&g, &x, "scale@0", "restart-lb@0"));
        assert!(has_edge(&g, &x, "restart-lb@1", "load@1"));
        assert!(!has_edge(&g, &x, "scale@0", "restart-lb@1"));
        // a plan-level step that needs a per-cell step waits for it in every cell
        assert!(has_edge(&g, &x, "cooldown@0", "analyze"));
        assert!(has_edge(&g, &x, "cooldown@1", "analyze"));
        // cell 1 starts after all of cell 0
        assert!(has_edge(&g, &x, "cooldown@0", "scale@1"));
        assert!(toposort(&x, None).is_ok());
        assert_eq!(x.node_count(), 4 + 2 * 5);
    }

    #[test]
    fn a_cycle_prints_its_whole_chain() {
        let errors = build(&steps(
            r#"
            [[step]]
            id = "a"
            uses = "exec"
            needs = ["c"]
            [[step]]
            id = "b"
            uses = "exec"
            needs = ["a"]
            [[step]]
            id = "c"
            uses = "exec"
            needs = ["b"]
            "#,
        ))
        .unwrap_err();
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0]
                .message
                .ends_with("steps form a cycle: a -> b -> c -> a"),
            "{}",
            errors[0].message
        );
    }

    #[test]
    fn a_declared_step_replaces_the_default_of_its_id() {
        let g = build(&steps(
            r#"
            [[step]]
            id = "cooldown"
            uses = "sleep"
            per_cell = true
            needs = ["load"]
            duration = "1s"
            "#,
        ))
        .unwrap();
        let cooldown = g.steps.iter().find(|s| s.id == "cooldown").unwrap();
        assert!(!cooldown.builtin);
        assert_eq!(g.steps.len(), 8);
    }
}
