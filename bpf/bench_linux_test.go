package bpf

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/mspguest/msp/bpf/bpftest"
	"github.com/mspguest/msp/bpf/cgroup2"
	"golang.org/x/sys/unix"
)

// BenchmarkConnect measures connect() to a NON-target loopback address from
// a process inside the attached cgroup, with and without the programs
// (issue 5, deliverable 7b): compare with `benchstat -col /bpf`. bpf-ns/op
// is the programs' own run time from the kernel's BPF statistics.
func BenchmarkConnect(b *testing.B) {
	for _, on := range []bool{false, true} {
		b.Run(fmt.Sprintf("bpf=%v", map[bool]string{false: "off", true: "on"}[on]), func(b *testing.B) {
			dst := acceptLoop(b, nil)
			var r *rig
			cg := ""
			if on {
				r = newRig(b, Options{})
				if err := r.objs.SetTarget(r.target, Target{Endpoint: 3}); err != nil {
					b.Fatal(err)
				}
				cg = r.cgroup
			} else {
				cg = bpftest.NewCgroup(b)
			}
			connectLoop(b, r, cg, dst)
		})
	}
}

// BenchmarkRedirectedConnect measures a redirected connect() end to end and
// reports the programs' run time per connection (deliverable 7a; target
// ≤ 1.5 µs summed). The proxy side takes each record, as the agent does.
// task=on reads the caller's task struct (kernel BTF), task=off is the
// fallback without it: their difference is the cost of the task identity.
func BenchmarkRedirectedConnect(b *testing.B) {
	for _, noTask := range []bool{false, true} {
		b.Run(map[bool]string{false: "task=on", true: "task=off"}[noTask], func(b *testing.B) {
			r := newRig(b, Options{NoTaskInfo: noTask})
			if err := r.objs.SetTarget(r.target, Target{Endpoint: 3}); err != nil {
				b.Fatal(err)
			}
			acceptLoop(b, r)
			connectLoop(b, r, r.cgroup, r.target)
			if c := counters(b, r.objs); c.Redirected < uint64(b.N) {
				b.Fatalf("redirected %d of %d connects", c.Redirected, b.N)
			}
		})
	}
}

// BenchmarkTake measures the proxy's record lookup and delete (7c).
func BenchmarkTake(b *testing.B) {
	bpftest.RequireRoot(b)
	objs, err := Load(Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { objs.Close() })
	b.Run("hit", func(b *testing.B) {
		const batch = 50000
		b.ReportAllocs()
		rec := proxyConnRecord{Tgid: 1, Uid: 2, OrigIp4: ip4Key(netip.MustParseAddr("127.0.0.169")), OrigPort: portKey(80)}
		copy(rec.Comm[:], []int8{'c', 'u', 'r', 'l'})
		for i := 0; i < b.N; i++ {
			if i%batch == 0 {
				b.StopTimer()
				for j := 0; j < batch; j++ {
					k := proxyPortKey{LocalIp4: ip4Key(netip.MustParseAddr("127.0.0.1")), LocalPort: uint32(j)}
					if err := objs.objs.ByPort.Update(&k, &rec, ebpf.UpdateAny); err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()
			}
			peer := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(i%batch))
			if _, ok, err := objs.Take(peer); !ok || err != nil {
				b.Fatalf("Take(%s) = %v, %v", peer, ok, err)
			}
		}
	})
	b.Run("miss", func(b *testing.B) {
		b.ReportAllocs()
		peer := netip.MustParseAddrPort("127.0.0.1:1")
		for b.Loop() {
			if _, ok, err := objs.Take(peer); ok || err != nil {
				b.Fatalf("Take(%s) = %v, %v", peer, ok, err)
			}
		}
	})
}

// acceptLoop accepts and closes connections until cleanup: on a new
// listener (returned) when r is nil, else on r's proxy, taking each record.
func acceptLoop(b *testing.B, r *rig) netip.AddrPort {
	var ln net.Listener
	if r == nil {
		ln = bpftest.Listen(b, "127.0.0.1:0", 0)
	} else {
		ln = r.proxy
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if r != nil {
				r.objs.Take(c.RemoteAddr().(*net.TCPAddr).AddrPort())
			}
			c.Close()
		}
	}()
	b.Cleanup(func() { ln.Close(); <-done })
	return bpftest.AddrOf(ln)
}

