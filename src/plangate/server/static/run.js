// The run view: where a run stands, its steps, budget and signals, and its trace live.
import { api, explain } from "./api.js";
import { failedText, queuedText, riskBadge, stepText, subject } from "./approval.js";
import { serverNow, syncClock, tickCountdowns } from "./clock.js";
import { openDecision } from "./dialog.js";
import { fill, h } from "./dom.js";
import { humanMs, ms, pct, short } from "./format.js";
import { recount } from "./page.js";
import { onLeave, view } from "./router.js";
import { resumeRun } from "./runs.js";
import { follow } from "./stream.js";
import { traceView } from "./trace.js";

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

// The run's title, facts, what it waits for, and whether its process stopped or seems stuck.
function runHead(run) {
  const waiting = run.waiting || [];
  return [
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
      failedText(a) ? h("span", { class: "warn-line last-failed" }, failedText(a)) : null,
      h("span", { class: "spacer" }),
      a.queued ? h("span", { class: "queued-line" }, queuedText(a))
        : h("button", { class: "primary review", type: "button", onclick: () => openDecision(a) }, "Review & decide"),
    )),
    run.status === "stopped"
      ? h("div", { class: "stopped-banner", id: "stopped" },
          h("p", {}, h("b", {}, "Stopped mid-way. "),
            "The process running it ended before it finished (a crash, Ctrl-C, a kill). Resume goes on from the last step it saved; "
            + "a step cut short runs again with the same idempotency key, so tools that honour it do not act twice."),
          h("button", { class: "primary resume", type: "button", id: "resume-run",
            onclick: (ev) => resumeRun(run.thread, ev.currentTarget) }, "Resume"))
      : null,
    run.status === "running" && serverNow() - Date.parse(run.updated_at) > 60000
      ? h("p", { class: "muted" }, "No new step for a minute: a process still holds the run (a long tool call, or a worker that is stuck).")
      : null,
  ];
}

// A run whose start is queued for a worker (workers on): no checkpoint yet, so nothing but the
// plan's goal and who takes it. The view looks again until a worker has started it.
const QUEUED_LOOK_MS = 1000;

function queuedHead(run) {
  const who = run.worker
    ? `${run.worker} is starting it (job ${run.job}).`
    : `Job ${run.job} waits for a plangate worker to start it.`;
  return [
    h("div", { class: "page-head" },
      h("h1", {}, run.goal || run.thread),
      h("span", { class: "status big queued", id: "run-status", dataset: { status: run.status } }, run.status),
    ),
    h("div", { class: "meta" },
      h("span", {}, "thread ", h("code", {}, run.thread)), h("span", { class: "sep" }, "·"),
      h("span", {}, `profile ${run.profile}${run.offline ? " (offline)" : ""}`),
      run.started_by ? [h("span", { class: "sep" }, "·"), h("span", {}, `started by ${run.started_by}`)] : null,
    ),
    h("div", { class: "queued-banner", id: "queued" },
      h("p", {}, h("b", {}, "Queued. "), who,
        " Its steps, budget and trace show here once it has started; this page follows it then.")),
  ];
}

export function showRun(thread) {
  let closed = false;
  let refreshTimer = null;
  let stopStream = null;
  const trace = traceView();
  const top = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  const body = h("div", { class: "grid" });
  fill(view, top, body);

  function render(run) {
    syncClock(run.server_time);
    if (run.status === "queued") {
      fill(top, queuedHead(run));
      fill(body);
      return;
    }
    fill(top, runHead(run));
    fill(body,
      h("section", { class: "panel wide" }, h("h3", {}, "Steps"), stepsTable(run)),
      h("section", { class: "panel" }, h("h3", {}, "Budget"), budgetPanel(run.budget)),
      h("section", { class: "panel" }, h("h3", {}, "Golden signals"), signalsPanel(run.signals)),
      trace.panel,
    );
    tickCountdowns();
  }

  // Look at the run; once it has started (at once, unless its start is queued), follow it.
  async function refresh() {
    try {
      const run = await api("GET", `/api/runs/${encodeURIComponent(thread)}`);
      if (closed) return;
      render(run);
      if (run.status === "queued") {
        clearTimeout(refreshTimer);
        refreshTimer = setTimeout(refresh, QUEUED_LOOK_MS);
        return;
      }
    } catch (err) {
      if (!closed) fill(top, h("p", { class: "error-line" }, explain(err)));
    }
    followRun();
  }

  function soon() {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(refresh, 120);
  }

  function followRun() {
    if (closed || stopStream) return;
    let first = true;
    stopStream = follow(`/api/runs/${encodeURIComponent(thread)}/events`, {
      open: () => trace.state("live", true),
      event: (ev) => {
        if (ev.type === "trace") { trace.add(JSON.parse(ev.data), !first); soon(); }
        else if (ev.type === "status") { first = false; soon(); recount(); }
        else if (ev.type === "end") { trace.state("finished", false); soon(); }
      },
      reconnecting: () => trace.state("reconnecting", false),
      failed: (status) => trace.state(status === 404 ? "no such run" : `not live (${status})`, false),
    });
  }

  refresh();

  onLeave(() => {
    closed = true;
    clearTimeout(refreshTimer);
    if (stopStream) stopStream();
  });
}
