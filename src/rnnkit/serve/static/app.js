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
  $("speech-panel").hidden = run.task !== "speech";
  $("caption-panel").hidden = run.task !== "caption";
  for (const id of ["forecast", "speech", "caption"]) $(id).textContent = "";
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
    const item = el("span", {}, `\u25A0 ${name} loss (${state.run.loss_unit})`);
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

// ---------------------------------------------------------------- files and colours
async function postFile(path, query, blob) {
  // The file is the request's body; the settings are in the query string.
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== "") params.set(k, v);
  return getJSON(`/api/runs/${state.run.id}/${path}?${params}`, {
    method: "POST", headers: { "Content-Type": "application/octet-stream" }, body: blob,
  });
}

// A perceptual dark-to-bright ramp (after matplotlib's magma), t in [0, 1].
const RAMP = [[0, 0, 4], [81, 18, 124], [183, 55, 121], [252, 137, 97], [252, 253, 191]];
function ramp(t) {
  const x = Math.max(0, Math.min(1, t)) * (RAMP.length - 1), i = Math.min(Math.floor(x), RAMP.length - 2);
  const f = x - i;
  return RAMP[i].map((c, k) => Math.round(c + f * (RAMP[i + 1][k] - c)));
}

// A rows x cols canvas with one pixel per cell, coloured by color(value) -> [r, g, b, a].
function cellCanvas(cells, color) {
  const rows = cells.length, cols = cells[0].length;
  const canvas = el("canvas", { width: cols, height: rows });
  const context = canvas.getContext("2d");
  const image = context.createImageData(cols, rows);
  cells.forEach((row, r) => row.forEach((v, c) => image.data.set(color(v), 4 * (r * cols + c))));
  context.putImageData(image, 0, 0);
  return canvas;
}

function transpose(rows) {
  return rows[0].map((_, c) => rows.map((row) => row[c]));
}

// ---------------------------------------------------------------- speech
async function transcribe(audio) {
  showError("speech-error", "");
  const form = $("speech-form").elements;
  if (!audio) { showError("speech-error", "choose an audio file or record one"); return; }
  $("speech").textContent = "";
  delete $("speech").dataset.done;
  let result;
  try {
    result = await postFile("transcribe", { beam: form.beam.value, nbest: form.nbest.value }, audio);
  } catch (err) {
    showError("speech-error", err.message);
    return;
  }
  state.speech = result;
  const box = $("speech"), t = result.transcript;
  box.append(el("p", { class: "transcript" }, t.text || "(nothing recognised)"));
  box.append(el("p", { class: "hint" }, `${t.seconds.toFixed(2)} s of audio`));
  if (t.nbest.length > 1) {
    const list = el("ol", { class: "nbest", id: "speech-nbest" });
    for (const h of t.nbest) {
      const item = el("li", {}, h.text || "(empty)");
      item.append(el("span", { class: "score" }, `score ${h.score.toFixed(3)}`));
      list.append(item);
    }
    box.append(el("h4", {}, "N-best"), list);
  }
  if (t.words.length) {
    const table = el("table", { class: "words" });
    table.createTHead().insertRow().append(el("th", {}, "word"), el("th", {}, "start s"), el("th", {}, "end s"));
    const body = table.createTBody();
    for (const w of t.words) {
      const row = body.insertRow();
      row.append(el("td", {}, w.word), el("td", {}, w.start.toFixed(2)), el("td", {}, w.end.toFixed(2)));
    }
    box.append(el("h4", {}, "Word timings"), table);
  }
  box.append(el("h4", {}, "What the model heard"), el("p", { class: "hint" },
    "Top: log-mel spectrogram. Middle: each character's CTC probability per output frame " +
    "(the first row is the blank). Bottom: the characters of the best hypothesis at their aligned " +
    "frames. Hover for the probabilities of a frame." + (result.whole ? "" : " (the file's first segment)")),
  posteriorView(result));
  box.dataset.done = "1";
}

