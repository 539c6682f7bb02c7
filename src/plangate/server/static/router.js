// Views: #/ (inbox), #/runs (recent runs), #/runs/<thread> (run view, live trace), #/start.
import { $ } from "./dom.js";
import { locked } from "./page.js";

export const view = $("#view");
let cleanups = [];
// Given by the entry rather than imported: the views route too, and import this module.
let views = null;

// What to undo (timers, the live trace) when the page leaves the view shown.
export const onLeave = (fn) => cleanups.push(fn);

export function leave() {
  for (const fn of cleanups) fn();
  cleanups = [];
}

export function every(seconds, fn) {
  const id = setInterval(fn, seconds * 1000);
  onLeave(() => clearInterval(id));
}

export function route() {
  leave();
  if (locked()) return;
  const hash = location.hash || "#/";
  let nav = "inbox";
  const run = hash.match(/^#\/runs\/(.+)$/);
  if (run) { nav = "runs"; views.run(decodeURIComponent(run[1])); }
  else if (hash === "#/runs") { nav = "runs"; views.runs(); }
  else if (hash === "#/start") { nav = "start"; views.start(); }
  else views.inbox();
  for (const a of document.querySelectorAll("[data-nav]")) a.classList.toggle("active", a.dataset.nav === nav);
}

export function startRouting(shows) {
  views = shows;
  window.addEventListener("hashchange", route);
}

// Shows the view at `target`, afresh if it is the one shown.
export function go(target) {
  if (location.hash === target) route(); else location.hash = target;
}
