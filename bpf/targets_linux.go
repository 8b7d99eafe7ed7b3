package bpf

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
)

// SetTarget makes connects to dst a target with value t, live.
func (o *Objects) SetTarget(dst netip.AddrPort, t Target) error {
	k, err := targetKey(dst)
	if err != nil {
		return err
	}
	v, err := targetValue(t)
	if err != nil {
		return err
	}
	if err := o.objs.Targets.Update(&k, &v, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("set target %s: %w (the map holds %d targets)", dst, err, o.objs.Targets.MaxEntries())
	}
	return nil
}

// DeleteTarget stops redirecting dst. Deleting a non-target is not an error.
func (o *Objects) DeleteTarget(dst netip.AddrPort) error {
	k, err := targetKey(dst)
	if err != nil {
		return err
	}
	if err := o.objs.Targets.Delete(&k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("delete target %s: %w", dst, err)
	}
	return nil
}

// Targets returns the current targets.
func (o *Objects) Targets() (map[netip.AddrPort]Target, error) {
	out := make(map[netip.AddrPort]Target)
	var k proxyTargetKey
	var v proxyTarget
	it := o.objs.Targets.Iterate()
	for it.Next(&k, &v) {
		var ip [4]byte
		nativePut32(ip[:], k.Ip4)
		t := Target{Endpoint: v.Endpoint}
		if v.Flags&targetFailClosed != 0 {
			t.Policy = FailClosed
		}
		out[netip.AddrPortFrom(netip.AddrFrom4(ip), portFromKey(k.Port))] = t
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("list targets: %w", err)
	}
	return out, nil
}

// SetTargets makes the targets map equal to want: entries are updated in
// place and others deleted, so it is idempotent and never leaves a wanted
// target missing in between (ebpf.md §6.4).
func (o *Objects) SetTargets(want map[netip.AddrPort]Target) error {
	for dst, t := range want {
		if err := o.SetTarget(dst, t); err != nil {
			return err
		}
	}
	have, err := o.Targets()
	if err != nil {
		return err
	}
	for dst := range have {
		if _, ok := want[dst]; !ok {
			if err := o.DeleteTarget(dst); err != nil {
				return err
			}
		}
	}
	return nil
}
