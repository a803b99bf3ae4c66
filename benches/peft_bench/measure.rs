//! Measurement aids: statistics, CPU and load readings, peak RSS, the noise meter.

use super::*;

/// Median, min, max and all values.
pub(crate) fn stats(xs: &[f64]) -> Value {
    let mut s = xs.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    let median = match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => s[n / 2],
        _ => 0.5 * (s[n / 2 - 1] + s[n / 2]),
    };
    json!({"median": median, "min": s.first(), "max": s.last(), "n": n, "all": xs})
}

pub(crate) fn median(xs: &[f64]) -> f64 {
    stats(xs)["median"].as_f64().unwrap_or(f64::NAN)
}

/// Busy (niced time included) and niced jiffies of all CPUs (`/proc/stat`); `None` off Linux.
pub(crate) fn proc_stat() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let vals: Vec<u64> = text
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|v| v.parse().ok())
        .collect();
    if vals.len() < 5 {
        return None;
    }
    let total: u64 = vals.iter().sum();
    Some((total - vals[3] - vals[4], vals[1]))
}

/// User + system jiffies of this process (`/proc/self/stat`).
pub(crate) fn own_jiffies() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After "pid (comm) ": state is field 0, utime field 11, stime field 12.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

pub(crate) fn loadavg() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Peak resident set size of this process in KiB (`VmHWM`), Linux only.
pub(crate) fn peak_rss_kb() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// How many cores other processes kept busy over a timed region (as the peer's `NoiseMeter`;
/// assumes the usual 100 jiffies per second).
pub(crate) struct NoiseMeter {
    pub(crate) start: Instant,
    pub(crate) sys: Option<(u64, u64)>,
    pub(crate) own: Option<u64>,
    pub(crate) load_before: Option<f64>,
}

impl NoiseMeter {
    pub(crate) fn start() -> Self {
        Self {
            sys: proc_stat(),
            own: own_jiffies(),
            load_before: loadavg(),
            start: Instant::now(),
        }
    }

    pub(crate) fn finish(self) -> (f64, Value) {
        let wall = self.start.elapsed().as_secs_f64();
        let (sys, own) = (proc_stat(), own_jiffies());
        let (foreign, nice, own_cores) = match (self.sys, sys, self.own, own) {
            (Some((b0, n0)), Some((b1, n1)), Some(o0), Some(o1)) if wall > 0.0 => {
                let busy = (b1 - b0) as f64 / 100.0;
                let mine = (o1 - o0) as f64 / 100.0;
                let nice = (n1 - n0) as f64 / 100.0;
                (((busy - mine) / wall).max(0.0), nice / wall, mine / wall)
            }
            _ => (f64::NAN, f64::NAN, f64::NAN),
        };
        let rec = json!({
            "wall_s": wall,
            "own_cores": round3(own_cores),
            "foreign_cores": round3(foreign),
            "foreign_niced_cores": round3(nice),
            "loadavg_before": self.load_before,
            "loadavg_after": loadavg(),
        });
        (wall, rec)
    }
}

pub(crate) fn round3(x: f64) -> Value {
    if x.is_finite() {
        json!((x * 1000.0).round() / 1000.0)
    } else {
        Value::Null
    }
}

pub(crate) fn backend_name(device: &Device) -> String {
    format!("{device:?}")
}
