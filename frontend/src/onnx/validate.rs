//! Structural validation of ONNX graphs: unique value names, every input defined,
//! operator domains imported, and a topological order of the nodes.
//!
//! Subgraphs (attributes of type GRAPH/GRAPHS, as in `If`, `Loop`, `Scan`) are checked
//! recursively. A subgraph may read values of the enclosing graphs; such a read counts as
//! an input of the node that owns the subgraph when the outer graph is sorted.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use crate::FrontendError;
use crate::onnx::proto::{FunctionProto, GraphProto, NodeProto};

/// Map `ai.onnx` to `""`, the canonical spelling of the default domain.
pub fn normalize_domain(domain: &str) -> &str {
    if domain == "ai.onnx" { "" } else { domain }
}

/// A human-readable label for node `index` of a graph: its name if it has one, its index
/// otherwise, and its op type, e.g. `` `conv1` (Conv) `` or `#3 (Add)`.
pub fn node_label(index: usize, node: &NodeProto) -> String {
    let op = if node.domain.is_empty() || node.domain == "ai.onnx" {
        node.op_type.clone()
    } else {
        format!("{}.{}", node.domain, node.op_type)
    };
    if node.name.is_empty() {
        format!("#{index} ({op})")
    } else {
        format!("`{}` ({op})", node.name)
    }
}

/// What the graph checks need to know about the model.
pub struct ModelContext<'a> {
    path: PathBuf,
    opsets: HashSet<&'a str>,
    function_domains: HashSet<&'a str>,
}

impl<'a> ModelContext<'a> {
    /// Context for a model at `path` with these opsets and local functions.
    pub fn new(
        path: &Path,
        opsets: &'a std::collections::BTreeMap<String, i64>,
        functions: &'a [FunctionProto],
    ) -> ModelContext<'a> {
        ModelContext {
            path: path.to_path_buf(),
            opsets: opsets.keys().map(String::as_str).collect(),
            function_domains: functions
                .iter()
                .map(|f| normalize_domain(&f.domain))
                .collect(),
        }
    }
}

/// Result of checking one graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphCheck {
    /// Node indices in topological order (stable: the file's order when it is one).
    pub order: Vec<usize>,
    /// Names the graph reads from enclosing graphs (empty for a main graph).
    pub free: BTreeSet<String>,
}

#[derive(Clone, Copy)]
enum Origin {
    Input,
    Initializer,
    Node(usize),
}

fn describe(origin: Origin, graph: &GraphProto) -> String {
    match origin {
        Origin::Input => "a graph input".to_string(),
        Origin::Initializer => "an initializer".to_string(),
        Origin::Node(i) => match graph.node.get(i) {
            Some(n) => format!("node {}", node_label(i, n)),
            None => format!("node #{i}"),
        },
    }
}

fn graph_name(g: &GraphProto) -> String {
    if g.name.is_empty() {
        "<unnamed>".to_string()
    } else {
        g.name.clone()
    }
}

