//! `sluice watch` full screen: the cards, a persisted/s sparkline (history loaded at start, the
//! newest second at the right edge, its span and scale in the title), the active alerts, and
//! panes for the workers (late and dead ones marked) and the recent batches, drawn with
//! ratatui; readable at 80×24. q, Esc or Ctrl-C quits.

use std::collections::VecDeque;
use std::time::Duration;

use ratatui::crossterm::event::{self, Event as TermEvent, KeyCode, KeyModifiers};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::Line;
use ratatui::widgets::{Block, List, ListItem, Paragraph, Sparkline};
use ratatui::{DefaultTerminal, Frame};
use sluice_client::Client;
use sluice_client::feed::{Event, subscribe};
use sluice_proto::api::{GoneWorker, WorkerInfo, WorkerList, WorkerState};
use sluice_proto::events::BatchEvent;
use sluice_proto::stats::Stats;
use tokio::sync::mpsc;

use crate::view;
use crate::watch::ActiveAlerts;

/// Seconds of persisted/s kept for the sparkline (it shows the newest that fit).
const SPARK_POINTS: usize = 300;
/// Recent batches kept for their pane.
const BATCHES_KEPT: usize = 200;
/// How often the workers pane is refreshed.
const WORKERS_EVERY: Duration = Duration::from_secs(2);

/// What the screen shows.
#[derive(Debug, Default)]
pub struct Screen {
    /// The gateway's address.
    pub gateway: String,
    /// `live` or why not.
    pub status: String,
    /// The latest stats, once one came.
    pub stats: Option<Stats>,
    /// persisted/s, one per second, oldest first; `None` for a second with no reading.
    pub persisted: VecDeque<Option<u64>>,
    /// Active alerts.
    pub alerts: ActiveAlerts,
    /// The worker registry, as last read.
    pub workers: Option<WorkerList>,
    /// The latest batches, newest first.
    pub batches: VecDeque<BatchEvent>,
}

impl Screen {
    fn push_rate(&mut self, rate: Option<f64>) {
        self.persisted.push_back(rate.map(|r| r.round() as u64));
        while self.persisted.len() > SPARK_POINTS {
            self.persisted.pop_front();
        }
    }

    fn push_batch(&mut self, batch: BatchEvent) {
        self.batches.push_front(batch);
        self.batches.truncate(BATCHES_KEPT);
    }

    /// Replaces the sparkline's points with a 5-minute `history` answer.
    fn load_history(&mut self, history: &serde_json::Value) {
        self.persisted.clear();
        for rate in history["persisted_per_second"]
            .as_array()
            .into_iter()
            .flatten()
        {
            self.push_rate(rate.as_f64());
        }
    }
}

/// Runs the full-screen view until the user quits.
pub async fn run(api: &Client) -> anyhow::Result<()> {
    let mut screen = Screen {
        gateway: api.url(""),
        status: "connecting".into(),
        ..Screen::default()
    };
    let keys = keys();
    let mut terminal = ratatui::init();
    let result = drive(api, &mut terminal, &mut screen, keys).await;
    ratatui::restore();
    result
}

async fn drive(
    api: &Client,
    terminal: &mut DefaultTerminal,
    screen: &mut Screen,
    mut keys: mpsc::Receiver<()>,
) -> anyhow::Result<()> {
    let mut events = subscribe(api, true);
    let mut workers = tokio::time::interval(WORKERS_EVERY);
    loop {
        terminal.draw(|frame| draw(frame, screen))?;
        let event = tokio::select! {
            event = events.recv() => event,
            _ = workers.tick() => {
                screen.workers = api.workers().await.ok();
                continue;
            }
            _ = keys.recv() => return Ok(()),
        };
        match event {
            None => return Ok(()),
            Some(Event::Connected) => connected(api, screen).await,
            Some(event) => screen.apply(event),
        }
    }
}

impl Screen {
    /// Takes in one event of the feed (a connection is [`connected`]'s).
    pub fn apply(&mut self, event: Event) {
        match event {
            Event::Connected => self.status = "live".into(),
            Event::Disconnected(reason) => self.status = format!("reconnecting ({reason})"),
            Event::Stats(stats) => {
                self.push_rate(Some(stats.current_rps));
                self.stats = Some(*stats);
                self.status = "live".into();
            }
            // Until Redis answers again no stats come: the cards are the last ones, not live.
            Event::Redis(false) => self.status = "stale: the server cannot read Redis".into(),
            Event::Redis(true) => {}
            Event::Alert(alert) => self.alerts.apply(&alert),
            Event::Batch(batch) => self.push_batch(batch),
        }
    }
}

