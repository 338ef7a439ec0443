//! What a service process cost: its CPU time and peak memory, and the
//! machine's busy CPU time over the same phase, from /proc.

/// A process's CPU time and peak resident memory, and the whole machine's
/// busy CPU time (every process, PostgreSQL and the kernel included), from
/// /proc.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ProcessStats {
    pub(crate) cpu_ticks: u64,
    pub(crate) peak_rss_kb: u64,
    pub(crate) machine_ticks: u64,
}

/// Linux's USER_HZ: /proc reports CPU time in hundredths of a second.
pub(super) const TICKS_PER_SECOND: f64 = 100.0;

impl ProcessStats {
    pub(crate) fn read(pid: u32) -> Self {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let peak_rss_kb = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0);
        let machine = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        Self {
            cpu_ticks: cpu_ticks(&stat),
            peak_rss_kb,
            machine_ticks: machine_busy_ticks(&machine),
        }
    }
}

/// The machine's busy CPU ticks, all CPUs, from `/proc/stat`'s `cpu` line:
/// everything but idle and I/O wait (0 when it cannot be read).
fn machine_busy_ticks(stat: &str) -> u64 {
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0;
    };
    // user nice system idle iowait irq softirq steal (guest time is
    // already counted in user).
    line.split_whitespace()
        .skip(1)
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, f)| f.parse::<u64>().unwrap_or(0))
        .sum()
}

/// User + system CPU ticks from a `/proc/<pid>/stat` line (0 when it cannot
/// be read).
fn cpu_ticks(stat: &str) -> u64 {
    // The command name sits in parentheses and may hold spaces or ')'; after
    // it, the state is field 3 of the line, utime and stime are 14 and 15.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0;
    };
    rest.split_whitespace()
        .skip(14 - 3)
        .take(2)
        .map(|f| f.parse::<u64>().unwrap_or(0))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_gives_user_plus_system_ticks() {
        let stat = "4242 (tokio-runtime (w)) S 1 4242 4242 0 -1 4194560 \
                    2000 0 0 0 350 120 0 0 20 0 26 0 900 12345 678";
        assert_eq!(cpu_ticks(stat), 470);
        assert_eq!(cpu_ticks("garbage"), 0);
    }

    #[test]
    fn the_machine_is_busy_for_all_but_idle_and_io_wait() {
        let stat = "cpu  100 5 40 9000 300 7 3 11 0 0\ncpu0 50 2 20 4500 150 3 1 5 0 0\n";
        assert_eq!(machine_busy_ticks(stat), 100 + 5 + 40 + 7 + 3 + 11);
        assert_eq!(machine_busy_ticks("garbage"), 0);
    }
}
