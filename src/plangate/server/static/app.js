// plangate inbox: plain JS modules, no build step, no dependencies. This entry wires the
// views to the router and the token gate to the API, then opens the inbox or asks for the
// token.
import { lock, onLock, takeTokenFromAddress, token } from "./api.js";
import { tickCountdowns } from "./clock.js";
import { $ } from "./dom.js";
import { showGate, unlock } from "./gate.js";
import { showInbox } from "./inbox.js";
import { keepName, myName, recount } from "./page.js";
import { startRouting } from "./router.js";
import { showRun } from "./run.js";
import { showRuns } from "./runs.js";
import { showStart } from "./start.js";

takeTokenFromAddress();
onLock(showGate);

const me = $("#me");
me.value = myName();
me.addEventListener("input", () => keepName(me.value.trim()));
$("#token-forget").addEventListener("click", () => lock());

startRouting({ inbox: showInbox, runs: showRuns, run: showRun, start: showStart });
setInterval(tickCountdowns, 1000);
setInterval(recount, 5000);

if (token()) unlock(); else lock();