// connectLoop moves this process into cg and times b.N blocking connects to
// dst. With r set it enables the kernel's BPF run-time statistics and
// reports the programs' run time per connect.
func connectLoop(b *testing.B, r *rig, cg string, dst netip.AddrPort) {
	var before map[string]*ebpf.ProgramStats
	var floor *ebpf.Program
	var floorBefore *ebpf.ProgramStats
	if r != nil {
		stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
		if err != nil {
			b.Fatalf("enable BPF stats: %v", err)
		}
		defer stats.Close()
		floor = attachFloor(b, cg)
		before = programStats(b, r.objs)
		if floorBefore, err = floor.Stats(); err != nil {
			b.Fatal(err)
		}
	}
	enterCgroup(b, cg)
	sa := &unix.SockaddrInet4{Port: int(dst.Port()), Addr: dst.Addr().As4()}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			b.Fatal(err)
		}
		// RST on close: no TIME_WAIT to exhaust the ephemeral ports.
		unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
		if err := unix.Connect(fd, sa); err != nil {
			b.Fatalf("connect %s: %v", dst, err)
		}
		unix.Close(fd)
	}
	b.StopTimer()
	if r == nil {
		return
	}
	var total time.Duration
	var runs uint64
	for name, after := range programStats(b, r.objs) {
		d := after.Runtime - before[name].Runtime
		total += d
		runs += after.RunCount - before[name].RunCount
		if name == proxyProgMspConnect4 || name == proxyProgMspSockops {
			b.ReportMetric(float64(d.Nanoseconds())/float64(b.N), strings.TrimPrefix(name, "msp_")+"-ns/op")
		}
		if name == proxyProgMspSockops {
			b.ReportMetric(float64(after.RunCount-before[name].RunCount)/float64(b.N), "sockops-runs/op")
		}
	}
	b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "bpf-ns/op")

	// The statistics themselves cost time in every run (two clock reads
	// around the program), which production, with statistics off, does
	// not pay. An empty program on the same hook measures that floor per
	// run; net-bpf-ns/op is the programs' time above it.
	fs, err := floor.Stats()
	if err != nil {
		b.Fatal(err)
	}
	if n := fs.RunCount - floorBefore.RunCount; n > 0 {
		perRun := float64((fs.Runtime - floorBefore.Runtime).Nanoseconds()) / float64(n)
		b.ReportMetric(perRun, "floor-ns/run")
		b.ReportMetric((float64(total.Nanoseconds())-perRun*float64(runs))/float64(b.N), "net-bpf-ns/op")
	}
}

// attachFloor attaches an empty sockops program ("return 1") to cg beside
// ours, to measure what the BPF statistics add to each run.
func attachFloor(b *testing.B, cg string) *ebpf.Program {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         "msp_bench_floor",
		Type:         ebpf.SockOps,
		License:      "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 1), asm.Return()},
	})
	if err != nil {
		b.Fatalf("load the empty sockops program: %v", err)
	}
	l, err := link.AttachCgroup(link.CgroupOptions{Path: cg, Attach: ebpf.AttachCGroupSockOps, Program: prog})
	if err != nil {
		prog.Close()
		b.Fatalf("attach the empty sockops program: %v", err)
	}
	b.Cleanup(func() { l.Close(); prog.Close() })
	return prog
}

func programStats(b *testing.B, o *Objects) map[string]*ebpf.ProgramStats {
	out := map[string]*ebpf.ProgramStats{}
	for _, h := range hooks {
		s, err := o.program(h.name).Stats()
		if err != nil {
			b.Fatalf("stats of %s: %v", h.name, err)
		}
		out[h.name] = s
	}
	return out
}

// enterCgroup moves this whole process into the cgroup2 directory cg and
// back at cleanup. Only benchmarks do this: they run after all tests.
func enterCgroup(b *testing.B, cg string) {
	root, err := cgroup2.Root()
	if err != nil {
		b.Fatal(err)
	}
	orig, err := ownCgroup()
	if err != nil {
		b.Fatal(err)
	}
	pid := []byte(fmt.Sprint(os.Getpid()))
	if err := os.WriteFile(filepath.Join(cg, "cgroup.procs"), pid, 0); err != nil {
		b.Fatalf("enter cgroup %s: %v", cg, err)
	}
	b.Cleanup(func() {
		if err := os.WriteFile(filepath.Join(root, orig, "cgroup.procs"), pid, 0); err != nil {
			b.Errorf("return to cgroup %s: %v", orig, err)
		}
	})
}

// ownCgroup returns this process's cgroup2 path relative to the mount.
func ownCgroup() (string, error) {
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return "", err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if p, ok := strings.CutPrefix(s.Text(), "0::"); ok {
			return p, nil
		}
	}
	return "", errors.New("no cgroup2 entry in /proc/self/cgroup")
}
