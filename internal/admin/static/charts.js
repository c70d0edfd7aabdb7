// Charts and rates for sluice's dashboard (dashboard.js, which the page
// runs after this file): number formats, the time series drawn on a canvas
// (Chart), and rates averaged over the last RATE_WINDOW_MS from counter
// samples (a bulk flow's bytes arrive in bursts, and a rate per poll jumped
// between 0 and its peak). It defines one name, sluiceCharts, and touches
// nothing else of the page.
// No libraries: everything here was written for sluice.
//
// For tests, each chart canvas exposes data-points (samples drawn) and
// data-peak (the largest value drawn).
var sluiceCharts = (function () {
  'use strict';

  var POLL_MS = 1000; // how often the dashboard polls
  var WINDOW_MS = 5 * 60 * 1000; // history kept and longest span drawn
  var MIN_SPAN_MS = 60 * 1000; // shortest span drawn, while history is young
  var TICK_STEPS_MS = [10000, 15000, 30000, 60000];
  var GAP_MS = 3 * POLL_MS; // samples further apart than this are not joined
  var RATE_WINDOW_MS = 5000; // rates are averaged over this long

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
      drawLine(ctx, box, hist.t, hist[sr.key] || [], scale.max, now, css.getPropertyValue(sr.color).trim(), k === 0, hist.gap || GAP_MS);
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

  // drawLine joins samples at most gap ms apart.
  function drawLine(ctx, box, ts, vals, max, now, color, fill, gap) {
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
      if (i < n && ts[i] - ts[i - 1] <= gap) {
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

  // ----------------------------------------------------------------- rates

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
    record(card.hist, now, r);
    return r;
  }

  // record adds the rates r at t to a card's history h, and drops what is
  // older than WINDOW_MS.
  function record(h, now, r) {
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
  }

  // seed fills a card's history from the server's (GET /api/v1/history:
  // a rule's counters every intervalMs, oldest first), so that the charts
  // show the last minutes at once after the page (re)loads: the rate
  // between each two samples, drawn at the later one. Samples that far
  // apart are joined. The last sample becomes the base of the first
  // poll's rate.
  function seed(card, samples, intervalMs) {
    var h = card.hist;
    h.gap = Math.max(GAP_MS, 2 * intervalMs);
    for (var i = 1; i < samples.length; i++) {
      var a = samples[i - 1];
      var b = samples[i];
      var ta = Date.parse(a.t);
      var tb = Date.parse(b.t);
      if (!(tb > ta)) {
        continue;
      }
      var dt = (tb - ta) / 1000;
      record(h, tb, {
        up: delta(a.bytes_up, b.bytes_up) / dt,
        down: delta(a.bytes_down, b.bytes_down) / dt,
        fresh: delta(a.connections_total, b.connections_total) / dt,
        active: b.active,
      });
    }
    if (samples.length) {
      var last = samples[samples.length - 1];
      card.samples.push({ t: Date.parse(last.t), v: last });
    }
  }

  return {
    POLL_MS: POLL_MS,
    WINDOW_MS: WINDOW_MS,
    RATE_WINDOW_MS: RATE_WINDOW_MS,
    fmtBytes: fmtBytes,
    fmtRate: fmtRate,
    fmtAxisRate: fmtAxisRate,
    fmtCount: fmtCount,
    fmtPerSec: fmtPerSec,
    fmtAge: fmtAge,
    Chart: Chart,
    delta: delta,
    windowStart: windowStart,
    sample: sample,
    seed: seed,
  };
})();
