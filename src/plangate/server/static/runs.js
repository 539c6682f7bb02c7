// The runs list, and resuming a run whose process stopped.
import { api, explain } from "./api.js";
import { agoText } from "./clock.js";
import { fill, h } from "./dom.js";
import { flash } from "./page.js";
import { every, go, stillShown, view } from "./router.js";

export function runsTable(runs) {
  if (!runs.length) return h("p", { class: "muted" }, "No runs yet.");
  return h("table", {},
    h("thead", {}, h("tr", {}, ["Run", "Goal", "Profile", "Status", "Steps", "Updated"].map((t) => h("th", {}, t)))),
    h("tbody", {}, runs.map((r) => h("tr", { dataset: { thread: r.thread } },
      h("td", {}, h("a", { href: `#/runs/${encodeURIComponent(r.thread)}`, class: "mono" }, r.thread)),
      h("td", {}, r.goal || h("span", { class: "muted" }, "—")),
      h("td", {}, r.profile),
      h("td", {}, h("span", { class: `status ${r.status}` }, r.status),
        r.status === "stopped"
          ? h("button", { class: "resume small", type: "button", title: "Go on from the last step it saved",
              onclick: (ev) => resumeRun(r.thread, ev.currentTarget) }, "Resume")
          : null),
      h("td", { class: "num" }, `${r.done} / ${r.steps}`),
      h("td", { class: "muted", title: r.updated_at || "" }, agoText(r.updated_at)),
    ))),
  );
}

export async function showRuns() {
  const shown = stillShown();
  fill(view, h("p", { class: "muted" }, "Loading…"));
  const load = async () => {
    const data = await api("GET", "/api/runs?limit=100");
    if (!shown()) return;
    fill(view,
      h("div", { class: "page-head" }, h("h1", {}, "Runs"), h("span", { class: "sub" }, "most recently written first")),
      h("section", { class: "panel" }, runsTable(data.runs)),
    );
  };
  every(5, () => load().catch(() => {}));
  await load().catch((err) => flash(explain(err), true));
}

// A run whose process died between two steps goes on in the server from its last checkpoint.
export async function resumeRun(thread, button) {
  if (button) button.disabled = true;
  try {
    await api("POST", `/api/runs/${encodeURIComponent(thread)}/resume`);
  } catch (err) {
    if (button) button.disabled = false;
    flash(explain(err), true);
    return;
  }
  flash(`Resumed run ${thread}: it goes on in the server.`);
  go(`#/runs/${encodeURIComponent(thread)}`);
}
