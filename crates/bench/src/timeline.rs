//! Second by second through a fixed-rate phase: what the load generator saw
//! (calls, slow calls, how late flows started) next to what the machine was
//! doing (CPU of the service, of the load generator, of everything; time
//! taken by the hypervisor). A tail that percentiles only summarise can then be
//! placed: one bad second or a steady spread, the service or the machine.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::activity::{self, Activity, SAMPLE_EVERY};
use crate::load::Step;
use crate::processes::{POSTGRES, Processes};
use crate::report::TICKS_PER_SECOND;

/// A call slower than this counts as slow (the latency target's bound).
pub(crate) const SLOW: Duration = Duration::from_millis(10);

/// Below this steal (per cent of one core), a second counts as quiet.
pub(crate) const QUIET_STEAL: f64 = 5.0;

/// What the load generator saw in one second.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Calls {
    pub(crate) calls: u32,
    pub(crate) slow: u32,
    pub(crate) worst_us: u64,
    /// How late, at worst, a flow's task began after its scheduled start:
    /// the load generator's own delay, before any request is sent.
    pub(crate) worst_start_lag_us: u64,
}

/// Per second since `origin`, by when each call started: all calls, and
/// (calls, slow calls) of each step.
#[derive(Debug, Clone)]
pub(crate) struct Timeline {
    origin: Instant,
    pub(crate) seconds: Vec<Calls>,
    pub(crate) steps: BTreeMap<Step, Vec<[u32; 2]>>,
}

impl Timeline {
    pub(crate) fn new(origin: Instant) -> Self {
        Self {
            origin,
            seconds: Vec::new(),
            steps: BTreeMap::new(),
        }
    }

    fn index(&self, at: Instant) -> usize {
        at.saturating_duration_since(self.origin).as_secs() as usize
    }

    fn second(&mut self, at: Instant) -> &mut Calls {
        let i = self.index(at);
        if self.seconds.len() <= i {
            self.seconds.resize(i + 1, Calls::default());
        }
        &mut self.seconds[i]
    }

    pub(crate) fn call(&mut self, step: Step, started: Instant, took: Duration) {
        let micros = took.as_micros() as u64;
        let slow = u32::from(took > SLOW);
        let second = self.second(started);
        second.calls += 1;
        second.slow += slow;
        second.worst_us = second.worst_us.max(micros);
        let i = self.index(started);
        let counts = self.steps.entry(step).or_default();
        if counts.len() <= i {
            counts.resize(i + 1, [0, 0]);
        }
        counts[i][0] += 1;
        counts[i][1] += slow;
    }

    pub(crate) fn start_lag(&mut self, scheduled: Instant, lag: Duration) {
        let second = self.second(scheduled);
        second.worst_start_lag_us = second.worst_start_lag_us.max(lag.as_micros() as u64);
    }

    /// Adds `other`'s seconds to these (both from the same origin).
    pub(crate) fn merge(&mut self, other: &Timeline) {
        if self.seconds.len() < other.seconds.len() {
            self.seconds.resize(other.seconds.len(), Calls::default());
        }
        for (mine, theirs) in self.seconds.iter_mut().zip(&other.seconds) {
            mine.calls += theirs.calls;
            mine.slow += theirs.slow;
            mine.worst_us = mine.worst_us.max(theirs.worst_us);
            mine.worst_start_lag_us = mine.worst_start_lag_us.max(theirs.worst_start_lag_us);
        }
        for (step, theirs) in &other.steps {
            let mine = self.steps.entry(step).or_default();
            if mine.len() < theirs.len() {
                mine.resize(theirs.len(), [0, 0]);
            }
            for (m, t) in mine.iter_mut().zip(theirs) {
                m[0] += t[0];
                m[1] += t[1];
            }
        }
    }
}