/// On every (re)connection: the alerts, the last 5 minutes and the recent batches, so the
/// screen is full at once and fills whatever gap it missed.
async fn connected(api: &Client, screen: &mut Screen) {
    screen.status = "live".into();
    if let Ok(list) = api.alerts().await {
        screen.alerts.reset(&list);
    }
    if let Ok(history) = api.history("5m").await {
        screen.load_history(&history);
    }
    if let Ok(batches) = api.recent_batches().await {
        screen.batches = batches.into();
    }
    screen.workers = api.workers().await.ok();
}

/// A thread reading the keyboard; sends once when the user asks to quit.
fn keys() -> mpsc::Receiver<()> {
    let (tx, rx) = mpsc::channel(1);
    std::thread::spawn(move || {
        loop {
            if tx.is_closed() {
                return;
            }
            if !event::poll(Duration::from_millis(200)).unwrap_or(false) {
                continue;
            }
            if let Ok(TermEvent::Key(key)) = event::read() {
                let ctrl_c =
                    key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL);
                if ctrl_c || matches!(key.code, KeyCode::Char('q') | KeyCode::Esc) {
                    let _ = tx.blocking_send(());
                    return;
                }
            }
        }
    });
    rx
}

/// Draws the whole screen.
pub fn draw(frame: &mut Frame, screen: &Screen) {
    let alert_rows = if screen.alerts.0.is_empty() {
        0
    } else {
        screen.alerts.0.len().min(3) as u16 + 2
    };
    let [title, cards, spark, alerts, panes] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(9),
        Constraint::Length(6),
        Constraint::Length(alert_rows),
        Constraint::Min(3),
    ])
    .areas(frame.area());
    draw_title(frame, title, screen);
    draw_cards(frame, cards, screen.stats.as_ref());
    draw_sparkline(frame, spark, &screen.persisted);
    if alert_rows > 0 {
        let items: Vec<ListItem> = screen
            .alerts
            .0
            .values()
            .map(|a| ListItem::new(view::alert_line(a)).fg(Color::Red))
            .collect();
        frame.render_widget(
            List::new(items).block(Block::bordered().title(" active alerts ")),
            alerts,
        );
    }
    let [workers, batches] =
        Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(panes);
    draw_workers(frame, workers, screen.workers.as_ref());
    draw_batches(frame, batches, &screen.batches);
}

fn draw_title(frame: &mut Frame, area: Rect, screen: &Screen) {
    let colour = if screen.status == "live" {
        Color::Green
    } else {
        Color::Red
    };
    let alerts = match screen.alerts.0.len() {
        0 => "no active alert".dim(),
        n => format!("{n} active alert{}", if n == 1 { "" } else { "s" }).fg(Color::Red),
    };
    frame.render_widget(
        Line::from(vec![
            " sluice watch ".bold(),
            format!("{} ", screen.gateway).into(),
            screen.status.clone().fg(colour),
            "  ".into(),
            alerts,
            "  q quits".dim(),
        ]),
        area,
    );
}

/// The newest seconds that fit, ending at the right edge; the title says how long they span,
/// the highest and the latest value.
fn draw_sparkline(frame: &mut Frame, area: Rect, persisted: &VecDeque<Option<u64>>) {
    let fits = usize::from(area.width.saturating_sub(2));
    let shown: Vec<Option<u64>> = persisted
        .iter()
        .skip(persisted.len().saturating_sub(fits))
        .copied()
        .collect();
    let pad = fits.saturating_sub(shown.len());
    let bars: Vec<Option<u64>> = std::iter::repeat_n(None, pad)
        .chain(shown.iter().copied())
        .collect();
    let max = shown.iter().flatten().copied().max().unwrap_or(0);
    let latest = shown.iter().rev().flatten().next().copied();
    let title = format!(
        " persisted/s, last {} · max {}/s · now {} ",
        span(shown.len()),
        view::thousands(max),
        latest.map_or_else(|| "–".to_owned(), |v| format!("{}/s", view::thousands(v)))
    );
    frame.render_widget(
        Sparkline::default()
            .block(Block::bordered().title(title))
            .data(bars)
            .max(max.max(1))
            .style(Style::default().fg(Color::Green)),
        area,
    );
}

/// `seconds` as the title reads it: `78 s`, `5 min`, `2 min 10 s`.
pub fn span(seconds: usize) -> String {
    match (seconds / 60, seconds % 60) {
        (0, s) => format!("{s} s"),
        (m, 0) => format!("{m} min"),
        (m, s) => format!("{m} min {s} s"),
    }
}

