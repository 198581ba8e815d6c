//! `sluice watch` full screen: the cards, a persisted/s sparkline and the active alerts, drawn
//! with ratatui. q, Esc or Ctrl-C quits.

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
use sluice_core::stats::Stats;
use tokio::sync::mpsc;

use crate::view;
use crate::watch::ActiveAlerts;

/// Seconds of persisted/s the sparkline shows.
const SPARK_POINTS: usize = 300;

/// What the screen shows.
#[derive(Debug, Default)]
pub struct Screen {
    /// The gateway's address.
    pub gateway: String,
    /// `live` or why not.
    pub status: String,
    /// The latest stats, once one came.
    pub stats: Option<Stats>,
    /// persisted/s, oldest first.
    pub persisted: VecDeque<u64>,
    /// Active alerts.
    pub alerts: ActiveAlerts,
}

impl Screen {
    fn push_rate(&mut self, rate: f64) {
        self.persisted.push_back(rate.round() as u64);
        while self.persisted.len() > SPARK_POINTS {
            self.persisted.pop_front();
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
    let mut events = subscribe(api);
    loop {
        terminal.draw(|frame| draw(frame, screen))?;
        let event = tokio::select! {
            event = events.recv() => event,
            _ = keys.recv() => return Ok(()),
        };
        match event {
            None => return Ok(()),
            Some(Event::Connected) => {
                screen.status = "live".into();
                if let Ok(list) = api.alerts().await {
                    screen.alerts.reset(&list);
                }
                if let Ok(history) = api.history("5m").await {
                    screen.persisted.clear();
                    for rate in history["persisted_per_second"]
                        .as_array()
                        .into_iter()
                        .flatten()
                    {
                        screen.push_rate(rate.as_f64().unwrap_or(0.0));
                    }
                }
            }
            Some(Event::Disconnected(reason)) => screen.status = format!("reconnecting ({reason})"),
            Some(Event::Stats(stats)) => {
                screen.push_rate(stats.current_rps);
                screen.stats = Some(*stats);
            }
            Some(Event::Alert(alert)) => screen.alerts.apply(&alert),
        }
    }
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
    let [title, cards, spark, alerts] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(9),
        Constraint::Length(6),
        Constraint::Min(3),
    ])
    .areas(frame.area());
    let colour = if screen.status == "live" {
        Color::Green
    } else {
        Color::Red
    };
    frame.render_widget(
        Line::from(vec![
            " sluice watch ".bold(),
            format!("{} ", screen.gateway).into(),
            screen.status.clone().fg(colour),
            format!(
                "  {}",
                screen.stats.as_ref().map_or("", |s| s.timestamp.as_str())
            )
            .dim(),
            "  q quits".dim(),
        ]),
        title,
    );
    draw_cards(frame, cards, screen.stats.as_ref());
    // The newest points that fit, so the line ends at the right edge.
    let fits = usize::from(spark.width.saturating_sub(2));
    let skip = screen.persisted.len().saturating_sub(fits);
    let data: Vec<u64> = screen.persisted.iter().skip(skip).copied().collect();
    frame.render_widget(
        Sparkline::default()
            .block(Block::bordered().title(" persisted/s, last 5 minutes "))
            .data(&data)
            .style(Style::default().fg(Color::Green)),
        spark,
    );
    let items: Vec<ListItem> = if screen.alerts.0.is_empty() {
        vec![ListItem::new("no active alert".dim())]
    } else {
        screen
            .alerts
            .0
            .values()
            .map(|a| ListItem::new(view::alert_line(a)).fg(Color::Red))
            .collect()
    };
    frame.render_widget(
        List::new(items).block(Block::bordered().title(" active alerts ")),
        alerts,
    );
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
