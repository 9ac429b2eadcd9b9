//! Splitting a byte stream that arrives in arbitrary chunks into lines (NDJSON, server-sent events).

/// Turns chunks of bytes into complete lines, whatever the chunk boundaries: a line, or even one UTF-8
/// character, may be split over several chunks. Lines end at `\n`; a `\r` before it is removed. Bytes that are
/// not UTF-8 are replaced (lossy decoding), so a bad byte costs one character, not the stream.
///
/// ```
/// use obra_plugin_sdk::LineSplitter;
///
/// let mut splitter = LineSplitter::new();
/// assert!(splitter.push(b"{\"a\":").is_empty());
/// assert_eq!(splitter.push(b"1}\r\n{\"b\""), vec!["{\"a\":1}".to_string()]);
/// assert_eq!(splitter.push(b":2}\n"), vec!["{\"b\":2}".to_string()]);
/// assert_eq!(splitter.finish(), None);
/// ```
#[derive(Debug, Default, Clone)]
pub struct LineSplitter {
    buf: Vec<u8>,
}

impl LineSplitter {
    /// An empty splitter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a chunk; returns the lines it completed, in order, without their line endings.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        let mut lines = Vec::new();
        let mut searched = self.buf.len();
        self.buf.extend_from_slice(chunk);
        let mut start = 0;
        while let Some(pos) = self.buf[searched..].iter().position(|&b| b == b'\n') {
            let end = searched + pos;
            lines.push(decode_line(&self.buf[start..end]));
            start = end + 1;
            searched = start;
        }
        self.buf.drain(..start);
        lines
    }

    /// The bytes after the last line ending, as a final line, if there are any (a stream that does not end
    /// with a newline). Leaves the splitter empty.
    pub fn finish(&mut self) -> Option<String> {
        if self.buf.is_empty() {
            None
        } else {
            let line = decode_line(&self.buf);
            self.buf.clear();
            Some(line)
        }
    }

    /// How many bytes of an incomplete line are buffered.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

fn decode_line(bytes: &[u8]) -> String {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    String::from_utf8_lossy(bytes).into_owned()
}

/// The payload of a server-sent-events `data:` line (one optional space after the colon is removed), or `None`
/// for any other line (comments, `event:`, `id:`, blank separators).
///
/// ```
/// use obra_plugin_sdk::sse_data;
/// assert_eq!(sse_data("data: {\"x\":1}"), Some("{\"x\":1}"));
/// assert_eq!(sse_data("data:[DONE]"), Some("[DONE]"));
/// assert_eq!(sse_data("event: ping"), None);
/// assert_eq!(sse_data(": keep-alive"), None);
/// ```
pub fn sse_data(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("data:")?;
    Some(rest.strip_prefix(' ').unwrap_or(rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_all(chunks: &[&[u8]]) -> Vec<String> {
        let mut s = LineSplitter::new();
        let mut out: Vec<String> = chunks.iter().flat_map(|c| s.push(c)).collect();
        out.extend(s.finish());
        out
    }

    #[test]
    fn every_chunking_of_a_stream_gives_the_same_lines() {
        let stream = "{\"message\":{\"content\":\"h\u{e9}llo \u{1F600}\"}}\r\n\n{\"done\":true}\nlast".as_bytes();
        let expected = split_all(&[stream]);
        assert_eq!(
            expected,
            vec![
                "{\"message\":{\"content\":\"h\u{e9}llo \u{1F600}\"}}".to_string(),
                String::new(),
                "{\"done\":true}".to_string(),
                "last".to_string()
            ]
        );
        for size in 1..stream.len() {
            let chunks: Vec<&[u8]> = stream.chunks(size).collect();
            assert_eq!(split_all(&chunks), expected, "chunk size {size}");
        }
    }

    #[test]
    fn sse_stream_split_inside_data_prefix() {
        let mut s = LineSplitter::new();
        let mut data = Vec::new();
        for chunk in [&b"da"[..], b"ta: {\"a\"", b":1}\n\nda", b"ta: [DONE]\n\n"] {
            for line in s.push(chunk) {
                data.extend(sse_data(&line).map(str::to_string));
            }
        }
        assert_eq!(data, vec!["{\"a\":1}", "[DONE]"]);
        assert_eq!(s.pending(), 0);
    }

    #[test]
    fn invalid_utf8_is_replaced_not_fatal() {
        assert_eq!(split_all(&[b"a\xffb\n"]), vec!["a\u{fffd}b".to_string()]);
    }
}
