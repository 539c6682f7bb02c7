// The token gate: nothing is shown before the server has taken the token.
import { api, explain, keepToken } from "./api.js";
import { syncClock } from "./clock.js";
import { $ } from "./dom.js";
import { forgetInbox } from "./inbox.js";
import { recount, showCount } from "./page.js";
import { leave, route, view } from "./router.js";

const gate = $("#gate"), gateInput = $("#gate-token"), gateError = $("#gate-error"), gateButton = $("#gate-open");

// Take everything off the page: what it showed came with the token (or the sign-in).
export function clearPage() {
  leave();
  forgetInbox();
  view.replaceChildren();
  showCount(0);
  $("#foot-db").textContent = "";
  $("#flash").hidden = true;
  const decide = $("#decide");
  if (decide.open) decide.close();
  document.body.classList.add("locked");
}

// Take everything off the page but the token form.
export function showGate(message) {
  clearPage();
  gateError.textContent = message;
  gateError.hidden = !message;
  if (gate.hidden) {
    gate.hidden = false;
    gateInput.value = "";
    gateInput.focus();
  }
}

// Check the token (or the sign-in) with one read before showing anything.
export async function unlock() {
  let info;
  try {
    info = await api("GET", "/api/info");
  } catch (err) {
    // A refused token has brought the form back already; anything else keeps the token.
    if (err.status !== 401) showGate(`The inbox did not answer: ${explain(err)}`);
    return;
  }
  gate.hidden = true;
  $("#signin").hidden = true;
  document.body.classList.remove("locked");
  syncClock(info.server_time);
  $("#foot-db").textContent = `project ${info.project} · database ${info.database}`;
  route();
  recount();
  unlocked();
}

// What to do once the inbox is open (show who a token of one's own names).
let unlocked = () => {};
export function onUnlock(fn) {
  unlocked = fn;
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
  keepToken(given);
  gateButton.disabled = true;
  try { await unlock(); } finally { gateButton.disabled = false; }
});
