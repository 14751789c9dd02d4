// The composite schedule: read from a GetCompositeSchedule answer (1.6, 2.0.1, 2.1) and
// drawn as a step line in inline SVG. The drawn data stays on the <svg> as data-points.
import { h } from "./dom.js";

/**
 * {start (ms since epoch or null), unit, duration (s), periods: [{start (s), limit}]} from
 * the charger's answer; null when it was not Accepted or holds no schedule.
 */
export function compositeSchedule(answer, requestedDuration) {
  if (!answer || answer.status !== "Accepted") return null;
  const schedule = answer.chargingSchedule ?? answer.schedule; // 1.6 : 2.0.1 and 2.1
  if (!schedule || !Array.isArray(schedule.chargingSchedulePeriod)) return null;
  const startText = answer.scheduleStart ?? schedule.scheduleStart ?? schedule.startSchedule;
  const start = startText ? Date.parse(startText) : null;
  const periods = schedule.chargingSchedulePeriod
    .map((p) => ({ start: Number(p.startPeriod) || 0, limit: typeof p.limit === "number" ? p.limit : null, phases: p.numberPhases ?? null }))
    .sort((a, b) => a.start - b.start);
  return {
    start: Number.isNaN(start) ? null : start,
    unit: schedule.chargingRateUnit ?? "A",
    duration: Number(schedule.duration) || Number(requestedDuration) || (periods.at(-1)?.start ?? 0) + 3600,
    periods,
  };
}

/** The step line's corners, [[t, limit], ...], from 0 to the end of the window. */
export function stepPoints(schedule) {
  const points = [];
  const { periods, duration } = schedule;
  periods.forEach((period, index) => {
    if (period.limit === null || period.start >= duration) return;
    const end = Math.min(periods[index + 1]?.start ?? duration, duration);
    points.push([period.start, period.limit], [end, period.limit]);
  });
  return points;
}

/** About `count` round tick values from 0 to at least `max`. */
export function niceTicks(max, count = 5) {
  if (!(max > 0)) return [0, 1];
  const raw = max / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw) ?? raw;
  const ticks = [];
  for (let v = 0; v < max + step * 0.999; v += step) ticks.push(Number(v.toFixed(6)));
  return ticks;
}

function timeLabel(schedule, seconds) {
  if (schedule.start !== null) {
    const d = new Date(schedule.start + seconds * 1000);
    return `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`;
  }
  return seconds % 3600 === 0 ? `+${seconds / 3600} h` : `+${Math.round(seconds / 60)} min`;
}

function timeTicks(duration) {
  const steps = [300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200];
  const step = steps.find((s) => duration / s <= 8) ?? 86400;
  const ticks = [];
  for (let t = 0; t <= duration; t += step) ticks.push(t);
  return ticks;
}

const WIDTH = 640;
const HEIGHT = 260;
const PAD = { left: 56, right: 28, top: 16, bottom: 34 };

/** Draw the schedule into the <svg>; its data-* attributes hold what was drawn. */
export function drawSchedule(svg, schedule) {
  const points = stepPoints(schedule);
  const limits = points.map((p) => p[1]);
  const yTicks = niceTicks(Math.max(...limits, 0) * 1.1 || 1);
  const yMax = yTicks.at(-1);
  const x = (t) => PAD.left + (t / schedule.duration) * (WIDTH - PAD.left - PAD.right);
  const y = (v) => HEIGHT - PAD.bottom - (v / yMax) * (HEIGHT - PAD.top - PAD.bottom);
  const children = [];
  for (const v of yTicks) {
    children.push(
      h("svg:line", { class: "grid", x1: PAD.left, x2: WIDTH - PAD.right, y1: y(v), y2: y(v) }),
      h("svg:text", { class: "tick", x: PAD.left - 6, y: y(v) + 4, "text-anchor": "end" }, `${v}`),
    );
  }
  for (const t of timeTicks(schedule.duration)) {
    children.push(
      h("svg:line", { class: "axis", x1: x(t), x2: x(t), y1: HEIGHT - PAD.bottom, y2: HEIGHT - PAD.bottom + 4 }),
      h("svg:text", { class: "tick", x: x(t), y: HEIGHT - PAD.bottom + 17, "text-anchor": "middle" }, timeLabel(schedule, t)),
    );
  }
  children.push(
    h("svg:line", { class: "axis", x1: PAD.left, x2: WIDTH - PAD.right, y1: HEIGHT - PAD.bottom, y2: HEIGHT - PAD.bottom }),
    h("svg:line", { class: "axis", x1: PAD.left, x2: PAD.left, y1: PAD.top, y2: HEIGHT - PAD.bottom }),
    h("svg:text", { class: "label", x: 8, y: PAD.top + 2 }, schedule.unit),
  );
  if (points.length) {
    const line = points.map(([t, v], i) => `${i ? "L" : "M"}${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
    const area = `${line} L${x(points.at(-1)[0]).toFixed(1)},${y(0)} L${x(points[0][0]).toFixed(1)},${y(0)} Z`;
    children.push(h("svg:path", { class: "area", d: area }), h("svg:path", { class: "line", d: line }));
    // The value of each period, above its step.
    for (let i = 0; i < points.length; i += 2) {
      const [t0, v] = points[i];
      const t1 = points[i + 1][0];
      children.push(
        h("svg:text", { class: "label", x: (x(t0) + x(t1)) / 2, y: y(v) - 6, "text-anchor": "middle" }, `${v} ${schedule.unit}`),
      );
    }
  }
  svg.replaceChildren(...children);
  svg.dataset.unit = schedule.unit;
  svg.dataset.duration = String(schedule.duration);
  svg.dataset.start = schedule.start === null ? "" : new Date(schedule.start).toISOString();
  svg.dataset.periods = JSON.stringify(schedule.periods.map((p) => [p.start, p.limit]));
  svg.dataset.points = JSON.stringify(points);
}
