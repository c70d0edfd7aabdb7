// The fleet panel of sluice's dashboard (dashboard.js, which the page runs
// after this file, starts it): every live instance of the fleet this
// sluice is in (sluice --etcd), from GET /api/v1/fleet, which reads the
// instances/ keys in etcd. It asks once on load; not in a fleet, the panel
// stays hidden and it asks no more. In a fleet it asks every FLEET_MS.
// It defines one name, sluiceFleet, and touches nothing of the page but
// the #fleet section.
// No libraries: everything here was written for sluice.
//
// For tests, <html> exposes data-fleet-polls (answers handled).
var sluiceFleet = (function () {
  'use strict';

  var FLEET_MS = 2000;

  function cell(cls, text) {
    var td = document.createElement('td');
    td.className = cls;
    td.textContent = text;
    return td;
  }

  // row is one instance's line; newest is the highest revision any
  // instance runs, self this instance's name.
  function row(inst, newest, self, fmtAge) {
    var tr = document.createElement('tr');
    tr.dataset.instance = inst.name;
    var cls = [];
    if (inst.name === self) {
      cls.push('self');
    }
    if (inst.revision < newest) {
      cls.push('behind');
    }
    if (!inst.healthy) {
      cls.push('unhealthy');
    }
    tr.className = cls.join(' ');
    var name = cell('name addr', inst.name);
    if (inst.name === self) {
      var me = document.createElement('span');
      me.className = 'badge';
      me.textContent = 'this one';
      name.appendChild(me);
    }
    tr.appendChild(name);
    tr.appendChild(cell('version', inst.version));
    tr.appendChild(cell('revision num', String(inst.revision)));
    var health = cell('health', inst.healthy ? 'healthy' : 'unhealthy');
    tr.appendChild(health);
    var err = cell('last-error', inst.last_error || '');
    err.title = inst.last_error || '';
    tr.appendChild(err);
    tr.appendChild(cell('age num', fmtAge(inst.age_seconds * 1000)));
    return tr;
  }

  // render draws the answer of GET /api/v1/fleet, once per change.
  function render(section, got, fmtAge) {
    var list = got.instances || [];
    var newest = list.reduce(function (m, i) {
      return Math.max(m, i.revision);
    }, 0);
    var key = JSON.stringify(got);
    if (key === section.fleetKey) {
      return;
    }
    section.fleetKey = key;
    var body = section.querySelector('tbody');
    body.textContent = '';
    list.forEach(function (inst) {
      body.appendChild(row(inst, newest, got.self, fmtAge));
    });
    var unhealthy = list.filter(function (i) {
      return !i.healthy;
    }).length;
    var behind = list.filter(function (i) {
      return i.revision < newest;
    }).length;
    section.querySelector('.fleet-note').textContent = list.length + (list.length === 1 ? ' instance' : ' instances') +
      ', config revision ' + newest + (behind ? ', ' + behind + ' behind' : '') +
      (unhealthy ? ', ' + unhealthy + ' unhealthy' : '');
  }

  // start asks GET /api/v1/fleet through api (dashboard.js's, which sends
  // the token) and keeps the panel current while this sluice is in a fleet.
  function start(api, fmtAge) {
    var section = document.getElementById('fleet');
    var polls = 0;
    function poll() {
      api('/api/v1/fleet')
        .then(function (res) {
          return res.json().then(function (body) {
            if (!res.ok) {
              throw new Error('fleet: ' + (body.error || 'HTTP ' + res.status));
            }
            return body;
          });
        })
        .then(function (got) {
          section.querySelector('.fleet-error').hidden = true;
          section.hidden = !got.in_fleet;
          if (got.in_fleet) {
            render(section, got, fmtAge);
          }
          return got.in_fleet;
        }, function (err) {
          var p = section.querySelector('.fleet-error');
          p.textContent = err.message;
          p.hidden = false;
          section.hidden = false;
          return true; // etcd may answer again
        })
        .then(function (again) {
          polls++;
          document.documentElement.dataset.fleetPolls = String(polls);
          if (again) {
            setTimeout(poll, FLEET_MS);
          }
        });
    }
    poll();
  }

  return { start: start };
})();
