//! Errors of the text format: [`ParseError`] (a position in the source plus what is wrong),
//! [`TextError`] (a file-level failure that names the file), [`WeightsError`].

use std::fmt;
use std::path::PathBuf;

use crate::graph::GraphError;

/// A parse failure at a position of the source text.
///
/// `line` and `column` are 1-based; the column counts characters, not bytes. `snippet` is
/// the source line and a caret under the column. `Display` gives
/// `LINE:COL: MESSAGE` followed by the snippet.
#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
    /// What is wrong (boxed to keep `Result<_, ParseError>` small).
    pub kind: Box<ParseErrorKind>,
    /// The offending source line and a caret line under `column`.
    pub snippet: String,
}

impl ParseError {
    /// Build an error at byte offset `offset` of `src` (clamped to the text).
    pub(crate) fn at(src: &str, offset: usize, kind: ParseErrorKind) -> ParseError {
        let offset = floor_char_boundary(src, offset.min(src.len()));
        let before = &src[..offset];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let line = before.matches('\n').count() + 1;
        let column = src[line_start..offset].chars().count() + 1;
        let line_end = src[line_start..]
            .find('\n')
            .map_or(src.len(), |i| line_start + i);
        let text = src[line_start..line_end].trim_end_matches('\r');
        let caret_pad: String = text
            .chars()
            .take(column - 1)
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        ParseError {
            line,
            column,
            kind: Box::new(kind),
            snippet: format!("{text}\n{caret_pad}^"),
        }
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}\n{}",
            self.line, self.column, self.kind, self.snippet
        )
    }
}

impl std::error::Error for ParseError {}

