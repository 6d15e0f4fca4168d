//! The parser: `.dqc` text → `Graph`. The pest grammar (`grammar.pest`) checks the syntax;
//! this file resolves names, builds ops through `attrs.rs` and reports semantic errors at
//! the position of the offending token.

use std::collections::{BTreeSet, HashMap};

use pest::Parser as _;
use pest::iterators::Pair;

use crate::graph::{Graph, Value};
use crate::shape::TensorType;

use super::WeightStore;
use super::attrs::{attr_names, build_op};
use super::error::{ParseError, ParseErrorKind};
use super::print::tensor_type as type_text;
use super::reader::Attrs;
use super::value::{Spanned, Val, attr_value, string, tensor_type};

/// The pest parser generated from `grammar.pest`.
#[derive(pest_derive::Parser)]
#[grammar = "text/grammar.pest"]
pub(crate) struct DqcParser;

/// Run the grammar from `rule`; a syntax error becomes a [`ParseError`] with a readable list
/// of what was expected.
pub(crate) fn parse_rule(src: &str, rule: Rule) -> Result<Pair<'_, Rule>, ParseError> {
    match DqcParser::parse(rule, src) {
        Ok(mut pairs) => pairs.next().ok_or_else(|| {
            ParseError::at(
                src,
                0,
                ParseErrorKind::Syntax {
                    expected: "a graph".to_string(),
                },
            )
        }),
        Err(e) => Err(syntax_error(src, rule, e)),
    }
}

fn syntax_error(src: &str, rule: Rule, e: pest::error::Error<Rule>) -> ParseError {
    // Parse again with pest's error detail on to learn which literal tokens were tried at
    // the failure position. The detail switch is process-wide and read when a parse starts,
    // so it is only on for this second, failing parse, and the lock keeps concurrent error
    // reports of this parser from switching it off under each other.
    static DETAIL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let detailed = {
        let _guard = DETAIL
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        pest::set_error_detail(true);
        let d = DqcParser::parse(rule, src).err();
        pest::set_error_detail(false);
        d
    };
    let mut expected: BTreeSet<String> = BTreeSet::new();
    let mut offset = None;
    if let Some(attempts) = detailed.as_ref().and_then(|d| d.parse_attempts()) {
        for t in attempts.expected_tokens() {
            // Literal tokens only: character ranges (`0..9`) and built-in rules are covered
            // by the rule names below, and comments are allowed anywhere.
            let token = t.to_string();
            let is_range = token.chars().count() == 4 && token.contains("..");
            if token != "BUILTIN_RULE" && token != "//" && !is_range && !token.trim().is_empty() {
                expected.insert(format!("`{token}`"));
            }
        }
        for stack in attempts.call_stacks() {
            let r = stack.deepest.get_rule().copied();
            if let Some(d) = r.and_then(describe) {
                expected.insert(d.to_string());
            }
        }
        if !expected.is_empty() {
            offset = Some(attempts.max_position);
        }
    }
    // Without detail (or when it names nothing, as for trailing input), fall back to the
    // rules pest reports at its own error position.
    let offset = match offset {
        Some(o) => o,
        None => {
            if let pest::error::ErrorVariant::ParsingError { positives, .. } = &e.variant {
                for r in positives {
                    if let Some(d) = describe(*r) {
                        expected.insert(d.to_string());
                    }
                }
            }
            match e.location {
                pest::error::InputLocation::Pos(p) => p,
                pest::error::InputLocation::Span((s, _)) => s,
            }
        }
    };
    let list: Vec<String> = expected.into_iter().collect();
    let expected = match list.len() {
        0 => "valid input".to_string(),
        1 => list.concat(),
        _ => format!("one of {}", list.join(", ")),
    };
    ParseError::at(src, offset, ParseErrorKind::Syntax { expected })
}

