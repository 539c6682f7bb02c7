// The inbox where people sign in (the project's OpenID provider): who is signed in, signing
// out, and the sign-in page shown instead of everything else while nobody is.
import { api, csrfToken, explain, keepCsrf } from "./api.js";
import { $, fill } from "./dom.js";
import { clearPage, unlock } from "./gate.js";

let me = null;
export const signedInAs = () => me;

// Everything off the page but the way to sign in.
export function showSignIn(message = "") {
  me = null;
  keepCsrf("");
  clearPage();
  $("#signed-in").hidden = true;
  const error = $("#signin-error");
  error.textContent = message;
  error.hidden = !message;
  $("#signin").hidden = false;
}

export function showMe(identity) {
  $("#me-name").textContent = identity.name || identity.email || identity.subject;
  $("#me-name").title = [identity.email, identity.subject].filter(Boolean).join(" · ");
  fill($("#me-groups"), identity.groups.length ? `(${identity.groups.join(", ")})` : "");
  $("#signed-in").hidden = false;
  $("#sign-out").hidden = !csrfToken();  // a pasted token is forgotten, not signed out
}

// With a token of one's own: who it names, beside the token's "forget".
export async function showTokenHolder() {
  $("#me-box")?.remove();
  $("#d-approver-row")?.remove();
  const me = await api("GET", "/api/me").catch(() => null);
  if (me && me.identity) showMe(me.identity);
}

// Who is signed in (GET /api/me, with the session cookie), then the inbox; else the sign-in.
export async function signIn() {
  // No name to type where people are known: the box and the dialog's field go.
  $("#me-box")?.remove();
  $("#token-state")?.remove();
  $("#d-approver-row")?.remove();
  let res;
  try {
    res = await fetch("/api/me", { headers: { Accept: "application/json" }, credentials: "same-origin" });
  } catch (err) {
    showSignIn(`The inbox did not answer: ${explain(err)}`);
    return;
  }
  if (res.status === 401) { showSignIn(); return; }
  const data = await res.json().catch(() => null);
  if (!res.ok || !data || !data.identity) { showSignIn(`The inbox did not answer: ${(data && data.detail) || res.status}`); return; }
  me = data.identity;
  keepCsrf(data.csrf_token);
  showMe(me);
  await unlock();
}

async function signOut() {
  const button = $("#sign-out");
  button.disabled = true;
  try {
    await fetch("/auth/logout", { method: "POST", headers: { "X-CSRF-Token": csrfToken() }, credentials: "same-origin" });
  } finally {
    button.disabled = false;
  }
  showSignIn("Signed out.");
}

export function startSignIn() {
  // Only here: where people paste a token, the page links nowhere but to itself.
  $("#sign-in").href = "/auth/login";
  $("#sign-out").addEventListener("click", () => signOut());
  return signIn();
}
