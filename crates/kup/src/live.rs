//! The live host x step view: on a terminal, a table of every host and what each of its steps did,
//! redrawn in place under the scrolling log lines, with the running step's elapsed time ticking
//! and, for a long wait, its module's latest word on why it still waits and the time it has left.

use std::io::Write;
use std::time::{Duration, Instant};

/// At most this many step marks per row: the latest are kept.
const MARKS: usize = 48;

pub const LEGEND: &str = "+ changed  . unchanged  = done before (journal)  X failed";

#[derive(Debug)]
struct Row {
    host: String,
    marks: String,
    running: Option<(String, Instant)>,
    /// The running step's latest progress: its text, and the time left as of when it came.
    progress: Option<(String, Option<(Duration, Instant)>)>,
    last: String,
}

#[derive(Debug, Default)]
pub struct Live {
    rows: Vec<Row>,
    /// Lines of the table on screen now, to move back over before the next draw.
    drawn: usize,
    pub active: bool,
    /// The terminal's width (0: unknown): a longer line takes more than one row on screen.
    pub width: usize,
}

impl Live {
    pub fn new(hosts: &[String]) -> Live {
        Live {
            rows: hosts
                .iter()
                .map(|h| Row {
                    host: h.clone(),
                    marks: String::new(),
                    running: None,
                    progress: None,
                    last: "waiting".into(),
                })
                .collect(),
            drawn: 0,
            active: true,
            width: 0,
        }
    }

    fn row(&mut self, host: &str) -> &mut Row {
        if let Some(i) = self.rows.iter().position(|r| r.host == host) {
            return &mut self.rows[i];
        }
        self.rows.push(Row {
            host: host.to_string(),
            marks: String::new(),
            running: None,
            progress: None,
            last: String::new(),
        });
        let last = self.rows.len() - 1;
        &mut self.rows[last]
    }

    pub fn running(&mut self, host: &str, step: &str, now: Instant) {
        let row = self.row(host);
        row.running = Some((step.to_string(), now));
        row.progress = None;
    }

    /// The running step's module says why it still waits (`left`: time before it gives up, as
    /// of `now`). Ignored when nothing runs on the host.
    pub fn progress(&mut self, host: &str, text: &str, left: Option<Duration>, now: Instant) {
        let row = self.row(host);
        if row.running.is_some() {
            // One line on screen: the text's first line.
            let text = text.lines().next().unwrap_or_default().to_string();
            row.progress = Some((text, left.map(|l| (l, now))));
        }
    }

    /// A finished step: `status` is kup's (`ok`, `changed`, `done`, `FAILED`).
    pub fn finished(&mut self, host: &str, step: &str, status: &str, seconds: f64) {
        let row = self.row(host);
        row.running = None;
        row.progress = None;
        row.marks.push(match status {
            "changed" => '+',
            "done" => '=',
            "FAILED" => 'X',
            _ => '.',
        });
        row.last = format!("{step} {} ({seconds:.1}s)", status.to_lowercase());
    }

    /// The table as text, one line per host under a header and the legend.
    pub fn frame(&self, now: Instant) -> Vec<String> {
        let width = self.rows.iter().map(|r| r.host.len()).max().unwrap_or(4).max(4);
        let mut lines = vec![format!(
            "{:<width$}  {:<MARKS$}  RUNNING (ELAPSED) OR LAST STEP",
            "HOST", "STEPS (ONE MARK EACH)"
        )];
        for r in &self.rows {
            let skip = r.marks.chars().count().saturating_sub(MARKS);
            let marks: String = r.marks.chars().skip(skip).collect();
            let now_text = match &r.running {
                Some((step, since)) => format!("> {step} {:.0}s", now.duration_since(*since).as_secs_f64()),
                None => r.last.clone(),
            };
            let mut line = format!("{:<width$}  {marks:<MARKS$}  {now_text}", r.host);
            if let (Some(_), Some((text, left))) = (&r.running, &r.progress) {
                let left = left
                    .map(|(l, at)| {
                        format!(" ({} s left)", l.saturating_sub(now.duration_since(at)).as_secs())
                    })
                    .unwrap_or_default();
                line.push_str(&fit(&format!(": {text}{left}"), self.width, line.chars().count()));
            }
            lines.push(line);
        }
        lines.push(LEGEND.to_string());
        lines
    }

    /// Whether a step is running (only then does the elapsed time on screen change).
    pub fn ticking(&self) -> bool {
        self.rows.iter().any(|r| r.running.is_some())
    }

    /// Leaves the table on screen as it is and stops drawing.
    pub fn freeze(&mut self) {
        self.active = false;
        self.drawn = 0;
    }

    /// Replaces the table on screen with log lines (scrolling up) and a fresh table.
    pub fn draw(&mut self, out: &mut impl Write, log: &[String], now: Instant) {
        let mut text = String::new();
        if self.drawn > 0 {
            // Back to the table's first line, then clear to the end of the screen.
            text.push_str(&format!("\x1b[{}F\x1b[J", self.drawn));
        }
        for line in log {
            text.push_str(line);
            text.push('\n');
        }
        if self.active {
            let frame = self.frame(now);
            // Lines wider than the terminal take more than one row: moving back over the table
            // next time counts rows, not lines.
            self.drawn = frame.iter().map(|l| rows(l, self.width)).sum();
            for line in frame {
                text.push_str(&line);
                text.push_str("\x1b[K\n");
            }
        } else {
            self.drawn = 0;
        }
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }
}

