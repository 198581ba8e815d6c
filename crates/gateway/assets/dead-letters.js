// The dead-letters page: lists `dead_messages` newest first, a page at a time, and requeues or
// deletes one or all, through the gateway's /admin/dead-letters with the admin token (kept for
// this tab only, in sessionStorage). Payloads are inserted as text, never as HTML.
import * as format from "./format.js";
import { element } from "./panels.js";

const PAGE = 25;
const TOKEN_KEY = "sluice.admin_token";
// `next` is where the next (older) page starts: a page ends early once it holds 1 MiB, so it
// is the server's `next_offset`, not offset + PAGE; `back` holds the offsets of the pages
// walked through, for "newer".
const state = { token: sessionStorage.getItem(TOKEN_KEY) ?? "", offset: 0, next: null, back: [], total: 0, letters: [], reason: "" };
const $ = (id) => document.getElementById(id);

function say(text, kind = "") {
  $("status").textContent = text;
  $("status").dataset.kind = kind;
}

// Calls the admin API; resolves to the JSON answer, or throws an Error with the server's message.
async function call(method, path, params = {}) {
  const url = new URL(path, location.href);
  for (const [key, value] of Object.entries(params)) url.searchParams.set(key, value);
  const response = await fetch(url, { method, headers: { Authorization: `Bearer ${state.token}` }, cache: "no-store" });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(body.error?.message ?? `HTTP ${response.status}`);
    error.status = response.status;
    throw error;
  }
  return body;
}

async function show() {
  try {
    const filter = state.reason ? { reason: state.reason } : {};
    const page = await call("GET", "/admin/dead-letters", { limit: PAGE, offset: state.offset, ...filter });
    if (page.total > 0 && state.offset >= page.total) {
      // Entries went (requeued, deleted) since this page was shown: back to the one before.
      state.offset = state.back.pop() ?? 0;
      return show();
    }
    Object.assign(state, { total: page.total, letters: page.dead_letters, next: page.next_offset ?? null });
    render();
    $("letters-panel").hidden = false;
    $("forget").hidden = false;
    if ($("status").dataset.kind !== "done") say(page.total ? "" : "No dead letter: every message was inserted.");
    showAudit();
  } catch (error) {
    $("letters-panel").hidden = $("audit-panel").hidden = true;
    say(error.status === 401 ? "That token was refused." : error.message, "error");
  }
}

// The audit trail's most recent entries (who did what, from where), below the letters; text
// only, never HTML.
async function showAudit() {
  try {
    const log = await call("GET", "/admin/audit", { limit: 20 });
    const cells = (entry) => [`${format.day(entry.at)} ${format.clock(entry.at)}`, entry.action, entry.actor, entry.address ?? "unknown", entry.target];
    $("audit").replaceChildren(...log.entries.map((entry) => {
      const tr = document.createElement("tr");
      tr.replaceChildren(...cells(entry).map((value) => element("td", null, String(value))));
      return tr;
    }));
    $("audit-empty").hidden = log.entries.length > 0;
    $("audit-panel").hidden = false;
  } catch (error) {
    $("audit-panel").hidden = true;
  }
}

function render() {
  const { offset, total, letters, reason } = state;
  $("total").textContent = `(${format.count(total)})`;
  $("range").textContent = range();
  $("newer").disabled = offset === 0;
  $("older").disabled = state.next === null;
  $("requeue-all").disabled = $("purge").disabled = total === 0;
  // With a filter, the bulk actions act on the letters it matches, and say so.
  $("requeue-all").textContent = reason ? "Requeue matching" : "Requeue all";
  $("purge").textContent = reason ? "Delete matching" : "Purge all";
  $("clear-filter").hidden = !reason;
  const rows = letters.map((letter, i) => row(letter, offset + i));
  if (rows.length === 0 && reason) rows.push(emptyRow(`No letter on this page has “${reason}” in its reason.`));
  $("letters").replaceChildren(...rows);
}

// Which entries the page shows: without a filter, their positions; with one, the stretch of
// the list examined (a filtered page stops examining after 10,000 entries).
function range() {
  const { offset, total, letters, reason, next } = state;
  if (!total) return "";
  if (!reason) return `${format.count(offset + 1)}–${format.count(offset + letters.length)} of ${format.count(total)}, newest first`;
  const end = next ?? total;
  return `${format.count(letters.length)} matching among entries ${format.count(offset + 1)}–${format.count(end)} of ${format.count(total)}`;
}

function emptyRow(text) {
  const tr = element("tr");
  const td = element("td", "muted", text);
  td.colSpan = 5;
  tr.append(td);
  return tr;
}

function row(letter, position) {
  const tr = element("tr");
  tr.dataset.id = letter.id;
  const open = element("button", "link", "Inspect");
  open.type = "button";
  open.addEventListener("click", () => inspect(letter, position));
  tr.append(
    element("td", null, letter.failed_at ? `${format.day(letter.failed_at)} ${format.clock(letter.failed_at)}` : "–"),
    element("td", "reason", reason(letter)),
    element("td", null, letter.worker_id ?? "–"),
    element("td", "preview", preview(letter)),
    element("td", null),
  );
  tr.lastElementChild.append(open);
  return tr;
}

// The server lists every entry, dead letter or not: a letter's payload and an unreadable
// entry's first bytes are always strings, but the page does not rely on it.
function text(letter) {
  return String(letter.payload ?? letter.unreadable ?? "");
}

function reason(letter) {
  if (letter.unreadable !== undefined) return "unreadable entry";
  const given = letter.reason ?? "–";
  return letter.payload_bytes === undefined ? given : `${given} (first bytes only)`;
}

