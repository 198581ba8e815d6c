// The throughput and queue-depth charts (uPlot), filled from the history and extended by each
// live reading. A gap of more than two points in the data is drawn as a gap, not a line.

const SPANS = { "1m": 60, "5m": 300, "1h": 3600, "24h": 86400 };
const HEIGHT = 180;

function css(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

function axes() {
  const stroke = css("--muted");
  const grid = { stroke: css("--line"), width: 1 };
  return [
    { stroke, grid, ticks: grid },
    { stroke, grid, ticks: grid, size: 60 },
  ];
}

function chart(target, series) {
  const options = {
    width: Math.max(200, target.clientWidth),
    height: HEIGHT,
    cursor: { drag: { x: false, y: false } },
    scales: { x: { time: true }, y: { range: (_, min, max) => [0, Math.max(1, max * 1.1)] } },
    axes: axes(),
    series: [{}, ...series.map(([label, color]) => ({ label, stroke: css(color), width: 2, spanGaps: false, points: { show: false } }))],
  };
  const plot = new globalThis.uPlot(options, [[], ...series.map(() => [])], target);
  new ResizeObserver(() => plot.setSize({ width: Math.max(200, target.clientWidth), height: HEIGHT })).observe(target);
  return plot;
}

export class Charts {
  constructor() {
    this.throughput = chart(document.getElementById("chart-throughput"), [
      ["accepted/s", "--accepted"],
      ["persisted/s", "--persisted"],
    ]);
    this.queue = chart(document.getElementById("chart-queue"), [["queue depth", "--queue"]]);
    this.window = "5m";
    this.resolution = 1;
    this.columns = { t: [], accepted: [], persisted: [], depth: [] };
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
    const since = t - SPANS[this.window];
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
    document.getElementById("chart-throughput").dataset.points = String(c.t.length);
    this.throughput.setData([c.t, c.accepted, c.persisted]);
    this.queue.setData([c.t, c.depth]);
  }
}
