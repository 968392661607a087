// Model upload on the Models page: a resumable upload through the admin API (POST
// /api/v1/models/uploads, PUT each 8 MiB chunk at its offset, POST .../complete), with a progress
// bar. A chunk that fails is retried from the offset the server reports, so a broken connection
// loses nothing already sent.
(function () {
  const form = document.getElementById("upload");
  if (!form) return;
  const CHUNK = 8 * 1024 * 1024;
  const csrf = JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRFToken"];
  const bar = document.getElementById("upload-progress");
  const status = document.getElementById("upload-status");
  const say = (text, bad) => { status.textContent = text; status.className = bad ? "errors" : ""; };
  const detail = (body) => (typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail));

  async function api(method, url, body) {
    const r = await fetch(url, {
      method, credentials: "same-origin",
      headers: { "X-CSRFToken": csrf, "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const data = await r.json().catch(() => ({}));
    if (!r.ok) throw Object.assign(new Error(detail(data) || r.statusText), { status: r.status });
    return data;
  }

  function putChunk(id, offset, blob, total) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("PUT", `/api/v1/models/uploads/${id}?offset=${offset}`);
      xhr.setRequestHeader("X-CSRFToken", csrf);
      xhr.setRequestHeader("Content-Type", "application/octet-stream");
      xhr.upload.onprogress = (e) => { bar.value = (100 * (offset + e.loaded)) / total; };
      xhr.onload = () => {
        let body = {}; try { body = JSON.parse(xhr.responseText); } catch (err) { /* empty */ }
        if (xhr.status === 200) resolve(body.offset);
        else reject(Object.assign(new Error(detail(body) || xhr.statusText), { status: xhr.status }));
      };
      xhr.onerror = () => reject(new Error("the connection broke"));
      xhr.send(blob);
    });
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const file = form.file.files[0];
    if (!file) return;
    bar.hidden = false; bar.value = 0;
    try {
      const up = await api("POST", "/api/v1/models/uploads", { size: file.size, name: form.name.value, filename: file.name });
      let offset = up.offset, failures = 0;
      while (offset < file.size) {
        try {
          offset = await putChunk(up.id, offset, file.slice(offset, offset + CHUNK), file.size);
          failures = 0;
          say(`Uploading: ${Math.round((100 * offset) / file.size)} %`);
        } catch (err) {
          if (err.status && err.status !== 409 && err.status < 500) throw err;
          failures += 1;
          if (failures > 20) throw err;
          say(`${err.message}; resuming in a moment…`);
          await new Promise((r) => setTimeout(r, Math.min(1000 * failures, 10000)));
          offset = (await api("GET", `/api/v1/models/uploads/${up.id}`)).offset;
        }
      }
      say("Checking and registering the file…");
      const artifact = await api("POST", `/api/v1/models/uploads/${up.id}/complete`);
      bar.value = 100;
      say(`Registered ${artifact.name} ${artifact.variant}. Reloading…`);
      setTimeout(() => location.reload(), 800);
    } catch (err) {
      say(`Not registered: ${err.message}`, true);
    }
  });
})();
