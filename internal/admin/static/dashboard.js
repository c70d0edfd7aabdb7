// The live dashboard of sluice's admin server. Every second it polls
// /api/v1/rules, /api/v1/connections and /healthz, turns counter deltas into
// rates averaged over the last RATE_WINDOW_MS (a bulk flow's bytes arrive in
// bursts, and a rate per poll jumped between 0 and its peak), keeps five
// minutes of history per rule and draws it on canvases. When /healthz says
// unhealthy, its reason is shown in the header and on the card of each rule
// it names.
// No libraries: everything here was written for sluice.
//
// With admin_token set, the token comes from the URL fragment (#token=...)
// or from sessionStorage, where the sign-in page left it, and is sent as
// "Authorization: Bearer TOKEN" with every request.
//
// For tests, each chart canvas exposes data-points (samples drawn) and
// data-peak (the largest value drawn), and <html> exposes data-polls (polls
// completed).
(function () {
  'use strict';

  var POLL_MS = 1000;
  var WINDOW_MS = 5 * 60 * 1000; // history kept and longest span drawn
  var MIN_SPAN_MS = 60 * 1000; // shortest span drawn, while history is young
  var TICK_STEPS_MS = [10000, 15000, 30000, 60000];
  var CONN_LIMIT = 500;
  var KEY = 'sluice-admin-token';
  var GAP_MS = 3 * POLL_MS; // samples further apart than this are not joined
  var RATE_WINDOW_MS = 5000; // rates are averaged over this long

  var token = new URLSearchParams(location.hash.slice(1)).get('token') || sessionStorage.getItem(KEY) || '';

  // ---------------------------------------------------------------- format

  var UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

  function fmtBytes(n) {
    var i = 0;
    while (Math.abs(n) >= 1024 && i < UNITS.length - 1) {
      n /= 1024;
      i++;
    }
    var digits = i === 0 ? 0 : Math.abs(n) < 10 ? 2 : Math.abs(n) < 100 ? 1 : 0;
    return n.toFixed(digits) + ' ' + UNITS[i];
  }

  function fmtRate(n) {
    return fmtBytes(n) + '/s';
  }

  // fmtAxisRate is fmtRate without trailing zeros, for round axis labels.
  function fmtAxisRate(n) {
    var i = 0;
    while (n >= 1024 && i < UNITS.length - 1) {
      n /= 1024;
      i++;
    }
    return parseFloat(n.toFixed(2)) + ' ' + UNITS[i] + '/s';
  }

  function fmtCount(n) {
    return Math.round(n).toLocaleString('en-US');
  }

  function fmtPerSec(n) {
    return (n > 0 && n < 10 ? n.toFixed(1) : fmtCount(n)) + '/s';
  }

  function fmtAge(ms) {
    var s = Math.max(0, Math.floor(ms / 1000));
    if (s < 60) {
      return s + 's';
    }
    var m = Math.floor(s / 60);
    if (m < 60) {
      return m + 'm ' + (s % 60) + 's';
    }
    var h = Math.floor(m / 60);
    if (h < 24) {
      return h + 'h ' + (m % 60) + 'm';
    }
    return Math.floor(h / 24) + 'd ' + (h % 24) + 'h';
  }

  // ------------------------------------------------------------------- api

  function api(path, method) {
    var headers = {};
    if (token) {
      headers.Authorization = 'Bearer ' + token;
    }
    return fetch(path, { method: method || 'GET', headers: headers, cache: 'no-store' }).then(function (res) {
      if (res.status === 401) {
        sessionStorage.removeItem(KEY);
        throw new Error('the admin server refused the token; reload the page to sign in again');
      }
      return res;
    });
  }

  function apiJSON(path) {
    return api(path).then(function (res) {
      if (!res.ok) {
        return res.json().then(function (body) {
          throw new Error(path + ': ' + (body.error || 'HTTP ' + res.status));
        });
      }
      return res.json();
    });
  }

  // ----------------------------------------------------------------- chart

  // Chart draws time series on a canvas: the history so far, at least the
  // last minute and at most WINDOW_MS, one line per series, the first one filled. fmt formats the y-axis labels; base is
  // 1024 for byte rates (ticks at round KiB, MiB) or 1 for counts.
  function Chart(canvas, series, fmt, base, floor) {
    this.canvas = canvas;
    this.series = series; // [{key: 'up', color: '--up'}]
    this.fmt = fmt;
    this.base = base;
    this.floor = floor; // smallest y maximum, so a flat zero line sits low
    this.hist = null;
    var self = this;
    if (window.ResizeObserver) {
      new ResizeObserver(function () {
        self.draw();
      }).observe(canvas);
    }
  }

  // niceMax returns a round maximum above v and the step between ticks.
  function niceMax(v, base, floor) {
    v = Math.max(v, floor);
    var unit = 1;
    if (base > 1) {
      while (v / unit >= base) {
        unit *= base;
      }
    }
    var raw = v / unit / 4;
    var mag = Math.pow(10, Math.floor(Math.log10(raw)));
    var steps = [1, 2, 2.5, 5, 10];
    var step = mag;
    for (var i = 0; i < steps.length; i++) {
      step = steps[i] * mag;
      if (step >= raw) {
        break;
      }
    }
    if (base === 1) {
      step = Math.max(1, Math.round(step));
    }
    step *= unit;
    return { max: Math.ceil(v / step) * step, step: step };
  }

  Chart.prototype.draw = function () {
    var c = this.canvas;
    var w = c.clientWidth;
    var h = c.clientHeight;
    if (!w || !h) {
      return;
    }
    var dpr = window.devicePixelRatio || 1;
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
      c.width = Math.round(w * dpr);
      c.height = Math.round(h * dpr);
    }
    var ctx = c.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    var css = getComputedStyle(document.documentElement);
    var hist = this.hist || { t: [] };
    var now = Date.now();
    var peak = 0;
    for (var s = 0; s < this.series.length; s++) {
      var vals = hist[this.series[s].key] || [];
      for (var i = 0; i < vals.length; i++) {
        peak = Math.max(peak, vals[i]);
      }
    }
    var scale = niceMax(peak, this.base, this.floor);
    var span = hist.t.length ? Math.min(WINDOW_MS, Math.max(MIN_SPAN_MS, now - hist.t[0])) : MIN_SPAN_MS;
    var box = { left: 64, right: w - 6, top: 6, bottom: h - 18, span: span };
    drawGrid(ctx, css, box, scale, this.fmt, now);
    for (var k = 0; k < this.series.length; k++) { // the first, filled, underneath
      var sr = this.series[k];
      drawLine(ctx, box, hist.t, hist[sr.key] || [], scale.max, now, css.getPropertyValue(sr.color).trim(), k === 0);
    }
    c.dataset.points = String(hist.t.length);
    c.dataset.peak = String(peak);
  };

  function xOf(box, t, now) {
    return box.right - ((now - t) / box.span) * (box.right - box.left);
  }

  function drawGrid(ctx, css, box, scale, fmt, now) {
    ctx.font = '11px system-ui, sans-serif';
    ctx.textBaseline = 'middle';
    ctx.lineWidth = 1;
    ctx.strokeStyle = css.getPropertyValue('--grid').trim();
    ctx.fillStyle = css.getPropertyValue('--muted').trim();
    ctx.textAlign = 'right';
    for (var v = 0; v <= scale.max + scale.step / 2; v += scale.step) {
      var y = Math.round(box.bottom - (v / scale.max) * (box.bottom - box.top)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(box.left, y);
      ctx.lineTo(box.right, y);
      ctx.stroke();
      ctx.fillText(fmt(v), box.left - 6, y);
    }
    ctx.textAlign = 'center';
    ctx.textBaseline = 'alphabetic';
    var step = TICK_STEPS_MS[TICK_STEPS_MS.length - 1];
    for (var k = 0; k < TICK_STEPS_MS.length; k++) {
      if (box.span / TICK_STEPS_MS[k] <= 6) {
        step = TICK_STEPS_MS[k];
        break;
      }
    }
    ctx.textAlign = 'left';
    var freeRight = Infinity; // labels go right to left; each must end before the last began
    for (var ago = 0; ago <= box.span; ago += step) {
      var x = Math.round(xOf(box, now - ago, now)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(x, box.top);
      ctx.lineTo(x, box.bottom);
      ctx.stroke();
      var label = ago === 0 ? 'now' : '\u2212' + fmtAgo(ago);
      var width = ctx.measureText(label).width;
      var left = Math.max(box.left, Math.min(x - width / 2, box.right - width));
      if (left + width + 3 <= freeRight) {
        ctx.fillText(label, left, box.bottom + 14);
        freeRight = left;
      }
    }
  }

  // fmtAgo labels a time axis tick: 30s, 1m, 1m30s.
  function fmtAgo(ms) {
    var s = Math.round(ms / 1000);
    if (s < 60) {
      return s + 's';
    }
    return Math.floor(s / 60) + 'm' + (s % 60 ? (s % 60) + 's' : '');
  }

  function drawLine(ctx, box, ts, vals, max, now, color, fill) {
    var n = Math.min(ts.length, vals.length);
    if (n === 0) {
      return;
    }
    var yOf = function (v) {
      return box.bottom - (v / max) * (box.bottom - box.top);
    };
    // Split into runs without gaps, each drawn (and filled) on its own.
    var start = 0;
    for (var i = 1; i <= n; i++) {
      if (i < n && ts[i] - ts[i - 1] <= GAP_MS) {
        continue;
      }
      ctx.beginPath();
      for (var j = start; j < i; j++) {
        var x = Math.max(box.left, xOf(box, ts[j], now));
        if (j === start) {
          ctx.moveTo(x, yOf(vals[j]));
        } else {
          ctx.lineTo(x, yOf(vals[j]));
        }
      }
      ctx.strokeStyle = color;
      ctx.lineWidth = 1.6;
      ctx.lineJoin = 'round';
      ctx.stroke();
      if (fill && i - start > 1) {
        ctx.lineTo(Math.max(box.left, xOf(box, ts[i - 1], now)), box.bottom);
        ctx.lineTo(Math.max(box.left, xOf(box, ts[start], now)), box.bottom);
        ctx.closePath();
        ctx.globalAlpha = 0.12;
        ctx.fillStyle = color;
        ctx.fill();
        ctx.globalAlpha = 1;
      }
      start = i;
    }
  }

  // ----------------------------------------------------------------- rules

  var cards = new Map(); // rule name → card state
  var template = document.getElementById('rule-card');
  var rulesBox = document.getElementById('rules');

  function newCard(name) {
    var el = template.content.firstElementChild.cloneNode(true);
    el.dataset.rule = name;
    el.querySelector('.name').textContent = name;
    var card = {
      el: el,
      samples: [], // counters over the last RATE_WINDOW_MS, see windowStart
      hist: { t: [], up: [], down: [], active: [], fresh: [] },
      backendsKey: '',
      bytes: new Chart(el.querySelector('.c-bytes'), [{ key: 'down', color: '--down' }, { key: 'up', color: '--up' }], fmtAxisRate, 1024, 1024),
      conns: new Chart(el.querySelector('.c-conns'), [{ key: 'active', color: '--active' }, { key: 'fresh', color: '--new' }], fmtCount, 1, 4),
    };
    card.bytes.hist = card.hist;
    card.conns.hist = card.hist;
    rulesBox.appendChild(el);
    return card;
  }

  // delta is b − a for counters, or b when the counter went back (a rule
  // removed and added again starts from zero).
  function delta(a, b) {
    return b >= a ? b - a : b;
  }

  // windowStart adds the sample v taken at t to samples, drops those no
  // longer needed, and returns the latest sample at least RATE_WINDOW_MS
  // old (or the oldest, while the window fills): the base of a rate
  // averaged over the window. It returns null for the first sample.
  function windowStart(samples, t, v) {
    samples.push({ t: t, v: v });
    while (samples.length > 2 && samples[1].t <= t - RATE_WINDOW_MS) {
      samples.shift();
    }
    return samples.length > 1 ? samples[0] : null;
  }

  // sample adds one poll of a rule's counters to its history and returns
  // the rates over the last RATE_WINDOW_MS (null on the first poll).
  function sample(card, c, now) {
    var base = windowStart(card.samples, now, c);
    if (!base) {
      return null;
    }
    var dt = (now - base.t) / 1000;
    var r = {
      up: delta(base.v.bytes_up, c.bytes_up) / dt,
      down: delta(base.v.bytes_down, c.bytes_down) / dt,
      fresh: delta(base.v.connections_total, c.connections_total) / dt,
      rejected: delta(base.v.rejected, c.rejected) / dt,
      active: c.active,
    };
    var h = card.hist;
    h.t.push(now);
    h.up.push(r.up);
    h.down.push(r.down);
    h.active.push(r.active);
    h.fresh.push(r.fresh);
    while (h.t.length && h.t[0] < now - WINDOW_MS) {
      h.t.shift();
      h.up.shift();
      h.down.shift();
      h.active.shift();
      h.fresh.shift();
    }
    return r;
  }

  function renderBackends(card, backends) {
    var key = JSON.stringify(backends);
    if (key === card.backendsKey) {
      return;
    }
    card.backendsKey = key;
    var ul = card.el.querySelector('.backends');
    ul.textContent = '';
    var up = 0;
    backends.forEach(function (b) {
      if (b.up) {
        up++;
      }
      var li = document.createElement('li');
      li.dataset.backend = b.address;
      li.appendChild(span(b.up ? 'dot up' : 'dot', ''));
      li.appendChild(span(b.up ? 'state up' : 'state', b.up ? 'up' : 'down'));
      li.appendChild(span('addr', b.address));
      li.appendChild(span('stat', 'weight ' + b.weight + (b.backup ? ' · backup' : '')));
      li.appendChild(span('stat', fmtCount(b.active) + ' active'));
      li.appendChild(span('stat', fmtCount(b.connect_errors) + ' connect errors'));
      ul.appendChild(li);
    });
    card.el.querySelector('.health-count').textContent = up + ' of ' + backends.length + ' backends up';
  }

  function span(cls, text) {
    var s = document.createElement('span');
    s.className = cls;
    s.textContent = text;
    return s;
  }

  function renderRules(rules, now) {
    var seen = new Set();
    var tot = { up: 0, down: 0, active: 0, fresh: 0, rejected: 0, bUp: 0, bAll: 0, rated: false };
    rules.forEach(function (rule) {
      seen.add(rule.name);
      var card = cards.get(rule.name);
      if (!card) {
        card = newCard(rule.name);
        cards.set(rule.name, card);
      }
      rulesBox.appendChild(card.el); // keeps config order
      card.el.querySelector('.proto').textContent = rule.protocol;
      card.el.querySelector('.route').textContent = rule.listen + ' \u2192 ' + rule.balance;
      var r = sample(card, rule.counters, now);
      if (r) {
        tot.rated = true;
        tot.up += r.up;
        tot.down += r.down;
        tot.fresh += r.fresh;
        tot.rejected += r.rejected;
        card.el.querySelector('.v-up').textContent = fmtRate(r.up);
        card.el.querySelector('.v-down').textContent = fmtRate(r.down);
        card.el.querySelector('.v-new').textContent = r.fresh < 10 ? r.fresh.toFixed(1) : fmtCount(r.fresh);
      }
      card.el.querySelector('.v-active').textContent = fmtCount(rule.counters.active);
      tot.active += rule.counters.active;
      renderBackends(card, rule.backends);
      rule.backends.forEach(function (b) {
        tot.bAll++;
        tot.bUp += b.up ? 1 : 0;
      });
      card.bytes.draw();
      card.conns.draw();
    });
    cards.forEach(function (card, name) {
      if (!seen.has(name)) {
        card.el.remove();
        cards.delete(name);
      }
    });
    document.getElementById('no-rules').hidden = rules.length > 0;
    renderTotals(tot);
  }

  function renderTotals(tot) {
    var set = function (id, text) {
      document.getElementById(id).textContent = text;
    };
    if (tot.rated) {
      set('t-up', fmtRate(tot.up));
      set('t-down', fmtRate(tot.down));
      set('t-new', fmtPerSec(tot.fresh));
      set('t-rejected', fmtPerSec(tot.rejected));
    }
    set('t-active', fmtCount(tot.active));
    set('t-backends', tot.bUp + ' / ' + tot.bAll);
    document.getElementById('t-backends').style.color = tot.bUp < tot.bAll ? 'var(--bad)' : '';
  }

  // ----------------------------------------------------------- connections

  var rows = new Map(); // connection id → row state
  var closed = new Map(); // id → time closed here, so a late poll does not bring it back
  var tbody = document.querySelector('#conns tbody');

  function newRow(c) {
    var tr = document.createElement('tr');
    tr.dataset.id = String(c.id);
    var cells = {};
    [['id', 'num'], ['rule', ''], ['proto', ''], ['client', 'addr'], ['backend', 'addr'],
      ['age', 'num'], ['up', 'num'], ['down', 'num'], ['rate', 'num']].forEach(function (d) {
      var td = document.createElement('td');
      td.className = d[1];
      cells[d[0]] = td;
      tr.appendChild(td);
    });
    cells.id.textContent = String(c.id);
    cells.rule.textContent = c.rule;
    cells.proto.textContent = c.proto;
    cells.client.textContent = c.client;
    cells.backend.textContent = c.backend;
    var btn = document.createElement('button');
    btn.type = 'button';
    btn.className = 'close';
    btn.textContent = 'Close';
    btn.title = 'Close connection ' + c.id;
    btn.addEventListener('click', function () {
      closeConnection(c.id, btn);
    });
    var td = document.createElement('td');
    td.className = 'num';
    td.appendChild(btn);
    tr.appendChild(td);
    return { tr: tr, cells: cells, samples: [] };
  }

  function closeConnection(id, btn) {
    btn.disabled = true;
    btn.textContent = 'Closing\u2026';
    api('/api/v1/connections/' + id, 'DELETE')
      .then(function (res) {
        if (res.ok || res.status === 404) {
          closed.set(id, Date.now());
          var row = rows.get(id);
          if (row) {
            row.tr.remove();
            rows.delete(id);
          }
          return;
        }
        return res.json().then(function (body) {
          throw new Error('close connection ' + id + ': ' + (body.error || 'HTTP ' + res.status));
        });
      })
      .catch(function (err) {
        btn.disabled = false;
        btn.textContent = 'Close';
        showError(err);
      });
  }

  function renderConnections(list, now) {
    var serverNow = Date.parse(list.now);
    var seen = new Set();
    closed.forEach(function (at, id) {
      if (now - at > 30000) {
        closed.delete(id);
      }
    });
    var conns = list.connections.filter(function (c) {
      return !closed.has(c.id);
    });
    conns.sort(function (a, b) {
      return b.id - a.id;
    });
    conns.forEach(function (c) {
      seen.add(c.id);
      var row = rows.get(c.id);
      if (!row) {
        row = newRow(c);
        rows.set(c.id, row);
      }
      var bytes = c.bytes_up + c.bytes_down;
      row.cells.age.textContent = fmtAge(serverNow - Date.parse(c.since));
      row.cells.up.textContent = fmtBytes(c.bytes_up);
      row.cells.down.textContent = fmtBytes(c.bytes_down);
      var base = windowStart(row.samples, now, bytes);
      if (base) {
        row.cells.rate.textContent = fmtRate(delta(base.v, bytes) / ((now - base.t) / 1000));
      }
      tbody.appendChild(row.tr); // newest first
    });
    rows.forEach(function (row, id) {
      if (!seen.has(id)) {
        row.tr.remove();
        rows.delete(id);
      }
    });
    document.getElementById('no-conns').hidden = conns.length > 0;
    document.getElementById('conn-note').textContent =
      list.total > list.connections.length ? 'showing ' + fmtCount(list.connections.length) + ' of ' + fmtCount(list.total) : '';
  }

  // ---------------------------------------------------------------- health

  // renderHealth shows /healthz's verdict, and when it is unhealthy its
  // reason: in the header, and each part that names a rule ('rule "web":
  // listen ...: use of closed file', parts joined by "; ") on that rule's card.
  function renderHealth(res, text) {
    var pill = document.getElementById('health');
    var reason = res.ok ? '' : text.trim();
    pill.dataset.state = res.ok ? 'ok' : 'bad';
    pill.textContent = res.ok ? 'healthy' : 'unhealthy';
    pill.title = reason;
    var header = document.getElementById('health-reason');
    header.textContent = reason;
    header.hidden = !reason;
    var byRule = new Map();
    reason.split('; ').forEach(function (part) {
      var m = /^rule "((?:[^"\\]|\\.)*)": (.*)$/.exec(part);
      if (m) {
        byRule.set(m[1], (byRule.has(m[1]) ? byRule.get(m[1]) + '; ' : '') + m[2]);
      }
    });
    cards.forEach(function (card, name) {
      var p = card.el.querySelector('.problem');
      p.textContent = byRule.get(name) || '';
      p.hidden = !byRule.has(name);
    });
  }

  // ------------------------------------------------------------------ loop

  var banner = document.getElementById('banner');

  function showError(err) {
    banner.hidden = false;
    banner.textContent = err.message;
  }

  var polls = 0;

  function poll() {
    var began = Date.now();
    var health = api('/healthz').then(function (res) {
      return res.text().then(function (text) {
        return { res: res, text: text };
      });
    });
    Promise.all([apiJSON('/api/v1/rules'), apiJSON('/api/v1/connections?limit=' + CONN_LIMIT), health])
      .then(function (got) {
        var now = Date.now();
        renderRules(got[0].rules, now);
        renderConnections(got[1], now);
        renderHealth(got[2].res, got[2].text);
        banner.hidden = true;
        document.getElementById('updated').textContent = 'updated ' + new Date(now).toLocaleTimeString();
        polls++;
        document.documentElement.dataset.polls = String(polls);
      })
      .catch(function (err) {
        var pill = document.getElementById('health');
        pill.dataset.state = 'bad';
        pill.textContent = 'unreachable';
        showError(err);
      })
      .then(function () {
        setTimeout(poll, Math.max(200, POLL_MS - (Date.now() - began)));
      });
  }

  document.getElementById('window-note').textContent = 'up to the last ' + WINDOW_MS / 60000 + ' minutes';
  document.getElementById('rate-note').textContent = 'rates averaged over ' + RATE_WINDOW_MS / 1000 + ' s';
  poll();
})();
