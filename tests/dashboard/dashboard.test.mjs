// The dashboard in a real browser: playwright-core driving Debian's chromium (headless, no browser
// download). Run by tests/status.rs (`dashboard_in_a_browser`), which starts kube-sim with the
// fixture bundle deployed, a real wharf-server behind an InferenceService and
// `wharf dashboard --serve`, and passes them here in the environment:
//   DASHBOARD_URL  http://127.0.0.1:PORT   the dashboard
//   KUBE_URL, KUBE_TOKEN, NAMESPACE        kube-sim, to read back and to write TrainJob status
//   STATUS_JSON    a file holding `wharf status --output json`
//   SERVER_URL     the wharf-server the InferenceService `fashion` points at
//   SAMPLES        src/dashboard/assets/samples.u8 (the try-it test images)
//   SCREENSHOTS    where the page screenshots go (under target/, or WHARF_DASHBOARD_SCREENSHOTS)
//   CHROMIUM       the browser binary
//   PROFILE_NAMESPACE  a namespace for the profile pages (Notebooks, Tuning, Pipelines); their
//                      CRDs are installed, the objects are made here (NAMESPACE_PAGES)
// Prints one `METRICS {json}` line (first render and page weight per page). Exits non-zero on the
// first failed check, saying what was expected and what was seen.
import { readFileSync } from "node:fs";
import { strict as assert } from "node:assert";
import { chromium } from "playwright-core";

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (tests/status.rs sets it)`);
  return v;
};
const DASHBOARD = env("DASHBOARD_URL").replace(/\/$/, "");
const KUBE = env("KUBE_URL").replace(/\/$/, "");
const TOKEN = env("KUBE_TOKEN");
const NS = env("NAMESPACE");
const SHOTS = env("SCREENSHOTS");
// Every wait is bounded: a hang is a failure that says what it waited for.
const WAIT = 10_000;

async function kube(method, path, body, contentType = "application/json") {
  const r = await fetch(`${KUBE}${path}`, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, "content-type": contentType },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await r.json();
  assert.ok(r.ok, `${method} ${path}: ${r.status} ${JSON.stringify(json)}`);
  return json;
}

const browser = await chromium.launch({
  executablePath: env("CHROMIUM"),
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
  timeout: 30_000,
});
const metrics = {};
const foreign = [];

/// A fresh context (empty cache) per page, so the weight measured is a first visit's.
async function open(path) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT);
  page.on("request", (r) => { if (!r.url().startsWith(DASHBOARD)) foreign.push(r.url()); });
  page.on("pageerror", (e) => { throw new Error(`script error on ${path}: ${e.message}`); });
  await page.goto(`${DASHBOARD}${path}`, { waitUntil: "load" });
  return page;
}

/// First render (first contentful paint) and page weight (bytes over the wire: the document and
/// everything it loaded, the event stream excepted) of the page as loaded.
async function measure(page, name) {
  await page.waitForFunction(() => performance.getEntriesByType("paint").length > 0);
  metrics[name] = await page.evaluate(() => {
    const nav = performance.getEntriesByType("navigation")[0];
    const paint = performance.getEntriesByName("first-contentful-paint")[0];
    const resources = performance.getEntriesByType("resource").filter((r) => !r.name.includes("/events"));
    return {
      first_contentful_paint_ms: Math.round(paint?.startTime ?? -1),
      dom_content_loaded_ms: Math.round(nav.domContentLoadedEventEnd),
      bytes_transferred: nav.transferSize + resources.reduce((n, r) => n + r.transferSize, 0),
      bytes_decoded: nav.decodedBodySize + resources.reduce((n, r) => n + r.decodedBodySize, 0),
      requests: 1 + resources.length,
    };
  });
}

/// Tab from the top of the page until focus comes back round: every link, field and button must
/// have been reached, each with an accessible name.
async function tabReachesEveryControl(page, name) {
  const controls = await page.evaluate(() =>
    [...document.querySelectorAll("a[href], button, input, select, textarea")]
      .filter((e) => e.offsetParent !== null || e.classList.contains("skip"))
      .map((e) => e.id || e.getAttribute("href") || e.textContent.trim()));
  await page.evaluate(() => document.activeElement?.blur());
  const reached = new Set();
  for (let i = 0; i < controls.length + 5; i++) {
    await page.keyboard.press("Tab");
    const seen = await page.evaluate(() => {
      const e = document.activeElement;
      if (!e || e === document.body) return null;
      const label = e.labels?.[0]?.textContent || e.getAttribute("aria-label") || e.textContent;
      return { key: e.id || e.getAttribute("href") || e.textContent.trim(), label: (label || "").trim() };
    });
    if (seen) {
      assert.ok(seen.label, `${name}: the control ${seen.key} has no accessible name`);
      reached.add(seen.key);
    }
  }
  const missed = controls.filter((c) => !reached.has(c));
  assert.deepEqual(missed, [], `${name}: Tab never reached ${missed.join(", ")}`);
  return controls.length;
}

// --- Overview: the same rows and words as `wharf status --output json` -------------------------
{
  const status = JSON.parse(readFileSync(env("STATUS_JSON"), "utf8"));
  assert.ok(status.applications.length > 0, "the fixture deploy left no applications");
  const page = await open("/");
  await measure(page, "overview");
  const rows = (id) => page.$$eval(`#${id} tbody tr`, (trs) =>
    trs.map((tr) => [...tr.children].map((td) => td.textContent)));
  assert.deepEqual(await rows("status-header"),
    [[status.model, status.cluster, status.kubernetes, status.wharf]], "overview header");
  assert.deepEqual(await rows("applications"), status.applications.map((a) => [
    a.app, a.version, a.status, String(a.scale), a.charm, a.rev == null ? "" : String(a.rev),
    a.address, a.message]), "overview applications");
  assert.deepEqual(await rows("units"), status.units.map((u) => [u.unit, u.workload, u.address, u.message]),
    "overview units");
  // The page's JSON twin is the very same document.
  assert.deepEqual(await (await fetch(`${DASHBOARD}/api/status`)).json(), status, "/api/status");
  const controls = await tabReachesEveryControl(page, "overview");
  await page.screenshot({ path: `${SHOTS}/overview.png`, fullPage: true });
  console.log(`ok overview: ${status.applications.length} applications, ${status.units.length} units as wharf status says; Tab reaches all ${controls} controls`);
  await page.context().close();
}

