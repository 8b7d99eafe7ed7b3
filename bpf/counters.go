package bpf

// Counters are the redirector's event counts since its maps were created
// (pinned maps, and so their counts, survive restarts), for status.
// LookupsMissed counts since Load.
type Counters struct {
	Redirected    uint64 // connects rewritten to the proxy
	Exempted      uint64 // target connects left alone: the agent's own sockets (SO_MARK or tgid, host netns only)
	FailedOpen    uint64 // no agent listener, fail-open target: destination unchanged
	FailedClosed  uint64 // no agent listener, fail-closed target: connect() got EPERM
	NetnsPassed   uint64 // target connects from another network namespace, left alone
	NetnsDenied   uint64 // target connects from another network namespace, refused (NetnsDeny)
	RecordErrors  uint64 // records the kernel could not store (the proxy sees a direct connection)
	LookupsMissed uint64 // Take calls that found no record: direct connections to the proxy, or evicted records
}

// Indices of the counters map: enum counter in proxy.bpf.c, in order.
// TestCounterIndices checks the count against the object.
const (
	counterRedirected = iota
	counterExempted
	counterFailedOpen
	counterFailedClosed
	counterNetnsPassed
	counterNetnsDenied
	counterRecordErrors
	numCounters
)

// field returns the Counters field for a map index.
func (c *Counters) field(idx uint32) *uint64 {
	switch idx {
	case counterRedirected:
		return &c.Redirected
	case counterExempted:
		return &c.Exempted
	case counterFailedOpen:
		return &c.FailedOpen
	case counterFailedClosed:
		return &c.FailedClosed
	case counterNetnsPassed:
		return &c.NetnsPassed
	case counterNetnsDenied:
		return &c.NetnsDenied
	case counterRecordErrors:
		return &c.RecordErrors
	}
	return nil
}
