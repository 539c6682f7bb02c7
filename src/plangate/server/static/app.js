// plangate inbox: plain JS modules, no build step, no dependencies. This entry wires the
// views to the router and the token gate (or the sign-in) to the API, then opens the inbox or
// asks for the token (or a sign-in).
import { door, lock, onLock, takeTokenFromAddress, token } from "./api.js";
import { tickCountdowns } from "./clock.js";
import { $ } from "./dom.js";
import { onUnlock, showGate, unlock } from "./gate.js";
import { showInbox } from "./inbox.js";
import { keepName, myName, recount } from "./page.js";
import { startRouting } from "./router.js";
import { showRun } from "./run.js";
import { showRuns } from "./runs.js";
import { showSignIn, showTokenHolder, startSignIn } from "./signin.js";
import { showStart } from "./start.js";

startRouting({ inbox: showInbox, runs: showRuns, run: showRun, start: showStart });
setInterval(tickCountdowns, 1000);
setInterval(recount, 5000);

if (door === "oidc") {
  // People sign in: no token, no name to type.
  onLock(showSignIn);
  startSignIn();
} else {
  takeTokenFromAddress();
  onLock(showGate);
  $("#token-forget").addEventListener("click", () => lock());
  if (door === "bearer") {
    // Each person's own token: it names them, so no name to type.
    onUnlock(showTokenHolder);
  } else {
    const me = $("#me");
    me.value = myName();
    me.addEventListener("input", () => keepName(me.value.trim()));
  }
  if (token()) unlock(); else lock();
}