// --- Training: the form creates a TrainJob; its chart grows as its status reports epochs --------
{
  const page = await open("/training");
  await measure(page, "training");
  const controls = await tabReachesEveryControl(page, "training");
  // Keyboard only: type into the labelled fields, submit with Enter.
  await page.getByLabel("Name", { exact: true }).focus();
  await page.keyboard.type("dash-fashion");
  await page.getByLabel("Epochs", { exact: true }).fill("");
  await page.getByLabel("Epochs", { exact: true }).focus();
  await page.keyboard.type("3");
  await page.getByLabel("Learning rate", { exact: true }).focus();
  await page.keyboard.type("0.001");
  await page.getByLabel("Model", { exact: true }).focus();
  await page.keyboard.press("ArrowDown"); // mlp -> cnn
  await page.getByLabel("Name", { exact: true }).focus();
  await Promise.all([page.waitForURL(/created=dash-fashion/), page.keyboard.press("Enter")]);
  await page.waitForSelector("#created");

  const tj = await kube("GET", `/apis/wharf.dev/v1alpha1/namespaces/${NS}/trainjobs/dash-fashion`);
  assert.deepEqual(
    { model: tj.spec.model, epochs: tj.spec.epochs, lr: tj.spec.learningRate, out: tj.spec.output.uri, data: tj.spec.dataset.uri },
    { model: "cnn", epochs: 3, lr: 0.001, out: "pvc://models/dash-fashion", data: "file:///usr/share/datasets/fashion-mnist" },
    "the TrainJob the form created");

  // A bad name is refused with a message naming the field, and nothing is created.
  {
    const bad = await fetch(`${DASHBOARD}/training`, {
      method: "POST", headers: { origin: DASHBOARD, "content-type": "application/x-www-form-urlencoded" },
      body: "name=Bad_Name&model=mlp&epochs=1&batch_size=&learning_rate=&dataset=file%3A%2F%2F%2Fd&output=",
    });
    assert.equal(bad.status, 422);
    assert.match(await bad.text(), /Name: `Bad_Name` is not a valid Kubernetes name/);
    // …and a post from another site is refused outright.
    const forged = await fetch(`${DASHBOARD}/training`, {
      method: "POST", headers: { origin: "http://evil.example", "content-type": "application/x-www-form-urlencoded" },
      body: "name=forged&model=mlp&epochs=1&batch_size=&learning_rate=&dataset=file%3A%2F%2F%2Fd&output=",
    });
    assert.equal(forged.status, 403, "a cross-site form post must be refused");
    const list = await kube("GET", `/apis/wharf.dev/v1alpha1/namespaces/${NS}/trainjobs`);
    assert.deepEqual(list.items.map((i) => i.metadata.name), ["dash-fashion"]);
  }

  // The page stays open: every change below must arrive through the event stream.
  await page.evaluate(() => { window.notReloaded = true; });
  const circles = (kind) => page.locator(`#job-dash-fashion svg.${kind} circle`).count();
  await page.waitForSelector("#job-dash-fashion");
  assert.equal(await circles("loss"), 0);
  const epochs = [
    { epoch: 1, loss: 0.92, accuracy: 0.71, trainAccuracy: 0.66 },
    { epoch: 2, loss: 0.55, accuracy: 0.8, trainAccuracy: 0.79 },
    { epoch: 3, loss: 0.41, accuracy: 0.85, trainAccuracy: 0.84 },
  ];
  const start = new Date(Date.now() - 95_000).toISOString().replace(/\.\d+Z$/, "Z");
  for (let n = 1; n <= 3; n++) {
    await kube("PATCH", `/apis/wharf.dev/v1alpha1/namespaces/${NS}/trainjobs/dash-fashion/status`,
      { status: { state: "Running", startTime: start, epochs: epochs.slice(0, n) } },
      "application/merge-patch+json");
    await page.waitForFunction((n) =>
      document.querySelectorAll("#job-dash-fashion svg.loss circle").length === n, n, { timeout: WAIT });
    assert.equal(await circles("accuracy"), n, `accuracy points after ${n} epochs`);
  }
  assert.ok(await page.evaluate(() => window.notReloaded), "the page was reloaded instead of updated live");
  const row = await page.$$eval("#trainjobs tr[data-job='dash-fashion'] td", (tds) => tds.map((t) => t.textContent));
  assert.deepEqual([row[0], row[1], row[3], row[4]], ["Running", "cnn", "0.85", "3 of 3"], "the job's row");
  assert.match(row[2], /^1m 3\ds$/, `duration ${row[2]}`);
  // The text alternative holds the same numbers as the chart.
  await page.locator("#job-dash-fashion summary").click();
  const table = await page.$$eval("#job-dash-fashion table.epochs tbody tr", (trs) =>
    trs.map((tr) => [...tr.children].map((c) => c.textContent)));
  assert.deepEqual(table, epochs.map((e) => [String(e.epoch), String(e.loss), String(e.accuracy), String(e.trainAccuracy)]));
  const label = await page.getAttribute("#job-dash-fashion svg.loss", "aria-label");
  assert.match(label, /3 epochs; last loss 0.41, accuracy 0.85/);
  await page.screenshot({ path: `${SHOTS}/training.png`, fullPage: true });
  console.log(`ok training: form created TrainJob dash-fashion (read back), chart grew 0 -> 1 -> 2 -> 3 points live; Tab reaches all ${controls} controls`);
  await page.context().close();
}

