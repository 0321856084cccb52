//! `pgbox top`: a live view, refreshed every second: the `stats` summary, the
//! sessions (sortable), the top queries, and the advice.
//!
//! One session on the server reads everything (`pgbox top` in pg_stat_activity,
//! left out of the list); the container's counters come from the engine each tick.
//! Keys are read on a thread of their own (crossterm's blocking reader) and sent to
//! the async loop. The terminal is put back by a guard on every exit: `q`, Ctrl-C
//! (a key in raw mode), an error, or the command being dropped on a signal.
//! Cancel and terminate act on the selected session after a `y`.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Row, Table, TableState, Wrap};
use ratatui::{DefaultTerminal, Frame};
use tokio::sync::mpsc;

use super::sample::{self, Rates, Session, Want};
use super::stats::{self, clip, Report};
use super::{advice, facts, Source};
use crate::printer::{age, Printer};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sort {
    Duration,
    State,
    Database,
    Pid,
}

impl Sort {
    fn next(self) -> Sort {
        match self {
            Sort::Duration => Sort::State,
            Sort::State => Sort::Database,
            Sort::Database => Sort::Pid,
            Sort::Pid => Sort::Duration,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Sort::Duration => "duration",
            Sort::State => "state",
            Sort::Database => "database",
            Sort::Pid => "pid",
        }
    }
}

#[derive(Debug, Clone)]
enum Action {
    Cancel(i32, String),
    Terminate(i32, String),
}

struct App {
    sort: Sort,
    paused: bool,
    table: TableState,
    confirm: Option<Action>,
    message: Option<String>,
    report: Option<Report>,
    error: Option<String>,
}

fn sort_sessions(v: &mut [Session], by: Sort) {
    let dur = |s: &Session| s.xact_s.or(s.query_s).unwrap_or(0.0);
    match by {
        Sort::Duration => v.sort_by(|a, b| dur(b).total_cmp(&dur(a)).then(a.pid.cmp(&b.pid))),
        Sort::State => v.sort_by(|a, b| a.state.cmp(&b.state).then(dur(b).total_cmp(&dur(a)))),
        Sort::Database => v.sort_by(|a, b| a.database.cmp(&b.database).then(a.pid.cmp(&b.pid))),
        Sort::Pid => v.sort_by_key(|s| s.pid),
    }
}

/// Puts the terminal back when dropped.
struct Screen {
    stop: Arc<AtomicBool>,
}

impl Drop for Screen {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        ratatui::restore();
    }
}

