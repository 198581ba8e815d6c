// The cards, the batch feed, the alert lists and the worker table. Everything that comes from
// the server is inserted as text, never as HTML.
import cards from "./cards.js";
import * as format from "./format.js";

// How each card's unit (cards.js) reads.
const UNIT_FORMATS = {
  count: format.count,
  rate: format.rate,
  millis: format.millis,
  duration: format.duration,
};
const FEED_LENGTH = 20;
// Past this many batches in one second, the feed shows that second as one summary line.
const BATCHES_LISTED_PER_SECOND = 3;
const SEVERITY_RANK = { medium: 1, high: 2, critical: 3 };

function field(stats, path) {
  return path.split(".").reduce((value, key) => (value == null ? undefined : value[key]), stats);
}

export function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text != null) node.textContent = text;
  return node;
}

// Builds one card per entry of cards.js, empty until the first reading.
export function buildCards() {
  const section = document.getElementById("cards");
  section.replaceChildren(
    ...cards.map((card) => {
      const node = element("div", "card");
      node.dataset.field = card.field;
      node.append(element("h2", null, card.label), element("p", "value", "–"));
      if (card.note) node.append(element("p", "note muted", card.note));
      if (card.field === "dead_letters") node.append(link("/dead-letters.html", "inspect"));
      return node;
    }),
  );
}

function link(href, text) {
  const a = element("a", "card-link", text);
  a.href = href;
  return a;
}

export function renderStats(stats) {
  for (const card of cards) {
    const value = field(stats, card.field);
    const show = UNIT_FORMATS[card.unit] ?? format.count;
    const target = document.querySelector(`.card[data-field="${card.field}"] .value`);
    if (!target) continue;
    target.textContent = show(value);
    target.dataset.raw = value == null ? "" : String(value);
  }
  document.getElementById("updated").textContent = `updated ${format.clock(stats.timestamp)}`;
}

// Colours each card by the most severe active alert among the rules it lists (cards.js).
export function markCards(active) {
  for (const card of cards) {
    const node = document.querySelector(`.card[data-field="${card.field}"]`);
    if (!node) continue;
    const firing = active.filter((alert) => (card.alerts ?? []).includes(alert.rule));
    let worst = null;
    for (const alert of firing) {
      if (!worst || (SEVERITY_RANK[alert.severity] ?? 0) > (SEVERITY_RANK[worst.severity] ?? 0)) worst = alert;
    }
    if (worst) {
      node.dataset.severity = worst.severity;
      node.title = firing.map((alert) => `${alert.rule}: ${alert.summary ?? ""}`).join("\n");
    } else {
      delete node.dataset.severity;
      node.removeAttribute("title");
    }
  }
}

// The batch feed: each batch while they are few, one line per second when they are many.
export class BatchFeed {
  constructor(list) {
    this.list = list;
    this.second = null;
    // This second's batches, and its summary line once they are too many to list.
    this.pending = [];
    this.current = null;
  }

  // Fills the feed from `GET /batches/recent` (newest first).
  load(batches) {
    this.list.replaceChildren();
    this.second = null;
    this.pending = [];
    for (const batch of [...batches].reverse()) this.add(batch);
    this.flush();
    if (!this.list.children.length) this.list.append(element("li", "muted empty", "No batch yet"));
  }

  add(batch) {
    const second = Math.floor(Date.parse(batch.committed_at) / 1000);
    if (this.second !== null && second !== this.second) this.flush();
    this.second = second;
    this.pending.push(batch);
    if (this.pending.length <= BATCHES_LISTED_PER_SECOND) this.prepend(batchItem(batch));
    else this.summarise();
  }

  // Ends the current second's lines.
  flush() {
    this.pending = [];
    this.current = null;
  }

  summarise() {
    const batches = this.pending;
    for (let i = 0; i < BATCHES_LISTED_PER_SECOND && !this.current; i += 1) this.list.firstElementChild?.remove();
    const rows = batches.reduce((sum, b) => sum + b.inserted, 0);
    const size = batches.reduce((sum, b) => sum + b.size, 0);
    const workers = new Set(batches.map((b) => b.worker_id)).size;
    const item = element("li", "summary");
    item.append(
      element("span", "muted", format.clock(batches[0].committed_at)),
      element("span", null, `${format.count(batches.length)} batches in this second`),
      element("span", null, `${format.count(rows)} rows · ${format.rate(size / batches.length)} per batch`),
      element("span", "muted", `${workers} worker${workers === 1 ? "" : "s"}`),
    );
    if (this.current) this.current.replaceWith(item);
    else this.prepend(item);
    this.current = item;
  }

  prepend(item) {
    this.list.querySelector(".empty")?.remove();
    this.list.prepend(item);
    while (this.list.children.length > FEED_LENGTH) this.list.lastElementChild.remove();
  }
}

