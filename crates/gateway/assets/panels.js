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

function field(stats, path) {
  return path.split(".").reduce((value, key) => (value == null ? undefined : value[key]), stats);
}

function element(tag, className, text) {
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
      return node;
    }),
  );
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

export function addBatch(batch) {
  const list = document.getElementById("batches");
  list.querySelector(".empty")?.remove();
  const item = element("li");
  item.append(
    element("span", "muted", format.clock(batch.committed_at)),
    element("span", null, `${format.count(batch.inserted)} of ${format.count(batch.size)} inserted`),
    element("span", "muted", batch.worker_id),
  );
  list.prepend(item);
  while (list.children.length > FEED_LENGTH) list.lastElementChild.remove();
}

function alertItem(tag, alert) {
  const item = element(tag, `alert ${alert.state}`);
  item.dataset.rule = alert.rule;
  item.append(
    element("span", `severity ${alert.severity}`, alert.severity),
    element("span", "rule", alert.rule),
    element("span", "state", alert.state),
    element("span", null, alert.summary ?? ""),
    element("span", "muted", format.clock(alert.resolved_at ?? alert.started_at)),
  );
  return item;
}

export function renderAlerts(active, recent) {
  const banner = document.getElementById("alerts-active");
  banner.replaceChildren(...active.map((alert) => alertItem("div", alert)));
  banner.hidden = active.length === 0;
  const list = document.getElementById("alerts-recent");
  const items = recent.slice(0, FEED_LENGTH).map((alert) => alertItem("li", alert));
  list.replaceChildren(...(items.length ? items : [element("li", "muted empty", "No alert yet")]));
}

export function renderWorkers(list) {
  const body = document.getElementById("workers");
  const rows = list.workers.map((worker) => {
    const row = element("tr", worker.alive ? null : "stale");
    row.dataset.worker = worker.id;
    row.append(
      element("td", null, worker.id),
      element("td", null, `${format.duration(worker.heartbeat_age_ms)} ago`),
      element("td", null, format.count(worker.in_hand)),
      element("td", worker.postgres === "down" ? "down" : null, worker.postgres),
    );
    return row;
  });
  if (rows.length === 0) {
    const row = element("tr");
    const cell = element("td", "muted", "No worker");
    cell.colSpan = 4;
    row.append(cell);
    rows.push(row);
  }
  body.replaceChildren(...rows);
}