/// Run the live view; without a terminal, print `stats` once.
pub async fn run(src: Source, p: &Printer) -> anyhow::Result<u8> {
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() || p.json() {
        let r = stats::collect(&src).await?;
        stats::print(&r, p)?;
        return Ok(0);
    }
    let client = src.connect().await?;
    let stm = src.statements(&client).await;
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, mut keys) = mpsc::unbounded_channel();
    {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                if event::poll(Duration::from_millis(100)).unwrap_or(false) {
                    match event::read() {
                        Ok(Event::Key(k)) if k.kind == KeyEventKind::Press => {
                            if tx.send(k).is_err() {
                                break;
                            }
                        }
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
            }
        });
    }
    let mut terminal = ratatui::init();
    let _screen = Screen { stop };
    let mut app = App {
        sort: Sort::Duration,
        paused: false,
        table: TableState::default().with_selected(Some(0)),
        confirm: None,
        message: None,
        report: None,
        error: None,
    };
    let mut prev_counters = None;
    let boxes = src.sampler(Duration::from_secs(1));
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        draw(&mut terminal, &mut app)?;
        tokio::select! {
            _ = tick.tick() => {
                if app.paused {
                    continue;
                }
                let want = Want { tables: 5, statements: 5, sessions: true };
                let snap = sample::snapshot(&client, stm.client(&client), want).await;
                match snap {
                    Ok(mut snapshot) => {
                        sort_sessions(&mut snapshot.sessions, app.sort);
                        let rates = prev_counters
                            .map(|c| Rates::between(&c, &snapshot.counters))
                            .unwrap_or_default();
                        prev_counters = Some(snapshot.counters);
                        let container = boxes.borrow().clone();
                        let facts = facts::read(&src.settings);
                        let advice = advice::advise(&snapshot, &rates, container.as_ref(), &facts);
                        app.report = Some(Report { snapshot, rates, container, facts, advice });
                        app.error = None;
                    }
                    Err(e) => app.error = Some(format!("{e:#}")),
                }
            }
            k = keys.recv() => {
                let Some(k) = k else { return Ok(0) };
                let ctrl_c = k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL);
                if ctrl_c {
                    return Ok(130);
                }
                if let Some(action) = app.confirm.take() {
                    if k.code == KeyCode::Char('y') {
                        app.message = Some(act(&client, &action).await);
                    } else {
                        app.message = Some("nothing done".into());
                    }
                    continue;
                }
                let selected = app
                    .report
                    .as_ref()
                    .and_then(|r| r.snapshot.sessions.get(app.table.selected().unwrap_or(0)))
                    .map(|s| (s.pid, format!("{}@{} {}", s.user, s.database, clip(&s.query, 40))));
                match k.code {
                    KeyCode::Char('q') | KeyCode::Esc => return Ok(0),
                    KeyCode::Char('s') => {
                        app.sort = app.sort.next();
                        if let Some(r) = app.report.as_mut() {
                            sort_sessions(&mut r.snapshot.sessions, app.sort);
                        }
                    }
                    KeyCode::Char('p') | KeyCode::Char(' ') => app.paused = !app.paused,
                    KeyCode::Down | KeyCode::Char('j') => app.table.select_next(),
                    KeyCode::Up => app.table.select_previous(),
                    KeyCode::Char('c') => app.confirm = selected.map(|(p, d)| Action::Cancel(p, d)),
                    KeyCode::Char('t') | KeyCode::Char('k') => {
                        app.confirm = selected.map(|(p, d)| Action::Terminate(p, d))
                    }
                    _ => {}
                }
            }
        }
    }
}

async fn act(c: &tokio_postgres::Client, a: &Action) -> String {
    let (f, pid, verb) = match a {
        Action::Cancel(p, _) => ("pg_cancel_backend", *p, "cancelled the query of"),
        Action::Terminate(p, _) => ("pg_terminate_backend", *p, "terminated"),
    };
    match c.query_one(&format!("select {f}($1)"), &[&pid]).await {
        Ok(r) if r.get::<_, bool>(0) => format!("{verb} pid {pid}"),
        Ok(_) => format!("pid {pid} is gone (nothing done)"),
        Err(e) => format!("could not act on pid {pid}: {e}"),
    }
}

fn draw(t: &mut DefaultTerminal, app: &mut App) -> std::io::Result<()> {
    t.draw(|f| ui(f, app))?;
    Ok(())
}

