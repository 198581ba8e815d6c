// The throughput and queue-depth charts (uPlot), filled from the history and extended by each
// live reading. The x-axis always spans the selected window, ending now, from the first paint;
// a gap of more than two points in the data is drawn as a gap, not a line. The legends show the
// latest values unless the pointer is over a chart.
import * as format from "./format.js";
import windows from "./windows.js";

// Each window's span in seconds, from the server's list of windows.
const SPANS = Object.fromEntries(windows.windows.map((w) => [w.name, w.span_secs]));
// And the seconds each of its points stands for.
const RESOLUTIONS = Object.fromEntries(windows.windows.map((w) => [w.name, w.resolution_secs]));
const HEIGHT = 180;

function css(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

// Ticks and the legend read the time as the rest of the page does (24-hour clock).
function timeLabel(seconds, withSeconds) {
  return format.clock(new Date(seconds * 1000).toISOString(), withSeconds);
}

// Tick steps of a count axis: whole numbers only (no "0.5 messages").
const COUNT_STEPS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 2e5, 5e5, 1e6, 2e6, 5e6, 1e7, 1e8, 1e9];

// One number format for every tick of an axis: as many decimals as its step needs (none for a
// whole step), with thousands separators.
export function tickLabels(ticks) {
  const step = ticks.length > 1 ? Math.abs(ticks[1] - ticks[0]) : 1;
  const digits = Number.isInteger(step) ? 0 : Math.min(2, Math.max(1, -Math.floor(Math.log10(step))));
  const fmt = new Intl.NumberFormat("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
  return ticks.map((v) => fmt.format(v));
}

// The y labels drawn are also kept on the chart's element (data-y-ticks), where a test or a
// screen reader finds them: the canvas holds only pixels.
function axes(charts, unit, target) {
  const stroke = css("--muted");
  const grid = { stroke: css("--line"), width: 1 };
  const values = (_, ticks) => {
    const labels = tickLabels(ticks);
    target.dataset.yTicks = labels.join("|");
    return labels;
  };
  const y = { stroke, grid, ticks: grid, size: 60, values };
  if (unit === "count") y.incrs = COUNT_STEPS;
  return [
    { stroke, grid, ticks: grid, space: 90, values: (_, ticks) => ticks.map((t) => timeLabel(t, charts.span() < 3600)) },
    y,
  ];
}

function chart(target, series, charts, unit) {
  const options = {
    width: Math.max(200, target.clientWidth),
    height: HEIGHT,
    cursor: { drag: { x: false, y: false } },
    scales: {
      x: { time: true, range: () => charts.range() },
      y: { range: (_, min, max) => [0, Math.max(1, max * 1.1)] },
    },
    axes: axes(charts, unit, target),
    series: [
      { label: "time", value: (_, t) => (t == null ? "–" : timeLabel(t, true)) },
      ...series.map(([label, color, dash]) => ({
        label,
        stroke: css(color),
        width: dash ? 3 : 2,
        dash,
        spanGaps: false,
        points: { show: false },
        value: (_, v) => (unit === "count" ? format.count(v) : format.rate(v)),
      })),
    ],
    hooks: { setCursor: [(u) => showLatestUnlessHovered(u)] },
  };
  const plot = new globalThis.uPlot(options, [[], ...series.map(() => [])], target);
  new ResizeObserver(() => plot.setSize({ width: Math.max(200, target.clientWidth), height: HEIGHT })).observe(target);
  return plot;
}

// The legend at the last point when the pointer is not over the chart.
function showLatestUnlessHovered(plot) {
  if (plot.cursor.idx != null) return;
  const last = lastValueIndex(plot.data);
  if (last != null) plot.setLegend({ idx: last });
}

function lastValueIndex(data) {
  for (let i = data[0].length - 1; i >= 0; i -= 1) {
    if (data.slice(1).some((column) => column[i] != null)) return i;
  }
  return null;
}

export class Charts {
  constructor() {
    this.window = windows.default;
    this.resolution = 1;
    this.columns = { t: [], accepted: [], persisted: [], depth: [] };
    // Accepted is dashed and drawn under persisted, so both show when they are equal.
    this.throughput = chart(document.getElementById("chart-throughput"), [
      ["accepted/s", "--accepted", [6, 4]],
      ["persisted/s", "--persisted"],
    ], this, "rate");
    this.queue = chart(document.getElementById("chart-queue"), [["queue depth", "--queue"]], this, "count");
    this.title();
    this.draw();
  }

  // The subtitles say what a point is at this window's resolution.
  title() {
    const perSecond = RESOLUTIONS[this.window] === 1;
    document.getElementById("title-throughput").textContent = perSecond
      ? "Throughput (msg/s, 10-second averages, a point per second)"
      : "Throughput (msg/s, each minute's average, a point per minute)";
    document.getElementById("title-queue").textContent = perSecond
      ? "Queue depth (messages, a point per second)"
      : "Queue depth (messages, each minute's highest, a point per minute)";
  }

  span() {
    return SPANS[this.window];
  }

  // The window, ending at the latest point or now, whichever is later.
  range() {
    const last = this.columns.t[this.columns.t.length - 1] ?? 0;
    const end = Math.max(last, Math.floor(Date.now() / 1000));
    return [end - this.span(), end];
  }

  // Replaces the data with a `history` answer.
  setHistory(history) {
    this.window = history.window;
    this.resolution = history.resolution_secs;
    const columns = { t: [], accepted: [], persisted: [], depth: [] };
    history.t.forEach((t, i) => {
      this.push(columns, t, history.accepted_per_second[i], history.persisted_per_second[i], history.queue_depth[i]);
    });
    this.columns = columns;
    this.title();
    this.draw();
  }

  // Shows `name`'s span at once, before its history arrives.
  selectWindow(name) {
    this.window = name;
    this.title();
    this.draw();
  }

  // Adds a live reading; windows of one-minute points are refreshed from the history instead.
  addStats(stats) {
    if (this.resolution !== 1) return;
    const t = Math.floor(Date.parse(stats.timestamp) / 1000);
    const c = this.columns;
    const last = c.t[c.t.length - 1];
    if (last !== undefined && t <= last) return;
    this.push(c, t, stats.accepted_per_second, stats.current_rps, stats.queue_depth);
    const since = t - this.span();
    while (c.t.length && c.t[0] <= since) {
      for (const key of Object.keys(c)) c[key].shift();
    }
    this.draw();
  }

  push(c, t, accepted, persisted, depth) {
    const last = c.t[c.t.length - 1];
    if (last !== undefined && t - last > 2 * this.resolution) {
      c.t.push(last + this.resolution);
      c.accepted.push(null);
      c.persisted.push(null);
      c.depth.push(null);
    }
    c.t.push(t);
    c.accepted.push(accepted);
    c.persisted.push(persisted);
    c.depth.push(depth);
  }

  draw() {
    const c = this.columns;
    const target = document.getElementById("chart-throughput");
    target.dataset.points = String(c.t.length);
    const [from, to] = this.range();
    target.dataset.from = String(from);
    target.dataset.to = String(to);
    this.throughput.setData([c.t, c.accepted, c.persisted]);
    this.queue.setData([c.t, c.depth]);
    for (const plot of [this.throughput, this.queue]) showLatestUnlessHovered(plot);
  }
}
