// The labeling page: shows the server's state and sends each action; every decision is the server's (the library's).
"use strict";

const TOKEN = new URLSearchParams(location.search).get("token") || "";
const $ = (id) => document.getElementById(id);
let state = null;
let cursor = 0;          // index into state.picks
let suspectCursor = 0;   // index into the suspects not reviewed yet
const optimistic = {};   // sample -> class, sent and not yet confirmed
const skipKey = "fewlabels-skipped:" + location.pathname;
const skipped = new Set(JSON.parse(localStorage.getItem(skipKey) || "[]"));
window.fewlabelsLatency = [];  // ms from a label key to the next image on screen (the browser test reads it)
const preloaded = {};

function imageUrl(sample) {
  return "api/image?token=" + encodeURIComponent(TOKEN) + "&sample=" + encodeURIComponent(sample);
}

function showError(text) {
  const box = $("error");
  box.textContent = text || "";
  box.hidden = !text;
}

async function call(path, body) {
  let response;
  try {
    response = await fetch(path, {
      method: body === undefined ? "GET" : "POST",
      headers: {"X-Token": TOKEN, "Content-Type": "application/json"},
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    showError("the server does not answer (stopped?); nothing more was saved. Start fewlabels label again and reload.");
    return null;
  }
  if (response.status === 403) {
    showError(await response.text());
    return null;
  }
  const data = await response.json();
  if (data.state) { state = data.state; }
  if (body !== undefined || !data.ok) showError(data.ok ? "" : data.error);
  render();
  return data;
}

// ---- picks

function statusOf(pick) {
  if (optimistic[pick.sample] !== undefined) return "labeled";
  return pick.status;
}

function nextTodo(from) {
  const picks = state.picks;
  for (let i = from + 1; i < picks.length; i++) {
    if (statusOf(picks[i]) === "todo" && !skipped.has(picks[i].sample)) return i;
  }
  for (let i = 0; i < picks.length; i++) {
    if (statusOf(picks[i]) === "todo" && !skipped.has(picks[i].sample)) return i;
  }
  return -1;
}

function preload(i) {
  const pick = state && state.picks[i];
  if (pick && !preloaded[pick.sample]) {
    const img = new Image();
    img.src = imageUrl(pick.sample);
    preloaded[pick.sample] = img;
  }
}

function currentPath(pick) {
  // where the file is now: a labeled pick sits in its class folder
  const cls = optimistic[pick.sample] || pick.label;
  return statusOf(pick) === "labeled" ? cls + pick.sample.slice(pick.sample.indexOf("/")) : pick.sample;
}

function label(cls) {
  const pick = state.picks[cursor];
  if (!pick) return;
  const started = performance.now();
  const status = statusOf(pick);
  if (status === "gone") return;
  if (status === "labeled") {  // labeled here before: a change of mind moves it on
    if ((optimistic[pick.sample] || pick.label) === cls) return;
    call("api/relabel", {sample: currentPath(pick), class: cls});
    return;
  }
  optimistic[pick.sample] = cls;
  skipped.delete(pick.sample);
  const at = cursor;
  const next = nextTodo(cursor);
  if (next >= 0) cursor = next;
  renderPick(started);
  call("api/label", {sample: pick.sample, class: cls}).then((data) => {
    delete optimistic[pick.sample];
    if (!data || !data.ok) { cursor = at; }  // not written: stay on it
    render();
  });
}

function skip() {
  const pick = state.picks[cursor];
  if (!pick) return;
  skipped.add(pick.sample);
  localStorage.setItem(skipKey, JSON.stringify([...skipped]));
  const next = nextTodo(cursor);
  if (next >= 0) cursor = next;
  render();
}

async function undo() {
  const data = await call("api/undo", {});
  if (data && data.ok && data.result) {
    const i = state.picks.findIndex((p) => p.sample === data.result.dst);
    if (i >= 0) cursor = i;
    render();
  }
}

function classButtons(box, onClick) {
  box.innerHTML = "";
  state.classes.forEach((c, i) => {
    const b = document.createElement("button");
    b.textContent = (i < 10 ? ((i + 1) % 10) + " " : "") + c;
    b.dataset.class = c;
    b.onclick = () => onClick(c);
    box.appendChild(b);
  });
}

function renderPick(started) {
  const picks = state.picks;
  const empty = $("pick-empty");
  const todo = picks.filter((p) => statusOf(p) === "todo").length;
  if (!picks.length || (cursor >= picks.length)) {
    $("pick").hidden = true;
    empty.hidden = false;
    empty.textContent = state.picks_state === "computing" ? "choosing the next picks ..." :
      (state.picks_note || "no picks: every image is labeled, or ask for more on the Train view.");
    return;
  }
  $("pick").hidden = false;
  empty.hidden = todo > 0;
  empty.textContent = todo ? "" : "every pick of this round is labeled: Train a round, or go on with the next picks.";
  const pick = picks[cursor];
  const status = statusOf(pick);
  const img = $("pick-image");
  const url = imageUrl(pick.sample);
  if (img.dataset.sample !== pick.sample) {
    img.dataset.sample = pick.sample;
    img.src = (preloaded[pick.sample] && preloaded[pick.sample].src) || url;
  }
  if (started !== undefined) {  // every key is measured, also one pressed before the previous image had loaded
    renderPick.pending.push(started);
    const done = () => {
      const now = performance.now();
      for (const t of renderPick.pending.splice(0)) window.fewlabelsLatency.push(now - t);
    };
    if (img.complete && img.naturalWidth) requestAnimationFrame(() => done());
    else img.onload = () => { img.onload = null; requestAnimationFrame(() => done()); };
  }
  $("pick-pos").textContent = `pick ${cursor + 1} of ${picks.length} (${todo} to label) · ${pick.sample}`;
  const st = $("pick-status");
  st.className = status;
  st.textContent = status === "labeled" ? "labeled: " + (optimistic[pick.sample] || pick.label) :
    status === "gone" ? "gone: the file moved since it was suggested" : skipped.has(pick.sample) ? "skipped" : "to label";
  $("pick-reason").textContent = `${pick.strategy}: ${pick.reason}`;
  $("pick-prediction").textContent = pick.predicted ?
    `prediction: ${pick.predicted} (confidence ${Number(pick.confidence).toFixed(2)})` : "no model yet";
  for (let i = cursor + 1; i < Math.min(picks.length, cursor + 4); i++) preload(i);
  const strip = $("strip");
  strip.innerHTML = "";
  picks.forEach((p, i) => {
    const s = document.createElement("span");
    s.className = statusOf(p) + (skipped.has(p.sample) && statusOf(p) === "todo" ? " skipped" : "") + (i === cursor ? " current" : "");
    s.title = p.sample;
    s.onclick = () => { cursor = i; render(); };
    strip.appendChild(s);
  });
}

renderPick.pending = [];  // label keys whose next image is not on screen yet

// ---- training and review

function suspects() {
  const reviewed = new Set(state.reviewed);
  return ((state.review && state.review.suspects) || []).filter((s) => !reviewed.has(s.sample));
}

function renderTrain() {
  const t = state.training;
  const s = state.settings;
  for (const [id, key] of [["set-iterations", "iterations"], ["set-batch", "batch_size"], ["set-algorithm", "algorithm"]]) {
    if (document.activeElement !== $(id) && !$(id).dataset.touched) $(id).value = s[key];
  }
  let text = "no round trained yet";
  if (t) {
    text = `${t.run}: ${t.state}`;
    if (t.step !== undefined) text += ` · step ${t.step} of ${t.total} · ${t.left} left`;
    if (t.accuracy !== undefined) text += ` · ${t.accuracy_name === "val_acc" ? "validation" : "test"} accuracy ${(100 * t.accuracy).toFixed(1)}%`;
    if (t.error) text += ` · ${t.error}`;
  }
  $("progress").textContent = text;
  $("stop-button").disabled = !(t && t.state === "training");
  $("resume-button").disabled = !(t && (t.state === "stopped" || t.state === "failed"));
  const r = state.review || {};
  const box = $("review");
  box.innerHTML = "";
  if (r.state === "computing") box.textContent = "checking the labels and choosing the next picks ...";
  if (r.state === "ready") {
    const pct = (v) => (v === null || v === undefined ? "" : (100 * v).toFixed(0) + "%");
    let html = "<h3>Per class</h3><table id=\"per-class\"><tr><th>class</th><th>accuracy on held-out labels</th>" +
      "<th>held out</th><th>labels</th><th>not doubted (check-labels)</th><th>suspects</th></tr>";
    for (const c of r.per_class) {
      html += `<tr><td>${esc(c.class)}</td><td>${c.accuracy == null ? "" : pct(c.accuracy) + ` (${c.correct} of ${c.held_out})`}</td>` +
        `<td>${c.held_out}</td><td>${c.labels}</td><td>${pct(c.undoubted)}</td><td>${c.flagged}</td></tr>`;
    }
    html += "</table>";
    if (r.held_out_note) html += `<p>${esc(r.held_out_note)}</p>`;
    if (r.note) html += `<p>${esc(r.note)}</p>`;
    const left = suspects();
    html += `<p id="suspects-left">${left.length} suspect label(s) to review; next picks: ${state.picks_state}.</p>`;
    box.innerHTML = html;
  }
  const left = suspects();
  if (suspectCursor >= left.length) suspectCursor = Math.max(0, left.length - 1);
  const sus = left[suspectCursor];
  $("suspect").hidden = !sus;
  if (sus) {
    const img = $("suspect-image");
    if (img.dataset.sample !== sus.sample) { img.dataset.sample = sus.sample; img.src = imageUrl(sus.sample); }
    $("suspect-text").textContent = `${sus.sample}: given ${sus.given}, the model suspects ${sus.suspected} ` +
      `(p(given) ${Number(sus.p_given).toFixed(2)})`;
    classButtons($("suspect-buttons"), (c) => relabel(c));
  }
}

function keep() {
  const sus = suspects()[suspectCursor];
  if (sus) call("api/keep", {sample: sus.sample});
}

function relabel(cls) {
  const sus = suspects()[suspectCursor];
  if (sus && sus.given !== cls) call("api/relabel", {sample: sus.sample, class: cls});
  else if (sus) keep();
}

function esc(text) {
  const d = document.createElement("div");
  d.textContent = String(text);
  return d.innerHTML;
}

function renderOverview() {
  let html = "<tr><th>class</th><th>labels</th></tr>";
  for (const [c, n] of Object.entries(state.counts.per_class)) html += `<tr><td>${esc(c)}</td><td>${n}</td></tr>`;
  html += `<tr><td><em>unlabeled left</em></td><td id="unlabeled-left">${state.counts.unlabeled}</td></tr>`;
  $("counts").innerHTML = html;
  html = "<tr><th>round</th><th>labels</th><th>steps</th><th>accuracy</th></tr>";
  for (const r of state.rounds) {
    html += `<tr><td>${esc(r.run)}</td><td>${r.labels ?? ""}</td><td>${r.iterations ?? ""}</td>` +
      `<td>${r.accuracy == null ? (r.finished ? "too few labels held out" : "not finished") : (100 * r.accuracy).toFixed(1) + "%"}</td></tr>`;
  }
  $("rounds").innerHTML = html;
}

// ---- the views

function view() { return (location.hash || "#label").slice(1); }

function render() {
  if (!state) return;
  $("dataset").textContent = state.dataset;
  $("model").textContent = state.model ? "model: " + state.model : "no model yet (cold start)";
  for (const v of ["label", "train", "overview", "done"]) $("view-" + v).hidden = v !== view();
  document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("active", a.dataset.view === view()));
  classButtons($("class-buttons"), (c) => label(c));
  const signature = state.picks.map((p) => p.sample).join("|");
  if (signature !== render.signature) {  // a new list of picks (the first, or after a round): start at its first to label
    render.signature = signature;
    const next = nextTodo(-1);
    cursor = next >= 0 ? next : 0;
  }
  renderPick();
  renderTrain();
  renderOverview();
}

document.addEventListener("keydown", (e) => {
  if (!state || e.target.tagName === "INPUT" || e.ctrlKey || e.metaKey || e.altKey) return;
  const digit = "1234567890".indexOf(e.key);
  if (view() === "label") {
    if (digit >= 0 && digit < state.classes.length) label(state.classes[digit]);
    else if (e.key === "s") skip();
    else if (e.key === "u") undo();
    else if (e.key === "ArrowRight") { cursor = Math.min(state.picks.length - 1, cursor + 1); render(); }
    else if (e.key === "ArrowLeft") { cursor = Math.max(0, cursor - 1); render(); }
    else return;
  } else if (view() === "train") {
    if (digit >= 0 && digit < state.classes.length) relabel(state.classes[digit]);
    else if (e.key === "k") keep();
    else if (e.key === "ArrowRight") { suspectCursor += 1; render(); }
    else if (e.key === "ArrowLeft") { suspectCursor = Math.max(0, suspectCursor - 1); render(); }
    else return;
  } else return;
  e.preventDefault();
});

$("add-class").onsubmit = (e) => {
  e.preventDefault();
  call("api/class", {name: $("new-class").value}).then((d) => { if (d && d.ok) $("new-class").value = ""; });
};
for (const id of ["set-iterations", "set-batch", "set-algorithm"]) $(id).oninput = () => { $(id).dataset.touched = "1"; };
$("train-form").onsubmit = (e) => {
  e.preventDefault();
  call("api/train", {iterations: Number($("set-iterations").value), batch_size: Number($("set-batch").value),
                     algorithm: $("set-algorithm").value});
};
$("stop-button").onclick = () => call("api/stop", {});
$("resume-button").onclick = () => call("api/resume", {});
$("export-button").onclick = async () => {
  $("export-result").textContent = "exporting ...";
  const d = await call("api/export", {});
  $("export-result").textContent = d && d.ok ?
    `model: ${d.result.model} · predictions for ${d.result.rows} images: ${d.result.predictions}` : "";
};
window.addEventListener("hashchange", render);

async function poll() {
  await call("api/state");
  const busy = state && (state.picks_state === "computing" || (state.training && ["training", "stopping"].includes(state.training.state)) ||
    (state.review && state.review.state === "computing"));
  setTimeout(poll, busy ? 700 : 4000);
}
poll();