// --- Models: try-it shows what the real wharf-server returns for a known test image -------------
{
  const IMAGE = 2; // the first pullover of Fashion-MNIST's test set
  const pixels = [...readFileSync(env("SAMPLES")).subarray(IMAGE * 784, (IMAGE + 1) * 784)];
  const direct = await (await fetch(`${env("SERVER_URL").replace(/\/$/, "")}/v2/models/fashion/infer`, {
    method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ inputs: [{ name: "input", datatype: "UINT8", shape: [1, 784], data: pixels }] }),
  })).json();
  const expected = direct.outputs.find((o) => o.name === "probabilities").data;
  assert.equal(expected.length, 10);

  const page = await open("/models");
  await measure(page, "models");
  const row = await page.$$eval("#inferenceservices tr[data-service='fashion'] > *", (c) => c.map((t) => t.textContent));
  assert.deepEqual([row[0], row[1], row[3], row[4]], ["fashion", "fashion", "ready", "1 to 2"], "the service's row");
  assert.equal(row[2], env("SERVER_URL"));
  const controls = await tabReachesEveryControl(page, "models");
  // Keyboard only: pick the third image with the arrow keys, send with Enter on the button.
  await page.getByLabel("Fashion-MNIST test image", { exact: true }).focus();
  await page.keyboard.press("ArrowDown");
  await page.keyboard.press("ArrowDown");
  assert.equal(await page.inputValue("#try-image"), String(IMAGE));
  await page.getByRole("button", { name: "Send to the model" }).focus();
  await page.keyboard.press("Enter");
  await page.waitForSelector("#try-bars li:nth-child(10)");
  const shown = await page.$$eval("#try-bars li", (lis) => lis.map((li) =>
    ({ p: Number(li.dataset.p), text: li.querySelector(".value").textContent, name: li.querySelector(".name").textContent })));
  shown.forEach((s, i) => {
    assert.ok(Math.abs(s.p - expected[i]) < 1e-6, `class ${i}: the page shows ${s.p}, wharf-server said ${expected[i]}`);
    assert.equal(s.text, expected[i].toFixed(4));
  });
  assert.equal(shown[IMAGE].name, "pullover");
  assert.match(await page.textContent("#try-result .verdict"), /\(the image is a pullover\)/);
  await page.screenshot({ path: `${SHOTS}/models.png`, fullPage: true });
  console.log(`ok models: try-it shows wharf-server's ten probabilities for test image ${IMAGE}; Tab reaches all ${controls} controls`);
  await page.context().close();
}

