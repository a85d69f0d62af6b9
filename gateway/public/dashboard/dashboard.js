// The live dashboard: polls GET /orders/stats (aggregate, read-only figures) every second and shows
// them. Every figure sits in an element named by data-metric, with its value in data-value or
// data-state, so that a test (and a person's browser tools) can read what the page shows.
"use strict";

const POLL_INTERVAL_MS = 1_000;
/** Points of the checkouts-per-second history: two minutes. */
const HISTORY_POINTS = 120;

const $ = (selector) => document.querySelector(selector);
const history = [];
const format = (n, digits = 0) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en", { maximumFractionDigits: digits }));

function showCheckouts(checkouts) {
  const card = $('[data-metric="checkouts_per_s"]');
  card.dataset.value = String(checkouts.paid_per_s + checkouts.refused_per_s);
  card.dataset.paid = String(checkouts.paid_per_s);
  card.dataset.refused = String(checkouts.refused_per_s);
  $("#paid").textContent = format(checkouts.paid_per_s);
  $("#refused").textContent = format(checkouts.refused_per_s);
  $("#in-flight").textContent = format(checkouts.in_flight);
  history.push(checkouts);
  if (history.length > HISTORY_POINTS) history.shift();
  drawHistory();
}

function drawHistory() {
  const canvas = $("#history");
  const context = canvas.getContext("2d");
  const { width, height } = canvas;
  context.clearRect(0, 0, width, height);
  const top = Math.max(10, ...history.map((c) => c.paid_per_s + c.refused_per_s));
  const step = width / (HISTORY_POINTS - 1);
  const line = (value, colour) => {
    context.beginPath();
    history.forEach((c, i) => {
      const x = width - (history.length - 1 - i) * step;
      const y = height - 4 - (value(c) / top) * (height - 16);
      if (i === 0) context.moveTo(x, y);
      else context.lineTo(x, y);
    });
    context.strokeStyle = colour;
    context.lineWidth = 2;
    context.stroke();
  };
  line((c) => c.paid_per_s, "#2d8a4e");
  line((c) => c.refused_per_s, "#b26a00");
  context.fillStyle = "#6b7385";
  context.font = "12px system-ui, sans-serif";
  context.fillText(`${format(top)}/s`, 4, 12);
}

function showLatency(latency) {
  $("#p50").textContent = latency ? `${format(latency.p50, 1)} ms` : "–";
  $("#p99").textContent = latency ? `${format(latency.p99, 1)} ms` : "–";
}

function showSagas(count) {
  $('[data-metric="sagas_in_flight"]').dataset.value = String(count);
  $("#sagas").textContent = format(count);
}

/** "holds" when both services' books balance, "broken" when one does not, "unknown" while one cannot be asked. */
function showConservation(conservation) {
  const states = [];
  for (const service of ["stock", "payment"]) {
    const totals = conservation[service];
    const row = $(`tr[data-service="${service}"]`);
    for (const name of ["held", "in_steps", "put_in"]) row.querySelector(`[data-total="${name}"]`).textContent = totals ? format(totals[name]) : "–";
    const verdict = row.querySelector('[data-total="holds"]');
    verdict.textContent = totals ? (totals.holds ? "✓" : "✗ moved") : "?";
    verdict.classList.toggle("broken", Boolean(totals && !totals.holds));
    states.push(totals === null ? "unknown" : totals.holds ? "holds" : "broken");
  }
  const state = states.includes("broken") ? "broken" : states.includes("unknown") ? "unknown" : "holds";
  $('[data-metric="conservation"]').dataset.state = state;
  $("#verdict").textContent = { holds: "holds", broken: "BROKEN: something was lost or created", unknown: "a service cannot be asked" }[state];
  document.body.dataset.state = state;
}

function showProcesses(processes) {
  $("#processes").replaceChildren(
    ...processes.map((p) => {
      const row = document.createElement("tr");
      row.dataset.process = p.name;
      row.dataset.restarts = String(p.restarts);
      row.classList.toggle("restarted", p.restarts > 0);
      for (const text of [p.name, p.service, String(p.restarts)]) row.append(Object.assign(document.createElement("td"), { textContent: text }));
      return row;
    }),
  );
}

async function poll() {
  try {
    const response = await fetch("/orders/stats", { cache: "no-store" });
    if (!response.ok) throw new Error(`GET /orders/stats answered ${response.status}`);
    const stats = await response.json();
    showCheckouts(stats.checkouts);
    showLatency(stats.latency_ms);
    showSagas(stats.sagas_in_flight);
    showConservation(stats.conservation);
    showProcesses(stats.processes);
    $("#updated").textContent = `Updated ${new Date(stats.at).toLocaleTimeString("en-GB")}.`;
  } catch (error) {
    // A gateway or order replica restarting: said on the page, and the next poll tries again.
    $("#updated").textContent = `No figures: ${error.message}`;
  } finally {
    setTimeout(poll, POLL_INTERVAL_MS);
  }
}

poll();
