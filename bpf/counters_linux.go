package bpf

import "fmt"

// Counters sums the per-CPU counters.
func (o *Objects) Counters() (Counters, error) {
	var c Counters
	var perCPU []uint64
	for idx := uint32(0); idx < numCounters; idx++ {
		if err := o.objs.Counters.Lookup(idx, &perCPU); err != nil {
			return Counters{}, fmt.Errorf("read eBPF counter %d: %w", idx, err)
		}
		p := c.field(idx)
		for _, v := range perCPU {
			*p += v
		}
	}
	c.LookupsMissed = o.takeMisses.Load()
	return c, nil
}
