package bpf

import (
	"testing"

	"github.com/mspguest/msp/bpf/bpftest"
	"github.com/mspguest/msp/bpf/cgroup2"
	"golang.org/x/sys/unix"
)

// TestRedirect checks the whole path for each kind of caller: connect4 or
// connect6 redirects, sockops moves the record, Take returns the caller's
// identity exactly once, and getpeername shows the original destination.
func TestRedirect(t *testing.T) {
	tests := []struct {
		name   string
		uid    uint32
		mapped bool
	}{
		{"root/ipv4", 0, false},
		{"root/v4-mapped", 0, true},
		{"nobody/ipv4", 65534, false},
		{"nobody/v4-mapped", 65534, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t, Options{})
			if err := r.objs.SetTarget(r.target, Target{Endpoint: 3}); err != nil {
				t.Fatal(err)
			}
			dst, family := r.target, uint16(unix.AF_INET)
			if tt.mapped {
				dst, family = mapped(r.target), unix.AF_INET6
			}
			res := client{dst: dst, uid: tt.uid}.run(t, r.cgroup)
			if res.Errno != 0 {
				t.Fatalf("connect: %v", unix.Errno(res.Errno))
			}
			if res.Peer != dst.String() {
				t.Errorf("getpeername = %s; want the original destination %s", res.Peer, dst)
			}
			peer := bpftest.Accept(t, r.proxy)
			rec, ok, err := r.objs.Take(peer)
			if err != nil || !ok {
				t.Fatalf("Take(%s) = %v, %v; want a record", peer, ok, err)
			}
			cgid, err := cgroup2.ID(r.cgroup)
			if err != nil {
				t.Fatal(err)
			}
			want := Record{
				Cookie: res.Cookie, CgroupID: cgid, NetnsCookie: r.objs.HostNetnsCookie(),
				TGID: uint32(res.PID), TID: uint32(res.TID), UID: tt.uid, GID: tt.uid,
				Dest: r.target, Family: family, Comm: clientName,
			}
			if rec != want {
				t.Errorf("record\n got %+v\nwant %+v", rec, want)
			}
			if _, ok, _ := r.objs.Take(peer); ok {
				t.Error("second Take found the record again; want it deleted")
			}
			c := counters(t, r.objs)
			if c.Redirected != 1 || c.LookupsMissed != 1 {
				t.Errorf("counters %+v; want Redirected 1, LookupsMissed 1", c)
			}
		})
	}
}
