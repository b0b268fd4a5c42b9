//! A small streaming layer over quick-xml: element paths by local name, element
//! text, and errors that name the file, line and element.

use quick_xml::events::Event;
use quick_xml::Reader;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// The UTF-8 byte order mark many SAF-T files start with.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// What went wrong reading a SAF-T file, with where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XmlError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line number, when known.
    pub line: Option<u64>,
    /// The element path (`AuditFile/GeneralLedgerEntries/Journal/Transaction/Line/DebitAmount/Amount`).
    pub element: String,
    /// The problem.
    pub message: String,
}

impl std::fmt::Display for XmlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ", line {line}")?;
        }
        if !self.element.is_empty() {
            write!(f, ", element <{}>", self.element)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// One parse step: an element opened, or closed with its text.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// An element was opened; the path (local names) now ends with it.
    Open,
    /// An element was closed; the path still ends with it and `text` holds its own text.
    Close,
    /// The document ended.
    Eof,
}

/// A pull parser that keeps the path of open elements (local names, no prefix).
pub struct PathReader {
    reader: Reader<BufReader<File>>,
    file: PathBuf,
    offset_base: u64,
    buf: Vec<u8>,
    /// Local names of the open elements, outermost first.
    pub path: Vec<String>,
    /// Text of the element just closed (for [`Step::Close`]).
    pub text: String,
    pending_close: bool,
    empty_close: bool,
}

impl PathReader {
    /// Opens a file (skipping a UTF-8 byte order mark).
    pub fn open(file: &Path) -> Result<Self, XmlError> {
        let handle = File::open(file).map_err(|e| XmlError {
            file: file.to_owned(),
            line: None,
            element: String::new(),
            message: format!("cannot open the file: {e}"),
        })?;
        let mut buffered = BufReader::with_capacity(64 * 1024, handle);
        let mut offset_base = 0;
        let starts_with_bom = buffered.fill_buf().map(|b| b.starts_with(BOM)).unwrap_or(false);
        if starts_with_bom {
            buffered.consume(BOM.len());
            offset_base = BOM.len() as u64;
        }
        let mut reader = Reader::from_reader(buffered);
        reader.config_mut().trim_text(false);
        reader.config_mut().check_end_names = true;
        Ok(Self {
            reader,
            file: file.to_owned(),
            offset_base,
            buf: Vec::with_capacity(1024),
            path: Vec::with_capacity(16),
            text: String::new(),
            pending_close: false,
            empty_close: false,
        })
    }

    /// Bytes of the file consumed so far (including a byte order mark).
    pub fn position(&self) -> u64 {
        self.offset_base + self.reader.buffer_position()
    }

    /// The current path as `A/B/C`.
    pub fn path_text(&self) -> String {
        self.path.join("/")
    }

    /// True when the path ends with these local names.
    pub fn ends_with(&self, tail: &[&str]) -> bool {
        self.path.len() >= tail.len()
            && self.path[self.path.len() - tail.len()..].iter().zip(tail).all(|(a, b)| a == b)
    }

    /// The name of the innermost open element.
    pub fn current(&self) -> &str {
        self.path.last().map_or("", String::as_str)
    }

    /// An error at the current position.
    pub fn error(&self, message: impl Into<String>) -> XmlError {
        XmlError {
            file: self.file.clone(),
            line: line_of(&self.file, self.position()),
            element: self.path_text(),
            message: message.into(),
        }
    }

    /// Advances to the next element start or end.
    pub fn step(&mut self) -> Result<Step, XmlError> {
        if self.pending_close {
            self.pending_close = false;
            self.path.pop();
        }
        if self.empty_close {
            // `<a/>`: report its close right after its open.
            self.empty_close = false;
            self.text.clear();
            self.pending_close = true;
            return Ok(Step::Close);
        }
        self.text.clear();
        loop {
            self.buf.clear();
            let event = match self.reader.read_event_into(&mut self.buf) {
                Ok(event) => event,
                Err(e) => return Err(self.error(format!("malformed XML: {e}"))),
            };
            match event {
                Event::Start(e) => {
                    let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                    self.path.push(name);
                    return Ok(Step::Open);
                }
                Event::Empty(e) => {
                    let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                    self.path.push(name);
                    self.empty_close = true;
                    return Ok(Step::Open);
                }
                Event::End(_) => {
                    self.pending_close = true;
                    return Ok(Step::Close);
                }
                Event::Text(t) => {
                    let text = t.unescape().map(|c| c.into_owned()).map_err(|e| e.to_string());
                    match text {
                        Ok(text) => self.text.push_str(&text),
                        Err(e) => return Err(self.error(format!("malformed text: {e}"))),
                    }
                }
                Event::CData(c) => {
                    let inner = String::from_utf8(c.into_inner().into_owned());
                    match inner {
                        Ok(s) => self.text.push_str(&s),
                        Err(_) => return Err(self.error("CDATA section is not UTF-8")),
                    }
                }
                Event::Eof => {
                    if !self.path.is_empty() {
                        return Err(
                            self.error(format!("the file ends inside <{}>: it is truncated", self.current()))
                        );
                    }
                    return Ok(Step::Eof);
                }
                Event::Decl(_) | Event::PI(_) | Event::Comment(_) | Event::DocType(_) => {}
            }
        }
    }

    /// Skips the rest of the element that was just opened (its close is consumed).
    pub fn skip_current(&mut self) -> Result<(), XmlError> {
        let depth = self.path.len();
        loop {
            match self.step()? {
                Step::Close if self.path.len() == depth => return Ok(()),
                Step::Eof => return Ok(()),
                _ => {}
            }
        }
    }
}

/// 1-based line number of a byte offset, counted by reading the file again
/// (only done when reporting an error).
fn line_of(file: &Path, offset: u64) -> Option<u64> {
    let handle = File::open(file).ok()?;
    let mut reader = BufReader::new(handle).take(offset);
    let mut chunk = [0u8; 64 * 1024];
    let mut lines = 1u64;
    loop {
        let n = reader.read(&mut chunk).ok()?;
        if n == 0 {
            return Some(lines);
        }
        lines += chunk[..n].iter().filter(|&&b| b == b'\n').count() as u64;
    }
}
