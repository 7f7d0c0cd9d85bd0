"use strict";
// The home page of the HTTP gateway: pick an object and a method, enter keyword
// arguments and call it through the gateway. Everything from the name server is put
// on the page with textContent or as option values, never as HTML.
(() => {
  const $ = (id) => document.getElementById(id);
  const keyed = document.body.dataset.keyed === "true";
  const objects = JSON.parse($("pyro-objects").textContent) || [];
  const state = (window.pyroGateway = { objects, calls: 0, last: null, error: "" });

  const byName = (name) => objects.find((o) => o.name === name);
  const headers = () => {
    const h = {};
    if (keyed && $("key").value !== "") h["X-Pyro-Gateway-Key"] = $("key").value;
    return h;
  };
  const path = (name, method) => "/pyro/" + encodeURIComponent(name) + "/" + encodeURIComponent(method);

  function option(value, label) {
    const o = document.createElement("option");
    o.value = value;
    o.textContent = label;
    return o;
  }

  function fillObjects() {
    const sel = $("object");
    const keep = sel.value;
    sel.replaceChildren();
    for (const o of objects) sel.append(option(o.name, o.name));
    if (keep && byName(keep)) sel.value = keep;
    fillMethods();
  }

  function fillMethods() {
    const sel = $("method");
    const keep = sel.value;
    sel.replaceChildren();
    const o = byName($("object").value);
    if (!o || !o.loaded) {
      const none = option("", o && o.error ? "(no metadata: " + o.error + ")" : keyed ? "(enter the key and load the methods)" : "(none)");
      sel.append(none);
      sel.disabled = true;
      return;
    }
    sel.disabled = false;
    for (const m of o.methods) sel.append(option(m, o.oneway.includes(m) ? m + " (oneway)" : m));
    for (const a of o.attributes) sel.append(option(a, a + " (attribute)"));
    if (keep && [...sel.options].some((x) => x.value === keep)) sel.value = keep;
  }

  // The table row of an object, after its metadata came through the key.
  function fillRow(o) {
    const row = [...document.querySelectorAll("tr[data-object]")].find((r) => r.dataset.object === o.name);
    if (!row) return;
    row.querySelectorAll("td:not(.name)").forEach((td) => td.remove());
    const cell = (cls, list) => {
      const td = document.createElement("td");
      td.className = cls;
      for (const x of list) {
        const c = document.createElement("code");
        c.textContent = x;
        td.append(c, " ");
      }
      row.append(td);
    };
    if (o.loaded) {
      cell("methods", o.methods);
      cell("attributes", o.attributes);
    } else {
      const td = document.createElement("td");
      td.className = "error";
      td.colSpan = 2;
      td.textContent = o.error;
      row.append(td);
    }
  }

  // loadMeta asks the gateway for the $meta of every object, with the key.
  async function loadMeta() {
    await Promise.all(objects.map(async (o) => {
      try {
        const r = await fetch(path(o.name, "$meta"), { headers: headers(), cache: "no-store" });
        const text = await r.text();
        if (r.ok) {
          const m = JSON.parse(text);
          Object.assign(o, { methods: m.methods.slice().sort(), attributes: m.attributes.slice().sort(), loaded: true, error: "" });
        } else {
          Object.assign(o, { loaded: false, error: r.status + " " + text });
        }
      } catch (e) {
        Object.assign(o, { loaded: false, error: String(e) });
      }
      fillRow(o);
    }));
    fillMethods();
  }

  function addKwarg(name, value) {
    const row = document.createElement("div");
    row.className = "kwarg";
    const n = document.createElement("input");
    n.type = "text";
    n.className = "kw-name";
    n.placeholder = "name";
    n.value = name || "";
    const v = document.createElement("input");
    v.type = "text";
    v.className = "kw-value";
    v.placeholder = "value";
    v.value = value || "";
    const del = document.createElement("button");
    del.type = "button";
    del.textContent = "Remove";
    del.addEventListener("click", () => row.remove());
    row.append(n, "=", v, del);
    $("kwarg-rows").append(row);
    return row;
  }

  function show(status, corr, body) {
    $("response").hidden = false;
    const st = $("resp-status");
    st.textContent = status;
    st.className = typeof status === "number" && status >= 200 && status < 300 ? "status-ok" : "status-bad";
    $("resp-corr").textContent = corr || "(none)";
    let shown = body;
    if (body !== "") {
      try {
        shown = JSON.stringify(JSON.parse(body), null, 2);
      } catch (e) {
        // not JSON: shown as it is
      }
    } else {
      shown = "(empty body)";
    }
    $("resp-body").textContent = shown;
  }

  async function call(ev) {
    ev.preventDefault();
    const name = $("object").value;
    const method = $("method").value;
    if (!name || !method) {
      show("-", "", "pick an object and a method first");
      return;
    }
    const params = new URLSearchParams();
    for (const row of document.querySelectorAll("#kwarg-rows .kwarg")) {
      const k = row.querySelector(".kw-name").value;
      if (k !== "") params.append(k, row.querySelector(".kw-value").value);
    }
    const h = headers();
    h["Content-Type"] = "application/x-www-form-urlencoded";
    if ($("oneway").checked) h["X-Pyro-Options"] = "oneway";
    const corr = $("corr").value.trim();
    if (corr !== "") h["X-Pyro-Correlation-Id"] = corr;
    $("call").disabled = true;
    try {
      const r = await fetch(path(name, method), { method: "POST", headers: h, body: params.toString(), cache: "no-store" });
      const body = await r.text();
      const got = r.headers.get("X-Pyro-Correlation-Id") || "";
      state.last = { status: r.status, correlationId: got, body };
      show(r.status, got, body);
    } catch (e) {
      state.last = { status: 0, correlationId: "", body: String(e) };
      show("request failed", "", String(e));
    } finally {
      state.calls++;
      $("call").disabled = false;
    }
  }

  $("object").addEventListener("change", fillMethods);
  $("add-kwarg").addEventListener("click", () => addKwarg().querySelector(".kw-name").focus());
  $("call-form").addEventListener("submit", call);
  if (keyed) {
    $("load-meta").addEventListener("click", loadMeta);
    $("key").addEventListener("keydown", (ev) => {
      if (ev.key === "Enter") {
        ev.preventDefault();
        loadMeta();
      }
    });
  }
  addKwarg();
  fillObjects();
  state.ready = true;
})();
