// Number formatting for the cards and lists.

const integer = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
const decimal = new Intl.NumberFormat("en-US", { maximumFractionDigits: 1, minimumFractionDigits: 1 });

export function count(value) {
  return value == null ? "–" : integer.format(value);
}

export function rate(value) {
  if (value == null) return "–";
  return value >= 1000 ? integer.format(value) : decimal.format(value);
}

export function millis(value) {
  if (value == null) return "–";
  if (value < 1) return `${value.toFixed(2)} ms`;
  if (value < 1000) return `${decimal.format(value)} ms`;
  return duration(value);
}

export function duration(ms) {
  if (ms == null) return "–";
  if (ms < 1000) return `${integer.format(ms)} ms`;
  const seconds = ms / 1000;
  if (seconds < 60) return `${decimal.format(seconds)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} m ${Math.floor(seconds % 60)} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} m`;
}

// Every time on the page reads this way: 24-hour local time, HH:MM:SS (HH:MM for ticks of long
// windows).
export function clock(iso, withSeconds = true) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  const options = { hour: "2-digit", minute: "2-digit", hour12: false };
  if (withSeconds) options.second = "2-digit";
  return date.toLocaleTimeString("en-GB", options);
}

// The date part, as YYYY-MM-DD (local).
export function day(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}