function batchItem(batch) {
  const item = element("li");
  item.append(
    element("span", "muted", format.clock(batch.committed_at)),
    element("span", null, `${format.count(batch.inserted)} of ${format.count(batch.size)} inserted`),
    element("span", "muted", batch.worker_id),
  );
  return item;
}

// One entry per alert: its firing and its resolution, newest first.
export function episodes(transitions) {
  const byStart = new Map();
  for (const alert of transitions) {
    const key = `${alert.rule}|${alert.started_at}`;
    const seen = byStart.get(key);
    if (!seen || (alert.state === "resolved" && seen.state !== "resolved")) byStart.set(key, alert);
  }
  return [...byStart.values()].sort((a, b) => Date.parse(b.resolved_at ?? b.started_at) - Date.parse(a.resolved_at ?? a.started_at));
}

function alertItem(tag, alert, now) {
  const item = element(tag, `alert ${alert.state}`);
  item.dataset.rule = alert.rule;
  const started = Date.parse(alert.started_at);
  const when =
    alert.state === "resolved"
      ? `${format.clock(alert.started_at)} → ${format.clock(alert.resolved_at)} · lasted ${format.duration(Date.parse(alert.resolved_at) - started)}`
      : `since ${format.clock(alert.started_at)} · ${format.duration(Math.max(0, now - started))}`;
  item.append(
    element("span", `severity ${alert.severity}`, alert.severity),
    element("span", "rule", alert.rule),
    element("span", "state", alert.state),
    element("span", null, alert.summary ?? ""),
    element("span", "muted when", when),
  );
  return item;
}

export function renderAlerts(active, recent, now = Date.now()) {
  const banner = document.getElementById("alerts-active");
  banner.replaceChildren(...active.map((alert) => alertItem("div", alert, now)));
  banner.hidden = active.length === 0;
  const list = document.getElementById("alerts-recent");
  const items = episodes(recent).slice(0, FEED_LENGTH).map((alert) => alertItem("li", alert, now));
  list.replaceChildren(...(items.length ? items : [element("li", "muted empty", "No alert yet")]));
  markCards(active);
}

// The worker table, as GET /workers states it: each worker's state (up, late, presumed dead)
// comes from the server, which also lists the workers that left lately and how (an exit or a
// reclaim). The page decides nothing about a worker's life itself.
const STATE_TEXT = { up: "up", late: "late", presumed_dead: "presumed dead", gone: "gone" };

export class WorkerTable {
  constructor(body) {
    this.body = body;
  }

  render(list) {
    const rows = [...list.workers.map(workerRow), ...(list.gone ?? []).map(goneRow)];
    if (rows.length === 0) {
      const row = element("tr");
      const cell = element("td", "muted", "No worker");
      cell.colSpan = 7;
      row.append(cell);
      rows.push(row);
    }
    this.body.replaceChildren(...rows);
  }
}

function stateRow(id, state, text) {
  const row = element("tr", `worker-${state}`);
  row.dataset.worker = id;
  row.dataset.state = state;
  row.append(element("td", null, id), element("td", "status", text));
  return row;
}

function workerRow(worker) {
  const row = stateRow(worker.id, worker.state, STATE_TEXT[worker.state] ?? worker.state);
  // A silent worker's rate is unknown (null), not its last figure.
  const rate = worker.persisted_per_second;
  row.append(
    element("td", null, `${format.duration(worker.heartbeat_age_ms)} ago`),
    element("td", "num", format.count(worker.in_hand)),
    element("td", "num", rate == null ? "unknown" : format.rate(rate)),
    element("td", "num", format.count(worker.batches)),
    postgresCell(worker),
  );
  return row;
}

// PostgreSQL as the worker sees it, and the server it writes to (the primary, with a
// multi-host URL) since when: after a failover every worker names the new one.
function postgresCell(worker) {
  const cell = element("td", worker.postgres === "down" ? "down" : null, worker.postgres);
  if (worker.postgres_server) {
    cell.append(" · ", element("span", "server", worker.postgres_server));
    if (worker.postgres_server_since) {
      cell.title = `${worker.postgres_server} since ${format.day(worker.postgres_server_since)} ${format.clock(worker.postgres_server_since)}`;
      cell.append(element("span", "muted since", ` since ${format.clock(worker.postgres_server_since)}`));
    }
  }
  return cell;
}

function goneRow(worker) {
  const how = worker.departure.how === "reclaimed" ? `reclaimed by ${worker.departure.by}` : "exited";
  const row = stateRow(worker.id, "gone", `gone · ${how}`);
  const left = element("td", null, `left ${format.duration(worker.left_ago_ms)} ago`);
  const rest = element("td", "muted");
  rest.colSpan = 4;
  row.append(left, rest);
  return row;
}
