// The Sluice dashboard: wires the connection to the cards, charts, feeds and lists.
import { Charts } from "./charts.js";
import { Connection } from "./connection.js";
import * as panels from "./panels.js";
import { element } from "./panels.js";
import windows from "./windows.js";

const params = new URLSearchParams(location.search);
const WORKERS_EVERY_MS = 2000;
const MINUTE_HISTORY_EVERY_MS = 30000;

const charts = new Charts();
const batches = new panels.BatchFeed(document.getElementById("batches"));
const workers = new panels.WorkerTable(document.getElementById("workers"));
const alerts = { active: new Map(), recent: [] };
const connection = new Connection({
  token: params.get("token") ?? "",
  wsRetryMs: Number(params.get("ws_retry_ms")) || 30000,
  handlers: {
    state: showState,
    message: handle,
    connected: refresh,
  },
});
let windowName = windows.default;
let historyTimer = null;
// The connection's own state, and whether the gateway says it cannot read Redis (its `status`
// messages): connected but stale is not live.
const view = { state: "connecting", redisDown: false };

function showState(name) {
  view.state = name;
  const live = name === "live" || name === "sse";
  const shown = live && view.redisDown ? "stale" : name;
  const badge = document.getElementById("conn");
  const labels = { live: "live", sse: "live · SSE fallback", polling: "polling", reconnecting: "reconnecting", connecting: "connecting", unauthorized: "token refused", stale: "stale · Redis unreadable" };
  badge.dataset.state = shown;
  badge.textContent = labels[shown] ?? shown;
}

function showAlerts() {
  panels.renderAlerts([...alerts.active.values()], alerts.recent);
}

function handle(message) {
  switch (message.type) {
    case "stats":
      panels.renderStats(message);
      charts.addStats(message);
      break;
    case "batch_persisted":
      batches.add(message);
      break;
    case "status":
      view.redisDown = message.redis === "down";
      showState(view.state);
      break;
    case "alert":
      if (message.state === "firing") alerts.active.set(message.rule, message);
      else alerts.active.delete(message.rule);
      alerts.recent.unshift(message);
      alerts.recent.length = Math.min(alerts.recent.length, 100);
      showAlerts();
      break;
    default:
      break;
  }
}

async function load(path, params, use) {
  try {
    use(await connection.get(path, params));
  } catch (error) {
    console.warn(`${path} unavailable:`, error.message);
  }
}

function loadHistory() {
  return load("/stats/history", { window: windowName }, (history) => charts.setHistory(history));
}

function loadAlerts() {
  return load("/alerts", {}, (list) => {
    alerts.active = new Map(list.active.map((alert) => [alert.rule, alert]));
    alerts.recent = list.recent;
    showAlerts();
  });
}

// On every (re)connection: history fills whatever gap the page missed.
function refresh() {
  loadHistory();
  loadAlerts();
  load("/workers", {}, (list) => workers.render(list));
  load("/batches/recent", {}, (recent) => batches.load(recent.batches));
}

// One button per window the server lists, the default pressed.
function buildWindowButtons() {
  const group = document.getElementById("windows");
  group.replaceChildren(...windows.windows.map((w) => {
    const button = element("button", null, w.name);
    button.type = "button";
    button.dataset.window = w.name;
    button.setAttribute("aria-pressed", String(w.name === windows.default));
    return button;
  }));
}

function selectWindow(name) {
  windowName = name;
  for (const button of document.querySelectorAll("#windows button")) {
    button.setAttribute("aria-pressed", String(button.dataset.window === name));
  }
  charts.selectWindow(name);
  loadHistory();
  clearInterval(historyTimer);
  // Windows of one-minute points gain a point a minute: their history is read again.
  const resolution = windows.windows.find((w) => w.name === name)?.resolution_secs ?? 1;
  if (resolution > 1) historyTimer = setInterval(loadHistory, MINUTE_HISTORY_EVERY_MS);
}

document.getElementById("windows").addEventListener("click", (event) => {
  const button = event.target.closest("button[data-window]");
  if (button) selectWindow(button.dataset.window);
});
buildWindowButtons();
panels.buildCards();
// Workers every 2 s; the active alerts' durations once a second.
setInterval(() => load("/workers", {}, (list) => workers.render(list)), WORKERS_EVERY_MS);
setInterval(showAlerts, 1000);
connection.start();
