//! Collecting figures and printing them (one line per measurement, or one
//! JSON object).

use serde::Serialize;
use serde_json::{Map, Value};

/// One measurement: our figure next to the baseline's.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Row {
    /// Short name (`throughput`, `rpc`, ...).
    pub(crate) name: String,
    /// What "ours" is.
    pub(crate) ours_label: String,
    /// Our figure.
    pub(crate) ours: f64,
    /// What the baseline is.
    pub(crate) baseline_label: String,
    /// The baseline's figure.
    pub(crate) baseline: f64,
    /// Unit of both figures.
    pub(crate) unit: String,
    /// `ours / baseline` (higher is better for every row except RTT rows,
    /// whose goal says so).
    pub(crate) ratio: f64,
    /// The goal, as text (never asserted).
    pub(crate) goal: String,
    /// Further figures (latencies, counts, checks).
    pub(crate) notes: Vec<String>,
}

impl Row {
    /// A row; the ratio is computed here.
    pub(crate) fn new(name: &str, ours: (&str, f64), baseline: (&str, f64), unit: &str, goal: &str) -> Self {
        let ratio = if baseline.1 > 0.0 {
            ours.1 / baseline.1
        } else {
            f64::NAN
        };
        Row {
            name: name.to_string(),
            ours_label: ours.0.to_string(),
            ours: ours.1,
            baseline_label: baseline.0.to_string(),
            baseline: baseline.1,
            unit: unit.to_string(),
            ratio,
            goal: goal.to_string(),
            notes: Vec::new(),
        }
    }

    /// Adds a note line.
    pub(crate) fn note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }
}

/// Everything measured in one run.
#[derive(Debug, Default)]
pub(crate) struct Report {
    rows: Vec<Row>,
    details: Map<String, Value>,
}

impl Report {
    /// Adds a row and prints it at once on stderr as progress.
    pub(crate) fn push(&mut self, row: Row) {
        progress(&format!(
            "done: {}",
            format_row(&row).lines().next().unwrap_or_default()
        ));
        self.rows.push(row);
    }

    /// Adds the raw figures of one measurement (JSON only).
    pub(crate) fn detail(&mut self, key: &str, value: Value) {
        self.details.insert(key.to_string(), value);
    }

    /// Prints the report on stdout.
    pub(crate) fn print(&self, json: bool, settings: Value) -> anyhow::Result<()> {
        if json {
            let out = serde_json::json!({
                "settings": settings,
                "rows": self.rows,
                "details": self.details,
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
        } else {
            println!("stoq bench: {settings}");
            for row in &self.rows {
                println!("{}", format_row(row));
            }
        }
        Ok(())
    }
}

fn format_row(r: &Row) -> String {
    let mut s = format!(
        "{:<20} {} {} {} | {} {} {} | ratio {:.3} | goal {}",
        r.name,
        r.ours_label,
        fmt_num(r.ours),
        r.unit,
        r.baseline_label,
        fmt_num(r.baseline),
        r.unit,
        r.ratio,
        r.goal
    );
    for n in &r.notes {
        s.push_str("\n    ");
        s.push_str(n);
    }
    s
}

/// A number with few enough digits to read.
pub(crate) fn fmt_num(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A progress line on stderr.
pub(crate) fn progress(msg: &str) {
    eprintln!("[bench] {msg}");
}

/// The median of a few samples (mean of the middle two when even).
pub(crate) fn median(samples: &[f64]) -> f64 {
    let mut v: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// CPU time (user + system) this process used so far, in seconds, from
/// `/proc/self/stat` (Linux; `None` elsewhere).
pub(crate) fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may contain spaces): state is
    // the first, utime the 12th, stime the 13th; in USER_HZ (100) ticks.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// Measures how many cores a piece of work kept busy on average.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CpuMeter {
    cpu: Option<f64>,
    wall: std::time::Instant,
}

impl CpuMeter {
    /// Starts measuring.
    pub(crate) fn start() -> Self {
        CpuMeter {
            cpu: cpu_seconds(),
            wall: std::time::Instant::now(),
        }
    }

    /// Average busy cores since `start` (NaN when unknown).
    pub(crate) fn cores_busy(&self) -> f64 {
        match (self.cpu, cpu_seconds()) {
            (Some(a), Some(b)) => (b - a) / self.wall.elapsed().as_secs_f64(),
            _ => f64::NAN,
        }
    }
}

/// The kernel's count of IPv6 UDP datagrams dropped for a full receive
/// buffer (system-wide, from `/proc/net/snmp6`; `None` elsewhere).
pub(crate) fn udp6_rcvbuf_drops() -> Option<u64> {
    let snmp = std::fs::read_to_string("/proc/net/snmp6").ok()?;
    let line = snmp.lines().find(|l| l.starts_with("Udp6RcvbufErrors"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
