//! Reading Docker's answers within their bounds (see [`super::limits`]): whole bodies,
//! newline-delimited JSON (`/events`) and the log stream, multiplexed or raw.

use bollard::container::LogOutput;
use bytes::{Buf, Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Body;

use super::{DockerError, ErrorKind, limits};

/// The error of an answer beyond its bound.
pub(super) fn too_large(what: &str, limit: usize) -> DockerError {
    DockerError::new(
        ErrorKind::TooLarge,
        format!(
            "{what}: answer larger than {}, the bound for this call",
            limits::display(limit)
        ),
    )
}

/// Reads a whole body of at most `limit` bytes. A `Content-Length` above it fails before
/// reading; a body growing past it fails as soon as it does. The pieces are kept as they
/// come and joined once at the end: growing one buffer instead would copy it at each
/// doubling and hold up to twice the bound just before failing.
pub(super) async fn whole<B>(mut body: B, limit: usize, what: &str) -> Result<Bytes, DockerError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::error::Error + 'static,
{
    if body.size_hint().lower() > limit as u64 {
        return Err(too_large(what, limit));
    }
    let mut pieces: Vec<Bytes> = Vec::new();
    let mut len = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| DockerError::classify(&e))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        len += data.len();
        if len > limit {
            return Err(too_large(what, limit));
        }
        if !data.is_empty() {
            pieces.push(data);
        }
    }
    Ok(match pieces.len() {
        0 => Bytes::new(),
        1 => pieces.swap_remove(0),
        _ => {
            let mut joined = Vec::with_capacity(len);
            for p in pieces {
                joined.extend_from_slice(&p);
            }
            Bytes::from(joined)
        }
    })
}

/// Reads a body holding a JSON array and decodes its elements as they arrive: the text of
/// one element at most `max_item` bytes, the answer at most `max_total`. Unlike [`whole`],
/// a long list is never held as text in whole, only the current element.
pub(super) async fn json_array<B, T>(
    mut body: B,
    max_item: usize,
    max_total: usize,
    what: &str,
) -> Result<Vec<T>, DockerError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::error::Error + 'static,
    T: serde::de::DeserializeOwned,
{
    if body.size_hint().lower() > max_total as u64 {
        return Err(too_large(what, max_total));
    }
    let mut split = ArraySplitter::new(max_item);
    let mut items = Vec::new();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| DockerError::classify(&e))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        total += data.len();
        if total > max_total {
            return Err(too_large(what, max_total));
        }
        split
            .push(&data, |item| {
                let v = serde_json::from_slice(item)
                    .map_err(|e| DockerError::new(ErrorKind::Decode, e.to_string()))?;
                items.push(v);
                Ok(())
            })
            .map_err(|e| DockerError {
                message: format!("{what}: {}", e.message),
                ..e
            })?;
    }
    split
        .finish()
        .map_err(|e| DockerError::new(e.kind, format!("{what}: {}", e.message)))?;
    Ok(items)
}

/// Where [`ArraySplitter`] is in the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    /// Before the opening `[`.
    Start,
    /// Between elements: whitespace, `,` or the closing `]`.
    Between,
    /// Inside an element.
    Item,
    /// After the closing `]`.
    End,
}

/// Cuts a JSON array into the text of its elements as the bytes come, tracking only nesting
/// and strings (serde checks the rest when it decodes each element).
#[derive(Debug)]
pub(super) struct ArraySplitter {
    at: At,
    /// The current element's text so far.
    item: Vec<u8>,
    depth: usize,
    in_string: bool,
    escaped: bool,
    max_item: usize,
}

impl ArraySplitter {
    pub(super) fn new(max_item: usize) -> ArraySplitter {
        ArraySplitter {
            at: At::Start,
            item: Vec::new(),
            depth: 0,
            in_string: false,
            escaped: false,
            max_item,
        }
    }

