// wharf dashboard: the little the server-rendered pages need from a script.
// 1. Live regions: an element with data-live="/x/events" and data-event="name" is replaced by each
//    server-sent event of that name (the server re-renders it from its watch of the cluster).
// 2. The try-it panel: preview the chosen Fashion-MNIST test image, send it, draw the answer.
"use strict";

function live(el) {
  const source = new EventSource(el.dataset.live);
  source.addEventListener(el.dataset.event, (e) => {
    // Keep open what the user opened (a job's table of epochs) across the update.
    const open = [...el.querySelectorAll("details[open]")].map((d) => d.closest("[id]")?.id);
    // …and keep a keyboard user's place: the control that had focus gets it back after the update.
    const had = el.contains(document.activeElement) ? document.activeElement : null;
    const key = had && (had.id || had.getAttribute("aria-label") || had.getAttribute("href"));
    el.innerHTML = e.data;
    if (key) {
      [...el.querySelectorAll("[id], [aria-label], [href]")]
        .find((c) => c.id === key || c.getAttribute("aria-label") === key || c.getAttribute("href") === key)
        ?.focus();
    }
    for (const id of open) {
      const d = id && document.getElementById(id)?.querySelector("details");
      if (d) d.open = true;
    }
    el.dataset.updates = String(Number(el.dataset.updates || 0) + 1);
  });
}

let samples = null;
async function loadSamples() {
  if (!samples) {
    const r = await fetch("/assets/samples.u8");
    samples = new Uint8Array(await r.arrayBuffer());
  }
  return samples;
}

async function preview(canvas, index) {
  const pixels = await loadSamples();
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(28, 28);
  for (let i = 0; i < 784; i++) {
    const v = pixels[index * 784 + i];
    img.data.set([v, v, v, 255], i * 4);
  }
  const small = document.createElement("canvas");
  small.width = small.height = 28;
  small.getContext("2d").putImageData(img, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(small, 0, 0, canvas.width, canvas.height);
}

function text(tag, content, className) {
  const e = document.createElement(tag);
  e.textContent = content;
  if (className) e.className = className;
  return e;
}

function showAnswer(out, answer) {
  out.replaceChildren();
  const best = answer.probabilities.indexOf(Math.max(...answer.probabilities));
  out.append(text("p", `The model says ${answer.classes[best]} (the image is a ${answer.label}).`, "verdict"));
  const list = document.createElement("ul");
  list.id = "try-bars";
  list.setAttribute("aria-label", "probability of each class");
  answer.probabilities.forEach((p, i) => {
    const li = document.createElement("li");
    li.dataset.class = answer.classes[i];
    li.dataset.p = String(p);
    const bar = text("span", "", "bar");
    bar.style.width = `${(p * 100).toFixed(1)}%`;
    li.append(text("span", answer.classes[i], "name"), text("span", "", "track"), text("span", p.toFixed(4), "value"));
    li.children[1].append(bar);
    list.append(li);
  });
  out.append(list);
}

function tryIt(form) {
  const service = form.querySelector("#try-service");
  const image = form.querySelector("#try-image");
  const canvas = form.querySelector("#try-preview");
  const out = form.querySelector("#try-result");
  const show = () => {
    canvas.setAttribute("aria-label", `test image of a ${image.selectedOptions[0].text.replace(/^test image of a /, "")}`);
    preview(canvas, Number(image.value));
  };
  image.addEventListener("change", show);
  show();
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    out.replaceChildren(text("p", "Asking the model…"));
    try {
      const r = await fetch(`/models/${encodeURIComponent(service.value)}/try`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ image: Number(image.value) }),
      });
      const answer = await r.json();
      if (!r.ok) throw new Error(answer.error || r.statusText);
      showAnswer(out, answer);
    } catch (err) {
      const p = text("p", `The model did not answer: ${err.message}`, "error");
      p.setAttribute("role", "alert");
      out.replaceChildren(p);
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-live]").forEach(live);
  const form = document.getElementById("try-it");
  if (form) tryIt(form);
});

// 3. Log tails (Training): an element with data-log="/training/<job>/log?part=1" is filled with
//    the job's pod log tail when the page loads and again each time a live update re-renders the
//    region around it — a log is re-read when the job's status changed, never on a timer.
function logTails(root) {
  root.querySelectorAll("[data-log]").forEach(async (el) => {
    try {
      const r = await fetch(el.dataset.log);
      el.innerHTML = await r.text();
    } catch (err) {
      const p = text("p", `The log could not be read: ${err.message}`, "error");
      p.setAttribute("role", "alert");
      el.replaceChildren(p);
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  logTails(document);
  // A live update replaces the region's children; the log placeholders come back with them.
  document.querySelectorAll("[data-live]").forEach((el) => {
    new MutationObserver(() => logTails(el)).observe(el, { childList: true });
  });
});
