package admin

import (
	"context"
	"net/http"
	"time"
)

// fleetTimeout bounds how long GET /api/v1/fleet waits for Options.Fleet.
const fleetTimeout = 5 * time.Second

// FleetInstance is one live sluice of the fleet, as its instances/ key in
// etcd reports it.
type FleetInstance struct {
	Name      string    `json:"name"`
	Version   string    `json:"version"`
	PID       int       `json:"pid"`
	Started   time.Time `json:"started"`
	Revision  int64     `json:"revision"` // of the config it runs
	Healthy   bool      `json:"healthy"`
	LastError string    `json:"last_error,omitempty"`
	// AgeSeconds is how long ago it started, by this server's clock; the
	// handler sets it.
	AgeSeconds float64 `json:"age_seconds"`
}

// Fleet is what GET /api/v1/fleet reports: whether this sluice is in a
// fleet, its name there and every live instance, this one included.
// Options.Fleet fills Self and Instances; the handler, InFleet.
type Fleet struct {
	InFleet   bool            `json:"in_fleet"`
	Self      string          `json:"self,omitempty"`
	Instances []FleetInstance `json:"instances"`
}

// serveFleet lists the fleet's live instances (Options.Fleet). Not in a
// fleet, it says so with an empty list (the dashboard asks on every load,
// and a 404 would be a console error there); 502 when the fleet's store
// does not answer.
func (h *handler) serveFleet(w http.ResponseWriter, r *http.Request) {
	if h.fleet == nil {
		writeJSON(w, http.StatusOK, Fleet{Instances: []FleetInstance{}})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), fleetTimeout)
	defer cancel()
	f, err := h.fleet(ctx)
	if err != nil {
		writeError(w, http.StatusBadGateway, "fleet: "+err.Error())
		return
	}
	now := time.Now()
	f.InFleet, f.Instances = true, nonNil(f.Instances)
	for i := range f.Instances {
		f.Instances[i].AgeSeconds = max(now.Sub(f.Instances[i].Started).Seconds(), 0)
	}
	writeJSON(w, http.StatusOK, f)
}
