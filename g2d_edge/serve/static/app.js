// The g2d serve page: live view and events per source, the people list, enrolment, rename and remove.
// No build step, no framework. Text from the server is only ever set as textContent (never parsed as HTML).
"use strict";

const $ = (id) => document.getElementById(id);
const KEY_STORE = "g2d-serve-key";
let captured = [];  // photos taken with the camera, as Blobs
let cameraStream = null;
// Each use of a key starts a new epoch; what an older epoch's requests report is dropped, so the page's first load
// (made without a key) cannot overwrite "The key was refused" when its answers arrive late.
let epoch = 0;

function key() { return sessionStorage.getItem(KEY_STORE) || ""; }

function say(text, ok, from = epoch) {
  if (from !== epoch) return;
  const box = $("message");
  box.textContent = text;
  box.className = ok ? "ok" : "";
  box.hidden = !text;
}

async function api(method, path, body, json) {
  const headers = {};
  if (key()) headers["X-API-Key"] = key();
  if (json) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { method, headers, body, credentials: "same-origin" });
  const data = (response.headers.get("content-type") || "").includes("json") ? await response.json() : null;
  if (!response.ok) {
    const why = data && data.error ? data.error : response.statusText;
    throw new Error(`${response.status}: ${why}`);
  }
  return data;
}

async function useKey(event) {
  event.preventDefault();
  sessionStorage.setItem(KEY_STORE, $("key").value.trim());
  const mine = ++epoch;
  try {
    await api("POST", "/session");
    $("key-state").textContent = "key accepted";
    say("", false, mine);
    await refresh(mine);
    startSources(mine);
  } catch (err) {
    $("key-state").textContent = "";
    say(`The key was refused (${err.message})`, false, mine);
  }
}

async function refreshHealth() {
  try {
    const h = await api("GET", "/health");
    $("health").textContent = `${h.model} · ${h.identities} people · threshold ${h.threshold.toFixed(3)}`;
  } catch (err) {
    $("health").textContent = `not reachable (${err.message})`;
  }
}

function thumbnails(cell, person) {
  for (let i = 0; i < person.thumbnails; i++) {
    const img = document.createElement("img");
    img.src = `/people/${encodeURIComponent(person.name)}/thumbnails/${i}`;
    img.alt = `photo ${i + 1} of ${person.name}`;
    cell.appendChild(img);
  }
  if (!person.thumbnails) cell.textContent = "–";
}

function personRow(person) {
  const row = document.createElement("tr");
  row.dataset.name = person.name;
  const cells = [0, 1, 2, 3, 4].map(() => row.insertCell());
  thumbnails(cells[0], person);
  cells[1].textContent = person.name;
  cells[1].className = "person-name";
  cells[2].textContent = person.templates;
  cells[3].textContent = person.masked;
  const input = document.createElement("input");
  input.className = "rename-input";
  input.placeholder = "new name";
  input.setAttribute("aria-label", `new name for ${person.name}`);
  const rename = document.createElement("button");
  rename.className = "rename-button";
  rename.textContent = "Rename";
  rename.addEventListener("click", () => renamePerson(person.name, input.value));
  const remove = document.createElement("button");
  remove.className = "remove-button";
  remove.textContent = "Remove";
  remove.addEventListener("click", () => removePerson(person.name));
  cells[4].append(input, rename, remove);
  return row;
}

async function refreshPeople(from = epoch) {
  try {
    const data = await api("GET", "/people");
    const body = $("people");
    body.replaceChildren(...data.identities.map(personRow));
    $("people-count").textContent = `(${data.identities.length})`;
  } catch (err) {
    say(`Cannot list people (${err.message})`, false, from);
  }
}

async function renamePerson(name, to) {
  try {
    await api("PATCH", `/people/${encodeURIComponent(name)}`, JSON.stringify({ name: to }), true);
    say(`Renamed ${name} to ${to.trim()}`, true);
  } catch (err) { say(`Rename failed: ${err.message}`); }
  await refresh();
}

async function removePerson(name) {
  try {
    await api("DELETE", `/people/${encodeURIComponent(name)}`);
    say(`Removed ${name}`, true);
  } catch (err) { say(`Remove failed: ${err.message}`); }
  await refresh();
}

