package hostsim

import (
	"errors"
	"fmt"
	"strings"

	"github.com/mspguest/msp/agent/hostproto"
)

// Fault kinds (host-protocol.md §11 "Fault injection").
const (
	// FaultRefuse resets each new connection without reading (RST).
	FaultRefuse = "refuse"
	// FaultDelay waits DelayMs before serving the request normally.
	FaultDelay = "delay"
	// FaultHTTP500 answers 500 without serving.
	FaultHTTP500 = "http500"
	// FaultMalformedJSON answers 200 with a truncated JSON body.
	FaultMalformedJSON = "malformed-json"
	// FaultDropAfterHeaders sends the status line and headers announcing a
	// body, then closes the connection.
	FaultDropAfterHeaders = "drop-after-headers"
	// FaultNone clears the endpoint's fault.
	FaultNone = "none"
)

// Fault is the body of POST /faults: one active fault per endpoint, a new
// one replaces the old.
type Fault struct {
	// Endpoint is imds, wireserver or hostga.
	Endpoint string `json:"endpoint"`
	Kind     string `json:"kind"`
	// DelayMs is the delay of kind "delay".
	DelayMs int `json:"delayMs,omitempty"`
	// Count is how many requests (connections for "refuse") are affected;
	// 0 means until reset or replaced.
	Count int `json:"count,omitempty"`

	ep        hostproto.Endpoint
	unlimited bool
}

// maxDelayMs bounds injected delays so a typo cannot hang a test run.
const maxDelayMs = 10 * 60 * 1000

// DecodeFault reads a POST /faults body strictly.
func DecodeFault(body []byte) (*Fault, error) {
	var f Fault
	if err := decodeStrict(body, &f); err != nil {
		return nil, fmt.Errorf("fault: %w", err)
	}
	if err := f.validate(); err != nil {
		return nil, fmt.Errorf("fault: %w", err)
	}
	return &f, nil
}

func (f *Fault) validate() error {
	var problems []string
	ep, err := hostproto.ParseEndpoint(f.Endpoint)
	if err != nil {
		problems = append(problems, err.Error())
	}
	f.ep = ep
	switch f.Kind {
	case FaultRefuse, FaultHTTP500, FaultMalformedJSON, FaultDropAfterHeaders, FaultNone:
	case FaultDelay:
		if f.DelayMs <= 0 || f.DelayMs > maxDelayMs {
			problems = append(problems, fmt.Sprintf("delayMs %d: want 1-%d with kind delay", f.DelayMs, maxDelayMs))
		}
	default:
		problems = append(problems, fmt.Sprintf("kind %q: want refuse, delay, http500, malformed-json, drop-after-headers or none", f.Kind))
	}
	if f.Count < 0 {
		problems = append(problems, fmt.Sprintf("count %d: want 0 (until reset) or a positive number", f.Count))
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	f.unlimited = f.Count == 0
	return nil
}

// SetFault installs (or, with kind none, clears) an endpoint's fault.
func (e *Emulator) SetFault(f Fault) error {
	if err := f.validate(); err != nil {
		return fmt.Errorf("fault: %w", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if f.Kind == FaultNone {
		delete(e.faults, f.ep)
	} else {
		e.faults[f.ep] = &f
	}
	e.log.WithField("endpoint", f.ep.String()).WithField("kind", f.Kind).WithField("count", f.Count).Info("fault set")
	return nil
}

// Faults returns the active faults.
func (e *Emulator) Faults() []Fault {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := []Fault{}
	for _, ep := range hostproto.Endpoints {
		if f := e.faults[ep]; f != nil {
			out = append(out, *f)
		}
	}
	return out
}

// takeFault consumes one use of the endpoint's fault. With kind "refuse"
// it returns only a refuse fault (checked per connection); with "" only the
// per-request kinds.
func (e *Emulator) takeFault(ep hostproto.Endpoint, kind string) *Fault {
	e.mu.Lock()
	defer e.mu.Unlock()
	f := e.faults[ep]
	if f == nil || (kind == FaultRefuse) != (f.Kind == FaultRefuse) {
		return nil
	}
	if !f.unlimited {
		f.Count--
		if f.Count <= 0 {
			delete(e.faults, ep)
		}
	}
	c := *f
	return &c
}
