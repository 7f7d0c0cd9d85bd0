// pyro-dispatch dashboard: polls the admin JSON API once a second and draws it.
// With a token, open the page as /?token=TOKEN: every request sends it as
// "Authorization: Bearer TOKEN". Paths are relative, so the page also works behind a
// reverse proxy that serves the admin listener under a prefix.
(function () {
  "use strict";

  var POLL_MS = 1000;
  var query = new URLSearchParams(location.search);
  var token = query.get("token") || "";
  // ?seconds=N sets the charts' window (default 300, the most the server keeps).
  var seconds = Math.min(300, Math.max(10, parseInt(query.get("seconds"), 10) || 300));
  var headers = token ? { Authorization: "Bearer " + token } : {};

  // The page's state, exposed for tests and the browser console.
  var state = {
    updates: 0,          // stats answers drawn
    charts: {},          // uPlot instances by name
    stats: null,         // last /api/v1/stats
    groups: null,        // last /api/v1/groups
    error: "",           // the last failure, "" when the last poll worked
  };
  window.pyroDashboard = state;

  var prev = { time: 0, members: {}, objects: {} };

  function $(id) { return document.getElementById(id); }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function api(path, opts) {
    var o = Object.assign({ headers: headers, cache: "no-store" }, opts || {});
    return fetch(path, o).then(function (r) {
      var ct = r.headers.get("Content-Type") || "";
      var body = ct.indexOf("json") >= 0 ? r.json() : r.text();
      return body.then(function (b) {
        if (!r.ok) {
          var msg = (b && b.error) || String(b).trim() || r.statusText;
          var err = new Error(r.status + ": " + msg);
          err.status = r.status;
          throw err;
        }
        return b;
      });
    });
  }

  // ---- formatting ----
  function num(v, digits) {
    if (v === null || v === undefined || isNaN(v)) return "–";
    if (Math.abs(v) >= 1e6) return (v / 1e6).toFixed(1) + "M";
    if (Math.abs(v) >= 1e4) return (v / 1e3).toFixed(1) + "k";
    return digits ? v.toFixed(digits) : String(Math.round(v));
  }
  function ms(seconds) {
    if (!seconds) return "–";
    var m = seconds * 1000;
    return m >= 100 ? m.toFixed(0) + " ms" : m >= 1 ? m.toFixed(2) + " ms" : (m * 1000).toFixed(0) + " µs";
  }
  function bytes(n) {
    var u = ["B", "KiB", "MiB", "GiB", "TiB"], i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : n) + " " + u[i];
  }
  function pct(r) { return (r * 100).toFixed(r && r < 0.001 ? 3 : 1) + "%"; }
  function clock(t) { return new Date(t).toLocaleTimeString(); }
  function two(n) { return n < 10 ? "0" + n : String(n); }
  function hms(sec) { var d = new Date(sec * 1000); return two(d.getHours()) + ":" + two(d.getMinutes()) + ":" + two(d.getSeconds()); }

  // ---- charts ----
  function chartWidth(id) { return Math.max(260, $(id).clientWidth); }

  function makeChart(name, id, series, yfmt) {
    var opts = {
      width: chartWidth(id),
      height: 200,
      legend: { live: true },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true }, y: { range: function (u, min, max) { return [0, max > 0 ? max * 1.1 : 1]; } } },
      axes: [
        { stroke: "#8c94a6", grid: { stroke: "rgba(128,128,128,.15)" }, space: 70, values: function (u, vals) { return vals.map(hms); } },
        { stroke: "#8c94a6", grid: { stroke: "rgba(128,128,128,.15)" }, size: 56, values: function (u, vals) { return vals.map(yfmt); } },
      ],
      series: [{}].concat(series),
    };
    var empty = [[]].concat(series.map(function () { return []; }));
    state.charts[name] = new uPlot(opts, empty, $(id));
  }

  function initCharts() {
    var axis = function (v) { return num(v, v < 10 ? 1 : 0); };
    makeChart("calls", "c-calls", [
      { label: "calls/s", stroke: "#2f6fdf", fill: "rgba(47,111,223,.12)", width: 1.5 },
      { label: "errors/s", stroke: "#d64545", width: 1.5 },
    ], axis);
    makeChart("errors", "c-errors", [
      { label: "error rate %", stroke: "#d64545", fill: "rgba(214,69,69,.1)", width: 1.5, spanGaps: false },
    ], function (v) { return v.toFixed(v >= 10 ? 0 : v >= 1 ? 1 : 2); });
    makeChart("latency", "c-latency", [
      { label: "p50 ms", stroke: "#1f9d55", width: 1.5 },
      { label: "p99 ms", stroke: "#c98a00", width: 1.5 },
    ], function (v) { return v < 1 ? v.toFixed(2) : v.toFixed(v < 10 ? 1 : 0); });
    window.addEventListener("resize", function () {
      [["calls", "c-calls"], ["errors", "c-errors"], ["latency", "c-latency"]].forEach(function (p) {
        state.charts[p[0]].setSize({ width: chartWidth(p[1]), height: 200 });
      });
    });
  }

  function drawCharts(hist) {
    var t = [], calls = [], errs = [], rate = [], p50 = [], p99 = [];
    hist.forEach(function (p) {
      t.push(p.t);
      calls.push(p.calls);
      errs.push(p.errors);
      rate.push(p.calls ? 100 * p.errors / p.calls : null);
      p50.push(p.calls ? p.p50 * 1000 : null);
      p99.push(p.calls ? p.p99 * 1000 : null);
    });
    setData(state.charts.calls, [t, calls, errs]);
    setData(state.charts.errors, [t, rate]);
    setData(state.charts.latency, [t, p50, p99]);
  }

  // setData draws new data; unless the pointer is over the chart, the legend shows the
  // last second's values.
  function setData(u, data) {
    u.setData(data);
    if (u.cursor.left < 0 && data[0].length) u.setLegend({ idx: data[0].length - 1 });
  }

  // ---- tables ----
  // fill replaces the rows of a table's body: rows is a list of lists of cells, each a
  // string, a number, or {text, cls} / {node, cls}.
  function fill(tableId, rows, emptyId) {
    var tbody = $(tableId).tBodies[0];
    var trs = rows.map(function (cells) {
      var tr = el("tr");
      if (cells.key) tr.dataset.key = cells.key;
      cells.forEach(function (c) {
        var td = el("td");
        if (c !== null && typeof c === "object") {
          if (c.cls) td.className = c.cls;
          if (c.node) td.appendChild(c.node); else td.textContent = c.text;
        } else {
          td.textContent = c === undefined || c === null ? "" : String(c);
          if (typeof c === "number") td.className = "n";
        }
        tr.appendChild(td);
      });
      return tr;
    });
    tbody.replaceChildren.apply(tbody, trs);
    if (emptyId) $(emptyId).hidden = rows.length > 0;
  }

  function rateOf(map, key, total, dt) {
    var before = map[key];
    return before === undefined || dt <= 0 ? null : Math.max(0, total - before) / dt;
  }

  // ---- groups (with drain/enable buttons) ----
  function memberAction(group, addr, action, button) {
    if (action === "drain" && !window.confirm("Drain " + addr + " of group " + group + "? No new call goes to it until it is enabled.")) return;
    button.disabled = true;
    api("api/v1/groups/" + encodeURIComponent(group) + "/members/" + encodeURIComponent(addr) + "/" + action, { method: "POST" })
      .then(function () { return poll(); })
      .catch(function (e) { showProblem(action + " " + addr + ": " + e.message); })
      .finally(function () { button.disabled = false; });
  }

  function drawGroups(groups, stats, dt) {
    var byMember = {};
    ((stats && stats.members) || []).forEach(function (m) { byMember[m.group + "\u0000" + m.member] = m; });
    var box = $("groups");
    var nodes = groups.map(function (g) {
      var div = el("div", "group");
      div.dataset.group = g.name;
      var head = el("div", "group-head");
      head.appendChild(el("h3", null, g.name));
      head.appendChild(el("span", "muted", g.balance + (g.tls ? " · TLS" : "") + " · health check " + g.health));
      div.appendChild(head);
      var table = el("table");
      var thead = el("thead"), hr = el("tr");
      ["member", "state", "weight", "in flight", "calls/s", "calls", "errors", ""].forEach(function (h, i) {
        hr.appendChild(el("th", i >= 2 && i <= 6 ? "n" : null, h));
      });
      thead.appendChild(hr);
      table.appendChild(thead);
      var tbody = el("tbody");
      (g.members || []).forEach(function (m) {
        var key = g.name + "\u0000" + m.address;
        var mc = byMember[key] || { calls: 0, errors: 0 };
        var tr = el("tr");
        tr.dataset.member = m.address;
        tr.appendChild(el("td", "mono", m.address));
        var st = el("td", "state wrap");
        var cls = m.up ? "ok" : m.drained ? "warn" : "bad";
        st.appendChild(el("span", "badge " + cls, m.up ? "up" : m.drained ? "drained" : "out"));
        if (!m.up && m.status !== "drained") st.appendChild(el("span", "muted", " " + m.status));
        tr.appendChild(st);
        tr.appendChild(el("td", "n", m.weight));
        tr.appendChild(el("td", "n inflight", m.in_flight));
        tr.appendChild(el("td", "n", num(rateOf(prev.members, key, mc.calls, dt), 1)));
        tr.appendChild(el("td", "n", num(mc.calls)));
        tr.appendChild(el("td", "n", num(mc.errors)));
        var act = el("td");
        var action = m.drained ? "enable" : "drain";
        var b = el("button", "action", m.drained ? "Enable" : "Drain");
        b.dataset.action = action;
        b.addEventListener("click", function () { memberAction(g.name, m.address, action, b); });
        act.appendChild(b);
        tr.appendChild(act);
        tbody.appendChild(tr);
      });
      table.appendChild(tbody);
      div.appendChild(table);
      return div;
    });
    box.replaceChildren.apply(box, nodes);
  }

  // ---- the rest ----
  function drawTiles(s) {
    $("t-calls").textContent = num(s.last.calls);
    $("t-calls-sub").textContent = num(s.recent.calls_per_second, 1) + "/s over " + s.recent.seconds + " s";
    $("t-errors").textContent = pct(s.recent.error_ratio);
    $("t-errors-sub").textContent = num(s.recent.errors_per_second, 1) + "/s over " + s.recent.seconds + " s";
    $("t-p50").textContent = s.last.calls ? ms(s.last.p50) : "–";
    $("t-p99").textContent = s.last.calls ? ms(s.last.p99) : "–";
    $("t-sessions").textContent = num(s.sessions);
    $("t-sessions-sub").textContent = num(s.totals.connections_accepted) + " accepted";
    $("t-total").textContent = num(s.totals.calls);
    $("t-bytes").textContent = bytes(s.totals.request_bytes) + " in, " + bytes(s.totals.reply_bytes) + " out";
  }

  function drawPools(pools) {
    fill("pools", pools.map(function (p) {
      var occ = el("div", "occ");
      var track = el("div", "track"), f = el("div", "fill");
      var max = p.max_open * Math.max(p.handshakes, 1);
      f.style.width = Math.min(100, max ? 100 * p.open / max : 0) + "%";
      track.appendChild(f);
      occ.appendChild(track);
      occ.appendChild(el("span", null, p.open + " / " + max));
      return [p.listener, { text: p.member, cls: "mono" }, { node: occ }, p.in_use, p.idle, p.waiting, p.dials, p.dial_failures];
    }), "pools-empty");
  }

  function drawObjects(objs, dt) {
    var next = {};
    fill("objects", objs.map(function (o) {
      var key = o.listener + "\u0000" + o.object + "\u0000" + o.method;
      next[key] = o.calls;
      return [o.listener, { text: o.object, cls: "mono" }, { text: o.method, cls: "mono" },
        { text: num(rateOf(prev.objects, key, o.calls, dt), 1), cls: "n" }, { text: num(o.calls), cls: "n" }, { text: num(o.errors), cls: "n" }];
    }), "objects-empty");
    prev.objects = next;
  }

  function drawSlowest(calls) {
    fill("slowest", calls.slice(0, 10).map(function (c) {
      var what = c.object ? c.object + "." + c.method : "";
      return [clock(c.time), { text: (c.seconds * 1000).toFixed(2), cls: "n" }, c.listener, { text: c.member, cls: "mono" },
        { text: what, cls: "mono" }, c.outcome, { text: c.corr, cls: "mono" }];
    }), "slowest-empty");
  }

  function drawListeners(ls) {
    fill("listeners", ls.map(function (l) {
      return [l.name, { text: (l.addresses || []).join(", "), cls: "mono wrap" }, l.mode, l.tls || "no", l.serializers, l.hmac, l.clients];
    }));
  }

  function drawErrors(entries) {
    var rows = entries.slice(-10).reverse().map(function (e) {
      var f = Object.keys(e.fields || {}).map(function (k) { return k + "=" + e.fields[k]; }).join(" ");
      return [clock(e.time), { text: e.level, cls: e.level === "error" ? "bad" : "" }, { text: e.message, cls: "wrap" }, { text: f, cls: "mono wrap" }];
    });
    fill("errors", rows, "errors-empty");
  }

  function showProblem(msg) {
    var p = $("problem");
    p.hidden = !msg;
    p.textContent = msg || "";
  }

  var ticks = 0;
  function poll() {
    ticks++;
    var slow = ticks % 5 === 1; // listeners and errors change rarely: every 5 s
    var asks = [api("api/v1/stats?seconds=" + seconds), api("api/v1/groups"), api("api/v1/pools"),
      slow ? api("api/v1/listeners") : null, slow ? api("api/v1/errors") : null];
    var ready = fetch("readyz", { cache: "no-store" }).then(function (r) {
      return r.text().then(function (t) { return { ok: r.ok, text: t.trim() }; });
    });
    return Promise.all(asks.concat([ready])).then(function (res) {
      var s = res[0], now = Date.parse(s.time);
      var dt = prev.time ? (now - prev.time) / 1000 : 0;
      state.stats = s;
      state.groups = res[1];
      drawTiles(s);
      drawCharts(s.history);
      drawGroups(res[1], s, dt);
      drawPools(res[2]);
      drawObjects(s.objects, dt);
      drawSlowest(s.slowest);
      if (res[3]) drawListeners(res[3]);
      if (res[4]) drawErrors(res[4]);
      var r = res[5], badge = $("ready");
      badge.textContent = r.ok ? "ready" : "not ready: " + r.text;
      badge.className = "badge " + (r.ok ? "ok" : "bad");
      prev.time = now;
      prev.members = {};
      (s.members || []).forEach(function (m) { prev.members[m.group + "\u0000" + m.member] = m.calls; });
      $("status").textContent = "updated " + clock(now) + (s.metrics ? "" : " · metrics are off (no admin.listen)");
      state.updates++;
      state.error = "";
      showProblem("");
    }).catch(function (e) {
      state.error = e.message;
      var hint = e.status === 401 ? (token ? " (wrong token?)" : " (open this page as /?token=TOKEN)") : "";
      showProblem("cannot reach the admin API: " + e.message + hint);
      $("status").textContent = "stale";
    });
  }

  function loop() {
    var started = Date.now();
    poll().finally(function () {
      setTimeout(loop, Math.max(0, POLL_MS - (Date.now() - started)));
    });
  }

  function initWindow() {
    var sel = $("window");
    if (![60, 120, 300].includes(seconds)) sel.appendChild(el("option", null, seconds + " s")).value = String(seconds);
    sel.value = String(seconds);
    sel.addEventListener("change", function () {
      seconds = parseInt(sel.value, 10);
      query.set("seconds", String(seconds));
      history.replaceState(null, "", "?" + query.toString());
      poll();
    });
  }

  initWindow();
  initCharts();
  loop();
})();