async function enrol(event) {
  event.preventDefault();
  const name = $("enrol-name").value;
  const form = new FormData();
  for (const file of $("enrol-files").files) form.append("photos", file, file.name);
  captured.forEach((blob, i) => form.append("photos", blob, `camera-${i + 1}.jpg`));
  form.append("masked", $("enrol-masked").checked ? "true" : "false");
  if (!form.getAll("photos").length) { say("Choose photos or take some with the camera first"); return; }
  $("enrol-button").disabled = true;
  try {
    const r = await api("POST", `/people/${encodeURIComponent(name)}/photos`, form);
    const skipped = r.skipped.length ? `; skipped ${r.skipped.map((s) => s.image).join(", ")}` : "";
    say(`Enrolled ${r.name}: ${r.added} template(s) added, ${r.templates} in total${skipped}`, true);
    $("enrol-form").reset();
    captured = [];
    $("camera-count").textContent = "";
  } catch (err) {
    say(`Enrolment failed: ${err.message}`);
  } finally {
    $("enrol-button").disabled = false;
  }
  await refresh();
}

async function startCamera() {
  try {
    cameraStream = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
    $("camera").srcObject = cameraStream;
    $("camera").hidden = false;
    $("camera-take").hidden = false;
  } catch (err) { say(`No camera: ${err.message}`); }
}

function takePhoto() {
  const video = $("camera");
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  canvas.getContext("2d").drawImage(video, 0, 0);
  canvas.toBlob((blob) => {
    if (!blob) return;
    captured.push(blob);
    $("camera-count").textContent = `${captured.length} photo(s) taken`;
  }, "image/jpeg", 0.92);
}

const watched = new Map();  // source id -> {article, events}

function logEvent(article, event) {
  const item = document.createElement("li");
  const when = new Date(event.time * 1000).toLocaleTimeString();
  const who = document.createElement("span");
  who.textContent = event.name === null ? "unknown" : event.name;
  who.className = event.name === null ? "unknown" : "known";
  const score = event.score === null ? "" : ` ${event.score.toFixed(2)}`;
  const masked = event.masked ? " [mask]" : "";
  item.append(`${when} `, who, `${score}${masked} · track ${event.track_id === null ? "–" : event.track_id}`);
  const log = article.querySelector(".log");
  log.prepend(item);
  while (log.children.length > 50) log.lastChild.remove();
}

async function startSources(from = epoch) {
  let sources;
  try {
    sources = await api("GET", "/sources");
  } catch (err) { say(`Cannot list sources (${err.message})`, false, from); return; }
  $("no-sources").hidden = sources.length > 0;
  for (const source of sources) {
    let entry = watched.get(source.id);
    if (!entry) {
      const article = $("source-template").content.firstElementChild.cloneNode(true);
      article.dataset.source = source.id;
      article.querySelector(".source-name").textContent = `#${source.id} ${source.source}`;
      $("sources").appendChild(article);
      entry = { article, events: null };
      watched.set(source.id, entry);
    }
    entry.article.querySelector(".stream").src = `${source.mjpeg}?t=${Date.now()}`;
    if (entry.events) entry.events.close();
    entry.events = new EventSource(source.events);
    entry.events.addEventListener("recognition", (e) => logEvent(entry.article, JSON.parse(e.data)));
  }
}

async function refreshInView() {
  let sources;
  try { sources = await api("GET", "/sources"); } catch (err) { return; }
  for (const source of sources) {
    const entry = watched.get(source.id);
    if (!entry) continue;
    const names = source.faces.map((f) => (f.name === null ? "unknown" : f.name));
    const span = entry.article.querySelector(".in-view");
    span.textContent = names.length ? names.join(", ") : "nobody";
    span.className = names.some((n) => n !== "unknown") ? "in-view known" : "in-view muted";
    if (source.error) span.textContent += ` (source: ${source.error})`;
  }
}

async function refresh(from = epoch) { await Promise.all([refreshHealth(), refreshPeople(from)]); }

document.addEventListener("DOMContentLoaded", async () => {
  $("key").value = key();
  $("key-form").addEventListener("submit", useKey);
  $("enrol-form").addEventListener("submit", enrol);
  $("camera-start").addEventListener("click", startCamera);
  $("camera-take").addEventListener("click", takePhoto);
  const mine = epoch;
  if (key()) {
    try {
      await api("POST", "/session");
      if (mine === epoch) $("key-state").textContent = "key accepted";
    } catch (e) { /* asked again */ }
  }
  await refresh(mine);
  await startSources(mine);
  setInterval(refreshInView, 1000);
  setInterval(refreshHealth, 10000);
});
