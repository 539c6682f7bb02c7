import { REFUSED, lock, token } from "./api.js";

// The live trace: server-sent events read with fetch(), which sends the token in a header.
// EventSource cannot, and a token in the stream's URL would end up in access logs. Reconnects
// after the server's `retry` with Last-Event-ID, as EventSource does; stops at `end`.
export function follow(path, on) {
  const abort = new AbortController();
  let stopped = false;
  let lastId = "";
  let retry = 2000;
  const stop = () => { stopped = true; abort.abort(); };
  (async () => {
    while (!stopped) {
      let ended = false;
      try {
        const sent = token();
        const headers = { Accept: "text/event-stream", Authorization: "Bearer " + sent };
        if (lastId) headers["Last-Event-ID"] = lastId;
        const res = await fetch(path, { headers, cache: "no-store", signal: abort.signal });
        if (res.status === 401) { stop(); if (token() === sent) lock(REFUSED); return; }
        if (!res.ok || !res.body) { stop(); on.failed(res.status); return; }
        on.open();
        const reader = res.body.getReader();
        const decoder = new TextDecoder();
        const feed = eventParser((ev) => {
          if (stopped) return;
          if (ev.id !== null) lastId = ev.id;
          if (ev.type === "end") ended = true;
          on.event(ev);
        }, (ms) => (retry = ms));
        while (!ended && !stopped) {
          const { value, done } = await reader.read();
          if (done) break;
          feed(decoder.decode(value, { stream: true }));
        }
        if (ended) { stop(); return; }
      } catch {
        // a dropped connection: reconnect below, unless stopped
      }
      if (stopped) return;
      on.reconnecting();
      await new Promise((resolve) => setTimeout(resolve, retry));
    }
  })();
  return stop;
}

// The server-sent events format, as the WHATWG spec reads it: `event`, `data`, `id` and
// `retry` fields, comments (`:`) skipped, lines ending in CRLF, LF or CR, an empty line
// dispatching the event.
function eventParser(dispatch, setRetry) {
  let buffer = "", type = "", data = [], id = null;
  function line(text) {
    if (text === "") {
      if (data.length) dispatch({ type: type || "message", data: data.join("\n"), id });
      type = "";
      data = [];
      return;
    }
    if (text.startsWith(":")) return;
    const colon = text.indexOf(":");
    const field = colon < 0 ? text : text.slice(0, colon);
    let value = colon < 0 ? "" : text.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") type = value;
    else if (field === "data") data.push(value);
    else if (field === "id" && !value.includes("\0")) id = value;
    else if (field === "retry" && /^\d+$/.test(value)) setRetry(Number(value));
  }
  return (chunk) => {
    buffer += chunk;
    for (;;) {
      const end = /\r\n|\r|\n/.exec(buffer);
      // A CR at the very end may be the first half of a CRLF: wait for the next chunk.
      if (!end || (end[0] === "\r" && end.index === buffer.length - 1)) return;
      line(buffer.slice(0, end.index));
      buffer = buffer.slice(end.index + end[0].length);
    }
  };
}