function posteriorView(result) {
  const { features, posteriors, symbols, characters } = result;
  const seconds = features.length * result.frame_seconds, step = result.step_seconds;
  const W = 900, L = 52, R = 8, specH = 110, rowH = Math.max(7, Math.min(16, 200 / symbols.length));
  const postTop = specH + 6, postH = rowH * symbols.length, charTop = postTop + postH + 4, H = charTop + 30;
  const canvas = el("canvas", { width: W, height: H, class: "posteriors", "aria-label": "CTC posteriors" });
  const g = canvas.getContext("2d");
  const sx = (s) => L + (s / seconds) * (W - L - R);
  g.imageSmoothingEnabled = false;
  let lo = Infinity, hi = -Infinity;
  for (const row of features) for (const v of row) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  const mel = transpose(features).reverse(); // the low channels at the bottom
  g.drawImage(cellCanvas(mel, (v) => [...ramp((v - lo) / (hi - lo || 1)), 255]), L, 0, sx(seconds) - L, specH);
  // Row k: class k (the blank on top); column t: output frame t.
  g.drawImage(cellCanvas(transpose(posteriors), (p) => [37, 99, 235, Math.round(255 * p)]),
    L, postTop, sx(posteriors.length * step) - L, postH);
  Object.assign(canvas.dataset, { left: L, plotWidth: W - L - R, rowsTop: postTop, rowHeight: rowH, seconds });
  g.font = "11px system-ui, sans-serif";
  g.fillStyle = "#6b7280";
  g.textAlign = "right";
  g.fillText("mel", L - 6, specH / 2);
  symbols.forEach((s, k) => g.fillText(label(s), L - 6, postTop + (k + 0.8) * rowH));
  g.textAlign = "center";
  for (const c of characters) {
    const x0 = sx(c.start * step), x1 = sx(c.end * step);
    g.fillStyle = "rgba(37, 99, 235, 0.18)";
    g.fillRect(x0, charTop, Math.max(x1 - x0, 2), 22);
    g.fillStyle = "#1f2430";
    g.font = "14px ui-monospace, monospace";
    g.fillText(c.char === " " ? "\u2423" : c.char, (x0 + x1) / 2, charTop + 16);
  }
  g.fillStyle = "#6b7280";
  g.font = "11px system-ui, sans-serif";
  g.fillText(`${seconds.toFixed(2)} s`, W - 26, H - 1);
  canvas.addEventListener("mousemove", (event) => {
    const box = canvas.getBoundingClientRect();
    const x = ((event.clientX - box.left) / box.width) * W;
    const frame = Math.floor(((x - L) / (W - L - R)) * seconds / step);
    const tip = $("tooltip");
    if (frame < 0 || frame >= posteriors.length) { tip.hidden = true; return; }
    const top = posteriors[frame].map((p, k) => [p, k]).sort((a, b) => b[0] - a[0]).slice(0, 4);
    tip.innerHTML = `<div>frame ${frame}, ${(frame * step).toFixed(2)}-${((frame + 1) * step).toFixed(2)} s</div>` +
      `<table class="alternatives">${top.map(([p, k]) =>
        `<tr><td>${label(symbols[k]).replace(/</g, "&lt;")}</td><td>${(100 * p).toFixed(1)}%</td></tr>`).join("")}</table>`;
    tip.hidden = false;
    tip.style.left = `${event.clientX + 12}px`;
    tip.style.top = `${event.clientY + 12}px`;
  });
  canvas.addEventListener("mouseleave", () => { $("tooltip").hidden = true; });
  return canvas;
}

function label(symbol) {
  return symbol === "" ? "blank" : symbol === " " ? "space" : symbol;
}

// Recording: the microphone through WebAudio, kept as float samples, sent as a 16-bit WAV.
const recorder = { chunks: [], stream: null, context: null, started: 0, timer: null };

async function toggleRecording() {
  if (recorder.stream) return stopRecording();
  showError("speech-error", "");
  try {
    recorder.stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (err) {
    showError("speech-error", `no microphone: ${err.message}`);
    return;
  }
  recorder.context = new AudioContext();
  const source = recorder.context.createMediaStreamSource(recorder.stream);
  const tap = recorder.context.createScriptProcessor(4096, 1, 1);
  recorder.chunks = [];
  tap.onaudioprocess = (e) => recorder.chunks.push(new Float32Array(e.inputBuffer.getChannelData(0)));
  source.connect(tap);
  tap.connect(recorder.context.destination);
  recorder.started = performance.now();
  $("record").textContent = "Stop";
  recorder.timer = setInterval(() => {
    $("record-state").textContent = `recording ${((performance.now() - recorder.started) / 1000).toFixed(1)} s`;
  }, 100);
}

async function stopRecording() {
  clearInterval(recorder.timer);
  recorder.stream.getTracks().forEach((track) => track.stop());
  const rate = recorder.context.sampleRate;
  await recorder.context.close();
  recorder.stream = null;
  $("record").textContent = "Record";
  const wav = encodeWav(recorder.chunks, rate);
  $("record-state").textContent = `recorded ${(wav.size / 2 / rate).toFixed(1)} s`;
  await transcribe(wav);
}

function encodeWav(chunks, rate) {
  // RIFF header (44 bytes) + mono 16-bit little-endian PCM.
  const count = chunks.reduce((n, c) => n + c.length, 0);
  const view = new DataView(new ArrayBuffer(44 + 2 * count));
  const text = (at, s) => [...s].forEach((ch, i) => view.setUint8(at + i, ch.charCodeAt(0)));
  text(0, "RIFF"); view.setUint32(4, 36 + 2 * count, true); text(8, "WAVE");
  text(12, "fmt "); view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
  view.setUint32(24, rate, true); view.setUint32(28, 2 * rate, true); view.setUint16(32, 2, true);
  view.setUint16(34, 16, true); text(36, "data"); view.setUint32(40, 2 * count, true);
  let at = 44;
  for (const chunk of chunks) for (const v of chunk) {
    view.setInt16(at, Math.round(Math.max(-1, Math.min(1, v)) * 32767), true);
    at += 2;
  }
  return new Blob([view], { type: "audio/wav" });
}

// ---------------------------------------------------------------- captioning
async function describe(event) {
  event.preventDefault();
  showError("caption-error", "");
  const form = $("caption-form").elements, file = form.image.files[0];
  if (!file) { showError("caption-error", "choose a picture"); return; }
  $("caption").textContent = "";
  try {
    state.caption = await postFile("describe", { beam: form.beam.value, n_best: form.n_best.value }, file);
  } catch (err) {
    showError("caption-error", err.message);
    return;
  }
  state.caption.picture = await new Promise((resolve) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.src = state.caption.image;
  });
  const list = el("ol", { class: "nbest", id: "caption-nbest" });
  state.caption.captions.forEach((c, i) => {
    const item = el("li", { "data-i": i }, c.text || "(empty)");
    item.append(el("span", { class: "score" }, `log p ${c.log_prob.toFixed(3)}`));
    item.addEventListener("click", () => showCaption(i));
    list.append(item);
  });
  $("caption").append(list, el("div", { id: "caption-view" }));
  showCaption(0);
}

