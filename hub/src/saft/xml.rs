//! A minimal streaming XML writer: escaped text, indentation, and lengths cut to
//! the schema's limits (counted in characters).

use std::io::{BufWriter, Write};

/// Writes elements to a buffered output.
pub struct XmlWriter<W: Write> {
    out: BufWriter<W>,
    depth: usize,
}

/// Escapes text for element content, dropping characters XML 1.0 cannot carry.
pub fn escape(text: &str, max_chars: usize, out: &mut String) {
    for c in text.trim().chars().take(max_chars) {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\t' | '\n' | '\r' => out.push(' '),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => {}
            c => out.push(c),
        }
    }
}

impl<W: Write> XmlWriter<W> {
    /// A writer with a 64 KiB buffer.
    pub fn new(out: W) -> Self {
        Self { out: BufWriter::with_capacity(64 * 1024, out), depth: 0 }
    }

    fn indent(&mut self) -> std::io::Result<()> {
        for _ in 0..self.depth {
            self.out.write_all(b"  ")?;
        }
        Ok(())
    }

    /// The XML declaration.
    pub fn declaration(&mut self) -> std::io::Result<()> {
        self.out.write_all(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n")
    }

    /// The root element with its default namespace.
    pub fn open_root(&mut self, name: &str, namespace: &str) -> std::io::Result<()> {
        writeln!(self.out, "<{name} xmlns=\"{namespace}\">")?;
        self.depth += 1;
        Ok(())
    }

    /// Opens an element.
    pub fn open(&mut self, name: &str) -> std::io::Result<()> {
        self.indent()?;
        writeln!(self.out, "<{name}>")?;
        self.depth += 1;
        Ok(())
    }

    /// Closes an element.
    pub fn close(&mut self, name: &str) -> std::io::Result<()> {
        self.depth = self.depth.saturating_sub(1);
        self.indent()?;
        writeln!(self.out, "</{name}>")
    }

    /// An element with text, cut to `max_chars`.
    pub fn leaf(&mut self, name: &str, text: &str, max_chars: usize) -> std::io::Result<()> {
        let mut escaped = String::with_capacity(text.len() + 8);
        escape(text, max_chars, &mut escaped);
        self.indent()?;
        writeln!(self.out, "<{name}>{escaped}</{name}>")
    }

    /// An element when the value is present.
    pub fn opt_leaf(&mut self, name: &str, text: Option<&str>, max_chars: usize) -> std::io::Result<()> {
        match text.filter(|t| !t.trim().is_empty()) {
            Some(t) => self.leaf(name, t, max_chars),
            None => Ok(()),
        }
    }

    /// Flushes the output.
    pub fn finish(mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_cuts_by_characters() {
        let mut s = String::new();
        escape(" Ærlig & <godt>\u{1} ", 20, &mut s);
        assert_eq!(s, "Ærlig &amp; &lt;godt&gt;");
        let mut cut = String::new();
        escape("ØØØØ", 2, &mut cut);
        assert_eq!(cut, "ØØ");
    }
}