/// The machine in one second, in per cent of one core (200 % is both cores
/// of a 2-core machine busy).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Machine {
    pub(crate) busy: f64,
    pub(crate) steal: f64,
    /// Hard and soft interrupts, part of busy: with tick-based accounting
    /// they are charged to whatever process the tick found running, or to
    /// none when a CPU was idle.
    pub(crate) interrupts: f64,
    /// TCP segments the machine retransmitted in the second, loopback
    /// included. Tail-loss probes count too: TCP sends one when it has seen
    /// no acknowledgement for about 10 ms, where on loopback one is due
    /// within microseconds.
    pub(crate) tcp_retransmits: u64,
    /// Major page faults in the second, the whole machine's (`pgmajfault`
    /// in /proc/vmstat): a process waited for a page read from disk, its
    /// code or a file it maps.
    pub(crate) major_faults: u64,
    /// File pages read back soon after the kernel evicted them
    /// (`workingset_refault_file`): the page cache, PostgreSQL's tables
    /// included, being trimmed while it is in use.
    pub(crate) file_refaults: u64,
    pub(crate) service: f64,
    pub(crate) load_generator: f64,
    /// PostgreSQL's processes together.
    pub(crate) postgres_cpu: f64,
    /// The process name, other than the service, the generator and
    /// PostgreSQL, that used the most CPU in the second, and how much (the
    /// other services idle in their turn count here too).
    pub(crate) busiest_other: Option<(String, f64)>,
    /// The longest a thread of the load generator that only sleeps
    /// [`HEARTBEAT`] at a time overslept in the second (ms): when it is as
    /// long as the generator's lag, the whole process went unscheduled (the
    /// machine or the kernel), not only its async runtime.
    pub(crate) generator_stall_ms: f64,
    /// PostgreSQL's background work in the second, when it could be read.
    pub(crate) postgres: Option<Background>,
}

/// PostgreSQL in one second: its backends' activity, sampled every
/// [`SAMPLE_EVERY`], and the buffers its checkpointer wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Background {
    pub(crate) activity: Activity,
    pub(crate) checkpoint_buffers: u64,
}

/// Buffers written by checkpoints since start-up, or `None` when the
/// statistics cannot be read (no connection, or a server whose views
/// differ).
async fn checkpoint_buffers(conn: Option<&mut sqlx::PgConnection>) -> Option<u64> {
    let buffers: i64 = sqlx::query_scalar("SELECT buffers_checkpoint FROM pg_stat_bgwriter")
        .fetch_one(conn?)
        .await
        .ok()?;
    Some(u64::try_from(buffers).unwrap_or(0))
}

fn background(activity: Activity, now: Option<u64>, earlier: Option<u64>) -> Option<Background> {
    Some(Background {
        activity,
        checkpoint_buffers: now?.saturating_sub(earlier?),
    })
}

impl Machine {
    pub(crate) fn json(&self) -> Value {
        let mut json = json!({
            "machine_busy_pct": self.busy,
            "steal_pct": self.steal,
            "interrupts_pct": self.interrupts,
            "tcp_retransmits": self.tcp_retransmits,
            "major_faults": self.major_faults,
            "file_refaults": self.file_refaults,
            "service_cpu_pct": self.service,
            "load_generator_cpu_pct": self.load_generator,
            "postgres_cpu_pct": self.postgres_cpu,
            "busiest_other_process": self.busiest_other.as_ref().map(|(name, _)| name),
            "busiest_other_cpu_pct": self.busiest_other.as_ref().map(|(_, cpu)| cpu),
            "generator_thread_stall_ms": self.generator_stall_ms,
        });
        if let (Some(o), Some(b)) = (json.as_object_mut(), &self.postgres) {
            o.insert("checkpoint_buffers".to_owned(), b.checkpoint_buffers.into());
            if let Value::Object(activity) = b.activity.json() {
                o.extend(activity);
            }
        }
        json
    }

