// The dashboard: who is logged in, the catalog, the live feed, and one view per section.
import { AccountView } from "./account.js";
import { get } from "./api.js";
import { ChargersView } from "./chargers.js";
import { ConfigView } from "./config.js";
import { $, $$ } from "./dom.js";
import { InjectView } from "./inject.js";
import { ChargerStore, LiveFeed } from "./live.js";
import { SmartView } from "./smart.js";
import { TrafficView } from "./traffic.js";

const VIEWS = ["chargers", "traffic", "inject", "smart", "config", "account"];
const RELATIVE_TIMES_MS = 30_000;

function route() {
  const name = location.hash.replace(/^#/, "") || "chargers";
  const view = VIEWS.includes(name) ? name : "chargers";
  for (const v of VIEWS) $(`#view-${v}`).hidden = v !== view;
  for (const link of $$("#nav a")) {
    if (link.dataset.view === view) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.body.dataset.view = view;
}

function go(view) {
  if (location.hash !== `#${view}`) location.hash = view;
  else route();
  scrollTo(0, 0);
}

async function main() {
  route();
  addEventListener("hashchange", route);
  $("#logout").addEventListener("click", async () => {
    await fetch("/logout", { method: "POST", credentials: "same-origin" });
    location.replace("/login");
  });

  const [me, catalog] = await Promise.all([get("/dashboard/me"), get("/dashboard/catalog")]);
  $("#who").textContent = me.data?.user ?? "";

  const store = new ChargerStore();
  const feed = new LiveFeed(store, $("#live-status"));
  const actionNames = [
    ...new Set(Object.values(catalog.data.versions).flatMap((v) => v.actions)),
    "BootNotification", "StatusNotification", "Heartbeat", "Authorize", "StartTransaction",
    "StopTransaction", "MeterValues", "TransactionEvent",
    "connected", "disconnected", "replaced", "upstream_up", "upstream_down", "replayed", "replay_rejected",
  ].sort();

  const traffic = new TrafficView(feed, store);
  const inject = new InjectView(store, catalog.data);
  const smart = new SmartView(store);
  const chargers = new ChargersView(store, feed, {
    traffic: (cp) => {
      traffic.showCharger(cp);
      go("traffic");
    },
    inject: (cp) => {
      inject.showCharger(cp);
      go("inject");
    },
    smart: (cp) => {
      smart.showCharger(cp);
      go("smart");
    },
  });
  chargers.init();
  traffic.init(actionNames);
  inject.init();
  smart.init();
  new ConfigView().init();
  new AccountView(me.data?.user ?? "admin").init();
  feed.start();
  setInterval(() => chargers.renderAll(), RELATIVE_TIMES_MS); // "3 min ago" stays true
  document.body.dataset.ready = "true";
}

main();