    /// Feeds the next piece of the answer; `each` gets the text of every element completed.
    pub(super) fn push(
        &mut self,
        chunk: &[u8],
        mut each: impl FnMut(&[u8]) -> Result<(), DockerError>,
    ) -> Result<(), DockerError> {
        let mut i = 0;
        while let Some(&b) = chunk.get(i) {
            match self.at {
                At::Start | At::End if b.is_ascii_whitespace() => i += 1,
                At::Start if b == b'[' => {
                    self.at = At::Between;
                    i += 1;
                }
                At::Start | At::End => return Err(not_a_list("something other than one list")),
                At::Between if b.is_ascii_whitespace() || b == b',' => i += 1,
                At::Between if b == b']' => {
                    self.at = At::End;
                    i += 1;
                }
                At::Between => {
                    self.at = At::Item;
                    (self.depth, self.in_string, self.escaped) = (0, false, false);
                }
                At::Item => {
                    let (used, done) = self.scan(&chunk[i..])?;
                    if self.item.len() + used > self.max_item {
                        return Err(too_large("one element of the list", self.max_item));
                    }
                    self.item.extend_from_slice(&chunk[i..i + used]);
                    i += used;
                    if done {
                        each(&self.item)?;
                        self.item.clear();
                        // The `,` or `]` that ended it is read as between elements.
                        self.at = At::Between;
                    }
                }
            }
        }
        Ok(())
    }

    /// How many bytes of `rest` belong to the current element, and whether it ends there.
    fn scan(&mut self, rest: &[u8]) -> Result<(usize, bool), DockerError> {
        let mut i = 0;
        while i < rest.len() {
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                    i += 1;
                    continue;
                }
                // The bulk of the text is inside strings: jump to what ends or escapes one.
                match rest[i..].iter().position(|&c| c == b'"' || c == b'\\') {
                    None => return Ok((rest.len(), false)),
                    Some(k) => {
                        i += k;
                        if rest[i] == b'\\' {
                            self.escaped = true;
                        } else {
                            self.in_string = false;
                        }
                    }
                }
            } else {
                match rest[i] {
                    b'"' => self.in_string = true,
                    b'{' | b'[' => self.depth += 1,
                    b'}' | b']' if self.depth > 0 => self.depth -= 1,
                    b',' | b']' if self.depth == 0 => return Ok((i, true)),
                    b'}' => return Err(not_a_list("an unbalanced `}`")),
                    _ => {}
                }
            }
            i += 1;
        }
        Ok((rest.len(), false))
    }

    /// At the end of the answer: the list must have been closed.
    pub(super) fn finish(&self) -> Result<(), DockerError> {
        if self.at == At::End {
            Ok(())
        } else {
            Err(not_a_list("an answer that ended inside the list"))
        }
    }
}

fn not_a_list(what: &str) -> DockerError {
    DockerError::new(
        ErrorKind::Decode,
        format!("expected a JSON list, got {what}"),
    )
}

/// Cuts a byte stream into lines of at most `max` bytes. Our own rather than a codec's: a
/// line that never ends must fail at `max`, not grow a buffer until memory runs out.
#[derive(Debug)]
pub(super) struct LineSplitter {
    buf: BytesMut,
    /// Bytes of `buf` already searched for a newline.
    scanned: usize,
    max: usize,
    what: &'static str,
}

impl LineSplitter {
    pub(super) fn new(max: usize, what: &'static str) -> LineSplitter {
        LineSplitter {
            buf: BytesMut::new(),
            scanned: 0,
            max,
            what,
        }
    }

    /// Adds the next piece of the stream; take the lines out before the next piece.
    pub(super) fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete line, without its newline; TooLarge once a line exceeds `max`.
    pub(super) fn next_line(&mut self) -> Result<Option<Bytes>, DockerError> {
        match self.buf[self.scanned..].iter().position(|&b| b == b'\n') {
            Some(i) => {
                let end = self.scanned + i;
                if end > self.max {
                    return Err(too_large(self.what, self.max));
                }
                let mut line = self.buf.split_to(end + 1);
                line.truncate(end);
                self.scanned = 0;
                Ok(Some(line.freeze()))
            }
            None if self.buf.len() > self.max => Err(too_large(self.what, self.max)),
            None => {
                self.scanned = self.buf.len();
                Ok(None)
            }
        }
    }

    /// At the end of the stream: a last line without newline, if any.
    pub(super) fn finish(&mut self) -> Option<Bytes> {
        self.scanned = 0;
        (!self.buf.is_empty()).then(|| self.buf.split().freeze())
    }
}

