//! The report as one self-contained HTML file: the tables of the text report, and per drill the
//! trend of each phase (actual against target, run by run) and of the production-equivalent
//! budget spend, drawn with plotters into inline SVG. No script, style or font is fetched: it
//! works offline and can be attached to a release.

use std::fmt::Write as _;

use plotters::prelude::*;

use super::glance::{AlertRecord, Glance};
use super::report::{DrillStats, Report};

const WIDTH: u32 = 560;
const HEIGHT: u32 = 220;
const PHASES: [&str; 4] = ["detect", "diagnose", "mitigate", "resolve"];
/// Charts show at most this many of the latest runs: a trend, not a scatter of thousands.
const CHART_RUNS: usize = 50;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A line chart of `actual` (points, `None` = not reached) against `target`, per run (labelled
/// with `dates`), in `unit`s; an empty string if plotters fails (the tables still stand). The top
/// third is headroom, so the legend never hides a point.
fn chart(title: &str, unit: &str, dates: &[String], actual: &[Option<f64>], target: &[Option<f64>]) -> String {
    let mut svg = String::new();
    let drawn = (|| -> Result<(), Box<dyn std::error::Error>> {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE)?;
        let runs = actual.len().max(1);
        let top = actual.iter().chain(target).flatten().copied().fold(0.0_f64, f64::max).max(1e-9) * 1.5;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 15))
            .margin(10)
            .x_label_area_size(28)
            .y_label_area_size(48)
            .build_cartesian_2d(0.5_f64..runs as f64 + 0.5, 0.0_f64..top)?;
        chart
            .configure_mesh()
            .x_desc("run start (UTC)")
            .y_desc(unit)
            .x_labels(runs.min(6))
            .x_label_formatter(&|x| {
                let index = x.round() as usize;
                if (x - x.round()).abs() > 0.01 || index == 0 {
                    return String::new();
                }
                dates.get(index - 1).map_or_else(String::new, |d| d.get(5..).unwrap_or(d).to_owned())
            })
            .draw()?;
        let points = |values: &[Option<f64>]| -> Vec<(f64, f64)> {
            values.iter().enumerate().filter_map(|(i, v)| v.map(|v| (i as f64 + 1.0, v))).collect()
        };
        let target_points = points(target);
        if !target_points.is_empty() {
            chart
                .draw_series(LineSeries::new(target_points, RED.stroke_width(2)))?
                .label("target")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], RED.stroke_width(2)));
        }
        let actual_points = points(actual);
        chart
            .draw_series(LineSeries::new(actual_points.clone(), BLUE.stroke_width(2)))?
            .label("actual")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLUE.stroke_width(2)));
        chart.draw_series(actual_points.iter().map(|p| Circle::new(*p, 4, BLUE.filled())))?;
        chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
        root.present()?;
        Ok(())
    })();
    if drawn.is_err() {
        return String::new();
    }
    svg
}

fn minutes(ms: Option<u64>) -> Option<f64> {
    #[allow(clippy::cast_precision_loss)]
    ms.map(|ms| ms as f64 / 60_000.0)
}

fn drill_section(out: &mut String, d: &DrillStats) {
    let _ = writeln!(out, "<section class=\"drill\"><h2>{} / {}</h2>", escape(&d.team), escape(&d.drill));
    let outcomes: Vec<String> = d.outcomes.iter().map(|(k, v)| format!("{v} {k}")).collect();
    let _ = writeln!(out, "<p>{} run(s): {}.</p>", d.runs, escape(&outcomes.join(", ")));
    out.push_str("<table><tr><th>phase</th><th>target</th><th>within target</th><th>median</th><th>p90</th><th>min</th><th>max</th></tr>\n");
    for p in &d.phases {
        let cells: Vec<String> = p.cells().iter().map(|c| format!("<td>{}</td>", escape(c))).collect();
        let _ = writeln!(out, "<tr>{}</tr>", cells.concat());
    }
    out.push_str("</table>\n");
    let _ = writeln!(out, "<p>{}</p>", d.detection_sentence());
    if let Some(budget) = d.budget_sentence() {
        let _ = writeln!(out, "<p>{budget}</p>");
    }
    let recent = &d.history[d.history.len().saturating_sub(CHART_RUNS)..];
    if recent.len() < d.history.len() {
        let _ = writeln!(out, "<p>The charts show the latest {} of {} runs.</p>", recent.len(), d.history.len());
    }
    let dates: Vec<String> = recent.iter().map(|r| super::glance::date(r.started_wall_ms)).collect();
    out.push_str("<div class=\"charts\">\n");
    for (i, name) in PHASES.iter().enumerate() {
        let actual: Vec<Option<f64>> = recent.iter().map(|r| minutes(r.actual_ms[i])).collect();
        let target: Vec<Option<f64>> = recent.iter().map(|r| minutes(Some(r.target_ms[i]))).collect();
        let title = format!("{name}: minutes from t0, run by run");
        let _ = writeln!(
            out,
            "<figure class=\"chart\" data-phase=\"{name}\">{}</figure>",
            chart(&title, "minutes", &dates, &actual, &target)
        );
    }
    if recent.iter().any(|r| r.budget_share.is_some()) {
        let spend: Vec<Option<f64>> = recent.iter().map(|r| r.budget_share.map(|s| s * 100.0)).collect();
        let none = vec![None; spend.len()];
        let svg = chart("production-equivalent budget spend, % of the budget", "% of budget", &dates, &spend, &none);
        let _ = writeln!(out, "<figure class=\"chart\" data-phase=\"budget\">{svg}</figure>");
    }
    out.push_str("</div></section>\n");
}