function showCaption(i) {
  const { captions, decoder } = state.caption, c = captions[i];
  document.querySelectorAll("#caption-nbest li").forEach((li) => li.classList.toggle("active", li.dataset.i === String(i)));
  const view = $("caption-view");
  view.textContent = "";
  if (!c.attention) {
    view.append(el("p", { class: "hint" }, `This model has no attention (decoder ${decoder}).`), overlay(null, 320));
    return;
  }
  const labels = c.words.concat(c.attention.length > c.words.length ? ["<end>"] : []);
  view.append(el("p", { class: "hint" }, "Pick a word: where the decoder looked when it wrote it (bright: more attention)."));
  const strip = el("div", { class: "thumbs" });
  labels.forEach((word, t) => {
    const thumb = el("button", { type: "button", class: "thumb", "data-t": t });
    thumb.append(overlay(c.attention[t], 96), el("span", {}, word));
    thumb.addEventListener("click", () => chooseWord(t));
    strip.append(thumb);
  });
  view.append(strip, el("div", { id: "caption-large" }));
  chooseWord(0);
}

function chooseWord(t) {
  const c = state.caption.captions[Number($("caption-nbest").querySelector("li.active").dataset.i)];
  document.querySelectorAll(".thumb").forEach((b) => b.classList.toggle("active", b.dataset.t === String(t)));
  const large = $("caption-large");
  large.textContent = "";
  const canvas = overlay(c.attention[t], 360);
  canvas.dataset.word = c.words[t] ?? "<end>";
  large.append(canvas);
}

// The picture (as the model saw it) with one step's attention grid stretched over it, smoothly.
function overlay(weights, size) {
  const canvas = el("canvas", { width: size, height: size, class: weights ? "attention" : "picture" });
  const g = canvas.getContext("2d");
  g.imageSmoothingEnabled = true;
  g.drawImage(state.caption.picture, 0, 0, size, size);
  if (!weights) return canvas;
  const n = state.caption.grid, top = Math.max(...weights) || 1;
  const cells = Array.from({ length: n }, (_, r) => weights.slice(r * n, (r + 1) * n));
  g.globalAlpha = 0.6;
  g.drawImage(cellCanvas(cells, (w) => [...ramp(w / top), 255]), 0, 0, size, size);
  g.globalAlpha = 1;
  return canvas;
}

// ---------------------------------------------------------------- wiring
$("lm-form").addEventListener("submit", generate);
$("speech-form").addEventListener("submit", (event) => {
  event.preventDefault();
  transcribe($("speech-form").elements.audio.files[0]);
});
$("record").addEventListener("click", toggleRecording);
$("caption-form").addEventListener("submit", describe);
$("translate-form").addEventListener("submit", translate);
$("forecast-form").addEventListener("submit", forecast);
$("lm-output").addEventListener("mouseover", showTooltip);
$("lm-output").addEventListener("mouseleave", () => { $("tooltip").hidden = true; });
document.querySelectorAll("input[name=shade]").forEach((r) => r.addEventListener("change", reshade));
$("unit").addEventListener("input", reshade);
document.querySelectorAll("input[name=xaxis]").forEach((r) => r.addEventListener("change", drawCurves));
loadRuns().catch((err) => { $("welcome").textContent = `Could not list the runs: ${err.message}`; });
window.playground.loadedAt = performance.now();
