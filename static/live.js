// Live dashboard: on any fleet event from the websocket, ask htmx to refresh the node table.
(function () {
  const badge = document.getElementById("live");
  let delay = 1000;
  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/ws/events/`);
    ws.onopen = () => { delay = 1000; if (badge) badge.textContent = "live"; };
    ws.onmessage = (msg) => {
      document.body.dispatchEvent(new CustomEvent("fleet-event", { detail: JSON.parse(msg.data) }));
    };
    ws.onclose = () => {
      if (badge) badge.textContent = "reconnecting…";
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 30000);
    };
  }
  connect();
})();
