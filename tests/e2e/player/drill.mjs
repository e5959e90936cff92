// The player of the drill (tests/e2e/test_player.py): hls.js in headless Chromium (Debian's
// /usr/bin/chromium, driven by playwright-core; no browser download, no internet).
//
// Commands, one JSON object a line on stdin:
//   {"cmd": "open", "name": "gw", "url": "http://127.0.0.1:PORT/live/x/index.m3u8"}
//   {"cmd": "close", "name": "gw"}
//   {"cmd": "quit"}
// Events, one JSON object a line on stdout, each with "ev", "t" (Unix ms) and "name" (player):
//   ready | opened | playing (first frame) | waiting (stall) | resumed | sample (every 250 ms:
//   hls.latency, encoder-to-player latency by EXT-X-PROGRAM-DATE-TIME, currentTime, buffer) | hlserror (every Hls.Events.ERROR) | http (a response
//   >= 400) | reqfail (a request that got no response) | pageerror | closed | fatal
//
// The page is served by page.route under the stream's own origin (/__drill/...): same origin as
// the playlist, so the origin needs no CORS, and hls.js comes from node_modules. The route is
// removed once the page has loaded, so no media request goes through the interception.
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const HERE = dirname(fileURLToPath(import.meta.url));
const HLS_JS = readFileSync(join(HERE, "node_modules", "hls.js", "dist", "hls.min.js"));
const CHROMIUM = process.env.HW_CHROMIUM || "/usr/bin/chromium";

function emit(ev) {
  process.stdout.write(JSON.stringify({ t: Date.now(), ...ev }) + "\n");
}

const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>drill</title></head>
<body><video id="v" muted autoplay playsinline width="320" height="180"></video>
<script src="/__drill/hls.min.js"></script>
<script>
(function () {
  const src = new URLSearchParams(location.search).get("src");
  const v = document.getElementById("v");
  const send = (ev, extra) => window.drillEvent(JSON.stringify(Object.assign({ ev }, extra || {})));
  if (!Hls.isSupported()) { send("fatal", { why: "Hls.isSupported() is false (no MSE/codecs)" }); return; }
  // Live catch-up as players ship it (hls.js latency controller, up to 1.5x towards 3 target
  // durations behind the edge): the latency measured is then the origin's freshness over the
  // run, not the chance phase of the segment cycle at which the player happened to start.
  const hls = new Hls({ maxLiveSyncPlaybackRate: 1.5 });
  let started = false, stalled = false;
  v.addEventListener("playing", () => {
    if (!started) { started = true; send("playing", { ct: v.currentTime }); }
    else if (stalled) { stalled = false; send("resumed", { ct: v.currentTime }); }
  });
  v.addEventListener("waiting", () => {
    if (started && !stalled) { stalled = true; send("waiting", { ct: v.currentTime }); }
  });
  hls.on(Hls.Events.ERROR, (_e, d) => {
    const url = d.url || (d.context && d.context.url) || (d.frag && d.frag.url) || "";
    send("hlserror", { type: d.type, details: d.details, fatal: !!d.fatal, url,
                       code: d.response ? d.response.code : null,
                       reason: d.reason || (d.error && String(d.error)) || "" });
    if (!d.fatal) return;
    // A real player recovers what it can: the run goes on and the error is counted.
    if (d.type === Hls.ErrorTypes.NETWORK_ERROR) hls.startLoad();
    else if (d.type === Hls.ErrorTypes.MEDIA_ERROR) hls.recoverMediaError();
  });
  setInterval(() => {
    const b = v.buffered;
    const ahead = b.length ? b.end(b.length - 1) - v.currentTime : 0;
    const lat = hls.latency;
    const pd = hls.playingDate; // from EXT-X-PROGRAM-DATE-TIME: the encoder's wall clock
    send("sample", { ct: v.currentTime, ahead, lat: Number.isFinite(lat) ? lat : null,
                     wall: pd ? (Date.now() - pd.getTime()) / 1000 : null, paused: v.paused });
  }, 250);
  hls.loadSource(src);
  hls.attachMedia(v);
  v.play().catch((e) => send("pageerror", { msg: "play(): " + e }));
})();
</script></body></html>`;

const players = new Map(); // name -> { context, page }

async function open(browser, name, url) {
  const u = new URL(url);
  const context = await browser.newContext();
  const page = await context.newPage();
  page.on("response", (r) => {
    if (r.status() >= 400) emit({ ev: "http", name, status: r.status(), url: r.url() });
  });
  page.on("requestfailed", (r) => {
    emit({ ev: "reqfail", name, url: r.url(), why: (r.failure() || {}).errorText || "" });
  });
  page.on("pageerror", (e) => emit({ ev: "pageerror", name, msg: String(e) }));
  await page.exposeFunction("drillEvent", (s) => emit({ name, ...JSON.parse(s) }));
  const base = `${u.protocol}//${u.host}/__drill/`;
  await page.route(`${base}**`, (route) => {
    const p = new URL(route.request().url()).pathname;
    if (p === "/__drill/hls.min.js") {
      return route.fulfill({ status: 200, contentType: "text/javascript", body: HLS_JS });
    }
    return route.fulfill({ status: 200, contentType: "text/html", body: PAGE });
  });
  await page.goto(`${base}player.html?src=${encodeURIComponent(url)}`, { waitUntil: "load" });
  await page.unrouteAll();
  players.set(name, { context, page });
  emit({ ev: "opened", name, url });
}

async function close(name) {
  const p = players.get(name);
  if (!p) return;
  players.delete(name);
  await p.context.close();
  emit({ ev: "closed", name });
}

async function main() {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--autoplay-policy=no-user-gesture-required", "--mute-audio",
           "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
           "--disable-backgrounding-occluded-windows", "--disable-gpu"],
  });
  emit({ ev: "ready", version: browser.version() });
  const rl = createInterface({ input: process.stdin });
  for await (const line of rl) {
    if (!line.trim()) continue;
    let cmd;
    try {
      cmd = JSON.parse(line);
      if (cmd.cmd === "open") await open(browser, cmd.name, cmd.url);
      else if (cmd.cmd === "close") await close(cmd.name);
      else if (cmd.cmd === "quit") break;
      else emit({ ev: "fatal", why: `unknown command ${line}` });
    } catch (e) {
      emit({ ev: "fatal", name: cmd && cmd.name, why: String(e && e.stack ? e.stack : e) });
    }
  }
  for (const name of [...players.keys()]) await close(name);
  await browser.close();
}

main().catch((e) => {
  emit({ ev: "fatal", why: String(e && e.stack ? e.stack : e) });
  process.exit(1);
});
