package hostsim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/mspguest/msp/agent/hostproto"
)

// StateView is the answer of GET and POST /state: the state plus what the
// emulator derived from it.
type StateView struct {
	State
	// KeyGUID is the keyGuid the status reports (null before the first
	// attestation and during a rotation).
	KeyGUID *string `json:"keyGuid"`
	// AttestedKeyGUID is the key requests are verified with, even during a
	// rotation.
	AttestedKeyGUID *string `json:"attestedKeyGuid"`
	// Rotating is true between a keyIncarnationId change and the next
	// attestation.
	Rotating bool `json:"rotating"`
	// StatusPayload is the served GET /secure-channel/status body.
	StatusPayload json.RawMessage `json:"statusPayload"`
	// GuestModes and StateString are what a guest derives from the payload
	// (hostproto); they differ from Modes when the payload cannot express
	// them (v1, or v2 HostGA following WireServer). GuestModes is null when
	// the payload does not validate.
	GuestModes  *hostproto.Modes `json:"guestModes"`
	StateString string           `json:"stateString"`
	Faults      []Fault          `json:"faults"`
}

// View returns the current StateView.
func (e *Emulator) View() StateView {
	faults := e.Faults()
	e.mu.Lock()
	defer e.mu.Unlock()
	v := StateView{State: e.state.clone(), KeyGUID: e.keys.reportedGUID(), Rotating: e.keys.rotating, Faults: faults}
	if e.keys.current != nil {
		g := e.keys.current.guid
		v.AttestedKeyGUID = &g
	}
	v.StatusPayload = json.RawMessage(e.renderStatus())
	if ks, err := hostproto.ParseKeyStatus(v.StatusPayload); err == nil {
		m := ks.Modes()
		v.GuestModes = &m
		v.StateString = ks.StateString()
	} else {
		v.StateString = "invalid: " + err.Error()
	}
	return v
}

// maxControlBody bounds control API request bodies.
const maxControlBody = 1 << 20

// ControlHandler serves the control API (JSON): GET/POST /state,
// GET/POST /faults, GET /verifications?since=N, POST /reset. Bad input
// gets 400 with {"error": "..."} naming the field and the fix.
func (e *Emulator) ControlHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /state", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, e.View())
	})
	mux.HandleFunc("POST /state", func(w http.ResponseWriter, r *http.Request) {
		body, ok := readControlBody(w, r)
		if !ok {
			return
		}
		p, err := DecodePatch(body)
		if err == nil {
			_, err = e.Apply(p)
		}
		if err != nil {
			writeError(w, 400, err)
			return
		}
		writeJSON(w, 200, e.View())
	})
	mux.HandleFunc("GET /faults", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, e.Faults())
	})
	mux.HandleFunc("POST /faults", func(w http.ResponseWriter, r *http.Request) {
		body, ok := readControlBody(w, r)
		if !ok {
			return
		}
		f, err := DecodeFault(body)
		if err == nil {
			err = e.SetFault(*f)
		}
		if err != nil {
			writeError(w, 400, err)
			return
		}
		writeJSON(w, 200, e.Faults())
	})
	mux.HandleFunc("GET /verifications", func(w http.ResponseWriter, r *http.Request) {
		var since uint64
		if s := r.URL.Query().Get("since"); s != "" {
			n, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				writeError(w, 400, fmt.Errorf("since %q: want the seq of the last record seen (a non-negative integer)", s))
				return
			}
			since = n
		}
		writeJSON(w, 200, e.Verifications(since))
	})
	mux.HandleFunc("POST /reset", func(w http.ResponseWriter, r *http.Request) {
		e.Reset()
		writeJSON(w, 200, e.View())
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, 404, fmt.Errorf("%s %s: no such control endpoint; want GET|POST /state, GET|POST /faults, GET /verifications, POST /reset", r.Method, r.URL.Path))
	})
	return mux
}

func readControlBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxControlBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, 413, fmt.Errorf("body exceeds %d bytes", maxControlBody))
		} else {
			writeError(w, 400, fmt.Errorf("read body: %w", err))
		}
		return nil, false
	}
	return body, true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		status, b = 500, []byte(`{"error":"marshal response"}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// ControlError is the body of every control API error.
type ControlError struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, ControlError{Error: err.Error()})
}