// --- The profile pages: one entry per page, all checked the same way ---------------------------
// Each entry: the page's path; where its kind lives in the API; the objects the cluster holds when
// the page opens (each with the status its controller would write); the one made while the page
// is open, which must appear without a reload (server-sent events); the table and column whose
// cells name the rows; and `act`, what else the page is for (the Notebooks form). A new page (the
// Profiles page) is one more entry.
const PROFILE_NS = env("PROFILE_NAMESPACE");
const minutesAgo = (m) => new Date(Date.now() - m * 60_000).toISOString().replace(/\.\d+Z$/, "Z");
const notebook = (name, image, ready) => ({
  body: { apiVersion: "kubeflow.org/v1", kind: "Notebook", metadata: { name },
    spec: { template: { spec: { serviceAccountName: "default-editor",
      containers: [{ name, image }] } } } },
  status: ready === undefined ? undefined : { readyReplicas: ready ? 1 : 0, conditions: [ready
    ? { type: "Ready", status: "True", reason: "Running", message: "the Jupyter server answers", lastTransitionTime: minutesAgo(25) }
    : { type: "Ready", status: "False", reason: "ContainerCreating", message: "pulling the image", lastTransitionTime: minutesAgo(1) }] },
});
const tuningJob = (name, trials, done) => ({
  body: { apiVersion: "wharf.dev/v1alpha1", kind: "OptimizationJob", metadata: { name },
    spec: { objectives: [{ metric: "accuracy", direction: "maximize" }],
      searchAlgorithm: { name: "tpe", seed: 42 },
      parameters: [{ name: "learningRate", distribution: "logUniform", min: 0.0001, max: 0.01 },
        { name: "batchSize", distribution: "categorical", values: [32, 64, 128] }],
      numTrials: trials.length + (done ? 0 : 2), parallelTrials: 1,
      trainJobTemplate: { model: "mlp", epochs: 3, dataset: { uri: "file:///usr/share/datasets/fashion-mnist" },
        output: { uri: `s3://wharf/models/${PROFILE_NS}/${name}` } } } },
  status: trials.length === 0 ? undefined : (() => {
    const best = trials.reduce((b, t, i) => (t[2] > trials[b][2] ? i : b), 0);
    const trialName = (i) => `${name}-trial-${i}`;
    return { state: done ? "Succeeded" : "Running", progress: `${trials.length}/${trials.length + (done ? 0 : 2)}`,
      trials: trials.map(([lr, bs, value], i) => ({ name: trialName(i), index: i, state: "Succeeded",
        parameters: { learningRate: lr, batchSize: bs }, value })),
      result: { trialName: trialName(best), trainJob: trialName(best),
        parameters: { learningRate: trials[best][0], batchSize: trials[best][1] }, value: trials[best][2] } };
  })(),
});
const workflow = (name, phase, steps, startedMin, finishedMin) => ({
  body: { apiVersion: "argoproj.io/v1alpha1", kind: "Workflow", metadata: { name },
    spec: { entrypoint: "main", templates: [{ name: "main", container: { image: "busybox" } }] },
    status: { phase, startedAt: minutesAgo(startedMin),
      ...(finishedMin === undefined ? {} : { finishedAt: minutesAgo(finishedMin) }),
      nodes: Object.fromEntries(steps.map(([step, p], i) => [`${name}-${i}`, { type: "Pod", displayName: step, phase: p }])) } },
});
const NAMESPACE_PAGES = [
  {
    name: "notebooks", path: "/notebooks", api: "/apis/kubeflow.org/v1", plural: "notebooks", statusSubresource: true,
    rows: "#notebooks tbody tr", nameCell: 0,
    held: [notebook("alice-scipy", "scipy", true), notebook("experiments", "minimal", false)],
    made: notebook("reading-group", "scipy", false),
    // Keyboard only: name a notebook, pick the minimal image with the arrow key, Enter submits.
    act: async (page) => {
      await page.getByLabel("Name", { exact: true }).focus();
      await page.keyboard.type("from-the-form");
      await page.getByLabel("Image", { exact: true }).focus();
      await page.keyboard.press("ArrowDown"); // scipy -> minimal
      await page.getByLabel("Name", { exact: true }).focus();
      await Promise.all([page.waitForURL(/\/notebooks\?namespace=/), page.keyboard.press("Enter")]);
      await page.waitForSelector("tr[data-notebook='from-the-form']");
      const nb = await kube("GET", `/apis/kubeflow.org/v1/namespaces/${PROFILE_NS}/notebooks/from-the-form`);
      const pod = nb.spec.template.spec;
      assert.equal(pod.serviceAccountName, "default-editor", "the form's notebook runs as default-editor");
      assert.equal(pod.containers[0].image, "minimal", "the form's notebook has the image chosen");
      // The created notebook is part of the cluster's rows from now on.
      return "the form started notebook from-the-form (read back)";
    },
  },
  {
    name: "tuning", path: "/tuning", api: "/apis/wharf.dev/v1alpha1", plural: "optimizationjobs", statusSubresource: true,
    rows: "#optimizationjobs tbody tr", nameCell: 1,
    held: [tuningJob("fashion-lr-search", [[0.0012, 64, 0.8412], [0.0051, 128, 0.8577], [0.0003, 32, 0.8125]], false),
      tuningJob("fashion-baseline", [[0.001, 64, 0.8391], [0.002, 64, 0.8488]], true)],
    made: tuningJob("fashion-cnn-search", [], false),
    // Keyboard only: name the search, pick random with the arrow key, Enter submits.
    act: async (page) => {
      await page.getByLabel("Name", { exact: true }).focus();
      await page.keyboard.type("from-the-form");
      await page.getByLabel("Algorithm", { exact: true }).focus();
      await page.keyboard.press("ArrowDown"); // tpe -> random
      await page.getByLabel("Name", { exact: true }).focus();
      await Promise.all([page.waitForURL(/\/tuning\?namespace=/), page.keyboard.press("Enter")]);
      await page.waitForSelector("#job-from-the-form");
      const oj = await kube("GET", `/apis/wharf.dev/v1alpha1/namespaces/${PROFILE_NS}/optimizationjobs/from-the-form`);
      assert.equal(oj.spec.searchAlgorithm.name, "random", "the form's search uses the algorithm chosen");
      assert.deepEqual(oj.spec.parameters[1].values, [32, 64, 128], "the form's default batch sizes");
      return "the form started OptimizationJob from-the-form (read back)";
    },
  },
  {
    name: "pipelines", path: "/runs", api: "/apis/argoproj.io/v1alpha1", plural: "workflows", statusSubresource: false,
    rows: "#workflows tbody tr", nameCell: 0,
    held: [workflow("train-predict-x7k2p", "Succeeded", [["train", "Succeeded"], ["predict", "Succeeded"]], 42, 37),
      workflow("train-predict-q9m4d", "Running", [["train", "Succeeded"], ["predict", "Running"]], 6)],
    made: workflow("train-predict-w2n8c", "Running", [["train", "Running"], ["predict", "Pending"]], 0),
  },
];

