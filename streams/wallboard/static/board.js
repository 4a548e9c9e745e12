// ticketpulse wallboard: renders /api/v1/stream (Server-Sent Events) into the table.
// Every number comes from the JSON; nothing is computed here but formatting and colours.
"use strict";
const params = new URLSearchParams(location.search);
const shortWindow = params.get("window") || "15m";
let latest = null;

function fmtDuration(s) {
  if (s === null || s === undefined) return "–";
  s = Math.round(s);
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m " + String(s % 60).padStart(2, "0") + "s";
  return Math.floor(s / 3600) + "h " + String(Math.floor((s % 3600) / 60)).padStart(2, "0") + "m";
}
const fmtPct = (r) => (r === null || r === undefined ? "–" : (100 * r).toFixed(1) + "%");
const fmtInt = (n) => (n === null || n === undefined ? "–" : String(Math.round(n)));

function slClass(value, objective) {
  if (value === null || value === undefined || objective === null) return "";
  if (value < objective) return "breach";
  return value < objective + 0.05 ? "warn" : "ok";
}

function cell(row, field, text, cls) {
  const td = document.createElement("td");
  td.dataset.queue = row.queue;
  td.dataset.field = field;
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function renderRow(row, isTotal) {
  const tr = document.createElement("tr");
  const short = row.windows[shortWindow] || { figures: {}, components: {} };
  const today = row.windows["today"] || { figures: {}, components: {} };
  const name = document.createElement("td");
  name.className = "name";
  name.textContent = row.queue;
  if (row.business_hours && row.business_hours.length) {
    const tag = document.createElement("span");
    tag.className = "hours";
    tag.title = "targets in business hours";
    tag.textContent = "business hours";
    name.appendChild(tag);
  }
  tr.appendChild(name);
  const breaches = row.now.first_response_breaches || 0;
  tr.appendChild(cell(row, "waiting", fmtInt(row.now.waiting), breaches > 0 ? "breach" : ""));
  tr.appendChild(cell(row, "oldest_wait", fmtDuration(row.now.oldest_wait_seconds),
    breaches > 0 ? "breach" : ""));
  const sl = short.figures.service_level;
  tr.appendChild(cell(row, "service_level", fmtPct(sl), slClass(sl, row.objective)));
  const slToday = today.figures.service_level;
  tr.appendChild(cell(row, "service_level_today", fmtPct(slToday), slClass(slToday, row.objective)));
  tr.appendChild(cell(row, "abandonment", fmtPct(short.figures.abandonment_rate)));
  tr.appendChild(cell(row, "answered_offered",
    fmtInt(short.components.answered || 0) + " / " + fmtInt(short.components.offered || 0)));
  tr.appendChild(cell(row, "frt_p90", fmtDuration(short.figures.frt_p90_seconds)));
  tr.appendChild(cell(row, "acr", fmtPct(today.figures.acr_provisional_3d)));
  tr.appendChild(cell(row, "csat", fmtPct(today.figures.csat)));
  tr.appendChild(cell(row, "open", fmtInt(row.now.open)));
  const breaching = breaches > 0 || slClass(sl, row.objective) === "breach";
  tr.className = (isTotal ? "total " : "") + (breaching ? "breaching" : "");
  tr.dataset.queue = row.queue;
  return tr;
}

function render(doc) {
  latest = doc;
  const body = document.getElementById("rows");
  const rows = doc.queues.map((q) => renderRow(q, false));
  if (doc.queues.length) rows.push(renderRow(doc.total, true));
  body.replaceChildren(...rows);
  document.getElementById("empty").hidden = doc.queues.length > 0;
  for (const el of document.querySelectorAll('.win[data-window="short"]')) el.textContent = shortWindow;
  tick();
}

function tick() {
  const now = new Date();
  document.getElementById("clock").textContent = now.toLocaleTimeString();
  const status = document.getElementById("status");
  const updated = document.getElementById("updated");
  if (!latest || latest.at === null) {
    status.textContent = latest && latest.error ? "no data: " + latest.error : "connecting";
    return;
  }
  const age = now.getTime() / 1000 - latest.at;
  updated.textContent = "updated " + new Date(latest.at * 1000).toLocaleTimeString();
  const stale = latest.stale || age > 2.5 * latest.refresh_seconds;
  status.className = "status " + (stale ? "stale" : "live");
  status.textContent = stale ? "STALE " + fmtDuration(age) : "live";
  if (stale && latest.incomplete) status.textContent += " (" + latest.incomplete + ")";
  document.body.classList.toggle("is-stale", stale);
  if (latest.missing && latest.missing.length && !stale) {
    status.textContent = "live, " + latest.missing.length + " worker(s) missing";
    status.className = "status stale";
  }
  if (!latest.windows.includes(shortWindow)) {  // ?window= names none: its cells would be blank
    status.textContent = "no window " + shortWindow + ": this board has " + latest.windows.join(", ");
    status.className = "status stale";
  }
}

function connect() {
  const source = new EventSource("/api/v1/stream" + location.search);
  source.onmessage = (event) => render(JSON.parse(event.data));
  source.onerror = () => tick();  // EventSource reconnects by itself; the page keeps its data
}

setInterval(tick, 1000);
connect();