    /// The mean of `seconds`, but the longest of their generator stalls and
    /// the totals of their retransmits and page faults (zero when there are
    /// none).
    pub(crate) fn mean(seconds: &[Machine]) -> Machine {
        let n = seconds.len().max(1) as f64;
        let sum = |f: fn(&Machine) -> f64| seconds.iter().map(f).sum::<f64>() / n;
        Machine {
            busy: sum(|m| m.busy),
            steal: sum(|m| m.steal),
            interrupts: sum(|m| m.interrupts),
            tcp_retransmits: seconds.iter().map(|m| m.tcp_retransmits).sum(),
            major_faults: seconds.iter().map(|m| m.major_faults).sum(),
            file_refaults: seconds.iter().map(|m| m.file_refaults).sum(),
            service: sum(|m| m.service),
            load_generator: sum(|m| m.load_generator),
            postgres_cpu: sum(|m| m.postgres_cpu),
            busiest_other: None,
            generator_stall_ms: seconds
                .iter()
                .map(|m| m.generator_stall_ms)
                .fold(0.0, f64::max),
            postgres: None,
        }
    }
}

/// Cumulative counters, in clock ticks.
#[derive(Debug, Clone, Default)]
struct Counters {
    busy: u64,
    steal: u64,
    interrupts: u64,
    retransmits: u64,
    memory: Paging,
    service: u64,
    load_generator: u64,
    service_pid: u32,
    /// Every process, for what neither the service nor the generator used.
    processes: Processes,
    at: Option<Instant>,
}

impl Counters {
    fn read(service_pid: u32) -> Self {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let ticks = stat.lines().next().map(machine_ticks).unwrap_or_default();
        let snmp = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
        let vmstat = std::fs::read_to_string("/proc/vmstat").unwrap_or_default();
        // One pass over /proc gives the service's and the generator's CPU too.
        let processes = Processes::read();
        Self {
            busy: ticks.busy,
            steal: ticks.steal,
            interrupts: ticks.interrupts,
            retransmits: tcp_retransmits(&snmp),
            memory: paging(&vmstat),
            service: processes.ticks(service_pid),
            load_generator: processes.ticks(std::process::id()),
            service_pid,
            processes,
            at: Some(Instant::now()),
        }
    }

    fn since(&self, earlier: &Counters) -> Machine {
        let seconds = match (self.at, earlier.at) {
            (Some(now), Some(then)) => now.duration_since(then).as_secs_f64(),
            _ => 0.0,
        };
        let per_cent = |ticks: u64| {
            if seconds <= 0.0 {
                0.0
            } else {
                ticks as f64 / TICKS_PER_SECOND / seconds * 100.0
            }
        };
        let mut others = self
            .processes
            .since(&earlier.processes, &[self.service_pid, std::process::id()]);
        let postgres_cpu = others.remove(POSTGRES).map_or(0.0, per_cent);
        let busiest_other = others
            .into_iter()
            .max_by_key(|(_, ticks)| *ticks)
            .map(|(name, ticks)| (name, per_cent(ticks)));
        Machine {
            busy: per_cent(self.busy.saturating_sub(earlier.busy)),
            steal: per_cent(self.steal.saturating_sub(earlier.steal)),
            interrupts: per_cent(self.interrupts.saturating_sub(earlier.interrupts)),
            tcp_retransmits: self.retransmits.saturating_sub(earlier.retransmits),
            major_faults: self
                .memory
                .major_faults
                .saturating_sub(earlier.memory.major_faults),
            file_refaults: self
                .memory
                .file_refaults
                .saturating_sub(earlier.memory.file_refaults),
            service: per_cent(self.service.saturating_sub(earlier.service)),
            load_generator: per_cent(self.load_generator.saturating_sub(earlier.load_generator)),
            postgres_cpu,
            busiest_other,
            generator_stall_ms: 0.0,
            postgres: None,
        }
    }
}

/// The machine's ticks from the aggregate `cpu` line of /proc/stat.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct MachineTicks {
    /// Everything but idle, I/O wait and steal.
    busy: u64,
    steal: u64,
    /// Hard and soft interrupts (part of busy).
    interrupts: u64,
}

fn machine_ticks(line: &str) -> MachineTicks {
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let field = |i: usize| fields.get(i).copied().unwrap_or(0);
    // user nice system idle iowait irq softirq steal guest guest_nice; guest
    // time is already counted in user and nice.
    MachineTicks {
        busy: field(0) + field(1) + field(2) + field(5) + field(6),
        steal: field(7),
        interrupts: field(5) + field(6),
    }
}

