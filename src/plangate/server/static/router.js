// Views: #/ (inbox), #/runs (recent runs), #/runs/<thread> (run view, live trace), #/start.
import { $ } from "./dom.js";
import { locked } from "./page.js";

export const view = $("#view");
let cleanups = [];
// Counts the views shown: a view's reads that come back after it was left change nothing.
let shownCount = 0;
// Given by the entry rather than imported: the views route too, and import this module.
let views = null;

// What to undo (timers, the live trace) when the page leaves the view shown.
export const onLeave = (fn) => cleanups.push(fn);

export function leave() {
  shownCount += 1;
  for (const fn of cleanups) fn();
  cleanups = [];
}

// Whether the view that asks (at its start) is still the one shown: a view checks it before it
// fills the page with what a read brought back, which may come after the person went elsewhere.
export function stillShown() {
  const at = shownCount;
  return () => at === shownCount;
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
