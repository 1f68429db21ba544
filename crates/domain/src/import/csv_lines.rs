//! Splitting a byte stream into CSV records, one record per line.
//!
//! Forwarding rules never need a newline inside a field, so a record is a line; that
//! keeps line numbers exact for error reports and memory bounded by the longest line.

/// Longest line accepted; longer lines are reported and skipped.
pub const MAX_LINE: usize = 16 * 1024;

/// What one complete line turned into.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// The fields of the line (RFC 4180 quoting undone).
    Fields(Vec<String>),
    /// Only whitespace.
    Blank,
    /// The line could not be read as CSV; the text says why.
    Malformed(&'static str),
}

/// Cuts incoming chunks into lines, carrying a partial line between chunks.
#[derive(Debug, Default)]
pub struct LineSplitter {
    partial: Vec<u8>,
    overflow: bool,
    line_number: u64,
}

impl LineSplitter {
    /// Feeds a chunk; calls `on_line(line_number, line)` for every line it completes.
    pub fn feed(&mut self, mut chunk: &[u8], mut on_line: impl FnMut(u64, Line)) {
        while let Some(newline) = chunk.iter().position(|&b| b == b'\n') {
            self.push(&chunk[..newline]);
            self.complete(&mut on_line);
            chunk = &chunk[newline + 1..];
        }
        self.push(chunk);
    }

    /// Ends the input; a last line without a newline is still a line.
    pub fn finish(&mut self, mut on_line: impl FnMut(u64, Line)) {
        if !self.partial.is_empty() || self.overflow {
            self.complete(&mut on_line);
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        if self.partial.len() + bytes.len() > MAX_LINE {
            self.overflow = true;
        } else if !self.overflow {
            self.partial.extend_from_slice(bytes);
        }
    }

    fn complete(&mut self, on_line: &mut impl FnMut(u64, Line)) {
        self.line_number += 1;
        let line = if std::mem::take(&mut self.overflow) {
            Line::Malformed("the line is longer than 16 KiB")
        } else {
            parse_line(&self.partial)
        };
        self.partial.clear();
        on_line(self.line_number, line);
    }
}

fn parse_line(raw: &[u8]) -> Line {
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    let Ok(text) = std::str::from_utf8(raw) else {
        return Line::Malformed("the line is not valid UTF-8");
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim().is_empty() {
        return Line::Blank;
    }
    split_fields(text).map_or_else(Line::Malformed, Line::Fields)
}

fn split_fields(text: &str) -> Result<Vec<String>, &'static str> {
    let mut fields = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        let mut field = String::new();
        while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
            chars.next();
        }
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => return Err("a quoted field is not closed on its line"),
                }
            }
            while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
                chars.next();
            }
            if chars.peek().is_some_and(|c| *c != ',') {
                return Err("text follows a closing quote");
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                field.push(c);
                chars.next();
            }
            field = field.trim_end().to_owned();
        }
        fields.push(field);
        if chars.next().is_none() {
            return Ok(fields);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(chunks: &[&[u8]]) -> Vec<(u64, Line)> {
        let mut out = Vec::new();
        let mut splitter = LineSplitter::default();
        for chunk in chunks {
            splitter.feed(chunk, |n, l| out.push((n, l)));
        }
        splitter.finish(|n, l| out.push((n, l)));
        out
    }

    fn fields(v: &[&str]) -> Line {
        Line::Fields(v.iter().map(|s| (*s).to_owned()).collect())
    }

    #[test]
    fn lines_across_chunk_boundaries_keep_their_numbers() {
        let got = lines(&[
            b"email,for",
            b"ward\r\na@x.test, b@y.test\n\n",
            b"c@x.test,\"d@y.test;e@y.test\"",
        ]);
        assert_eq!(
            got,
            vec![
                (1, fields(&["email", "forward"])),
                (2, fields(&["a@x.test", "b@y.test"])),
                (3, Line::Blank),
                (4, fields(&["c@x.test", "d@y.test;e@y.test"])),
            ]
        );
    }

    #[test]
    fn quoting_rules() {
        assert_eq!(
            parse_line(b"\"a \"\"q\"\" b\",c"),
            fields(&["a \"q\" b", "c"])
        );
        assert_eq!(
            parse_line(b"\"open,c"),
            Line::Malformed("a quoted field is not closed on its line")
        );
        assert_eq!(
            parse_line(b"\"a\"b,c"),
            Line::Malformed("text follows a closing quote")
        );
        assert_eq!(
            parse_line(b"\xef\xbb\xbfemail,forward"),
            fields(&["email", "forward"])
        );
        assert_eq!(
            parse_line(b"a,\xff"),
            Line::Malformed("the line is not valid UTF-8")
        );
        assert_eq!(parse_line(b"a,"), fields(&["a", ""]));
    }

    #[test]
    fn overlong_lines_are_reported_not_buffered() {
        let long = vec![b'a'; MAX_LINE + 10];
        let got = lines(&[&long, b"\nx,y\n"]);
        assert_eq!(
            got,
            vec![
                (1, Line::Malformed("the line is longer than 16 KiB")),
                (2, fields(&["x", "y"]))
            ]
        );
    }
}