/// How a log answer is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// Docker's multiplexed stream: each frame an 8-byte header (stream, three zero bytes,
    /// u32 big-endian length) and its payload. A container without a TTY.
    Multiplexed,
    /// The bare output of a container with a TTY.
    Raw,
    /// Not known from the answer's head (API < 1.42 labels both `raw-stream`): decided by
    /// the first bytes, which only a multiplexed stream starts with `0|1|2, 0, 0, 0`.
    Sniff,
}

/// Cuts a log answer into frames of at most `max` bytes. Our own rather than bollard's
/// decoder: that one waits for a frame of any length the header announces (up to 4 GiB)
/// and for a raw line of any length.
#[derive(Debug)]
pub(super) struct LogDemux {
    buf: BytesMut,
    framing: Framing,
    max: usize,
}

const HEADER: usize = 8;

impl LogDemux {
    pub(super) fn new(framing: Framing, max: usize) -> LogDemux {
        LogDemux {
            buf: BytesMut::new(),
            framing,
            max,
        }
    }

    /// Adds the next piece of the answer; take the frames out before the next piece.
    pub(super) fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete frame, if the bytes so far hold one.
    pub(super) fn next_frame(&mut self) -> Result<Option<LogOutput>, DockerError> {
        if self.framing == Framing::Sniff {
            self.sniff(false);
        }
        match self.framing {
            Framing::Sniff => Ok(None),
            Framing::Raw => Ok(self.raw()),
            Framing::Multiplexed => self.multiplexed(),
        }
    }

    /// At the end of the answer: what is left, a frame at a time (call until None). A
    /// multiplexed answer must end on a frame boundary; raw output is passed on as it is.
    pub(super) fn finish(&mut self) -> Result<Option<LogOutput>, DockerError> {
        if self.framing == Framing::Sniff {
            self.sniff(true);
        }
        match self.next_frame()? {
            Some(frame) => Ok(Some(frame)),
            None if self.buf.is_empty() => Ok(None),
            None => Err(DockerError::new(
                ErrorKind::Decode,
                format!(
                    "log answer ended inside a frame ({} bytes left)",
                    self.buf.len()
                ),
            )),
        }
    }

    /// Decides the framing as soon as the first bytes allow (at the end, with what is there).
    fn sniff(&mut self, at_end: bool) {
        let b = &self.buf[..self.buf.len().min(4)];
        let could_be_header = match b.split_first() {
            None => true,
            Some((first, rest)) => *first <= 2 && rest.iter().all(|&z| z == 0),
        };
        if !could_be_header || (at_end && self.buf.len() < HEADER) {
            self.framing = Framing::Raw;
        } else if self.buf.len() >= HEADER {
            self.framing = Framing::Multiplexed;
        }
    }

    fn raw(&mut self) -> Option<LogOutput> {
        if self.buf.is_empty() {
            return None;
        }
        let n = self.buf.len().min(self.max);
        Some(LogOutput::Console {
            message: self.buf.split_to(n).freeze(),
        })
    }

    fn multiplexed(&mut self) -> Result<Option<LogOutput>, DockerError> {
        let Some(header) = self.buf.get(..HEADER) else {
            return Ok(None);
        };
        let stream = header[0];
        let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if len > self.max {
            return Err(too_large("log frame", self.max));
        }
        if self.buf.len() - HEADER < len {
            return Ok(None);
        }
        self.buf.advance(HEADER);
        let message = self.buf.split_to(len).freeze();
        match stream {
            0 => Ok(Some(LogOutput::StdIn { message })),
            1 => Ok(Some(LogOutput::StdOut { message })),
            2 => Ok(Some(LogOutput::StdErr { message })),
            // stdcopy's `Systemerr`: the daemon reports a failure in band.
            3 => Err(DockerError::new(
                ErrorKind::ApiError,
                String::from_utf8_lossy(&message).trim().to_string(),
            )),
            other => Err(DockerError::new(
                ErrorKind::Decode,
                format!("log frame of unknown stream {other}"),
            )),
        }
    }
}

#[cfg(test)]
mod tests;
