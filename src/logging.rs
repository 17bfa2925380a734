//! Logging to stderr that never blocks the process and never panics.
//!
//! tracing-subscriber's fmt layer writes each event to its writer on the thread that logs,
//! and reports a failed write with `eprintln!`, which panics when stderr is closed
//! (`dockstat-exporter … 2>&1 | head`): the task that logged dies, and if it was the one
//! that reacts to SIGTERM the process never stops. A stderr pipe nobody reads would block
//! every thread that logs. So events go into a bounded queue that a thread of its own writes
//! to stderr; a full queue drops the line (and says so once it drains), a failed write is
//! ignored, and shutdown waits for the queue at most a second.
//!
//! The same goes for the few lines the command line prints itself: [`out`] and [`err`]
//! never panic on a closed stdout or stderr.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use tracing_subscriber::fmt::MakeWriter;

/// Lines the queue holds before new ones are dropped.
const QUEUE_LINES: usize = 16 * 1024;

/// What the writer thread is sent.
enum Msg {
    /// One formatted event.
    Line(Vec<u8>),
    /// Write everything queued so far, then answer.
    Flush(SyncSender<()>),
}

/// The `MakeWriter` of the fmt layer: hands each event to the writer thread.
#[derive(Clone)]
pub struct QueuedStderr {
    tx: SyncSender<Msg>,
    dropped: Arc<AtomicU64>,
}

/// Kept by `main` for the life of the process: [`LogGuard::flush`] at exit.
pub struct LogGuard {
    tx: SyncSender<Msg>,
}

impl QueuedStderr {
    /// Starts the writer thread. Without a thread (the system refused one) events are
    /// written directly, ignoring errors.
    pub fn start() -> (QueuedStderr, LogGuard) {
        QueuedStderr::start_with(Box::new(std::io::stderr()))
    }

    fn start_with(mut sink: Box<dyn Write + Send>) -> (QueuedStderr, LogGuard) {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Msg>(QUEUE_LINES);
        let dropped = Arc::new(AtomicU64::new(0));
        let counter = dropped.clone();
        let spawned = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || write_lines(&rx, &mut *sink, &counter));
        if let Err(e) = spawned {
            let _ = writeln!(std::io::stderr(), "cannot start the log writer thread: {e}");
        }
        (
            QueuedStderr {
                tx: tx.clone(),
                dropped,
            },
            LogGuard { tx },
        )
    }
}

fn write_lines(rx: &Receiver<Msg>, sink: &mut dyn Write, dropped: &AtomicU64) {
    while let Ok(msg) = rx.recv() {
        let lost = dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            let _ = writeln!(
                sink,
                "({lost} log lines dropped: stderr was not keeping up)"
            );
        }
        match msg {
            // A closed or broken stderr is not our problem to report: there is nowhere to.
            Msg::Line(line) => {
                let _ = sink.write_all(&line);
            }
            Msg::Flush(done) => {
                let _ = sink.flush();
                let _ = done.try_send(());
            }
        }
    }
}

impl LogGuard {
    /// Waits until what was logged so far is written, for at most `within`.
    pub fn flush(&self, within: Duration) {
        let deadline = Instant::now() + within;
        let (done_tx, done_rx) = std::sync::mpsc::sync_channel(1);
        let mut msg = Msg::Flush(done_tx);
        loop {
            match self.tx.try_send(msg) {
                Ok(()) => break,
                Err(TrySendError::Full(m)) if Instant::now() < deadline => {
                    msg = m;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => return,
            }
        }
        let _ = done_rx.recv_timeout(deadline.saturating_duration_since(Instant::now()));
    }
}

/// One event's writer: queued whole, never blocking.
pub struct QueuedLine<'a>(&'a QueuedStderr);

impl Write for QueuedLine<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.0.tx.try_send(Msg::Line(buf.to_vec())) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.0.dropped.fetch_add(1, Ordering::Relaxed);
            }
            // No writer thread: write here, still never failing.
            Err(TrySendError::Disconnected(_)) => {
                let _ = std::io::stderr().write_all(buf);
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for QueuedStderr {
    type Writer = QueuedLine<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        QueuedLine(self)
    }
}

/// Prints to stdout; a closed stdout is ignored instead of panicking as `print!` does.
pub fn out(text: std::fmt::Arguments<'_>) {
    let _ = std::io::stdout().lock().write_fmt(text);
}

/// Prints to stderr; a closed stderr is ignored instead of panicking as `eprint!` does.
pub fn err(text: std::fmt::Arguments<'_>) {
    let _ = std::io::stderr().lock().write_fmt(text);
}

/// `println!` that never panics (see [`out`]).
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => { $crate::logging::out(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `eprintln!` that never panics (see [`err`]).
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => { $crate::logging::err(format_args!("{}\n", format_args!($($arg)*))) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    use crate::lock::MutexExt;

    /// A sink that records what it is given, or fails every write.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>, bool);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.1 {
                return Err(std::io::ErrorKind::BrokenPipe.into());
            }
            self.0.locked().extend(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_reach_the_sink_in_order_and_flush_waits_for_them() {
        let sink = Sink::default();
        let (w, guard) = QueuedStderr::start_with(Box::new(sink.clone()));
        for i in 0..100 {
            let _ = writeln!(w.make_writer(), "line {i}");
        }
        guard.flush(Duration::from_secs(5));
        let text = String::from_utf8(sink.0.lock().expect("lock").clone()).expect("utf-8");
        let expected: String = (0..100).map(|i| format!("line {i}\n")).collect();
        assert_eq!(text, expected);
    }

    #[test]
    fn a_broken_sink_neither_fails_nor_blocks_the_logger() {
        let (w, guard) = QueuedStderr::start_with(Box::new(Sink(Arc::default(), true)));
        let started = Instant::now();
        for _ in 0..(QUEUE_LINES * 2) {
            assert!(writeln!(w.make_writer(), "x").is_ok());
        }
        guard.flush(Duration::from_secs(1));
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
