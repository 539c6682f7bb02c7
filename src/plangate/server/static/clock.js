// Time as the server tells it: deadlines and "ago" are the server's, whatever this
// browser's clock says.

let clockOffset = 0; // server time minus browser time, ms

export function syncClock(serverTime) {
  if (serverTime) clockOffset = Date.parse(serverTime) - Date.now();
}

export const serverNow = () => Date.now() + clockOffset;

function leftText(ms) {
  if (ms <= 0) return "expired";
  const s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86400), hr = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  if (d > 0) return `${d}d ${hr}h left`;
  if (hr > 0) return `${hr}h ${String(m).padStart(2, "0")}m left`;
  return `${m}m ${String(s % 60).padStart(2, "0")}s left`;
}

export function agoText(iso) {
  if (!iso) return "";
  const s = Math.max(0, Math.round((serverNow() - Date.parse(iso)) / 1000));
  if (s < 60) return "just now";
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

// Every element with a `data-expires` shows the time left until then.
export function tickCountdowns() {
  for (const node of document.querySelectorAll("[data-expires]")) {
    const left = Date.parse(node.dataset.expires) - serverNow();
    node.textContent = leftText(left);
    node.classList.toggle("expired", left <= 0);
    node.classList.toggle("soon", left > 0 && left < 3600 * 1000);
  }
}
