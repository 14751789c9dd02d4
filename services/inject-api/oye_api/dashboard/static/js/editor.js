// The payload editor: a textarea with line numbers, and problems shown as notes at the
// lines of the fields they name (the relay's JSON paths, e.g. $.csChargingProfiles.stackLevel).
import { h } from "./dom.js";

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** A path part as the relay writes it: .name, ["odd name"] or [3]. */
export function pathPart(part) {
  if (typeof part === "number") return `[${part}]`;
  return IDENTIFIER.test(part) ? `.${part}` : `[${JSON.stringify(part)}]`;
}

/**
 * Where each value of a JSON text starts: Map(path -> 1-based line), e.g.
 * {"$": 1, "$.key": 2, "$.key[0]": 3}. For object members the line of the key is used.
 * Stops quietly at the first syntax error (what was read so far is kept).
 */
export function jsonLocations(text) {
  const where = new Map();
  let i = 0;
  let line = 1;
  const skip = () => {
    while (i < text.length && " \t\r\n".includes(text[i])) {
      if (text[i] === "\n") line += 1;
      i += 1;
    }
  };
  const string = () => {
    const start = i;
    i += 1;
    while (i < text.length && text[i] !== '"') {
      if (text[i] === "\\") i += 1;
      else if (text[i] === "\n") line += 1;
      i += 1;
    }
    i += 1;
    return JSON.parse(text.slice(start, i));
  };
  const value = (path, at) => {
    skip();
    if (!where.has(path)) where.set(path, at ?? line);
    const c = text[i];
    if (c === "{") {
      i += 1;
      skip();
      if (text[i] === "}") {
        i += 1;
        return;
      }
      for (;;) {
        skip();
        if (text[i] !== '"') throw new Error("key expected");
        const keyLine = line;
        const key = string();
        skip();
        if (text[i] !== ":") throw new Error(": expected");
        i += 1;
        value(path + pathPart(key), keyLine);
        skip();
        if (text[i] === ",") i += 1;
        else if (text[i] === "}") {
          i += 1;
          return;
        } else throw new Error(", or } expected");
      }
    } else if (c === "[") {
      i += 1;
      skip();
      if (text[i] === "]") {
        i += 1;
        return;
      }
      for (let index = 0; ; index += 1) {
        value(`${path}[${index}]`);
        skip();
        if (text[i] === ",") i += 1;
        else if (text[i] === "]") {
          i += 1;
          return;
        } else throw new Error(", or ] expected");
      }
    } else if (c === '"') {
      string();
    } else {
      const match = /^-?[0-9][0-9.eE+-]*|^true|^false|^null/.exec(text.slice(i, i + 400));
      if (!match) throw new Error("value expected");
      i += match[0].length;
    }
  };
  try {
    value("$");
  } catch {
    // keep what was located before the error
  }
  return where;
}

/** The line a path points at: its own, else its nearest located ancestor's, else 1. */
export function lineOf(locations, path) {
  let p = path;
  while (p) {
    if (locations.has(p)) return locations.get(p);
    const cut = Math.max(p.lastIndexOf("."), p.lastIndexOf("["));
    if (cut <= 0) break;
    p = p.slice(0, cut);
  }
  return locations.get("$") ?? 1;
}

/** The line of a JSON.parse error message ("... at position 12 (line 2 column 3)"). */
export function syntaxErrorLine(text, message) {
  const lineMatch = /line (\d+)/.exec(message);
  if (lineMatch) return Number(lineMatch[1]);
  const position = /position (\d+)/.exec(message);
  if (position) return text.slice(0, Number(position[1])).split("\n").length;
  return 1;
}

export class JsonEditor {
  constructor(root) {
    this.root = root;
    this.textarea = root.querySelector("textarea");
    this.gutter = root.querySelector(".gutter");
    this.notes = root.querySelector(".notes");
    this.problems = [];
    this.textarea.addEventListener("input", () => {
      this.setProblems([]);
      this.renderGutter();
    });
    this.textarea.addEventListener("scroll", () => this.place());
    this.textarea.addEventListener("keydown", (event) => {
      if (event.key === "Tab" && !event.shiftKey && !event.ctrlKey && !event.metaKey) {
        event.preventDefault();
        this.textarea.setRangeText("  ", this.textarea.selectionStart, this.textarea.selectionEnd, "end");
      }
    });
  }

  get text() {
    return this.textarea.value;
  }

  set(value) {
    this.textarea.value = typeof value === "string" ? value : JSON.stringify(value, null, 2);
    this.setProblems([]);
    this.renderGutter();
  }

  /** The payload, or null after showing why it is not JSON. */
  parse() {
    try {
      return JSON.parse(this.text);
    } catch (error) {
      const line = syntaxErrorLine(this.text, error.message);
      this.setProblems([{ path: "$", message: `not JSON: ${error.message}`, line }]);
      return null;
    }
  }

  /** Show problems [{path, message}] at the lines of the fields they name. */
  setProblems(problems) {
    const locations = jsonLocations(this.text);
    this.problems = problems.map((p) => ({ ...p, line: p.line ?? lineOf(locations, p.path) }));
    this.notes.replaceChildren(
      ...this.problems.map((p) =>
        h("div", { class: "note", title: `${p.path}: ${p.message}`, dataset: { path: p.path, line: String(p.line) } }, p.message),
      ),
    );
    this.textarea.setAttribute("aria-invalid", problems.length ? "true" : "false");
    this.renderGutter();
    this.place();
  }

  renderGutter() {
    const count = this.text.split("\n").length;
    const bad = new Set(this.problems.map((p) => p.line));
    const lines = [];
    for (let n = 1; n <= count; n += 1) {
      lines.push(bad.has(n) ? h("span", { class: "bad" }, String(n)) : String(n), "\n");
    }
    this.gutter.replaceChildren(...lines);
    this.gutter.scrollTop = this.textarea.scrollTop;
  }

  place() {
    const style = getComputedStyle(this.textarea);
    const lineHeight = parseFloat(style.lineHeight) || 20;
    const top = parseFloat(style.paddingTop) || 0;
    const taken = new Map();
    for (const note of this.notes.children) {
      const line = Number(note.dataset.line);
      const stacked = taken.get(line) ?? 0; // several problems on one line: one below the other
      taken.set(line, stacked + 1);
      note.style.top = `${top + (line - 1 + stacked) * lineHeight - this.textarea.scrollTop}px`;
    }
    this.gutter.scrollTop = this.textarea.scrollTop;
  }
}
