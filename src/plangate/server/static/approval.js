// How an approval request reads, wherever it shows: its card, the dialog, the run view.
import { h } from "./dom.js";

export function riskBadge(risk) {
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
export const actionText = (a) => (SOURCES[a.action_source] ? `${a.action} · ${SOURCES[a.action_source]}` : a.action);

// "1 of 2 approvals (lee)" where the profile wants several people to approve; else null.
export const approvalsText = (a) => {
  if (!a.approvals_required || a.approvals_required < 2) return null;
  const given = a.approvals_so_far || [];
  const who = given.map((g) => g.approver).join(", ");
  return `${given.length} of ${a.approvals_required} approvals` + (who ? ` (${who})` : "");
};

// A review of the whole plan (profile plan_review) rather than one step's call.
export const isReview = (a) => a.type === "plan_review";
export const subject = (a) => (isReview(a) ? "plan review" : a.tool);
export const stepText = (a) => (isReview(a) ? `${a.steps.length} steps, covers risk up to ${a.covers}` : `step ${a.step_id}`);

// Each step of a plan under review: what it does, its risk, and whether approving covers it.
export const reviewTable = (a) => h("table", { class: "review-steps" },
  h("thead", {}, h("tr", {}, ["step", "tool", "action", "risk", "approval"].map((c) => h("th", {}, c)))),
  h("tbody", {}, a.steps.map((s) => h("tr", { dataset: { step: s.step_id } },
    h("td", { class: "mono" }, s.step_id), h("td", { class: "mono" }, s.tool), h("td", {}, actionText(s)),
    h("td", {}, riskBadge(s.risk)),
    h("td", {}, s.covered ? "covered" : s.asks ? "asks on its own" : s.exempt ? "irreversible, exempt by the profile" : "-")))),
);

// The order a plan runs in (plangate.plan.Order).
export const ORDERS = {
  listed: "listed: each propose or execute step waits for the steps before it, and the steps after it wait for it",
  dependencies: "dependencies: only depends_on and references order the steps",
};

// With workers on: a decision a worker is yet to apply (the request is decided), or the last
// one, whose job failed (the request is decidable again); else null.
const decidedText = (d) => `${d.decision} by ${d.approver}, job ${d.job}`;
export const queuedText = (a) => (a.queued ? `Decided (${decidedText(a.queued)}): queued, a worker applies it.` : null);
export const failedText = (a) =>
  (a.last_failed ? `The last decision (${decidedText(a.last_failed)}) failed: ${a.last_failed.error}. Decide again.` : null);
