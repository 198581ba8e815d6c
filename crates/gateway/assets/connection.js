// The dashboard's link to the gateway: WebSocket first, Server-Sent Events when WebSocket
// fails, polling GET /stats when both fail, and back to WebSocket as soon as it works again.
// Reconnects use exponential backoff with jitter. A WebSocket counts as working only once the
// gateway's `connected` greeting arrives, so a proxy that accepts the upgrade and then drops
// the connection is treated like one that refuses it.

const MIN_DELAY_MS = 500;
const MAX_DELAY_MS = 15000;
const FAILURES_BEFORE_FALLBACK = 2;
const POLL_MS = 1000;
const TOPICS = "stats,batches,alerts";
const TOKEN_EXPIRED = 4401;
// A socket that opens but does not bring the gateway's greeting within this time (a proxy
// that accepts the upgrade and forwards nothing) counts as failed.
const GREETING_TIMEOUT_MS = 4000;

export class Connection {
  // handlers: { state(name), message(msg), connected() }
  constructor({ token, wsRetryMs = 30000, handlers }) {
    this.token = token;
    this.wsRetryMs = wsRetryMs;
    this.handlers = handlers;
    this.mode = null;
    this.attempt = 0;
    this.wsFailures = 0;
    this.ws = null;
    this.sse = null;
    this.pollTimer = null;
    this.retryTimer = null;
    this.probeTimer = null;
  }

  start() {
    this.setState("connecting");
    this.openWebSocket();
  }

  url(path, params = {}) {
    const url = new URL(path, location.href);
    for (const [key, value] of Object.entries(params)) url.searchParams.set(key, value);
    if (this.token) url.searchParams.set("token", this.token);
    return url;
  }

  // fetch() with the token; rejects on a non-2xx answer.
  async get(path, params) {
    const response = await fetch(this.url(path, params), { cache: "no-store" });
    if (response.status === 401 || response.status === 403) {
      this.stop("unauthorized");
      throw new Error("unauthorized");
    }
    if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
    return response.json();
  }

  setState(name) {
    this.handlers.state(name);
  }

  nextDelay() {
    const ceiling = Math.min(MAX_DELAY_MS, MIN_DELAY_MS * 2 ** this.attempt);
    this.attempt += 1;
    return ceiling / 2 + Math.random() * (ceiling / 2);
  }

  schedule(action) {
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(action, this.nextDelay());
  }

  stop(state) {
    for (const timer of [this.retryTimer, this.probeTimer]) clearTimeout(timer);
    clearInterval(this.pollTimer);
    this.ws?.close();
    this.sse?.close();
    this.ws = this.sse = null;
    this.mode = "stopped";
    this.setState(state);
  }

  // Opens a WebSocket; `greeted(ws)` runs once the gateway says hello, `failed(code)` if the
  // socket closes before that.
  dial(greeted, failed) {
    const url = this.url("/ws/stats", { topics: TOPICS });
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    let ws;
    try {
      ws = new WebSocket(url);
    } catch {
      setTimeout(() => failed(0), 0);
      return;
    }
    let hello = false;
    const silent = setTimeout(() => {
      ws.onclose = null;
      ws.close();
      failed(0);
    }, GREETING_TIMEOUT_MS);
    ws.onmessage = (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (!hello && message.type === "connected") {
        hello = true;
        clearTimeout(silent);
        greeted(ws);
      } else if (hello && ws === this.ws) {
        this.handlers.message(message);
      }
    };
    ws.onclose = (event) => {
      clearTimeout(silent);
      if (!hello) failed(event.code);
      else if (ws === this.ws) this.webSocketLost(event.code);
    };
  }

  openWebSocket() {
    this.dial(
      (ws) => this.useWebSocket(ws),
      () => {
        this.wsFailures += 1;
        if (this.wsFailures >= FAILURES_BEFORE_FALLBACK && this.mode !== "ws") {
          this.openEventSource();
        } else {
          this.setState(this.mode === "ws" ? "reconnecting" : "connecting");
          this.schedule(() => this.openWebSocket());
        }
      },
    );
  }

  useWebSocket(ws) {
    this.sse?.close();
    this.sse = null;
    clearInterval(this.pollTimer);
    clearTimeout(this.probeTimer);
    this.ws = ws;
    this.mode = "ws";
    this.attempt = 0;
    this.wsFailures = 0;
    this.setState("live");
    this.handlers.connected();
  }

  webSocketLost(code) {
    this.ws = null;
    if (code === TOKEN_EXPIRED) {
      this.stop("unauthorized");
      return;
    }
    this.wsFailures = 0;
    this.setState("reconnecting");
    this.schedule(() => this.openWebSocket());
  }

  openEventSource() {
    this.mode = "sse";
    this.setState("reconnecting");
    const source = new EventSource(this.url("/stats/stream", { topics: TOPICS }));
    this.sse = source;
    let opened = false;
    source.onopen = () => {
      opened = true;
      this.attempt = 0;
      this.setState("sse");
      this.handlers.connected();
    };
    source.onmessage = (event) => this.deliver(event.data);
    for (const name of ["alert", "batch", "status"]) {
      source.addEventListener(name, (event) => this.deliver(event.data));
    }
    source.onerror = () => {
      if (source !== this.sse) return;
      if (!opened || source.readyState === EventSource.CLOSED) {
        source.close();
        this.sse = null;
        this.startPolling();
      } else {
        this.setState("reconnecting");
      }
    };
    this.probeWebSocket();
  }

  deliver(data) {
    try {
      this.handlers.message(JSON.parse(data));
    } catch {
      // Not JSON: nothing to show.
    }
  }

  startPolling() {
    this.mode = "poll";
    let first = true;
    const poll = async () => {
      try {
        const stats = await this.get("/stats");
        if (this.mode !== "poll") return;
        this.setState("polling");
        if (first) {
          first = false;
          this.handlers.connected();
        }
        this.handlers.message(stats);
      } catch {
        if (this.mode === "poll") this.setState("reconnecting");
      }
    };
    clearInterval(this.pollTimer);
    this.pollTimer = setInterval(poll, POLL_MS);
    poll();
    this.probeWebSocket();
  }

  // While on a fallback, tries WebSocket again every `wsRetryMs`.
  probeWebSocket() {
    clearTimeout(this.probeTimer);
    this.probeTimer = setTimeout(() => {
      if (this.mode !== "sse" && this.mode !== "poll") return;
      this.dial(
        (ws) => this.useWebSocket(ws),
        () => this.probeWebSocket(),
      );
    }, this.wsRetryMs);
  }
}
