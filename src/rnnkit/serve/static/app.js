// rnnkit playground: plain JavaScript, no libraries, everything from the local server.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { run: null, steps: [], metrics: [], attended: null };
window.playground = { timing: {} }; // measured by the browser test

function el(tag, attrs = {}, text = "") {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text) node.textContent = text;
  return node;
}

async function getJSON(url, options) {
  const response = await fetch(url, options);
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

function showError(id, message) {
  const box = $(id);
  box.textContent = message || "";
  box.hidden = !message;
}

// ---------------------------------------------------------------- runs
async function loadRuns() {
  const runs = await getJSON("/api/runs");
  const list = $("runs");
  for (const run of runs) {
    const button = el("button", { "data-run": run.id }, run.name);
    button.append(el("span", { class: "task" }, run.task));
    button.addEventListener("click", () => openRun(run.id));
    const item = el("li");
    item.append(button);
    list.append(item);
  }
  if (runs.length) openRun(runs[0].id);
}

async function openRun(id) {
  const run = await getJSON(`/api/runs/${id}`);
  state.run = run;
  document.querySelectorAll("nav button").forEach((b) =>
    b.classList.toggle("active", b.dataset.run === String(id)));
  $("welcome").hidden = true;
  $("run").hidden = false;
  $("run-title").textContent = `${run.name} (${run.task})`;
  $("config").textContent = JSON.stringify(run.config, null, 2);
  state.metrics = run.metrics;
  drawCurves();
  $("lm-panel").hidden = run.task !== "lm";
  $("translate-panel").hidden = run.task !== "translate";
  $("forecast-panel").hidden = run.task !== "forecast";
  $("forecast").textContent = "";
  $("lm-output").textContent = "";
  $("nbest").textContent = "";
  $("attention").textContent = "";
}

// ---------------------------------------------------------------- training curves (SVG)
const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

function drawCurves() {
  const box = $("curves");
  box.textContent = "";
  const x = document.querySelector("input[name=xaxis]:checked").value;
  const series = { train: [], valid: [] };
  for (const r of state.metrics) if (series[r.split]) series[r.split].push([r[x], r.loss]);
  const points = series.train.concat(series.valid);
  if (!points.length) { box.append(el("p", { class: "hint" }, "no training records yet")); return; }
  const W = 520, H = 220, L = 46, B = 28, T = 8, R = 10;
  const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
  const x0 = Math.min(...xs), x1 = Math.max(...xs) || 1, y0 = Math.min(...ys), y1 = Math.max(...ys);
  const sx = (v) => L + ((v - x0) / (x1 - x0 || 1)) * (W - L - R);
  const sy = (v) => T + (1 - (v - y0) / (y1 - y0 || 1)) * (H - T - B);
  const plot = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: "100%", class: "curves", role: "img" });
  plot.append(svg("rect", { x: L, y: T, width: W - L - R, height: H - T - B, fill: "none", stroke: "#e5e7eb" }));
  for (const [v, label] of [[y0, y0], [y1, y1]]) {
    const t = svg("text", { x: L - 4, y: sy(v) + 4, "text-anchor": "end" });
    t.textContent = label.toFixed(2);
    plot.append(t);
  }
  for (const v of [x0, x1]) {
    const t = svg("text", { x: sx(v), y: H - 8, "text-anchor": "middle" });
    t.textContent = Math.round(v * 10) / 10;
    plot.append(t);
  }
  const caption = svg("text", { x: (L + W) / 2, y: H - 8, "text-anchor": "middle" });
  caption.textContent = x === "step" ? "step" : "seconds";
  plot.append(caption);
  const colors = { train: "#2563eb", valid: "#dc2626" };
  for (const [name, pts] of Object.entries(series)) {
    if (!pts.length) continue;
    const d = pts.map((p, i) => `${i ? "L" : "M"}${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join("");
    plot.append(svg("path", { d, fill: "none", stroke: colors[name], "stroke-width": 2 }));
    if (pts.length < 40) for (const p of pts)
      plot.append(svg("circle", { cx: sx(p[0]), cy: sy(p[1]), r: 2.5, fill: colors[name] }));
  }
  box.append(plot);
  const legend = el("div", { class: "legend" });
  for (const [name, color] of Object.entries(colors)) {
    const item = el("span", {}, `\u25A0 ${name} loss (nats/token)`);
    item.style.color = color;
    legend.append(item);
  }
  box.append(legend);
}

// ---------------------------------------------------------------- language model
function shade(span, step) {
  const mode = document.querySelector("input[name=shade]:checked").value;
  if (mode === "prob") {
    // Unlikely tokens are dark orange, sure ones almost white.
    span.style.background = `rgba(234, 88, 12, ${(1 - step.prob) * 0.85})`;
  } else {
    const unit = Number($("unit").value) || 0;
    const v = Math.max(-1, Math.min(1, step.hidden[unit] ?? 0));
    span.style.background = v >= 0 ? `rgba(37, 99, 235, ${v})` : `rgba(220, 38, 38, ${-v})`;
  }
}

function reshade() {
  document.querySelectorAll("#lm-output .tok").forEach((span) => shade(span, state.steps[span.dataset.i]));
}

function addStep(step) {
  const i = state.steps.push(step) - 1;
  const span = el("span", { class: "tok", "data-i": i }, step.text);
  shade(span, step);
  $("lm-output").append(span);
  const units = step.hidden.length;
  $("unit").max = units - 1;
  $("unit-range").textContent = `of 0-${units - 1}`;
}

function parseEvents(buffer, onEvent) {
  // Server-sent events: blocks separated by a blank line, with "event:" and "data:" lines.
  const blocks = buffer.split("\n\n");
  for (const block of blocks.slice(0, -1)) {
    let name = "message", data = "";
    for (const line of block.split("\n")) {
      if (line.startsWith("event: ")) name = line.slice(7);
      else if (line.startsWith("data: ")) data += line.slice(6);
    }
    onEvent(name, JSON.parse(data || "null"));
  }
  return blocks[blocks.length - 1];
}

async function generate(event) {
  event.preventDefault();
  showError("lm-error", "");
  const form = new FormData($("lm-form"));
  const query = new URLSearchParams();
  for (const [k, v] of form) if (v !== "") query.set(k, v);
  const output = $("lm-output");
  output.textContent = "";
  state.steps = [];
  const timing = window.playground.timing;
  timing.requestAt = performance.now();
  timing.firstTokenAt = null;
  const response = await fetch(`/api/runs/${state.run.id}/generate?${query}`);
  if (!response.ok) {
    const data = await response.json().catch(() => ({}));
    showError("lm-error", data.error || response.statusText);
    return;
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  const onEvent = (name, data) => {
    if (name === "prime") output.append(el("span", { class: "prime" }, data.text));
    else if (name === "token") {
      if (timing.firstTokenAt === null) timing.firstTokenAt = performance.now();
      addStep(data);
    } else if (name === "error") showError("lm-error", data.error);
    else if (name === "done") output.dataset.done = "1";
  };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer = parseEvents(buffer + decoder.decode(value, { stream: true }), onEvent);
  }
}

function showTooltip(event) {
  const span = event.target.closest(".tok");
  const tip = $("tooltip");
  if (!span) { tip.hidden = true; return; }
  const step = state.steps[span.dataset.i];
  const rows = step.alternatives.map(([token, p]) =>
    `<tr><td>${JSON.stringify(token).replace(/</g, "&lt;")}</td><td>${(100 * p).toFixed(1)}%</td></tr>`);
  const unit = Number($("unit").value) || 0;
  tip.innerHTML = `<div>chosen ${JSON.stringify(step.text).replace(/</g, "&lt;")}: ` +
    `${(100 * step.prob).toFixed(1)}%, unit ${unit}: ${(step.hidden[unit] ?? 0).toFixed(3)}</div>` +
    `<table class="alternatives">${rows.join("")}</table>`;
  tip.hidden = false;
  const box = span.getBoundingClientRect();
  tip.style.left = `${box.left}px`;
  tip.style.top = `${box.bottom + 6}px`;
}

// ---------------------------------------------------------------- translation
async function translate(event) {
  event.preventDefault();
  showError("translate-error", "");
  const form = Object.fromEntries(new FormData($("translate-form")));
  const body = { text: form.text, beam: form.beam, n_best: form.n_best };
  try {
    state.attended = await getJSON(`/api/runs/${state.run.id}/translate`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
  } catch (err) {
    showError("translate-error", err.message);
    return;
  }
  const list = $("nbest");
  list.textContent = "";
  state.attended.hypotheses.forEach((h, i) => {
    const item = el("li", { "data-i": i }, h.text || "(empty)");
    item.append(el("span", { class: "score" }, `score ${h.score.toFixed(3)}`));
    item.addEventListener("click", () => showAttention(i));
    list.append(item);
  });
  showAttention(0);
}

function showAttention(i) {
  const { source, hypotheses } = state.attended;
  const h = hypotheses[i];
  document.querySelectorAll("#nbest li").forEach((li) => li.classList.toggle("active", li.dataset.i === String(i)));
  const table = el("table", { class: "heat", "aria-label": "attention" });
  const head = table.createTHead().insertRow();
  head.append(el("th"));
  for (const s of source) head.append(el("th", {}, s));
  const body = table.createTBody();
  h.target.forEach((t, r) => {
    const row = body.insertRow();
    row.append(el("th", {}, t));
    h.attention[r].forEach((w) => {
      const cell = row.insertCell();
      cell.style.background = `rgba(37, 99, 235, ${w})`;
      cell.title = `${t} \u2190 ${w.toFixed(3)}`;
    });
  });
  $("attention").textContent = "";
  $("attention").append(el("p", { class: "hint" }, "Attention: each row is an output token, each column a source token."), table);
}

// ---------------------------------------------------------------- forecasting
async function forecast(event) {
  event.preventDefault();
  showError("forecast-error", "");
  const file = $("forecast-form").elements.csv.files[0];
  const body = { horizon: $("forecast-form").elements.horizon.value };
  if (file) body.csv = await file.text();
  let result;
  try {
    result = await getJSON(`/api/runs/${state.run.id}/forecast`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
  } catch (err) {
    showError("forecast-error", err.message);
    return;
  }
  const box = $("forecast");
  box.textContent = "";
  box.append(el("p", { class: "hint" }, `${result.data}: median, 80% and 95% bands, ${result.horizon} steps`));
  for (const series of result.series.slice(0, 6)) box.append(el("h4", {}, series.name), forecastChart(series));
}

function forecastChart(series) {
  const history = series.history.values, n = history.length, h = series.mean.length;
  const bands = series.bands;
  const all = history.filter((v) => v !== null).concat(bands["0.025"], bands["0.975"]);
  const W = 640, H = 200, L = 46, B = 22, T = 8, R = 10;
  const y0 = Math.min(...all), y1 = Math.max(...all);
  const sx = (i) => L + (i / (n + h - 1 || 1)) * (W - L - R);
  const sy = (v) => T + (1 - (v - y0) / (y1 - y0 || 1)) * (H - T - B);
  const plot = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: "100%", class: "curves forecast", role: "img" });
  plot.append(svg("rect", { x: L, y: T, width: W - L - R, height: H - T - B, fill: "none", stroke: "#e5e7eb" }));
  const line = (values, offset) => values.map((v, i) => v === null ? "" :
    `${i && values[i - 1] !== null ? "L" : "M"}${sx(offset + i).toFixed(1)},${sy(v).toFixed(1)}`).join("");
  const band = (lo, hi) => line(lo, n) + hi.map((v, i) => `L${sx(n + hi.length - 1 - i).toFixed(1)},` +
    `${sy(hi[hi.length - 1 - i]).toFixed(1)}`).join("") + "Z";
  plot.append(svg("path", { d: band(bands["0.025"], bands["0.975"]), fill: "rgba(37, 99, 235, 0.15)", class: "band95" }));
  plot.append(svg("path", { d: band(bands["0.1"], bands["0.9"]), fill: "rgba(37, 99, 235, 0.3)", class: "band80" }));
  plot.append(svg("path", { d: line(history, 0), fill: "none", stroke: "#374151", "stroke-width": 1.5 }));
  plot.append(svg("path", { d: line(bands["0.5"], n), fill: "none", stroke: "#2563eb", "stroke-width": 2, class: "median" }));
  for (const v of [y0, y1]) {
    const t = svg("text", { x: L - 4, y: sy(v) + 4, "text-anchor": "end" });
    t.textContent = v.toFixed(1);
    plot.append(t);
  }
  const start = svg("text", { x: sx(n), y: H - 6, "text-anchor": "middle" });
  start.textContent = series.times[0].replace("T", " ");
  plot.append(start);
  return plot;
}

// ---------------------------------------------------------------- wiring
$("lm-form").addEventListener("submit", generate);
$("translate-form").addEventListener("submit", translate);
$("forecast-form").addEventListener("submit", forecast);
$("lm-output").addEventListener("mouseover", showTooltip);
$("lm-output").addEventListener("mouseleave", () => { $("tooltip").hidden = true; });
document.querySelectorAll("input[name=shade]").forEach((r) => r.addEventListener("change", reshade));
$("unit").addEventListener("input", reshade);
document.querySelectorAll("input[name=xaxis]").forEach((r) => r.addEventListener("change", drawCurves));
loadRuns().catch((err) => { $("welcome").textContent = `Could not list the runs: ${err.message}`; });
window.playground.loadedAt = performance.now();
