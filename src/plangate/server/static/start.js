// Starting a run from a plan pasted or picked from a file.
import { api, explain, knowsPeople } from "./api.js";
import { fill, h } from "./dom.js";
import { flash, myName } from "./page.js";
import { stillShown, view } from "./router.js";

const EXAMPLE_PLAN = [
  "# Follow up with a customer: look the account up, draft an email, send it.",
  "goal: Follow up with Acme about the renewal",
  "steps:",
  "  - id: lookup",
  "    tool: crm.lookup_account",
  "    args: {account: acme}",
  "    description: Look up the Acme account and its contact",
  "  - id: draft",
  "    tool: email.draft",
  "    action: propose",
  "    depends_on: [lookup]",
  "    args:",
  "      to: ana.lopez@acme.example",
  "      subject: Your renewal",
  "      body: Hi Ana, can we talk about the renewal this week?",
  "    description: Draft the follow-up email",
  "  - id: send",
  "    tool: email.send",
  "    action: execute",
  "    depends_on: [draft]",
  "    args:",
  "      to: ana.lopez@acme.example",
  "      subject: Your renewal",
  "      body: Hi Ana, can we talk about the renewal this week?",
  "    description: Send the follow-up email to Ana Lopez",
  "",
].join("\n");

export async function showStart() {
  const shown = stillShown();
  const info = await api("GET", "/api/info").catch(() => ({ profiles: ["enterprise", "smb", "technical"], demo: true }));
  if (!shown()) return;
  const text = h("textarea", { id: "plan-text", rows: 18, spellcheck: "false", placeholder: "goal: ...\nsteps:\n  - id: ...\n    tool: ...\n    args: {...}" });
  // The demo's example plan calls the demo's tools: offered only where they are.
  if (info.demo) text.value = EXAMPLE_PLAN;
  const file = h("input", { type: "file", id: "plan-file", accept: ".yaml,.yml,.json,text/yaml,application/json" });
  file.addEventListener("change", async () => { if (file.files[0]) text.value = await file.files[0].text(); });
  const profile = h("select", { id: "profile" }, info.profiles.map((p) => h("option", { value: p, selected: p === (info.default_profile || "enterprise") }, p)));
  const thread = h("input", { id: "thread", placeholder: "new id", size: 18 });
  const offline = h("input", { type: "checkbox", id: "offline" });
  const error = h("p", { class: "error-line", hidden: true });
  const button = h("button", { class: "primary", type: "submit", id: "start-run" }, "Start run");
  const form = h("form", { class: "panel", style: "display:grid;gap:12px" },
    h("label", { class: "field" }, h("span", {}, "Plan file (YAML or JSON)"), file),
    h("label", { class: "field" }, h("span", {}, "Plan"), text),
    h("div", { class: "form-row" },
      h("label", { class: "field" }, h("span", {}, "Profile"), profile),
      h("label", { class: "field" }, h("span", {}, "Thread id ", h("span", { class: "muted" }, "(optional)")), thread),
      h("label", { class: "inline", style: "color:inherit" }, offline, "offline (mocks answer, nothing is sent)"),
      h("span", { class: "spacer" }),
      button,
    ),
    error,
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.hidden = true;
    button.disabled = true;
    try {
      const started = await api("POST", "/api/runs", {
        plan: text.value, profile: profile.value, thread: thread.value.trim() || null,
        // Where the server knows the person, it records them: no name is sent.
        offline: offline.checked, started_by: knowsPeople ? null : myName() || null,
      });
      flash(started.status === "queued"
        ? `Queued run ${started.thread} under ${started.profile}: a worker starts it (job ${started.job}).`
        : `Started run ${started.thread} under ${started.profile}.`);
      location.hash = `#/runs/${encodeURIComponent(started.thread)}`;
    } catch (err) {
      error.textContent = explain(err);
      error.hidden = false;
    } finally {
      button.disabled = false;
    }
  });
  fill(view,
    h("div", { class: "page-head" }, h("h1", {}, "Start a run"),
      h("span", { class: "sub" }, info.demo
        ? "with the demo toolkit: crm.lookup_account, email.draft, email.send, crm.update_opportunity"
        : `with the tools of project ${info.project} (plangate tools lists them)`)),
    form,
  );
}
