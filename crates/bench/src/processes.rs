//! Every process's CPU time, read from `/proc`, so that a second's machine
//! load can be split between the service, the load generator, PostgreSQL's
//! processes and whatever else ran: a build, a kernel thread, another
//! guest's work seen as steal is counted elsewhere.

use std::collections::{BTreeMap, HashMap};

/// The command name PostgreSQL's server processes run under.
pub(crate) const POSTGRES: &str = "postgres";

/// One process at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Process {
    /// Its command name (a kernel worker's names the work queue it serves
    /// at the moment, so it changes).
    pub(crate) name: String,
    /// When it started, in ticks since boot: a pid reused by a new process
    /// has another.
    pub(crate) started: u64,
    /// User + system CPU ticks.
    pub(crate) ticks: u64,
}

/// Every process at one moment, by pid.
#[derive(Debug, Clone, Default)]
pub(crate) struct Processes(HashMap<u32, Process>);

impl Processes {
    /// Every process readable in `/proc` now (one that exits while being
    /// read is left out).
    pub(crate) fn read() -> Self {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Self::default();
        };
        let processes = entries
            .flatten()
            .filter_map(|entry| {
                let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
                let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
                Some((pid, parse_stat(&stat)?))
            })
            .collect();
        Self(processes)
    }

    /// The CPU ticks of `pid`, or 0 when it was not there.
    pub(crate) fn ticks(&self, pid: u32) -> u64 {
        self.0.get(&pid).map_or(0, |p| p.ticks)
    }

    /// Processes given as (pid, command name, start, ticks).
    #[cfg(test)]
    pub(crate) fn of(list: &[(u32, &str, u64, u64)]) -> Self {
        Self(
            list.iter()
                .map(|&(pid, name, started, ticks)| {
                    let name = name.to_owned();
                    (
                        pid,
                        Process {
                            name,
                            started,
                            ticks,
                        },
                    )
                })
                .collect(),
        )
    }

    /// CPU ticks per command name since `earlier`, leaving out the processes
    /// in `leave_out`. A process started since counts all its ticks.
    pub(crate) fn since(&self, earlier: &Processes, leave_out: &[u32]) -> BTreeMap<String, u64> {
        let mut by_name = BTreeMap::new();
        for (pid, now) in &self.0 {
            if leave_out.contains(pid) {
                continue;
            }
            let before = earlier
                .0
                .get(pid)
                .filter(|then| then.started == now.started)
                .map_or(0, |then| then.ticks);
            let used = now.ticks.saturating_sub(before);
            if used > 0 {
                *by_name.entry(now.name.clone()).or_default() += used;
            }
        }
        by_name
    }
}

/// One `/proc/<pid>/stat` line.
pub(crate) fn parse_stat(stat: &str) -> Option<Process> {
    // The command name sits in parentheses and may hold spaces or ')'.
    let (head, rest) = stat.rsplit_once(')')?;
    let (_, name) = head.split_once('(')?;
    // After the name: the state is field 3 of the line, utime and stime are
    // 14 and 15, the start time 22.
    let fields: Vec<u64> = rest
        .split_whitespace()
        .take(20)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let field = |n: usize| fields.get(n - 3).copied().unwrap_or(0);
    Some(Process {
        name: name.to_owned(),
        started: field(22),
        ticks: field(14) + field(15),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "4242 (tokio-runtime (w)) S 1 4242 4242 0 -1 4194560 \
                        2000 0 0 0 350 120 0 0 20 0 26 0 900 12345 678";

    #[test]
    fn a_stat_line_gives_the_name_start_and_user_plus_system_ticks() {
        assert_eq!(
            parse_stat(STAT),
            Some(Process {
                name: "tokio-runtime (w)".to_owned(),
                started: 900,
                ticks: 470
            })
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn cpu_is_counted_per_name_since_the_earlier_reading() {
        let earlier = Processes::of(&[
            (1, POSTGRES, 5, 100),
            (2, POSTGRES, 5, 50),
            (3, "bench", 8, 10),
            (6, "sh", 9, 500),
            (7, "kworker/0:1-events", 2, 1000),
        ]);
        let now = Processes::of(&[
            (1, POSTGRES, 5, 130),
            (2, POSTGRES, 5, 60),
            (3, "bench", 8, 40),
            (4, "rustc", 20, 90),
            (5, "idle", 20, 0),
            // A pid reused by a new process counts from zero.
            (6, "cc1", 21, 7),
            // A kernel worker changes its name, not its start.
            (7, "kworker/0:1-mm_percpu_wq", 2, 1004),
        ]);
        let used = now.since(&earlier, &[3]);
        assert_eq!(
            used,
            BTreeMap::from([
                ("cc1".to_owned(), 7),
                ("kworker/0:1-mm_percpu_wq".to_owned(), 4),
                (POSTGRES.to_owned(), 40),
                ("rustc".to_owned(), 90)
            ])
        );
    }
}