/// Make one object of an entry in the profile namespace, then write its status as a controller
/// would (through the status subresource where the CRD has one). The CRDs were put into the
/// cluster just before the test started: wait (bounded) until they are served.
async function make(entry, { body, status }) {
  const base = entry.clusterScoped ? `${entry.api}/${entry.plural}` : `${entry.api}/namespaces/${PROFILE_NS}/${entry.plural}`;
  const deadline = Date.now() + WAIT;
  for (;;) {
    const r = await fetch(`${KUBE}${base}`, { method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" }, body: JSON.stringify(body) });
    if (r.ok) break;
    const why = await r.text();
    assert.ok(r.status === 404 && Date.now() < deadline, `POST ${base}: ${r.status} ${why}`);
    await new Promise((done) => setTimeout(done, 100));
  }
  if (status && entry.statusSubresource) {
    await kube("PATCH", `${base}/${body.metadata.name}/status`, { status }, "application/merge-patch+json");
  }
}

async function rowNames(page, entry) {
  return page.$$eval(entry.rows, (trs, cell) => trs.map((tr) => tr.children[cell].textContent.trim()), entry.nameCell);
}

for (const entry of NAMESPACE_PAGES) {
  for (const object of entry.held) await make(entry, object);
  const page = await open(`${entry.path}?namespace=${PROFILE_NS}`);
  await measure(page, entry.name);
  const held = entry.held.map((o) => o.body.metadata.name).sort();
  assert.deepEqual((await rowNames(page, entry)).sort(), held, `${entry.name}: the rows the cluster holds`);
  const controls = await tabReachesEveryControl(page, entry.name);
  const acted = entry.act ? await entry.act(page) : null;

  // Live: the page stays open while the cluster changes; the new row arrives through the stream.
  await page.evaluate(() => { window.notReloaded = true; });
  await make(entry, entry.made);
  const fresh = entry.made.body.metadata.name;
  await page.waitForFunction(({ rows, cell, fresh }) =>
    [...document.querySelectorAll(rows)].some((tr) => tr.children[cell].textContent.trim() === fresh),
  { rows: entry.rows, cell: entry.nameCell, fresh }, { timeout: WAIT });
  assert.ok(await page.evaluate(() => window.notReloaded), `${entry.name}: the page was reloaded instead of updated live`);
  // Keyboard use still reaches every control of the updated list.
  const after = await tabReachesEveryControl(page, `${entry.name} (after the live update)`);
  await page.evaluate(() => document.activeElement?.blur()); // no focus ring in the picture
  await page.screenshot({ path: `${SHOTS}/${entry.name}.png`, fullPage: true });
  console.log(`ok ${entry.name}: ${held.length} rows as the cluster holds them; ${acted ? `${acted}; ` : ""}` +
    `${fresh} appeared live without a reload; Tab reaches all ${controls} controls (${after} after the update)`);
  await page.context().close();
}

// --- Profiles: the cluster's rows, a profile made from the form by keyboard, and the delete that
// asks first (the profile's name typed) — nothing goes before the confirmation.
{
  const profile = (name, owner) => ({ apiVersion: "kubeflow.org/v1", kind: "Profile", metadata: { name },
    spec: { owner: { kind: "User", name: owner } } });
  const held = [["alice", "alice@example.com"], ["data-team", "carol@example.com"]];
  for (const [name, owner] of held) {
    await make({ api: "/apis/kubeflow.org/v1", plural: "profiles", clusterScoped: true }, { body: profile(name, owner) });
  }
  const page = await open("/profiles");
  await measure(page, "profiles");
  const names = async () => page.$$eval("#profiles tbody tr", (trs) => trs.map((tr) => tr.dataset.profile));
  assert.deepEqual((await names()).sort(), held.map(([n]) => n).sort(), "profiles: the rows the cluster holds");
  const owners = await page.$$eval("#profiles tbody tr .owner", (tds) => tds.map((td) => td.textContent.trim()));
  assert.deepEqual(owners.sort(), held.map(([, o]) => o).sort(), "profiles: each row's owner");
  const controls = await tabReachesEveryControl(page, "profiles");
  await page.evaluate(() => document.activeElement?.blur());
  await page.screenshot({ path: `${SHOTS}/profiles.png`, fullPage: true });

  // Keyboard only: name and owner, Enter submits; the profile is read back from the cluster.
  await page.getByLabel("Name", { exact: true }).focus();
  await page.keyboard.type("reading-group");
  await page.getByLabel("Owner", { exact: true }).focus();
  await page.keyboard.press("ControlOrMeta+a");
  await page.keyboard.type("dave@example.com");
  await Promise.all([page.waitForURL(/\/profiles/), page.keyboard.press("Enter")]);
  await page.waitForSelector("tr[data-profile='reading-group']");
  const made = await kube("GET", "/apis/kubeflow.org/v1/profiles/reading-group");
  assert.equal(made.spec.owner.name, "dave@example.com", "the form's profile has the owner typed");

  // Delete… leads to a confirmation that names what goes; the wrong name deletes nothing.
  await page.getByLabel("Delete profile reading-group (asks first)").focus();
  await Promise.all([page.waitForURL(/\/profiles\/delete/), page.keyboard.press("Enter")]);
  const confirmation = await page.textContent("#confirm-delete");
  assert.ok(confirmation.includes("reading-group") && confirmation.includes("deletes, for good"),
    `the confirmation names the profile and says it is for good: ${confirmation}`);
  const confirmControls = await tabReachesEveryControl(page, "profile delete confirmation");
  await page.evaluate(() => document.activeElement?.blur());
  await page.screenshot({ path: `${SHOTS}/profiles-delete.png`, fullPage: true });
  await page.getByLabel("Type reading-group to confirm").focus();
  await page.keyboard.type("reading");
  await Promise.all([page.waitForLoadState("load"), page.keyboard.press("Enter")]);
  await page.waitForSelector("#confirm-delete [role=alert], #confirm-delete .alert");
  await kube("GET", "/apis/kubeflow.org/v1/profiles/reading-group"); // still there
  await page.getByLabel("Type reading-group to confirm").focus();
  await page.keyboard.press("ControlOrMeta+a");
  await page.keyboard.type("reading-group");
  await Promise.all([page.waitForURL(/\/profiles\?deleted=reading-group/), page.keyboard.press("Enter")]);
  const gone = await fetch(`${KUBE}/apis/kubeflow.org/v1/profiles/reading-group`, { headers: { authorization: `Bearer ${TOKEN}` } });
  const left = gone.status === 404 ? null : (await gone.json()).metadata?.deletionTimestamp;
  assert.ok(gone.status === 404 || left, `the confirmed profile is deleted (got ${gone.status})`);
  console.log(`ok profiles: ${held.length} rows as the cluster holds them; the form made reading-group (read back); ` +
    `Tab reaches all ${controls} controls (${confirmControls} on the confirmation); a wrong typed name kept it, the right one deleted it`);
  await page.context().close();
}

assert.deepEqual(foreign, [], "the pages loaded something from outside the dashboard (a CDN?)");
console.log(`METRICS ${JSON.stringify(metrics)}`);
await browser.close();
