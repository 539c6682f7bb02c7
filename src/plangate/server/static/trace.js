// The run's trace, as a table that grows while the run goes on.
import { $, h } from "./dom.js";
import { pretty, short } from "./format.js";

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

// The trace's panel; `add` puts an event in its place, `state` says whether it is live.
export function traceView() {
  const events = [];
  const seen = new Set();
  const traceBody = h("tbody", {});
  const live = h("span", { class: "live-dot off", id: "live" }, "connecting");
  const traceCount = h("span", { class: "muted" }, "");
  const panel = h("section", { class: "panel wide" },
    h("div", { class: "trace-head" }, h("h3", {}, "Trace"), live, traceCount, h("span", { class: "spacer" }),
      h("span", { class: "muted", style: "font-size:12px" }, "click an event for its data")),
    h("div", { class: "trace", id: "trace" }, h("table", {},
      h("thead", {}, h("tr", {}, ["seq", "time (UTC)", "event", "step", "detail"].map((t) => h("th", {}, t)))),
      traceBody)),
  );

  // Listed in the order they happened: a wave's events are numbered (in plan order, so that
  // `seq` does not depend on timing) when the whole wave is over, so a step that ended beside
  // one waiting for a decision can carry a later `seq` than the decision.
  function add(e, fresh) {
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

  function state(text, on) {
    live.textContent = text;
    live.classList.toggle("off", !on);
  }

  return { panel, add, state };
}
