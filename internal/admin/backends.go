package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// The errors a Controller's backend methods wrap, which the API answers
// with 404 and 400.
var (
	// ErrNotFound: no such rule, route or backend.
	ErrNotFound = errors.New("not found")
	// ErrInvalid: a state or weight the backend cannot take.
	ErrInvalid = errors.New("invalid")
)

// maxChangeBody bounds the body of a backend change.
const maxChangeBody = 4 << 10

// reloadNote is the reply's note on a runtime weight, which a reload that
// changes the backend's weight in the file sets back to the file's.
const reloadNote = "a reload that changes this backend's weight in the config file resets its weight to the file's; state and weight are otherwise kept across reloads and upgrades"

// BackendChange is the body of PUT .../backends/{address}: what to set.
// A field left out is left as it is.
type BackendChange struct {
	State  *string `json:"state,omitempty"`  // ready | drain | maint
	Weight *int    `json:"weight,omitempty"` // 1 or more
}

// backendList is the body of GET .../backends.
type backendList struct {
	Rule     string          `json:"rule"`
	Route    string          `json:"route,omitempty"`
	Backends []BackendStatus `json:"backends"`
}

// backendReply is the body of a successful PUT .../backends/{address}.
type backendReply struct {
	Rule    string        `json:"rule"`
	Route   string        `json:"route,omitempty"`
	Backend BackendStatus `json:"backend"`
	Note    string        `json:"note"`
}

// backends lists the backends of a rule or of one of its routes.
func (h *handler) backends(w http.ResponseWriter, r *http.Request) {
	rule, route := r.PathValue("rule"), r.PathValue("route")
	list, err := h.ctl.Backends(rule, route)
	if err != nil {
		writeBackendError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, backendList{Rule: rule, Route: route, Backends: nonNil(list)})
}

// setBackend changes the state or weight of one backend, named by its
// address as configured and path-escaped: "10.0.0.5:80", or
// "unix:%2Frun%2Fapp.sock" for a unix socket.
func (h *handler) setBackend(w http.ResponseWriter, r *http.Request) {
	rule, route, addr := r.PathValue("rule"), r.PathValue("route"), r.PathValue("address")
	ch, err := decodeChange(r.Body)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	st, err := h.ctl.SetBackend(rule, route, addr, ch)
	if err != nil {
		writeBackendError(w, err)
		return
	}
	h.logger.Info("admin: backend changed", "rule", rule, "route", route, "backend", addr,
		"state", st.State, "weight", st.Weight, "by", r.RemoteAddr)
	writeJSON(w, http.StatusOK, backendReply{Rule: rule, Route: route, Backend: st, Note: reloadNote})
}

// decodeChange reads a BackendChange: one JSON object with known fields
// and at least one of them.
func decodeChange(body io.Reader) (BackendChange, error) {
	var ch BackendChange
	dec := json.NewDecoder(io.LimitReader(body, maxChangeBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ch); err != nil {
		return ch, fmt.Errorf(`body: want a JSON object {"state": "ready|drain|maint", "weight": N}: %v`, err)
	}
	if dec.More() {
		return ch, errors.New("body: want one JSON object, found more")
	}
	if ch.State == nil && ch.Weight == nil {
		return ch, errors.New(`body: nothing to change: give "state", "weight" or both`)
	}
	return ch, nil
}

// writeBackendError answers a Controller's backend error: 404 for
// ErrNotFound, 400 for ErrInvalid, 500 otherwise.
func writeBackendError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, ErrInvalid):
		writeError(w, http.StatusBadRequest, err.Error())
	default:
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}