/// TCP segments retransmitted since boot, from /proc/net/snmp (0 when it
/// cannot be read): the header line of `Tcp:` names the values of the next.
fn tcp_retransmits(snmp: &str) -> u64 {
    let mut tcp = snmp.lines().filter(|l| l.starts_with("Tcp:"));
    let (Some(names), Some(values)) = (tcp.next(), tcp.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(name, _)| *name == "RetransSegs")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

/// Paging counters since boot, from /proc/vmstat (zero when unreadable).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Paging {
    major_faults: u64,
    file_refaults: u64,
}

fn paging(vmstat: &str) -> Paging {
    let mut paging = Paging::default();
    for line in vmstat.lines() {
        let mut fields = line.split_whitespace();
        let (Some(name), Some(value)) = (fields.next(), fields.next()) else {
            continue;
        };
        let value = value.parse().unwrap_or(0);
        match name {
            "pgmajfault" => paging.major_faults = value,
            "workingset_refault_file" => paging.file_refaults = value,
            _ => {}
        }
    }
    paging
}

/// How long the heartbeat thread sleeps between two looks at the clock.
pub(crate) const HEARTBEAT: Duration = Duration::from_millis(2);

/// An OS thread of the load generator that sleeps [`HEARTBEAT`] at a time
/// and keeps the longest it overslept, so that a stall of the generator's
/// async runtime can be told from the whole process going unscheduled.
struct Heartbeat {
    worst_us: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Heartbeat {
    fn start() -> Self {
        let worst_us = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (worst, stopped) = (worst_us.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                let before = Instant::now();
                #[allow(clippy::disallowed_methods)] // Its own thread, not a runtime worker.
                std::thread::sleep(HEARTBEAT);
                let over = before.elapsed().saturating_sub(HEARTBEAT);
                worst.fetch_max(over.as_micros() as u64, Ordering::Relaxed);
            }
        });
        Self { worst_us, stop }
    }

    /// The longest oversleep since the last call, in ms.
    fn take_ms(&self) -> f64 {
        self.worst_us.swap(0, Ordering::Relaxed) as f64 / 1000.0
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Samples the machine once a second until stopped, and PostgreSQL's
/// backends every [`SAMPLE_EVERY`].
pub(crate) struct Sampler {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Vec<Machine>>,
}

impl Sampler {
    /// Samples until stopped; with `postgres`, PostgreSQL's background work
    /// and the activity of `database`'s backends too.
    pub(crate) fn start(
        service_pid: u32,
        mut postgres: Option<sqlx::PgConnection>,
        database: &'static str,
    ) -> Self {
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut seconds = Vec::new();
            let mut last = Counters::read(service_pid);
            let mut last_buffers = checkpoint_buffers(postgres.as_mut()).await;
            let mut activity = Activity::default();
            let heartbeat = Heartbeat::start();
            let mut second = tokio::time::interval(Duration::from_secs(1));
            let mut sample = tokio::time::interval(SAMPLE_EVERY);
            for tick in [&mut second, &mut sample] {
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            }
            second.tick().await;
            loop {
                tokio::select! {
                    _ = second.tick() => {
                        let now = Counters::read(service_pid);
                        let buffers = checkpoint_buffers(postgres.as_mut()).await;
                        seconds.push(Machine {
                            generator_stall_ms: heartbeat.take_ms(),
                            postgres: background(std::mem::take(&mut activity), buffers, last_buffers),
                            ..now.since(&last)
                        });
                        (last, last_buffers) = (now, buffers);
                    }
                    _ = sample.tick() => {
                        if let Some(conn) = postgres.as_mut()
                            && let Some(s) = activity::sample(conn, database).await
                        {
                            activity.add(&s);
                        }
                    }
                    _ = &mut stopped => break,
                }
            }
            // The last, partial second, when long enough for the counters'
            // hundredths of a second to mean something.
            if last
                .at
                .is_some_and(|at| at.elapsed() >= Duration::from_millis(500))
            {
                let buffers = checkpoint_buffers(postgres.as_mut()).await;
                seconds.push(Machine {
                    generator_stall_ms: heartbeat.take_ms(),
                    postgres: background(activity, buffers, last_buffers),
                    ..Counters::read(service_pid).since(&last)
                });
            }
            seconds
        });
        Self { stop, task }
    }

    pub(crate) async fn stop(self) -> Vec<Machine> {
        let _ = self.stop.send(());
        self.task.await.unwrap_or_default()
    }
}

