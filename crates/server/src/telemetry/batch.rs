//! The log writer: request workers append their lines to a shared buffer, and
//! one thread writes what has gathered, a batch at a time.
//!
//! Why not `tracing-appender`'s non-blocking writer: it hands every line to its
//! thread through a channel and wakes the thread for it, so each request's log
//! line cost the process about two `futex` calls, three or four `sched_yield`
//! calls (the thread spinning before it sleeps), two context switches and a
//! `write` (measured with `perf stat` under the benchmark's load). Here a
//! worker copies its line under a mutex held for that copy only; the thread is
//! woken once per batch, waits [`GATHER`] for more lines, and writes them with
//! one system call.
//!
//! - Nothing is dropped: when [`MAX_PENDING`] bytes are waiting (the collector
//!   has stopped reading), workers wait for the thread to take them.
//! - A slow collector delays the thread, never a worker, until that limit.
//! - Dropping the [`Flusher`] writes out every line still waiting.
//! - A line reaches the output at most about [`GATHER`] after it was logged.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How long the thread, once woken by a line, waits for others to join it.
pub(super) const GATHER: Duration = Duration::from_millis(5);
/// Waiting bytes at which workers start to wait for the thread.
pub(super) const MAX_PENDING: usize = 4 * 1024 * 1024;

#[derive(Default)]
struct Pending {
    lines: Vec<u8>,
    /// The thread sleeps until a line arrives.
    thread_asleep: bool,
    /// Workers wait for room.
    workers_waiting: bool,
    closed: bool,
}