/// Readable names of the rules that a person would recognize as "a thing expected here".
fn describe(r: Rule) -> Option<&'static str> {
    Some(match r {
        Rule::EOI => "end of input",
        Rule::value_name => "a value name (`%name`)",
        Rule::graph_name => "a graph name (`@name`)",
        Rule::stmt => "a statement",
        Rule::ret => "`return`",
        Rule::tensor_type => "a type (`f32[B,4]`)",
        Rule::result_type => "a type or `?`",
        Rule::op_name | Rule::ident => "a name",
        Rule::attrs => "attributes `{…}`",
        Rule::annotation => "a type annotation `: type`",
        Rule::attr_value => "an attribute value",
        Rule::number => "a number",
        Rule::scalar => "a number or `true`/`false`",
        Rule::string => "a quoted string",
        Rule::dim | Rule::dim_factor | Rule::uint => "a dimension",
        _ => return None,
    })
}

/// The file name in the `weights "…"` line, if any, with its offset.
pub(crate) fn weights_decl(
    file: &Pair<'_, Rule>,
    src: &str,
) -> Result<Option<(String, usize)>, ParseError> {
    for p in file.clone().into_inner() {
        if p.as_rule() == Rule::weights_decl {
            let off = p.as_span().start();
            if let Some(s) = p.into_inner().next() {
                return Ok(Some((string(src, s)?, off)));
            }
        }
    }
    Ok(None)
}

/// Parse a whole `.dqc` text; see [`super::parse`].
pub(crate) fn parse_graph(
    src: &str,
    weights: Option<&dyn WeightStore>,
) -> Result<Graph, ParseError> {
    let file = parse_rule(src, Rule::file)?;
    build(src, file, weights)
}

/// A value name pair → (name, offset).
fn value_name(src: &str, p: Pair<'_, Rule>) -> Result<(String, usize), ParseError> {
    let off = p.as_span().start();
    let inner = p.into_inner().next();
    let name = match inner {
        Some(i) if i.as_rule() == Rule::string => string(src, i)?,
        Some(i) => i.as_str().to_string(),
        None => String::new(),
    };
    if name.is_empty() {
        return Err(ParseError::at(src, off, ParseErrorKind::EmptyName));
    }
    Ok((name, off))
}

struct Scope<'s> {
    src: &'s str,
    /// Defined so far: name → (value, line offset of the definition).
    defined: HashMap<String, (Value, usize)>,
    /// Every name the file defines, to tell "later" from "never".
    all: HashMap<String, usize>,
}

impl Scope<'_> {
    fn define(&mut self, name: &str, off: usize, v: Value) -> Result<(), ParseError> {
        if let Some((_, first)) = self.defined.get(name) {
            let first_line = ParseError::at(self.src, *first, ParseErrorKind::EmptyName).line;
            return Err(ParseError::at(
                self.src,
                off,
                ParseErrorKind::DuplicateName {
                    name: name.to_string(),
                    first_line,
                },
            ));
        }
        self.defined.insert(name.to_string(), (v, off));
        Ok(())
    }

    fn check_new(&self, name: &str, off: usize) -> Result<(), ParseError> {
        if let Some((_, first)) = self.defined.get(name) {
            let first_line = ParseError::at(self.src, *first, ParseErrorKind::EmptyName).line;
            return Err(ParseError::at(
                self.src,
                off,
                ParseErrorKind::DuplicateName {
                    name: name.to_string(),
                    first_line,
                },
            ));
        }
        Ok(())
    }

    fn resolve(&self, name: &str, off: usize) -> Result<Value, ParseError> {
        match self.defined.get(name) {
            Some((v, _)) => Ok(*v),
            None => {
                let kind = if self.all.get(name).is_some_and(|&d| d > off) {
                    ParseErrorKind::UsedBeforeDefinition {
                        name: name.to_string(),
                    }
                } else {
                    ParseErrorKind::Undefined {
                        name: name.to_string(),
                    }
                };
                Err(ParseError::at(self.src, off, kind))
            }
        }
    }
}

