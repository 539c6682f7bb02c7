// What every view shares: the flash line, the menu's count of waiting approvals, your name.
import { api } from "./api.js";
import { $ } from "./dom.js";

const NAME_KEY = "plangate-approver";

export const locked = () => document.body.classList.contains("locked");

export function flash(text, bad = false) {
  if (locked()) return;
  const box = $("#flash");
  box.textContent = text;
  box.classList.toggle("bad", bad);
  box.hidden = false;
  clearTimeout(flash.timer);
  flash.timer = setTimeout(() => (box.hidden = true), 6000);
}

export function showCount(n) {
  const count = $("#nav-count");
  count.textContent = String(n);
  count.hidden = n === 0;
}

// The badge in the menu stays current on every view.
export const recount = () => {
  if (!locked()) api("GET", "/api/pending").then((p) => showCount(p.approvals.length)).catch(() => {});
};

export const myName = () => localStorage.getItem(NAME_KEY) || "";
export const keepName = (name) => localStorage.setItem(NAME_KEY, name);
