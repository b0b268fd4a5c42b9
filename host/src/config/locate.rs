//! Field paths (`tenants[0].sources[1].schedule.type`) and where they are in the file.
//!
//! toml's serde errors carry a byte span but no field path, and the parsed model carries
//! neither; a second, span-preserving parse of the same text with `toml_edit` maps both
//! ways: span → path for parse errors, path → span for semantic problems.

use std::fmt;
use std::ops::Range;
use toml_edit::{ImDocument, Item, Table, Value};

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

/// A field path inside the configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FieldPath(pub(crate) Vec<Seg>);

impl FieldPath {
    /// This path extended by a key.
    pub(crate) fn key(&self, key: &str) -> FieldPath {
        let mut segs = self.0.clone();
        segs.push(Seg::Key(key.to_owned()));
        FieldPath(segs)
    }

    /// This path extended by an array index.
    pub(crate) fn index(&self, index: usize) -> FieldPath {
        let mut segs = self.0.clone();
        segs.push(Seg::Index(index));
        FieldPath(segs)
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// A node of the span-preserving document.
#[derive(Clone, Copy)]
enum Node<'a> {
    Item(&'a Item),
    Value(&'a Value),
    Table(&'a Table),
}

impl<'a> Node<'a> {
    fn span(self) -> Option<Range<usize>> {
        match self {
            Node::Item(item) => item.span(),
            Node::Value(value) => value.span(),
            Node::Table(table) => table.span(),
        }
    }

    /// Children with their path step and the span of their key, when they have one.
    fn children(self) -> Vec<(Seg, Option<Range<usize>>, Node<'a>)> {
        let table = |t: &'a Table| {
            t.iter()
                .map(|(k, item)| {
                    (Seg::Key(k.to_owned()), t.key(k).and_then(|key| key.span()), Node::Item(item))
                })
                .collect()
        };
        let value = |v: &'a Value| match v {
            Value::InlineTable(t) => t
                .iter()
                .map(|(k, v)| (Seg::Key(k.to_owned()), t.key(k).and_then(|key| key.span()), Node::Value(v)))
                .collect(),
            Value::Array(a) => {
                a.iter().enumerate().map(|(i, v)| (Seg::Index(i), None, Node::Value(v))).collect()
            }
            _ => Vec::new(),
        };
        match self {
            Node::Table(t) | Node::Item(Item::Table(t)) => table(t),
            Node::Item(Item::ArrayOfTables(a)) => {
                a.iter().enumerate().map(|(i, t)| (Seg::Index(i), None, Node::Table(t))).collect()
            }
            Node::Item(Item::Value(v)) | Node::Value(v) => value(v),
            Node::Item(Item::None) => Vec::new(),
        }
    }

    fn child(self, seg: &Seg) -> Option<(Option<Range<usize>>, Node<'a>)> {
        self.children().into_iter().find(|(s, _, _)| s == seg).map(|(_, key, node)| (key, node))
    }
}

/// A parsed document to locate fields in.
pub(crate) struct Locator {
    doc: ImDocument<String>,
}

impl Locator {
    /// Parses `text`; `None` when it is not valid TOML.
    pub(crate) fn new(text: &str) -> Option<Locator> {
        ImDocument::parse(text.to_owned()).ok().map(|doc| Locator { doc })
    }

    /// The innermost field whose key or value contains byte `offset`, and that key's or value's span.
    pub(crate) fn path_at(&self, offset: usize) -> (FieldPath, Option<Range<usize>>) {
        let mut best: Option<(FieldPath, Range<usize>)> = None;
        visit(Node::Table(self.doc.as_table()), &FieldPath::default(), offset, &mut best);
        match best {
            Some((path, span)) => (path, Some(span)),
            None => (FieldPath::default(), None),
        }
    }

    /// The span of `path`'s value (else its key); for a path that is absent, the span of
    /// its nearest present ancestor.
    pub(crate) fn span_of(&self, path: &FieldPath) -> Option<Range<usize>> {
        let mut node = Node::Table(self.doc.as_table());
        let mut found = None;
        for seg in &path.0 {
            let Some((key_span, child)) = node.child(seg) else { break };
            found = child.span().or(key_span).or(found);
            node = child;
        }
        found
    }

    /// The span of the last key of `path`, when it is present and is a key.
    pub(crate) fn key_span(&self, path: &FieldPath) -> Option<Range<usize>> {
        let mut node = Node::Table(self.doc.as_table());
        let mut key = None;
        for seg in &path.0 {
            let (key_span, child) = node.child(seg)?;
            key = key_span;
            node = child;
        }
        key
    }

    /// The key of the table at `path` whose value is the string `value`.
    pub(crate) fn key_with_string(&self, path: &FieldPath, value: &str) -> Option<String> {
        let mut node = Node::Table(self.doc.as_table());
        for seg in &path.0 {
            node = node.child(seg)?.1;
        }
        node.children().into_iter().find_map(|(seg, _, child)| {
            let text = match child {
                Node::Item(Item::Value(Value::String(s))) | Node::Value(Value::String(s)) => s.value(),
                _ => return None,
            };
            match seg {
                Seg::Key(k) if text == value => Some(k),
                _ => None,
            }
        })
    }
}

fn visit(node: Node<'_>, path: &FieldPath, offset: usize, best: &mut Option<(FieldPath, Range<usize>)>) {
    for (seg, key_span, child) in node.children() {
        let mut child_path = path.clone();
        child_path.0.push(seg);
        consider(&child_path, key_span, offset, best);
        consider(&child_path, child.span(), offset, best);
        visit(child, &child_path, offset, best);
    }
}

/// Keeps `candidate` when `span` contains `offset` and is tighter (or as tight and deeper) than the best so far.
fn consider(
    candidate: &FieldPath,
    span: Option<Range<usize>>,
    offset: usize,
    best: &mut Option<(FieldPath, Range<usize>)>,
) {
    let Some(span) = span.filter(|s| s.contains(&offset) || s.start == offset) else { return };
    let better = match best.as_ref() {
        None => true,
        Some((p, b)) => span.len() < b.len() || (span.len() == b.len() && candidate.0.len() > p.0.len()),
    };
    if better {
        *best = Some((candidate.clone(), span));
    }
}