/// `text` cut to what is left of a `width`-column row after `used` columns (0: kept whole), `…`
/// where it was cut: a progress text never wraps the table.
fn fit(text: &str, width: usize, used: usize) -> String {
    let room = width.saturating_sub(used);
    if width == 0 || text.chars().count() <= room {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(room.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// The rows `line` takes on a terminal `width` columns wide (0: unknown, one).
fn rows(line: &str, width: usize) -> usize {
    if width == 0 {
        return 1;
    }
    line.chars().count().max(1).div_ceil(width)
}

/// How often the running step's elapsed time is redrawn.
pub const TICK: Duration = Duration::from_millis(500);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_row_per_host_with_a_mark_per_step_and_the_running_step() {
        let t0 = Instant::now();
        let mut live = Live::new(&["cp1".into(), "worker-1".into()]);
        live.finished("cp1", "preflight", "ok", 0.2);
        live.finished("cp1", "kubeadm-apply", "changed", 3.0);
        live.finished("cp1", "download", "done", 0.0);
        assert!(!live.ticking(), "nothing running: nothing to redraw");
        live.running("worker-1", "drain", t0);
        assert!(live.ticking());
        let frame = live.frame(t0 + Duration::from_secs(7));
        assert_eq!(frame.len(), 4, "{frame:#?}");
        assert!(frame[0].starts_with("HOST      STEPS"), "{frame:#?}");
        assert!(frame[1].starts_with("cp1       .+="), "{frame:#?}");
        assert!(frame[1].ends_with("download done (0.0s)"), "{frame:#?}");
        assert!(frame[2].ends_with("> drain 7s"), "{frame:#?}");
        assert_eq!(frame[3], LEGEND);
        live.finished("worker-1", "drain", "FAILED", 9.0);
        assert!(live.frame(t0)[2].starts_with("worker-1  X "));
    }

    #[test]
    fn the_running_steps_progress_shows_beside_its_time_with_the_time_left_ticking() {
        let t0 = Instant::now();
        let mut live = Live::new(&["cp1".into(), "w1".into()]);
        live.progress("w1", "ignored: nothing runs", None, t0);
        assert!(!live.frame(t0)[2].contains("ignored"));
        live.running("w1", "drain", t0);
        live.progress(
            "w1",
            "default/web-0 refused by PodDisruptionBudget default/web\nsecond line",
            Some(Duration::from_secs(300)),
            t0 + Duration::from_secs(5),
        );
        let row = &live.frame(t0 + Duration::from_secs(15))[2];
        assert!(
            row.ends_with(
                "> drain 15s: default/web-0 refused by PodDisruptionBudget default/web (290 s left)"
            ),
            "{row}"
        );
        // A narrow terminal: the text is cut to the row, never wrapped.
        live.width = 80;
        let row = &live.frame(t0 + Duration::from_secs(15))[2];
        assert_eq!(row.chars().count(), 80, "{row}");
        assert!(row.ends_with('…'), "{row}");
        // Gone with its step.
        live.finished("w1", "drain", "changed", 20.0);
        live.running("w1", "packages", t0);
        assert!(
            live.frame(t0)[2].ends_with("> packages 0s"),
            "{:?}",
            live.frame(t0)
        );
    }

    #[test]
    fn long_rows_keep_the_latest_marks() {
        let mut live = Live::new(&["h".into()]);
        for _ in 0..MARKS {
            live.finished("h", "s", "ok", 0.0);
        }
        live.finished("h", "s", "changed", 0.0);
        let row = &live.frame(Instant::now())[1];
        let marks = &row[6..6 + MARKS];
        assert_eq!(marks.matches('.').count(), MARKS - 1, "{row}");
        assert!(marks.ends_with(".+"), "{row}");
    }

    #[test]
    fn redraws_replace_the_previous_table_and_log_lines_scroll_above_it() {
        let now = Instant::now();
        let mut live = Live::new(&["a".into(), "b".into()]);
        let mut first = Vec::new();
        live.draw(&mut first, &["== preflight".into()], now);
        let first = String::from_utf8(first).unwrap();
        assert!(first.starts_with("== preflight\nHOST"), "{first:?}");
        assert!(
            !first.contains("\x1b[4F"),
            "nothing to move back over yet: {first:?}"
        );
        let mut second = Vec::new();
        live.finished("a", "preflight", "ok", 0.1);
        live.draw(&mut second, &[], now);
        let second = String::from_utf8(second).unwrap();
        // Header, two hosts and the legend were on screen: back 4 lines, clear, redraw.
        assert!(second.starts_with("\x1b[4F\x1b[J"), "{second:?}");
        // On a narrow terminal the header and the rows wrap: every row on screen is moved over.
        live.width = 40;
        let mut narrow = Vec::new();
        live.draw(&mut narrow, &[], now);
        let rows: usize = live.frame(now).iter().map(|l| rows(l, 40)).sum();
        assert!(rows > 4, "{rows}");
        let mut again = Vec::new();
        live.draw(&mut again, &[], now);
        let again = String::from_utf8(again).unwrap();
        assert!(again.starts_with(&format!("\x1b[{rows}F\x1b[J")), "{again:?}");
        assert!(second.contains("preflight ok (0.1s)"), "{second:?}");
        live.freeze();
        let mut last = Vec::new();
        live.draw(&mut last, &["report".into()], now);
        assert_eq!(
            String::from_utf8(last).unwrap(),
            "report\n",
            "the frozen table stays"
        );
    }
}