#[derive(Default)]
struct Shared {
    pending: Mutex<Pending>,
    /// Wakes the thread: a first line, or closing.
    line_arrived: Condvar,
    /// Wakes waiting workers: the thread has taken the lines.
    room: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A panic elsewhere while holding the lock leaves whole lines behind:
        // the buffer is still usable.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The `MakeWriter` for the subscriber; cheap to clone.
#[derive(Clone)]
pub(super) struct BatchWriter {
    shared: Arc<Shared>,
}

/// Keeps the thread; dropping it writes out what is waiting and stops it.
pub(super) struct Flusher {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// Starts the thread writing to `output`.
pub(super) fn start<W: Write + Send + 'static>(output: W) -> io::Result<(BatchWriter, Flusher)> {
    let shared = Arc::new(Shared::default());
    let thread = std::thread::Builder::new()
        .name("log-writer".into())
        .spawn({
            let shared = shared.clone();
            move || run(&shared, output)
        })?;
    Ok((
        BatchWriter {
            shared: shared.clone(),
        },
        Flusher {
            shared,
            thread: Some(thread),
        },
    ))
}

fn run<W: Write>(shared: &Shared, mut output: W) {
    let mut batch = Vec::new();
    let mut failed = false;
    loop {
        let closed = {
            let mut pending = shared.lock();
            while pending.lines.is_empty() && !pending.closed {
                pending.thread_asleep = true;
                pending = shared
                    .line_arrived
                    .wait(pending)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            if !pending.closed {
                drop(pending);
                #[allow(clippy::disallowed_methods)] // The log thread, not a runtime worker.
                std::thread::sleep(GATHER);
                pending = shared.lock();
            }
            std::mem::swap(&mut batch, &mut pending.lines);
            if std::mem::take(&mut pending.workers_waiting) {
                shared.room.notify_all();
            }
            pending.closed
        };
        if let Err(e) = output.write_all(&batch).and_then(|()| output.flush()) {
            if !failed {
                eprintln!("log lines lost: cannot write to the log output: {e}");
            }
            failed = true;
        }
        batch.clear();
        if closed && shared.lock().lines.is_empty() {
            return;
        }
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.line_arrived.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl BatchWriter {
    fn append(&self, line: &[u8]) {
        let mut pending = self.shared.lock();
        while pending.lines.len() >= MAX_PENDING && !pending.closed {
            pending.workers_waiting = true;
            pending = self
                .shared
                .room
                .wait(pending)
                .unwrap_or_else(PoisonError::into_inner);
        }
        pending.lines.extend_from_slice(line);
        if std::mem::take(&mut pending.thread_asleep) {
            self.shared.line_arrived.notify_one();
        }
    }
}

impl Write for &BatchWriter {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        self.append(line);
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchWriter {
    type Writer = &'a BatchWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // Plain threads: no async runtime here.
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Instant;

    use super::*;

    /// An output the test can read, and can hold up.
    #[derive(Clone, Default)]
    struct Output {
        written: Arc<Mutex<Vec<u8>>>,
        writes: Arc<Mutex<usize>>,
        stalled: Arc<AtomicBool>,
    }

    impl Write for Output {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            while self.stalled.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(1));
            }
            self.written.lock().unwrap().extend_from_slice(buf);
            *self.writes.lock().unwrap() += 1;
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Output {
        fn text(&self) -> String {
            String::from_utf8(self.written.lock().unwrap().clone()).unwrap()
        }
    }

    fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn lines_arrive_whole_in_order_and_soon_without_a_flush() {
        let output = Output::default();
        let (writer, _flusher) = start(output.clone()).unwrap();
        let expected: String = (0..100).map(|i| format!("line {i}\n")).collect();
        for i in 0..100 {
            (&writer)
                .write_all(format!("line {i}\n").as_bytes())
                .unwrap();
        }
        wait_for("the lines", || output.text() == expected);
        // Gathered into far fewer writes than lines.
        assert!(*output.writes.lock().unwrap() < 100);
    }

    #[test]
    fn dropping_the_flusher_writes_out_what_waits() {
        let output = Output::default();
        let (writer, flusher) = start(output.clone()).unwrap();
        output.stalled.store(true, Ordering::SeqCst);
        (&writer).write_all(b"first\n").unwrap();
        // The thread takes "first" and is held up writing it; "second" waits.
        wait_for("the thread to take the first line", || {
            writer.shared.lock().lines.is_empty()
        });
        (&writer).write_all(b"second\n").unwrap();
        output.stalled.store(false, Ordering::SeqCst);
        drop(flusher);
        assert_eq!(output.text(), "first\nsecond\n");
    }

    #[test]
    fn a_stalled_output_makes_workers_wait_instead_of_dropping_lines() {
        let output = Output::default();
        let (writer, flusher) = start(output.clone()).unwrap();
        output.stalled.store(true, Ordering::SeqCst);
        let line = vec![b'x'; 1023]
            .into_iter()
            .chain([b'\n'])
            .collect::<Vec<u8>>();
        // Enough to fill the buffer while the thread is held up, and more.
        let lines = MAX_PENDING / line.len() * 2 + 10;
        let worker = std::thread::spawn({
            let writer = writer.clone();
            let line = line.clone();
            move || {
                for _ in 0..lines {
                    (&writer).write_all(&line).unwrap();
                }
            }
        });
        wait_for("the worker to wait for room", || {
            writer.shared.lock().workers_waiting
        });
        assert!(!worker.is_finished());
        assert!(writer.shared.lock().lines.len() <= MAX_PENDING + line.len());
        output.stalled.store(false, Ordering::SeqCst);
        worker.join().unwrap();
        drop(flusher);
        assert_eq!(output.written.lock().unwrap().len(), lines * line.len());
    }

    #[test]
    fn an_output_that_fails_loses_lines_but_never_blocks_workers() {
        struct Closed;
        impl Write for Closed {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::from(io::ErrorKind::BrokenPipe))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let (writer, flusher) = start(Closed).unwrap();
        for _ in 0..(MAX_PENDING / 1000 * 3) {
            (&writer).write_all(&[b'y'; 1000]).unwrap();
        }
        drop(flusher);
    }
}