/// One fixed-rate round of one flow and service, second by second.
#[derive(Debug, Clone)]
pub(crate) struct Round {
    /// When the measured phase began (to match against PostgreSQL's log).
    pub(crate) started_at: OffsetDateTime,
    pub(crate) calls: Timeline,
    pub(crate) machine: Vec<Machine>,
}

impl Round {
    pub(crate) fn slow_calls(&self) -> u32 {
        self.calls.seconds.iter().map(|s| s.slow).sum()
    }

    /// The wall-clock time the round began, UTC, to the second.
    pub(crate) fn start_time(&self) -> String {
        let t = self.started_at.time();
        format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second())
    }

    /// The second with the most slow calls (the earliest of equals), if any
    /// call was slow.
    pub(crate) fn worst_second(&self) -> Option<usize> {
        self.calls
            .seconds
            .iter()
            .enumerate()
            .filter(|(_, s)| s.slow > 0)
            .max_by(|(i, a), (j, b)| a.slow.cmp(&b.slow).then(j.cmp(i)))
            .map(|(i, _)| i)
    }

    /// The busiest of the machine's seconds and the most stolen, as
    /// (busy %, steal %).
    pub(crate) fn machine_peaks(&self) -> (f64, f64) {
        self.machine.iter().fold((0.0, 0.0), |(busy, steal), m| {
            (f64::max(busy, m.busy), f64::max(steal, m.steal))
        })
    }

    /// The report's cells for the worst second: its index, slow / all calls,
    /// worst call and generator lag (ms), the machine's CPU figures and
    /// PostgreSQL's background work; dashes when no call was slow.
    pub(crate) fn worst_second_cells(&self) -> String {
        let Some(w) = self.worst_second() else {
            return "– | – | – | – | – | – | – | – | –".to_owned();
        };
        let c = self.calls.seconds[w];
        let machine = match self.machine.get(w) {
            None => "– | – | – | – | – | –".to_owned(),
            Some(m) => {
                let other = m
                    .busiest_other
                    .as_ref()
                    .map_or("–".to_owned(), |(name, cpu)| format!("{name} {cpu:.0}"));
                let postgres = m.postgres.as_ref().map_or("– | –".to_owned(), |b| {
                    format!(
                        "{} / {} | {}",
                        b.activity.autovacuum_workers,
                        b.checkpoint_buffers,
                        b.activity.cell()
                    )
                });
                format!(
                    "{:.1} | {:.0} / {:.0} / {:.0} / {:.0} / {:.0} / {:.0} | {other} | {} / {} / {} | {postgres}",
                    m.generator_stall_ms,
                    m.busy,
                    m.steal,
                    m.interrupts,
                    m.service,
                    m.load_generator,
                    m.postgres_cpu,
                    m.tcp_retransmits,
                    m.major_faults,
                    m.file_refaults,
                )
            }
        };
        format!(
            "{w} | {} / {} | {:.1} | {:.1} / {machine}",
            c.slow,
            c.calls,
            c.worst_us as f64 / 1000.0,
            c.worst_start_lag_us as f64 / 1000.0,
        )
    }

    /// Whether the hypervisor took less than [`QUIET_STEAL`] in second `i`
    /// (a second the sampler did not cover counts as not quiet).
    pub(crate) fn quiet(&self, i: usize) -> bool {
        self.machine.get(i).is_some_and(|m| m.steal < QUIET_STEAL)
    }

    pub(crate) fn json(&self) -> Value {
        let seconds: Vec<Value> = self
            .calls
            .seconds
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut second = json!({
                    "second": i,
                    "calls": c.calls,
                    "slow_calls": c.slow,
                    "worst_call_ms": c.worst_us as f64 / 1000.0,
                    "worst_start_lag_ms": c.worst_start_lag_us as f64 / 1000.0,
                });
                // A second the sampler did not cover has no machine figures.
                if let (Some(o), Some(Value::Object(m))) = (
                    second.as_object_mut(),
                    self.machine.get(i).map(Machine::json),
                ) {
                    o.extend(m);
                }
                second
            })
            .collect();
        json!(seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_land_in_the_second_they_started() {
        let origin = Instant::now();
        let mut t = Timeline::new(origin);
        t.call(
            "GET /a",
            origin + Duration::from_millis(200),
            Duration::from_millis(3),
        );
        t.call(
            "GET /a",
            origin + Duration::from_millis(2500),
            Duration::from_millis(12),
        );
        t.call(
            "GET /b",
            origin + Duration::from_millis(2900),
            Duration::from_millis(40),
        );
        t.start_lag(
            origin + Duration::from_millis(2100),
            Duration::from_millis(7),
        );
        assert_eq!(t.seconds.len(), 3);
        assert_eq!(
            t.seconds[0],
            Calls {
                calls: 1,
                slow: 0,
                worst_us: 3000,
                worst_start_lag_us: 0
            }
        );
        assert_eq!(t.seconds[1], Calls::default());
        assert_eq!(
            t.seconds[2],
            Calls {
                calls: 2,
                slow: 2,
                worst_us: 40_000,
                worst_start_lag_us: 7000
            }
        );
        assert_eq!(t.steps["GET /a"], vec![[1, 0], [0, 0], [1, 1]]);
        assert_eq!(t.steps["GET /b"], vec![[0, 0], [0, 0], [1, 1]]);
    }

    #[test]
    fn merged_timelines_add_counts_and_keep_the_worst() {
        let origin = Instant::now();
        let mut a = Timeline::new(origin);
        a.call("GET /x", origin, Duration::from_millis(11));
        let mut b = Timeline::new(origin);
        b.call("GET /x", origin, Duration::from_millis(5));
        b.call(
            "GET /x",
            origin + Duration::from_secs(1),
            Duration::from_millis(30),
        );
        a.merge(&b);
        assert_eq!(a.seconds.len(), 2);
        assert_eq!((a.seconds[0].calls, a.seconds[0].slow), (2, 1));
        assert_eq!(a.seconds[0].worst_us, 11_000);
        assert_eq!((a.seconds[1].calls, a.seconds[1].slow), (1, 1));
        assert_eq!(a.steps["GET /x"], vec![[2, 1], [1, 1]]);
    }

    #[test]
    fn the_worst_second_has_the_most_slow_calls() {
        let origin = Instant::now();
        let mut calls = Timeline::new(origin);
        for (second, slow) in [(0u64, 1u32), (1, 4), (2, 4), (3, 0)] {
            for _ in 0..slow {
                calls.call(
                    "GET /x",
                    origin + Duration::from_secs(second),
                    Duration::from_millis(20),
                );
            }
        }
        let round = Round {
            started_at: OffsetDateTime::UNIX_EPOCH,
            calls,
            machine: vec![],
        };
        assert_eq!(round.slow_calls(), 9);
        assert_eq!(round.worst_second(), Some(1));
        let quiet = Round {
            started_at: OffsetDateTime::UNIX_EPOCH,
            calls: Timeline::new(origin),
            machine: vec![],
        };
        assert_eq!(quiet.worst_second(), None);
    }

    #[test]
    fn a_round_is_summarised_by_the_mean_of_its_seconds() {
        let second = |busy, steal, generator_stall_ms, tcp_retransmits| Machine {
            busy,
            steal,
            interrupts: 6.0,
            tcp_retransmits,
            major_faults: tcp_retransmits * 10,
            file_refaults: tcp_retransmits * 100,
            service: 10.0,
            load_generator: 4.0,
            postgres_cpu: 50.0,
            busiest_other: None,
            generator_stall_ms,
            postgres: None,
        };
        let m = Machine::mean(&[second(100.0, 0.0, 3.0, 1), second(150.0, 30.0, 1.0, 2)]);
        assert_eq!(m, second(125.0, 15.0, 3.0, 3));
        assert_eq!(Machine::mean(&[]), Machine::default());
    }

    #[test]
    fn background_work_is_what_changed_in_the_second() {
        let activity = Activity {
            samples: 10,
            autovacuum_workers: 2,
            ..Activity::default()
        };
        assert_eq!(
            background(activity.clone(), Some(1500), Some(1200)),
            Some(Background {
                activity: activity.clone(),
                checkpoint_buffers: 300
            })
        );
        assert_eq!(background(activity.clone(), None, Some(1)), None);
        assert_eq!(background(activity, Some(1), None), None);
    }

    #[test]
    fn the_cpu_line_splits_busy_from_idle_and_steal() {
        let line = "cpu  100 5 20 1000 7 3 2 9 4 0";
        assert_eq!(
            machine_ticks(line),
            MachineTicks {
                busy: 130,
                steal: 9,
                interrupts: 5
            }
        );
    }

    #[test]
    fn retransmits_are_read_from_the_tcp_lines_of_snmp() {
        let snmp = "Ip: Forwarding DefaultTTL\nIp: 1 64\n\
                    Tcp: RtoAlgorithm RtoMin ActiveOpens RetransSegs InErrs\n\
                    Tcp: 1 200 3407 12 0\n\
                    Udp: InDatagrams\nUdp: 5\n";
        assert_eq!(tcp_retransmits(snmp), 12);
        assert_eq!(tcp_retransmits("Ip: Forwarding\nIp: 1\n"), 0);
    }

    #[test]
    fn paging_counters_are_read_by_name_from_vmstat() {
        let vmstat = "nr_free_pages 5\nworkingset_refault_file 1408\npgfault 9\npgmajfault 1156\n";
        assert_eq!(
            paging(vmstat),
            Paging {
                major_faults: 1156,
                file_refaults: 1408
            }
        );
        assert_eq!(paging(""), Paging::default());
    }

    #[test]
    fn percentages_are_of_one_core_per_second() {
        let t0 = Instant::now();
        let earlier = Counters {
            busy: 1000,
            steal: 10,
            interrupts: 40,
            retransmits: 7,
            memory: Paging {
                major_faults: 100,
                file_refaults: 5000,
            },
            service: 50,
            load_generator: 20,
            service_pid: 7,
            processes: Processes::of(&[
                (7, "svc", 1, 50),
                (8, POSTGRES, 1, 300),
                (9, POSTGRES, 1, 5),
            ]),
            at: Some(t0),
        };
        let later = Counters {
            busy: 1150,
            steal: 12,
            interrupts: 52,
            retransmits: 9,
            memory: Paging {
                major_faults: 103,
                file_refaults: 5040,
            },
            service: 90,
            load_generator: 45,
            service_pid: 7,
            processes: Processes::of(&[
                (7, "svc", 1, 90),
                (8, POSTGRES, 1, 350),
                (9, POSTGRES, 1, 15),
                (10, "rustc", 2, 80),
                (11, "kworker/0:1", 1, 3),
            ]),
            at: Some(t0 + Duration::from_secs(1)),
        };
        let m = later.since(&earlier);
        assert!((m.busy - 150.0).abs() < 1e-9);
        assert!((m.steal - 2.0).abs() < 1e-9);
        assert!((m.service - 40.0).abs() < 1e-9);
        assert!((m.load_generator - 25.0).abs() < 1e-9);
        assert!((m.postgres_cpu - 60.0).abs() < 1e-9);
        assert!((m.interrupts - 12.0).abs() < 1e-9);
        assert_eq!(m.tcp_retransmits, 2);
        assert_eq!((m.major_faults, m.file_refaults), (3, 40));
        assert_eq!(m.busiest_other, Some(("rustc".to_owned(), 80.0)));
    }
}
