// The inbox: every approval request waiting, and the latest runs.
import { api, explain } from "./api.js";
import { actionText, approvalsText, failedText, isReview, queuedText, reviewTable, riskBadge, stepText, subject } from "./approval.js";
import { agoText, syncClock, tickCountdowns } from "./clock.js";
import { openDecision } from "./dialog.js";
import { $, fill, h } from "./dom.js";
import { pretty } from "./format.js";
import { flash, showCount } from "./page.js";
import { every, stillShown, view } from "./router.js";
import { runsTable } from "./runs.js";

// What the inbox shows now, so that a poll that brings nothing new leaves the page alone.
let inboxCache = "";

// Every reference an arg's value was made from; a request stored before requests listed
// them all holds one, as a string.
function referencesText(arg, sources) {
  const listed = [].concat(sources).map((source) => `\${${source}}`);
  return `args.${arg} ${listed.length === 1 ? "=" : "from"} ${listed.join(", ")}`;
}

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
    failedText(a) ? h("p", { class: "warn-line last-failed" }, failedText(a)) : null,
    a.queued ? h("p", { class: "queued-line" }, queuedText(a))
      : a.may_decide === false ? h("p", { class: "warn-line why-not" }, `You cannot decide this request: ${a.why_not || "the profile's rules say so"}`) : null,
    h("div", { class: "card-actions" },
      a.queued ? null : h("button", { class: "primary review", type: "button", onclick: () => openDecision(a) }, "Review & decide"),
      h("a", { href: `#/runs/${encodeURIComponent(a.thread)}` }, "Open run →"),
    ),
  );
}

async function loadInbox(force, shown) {
  const [pending, runs] = await Promise.all([api("GET", "/api/pending"), api("GET", "/api/runs?limit=8")]);
  if (!shown()) return;
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

// The cached copy holds the requests' arguments: it goes with the token.
export function forgetInbox() {
  inboxCache = "";
}

export function showInbox() {
  inboxCache = "";
  const shown = stillShown();
  fill(view, h("p", { class: "muted" }, "Loading…"));
  loadInbox(true, shown).catch((err) => flash(explain(err), true));
  every(3, () => { if (!$("#decide").open) loadInbox(false, shown).catch(() => {}); });
}
