// Every API request needs the token: approval requests carry real arguments. It may arrive
// once in the address (#token=..., which no server sees, or ?token=...), then lives in this
// tab's sessionStorage only, out of the address bar and the history.

const TOKEN_KEY = "plangate-token";

// How people come in, as the server says in the page's meta tag: "token" (the token printed by
// plangate serve, and a name typed), "bearer" (a token of one's own, which names its holder) or
// "oidc" (signed in: a session cookie, and on every change the session's CSRF token, which no
// other site can read).
export const door = document.querySelector('meta[name="plangate-door"]')?.content || "token";
let csrf = "";
export const keepCsrf = (given) => { csrf = given || ""; };
export const csrfToken = () => csrf;
// Whether the server knows who the person is (no name to type).
export const knowsPeople = door !== "token";

export const REFUSED = "The server refused that token. Enter the one plangate serve printed when it started: "
  + "unless given --token or PLANGATE_TOKEN, it makes a new one each time it starts.";

export const SIGNED_OUT = "You are not signed in, or your sign-in has expired: sign in again.";

export const token = () => sessionStorage.getItem(TOKEN_KEY) || "";
export const keepToken = (given) => sessionStorage.setItem(TOKEN_KEY, given);

export function takeTokenFromAddress() {
  const fromQuery = new URLSearchParams(location.search).get("token");
  let fromHash = null;
  if (location.hash.startsWith("#token=")) {
    try { fromHash = decodeURIComponent(location.hash.slice(7)); } catch { fromHash = ""; }
  }
  const given = (fromHash || fromQuery || "").trim();
  if (given) keepToken(given);
  if (fromQuery !== null || fromHash !== null) {
    history.replaceState(null, "", location.pathname + (fromHash !== null ? "#/" : location.hash));
  }
}

// Set by the token gate, which clears the page of every view: they all read through this
// module, so it cannot import the gate.
let showGate = () => {};
export function onLock(show) {
  showGate = show;
}

// Forget the token (or the CSRF token) and everything shown with it, and ask for the token
// (or a sign-in).
export function lock(message = "") {
  sessionStorage.removeItem(TOKEN_KEY);
  csrf = "";
  showGate(message);
}

function unauthorised() {
  const err = new Error("missing or wrong token");
  err.status = 401;
  return err;
}

export async function api(method, path, body) {
  if (door === "oidc") return signedInApi(method, path, body);
  const sent = token();
  if (!sent) { lock(); throw unauthorised(); }
  const headers = { Accept: "application/json", Authorization: "Bearer " + sent };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  // An answer to a token that has been forgotten or replaced meanwhile is not shown, and a
  // refusal of it must not throw away the token entered since.
  if (token() !== sent) throw unauthorised();
  if (res.status === 401) { lock(REFUSED); throw unauthorised(); }
  return answer(res);
}

// A request of the person signed in: the browser sends the session cookie; a change carries
// the session's CSRF token.
async function signedInApi(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET") headers["X-CSRF-Token"] = csrf;
  const res = await fetch(path, { method, headers, credentials: "same-origin", body: body === undefined ? undefined : JSON.stringify(body) });
  if (res.status === 401) { lock(SIGNED_OUT); throw unauthorised(); }
  return answer(res);
}

async function answer(res) {
  let data = null;
  try { data = await res.json(); } catch { data = null; }
  if (!res.ok) {
    const err = new Error((data && data.detail) || `${res.status} ${res.statusText}`);
    err.status = res.status;
    err.hint = data && data.hint;
    throw err;
  }
  return data;
}

export function explain(err) {
  if (err.status === 401) return door === "oidc" ? SIGNED_OUT : "Missing or wrong token: enter the token plangate serve printed.";
  return err.message + (err.hint ? ` (${err.hint})` : "");
}