fn ui(f: &mut Frame, app: &mut App) {
    let area = f.area();
    let head_rows: Vec<Line> = match &app.report {
        Some(r) => stats::summary(r)
            .into_iter()
            .map(|(k, v)| Line::from(format!("{k:<12}{v}")))
            .collect(),
        None => vec![Line::from("reading the server…")],
    };
    let advice: Vec<Line> = app
        .report
        .as_ref()
        .map(|r| {
            r.advice
                .iter()
                .take(4)
                .map(|a| Line::from(format!("! {a}")))
                .collect()
        })
        .unwrap_or_default();
    let [head, sessions, queries, adv, status] = Layout::vertical([
        Constraint::Length(head_rows.len() as u16),
        Constraint::Min(6),
        Constraint::Length(7),
        Constraint::Length(advice.len() as u16),
        Constraint::Length(1),
    ])
    .areas(area);
    f.render_widget(Paragraph::new(head_rows), head);

    let (rows, n) = match &app.report {
        Some(r) => (
            r.snapshot
                .sessions
                .iter()
                .map(|s| {
                    Row::new(vec![
                        s.pid.to_string(),
                        s.user.clone(),
                        s.database.clone(),
                        s.state.clone(),
                        s.wait.clone(),
                        s.xact_s.map_or_else(String::new, |x| age(x as i64)),
                        s.query_s.map_or_else(String::new, |x| age(x as i64)),
                        s.query.clone(),
                    ])
                })
                .collect::<Vec<_>>(),
            r.snapshot.sessions.len(),
        ),
        None => (Vec::new(), 0),
    };
    let title = format!(
        " sessions: {n}  sort: {} ▼{} ",
        app.sort.name(),
        if app.paused { "  PAUSED" } else { "" }
    );
    let table = Table::new(
        rows,
        [
            Constraint::Length(8),
            Constraint::Length(12),
            Constraint::Length(12),
            Constraint::Length(20),
            Constraint::Length(18),
            Constraint::Length(6),
            Constraint::Length(6),
            Constraint::Min(20),
        ],
    )
    .header(
        Row::new([
            "pid", "user", "database", "state", "wait", "xact", "query", "text",
        ])
        .style(Style::new().add_modifier(Modifier::BOLD)),
    )
    .block(Block::new().borders(Borders::TOP).title(title))
    .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED));
    f.render_stateful_widget(table, sessions, &mut app.table);

    let q: Vec<Row> = app
        .report
        .as_ref()
        .and_then(|r| r.snapshot.top_total.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|s| {
            Row::new(vec![
                s.calls.to_string(),
                format!("{:.0}", s.total_ms),
                format!("{:.2}", s.mean_ms),
                s.query,
            ])
        })
        .collect();
    let qt = Table::new(
        q,
        [
            Constraint::Length(9),
            Constraint::Length(11),
            Constraint::Length(9),
            Constraint::Min(20),
        ],
    )
    .header(Row::new([
        "calls",
        "total ms",
        "mean ms",
        "top queries by total time",
    ]))
    .block(Block::new().borders(Borders::TOP));
    f.render_widget(qt, queries);
    f.render_widget(Paragraph::new(advice), adv);

    let line = match (&app.error, &app.message) {
        (Some(e), _) => format!("error: {}", clip(e, 100)),
        (None, Some(m)) => m.clone(),
        _ => "q quit  s sort  p pause  ↑↓ select  c cancel query  t terminate session".into(),
    };
    f.render_widget(Paragraph::new(line), status);

    if let Some(a) = &app.confirm {
        let text = match a {
            Action::Cancel(p, d) => format!("Cancel the query of pid {p} ({d})? y/N"),
            Action::Terminate(p, d) => format!("Terminate pid {p} ({d})? y/N"),
        };
        let w = (text.chars().count() as u16 + 4).min(area.width);
        let r = Rect {
            x: area.x + (area.width.saturating_sub(w)) / 2,
            y: area.y + area.height / 2,
            width: w,
            height: 3.min(area.height),
        };
        f.render_widget(Clear, r);
        f.render_widget(
            Paragraph::new(text)
                .wrap(Wrap { trim: true })
                .block(Block::new().borders(Borders::ALL)),
            r,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(pid: i32, db: &str, state: &str, xact: Option<f64>) -> Session {
        Session {
            pid,
            user: "u".into(),
            database: db.into(),
            application: String::new(),
            client: String::new(),
            state: state.into(),
            wait: String::new(),
            xact_s: xact,
            query_s: None,
            query: String::new(),
        }
    }

    #[test]
    fn sessions_sort_by_each_key() {
        let mut v = vec![
            s(3, "b", "idle", None),
            s(1, "c", "active", Some(5.0)),
            s(2, "a", "active", Some(9.0)),
        ];
        sort_sessions(&mut v, Sort::Duration);
        assert_eq!(v.iter().map(|s| s.pid).collect::<Vec<_>>(), [2, 1, 3]);
        sort_sessions(&mut v, Sort::Database);
        assert_eq!(v.iter().map(|s| s.pid).collect::<Vec<_>>(), [2, 3, 1]);
        sort_sessions(&mut v, Sort::Pid);
        assert_eq!(v.iter().map(|s| s.pid).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(Sort::Pid.next(), Sort::Duration);
    }
}