/// One line per worker, as `GET /workers` states it: its state (late, presumed dead and gone
/// in colour), heartbeat age, rows/s (`?` when it is silent: unknown), batches, then its id,
/// which is cut first when the pane is narrow; then the workers that left, saying how.
fn draw_workers(frame: &mut Frame, area: Rect, list: Option<&WorkerList>) {
    let items: Vec<ListItem> = match list {
        None => vec![ListItem::new("workers unavailable".dim())],
        Some(list) if list.workers.is_empty() && list.gone.is_empty() => {
            vec![ListItem::new("no worker".dim())]
        }
        Some(list) => {
            // The state column as wide as its longest label shown.
            let states = list.workers.iter().map(|w| w.state);
            let states = states.chain(list.gone.iter().map(|g| g.state));
            let width = states.map(|s| s.label().len()).max().unwrap_or(0);
            let workers = list.workers.iter().map(|w| worker_line(w, width));
            workers
                .chain(list.gone.iter().map(|g| gone_line(g, width)))
                .collect()
        }
    };
    let title = list.map_or(" workers ".to_owned(), |l| {
        format!(" workers ({}) ", l.workers.len())
    });
    frame.render_widget(List::new(items).block(Block::bordered().title(title)), area);
}

fn colour(state: WorkerState) -> Color {
    match state {
        WorkerState::Up => Color::Green,
        WorkerState::Late => Color::Yellow,
        WorkerState::PresumedDead => Color::Red,
        WorkerState::Gone => Color::DarkGray,
    }
}

fn worker_line(worker: &WorkerInfo, width: usize) -> ListItem<'static> {
    let colour = colour(worker.state);
    let rate = worker
        .persisted_per_second
        .map_or_else(|| "?".to_owned(), |r| view::thousands(r.round() as u64));
    let batches = worker
        .batches
        .map_or_else(|| "–".to_owned(), view::thousands);
    let age = seconds(worker.heartbeat_age_ms);
    ListItem::new(Line::from(vec![
        format!("{:<width$} ", worker.state.label())
            .fg(colour)
            .bold(),
        format!("{age:>5} {rate:>5}/s {batches:>5}b ").fg(colour),
        worker.id.clone().into(),
    ]))
}

fn gone_line(worker: &GoneWorker, width: usize) -> ListItem<'static> {
    let colour = colour(worker.state);
    let ago = seconds(worker.left_ago_ms);
    ListItem::new(Line::from(vec![
        format!("{:<width$} ", worker.state.label())
            .fg(colour)
            .bold(),
        format!("{ago:>5} {} ", worker.departure.label()).fg(colour),
        worker.id.clone().into(),
    ]))
}

fn seconds(ms: u64) -> String {
    format!("{:.1}s", ms as f64 / 1000.0)
}

/// The recent batches, newest first: one line each, or one line per second when a second had
/// more than one (`12 batches · 1,200 rows`).
fn draw_batches(frame: &mut Frame, area: Rect, batches: &VecDeque<BatchEvent>) {
    let rows = usize::from(area.height.saturating_sub(2));
    let items: Vec<ListItem> = if batches.is_empty() {
        vec![ListItem::new("no batch yet".dim())]
    } else {
        batch_lines(batches, rows)
            .into_iter()
            .map(ListItem::new)
            .collect()
    };
    frame.render_widget(
        List::new(items).block(Block::bordered().title(" recent batches (UTC) ")),
        area,
    );
}

/// At most `rows` lines for `batches` (newest first), a second's batches summarised in one.
pub fn batch_lines(batches: &VecDeque<BatchEvent>, rows: usize) -> Vec<String> {
    let second = |b: &BatchEvent| b.committed_at.format("%H:%M:%S").to_string();
    let mut lines = Vec::new();
    let mut i = 0;
    while i < batches.len() && lines.len() < rows {
        let at = second(&batches[i]);
        let same = batches
            .iter()
            .skip(i)
            .take_while(|b| second(b) == at)
            .count();
        let group = batches.iter().skip(i).take(same);
        lines.push(if same == 1 {
            let b = &batches[i];
            format!(
                "{at}  {} of {}  {}",
                view::thousands(b.inserted),
                view::thousands(b.size),
                b.worker_id
            )
        } else {
            let rows: u64 = group.map(|b| b.inserted).sum();
            format!("{at}  {same} batches · {} rows", view::thousands(rows))
        });
        i += same;
    }
    lines
}

