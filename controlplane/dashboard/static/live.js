// Live dashboard. One websocket per page; the server only subscribes it to fleets the person may
// see. An element that wants updates says so:
//   data-live="node. approval."   event-name prefixes it cares about
//   data-live-node="<uuid>"       only events about this node
//   hx-trigger="live"             what to do: usually an hx-get of its own partial
// Events are coalesced per element (at most one refresh per data-live-throttle ms, default 1000,
// the last one always runs), so a burst of reports costs one request per element, not one each.
// After a reconnect every live element refreshes once (resync without a reload).
// <time data-age> elements say how old their value is and turn stale after data-stale-after s.
(function () {
  const socket = document.getElementById("socket");
  const announce = document.getElementById("announce");
  let delay = 1000;
  let failures = 0;
  let everOpen = false;
  const timers = new WeakMap();

  function setState(state) {
    if (!socket) return;
    socket.dataset.state = state;
    socket.querySelector(".label").textContent = state;
  }

  function refresh(el) {
    if (timers.has(el)) { el.dataset.livePending = "1"; return; }
    const wait = Number(el.dataset.liveThrottle || 1000);
    htmx.trigger(el, "live");
    timers.set(el, setTimeout(function again() {
      timers.delete(el);
      if (el.dataset.livePending) { delete el.dataset.livePending; refresh(el); }
    }, wait));
  }

  function matches(el, payload) {
    if (el.dataset.liveNode && el.dataset.liveNode !== payload.node) return false;
    if (el.dataset.liveFleet && el.dataset.liveFleet !== String(payload.fleet)) return false;
    return el.dataset.live.split(/\s+/).some((p) => p && payload.event.startsWith(p));
  }

  function onEvent(payload) {
    document.querySelectorAll("[data-live]").forEach((el) => {
      if (matches(el, payload)) refresh(el);
    });
    if (payload.event === "approval.requested" && announce) {
      announce.textContent = `A tool call (${payload.tool}) is waiting for approval.`;
    }
    document.dispatchEvent(new CustomEvent("fleet-event", { detail: payload }));
  }

  // Access follows the person, live (docs/permissions.md): a frame {"access": {code, detail}}
  // says why the socket was re-scoped or is about to close; a close with 4401 (session or token
  // gone, account deactivated) or 4403 (no fleet left) ends live updates: no reconnect loop.
  const ENDED = {
    4401: "Live updates stopped: your session ended. Log in again.",
    4403: "Live updates stopped: you no longer have access to any fleet.",
  };
  let endedBecause = "";

  function notify(text) {
    let box = document.getElementById("live-notice");
    if (!box) {
      box = document.createElement("p");
      box.id = "live-notice";
      box.className = "notice";
      box.setAttribute("role", "status");
      (document.getElementById("main") || document.body).prepend(box);
    }
    box.textContent = text;
  }

  function onAccess(access) {
    if (access.code === "access_revoked") endedBecause = `Live updates stopped: ${access.detail}`;
    else notify(access.detail);
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/ws/events/`);
    ws.onopen = () => {
      delay = 1000; failures = 0;
      setState("live");
      if (everOpen) document.querySelectorAll("[data-live]").forEach(refresh);  // resync
      everOpen = true;
    };
    ws.onmessage = (msg) => {
      const frame = JSON.parse(msg.data);
      if (frame.access) onAccess(frame.access);
      (frame.events || []).forEach(onEvent);  // coalesced frames
    };
    ws.onclose = (e) => {
      if (ENDED[e.code]) {  // refused or closed for access: say why, do not retry
        setState("closed");
        notify(endedBecause || ENDED[e.code]);
        return;
      }
      failures += 1;
      setState(failures > 3 || !navigator.onLine ? "offline" : "reconnecting");
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 30000);
    };
  }

  function ago(seconds) {
    if (seconds < 60) return `${Math.max(0, Math.round(seconds))} s ago`;
    if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
    if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
    return `${Math.round(seconds / 86400)} d ago`;
  }

  function tick() {
    const now = Date.now();
    document.querySelectorAll("time[data-age]").forEach((t) => {
      const age = (now - Date.parse(t.getAttribute("datetime"))) / 1000;
      const text = (t.dataset.prefix || "") + ago(age);
      if (t.textContent !== text) t.textContent = text;
      const limit = Number(t.dataset.staleAfter || 0);
      t.classList.toggle("stale", limit > 0 && age > limit);
      if (limit > 0) t.title = age > limit ? "stale: older than expected" : "";
    });
  }

  connect();
  tick();
  setInterval(tick, 1000);
})();