/// The manager's ten-second answer: a team × drill grid of verdicts, last runs, phase trends and
/// expected alerts, then the reasons behind every NOT READY.
fn glance(out: &mut String, rows: &[Glance]) {
    if rows.is_empty() {
        return;
    }
    let mut teams: Vec<&str> = rows.iter().map(|g| g.team.as_str()).collect();
    let mut drills: Vec<&str> = rows.iter().map(|g| g.drill.as_str()).collect();
    teams.sort_unstable();
    teams.dedup();
    drills.sort_unstable();
    drills.dedup();
    let ready = rows.iter().filter(|g| g.ready).count();
    let _ = writeln!(
        out,
        "<section id=\"glance\"><h2>At a glance</h2>\n<p>{ready} of {} team and drill pairs ready (the default \
         readiness policy: each drill run twice in the last 60 days, the last two runs within every target, \
         expected alerts on time). Trends compare the newer half of the runs with the older half.</p>",
        rows.len()
    );
    out.push_str("<table class=\"glance\"><tr><th>team</th>");
    for drill in &drills {
        let _ = write!(out, "<th>{}</th>", escape(drill));
    }
    out.push_str("</tr>\n");
    for team in &teams {
        let _ = write!(out, "<tr><th>{}</th>", escape(team));
        for drill in &drills {
            let Some(g) = rows.iter().find(|g| g.team == *team && g.drill == *drill) else {
                out.push_str("<td class=\"none\">never run</td>");
                continue;
            };
            let (class, verdict) = if g.ready { ("ready", "READY") } else { ("not-ready", "NOT READY") };
            let trends: Vec<String> =
                PHASES.iter().zip(g.trends).map(|(phase, trend)| format!("{phase} {}", trend.words())).collect();
            let alerts = if g.alerts == AlertRecord::default() {
                String::new()
            } else {
                format!("<br>alerts: {} on time, {} late, {} never", g.alerts.on_time, g.alerts.late, g.alerts.never)
            };
            let _ = write!(
                out,
                "<td class=\"{class}\"><strong>{verdict}</strong><br>last run {}<br>{}{alerts}</td>",
                g.last_run.as_deref().unwrap_or("none in the window"),
                trends.join("<br>"),
            );
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
    let failing: Vec<&Glance> = rows.iter().filter(|g| !g.ready).collect();
    if !failing.is_empty() {
        out.push_str("<h3>Why not ready</h3>\n<ul>\n");
        for g in failing {
            let _ = writeln!(
                out,
                "<li><strong>{} / {}</strong>: {}</li>",
                escape(&g.team),
                escape(&g.drill),
                escape(&g.reasons.join("; "))
            );
        }
        out.push_str("</ul>\n");
    }
    out.push_str("</section>\n");
}

/// The report's style: in the page's head for the file, in the console's stylesheet there.
pub const STYLE: &str = "\
    .report table { border-collapse: collapse; margin: 0.5em 0; }\n\
    .report td, .report th { border: 1px solid #bbb; padding: 2px 8px; text-align: right; }\n\
    .report td:first-child, .report th:first-child { text-align: left; }\n\
    .report .charts { display: flex; flex-wrap: wrap; gap: 8px; } .report figure { margin: 0; }\n\
    .report table.glance td { text-align: left; vertical-align: top; } .report td.ready { background: #d9f2d9; }\n\
    .report td.not-ready { background: #f8d7d7; } .report td.none { color: #666; }\n";

/// The whole report as one HTML file.
pub fn html(report: &Report) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>firedrill report</title>\n<style>\n\
         body {{ font-family: sans-serif; margin: 2em; color: #222; }}\n{STYLE}</style></head><body>\n\
         <h1>firedrill report</h1>\n{}</body></html>\n",
        body(report)
    )
}

/// The report's content, in a `div class="report"`: the manager's answer, each drill, coverage
/// and the files skipped (for a page of its own, or inside the console's).
pub fn body(report: &Report) -> String {
    let mut out = String::from("<div class=\"report\">\n");
    if report.drills.is_empty() {
        out.push_str("<p>No scorecards match.</p>\n");
    }
    glance(&mut out, &report.glance);
    for d in &report.drills {
        drill_section(&mut out, d);
    }
    if !report.coverage.is_empty() {
        out.push_str("<h2>Coverage</h2>\n<table><tr><th>team</th><th>never run</th><th>stale</th><th>fault kinds never practised</th></tr>\n");
        for c in &report.coverage {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&c.team),
                escape(&c.never_run.join(", ")),
                escape(&c.stale.join(", ")),
                escape(&c.kinds_never_practised.join(", "))
            );
        }
        out.push_str("</table>\n");
    }
    if !report.skipped.is_empty() {
        out.push_str("<h2>Skipped files</h2>\n<ul>\n");
        for s in &report.skipped {
            let _ = writeln!(out, "<li><code>{}</code>: {}</li>", escape(&s.path), escape(&s.reason));
        }
        out.push_str("</ul>\n");
    }
    out.push_str("</div>\n");
    out
}