fn draw_cards(frame: &mut Frame, area: Rect, stats: Option<&Stats>) {
    let rows = Layout::vertical([Constraint::Length(3); 3]).split(area);
    for (r, row) in rows.iter().enumerate() {
        let cells = Layout::horizontal([Constraint::Ratio(1, 4); 4]).split(*row);
        for (c, cell) in cells.iter().enumerate() {
            let Some(card) = view::cards().get(r * 4 + c) else {
                continue;
            };
            let text = stats.map_or_else(|| "–".to_owned(), |s| view::show(card, s));
            frame.render_widget(
                Paragraph::new(text.bold())
                    .block(Block::bordered().title(format!(" {} ", view::label(card)))),
                *cell,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use sluice_proto::api::Departure;

    fn batch(at: &str, worker: &str, rows: u64) -> BatchEvent {
        let event = serde_json::json!({
            "batch_id": "01900000-0000-7000-8000-000000000001", "worker_id": worker,
            "size": rows, "inserted": rows, "committed_at": format!("2026-12-02T{at}.000Z"),
        });
        serde_json::from_value(event).expect("a batch event")
    }

    fn render(screen: &Screen, width: u16, height: u16) -> Vec<String> {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("terminal");
        terminal.draw(|frame| draw(frame, screen)).expect("drawn");
        let buffer = terminal.backend().buffer().clone();
        (0..height)
            .map(|y| {
                (0..width)
                    .map(|x| buffer[(x, y)].symbol().to_owned())
                    .collect()
            })
            .collect()
    }

    #[test]
    fn while_the_server_cannot_read_redis_the_title_says_stale_not_live() {
        let mut screen = Screen::default();
        let stats = sluice_proto::stats::Stats::at(chrono::Utc::now(), 7, 1, 0, 1.0);
        screen.apply(Event::Stats(Box::new(stats.clone())));
        assert!(
            render(&screen, 80, 24)[0].contains(" live "),
            "live with fresh stats"
        );
        screen.apply(Event::Redis(false));
        let title = &render(&screen, 80, 24)[0];
        assert!(
            title.contains("stale") && !title.contains(" live "),
            "{title}"
        );
        screen.apply(Event::Stats(Box::new(stats)));
        assert!(render(&screen, 80, 24)[0].contains(" live "), "live again");
    }

    #[test]
    fn the_sparkline_ends_at_the_right_edge_and_its_title_says_its_span_and_scale() {
        let mut screen = Screen::default();
        for rate in [10.0, 20.0, 40.0] {
            screen.push_rate(Some(rate));
        }
        let lines = render(&screen, 80, 24);
        let spark: Vec<&String> = lines[10..16].iter().collect();
        assert!(
            spark[0].contains("persisted/s, last 3 s · max 40/s · now 40/s"),
            "{}",
            spark[0]
        );
        let bottom = spark[4].trim_end_matches('│').trim_end();
        let inner: Vec<char> = spark[4].chars().collect();
        assert_ne!(
            inner[77], ' ',
            "the newest point is at the right edge: {bottom:?}"
        );
        assert_eq!(inner[10], ' ', "nothing grows from the left: {bottom:?}");
    }

    #[test]
    fn at_80_by_24_the_workers_and_batches_panes_are_there() {
        let workers = Some(WorkerList {
            workers: vec![WorkerInfo {
                id: "host-1-abcdef".into(),
                state: WorkerState::Late,
                last_heartbeat: String::new(),
                heartbeat_age_ms: 3_200,
                in_hand: 0,
                alive: true,
                late: true,
                postgres: "up".into(),
                postgres_server: Some("10.0.0.12:5432".into()),
                postgres_server_since: None,
                batches: Some(12),
                persisted: Some(1_200),
                persisted_per_second: None,
            }],
            gone: vec![GoneWorker {
                id: "host-2".into(),
                state: WorkerState::Gone,
                left_at: String::new(),
                left_ago_ms: 4_000,
                departure: Departure::Reclaimed { by: "w-1".into() },
            }],
            dead_after_ms: 10_000,
            late_after_ms: 2_500,
        });
        let screen = Screen {
            workers,
            batches: [batch("10:00:01", "w-1", 5)].into_iter().collect(),
            ..Screen::default()
        };
        let text = render(&screen, 80, 24).join("\n");
        assert!(text.contains("workers (1)"), "{text}");
        assert!(
            text.contains("late  3.2s     ?/s    12b host-1-abcdef"),
            "a late worker's rate is unknown: {text}"
        );
        assert!(
            text.contains("gone  4.0s reclaimed by w-1 host-2"),
            "{text}"
        );
        assert!(text.contains("10:00:01  5 of 5  w-1"), "{text}");
    }

    #[test]
    fn a_busy_second_is_one_line() {
        let batches: VecDeque<BatchEvent> = [
            batch("10:00:02", "w-1", 1),
            batch("10:00:01", "w-1", 100),
            batch("10:00:01", "w-2", 100),
            batch("10:00:00", "w-2", 7),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            batch_lines(&batches, 10),
            [
                "10:00:02  1 of 1  w-1",
                "10:00:01  2 batches · 200 rows",
                "10:00:00  7 of 7  w-2"
            ]
        );
        assert_eq!(batch_lines(&batches, 1).len(), 1);
        assert_eq!(span(78), "1 min 18 s");
        assert_eq!(span(300), "5 min");
    }
}
