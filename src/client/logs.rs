//! A container's log frames as lines: Docker's frames may hold part of a line or several,
//! per stream (stdout, stderr); [`LogLine`] is one line with its stream and timestamp.

use std::collections::VecDeque;

use bollard::container::LogOutput;
use futures_util::{Stream, StreamExt};
use serde::Serialize;

use crate::docker::DockerError;

/// Which log lines to read.
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    /// Last N lines only; None for all.
    pub tail: Option<u64>,
    /// Lines at or after this unix second.
    pub since: Option<i64>,
    /// Lines before this unix second.
    pub until: Option<i64>,
    /// Prefix each line with Docker's RFC 3339 timestamp (returned in `timestamp`).
    pub timestamps: bool,
    /// Include stdout (default true when neither is chosen).
    pub stdout: bool,
    /// Include stderr.
    pub stderr: bool,
    /// Keep streaming new lines until the reader goes away.
    pub follow: bool,
}

/// One log line with the stream it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LogLine {
    /// `stdout` or `stderr` (a TTY container's output is `stdout`).
    pub stream: &'static str,
    /// Docker's timestamp, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// The line, without its newline; invalid UTF-8 is replaced.
    pub line: String,
}

/// Splits Docker's log frames into lines per stream. A frame may hold part of a line or
/// several lines, so each stream keeps its unfinished tail until the newline comes; a tail
/// that outgrows `max_line` is passed on in pieces of that size rather than kept growing
/// (a TTY container's output is not framed, so nothing else bounds a line).
#[derive(Debug)]
struct LineSplitter {
    timestamps: bool,
    max_line: usize,
    stdout: Partial,
    stderr: Partial,
}

/// The unfinished tail of one stream.
#[derive(Debug, Default)]
struct Partial {
    buf: Vec<u8>,
    /// The line's start was already passed on (it outgrew the bound): no timestamp here.
    continued: bool,
}

impl Default for LineSplitter {
    fn default() -> LineSplitter {
        LineSplitter {
            timestamps: false,
            max_line: crate::docker::limits::LOG_FRAME,
            stdout: Partial::default(),
            stderr: Partial::default(),
        }
    }
}

impl LineSplitter {
    fn push(&mut self, frame: LogOutput, out: &mut VecDeque<LogLine>) {
        let (stream, bytes) = match frame {
            LogOutput::StdErr { message } => ("stderr", message),
            LogOutput::StdOut { message }
            | LogOutput::Console { message }
            | LogOutput::StdIn { message } => ("stdout", message),
        };
        let p = if stream == "stderr" {
            &mut self.stderr
        } else {
            &mut self.stdout
        };
        p.buf.extend_from_slice(&bytes);
        while let Some(i) = p.buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = p.buf.drain(..=i).collect();
            let ts = self.timestamps && !p.continued;
            out.push_back(make_line(stream, &line[..i], ts));
            p.continued = false;
        }
        while p.buf.len() >= self.max_line.max(1) {
            let piece: Vec<u8> = p.buf.drain(..self.max_line.max(1)).collect();
            let ts = self.timestamps && !p.continued;
            out.push_back(make_line(stream, &piece, ts));
            p.continued = true;
        }
    }

    fn finish(&mut self, out: &mut VecDeque<LogLine>) {
        for (stream, p) in [("stdout", &mut self.stdout), ("stderr", &mut self.stderr)] {
            if !p.buf.is_empty() {
                out.push_back(make_line(stream, &p.buf, self.timestamps && !p.continued));
                p.buf.clear();
            }
            p.continued = false;
        }
    }
}

fn make_line(stream: &'static str, raw: &[u8], timestamps: bool) -> LogLine {
    let text = String::from_utf8_lossy(raw);
    let text = text.strip_suffix('\r').unwrap_or(&text);
    let (timestamp, line) = match text.split_once(' ') {
        Some((ts, rest)) if timestamps => (Some(ts.to_string()), rest.to_string()),
        _ => (None, text.to_string()),
    };
    LogLine {
        stream,
        timestamp,
        line,
    }
}

/// Turns a stream of frames into a stream of lines.
pub(super) fn lines(
    frames: impl Stream<Item = Result<LogOutput, DockerError>> + Send + 'static,
    timestamps: bool,
) -> impl Stream<Item = Result<LogLine, DockerError>> + Send + 'static {
    let splitter = LineSplitter {
        timestamps,
        ..Default::default()
    };
    // State: frames, splitter, lines ready, an error to report after them, finished.
    futures_util::stream::unfold(
        (Box::pin(frames), splitter, VecDeque::new(), None, false),
        |(mut frames, mut splitter, mut ready, mut failed, mut done)| async move {
            loop {
                if let Some(line) = ready.pop_front() {
                    return Some((Ok(line), (frames, splitter, ready, failed, done)));
                }
                if let Some(e) = failed.take() {
                    return Some((Err(e), (frames, splitter, ready, None, true)));
                }
                if done {
                    return None;
                }
                match frames.next().await {
                    Some(Ok(frame)) => splitter.push(frame, &mut ready),
                    Some(Err(e)) => {
                        splitter.finish(&mut ready);
                        failed = Some(e);
                        done = true;
                    }
                    None => {
                        splitter.finish(&mut ready);
                        done = true;
                    }
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{stderr as err, stdout as out};

    #[test]
    fn frames_become_lines_per_stream() {
        let mut sp = LineSplitter::default();
        let mut q = VecDeque::new();
        sp.push(out("one\ntw"), &mut q);
        sp.push(err("e1\n"), &mut q);
        sp.push(out("o\nthree"), &mut q);
        sp.finish(&mut q);
        let got: Vec<(&str, String)> = q.into_iter().map(|l| (l.stream, l.line)).collect();
        assert_eq!(
            got,
            vec![
                ("stdout", "one".to_string()),
                ("stderr", "e1".to_string()),
                ("stdout", "two".to_string()),
                ("stdout", "three".to_string()),
            ]
        );
    }

    #[test]
    fn a_line_without_end_is_passed_on_in_bounded_pieces() {
        let lines = |timestamps: bool, frames: &[&str]| {
            let mut sp = LineSplitter {
                timestamps,
                max_line: 8,
                ..Default::default()
            };
            let mut q = VecDeque::new();
            for f in frames {
                sp.push(out(f), &mut q);
            }
            sp.finish(&mut q);
            q.into_iter()
                .map(|l| (l.timestamp, l.line))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            lines(false, &["abcdefghijkl", "m\n"]),
            vec![(None, "abcdefgh".to_string()), (None, "ijklm".to_string())]
        );
        // Only the start of a line carries its timestamp.
        assert_eq!(
            lines(true, &["2026 abcdefgh", "\n2027 x\n"]),
            vec![
                (Some("2026".to_string()), "abc".to_string()),
                (None, "defgh".to_string()),
                (Some("2027".to_string()), "x".to_string()),
            ]
        );
    }

    #[test]
    fn timestamps_are_split_off() {
        let mut sp = LineSplitter {
            timestamps: true,
            ..Default::default()
        };
        let mut q = VecDeque::new();
        sp.push(
            out("2026-11-29T04:00:00.123456789Z hello world\r\n"),
            &mut q,
        );
        let l = q.pop_front().expect("a line");
        assert_eq!(
            l.timestamp.as_deref(),
            Some("2026-11-29T04:00:00.123456789Z")
        );
        assert_eq!(l.line, "hello world");
    }
}
