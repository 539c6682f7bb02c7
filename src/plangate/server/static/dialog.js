// The dialog that approves, edits or rejects a waiting request.
import { api, explain, knowsPeople } from "./api.js";
import { ORDERS, actionText, approvalsText, isReview, reviewTable, subject } from "./approval.js";
import { tickCountdowns } from "./clock.js";
import { $, fill, h } from "./dom.js";
import { canon, pretty } from "./format.js";
import { flash, keepName, myName, recount } from "./page.js";
import { go } from "./router.js";

const dialog = $("#decide");
const dArgs = $("#d-args"), dApprover = $("#d-approver"), dReason = $("#d-reason"), dError = $("#d-error");
const dApprove = $("#d-approve"), dReject = $("#d-reject");
// Where the server knows the person, the decision is theirs: no name to type.
const signedIn = knowsPeople;
let deciding = null;

export function openDecision(a) {
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
  if (!signedIn) dApprover.value = myName();
  dReason.value = "";
  dError.hidden = true;
  // What the profile's rules say about the person signed in: a request they may not decide
  // shows read-only, saying why.
  const whyNot = $("#d-why-not");
  whyNot.textContent = a.may_decide === false ? `You cannot decide this request: ${a.why_not || "the profile's rules say so"}` : "";
  whyNot.hidden = a.may_decide !== false;
  updateApproveLabel();
  setBusy(false);
  tickCountdowns();
  dialog.showModal();
  (signedIn || dApprover.value ? dApprove : dApprover).focus();
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
  const readOnly = deciding && deciding.may_decide === false;
  for (const b of [dApprove, dReject]) b.disabled = busy || readOnly;
  $("#d-cancel").disabled = busy;
}

function dialogError(text) {
  dError.textContent = text;
  dError.hidden = false;
}

async function submitDecision(kind) {
  const a = deciding;
  const approver = signedIn ? null : dApprover.value.trim();
  const reason = dReason.value.trim();
  if (!signedIn && !approver) { dialogError("Enter your name: it is recorded with the decision."); dApprover.focus(); return; }
  // The digest binds the decision to the request shown: if the run asks something else by
  // now, the server refuses it instead of applying it there.
  const body = { interrupt_id: a.interrupt_id };
  if (approver) body.approver = approver;
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
  if (approver) {
    keepName(approver);
    $("#me").value = approver;
  }
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
  const more = body.decision !== "reject" && a.approvals_required > (a.approvals_so_far || []).length + 1;
  flash(`${verb}: ${subject(a)} in run ${a.thread}. ${more ? "It waits for another approver." : "The run goes on."}`);
  go(`#/runs/${encodeURIComponent(a.thread)}`);
}

dArgs.addEventListener("input", updateApproveLabel);
dApprove.addEventListener("click", () => submitDecision("approve"));
dReject.addEventListener("click", () => submitDecision("reject"));
$("#d-cancel").addEventListener("click", () => dialog.close());
$("#d-form").addEventListener("submit", (ev) => ev.preventDefault());
