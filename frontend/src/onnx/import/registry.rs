//! The op registry: (domain, op type) → converters by the opset version they apply from.
//!
//! Each op family file under `onnx/ops/` registers its converters with
//! `register(&mut Registry)`; [`crate::onnx::ops::default_registry`] collects them all.

use std::collections::BTreeMap;

use crate::FrontendError;
use crate::onnx::import::ctx::Ctx;
use crate::onnx::import::node::NodeView;
use crate::onnx::import::oval::OVal;
use crate::onnx::validate::normalize_domain;

/// Converts one ONNX node: reads its inputs from the context, adds IR nodes (or folds to
/// constants) and returns one value per ONNX output slot, in order. A converter may return
/// fewer values than the node has output slots only if the missing slots are omitted
/// (`""`) optional outputs.
pub type ConvertFn = fn(&mut Ctx<'_>, &NodeView<'_>) -> Result<Vec<OVal>, FrontendError>;

/// Converters by (domain, op type), each a list of (since version, converter).
#[derive(Clone, Default)]
pub struct Registry {
    ops: BTreeMap<(String, String), Vec<(i64, ConvertFn)>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("ops", &self.ops.len())
            .finish()
    }
}

/// Why [`Registry::lookup`] found no converter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Miss {
    /// What exists instead: versions of the same op, supported ops with close names, and
    /// the count of supported ops of the domain.
    pub detail: String,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Register `f` for `op_type` of `domain` (`""` or `ai.onnx` for the default domain)
    /// from opset `since` on. A later registration with the same `since` replaces the
    /// earlier one.
    pub fn register(&mut self, domain: &str, op_type: &str, since: i64, f: ConvertFn) {
        let list = self
            .ops
            .entry((normalize_domain(domain).to_string(), op_type.to_string()))
            .or_default();
        list.retain(|(s, _)| *s != since);
        list.push((since, f));
        list.sort_by_key(|(s, _)| *s);
    }

    /// Register `f` for every op in `op_types` of the default domain from opset `since`.
    pub fn register_many(&mut self, op_types: &[&str], since: i64, f: ConvertFn) {
        for op in op_types {
            self.register("", op, since, f);
        }
    }

    /// The converter for `op_type` of `domain` under `opset`: the one with the largest
    /// `since` ≤ `opset`.
    pub fn lookup(&self, domain: &str, op_type: &str, opset: i64) -> Result<ConvertFn, Miss> {
        let domain = normalize_domain(domain);
        let key = (domain.to_string(), op_type.to_string());
        if let Some(list) = self.ops.get(&key) {
            if let Some((_, f)) = list.iter().rev().find(|(s, _)| *s <= opset) {
                return Ok(*f);
            }
            let versions: Vec<String> = list.iter().map(|(s, _)| s.to_string()).collect();
            return Err(Miss {
                detail: format!(
                    "`{op_type}` is supported from opset {} on (versions {}); the model imports opset {opset}",
                    list.first().map_or(0, |(s, _)| *s),
                    versions.join(", ")
                ),
            });
        }
        let names = self.op_types(domain);
        let mut near: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| is_near(op_type, n))
            .collect();
        near.sort_by_key(|n| edit_distance(&op_type.to_lowercase(), &n.to_lowercase()));
        near.truncate(8);
        let shown = if domain.is_empty() { "ai.onnx" } else { domain };
        let detail = if names.is_empty() {
            format!("no ops of domain `{shown}` are supported")
        } else if near.is_empty() {
            format!(
                "no supported op has a close name ({} ops of `{shown}` are supported)",
                names.len()
            )
        } else {
            format!(
                "supported ops nearby: {} ({} ops of `{shown}` are supported)",
                near.join(", "),
                names.len()
            )
        };
        Err(Miss { detail })
    }

    /// The op types registered for `domain`, sorted.
    pub fn op_types(&self, domain: &str) -> Vec<&str> {
        let domain = normalize_domain(domain);
        self.ops
            .keys()
            .filter(|(d, _)| d == domain)
            .map(|(_, o)| o.as_str())
            .collect()
    }

    /// True if some converter exists for `op_type` of `domain` at `opset`.
    pub fn supports(&self, domain: &str, op_type: &str, opset: i64) -> bool {
        self.lookup(domain, op_type, opset).is_ok()
    }

    /// Number of registered (domain, op type) pairs.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True if nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The error for a node whose op has no converter.
    pub fn unsupported(&self, node: &NodeView<'_>, domain: &str, opset: i64) -> FrontendError {
        let detail = match self.lookup(domain, node.op_type(), opset) {
            Ok(_) => "a converter exists; this error should not happen".to_string(),
            Err(m) => m.detail,
        };
        let domain = normalize_domain(domain);
        FrontendError::UnsupportedOp {
            path: node.path().to_path_buf(),
            node: node.describe(),
            op_type: node.op_type().to_string(),
            domain: if domain.is_empty() { "ai.onnx" } else { domain }.into(),
            opset,
            detail: detail.into(),
        }
    }
}

/// Close names: a case-insensitive edit distance of at most a third of the name's length
/// (at least 1, at most 3), or a common prefix of at least four characters (or of the
/// whole shorter name, if it has three).
fn is_near(a: &str, b: &str) -> bool {
    let (la, lb) = (a.to_lowercase(), b.to_lowercase());
    let limit = (la.chars().count() / 3).clamp(1, 3);
    if edit_distance(&la, &lb) <= limit {
        return true;
    }
    let common = la
        .chars()
        .zip(lb.chars())
        .take_while(|(x, y)| x == y)
        .count();
    common >= 4 || (common >= 3 && common == la.len().min(lb.len()))
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dummy(_: &mut Ctx<'_>, _: &NodeView<'_>) -> Result<Vec<OVal>, FrontendError> {
        Ok(Vec::new())
    }

    #[test]
    fn distance() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }

    #[test]
    fn lookup_picks_the_latest_applicable_version() {
        let mut r = Registry::new();
        r.register("", "Slice", 1, dummy);
        r.register("ai.onnx", "Slice", 10, dummy);
        assert!(r.lookup("", "Slice", 9).is_ok());
        assert!(r.lookup("ai.onnx", "Slice", 13).is_ok());
        assert_eq!(r.len(), 1);
        r.register("", "Split", 13, dummy);
        let miss = r.lookup("", "Split", 11).err().map(|m| m.detail);
        assert_eq!(
            miss.as_deref(),
            Some("`Split` is supported from opset 13 on (versions 13); the model imports opset 11")
        );
        let near = r.lookup("", "Slic", 13).err().map(|m| m.detail);
        assert_eq!(
            near.as_deref(),
            Some("supported ops nearby: Slice (2 ops of `ai.onnx` are supported)")
        );
        let far = r.lookup("", "Mamba", 13).err().map(|m| m.detail);
        assert_eq!(
            far.as_deref(),
            Some("no supported op has a close name (2 ops of `ai.onnx` are supported)")
        );
    }
}
