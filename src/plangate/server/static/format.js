// Values as the page writes them.

// JSON with the keys of every object sorted: two values are the same JSON when these match.
export function canon(value) {
  if (Array.isArray(value)) return "[" + value.map(canon).join(",") + "]";
  if (value && typeof value === "object") {
    return "{" + Object.keys(value).sort().map((k) => JSON.stringify(k) + ":" + canon(value[k])).join(",") + "}";
  }
  return JSON.stringify(value);
}

export const pretty = (value) => JSON.stringify(value, null, 2);

export function short(value, max = 90) {
  const text = typeof value === "string" ? value : JSON.stringify(value);
  if (text === undefined) return "";
  return text.length > max ? text.slice(0, max - 1) + "…" : text;
}

export const pct = (x) => (x === null || x === undefined ? "–" : `${Math.round(x * 100)} %`);
export const ms = (x) => (x === null || x === undefined ? "–" : `${x < 10 ? x.toFixed(1) : Math.round(x)} ms`);

export function humanMs(x) {
  if (x < 1000) return `${Math.round(x)} ms`;
  if (x < 120000) return `${(x / 1000).toFixed(1)} s`;
  if (x < 7200000) return `${Math.round(x / 60000)} min`;
  return `${(x / 3600000).toFixed(1)} h`;
}