// Whether requeue can put this entry's exact bytes back: not for an unreadable entry, nor for
// a letter that kept only the first bytes of a longer entry.
function requeueable(letter) {
  return letter.unreadable === undefined && letter.payload_bytes === undefined;
}

function preview(letter) {
  const t = text(letter).replace(/\s+/g, " ");
  return t.length > 80 ? `${t.slice(0, 79)}…` : t;
}

// The exact bytes: payload_hex when the entry was not UTF-8 (unreadable_hex for an entry that
// is not a dead letter), else the UTF-8 of the text.
function hex(letter) {
  const given = letter.payload_hex ?? letter.unreadable_hex;
  const raw = typeof given === "string" ? given : [...new TextEncoder().encode(text(letter))].map((b) => b.toString(16).padStart(2, "0")).join("");
  return raw.match(/.{1,32}/g)?.map((line) => line.match(/../g).join(" ")).join("\n") ?? "";
}

// What the page shows of an entry's size, and why it shows only part of it.
function size(letter) {
  const bytes = `${format.count(letter.bytes ?? 0)} bytes in Redis`;
  if (letter.payload_bytes !== undefined) return `${bytes}; only the first bytes of a ${format.count(letter.payload_bytes)}-byte entry were kept, so it cannot be requeued`;
  if (letter.unreadable !== undefined && letter.unreadable_hex.length / 2 < (letter.bytes ?? 0)) return `${bytes}; the first ${format.count(letter.unreadable_hex.length / 2)} shown`;
  return bytes;
}

function inspect(letter, position) {
  const meta = [
    ["Id", letter.id],
    ["Failed at", letter.failed_at ? `${format.day(letter.failed_at)} ${format.clock(letter.failed_at)}` : "–"],
    ["Reason", letter.reason ?? "the entry is not a dead letter Sluice wrote; it cannot be requeued"],
    ["Worker", letter.worker_id ?? "–"],
    ["Size", size(letter)],
    ["Position", `${format.count(position + 1)} of ${format.count(state.total)}, newest first`],
  ];
  $("inspect-meta").replaceChildren(...meta.flatMap(([k, v]) => [element("dt", null, k), element("dd", null, v)]));
  $("inspect-text").textContent = text(letter);
  $("inspect-hex").textContent = hex(letter);
  $("inspect-requeue").disabled = !requeueable(letter);
  $("inspect-requeue").onclick = () => confirm(unchanged(letter.reason, "it")) && act("POST", `/admin/dead-letters/${letter.id}/requeue`, position, "Requeued one dead letter.");
  $("inspect-delete").onclick = () => confirm("Delete this dead letter? Its message will be lost.") && act("DELETE", `/admin/dead-letters/${letter.id}`, position, "Deleted one dead letter.");
  $("inspect").showModal();
}

// What a requeue asks first: a letter failed for something its message holds, so requeued as
// it is it fails again, unless that cause (a column too short, a constraint) was changed.
function unchanged(reason, what) {
  const why = reason ? ` It failed with: ${reason}.` : "";
  return `Requeue ${what} unchanged?${why} Unless that cause was fixed since, ${what === "it" ? "it" : "they"} will come straight back here.`;
}

async function act(method, path, near, done) {
  try {
    await call(method, path, { near });
    say(done, "done");
  } catch (error) {
    say(error.message, "error");
  }
  $("inspect").close();
  show();
}

async function bulk(method, path, describe) {
  try {
    say(describe(await call(method, path)), "done");
  } catch (error) {
    say(error.message, "error");
  }
  Object.assign(state, { offset: 0, back: [] });
  show();
}

$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  state.token = $("token").value.trim();
  sessionStorage.setItem(TOKEN_KEY, state.token);
  $("status").dataset.kind = "";
  show();
});
$("forget").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  Object.assign(state, { token: "", offset: 0, back: [] });
  $("token").value = "";
  $("letters-panel").hidden = $("audit-panel").hidden = $("forget").hidden = true;
  say("Token forgotten.");
});
$("refresh").addEventListener("click", () => show());
$("newer").addEventListener("click", () => { state.offset = state.back.pop() ?? 0; show(); });
$("older").addEventListener("click", () => {
  if (state.next === null) return;
  state.back.push(state.offset);
  state.offset = state.next;
  show();
});
$("requeue-all").addEventListener("click", () => {
  const what = state.reason ? `every dead letter whose reason contains “${state.reason}”` : `all ${format.count(state.total)} dead letters`;
  if (!confirm(`${unchanged("", what)} They go back to the queue, behind what is pending.`)) return;
  const filter = state.reason ? `?reason=${encodeURIComponent(state.reason)}` : "";
  bulk("POST", `/admin/dead-letters/requeue${filter}`, (r) => `Requeued ${format.count(r.requeued)}${r.unreadable ? `; ${format.count(r.unreadable)} unreadable left` : ""}.`);
});
$("purge").addEventListener("click", () => {
  const what = state.reason ? `every dead letter whose reason contains “${state.reason}”` : `all ${format.count(state.total)} dead letters`;
  if (!confirm(`Delete ${what}? Their messages will be lost.`)) return;
  const filter = state.reason ? `?reason=${encodeURIComponent(state.reason)}` : "";
  bulk("DELETE", `/admin/dead-letters${filter}`, (r) => `Deleted ${format.count(r.purged)}.`);
});
$("filter-form").addEventListener("submit", (event) => {
  event.preventDefault();
  Object.assign(state, { reason: $("filter").value.trim(), offset: 0, back: [] });
  show();
});
$("clear-filter").addEventListener("click", () => {
  $("filter").value = "";
  Object.assign(state, { reason: "", offset: 0, back: [] });
  show();
});
$("inspect-close").addEventListener("click", () => $("inspect").close());
if (state.token) {
  $("token").value = state.token;
  show();
}