fn build(
    src: &str,
    file: Pair<'_, Rule>,
    weights: Option<&dyn WeightStore>,
) -> Result<Graph, ParseError> {
    let graph_pair = file
        .into_inner()
        .find(|p| p.as_rule() == Rule::graph)
        .ok_or_else(|| {
            ParseError::at(
                src,
                0,
                ParseErrorKind::Syntax {
                    expected: "`graph`".into(),
                },
            )
        })?;

    let mut scope = Scope {
        src,
        defined: HashMap::new(),
        all: HashMap::new(),
    };
    // First pass: every name the file defines (for the "used before definition" message).
    for p in graph_pair.clone().into_inner() {
        let names = match p.as_rule() {
            Rule::params => p
                .into_inner()
                .filter_map(|q| q.into_inner().next())
                .collect::<Vec<_>>(),
            Rule::stmt => p
                .into_inner()
                .next()
                .map(|vn| vn.into_inner().collect())
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        for n in names {
            let (name, off) = value_name(src, n)?;
            scope.all.entry(name).or_insert(off);
        }
    }

    let mut graph = Graph::new(String::new());
    let mut result_types: Option<(usize, Vec<Option<TensorType>>)> = None;
    for p in graph_pair.into_inner() {
        match p.as_rule() {
            Rule::graph_name => {
                let off = p.as_span().start();
                graph.name = match p.into_inner().next() {
                    Some(i) if i.as_rule() == Rule::string => string(src, i)?,
                    Some(i) => i.as_str().to_string(),
                    None => return Err(ParseError::at(src, off, ParseErrorKind::EmptyName)),
                };
            }
            Rule::params => {
                for param in p.into_inner() {
                    let mut it = param.into_inner();
                    let (Some(n), Some(t)) = (it.next(), it.next()) else {
                        continue;
                    };
                    let (name, off) = value_name(src, n)?;
                    let ty = tensor_type(src, t)?;
                    scope.check_new(&name, off)?;
                    let v = graph.add_input(&name, ty);
                    scope.define(&name, off, v)?;
                }
            }
            Rule::result_types => {
                let off = p.as_span().start();
                let types = p
                    .into_inner()
                    .map(|rt| match rt.into_inner().next() {
                        Some(t) if t.as_rule() == Rule::tensor_type => {
                            tensor_type(src, t).map(Some)
                        }
                        _ => Ok(None),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                result_types = Some((off, types));
            }
            Rule::stmt => statement(src, p, &mut graph, &mut scope, weights)?,
            Rule::ret => {
                let ret_off = p.as_span().start();
                let mut outputs = Vec::new();
                let mut offs = Vec::new();
                for ops in p.into_inner() {
                    for n in ops.into_inner() {
                        let (name, off) = value_name(src, n)?;
                        outputs.push(scope.resolve(&name, off)?);
                        offs.push((name, off));
                    }
                }
                let declared = result_types.take().unwrap_or((ret_off, Vec::new()));
                if declared.1.len() != outputs.len() {
                    return Err(ParseError::at(
                        src,
                        ret_off,
                        ParseErrorKind::ReturnCount {
                            expected: declared.1.len(),
                            actual: outputs.len(),
                        },
                    ));
                }
                for (i, (d, v)) in declared.1.iter().zip(&outputs).enumerate() {
                    if let (Some(d), Some(actual)) = (d, graph.value_type(*v))
                        && d != actual
                    {
                        let (name, off) = &offs[i];
                        return Err(ParseError::at(
                            src,
                            *off,
                            ParseErrorKind::ReturnType {
                                index: i,
                                name: name.clone(),
                                declared: type_text(d),
                                actual: type_text(actual),
                            },
                        ));
                    }
                }
                graph.set_outputs(outputs);
            }
            _ => {}
        }
    }
    Ok(graph)
}

fn statement(
    src: &str,
    p: Pair<'_, Rule>,
    graph: &mut Graph,
    scope: &mut Scope<'_>,
    weights: Option<&dyn WeightStore>,
) -> Result<(), ParseError> {
    let mut names: Vec<(String, usize)> = Vec::new();
    let mut op_name = ("", 0usize);
    let mut operands: Vec<Value> = Vec::new();
    let mut attr_items: Vec<(String, usize, Spanned<Val<'_>>)> = Vec::new();
    let mut annotation: Option<(usize, Vec<TensorType>)> = None;
    let mut operands_off = p.as_span().start();
    for part in p.into_inner() {
        match part.as_rule() {
            Rule::value_names => {
                for n in part.into_inner() {
                    names.push(value_name(src, n)?);
                }
            }
            Rule::op_name => op_name = (part.as_str(), part.as_span().start()),
            Rule::operands => {
                operands_off = part.as_span().start();
                for n in part.into_inner() {
                    let (name, off) = value_name(src, n)?;
                    operands.push(scope.resolve(&name, off)?);
                }
            }
            Rule::attrs => {
                for a in part.into_inner() {
                    let mut it = a.into_inner();
                    let (Some(k), Some(v)) = (it.next(), it.next()) else {
                        continue;
                    };
                    attr_items.push((
                        k.as_str().to_string(),
                        k.as_span().start(),
                        attr_value(src, v)?,
                    ));
                }
            }
            Rule::annotation => {
                let off = part.as_span().start();
                let tys = part
                    .into_inner()
                    .map(|t| tensor_type(src, t))
                    .collect::<Result<Vec<_>, _>>()?;
                annotation = Some((off, tys));
            }
            _ => {}
        }
    }
    let (op_str, op_off) = op_name;
    if op_str == "input" {
        return Err(ParseError::at(
            src,
            op_off,
            ParseErrorKind::UnknownOp {
                name: "input (graph inputs are declared in the signature)".to_string(),
            },
        ));
    }
    let known = attr_names(op_str).ok_or_else(|| {
        ParseError::at(
            src,
            op_off,
            ParseErrorKind::UnknownOp {
                name: op_str.to_string(),
            },
        )
    })?;
    let attrs = Attrs::new(src, op_str, op_off, known, &attr_items)?;
    let op = build_op(op_str, &attrs, weights)?;

    let count_ok = match op.num_inputs() {
        Some(n) => operands.len() == n,
        None => !operands.is_empty(),
    };
    if !count_ok {
        return Err(ParseError::at(
            src,
            operands_off,
            ParseErrorKind::OperandCount {
                op: op_str.to_string(),
                expected: op
                    .num_inputs()
                    .map_or_else(|| "at least 1".to_string(), |n| n.to_string()),
                actual: operands.len(),
            },
        ));
    }
    let first_off = names.first().map_or(op_off, |n| n.1);
    if names.len() != op.num_outputs() {
        return Err(ParseError::at(
            src,
            first_off,
            ParseErrorKind::ResultCount {
                op: op_str.to_string(),
                expected: op.num_outputs(),
                actual: names.len(),
            },
        ));
    }
    for (i, (n, off)) in names.iter().enumerate() {
        scope.check_new(n, *off)?;
        if names[..i].iter().any(|(m, _)| m == n) {
            return Err(ParseError::at(
                src,
                *off,
                ParseErrorKind::DuplicateName {
                    name: n.clone(),
                    first_line: ParseError::at(src, first_off, ParseErrorKind::EmptyName).line,
                },
            ));
        }
    }
    if let Some((off, tys)) = &annotation
        && tys.len() != names.len()
    {
        return Err(ParseError::at(
            src,
            *off,
            ParseErrorKind::AnnotationCount {
                expected: names.len(),
                actual: tys.len(),
            },
        ));
    }
    let id = graph
        .add_node_named(op, &operands, names.iter().map(|n| n.0.clone()).collect())
        .map_err(|e| ParseError::at(src, first_off, ParseErrorKind::Graph(e)))?;
    for (i, (n, off)) in names.iter().enumerate() {
        scope.define(n, *off, Value::new(id, i as u32))?;
    }
    if let Some((_, tys)) = annotation {
        graph.set_types(id, tys);
    }
    Ok(())
}
