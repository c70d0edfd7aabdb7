// The live dashboard of sluice's admin server. On load it draws the last
// minutes the server kept (/api/v1/history); then every second it polls
// /api/v1/rules, /api/v1/connections, /healthz and /api/v1/status, keeps
// five minutes of history per rule and draws it, with rates averaged over
// the last RATE_WINDOW_MS (charts.js, which the page runs first, draws and
// rates), per rule and per backend. source.js shows in the header where
// the config comes from; in a fleet, fleet.js lists its instances.
// When /healthz says unhealthy, its reason is shown in the header and on
// the card of each rule it names.
// No libraries: everything here was written for sluice.
//
// With admin_token set, the token comes from the URL fragment (#token=...)
// or from sessionStorage, where the sign-in page left it, and is sent as
// "Authorization: Bearer TOKEN" with every request.
//
// For tests, <html> exposes data-polls (polls completed); see charts.js for
// the canvases.
(function () {
  'use strict';

  var C = sluiceCharts;
  var POLL_MS = C.POLL_MS;
  var WINDOW_MS = C.WINDOW_MS;
  var RATE_WINDOW_MS = C.RATE_WINDOW_MS;
  var Chart = C.Chart;
  var fmtBytes = C.fmtBytes;
  var fmtRate = C.fmtRate;
  var fmtAxisRate = C.fmtAxisRate;
  var fmtCount = C.fmtCount;
  var fmtPerSec = C.fmtPerSec;
  var fmtAge = C.fmtAge;
  var delta = C.delta;
  var windowStart = C.windowStart;
  var sample = C.sample;

  var CONN_LIMIT = 500;
  var KEY = 'sluice-admin-token';

  var token = new URLSearchParams(location.hash.slice(1)).get('token') || sessionStorage.getItem(KEY) || '';

  // ------------------------------------------------------------------- api

  // api sends a request; body, when given, is sent as JSON.
  function api(path, method, body) {
    var headers = {};
    if (token) {
      headers.Authorization = 'Bearer ' + token;
    }
    var init = { method: method || 'GET', headers: headers, cache: 'no-store' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    return fetch(path, init).then(function (res) {
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
      rows: new Map(), // backend rows by scope and address, see fillBackends
      bytes: new Chart(el.querySelector('.c-bytes'), [{ key: 'down', color: '--down' }, { key: 'up', color: '--up' }], fmtAxisRate, 1024, 1024),
      conns: new Chart(el.querySelector('.c-conns'), [{ key: 'active', color: '--active' }, { key: 'fresh', color: '--new' }], fmtCount, 1, 4),
    };
    card.bytes.hist = card.hist;
    card.conns.hist = card.hist;
    rulesBox.appendChild(el);
    return card;
  }

  // renderBackends lists a rule's backends, or for a routed rule its
  // routes (each with its matchers, connections and backends) and its
  // default route, and counts every backend of the rule in the header.
  function renderBackends(card, rule, now) {
    var routes = rule.routes || [];
    var key = JSON.stringify([shape(rule.backends), routes.map(function (rt) {
      return [rt.name, matchText(rt), rt.balance, rt.connections, shape(rt.backends)];
    }), rule.default_route_connections]);
    if (key !== card.backendsKey) {
      card.backendsKey = key;
      drawBackends(card, rule, routes);
    }
    updateBackends(card, rule, now);
  }

  // shape is what of each backend changes its row's layout: not its
  // counts, which updateBackends writes in place every poll.
  function shape(backends) {
    return backends.map(function (b) {
      return [b.address, b.state, b.up, b.health, b.weight, b.config_weight, b.backup];
    });
  }

  // updateBackends writes each backend's counts and its rates (bytes/s
  // and connections/s, averaged over RATE_WINDOW_MS of polls) into its row.
  function updateBackends(card, rule, now) {
    var seen = new Set();
    var each = function (scope, backends) {
      backends.forEach(function (b) {
        var id = scope + '\u0000' + b.address;
        var row = card.rows.get(id);
        if (!row) {
          return;
        }
        seen.add(id);
        row.active.textContent = fmtCount(b.active) + ' active';
        row.errors.textContent = fmtCount(b.connect_errors) + ' connect errors';
        var v = { up: b.bytes_up || 0, down: b.bytes_down || 0, conns: b.connections_total || 0 };
        var base = windowStart(row.samples, now, v);
        if (base) {
          var dt = (now - base.t) / 1000;
          var up = delta(base.v.up, v.up) / dt;
          var down = delta(base.v.down, v.down) / dt;
          var conns = delta(base.v.conns, v.conns) / dt;
          row.rate.textContent = '\u2191 ' + fmtRate(up) + ' \u2193 ' + fmtRate(down) + ' \u00b7 ' + fmtPerSec(conns) + ' new';
          row.li.dataset.rateUp = String(up);
          row.li.dataset.rateDown = String(down);
          row.li.dataset.rateConns = String(conns);
        }
      });
    };
    each('', rule.backends);
    (rule.routes || []).forEach(function (rt) {
      each(rt.name, rt.backends);
    });
    card.rows.forEach(function (row, id) {
      if (!seen.has(id)) {
        card.rows.delete(id);
      }
    });
  }

  // drawBackends lays out a rule's backends, or its routes' and its
  // default route's.
  function drawBackends(card, rule, routes) {
    var ul = card.el.querySelector('.backends');
    var box = card.el.querySelector('.routes');
    var base = '/api/v1/rules/' + encodeURIComponent(rule.name);
    fillBackends(card, '', ul, routes.length ? [] : rule.backends, base);
    ul.hidden = routes.length > 0;
    box.textContent = '';
    box.hidden = routes.length === 0;
    if (routes.length) {
      box.appendChild(heading('Routes'));
      routes.forEach(function (rt) {
        var el = routeBlock(card, rt.name, rt.name, matchText(rt), rt.balance + ' \u00b7 ' + fmtConns(rt.connections), rt.backends,
          base + '/routes/' + encodeURIComponent(rt.name));
        el.dataset.route = rt.name;
        box.appendChild(el);
      });
      var def = routeBlock(card, '', 'default route', rule.backends.length ? 'clients no route takes' : 'none: clients no route takes are refused',
        fmtConns(rule.default_route_connections || 0), rule.backends, base);
      def.classList.add('default-route');
      box.appendChild(def);
    }
    var all = allBackends(rule);
    var up = all.filter(function (b) {
      return b.up;
    }).length;
    card.el.querySelector('.health-count').textContent = up + ' of ' + all.length + ' backends up';
  }

  // allBackends returns the backends of a rule and of its routes.
  function allBackends(rule) {
    return (rule.routes || []).reduce(function (all, rt) {
      return all.concat(rt.backends);
    }, rule.backends);
  }

  // fillBackends lists backends, each with its health, admin state, weight
  // and counts, and buttons that set its state through base (the API path
  // of the rule's or route's backends). Each row is kept in card.rows by
  // scope (the route's name, or '' for the rule's own) and address, for
  // updateBackends; a row redrawn keeps its rate samples.
  function fillBackends(card, scope, ul, backends, base) {
    ul.textContent = '';
    backends.forEach(function (b) {
      var id = scope + '\u0000' + b.address;
      var old = card.rows.get(id);
      var li = document.createElement('li');
      li.dataset.backend = b.address;
      li.dataset.state = b.state;
      var health = b.health || (b.up ? 'up' : 'down');
      li.appendChild(span(health === 'up' ? 'dot up' : 'dot ' + health, ''));
      li.appendChild(span(health === 'up' ? 'state up' : 'state ' + health, health));
      li.appendChild(span('addr', b.address));
      li.appendChild(span('admin-state ' + b.state, b.state));
      var weight = 'weight ' + b.weight + (b.weight !== b.config_weight ? ' (file ' + b.config_weight + ')' : '');
      li.appendChild(span('stat', weight + (b.backup ? ' \u00b7 backup' : '')));
      var row = { li: li, samples: old ? old.samples : [] };
      row.active = li.appendChild(span('stat', fmtCount(b.active) + ' active'));
      row.errors = li.appendChild(span('stat', fmtCount(b.connect_errors) + ' connect errors'));
      row.rate = li.appendChild(span('stat rate', ''));
      card.rows.set(id, row);
      li.appendChild(span('spacer', ''));
      [['drain', 'Drain'], ['maint', 'Maint'], ['ready', 'Ready']].forEach(function (st) {
        if (st[0] !== b.state) {
          li.appendChild(stateButton(base, b.address, st[0], st[1]));
        }
      });
      ul.appendChild(li);
    });
  }

  var STATE_WORDS = {
    drain: 'take no new connections (live ones go on)',
    maint: 'take no new connections and stop its health checks (live ones go on)',
    ready: 'take new connections again',
  };

  // stateButton is a button that, once confirmed, sets the backend at
  // address to state.
  function stateButton(base, address, state, label) {
    var btn = document.createElement('button');
    btn.type = 'button';
    btn.className = 'set-state';
    btn.dataset.state = state;
    btn.textContent = label;
    btn.title = label + ' ' + address;
    btn.addEventListener('click', function () {
      if (!window.confirm(label + ' backend ' + address + '?\nIt will ' + STATE_WORDS[state] + '.')) {
        return;
      }
      btn.disabled = true;
      api(base + '/backends/' + encodeURIComponent(address), 'PUT', { state: state })
        .then(function (res) {
          if (!res.ok) {
            return res.json().then(function (body) {
              throw new Error(label + ' ' + address + ': ' + (body.error || 'HTTP ' + res.status));
            });
          }
          // The next poll shows the new state and redraws the buttons.
        })
        .catch(function (err) {
          btn.disabled = false;
          showError(err);
        });
    });
    return btn;
  }

  // routeBlock is one route: a line with its name, what it matches and
  // stat, then its backends (or "no backends"), whose rows are kept under
  // scope (see fillBackends).
  function routeBlock(card, scope, name, match, stat, backends, base) {
    var el = document.createElement('div');
    el.className = 'rt';
    var head = document.createElement('div');
    head.className = 'rt-head';
    head.appendChild(span('rt-name', name));
    head.appendChild(span('rt-match', match));
    head.appendChild(span('spacer', ''));
    head.appendChild(span('muted', stat));
    el.appendChild(head);
    var ul = document.createElement('ul');
    ul.className = 'backends';
    fillBackends(card, scope, ul, backends, base);
    if (!backends.length) {
      var li = document.createElement('li');
      li.className = 'muted';
      li.textContent = 'no backends';
      ul.appendChild(li);
    }
    el.appendChild(ul);
    return el;
  }

  // matchText says in short what a route matches: "sni a.example, *.example.org · alpn h2".
  function matchText(rt) {
    var parts = [];
    [['sni', 'sni'], ['alpn', 'alpn'], ['http_host', 'host'], ['detect', 'detect']].forEach(function (m) {
      if (rt[m[0]] && rt[m[0]].length) {
        parts.push(m[1] + ' ' + rt[m[0]].join(', '));
      }
    });
    return parts.join(' \u00b7 ') || 'any client';
  }

  function fmtConns(n) {
    return fmtCount(n) + (n === 1 ? ' connection' : ' connections');
  }

  function heading(text) {
    var h = document.createElement('h4');
    h.textContent = text;
    return h;
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
      // queue_length is there for a rule with a queue (queue_timeout).
      card.el.querySelector('.route').textContent = rule.listen + ' \u2192 ' + rule.balance +
        (rule.queue_length === undefined ? '' : ' \u00b7 ' + fmtCount(rule.queue_length) + ' queued');
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
      renderBackends(card, rule, now);
      sluiceCerts.render(card, rule.certificates, now, span, heading);
      allBackends(rule).forEach(function (b) {
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
    Promise.all([apiJSON('/api/v1/rules'), apiJSON('/api/v1/connections?limit=' + CONN_LIMIT), health, apiJSON('/api/v1/status')])
      .then(function (got) {
        var now = Date.now();
        renderRules(got[0].rules, now);
        renderConnections(got[1], now);
        renderHealth(got[2].res, got[2].text);
        sluiceSource.render(got[3]);
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

  // loadHistory draws what the server kept of the last minutes (GET
  // /api/v1/history) before the first poll, so a reloaded page's charts
  // go on where they were. Without it the charts start empty.
  function loadHistory() {
    return apiJSON('/api/v1/history')
      .then(function (got) {
        Object.keys(got.rules || {}).forEach(function (name) {
          var card = cards.get(name);
          if (!card) {
            card = newCard(name);
            cards.set(name, card);
          }
          C.seed(card, got.rules[name], got.interval_ms);
          card.bytes.draw();
          card.conns.draw();
        });
      })
      .catch(function (err) {
        showError(err);
      });
  }

  document.getElementById('window-note').textContent = 'up to the last ' + WINDOW_MS / 60000 + ' minutes';
  document.getElementById('rate-note').textContent = 'rates averaged over ' + RATE_WINDOW_MS / 1000 + ' s';
  loadHistory().then(poll);
  sluiceFleet.start(api, fmtAge);
})();
