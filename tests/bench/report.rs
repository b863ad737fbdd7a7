//! The benchmark's results: a row per tool and scenario, the Markdown table (with the ratio of
//! postflytt to mbsync's best configuration under each scenario) and the rows and ratios as JSON.

use std::fmt::Write as _;

use crate::tools::{Measure, self_peak};
use crate::{MIB, PF, latency};

#[derive(Clone, Debug, Default)]
pub struct Row {
    pub scenario: String,
    pub tool: String,
    pub wall: f64,
    pub copied: u64,
    /// Messages the pass had to consider (source total).
    pub scanned: u64,
    pub bytes: u64,
    pub cpu: f64,
    pub rss_mib: f64,
    pub self_rss_mib: Option<f64>,
    /// postflytt: the data directory's largest size during the run, MiB.
    pub staging_peak_mib: Option<f64>,
    /// Office line: the share of the line's rate used over the run's wall time, by direction
    /// (`latency::UP`, `latency::DOWN`).
    pub line_share: Option<[f64; 2]>,
    pub check: String,
    pub check_ok: bool,
}

impl Row {
    pub fn new(scenario: &str, tool: &str, m: &Measure) -> Row {
        Row {
            scenario: scenario.into(),
            tool: tool.into(),
            wall: m.wall,
            cpu: m.cpu,
            rss_mib: m.rss_kib as f64 / 1024.0,
            self_rss_mib: self_peak(&m.output),
            staging_peak_mib: m.staging_peak.map(|b| b as f64 / MIB),
            ..Row::default()
        }
    }

    /// Messages per second: copied ones, or scanned ones for a pass that copies nothing.
    pub fn msgs_per_s(&self) -> f64 {
        let n = if self.copied > 0 { self.copied } else { self.scanned };
        n as f64 / self.wall
    }

    pub fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / MIB / self.wall
    }
}

pub fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

pub fn json_num(v: f64) -> String {
    if v.is_finite() { format!("{v:.4}") } else { "null".into() }
}

/// postflytt's row of a scenario and mbsync's best (the shortest wall time among its configurations
/// in that scenario): every ratio is taken against mbsync at its best.
pub fn pair<'a>(rows: &'a [Row], scenario: &str) -> Option<(&'a Row, &'a Row)> {
    let pf = rows.iter().find(|r| r.scenario == scenario && r.tool == PF)?;
    let mb = rows.iter().filter(|r| r.scenario == scenario && r.tool.starts_with("mbsync")).min_by(|a, b| a.wall.total_cmp(&b.wall))?;
    Some((pf, mb))
}

pub fn fmt_opt(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.1}")).unwrap_or_default()
}

pub fn fmt_share(v: Option<[f64; 2]>) -> String {
    v.map(|s| format!("{:.0} % / {:.0} %", s[latency::DOWN] * 100.0, s[latency::UP] * 100.0)).unwrap_or_default()
}

pub fn table(rows: &[Row]) -> String {
    let mut t = String::from(
        "| scenario | tool | wall s | copied | scanned | MB | msgs/s | MB/s | CPU s | peak RSS MiB | data dir peak MiB | line down / up | check |\n\
         |---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|\n",
    );
    let mut scenarios: Vec<&str> = Vec::new();
    for r in rows {
        if !scenarios.contains(&r.scenario.as_str()) {
            scenarios.push(&r.scenario);
        }
    }
    for s in scenarios {
        for r in rows.iter().filter(|r| r.scenario == s) {
            let rss = match r.self_rss_mib {
                Some(own) => format!("{:.1} (own {own:.1})", r.rss_mib),
                None => format!("{:.1}", r.rss_mib),
            };
            let _ = writeln!(
                t,
                "| {} | {} | {:.2} | {} | {} | {:.1} | {:.1} | {:.2} | {:.2} | {} | {} | {} | {} |",
                r.scenario,
                r.tool,
                r.wall,
                r.copied,
                r.scanned,
                r.bytes as f64 / MIB,
                r.msgs_per_s(),
                r.mb_per_s(),
                r.cpu,
                rss,
                fmt_opt(r.staging_peak_mib),
                fmt_share(r.line_share),
                r.check
            );
        }
        if let Some((pf, mb)) = pair(rows, s) {
            let x = |v: f64| if v.is_finite() { format!("{v:.2}x") } else { "n/a".to_string() };
            let _ = writeln!(
                t,
                "| {s} | **postflytt / {}** | {} faster | | | | {} | {} | {} | {} | | | |",
                mb.tool,
                x(mb.wall / pf.wall),
                x(pf.msgs_per_s() / mb.msgs_per_s()),
                x(pf.mb_per_s() / mb.mb_per_s()),
                x(pf.cpu / mb.cpu),
                x(pf.rss_mib / mb.rss_mib)
            );
        }
    }
    t
}

pub struct Target {
    pub name: &'static str,
    pub goal: String,
    pub observed: String,
    pub met: bool,
}

pub fn rows_json(rows: &[Row]) -> String {
    let mut j = String::from("[\n");
    for (i, r) in rows.iter().enumerate() {
        let _ = writeln!(
            j,
            "    {{\"scenario\": {}, \"tool\": {}, \"wall_s\": {}, \"copied\": {}, \"scanned\": {}, \"bytes\": {}, \
             \"msgs_per_s\": {}, \"mb_per_s\": {}, \"cpu_s\": {}, \"peak_rss_mib\": {}, \"own_vmhwm_mib\": {}, \
             \"data_dir_peak_mib\": {}, \"line_share_down\": {}, \"line_share_up\": {}, \"check\": {}, \"check_ok\": {}}}{}",
            json_str(&r.scenario),
            json_str(&r.tool),
            json_num(r.wall),
            r.copied,
            r.scanned,
            r.bytes,
            json_num(r.msgs_per_s()),
            json_num(r.mb_per_s()),
            json_num(r.cpu),
            json_num(r.rss_mib),
            r.self_rss_mib.map(json_num).unwrap_or_else(|| "null".into()),
            r.staging_peak_mib.map(json_num).unwrap_or_else(|| "null".into()),
            r.line_share.map(|s| json_num(s[latency::DOWN])).unwrap_or_else(|| "null".into()),
            r.line_share.map(|s| json_num(s[latency::UP])).unwrap_or_else(|| "null".into()),
            json_str(&r.check),
            r.check_ok,
            if i + 1 < rows.len() { "," } else { "" }
        );
    }
    j.push_str("  ]");
    j
}

pub fn ratios_json(rows: &[Row]) -> String {
    let mut scenarios: Vec<&str> = Vec::new();
    for r in rows {
        if !scenarios.contains(&r.scenario.as_str()) && pair(rows, &r.scenario).is_some() {
            scenarios.push(&r.scenario);
        }
    }
    let items: Vec<String> = scenarios
        .iter()
        .map(|s| {
            let (pf, mb) = pair(rows, s).expect("pair exists");
            format!(
                "    {{\"scenario\": {}, \"against\": {}, \"speedup_wall\": {}, \"msgs_per_s\": {}, \"mb_per_s\": {}, \"cpu\": {}, \"peak_rss\": {}}}",
                json_str(s),
                json_str(&mb.tool),
                json_num(mb.wall / pf.wall),
                json_num(pf.msgs_per_s() / mb.msgs_per_s()),
                json_num(pf.mb_per_s() / mb.mb_per_s()),
                json_num(pf.cpu / mb.cpu),
                json_num(pf.rss_mib / mb.rss_mib)
            )
        })
        .collect();
    format!("[\n{}\n  ]", items.join(",\n"))
}
