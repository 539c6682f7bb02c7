// plangate inbox: plain JS, no build step, no dependencies.
// Views: #/ (inbox), #/runs (recent runs), #/runs/<thread> (run view, live trace), #/start.
"use strict";

(() => {
  const TOKEN_KEY = "plangate-token";
  const NAME_KEY = "plangate-approver";
  const EXAMPLE_PLAN = [
    "# Follow up with a customer: look the account up, draft an email, send it.",
    "goal: Follow up with Acme about the renewal",
    "steps:",
    "  - id: lookup",
    "    tool: crm.lookup_account",
    "    args: {account: acme}",
    "    description: Look up the Acme account and its contact",
    "  - id: draft",
    "    tool: email.draft",
    "    action: propose",
    "    depends_on: [lookup]",
    "    args:",
    "      to: ana.lopez@acme.example",
    "      subject: Your renewal",
    "      body: Hi Ana, can we talk about the renewal this week?",
    "    description: Draft the follow-up email",
    "  - id: send",
    "    tool: email.send",
    "    action: execute",
    "    depends_on: [draft]",
    "    args:",
    "      to: ana.lopez@acme.example",
    "      subject: Your renewal",
    "      body: Hi Ana, can we talk about the renewal this week?",
    "    description: Send the follow-up email to Ana Lopez",
    "",
  ].join("\n");

  // Every API request needs the token: approval requests carry real arguments. It may arrive
  // once in the address (#token=..., which no server sees, or ?token=...), then lives in this
  // tab's sessionStorage only, out of the address bar and the history.
  {
    const fromQuery = new URLSearchParams(location.search).get("token");
    let fromHash = null;
    if (location.hash.startsWith("#token=")) {
      try { fromHash = decodeURIComponent(location.hash.slice(7)); } catch { fromHash = ""; }
    }
    const given = (fromHash || fromQuery || "").trim();
    if (given) sessionStorage.setItem(TOKEN_KEY, given);
    if (fromQuery !== null || fromHash !== null) {
      history.replaceState(null, "", location.pathname + (fromHash !== null ? "#/" : location.hash));
    }
  }

  const $ = (sel, root = document) => root.querySelector(sel);
  const view = $("#view");
  let clockOffset = 0; // server time minus browser time, ms
  let cleanups = [];
  let inboxCache = "";

  // ---- small helpers -------------------------------------------------------------------

  function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      // CSSOM, not a style attribute: the page's CSP allows no inline style attributes.
      else if (key === "style") node.style.cssText = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (key === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // replaceChildren with the same rules as h(): arrays flattened, null/false skipped.
  function fill(node, ...children) {
    node.replaceChildren();
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function canon(value) {
    if (Array.isArray(value)) return "[" + value.map(canon).join(",") + "]";
    if (value && typeof value === "object") {
      return "{" + Object.keys(value).sort().map((k) => JSON.stringify(k) + ":" + canon(value[k])).join(",") + "}";
    }
    return JSON.stringify(value);
  }

  const pretty = (value) => JSON.stringify(value, null, 2);
  const token = () => sessionStorage.getItem(TOKEN_KEY) || "";
  const myName = () => localStorage.getItem(NAME_KEY) || "";

  function short(value, max = 90) {
    const text = typeof value === "string" ? value : JSON.stringify(value);
    if (text === undefined) return "";
    return text.length > max ? text.slice(0, max - 1) + "…" : text;
  }

  function leftText(ms) {
    if (ms <= 0) return "expired";
    const s = Math.floor(ms / 1000);
    const d = Math.floor(s / 86400), hr = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
    if (d > 0) return `${d}d ${hr}h left`;
    if (hr > 0) return `${hr}h ${String(m).padStart(2, "0")}m left`;
    return `${m}m ${String(s % 60).padStart(2, "0")}s left`;
  }

  function agoText(iso) {
    if (!iso) return "";
    const s = Math.max(0, Math.round((Date.now() + clockOffset - Date.parse(iso)) / 1000));
    if (s < 60) return "just now";
    if (s < 3600) return `${Math.floor(s / 60)} min ago`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
    return `${Math.floor(s / 86400)} d ago`;
  }

  const pct = (x) => (x === null || x === undefined ? "–" : `${Math.round(x * 100)} %`);
  const ms = (x) => (x === null || x === undefined ? "–" : `${x < 10 ? x.toFixed(1) : Math.round(x)} ms`);

  function syncClock(serverTime) {
    if (serverTime) clockOffset = Date.parse(serverTime) - Date.now();
  }

  function tickCountdowns() {
    for (const node of document.querySelectorAll("[data-expires]")) {
      const left = Date.parse(node.dataset.expires) - (Date.now() + clockOffset);
      node.textContent = leftText(left);
      node.classList.toggle("expired", left <= 0);
      node.classList.toggle("soon", left > 0 && left < 3600 * 1000);
    }
  }
  setInterval(tickCountdowns, 1000);

  function flash(text, bad = false) {
    if (locked()) return;
    const box = $("#flash");
    box.textContent = text;
    box.classList.toggle("bad", bad);
    box.hidden = false;
    clearTimeout(flash.timer);
    flash.timer = setTimeout(() => (box.hidden = true), 6000);
  }

  function unauthorised() {
    const err = new Error("missing or wrong token");
    err.status = 401;
    return err;
  }

  async function api(method, path, body) {
    const sent = token();
    if (!sent) { lock(); throw unauthorised(); }
    const headers = { Accept: "application/json", Authorization: "Bearer " + sent };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    // An answer to a token that has been forgotten or replaced meanwhile is not shown, and a
    // refusal of it must not throw away the token entered since.
    if (token() !== sent) throw unauthorised();
    if (res.status === 401) { lock(REFUSED); throw unauthorised(); }
    let data = null;
    try { data = await res.json(); } catch { data = null; }
    if (!res.ok) {
      const err = new Error((data && data.detail) || `${res.status} ${res.statusText}`);
      err.status = res.status;
      err.hint = data && data.hint;
      throw err;
    }
    return data;
  }

  function explain(err) {
    if (err.status === 401) return "Missing or wrong token: enter the token plangate serve printed.";
    return err.message + (err.hint ? ` (${err.hint})` : "");
  }

  // The live trace: server-sent events read with fetch(), which sends the token in a header.
  // EventSource cannot, and a token in the stream's URL would end up in access logs. Reconnects
  // after the server's `retry` with Last-Event-ID, as EventSource does; stops at `end`.
  function follow(path, on) {
    const abort = new AbortController();
    let stopped = false;
    let lastId = "";
    let retry = 2000;
    const stop = () => { stopped = true; abort.abort(); };
    (async () => {
      while (!stopped) {
        let ended = false;
        try {
          const sent = token();
          const headers = { Accept: "text/event-stream", Authorization: "Bearer " + sent };
          if (lastId) headers["Last-Event-ID"] = lastId;
          const res = await fetch(path, { headers, cache: "no-store", signal: abort.signal });
          if (res.status === 401) { stop(); if (token() === sent) lock(REFUSED); return; }
          if (!res.ok || !res.body) { stop(); on.failed(res.status); return; }
          on.open();
          const reader = res.body.getReader();
          const decoder = new TextDecoder();
          const feed = eventParser((ev) => {
            if (stopped) return;
            if (ev.id !== null) lastId = ev.id;
            if (ev.type === "end") ended = true;
            on.event(ev);
          }, (ms) => (retry = ms));
          while (!ended && !stopped) {
            const { value, done } = await reader.read();
            if (done) break;
            feed(decoder.decode(value, { stream: true }));
          }
          if (ended) { stop(); return; }
        } catch {
          // a dropped connection: reconnect below, unless stopped
        }
        if (stopped) return;
        on.reconnecting();
        await new Promise((resolve) => setTimeout(resolve, retry));
      }
    })();
    return stop;
  }

  // The server-sent events format, as the WHATWG spec reads it: `event`, `data`, `id` and
  // `retry` fields, comments (`:`) skipped, lines ending in CRLF, LF or CR, an empty line
  // dispatching the event.
  function eventParser(dispatch, setRetry) {
    let buffer = "", type = "", data = [], id = null;
    function line(text) {
      if (text === "") {
        if (data.length) dispatch({ type: type || "message", data: data.join("\n"), id });
        type = "";
        data = [];
        return;
      }
      if (text.startsWith(":")) return;
      const colon = text.indexOf(":");
      const field = colon < 0 ? text : text.slice(0, colon);
      let value = colon < 0 ? "" : text.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") type = value;
      else if (field === "data") data.push(value);
      else if (field === "id" && !value.includes("\0")) id = value;
      else if (field === "retry" && /^\d+$/.test(value)) setRetry(Number(value));
    }
    return (chunk) => {
      buffer += chunk;
      for (;;) {
        const end = /\r\n|\r|\n/.exec(buffer);
        // A CR at the very end may be the first half of a CRLF: wait for the next chunk.
        if (!end || (end[0] === "\r" && end.index === buffer.length - 1)) return;
        line(buffer.slice(0, end.index));
        buffer = buffer.slice(end.index + end[0].length);
      }
    };
  }

  // ---- the token gate: nothing is shown before the server has taken the token -----------

  const REFUSED = "The server refused that token. Enter the one plangate serve printed when it started: "
    + "unless given --token or PLANGATE_TOKEN, it makes a new one each time it starts.";
  const gate = $("#gate"), gateInput = $("#gate-token"), gateError = $("#gate-error"), gateButton = $("#gate-open");
  const locked = () => document.body.classList.contains("locked");

  // Forget the token and everything shown with it, and ask for the token.
  function lock(message = "") {
    sessionStorage.removeItem(TOKEN_KEY);
    showGate(message);
  }

  // Take everything off the page but the token form.
  function showGate(message) {
    leave();
    inboxCache = "";
    view.replaceChildren();
    showCount(0);
    $("#foot-db").textContent = "";
    $("#flash").hidden = true;
    const decide = $("#decide");
    if (decide.open) decide.close();
    document.body.classList.add("locked");
    gateError.textContent = message;
    gateError.hidden = !message;
    if (gate.hidden) {
      gate.hidden = false;
      gateInput.value = "";
      gateInput.focus();
    }
  }

  // Check the token with one read before showing anything.
  async function unlock() {
    let info;
    try {
      info = await api("GET", "/api/info");
    } catch (err) {
      // A refused token has brought the form back already; anything else keeps the token.
      if (err.status !== 401) showGate(`The inbox did not answer: ${explain(err)}`);
      return;
    }
    gate.hidden = true;
    document.body.classList.remove("locked");
    syncClock(info.server_time);
    $("#foot-db").textContent = `project ${info.project} · database ${info.database}`;
    route();
    recount();
  }

  $("#gate-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const given = gateInput.value.trim();
    if (!given) {
      gateError.textContent = "Enter the token.";
      gateError.hidden = false;
      gateInput.focus();
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, given);
    gateButton.disabled = true;
    try { await unlock(); } finally { gateButton.disabled = false; }
  });

  // ---- header: name and token ----------------------------------------------------------

  const me = $("#me");
  me.value = myName();
  me.addEventListener("input", () => localStorage.setItem(NAME_KEY, me.value.trim()));
  $("#token-forget").addEventListener("click", () => lock());

  // ---- routing --------------------------------------------------------------------------

  function leave() {
    for (const fn of cleanups) fn();
    cleanups = [];
  }

  function route() {
    leave();
    if (locked()) return;
    const hash = location.hash || "#/";
    let nav = "inbox";
    const run = hash.match(/^#\/runs\/(.+)$/);
    if (run) { nav = "runs"; showRun(decodeURIComponent(run[1])); }
    else if (hash === "#/runs") { nav = "runs"; showRuns(); }
    else if (hash === "#/start") { nav = "start"; showStart(); }
    else showInbox();
    for (const a of document.querySelectorAll("[data-nav]")) a.classList.toggle("active", a.dataset.nav === nav);
  }
  window.addEventListener("hashchange", route);

  function every(seconds, fn) {
    const id = setInterval(fn, seconds * 1000);
    cleanups.push(() => clearInterval(id));
  }

  function showCount(n) {
    const count = $("#nav-count");
    count.textContent = String(n);
    count.hidden = n === 0;
  }
  // The badge in the menu stays current on every view.
  const recount = () => {
    if (!locked()) api("GET", "/api/pending").then((p) => showCount(p.approvals.length)).catch(() => {});
  };
  setInterval(recount, 5000);

  // ---- inbox ----------------------------------------------------------------------------

  function riskBadge(risk) {
    return h("span", { class: `risk-badge ${risk}` }, `${risk} risk`);
  }

  const SOURCES = {
    profile: "from the profile",
    tool: "from the tool",
    mcp: "from the MCP server",
    openapi: "from the OpenAPI method",
    default: "unclassified tool",
    plan: "raised by the plan",
  };

  // The effective action and who said it, e.g. "execute · from the tool".
  const actionText = (a) => (SOURCES[a.action_source] ? `${a.action} · ${SOURCES[a.action_source]}` : a.action);

  // "1 of 2 approvals (lee)" where the profile wants several people to approve; else null.
  const approvalsText = (a) => {
    if (!a.approvals_required || a.approvals_required < 2) return null;
    const given = a.approvals_so_far || [];
    const who = given.map((g) => g.approver).join(", ");
    return `${given.length} of ${a.approvals_required} approvals` + (who ? ` (${who})` : "");
  };

  // A review of the whole plan (profile plan_review) rather than one step's call.
  const isReview = (a) => a.type === "plan_review";
  const subject = (a) => (isReview(a) ? "plan review" : a.tool);
  const stepText = (a) => (isReview(a) ? `${a.steps.length} steps, covers risk up to ${a.covers}` : `step ${a.step_id}`);

  // Each step of a plan under review: what it does, its risk, and whether approving covers it.
  const reviewTable = (a) => h("table", { class: "review-steps" },
    h("thead", {}, h("tr", {}, ["step", "tool", "action", "risk", "approval"].map((c) => h("th", {}, c)))),
    h("tbody", {}, a.steps.map((s) => h("tr", { dataset: { step: s.step_id } },
      h("td", { class: "mono" }, s.step_id), h("td", { class: "mono" }, s.tool), h("td", {}, actionText(s)),
      h("td", {}, riskBadge(s.risk)),
      h("td", {}, s.covered ? "covered" : s.asks ? "asks on its own" : s.exempt ? "irreversible, exempt by the profile" : "-")))),
  );

  // The order a plan runs in (plangate.plan.Order).
  const ORDERS = {
    listed: "listed: each propose or execute step waits for the steps before it, and the steps after it wait for it",
    dependencies: "dependencies: only depends_on and references order the steps",
  };

  function approvalCard(a) {
    const who = a.started_by ? ["started by ", h("b", {}, a.started_by)] : null;
    return h("article", { class: `card risk-${a.risk}`, dataset: { thread: a.thread, step: a.step_id } },
      h("div", { class: "card-head" },
        riskBadge(a.risk),
        h("span", { class: "tool" }, subject(a)),
        isReview(a) ? null : h("span", { class: "chip action", title: "what the call does, and who said so" }, actionText(a)),
        a.irreversible ? h("span", { class: "chip irreversible", title: "it cannot be undone" }, "irreversible") : null,
        a.offline ? h("span", { class: "chip" }, "offline") : null,
        approvalsText(a) ? h("span", { class: "chip approvals", title: "each from a different approver" }, approvalsText(a)) : null,
        h("span", { class: "spacer" }),
        h("span", { class: "countdown", dataset: { expires: a.expires_at }, title: `expires ${a.expires_at}` }, ""),
      ),
      h("p", { class: "consequence" }, a.consequence),
      h("div", { class: "requester" },
        h("span", {}, "Run "), h("a", { href: `#/runs/${encodeURIComponent(a.thread)}` }, a.thread),
        a.goal ? [h("span", { class: "sep" }, "·"), h("span", { class: "goal" }, a.goal)] : null,
        h("span", { class: "sep" }, "·"), h("span", {}, stepText(a)),
        h("span", { class: "sep" }, "·"), h("span", {}, `profile ${a.profile}`),
        who ? [h("span", { class: "sep" }, "·"), h("span", {}, who)] : null,
        h("span", { class: "sep" }, "·"), h("span", { title: a.requested_at }, `requested ${agoText(a.requested_at)}`),
      ),
      isReview(a) ? reviewTable(a) : h("pre", { class: "args" }, pretty(a.args)),
      a.references ? h("ul", { class: "references muted" },
        Object.entries(a.references).map(([arg, sources]) => h("li", {}, referencesText(arg, sources)))) : null,
      a.error ? h("p", { class: "error-line" }, a.error) : null,
      h("div", { class: "card-actions" },
        h("button", { class: "primary review", type: "button", onclick: () => openDecision(a) }, "Review & decide"),
        h("a", { href: `#/runs/${encodeURIComponent(a.thread)}` }, "Open run →"),
      ),
    );
  }

  function runsTable(runs) {
    if (!runs.length) return h("p", { class: "muted" }, "No runs yet.");
    return h("table", {},
      h("thead", {}, h("tr", {}, ["Run", "Goal", "Profile", "Status", "Steps", "Updated"].map((t) => h("th", {}, t)))),
      h("tbody", {}, runs.map((r) => h("tr", { dataset: { thread: r.thread } },
        h("td", {}, h("a", { href: `#/runs/${encodeURIComponent(r.thread)}`, class: "mono" }, r.thread)),
        h("td", {}, r.goal || h("span", { class: "muted" }, "—")),
        h("td", {}, r.profile),
        h("td", {}, h("span", { class: `status ${r.status}` }, r.status),
          r.status === "stopped"
            ? h("button", { class: "resume small", type: "button", title: "Go on from the last step it saved",
                onclick: (ev) => resumeRun(r.thread, ev.currentTarget) }, "Resume")
            : null),
        h("td", { class: "num" }, `${r.done} / ${r.steps}`),
        h("td", { class: "muted", title: r.updated_at || "" }, agoText(r.updated_at)),
      ))),
    );
  }

  async function loadInbox(force = false) {
    const [pending, runs] = await Promise.all([api("GET", "/api/pending"), api("GET", "/api/runs?limit=8")]);
    syncClock(pending.server_time);
    showCount(pending.approvals.length);
    const key = JSON.stringify([pending.approvals, runs.runs.map((r) => [r.thread, r.status, r.done])]);
    if (!force && key === inboxCache) return;
    inboxCache = key;
    const approvals = pending.approvals;
    fill(view,
      h("div", { class: "page-head" },
        h("h1", {}, "Waiting for approval"),
        h("span", { class: "sub" }, approvals.length === 1 ? "1 request" : `${approvals.length} requests`),
      ),
      approvals.length
        ? h("section", { class: "cards", id: "pending" }, approvals.map(approvalCard))
        : h("section", { class: "panel empty", id: "pending" },
            h("div", { class: "big" }, "Nothing waits for you."),
            h("div", {}, "Runs that pause for an approval show up here. ", h("a", { href: "#/start" }, "Start a run"), "."),
          ),
      h("section", { class: "panel", style: "margin-top:20px" },
        h("h3", {}, "Recent runs"), runsTable(runs.runs),
        h("p", { style: "margin:8px 0 0" }, h("a", { href: "#/runs" }, "All runs →")),
      ),
    );
    tickCountdowns();
  }

  function showInbox() {
    inboxCache = "";
    fill(view, h("p", { class: "muted" }, "Loading…"));
    loadInbox(true).catch((err) => flash(explain(err), true));
    every(3, () => { if (!$("#decide").open) loadInbox().catch(() => {}); });
  }

  async function showRuns() {
    fill(view, h("p", { class: "muted" }, "Loading…"));
    const load = async () => {
      const data = await api("GET", "/api/runs?limit=100");
      fill(view,
        h("div", { class: "page-head" }, h("h1", {}, "Runs"), h("span", { class: "sub" }, "most recently written first")),
        h("section", { class: "panel" }, runsTable(data.runs)),
      );
    };
    await load().catch((err) => flash(explain(err), true));
    every(5, () => load().catch(() => {}));
  }

  // ---- resuming a stopped run ----------------------------------------------------------

  // A run whose process died between two steps goes on in the server from its last checkpoint.
  async function resumeRun(thread, button) {
    if (button) button.disabled = true;
    try {
      await api("POST", `/api/runs/${encodeURIComponent(thread)}/resume`);
    } catch (err) {
      if (button) button.disabled = false;
      flash(explain(err), true);
      return;
    }
    flash(`Resumed run ${thread}: it goes on in the server.`);
    const target = `#/runs/${encodeURIComponent(thread)}`;
    if (location.hash === target) route(); else location.hash = target;
  }

  // ---- decision dialog ------------------------------------------------------------------

  const dialog = $("#decide");
  const dArgs = $("#d-args"), dApprover = $("#d-approver"), dReason = $("#d-reason"), dError = $("#d-error");
  const dApprove = $("#d-approve"), dReject = $("#d-reject");
  let deciding = null;

  function openDecision(a) {
    deciding = a;
    const risk = $("#d-risk");
    risk.className = `risk-badge ${a.risk}`;
    risk.textContent = `${a.risk} risk`;
    $("#d-title").textContent = subject(a);
    $("#d-consequence").textContent = a.consequence;
    fill($("#d-facts"),
      h("dt", {}, "Run"), h("dd", {}, a.goal ? `${a.goal} (${a.thread})` : a.thread),
      isReview(a)
        ? [h("dt", {}, "Steps"), h("dd", { id: "d-steps" }, reviewTable(a)),
           h("dt", {}, "Order"), h("dd", { id: "d-order" }, ORDERS[a.order] || a.order || ORDERS.listed)]
        : [h("dt", {}, "Step"), h("dd", {}, `${a.step_id}: ${a.description || a.action}`),
           h("dt", {}, "Action"), h("dd", { id: "d-action" }, actionText(a))],
      a.review_changed ? [h("dt", {}, "Asks again"), h("dd", { id: "d-review-changed" }, a.review_changed)] : null,
      a.irreversible ? [h("dt", {}, "Undo"), h("dd", { class: "irreversible-text" }, "not possible: the call cannot be undone")] : null,
      approvalsText(a) ? [h("dt", {}, "Approvals"), h("dd", { id: "d-approvals" }, `${approvalsText(a)}; each from a different approver`)] : null,
      h("dt", {}, "Profile"), h("dd", {}, a.profile + (a.offline ? " (offline)" : "")),
      a.started_by ? [h("dt", {}, "Started by"), h("dd", {}, a.started_by)] : null,
      h("dt", {}, "Expires"), h("dd", {}, h("span", { class: "countdown", dataset: { expires: a.expires_at } }, ""), ` (${a.expires_at})`),
    );
    $("#d-expired").hidden = !a.expired;
    dArgs.value = pretty(a.args);
    dApprover.value = myName();
    dReason.value = "";
    dError.hidden = true;
    updateApproveLabel();
    setBusy(false);
    tickCountdowns();
    dialog.showModal();
    (dApprover.value ? dApprove : dApprover).focus();
  }

  function editedArgs() {
    const parsed = JSON.parse(dArgs.value);
    if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) throw new Error("the arguments must be a JSON object");
    return canon(parsed) === canon(deciding.args) ? null : parsed;
  }

  function updateApproveLabel() {
    let label = "Approve";
    try { if (deciding && editedArgs()) label = "Approve with edits"; } catch { label = "Approve"; }
    dApprove.textContent = label;
  }

  function setBusy(busy) {
    for (const b of [dApprove, dReject, $("#d-cancel")]) b.disabled = busy;
  }

  function dialogError(text) {
    dError.textContent = text;
    dError.hidden = false;
  }

  async function submitDecision(kind) {
    const a = deciding;
    const approver = dApprover.value.trim();
    const reason = dReason.value.trim();
    if (!approver) { dialogError("Enter your name: it is recorded with the decision."); dApprover.focus(); return; }
    // The digest binds the decision to the request shown: if the run asks something else by
    // now, the server refuses it instead of applying it there.
    const body = { interrupt_id: a.interrupt_id, approver };
    if (a.digest) body.digest = a.digest;
    if (kind === "reject") {
      if (!reason) { dialogError("Give a reason to reject."); dReason.focus(); return; }
      Object.assign(body, { decision: "reject", reason });
    } else {
      let edited;
      try { edited = editedArgs(); } catch (err) { dialogError(`Arguments are not valid JSON: ${err.message}`); dArgs.focus(); return; }
      body.decision = edited ? "edit" : "approve";
      if (edited) body.args = edited;
      if (reason) body.reason = reason;
    }
    localStorage.setItem(NAME_KEY, approver);
    me.value = approver;
    setBusy(true);
    try {
      await api("POST", `/api/runs/${encodeURIComponent(a.thread)}/decision`, body);
    } catch (err) {
      setBusy(false);
      dialogError(explain(err));
      return;
    }
    dialog.close();
    recount();
    const verb = { approve: "Approved", edit: "Approved with edits", reject: "Rejected" }[body.decision];
    flash(`${verb}: ${subject(a)} in run ${a.thread}. The run goes on.`);
    const target = `#/runs/${encodeURIComponent(a.thread)}`;
    if (location.hash === target) route(); else location.hash = target;
  }

  dArgs.addEventListener("input", updateApproveLabel);
  dApprove.addEventListener("click", () => submitDecision("approve"));
  dReject.addEventListener("click", () => submitDecision("reject"));
  $("#d-cancel").addEventListener("click", () => dialog.close());
  $("#d-form").addEventListener("submit", (ev) => ev.preventDefault());

  // ---- run view -------------------------------------------------------------------------

  function describe(e) {
    const d = e.data || {};
    switch (e.type) {
      case "plan_created": return `goal ${JSON.stringify(d.goal || "")}, ${d.steps} steps, profile ${d.profile}`;
      case "budget_warning": return `${d.tier} at ${d.used}/${d.limit} calls`;
      case "budget_exceeded": return `${d.tier} used up (${d.used}/${d.limit})`;
      case "approval_requested": return `${d.risk} risk: ${d.consequence}`;
      case "approval_received": return `${d.decision} by ${d.approver || "unknown"}${d.reason ? ": " + d.reason : ""}`;
      case "approval_timeout": return `expired at ${d.expires_at}`;
      case "adapter_fallback": return d.reason === "offline" ? "offline: its mock answers" : `${d.error_type}: ${d.message}; its mock answers`;
      case "tool_call_start": return `args ${short(d.args, 120)}`;
      case "tool_call_retry": return `try ${d.attempt} in ${d.wait_seconds} s after ${d.error_type}: ${d.message}`;
      case "tool_call_complete": return `${d.duration_ms} ms`;
      case "tool_call_error": return `${d.error_type}: ${d.message}`;
      case "step_blocked": case "step_skipped": return String(d.reason);
      case "step_completed": return String(d.status);
      case "plan_completed": return `status ${d.status}`;
      default: return short(d, 120);
    }
  }

  function typeClass(type) {
    if (type.startsWith("approval")) return "approval";
    if (type.startsWith("budget")) return "budget";
    if (type === "tool_call_error" || type === "step_blocked") return "bad";
    if (type.startsWith("tool") || type === "adapter_fallback") return "tool";
    if (type.startsWith("plan")) return "plan";
    return "";
  }

  function traceRow(e, fresh) {
    const detail = h("tr", { class: "ev-detail", hidden: true }, h("td", { colspan: 5 }, h("pre", {}, pretty(e))));
    const row = h("tr", { class: "ev" + (fresh ? " fresh" : ""), dataset: { seq: e.seq, type: e.type }, onclick: () => (detail.hidden = !detail.hidden) },
      h("td", { class: "num muted" }, e.seq),
      h("td", { class: "muted mono" }, (e.ts || "").slice(11, 23)),
      h("td", {}, h("span", { class: `etype ${typeClass(e.type)}` }, e.type)),
      h("td", { class: "mono" }, e.step_id ? `${e.step_id}` : "plan"),
      h("td", { class: "detail" }, describe(e)),
    );
    return [row, detail];
  }

  function stepDetail(s) {
    const parts = [];
    if (s.approval) {
      const a = s.approval;
      // Four eyes: each approval as recorded, in the order they came (as `plangate show`).
      const who = (a.approvals || []).length > 1
        ? a.approvals.map((g) => `${g.approver} (${g.decision})`).join(", ")
        : a.approver || "unknown";
      parts.push(h("div", {}, h("b", {}, `${a.decision} by ${who}`), a.reason ? `: ${a.reason}` : ""));
    }
    if (s.error) parts.push(h("div", {}, s.error));
    else if (s.output !== null && s.output !== undefined) parts.push(h("div", { class: "mono", title: JSON.stringify(s.output) }, short(s.output, 80)));
    else if (s.status === "pending" || s.status === "waiting") parts.push(h("div", {}, s.description || ""));
    return parts;
  }

  function stepsTable(run) {
    return h("table", { id: "steps" },
      h("thead", {}, h("tr", {}, ["#", "Step", "Tool", "Action", "Status", "Tries", "Time", "Detail"].map((t) => h("th", {}, t)))),
      h("tbody", {}, run.steps.map((s) => h("tr", { dataset: { step: s.step_id, status: s.status } },
        h("td", { class: "num muted" }, s.index + 1),
        h("td", { class: "mono" }, s.step_id),
        h("td", { class: "mono" }, s.tool),
        h("td", {}, s.action),
        h("td", {}, h("span", { class: `status ${s.status}` }, s.status + (s.mocked ? " (mock)" : ""))),
        h("td", { class: "num" }, s.attempts || ""),
        h("td", { class: "num" }, s.duration_ms === null ? "" : ms(s.duration_ms)),
        h("td", { class: "detail" }, stepDetail(s)),
      ))),
    );
  }

  function budgetPanel(budget) {
    const groups = [["Total", "total"], ["Per domain", "domain"], ["Per tool", "tool"]];
    const threshold = budget.warning_threshold;
    return h("div", { id: "budget" },
      groups.map(([title, kind]) => {
        const tiers = budget.tiers.filter((t) => t.kind === kind);
        if (!tiers.length) return null;
        return h("div", { class: "budget-group" }, h("h4", {}, title),
          tiers.map((t) => {
            const fill = t.limit ? Math.min(100, (100 * t.used) / t.limit) : 0;
            return h("div", { class: `bar-row ${t.level}`, dataset: { tier: t.tier, level: t.level } },
              h("span", { class: "label", title: t.tier }, kind === "total" ? "all tools" : t.name),
              h("div", { class: `bar ${t.level}` },
                h("span", { style: `width:${fill}%` }),
                t.limit ? h("i", { class: "mark", style: `left:${threshold * 100}%`, title: `warning at ${pct(threshold)}` }) : null,
              ),
              h("span", { class: "used" }, t.limit === null ? `${t.used} / ∞` : `${t.used} / ${t.limit}`),
            );
          }),
        );
      }),
      h("p", { class: "muted", style: "margin:8px 0 0;font-size:12px" }, `Amber from ${pct(threshold)} of a tier (the profile's warning threshold), red when none is left.`),
    );
  }

  // Every reference an arg's value was made from; a request stored before requests listed
  // them all holds one, as a string.
  function referencesText(arg, sources) {
    const listed = [].concat(sources).map((source) => `\${${source}}`);
    return `args.${arg} ${listed.length === 1 ? "=" : "from"} ${listed.join(", ")}`;
  }

  function signalsPanel(s) {
    const lat = s.tool_latency_ms || {}, wait = s.approval_wait_ms || {};
    const tile = (name, value, title) => h("div", { class: "signal", title: title || "" }, h("div", { class: "value" }, value), h("div", { class: "name" }, name));
    return h("div", { class: "signals", id: "signals" },
      tile("success rate", pct(s.success_rate), "ok steps / steps"),
      tile("error rate", pct(s.error_rate), "failed tool calls / tool calls"),
      s.failed_before_call ? tile("failed before call", String(s.failed_before_call), "steps that ended in error without calling their tool") : null,
      tile("latency p50", ms(lat.p50)),
      tile("latency p95", ms(lat.p95)),
      tile("latency max", ms(lat.max)),
      tile("approvals", String(wait.count ?? 0), "decisions taken"),
      tile("approval wait max", wait.max === null || wait.max === undefined ? "–" : humanMs(wait.max)),
      tile("budget used", pct(s.budget_utilisation), "the fullest tier's share"),
    );
  }

  function humanMs(x) {
    if (x < 1000) return `${Math.round(x)} ms`;
    if (x < 120000) return `${(x / 1000).toFixed(1)} s`;
    if (x < 7200000) return `${Math.round(x / 60000)} min`;
    return `${(x / 3600000).toFixed(1)} h`;
  }

  function showRun(thread) {
    let closed = false;
    let events = [];
    const seen = new Set();
    let refreshTimer = null;
    let stopStream = null;
    const traceBody = h("tbody", {});
    const live = h("span", { class: "live-dot off", id: "live" }, "connecting");
    const traceCount = h("span", { class: "muted" }, "");
    const top = h("div", {}, h("p", { class: "muted" }, "Loading…"));
    const body = h("div", { class: "grid" });
    fill(view, top, body);

    const tracePanel = h("section", { class: "panel wide" },
      h("div", { class: "trace-head" }, h("h3", {}, "Trace"), live, traceCount, h("span", { class: "spacer" }),
        h("span", { class: "muted", style: "font-size:12px" }, "click an event for its data")),
      h("div", { class: "trace", id: "trace" }, h("table", {},
        h("thead", {}, h("tr", {}, ["seq", "time (UTC)", "event", "step", "detail"].map((t) => h("th", {}, t)))),
        traceBody)),
    );

    function render(run) {
      syncClock(run.server_time);
      const waiting = run.waiting || [];
      fill(top,
        h("div", { class: "page-head" },
          h("h1", {}, run.goal || run.thread),
          h("span", { class: `status big ${run.status}`, id: "run-status", dataset: { status: run.status } }, run.status),
        ),
        h("div", { class: "meta" },
          h("span", {}, "thread ", h("code", {}, run.thread)), h("span", { class: "sep" }, "·"),
          h("span", {}, `profile ${run.profile}${run.offline ? " (offline)" : ""}`),
          run.started_by ? [h("span", { class: "sep" }, "·"), h("span", {}, `started by ${run.started_by}`)] : null,
          run.trace_id ? [h("span", { class: "sep" }, "·"), h("span", {}, "trace ", h("code", {}, run.trace_id.slice(0, 12)))] : null,
          run.halted ? [h("span", { class: "sep" }, "·"), h("span", {}, `halted: ${run.halted}`)] : null,
        ),
        waiting.map((a) => h("div", { class: "waiting-banner" },
          riskBadge(a.risk),
          h("span", {}, "Waiting for approval: ", h("b", { class: "mono" }, subject(a)), ` (${stepText(a)})`),
          h("span", { class: "countdown", dataset: { expires: a.expires_at } }, ""),
          h("span", { class: "spacer" }),
          h("button", { class: "primary review", type: "button", onclick: () => openDecision(a) }, "Review & decide"),
        )),
        run.status === "stopped"
          ? h("div", { class: "stopped-banner", id: "stopped" },
              h("p", {}, h("b", {}, "Stopped mid-way. "),
                "The process running it ended before it finished (a crash, Ctrl-C, a kill). Resume goes on from the last step it saved; "
                + "a step cut short runs again with the same idempotency key, so tools that honour it do not act twice."),
              h("button", { class: "primary resume", type: "button", id: "resume-run",
                onclick: (ev) => resumeRun(run.thread, ev.currentTarget) }, "Resume"))
          : null,
        run.status === "running" && Date.now() + clockOffset - Date.parse(run.updated_at) > 60000
          ? h("p", { class: "muted" }, "No new step for a minute: a process still holds the run (a long tool call, or a worker that is stuck).")
          : null,
      );
      fill(body,
        h("section", { class: "panel wide" }, h("h3", {}, "Steps"), stepsTable(run)),
        h("section", { class: "panel" }, h("h3", {}, "Budget"), budgetPanel(run.budget)),
        h("section", { class: "panel" }, h("h3", {}, "Golden signals"), signalsPanel(run.signals)),
        tracePanel,
      );
      tickCountdowns();
    }

    async function refresh() {
      try {
        const run = await api("GET", `/api/runs/${encodeURIComponent(thread)}`);
        if (!closed) render(run);
      } catch (err) {
        if (!closed) fill(top, h("p", { class: "error-line" }, explain(err)));
      }
    }

    function soon() {
      clearTimeout(refreshTimer);
      refreshTimer = setTimeout(refresh, 120);
    }

    // Listed in the order they happened: a wave's events are numbered (in plan order, so that
    // `seq` does not depend on timing) when the whole wave is over, so a step that ended beside
    // one waiting for a decision can carry a later `seq` than the decision.
    function addEvent(e, fresh) {
      if (seen.has(e.seq)) return;
      seen.add(e.seq);
      const after = (o) => o.ts > e.ts || (o.ts === e.ts && o.seq > e.seq);
      let at = events.length;  // most events come last: look from the end
      while (at > 0 && after(events[at - 1])) at -= 1;
      const rows = traceRow(e, fresh);
      if (at === events.length) {
        events.push(e);
        traceBody.append(...rows);
      } else {
        const before = traceBody.children[2 * at];  // each event is its row and its detail row
        events.splice(at, 0, e);
        rows.forEach((row) => traceBody.insertBefore(row, before));
      }
      traceCount.textContent = `${events.length} events`;
      const box = $("#trace");
      if (box) box.scrollTop = box.scrollHeight;
    }

    function liveState(text, on) {
      live.textContent = text;
      live.classList.toggle("off", !on);
    }

    refresh().then(() => {
      if (closed) return;
      let first = true;
      stopStream = follow(`/api/runs/${encodeURIComponent(thread)}/events`, {
        open: () => liveState("live", true),
        event: (ev) => {
          if (ev.type === "trace") { addEvent(JSON.parse(ev.data), !first); soon(); }
          else if (ev.type === "status") { first = false; soon(); recount(); }
          else if (ev.type === "end") { liveState("finished", false); soon(); }
        },
        reconnecting: () => liveState("reconnecting", false),
        failed: (status) => liveState(status === 404 ? "no such run" : `not live (${status})`, false),
      });
    });

    cleanups.push(() => {
      closed = true;
      clearTimeout(refreshTimer);
      if (stopStream) stopStream();
    });
  }

  // ---- start a run ----------------------------------------------------------------------

  async function showStart() {
    const info = await api("GET", "/api/info").catch(() => ({ profiles: ["enterprise", "smb", "technical"], demo: true }));
    const text = h("textarea", { id: "plan-text", rows: 18, spellcheck: "false", placeholder: "goal: ...\nsteps:\n  - id: ...\n    tool: ...\n    args: {...}" });
    // The demo's example plan calls the demo's tools: offered only where they are.
    if (info.demo) text.value = EXAMPLE_PLAN;
    const file = h("input", { type: "file", id: "plan-file", accept: ".yaml,.yml,.json,text/yaml,application/json" });
    file.addEventListener("change", async () => { if (file.files[0]) text.value = await file.files[0].text(); });
    const profile = h("select", { id: "profile" }, info.profiles.map((p) => h("option", { value: p, selected: p === (info.default_profile || "enterprise") }, p)));
    const thread = h("input", { id: "thread", placeholder: "new id", size: 18 });
    const offline = h("input", { type: "checkbox", id: "offline" });
    const error = h("p", { class: "error-line", hidden: true });
    const button = h("button", { class: "primary", type: "submit", id: "start-run" }, "Start run");
    const form = h("form", { class: "panel", style: "display:grid;gap:12px" },
      h("label", { class: "field" }, h("span", {}, "Plan file (YAML or JSON)"), file),
      h("label", { class: "field" }, h("span", {}, "Plan"), text),
      h("div", { class: "form-row" },
        h("label", { class: "field" }, h("span", {}, "Profile"), profile),
        h("label", { class: "field" }, h("span", {}, "Thread id ", h("span", { class: "muted" }, "(optional)")), thread),
        h("label", { class: "inline", style: "color:inherit" }, offline, "offline (mocks answer, nothing is sent)"),
        h("span", { class: "spacer" }),
        button,
      ),
      error,
    );
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      error.hidden = true;
      button.disabled = true;
      try {
        const started = await api("POST", "/api/runs", {
          plan: text.value, profile: profile.value, thread: thread.value.trim() || null,
          offline: offline.checked, started_by: myName() || null,
        });
        flash(`Started run ${started.thread} under ${started.profile}.`);
        location.hash = `#/runs/${encodeURIComponent(started.thread)}`;
      } catch (err) {
        error.textContent = explain(err);
        error.hidden = false;
      } finally {
        button.disabled = false;
      }
    });
    fill(view,
      h("div", { class: "page-head" }, h("h1", {}, "Start a run"),
        h("span", { class: "sub" }, info.demo
          ? "with the demo toolkit: crm.lookup_account, email.draft, email.send, crm.update_opportunity"
          : `with the tools of project ${info.project} (plangate tools lists them)`)),
      form,
    );
  }

  // ---- boot -----------------------------------------------------------------------------

  if (token()) unlock(); else lock();
})();
