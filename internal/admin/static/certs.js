// Certificates on sluice's dashboard (dashboard.js, which the page runs
// after this file): each certificate a rule serves, with its expiry and
// how close it is. It defines one name, sluiceCerts, and touches nothing
// else of the page but the card it is given.
// No libraries: everything here was written for sluice.
var sluiceCerts = (function () {
  'use strict';

  var DAY_MS = 86400000;
  var CERT_WARN_DAYS = 14; // a certificate closer to its expiry is a warning

  // certView is how a certificate shows at now: its expiry date (UTC), the
  // days left or since, and its style ('' | 'warn' | 'bad').
  function certView(c, now) {
    var at = Date.parse(c.not_after);
    var left = at - now;
    var days = Math.floor(Math.abs(left) / DAY_MS);
    var v = { date: new Date(at).toISOString().slice(0, 10), style: '' };
    if (left <= 0) {
      v.style = 'bad';
      v.left = 'expired ' + (days === 0 ? 'today' : days === 1 ? '1 day ago' : days + ' days ago');
    } else {
      v.style = days < CERT_WARN_DAYS ? 'warn' : '';
      v.left = days === 0 ? 'expires within a day' : days === 1 ? '1 day left' : days + ' days left';
    }
    return v;
  }

  // render lists a rule's certificates on its card (once per change), with
  // span and heading the dashboard's element makers.
  function render(card, certs, now, span, heading) {
    certs = certs || [];
    var views = certs.map(function (c) {
      return certView(c, now);
    });
    var key = JSON.stringify([certs, views]);
    if (key === card.certsKey) {
      return;
    }
    card.certsKey = key;
    var box = card.el.querySelector('.certs');
    box.textContent = '';
    box.hidden = certs.length === 0;
    if (!certs.length) {
      return;
    }
    box.appendChild(heading('Certificates'));
    var ul = document.createElement('ul');
    certs.forEach(function (c, i) {
      var v = views[i];
      var li = document.createElement('li');
      li.className = 'cert' + (v.style ? ' ' + v.style : '');
      li.dataset.cert = c.name;
      li.title = 'not after ' + c.not_after;
      li.appendChild(span(v.style ? 'dot ' + v.style : 'dot up', ''));
      li.appendChild(span('addr', c.name));
      li.appendChild(span('stat', c.route ? 'route ' + c.route : 'rule'));
      li.appendChild(span('stat', v.date));
      li.appendChild(span('left', v.left));
      ul.appendChild(li);
    });
    box.appendChild(ul);
  }

  return { render: render, certView: certView };
})();
