package keykeeper

import (
	"net/http"
	"time"

	"github.com/mspguest/msp/agent/hostproto"
)

// hostTimeResync is how old a host-time synchronisation may get before the
// next status answer refreshes it (host-protocol.md §7.4).
const hostTimeResync = 15 * time.Minute

// hostDate reads the host's clock from a WireServer answer: the
// x-ms-azure-host-date header if present, else Date (host-protocol.md
// §7.4). ok is false when neither parses.
func hostDate(h http.Header) (time.Time, bool) {
	for _, name := range []string{hostproto.HeaderDate, "Date"} {
		v := h.Get(name)
		if v == "" {
			continue
		}
		if t, err := time.Parse(hostproto.DateLayout, v); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// HostNow returns the host's time for a local time: local plus the offset
// learnt from the host's date headers (zero before the first
// synchronisation, so the local clock is used).
func (s *State) HostNow(local time.Time) time.Time { return local.Add(s.HostTimeOffset).UTC() }

// HostDate formats HostNow as the x-ms-azure-host-date value.
func (s *State) HostDate(local time.Time) string {
	return s.HostNow(local).Format(hostproto.DateLayout)
}