/// Check `graph` whose enclosing graphs define `outer` (innermost last).
///
/// Errors: a value defined twice (an initializer that is also listed as a graph input is
/// not a duplicate), a node input or graph output without a definition, a node domain
/// that is neither imported nor a local function's, a cycle among the nodes.
pub fn check_graph(
    ctx: &ModelContext<'_>,
    graph: &GraphProto,
    outer: &[&HashSet<String>],
) -> Result<GraphCheck, FrontendError> {
    let gname = graph_name(graph);
    let mut defined: HashMap<&str, Origin> = HashMap::new();
    let dup = |name: &str, first: Origin, second: Origin| FrontendError::DuplicateValue {
        path: ctx.path.clone(),
        graph: gname.clone(),
        value: name.to_string(),
        first: describe(first, graph),
        second: describe(second, graph),
    };
    for v in &graph.input {
        if let Some(&o) = defined.get(v.name.as_str()) {
            return Err(dup(&v.name, o, Origin::Input));
        }
        defined.insert(&v.name, Origin::Input);
    }
    let mut inits: HashSet<&str> = HashSet::new();
    for t in &graph.initializer {
        if !inits.insert(&t.name) {
            return Err(dup(&t.name, Origin::Initializer, Origin::Initializer));
        }
        // An initializer may also be a graph input (a default value); not a duplicate.
        defined.entry(&t.name).or_insert(Origin::Initializer);
    }
    for s in &graph.sparse_initializer {
        if let Some(v) = &s.values
            && !inits.insert(&v.name)
        {
            return Err(dup(&v.name, Origin::Initializer, Origin::Initializer));
        }
    }
    for (i, node) in graph.node.iter().enumerate() {
        for out in node.output.iter().filter(|o| !o.is_empty()) {
            if let Some(&o) = defined.get(out.as_str()) {
                return Err(dup(out, o, Origin::Node(i)));
            }
            defined.insert(out, Origin::Node(i));
        }
    }
    for s in &graph.sparse_initializer {
        if let Some(v) = &s.values {
            defined.entry(&v.name).or_insert(Origin::Initializer);
        }
    }

    let in_outer = |name: &str| outer.iter().any(|scope| scope.contains(name));
    let here: HashSet<String> = defined.keys().map(|k| k.to_string()).collect();
    let mut scopes: Vec<&HashSet<String>> = outer.to_vec();
    scopes.push(&here);

    let mut free = BTreeSet::new();
    // deps[i]: producers of node i's inputs (explicit and read by its subgraphs).
    let mut deps: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); graph.node.len()];
    for (i, node) in graph.node.iter().enumerate() {
        let label = || node_label(i, node);
        let domain = normalize_domain(&node.domain);
        if !ctx.opsets.contains(domain) && !ctx.function_domains.contains(domain) {
            return Err(FrontendError::UnknownDomain {
                path: ctx.path.clone(),
                node: label(),
                domain: node.domain.clone(),
            });
        }
        let mut reads: Vec<String> = node
            .input
            .iter()
            .filter(|s| !s.is_empty())
            .cloned()
            .collect();
        for attr in &node.attribute {
            for sub in attr.g.iter().chain(attr.graphs.iter()) {
                let check = check_graph(ctx, sub, &scopes)?;
                reads.extend(check.free);
            }
        }
        for name in &reads {
            match defined.get(name.as_str()) {
                Some(Origin::Node(j)) => {
                    deps[i].insert(*j);
                }
                Some(Origin::Input | Origin::Initializer) => {}
                None if in_outer(name) => {
                    free.insert(name.clone());
                }
                None => {
                    // Subgraph reads were checked against every scope already, so only an
                    // explicit input can get here.
                    let input = name.clone();
                    return Err(FrontendError::MissingInput {
                        path: ctx.path.clone(),
                        graph: gname.clone(),
                        node: label(),
                        input,
                    });
                }
            }
        }
    }
    for out in &graph.output {
        if defined.contains_key(out.name.as_str()) {
            continue;
        }
        if in_outer(&out.name) {
            free.insert(out.name.clone());
            continue;
        }
        return Err(FrontendError::MissingOutput {
            path: ctx.path.clone(),
            graph: gname.clone(),
            output: out.name.clone(),
        });
    }
    let order = topo_sort(&deps).map_err(|node| FrontendError::Cycle {
        path: ctx.path.clone(),
        graph: gname.clone(),
        node: graph
            .node
            .get(node)
            .map(|n| node_label(node, n))
            .unwrap_or_else(|| format!("#{node}")),
    })?;
    Ok(GraphCheck { order, free })
}

/// Kahn's algorithm, always taking the smallest ready index, so an already sorted list
/// keeps its order. On a cycle, returns the index of a node that lies on one.
pub fn topo_sort(deps: &[BTreeSet<usize>]) -> Result<Vec<usize>, usize> {
    let n = deps.len();
    let mut indegree: Vec<usize> = deps.iter().map(BTreeSet::len).collect();
    let mut users: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, d) in deps.iter().enumerate() {
        for &j in d {
            if let Some(u) = users.get_mut(j) {
                u.push(i);
            }
        }
    }
    let mut ready: BTreeSet<usize> = (0..n).filter(|&i| indegree[i] == 0).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for &u in &users[i] {
            indegree[u] -= 1;
            if indegree[u] == 0 {
                ready.insert(u);
            }
        }
    }
    if order.len() == n {
        return Ok(order);
    }
    // Every remaining node has a remaining predecessor; walking predecessors must revisit
    // a node, and the first revisited node lies on a cycle.
    let Some(start) = (0..n).find(|&i| indegree[i] > 0) else {
        return Err(0);
    };
    let mut seen = vec![false; n];
    let mut cur = start;
    loop {
        if seen[cur] {
            return Err(cur);
        }
        seen[cur] = true;
        match deps[cur].iter().copied().find(|&j| indegree[j] > 0) {
            Some(j) => cur = j,
            None => return Err(cur),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(v: &[&[usize]]) -> Vec<BTreeSet<usize>> {
        v.iter().map(|s| s.iter().copied().collect()).collect()
    }

    #[test]
    fn sorted_input_keeps_order() {
        assert_eq!(topo_sort(&d(&[&[], &[0], &[0, 1]])), Ok(vec![0, 1, 2]));
    }

    #[test]
    fn reversed_input_is_sorted() {
        // 0 needs 1, 1 needs 2.
        assert_eq!(topo_sort(&d(&[&[1], &[2], &[]])), Ok(vec![2, 1, 0]));
    }

    #[test]
    fn cycle_names_a_node_on_it() {
        // 0 is a source feeding the cycle 1 -> 2 -> 3 -> 1; 4 hangs off the cycle.
        let r = topo_sort(&d(&[&[], &[0, 3], &[1], &[2], &[3]]));
        let node = r.unwrap_err();
        assert!([1, 2, 3].contains(&node), "{node} is not on the cycle");
    }

    #[test]
    fn self_loop_is_a_cycle() {
        assert_eq!(topo_sort(&d(&[&[0]])), Err(0));
    }
}