/// What is wrong at a [`ParseError`]'s position.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseErrorKind {
    /// The text does not follow the grammar.
    #[error("expected {expected}")]
    Syntax {
        /// Readable list of what would have been accepted (`one of `=`, `,``).
        expected: String,
    },
    /// An op name that [`crate::Op`] does not have.
    #[error("unknown op `{name}`")]
    UnknownOp {
        /// The name as written.
        name: String,
    },
    /// A dtype name that is not one of [`crate::DType::ALL`].
    #[error("unknown dtype `{name}`")]
    UnknownDType {
        /// The name as written.
        name: String,
    },
    /// A value used before the statement that defines it.
    #[error("value `%{name}` is used before its definition")]
    UsedBeforeDefinition {
        /// Value name.
        name: String,
    },
    /// A value that no statement or parameter defines.
    #[error("value `%{name}` is not defined")]
    Undefined {
        /// Value name.
        name: String,
    },
    /// A value name defined twice.
    #[error("value `%{name}` is already defined on line {first_line}")]
    DuplicateName {
        /// Value name.
        name: String,
        /// Line of the first definition.
        first_line: usize,
    },
    /// Value names must not be empty.
    #[error("empty value name")]
    EmptyName,
    /// An attribute the op does not take.
    #[error("op `{op}` has no attribute `{name}` (its attributes: {expected})")]
    UnknownAttribute {
        /// Op name.
        op: String,
        /// The attribute as written.
        name: String,
        /// The op's attributes, comma separated (`none` if it has none).
        expected: String,
    },
    /// An attribute given twice.
    #[error("attribute `{name}` of `{op}` is given twice")]
    DuplicateAttribute {
        /// Op name.
        op: String,
        /// Attribute.
        name: String,
    },
    /// A required attribute is missing.
    #[error("op `{op}` needs attribute `{name}`")]
    MissingAttribute {
        /// Op name.
        op: String,
        /// Attribute.
        name: String,
    },
    /// An attribute (or a part of one) of the wrong kind or out of range.
    #[error("attribute `{name}` of `{op}`: expected {expected}, found {found}")]
    AttributeType {
        /// Op name.
        op: String,
        /// Attribute.
        name: String,
        /// What was expected (`an integer`, `a shape`, …).
        expected: String,
        /// What was written.
        found: String,
    },
    /// Wrong number of operands for the op and its attributes.
    #[error("op `{op}` takes {expected} operands, {actual} given")]
    OperandCount {
        /// Op name.
        op: String,
        /// Expected count (`1`, `at least 1`).
        expected: String,
        /// Given count.
        actual: usize,
    },
    /// Wrong number of result names for the op.
    #[error("op `{op}` has {expected} results, {actual} names given")]
    ResultCount {
        /// Op name.
        op: String,
        /// Results of the op.
        expected: usize,
        /// Names given.
        actual: usize,
    },
    /// A type annotation with the wrong number of types.
    #[error("the statement has {expected} results but its annotation lists {actual} types")]
    AnnotationCount {
        /// Results of the statement.
        expected: usize,
        /// Types written.
        actual: usize,
    },
    /// The header's result list disagrees with `return`.
    #[error("the signature lists {expected} results but `return` gives {actual}")]
    ReturnCount {
        /// Results in the signature.
        expected: usize,
        /// Values returned.
        actual: usize,
    },
    /// A signature result type disagrees with the known type of the returned value.
    #[error("result {index} is declared {declared} but `%{name}` has type {actual}")]
    ReturnType {
        /// Result position.
        index: usize,
        /// Returned value.
        name: String,
        /// Type in the signature.
        declared: String,
        /// Known type of the value.
        actual: String,
    },
    /// A literal tensor with the wrong number of values.
    #[error("dense<{ty}> needs {expected} values, {actual} given")]
    DenseCount {
        /// The tensor type.
        ty: String,
        /// Element count of the type.
        expected: usize,
        /// Values written.
        actual: usize,
    },
    /// A literal element that the dtype cannot hold exactly.
    #[error("`{value}` is not exactly representable as {dtype}")]
    DenseValue {
        /// The literal.
        value: String,
        /// Element type.
        dtype: String,
    },
    /// A constant's shape has a symbolic or too large dimension.
    #[error("constant shape {shape} must be static and fit in memory")]
    ConstantShape {
        /// The shape as written.
        shape: String,
    },
    /// `external<…> "key"` without a weight store.
    #[error("constant refers to external weight `{key}` but no weights are available")]
    NoWeights {
        /// The key.
        key: String,
    },
    /// `external<…> "key"` whose key the store lacks.
    #[error("external weight `{key}` is missing from the weights")]
    ExternalMissing {
        /// The key.
        key: String,
    },
    /// The stored tensor's type differs from the declared one.
    #[error("external weight `{key}` is {actual}, declared {declared}")]
    ExternalType {
        /// The key.
        key: String,
        /// Declared type.
        declared: String,
        /// Stored type.
        actual: String,
    },
    /// A bad escape in a quoted string.
    #[error("invalid escape in string: {0}")]
    BadEscape(String),
    /// The graph refused the node (should not happen after the checks above).
    #[error(transparent)]
    Graph(#[from] GraphError),
}

/// Errors reading or writing `.dqc` and `.safetensors` files.
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    /// The `.dqc` text failed to parse; displayed as `FILE:LINE:COL: message`.
    #[error("{}:{error}", path.display())]
    Parse {
        /// The `.dqc` file.
        path: PathBuf,
        /// Where and what.
        error: ParseError,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The `weights "…"` line names a file outside the model's folder.
    #[error(
        "{}: weights file `{name}` must be a plain file name or relative path inside the model's folder (no absolute path, no `..`)",
        path.display()
    )]
    WeightsPath {
        /// The `.dqc` file.
        path: PathBuf,
        /// The name as written.
        name: String,
    },
    /// The weights file is malformed.
    #[error(transparent)]
    Weights(#[from] WeightsError),
    /// The model path has no file name to derive the weights file name from.
    #[error("{}: not a file path", path.display())]
    NotAFile {
        /// The path given.
        path: PathBuf,
    },
}

/// Errors of the safetensors weight store.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    /// A file could not be read, mapped or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The safetensors header is malformed.
    #[error("{}: invalid safetensors file: {message}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What the safetensors crate reported.
        message: String,
    },
    /// One entry cannot be read as a dqc tensor.
    #[error("{}: tensor `{name}`: {message}", path.display())]
    Entry {
        /// The file.
        path: PathBuf,
        /// Tensor name.
        name: String,
        /// Why.
        message: String,
    },
    /// The same tensor name was given twice to [`super::write_safetensors`].
    #[error("tensor name `{name}` is given twice")]
    DuplicateName {
        /// The name.
        name: String,
    },
}
