package proxy

import (
	"errors"
	"net/netip"
	"sync"
	"syscall"
	"time"
)

// upstreamPool keeps the upstream connections whose last exchange ended
// cleanly (a complete, keep-alive response) when their client connection
// closed, per original destination, for the next client connection to
// the same destination: a caller that opens a connection per request then
// costs no upstream handshake. Only the destination keys a connection —
// the host authenticates each request by its signature, never by its
// connection. At most poolPerDest idle connections per destination; one
// idle for poolIdle is closed; one the host closed or wrote to while idle
// is discarded when taken (a peek), and a request that still finds its
// reused connection dead is sent again on a new one (forward).
type upstreamPool struct {
	mu     sync.Mutex
	idle   map[netip.AddrPort][]*pooledUpstream
	closed bool
}

type pooledUpstream struct {
	u     *upstream
	timer *time.Timer
}

const (
	poolPerDest = 8
	poolIdle    = 10 * time.Second
)

// get returns a clean idle connection to dest, or nil.
func (p *upstreamPool) get(dest netip.AddrPort) *upstream {
	for {
		p.mu.Lock()
		list := p.idle[dest]
		if len(list) == 0 {
			p.mu.Unlock()
			return nil
		}
		pu := list[len(list)-1]
		list[len(list)-1] = nil
		p.idle[dest] = list[:len(list)-1]
		p.mu.Unlock()
		pu.timer.Stop()
		if pu.u.idleClean() {
			return pu.u
		}
		pu.u.close()
	}
}

// put keeps u for dest, or closes it when the pool is full or closed.
func (p *upstreamPool) put(dest netip.AddrPort, u *upstream) {
	p.mu.Lock()
	if p.closed || len(p.idle[dest]) >= poolPerDest {
		p.mu.Unlock()
		u.close()
		return
	}
	if p.idle == nil {
		p.idle = map[netip.AddrPort][]*pooledUpstream{}
	}
	pu := &pooledUpstream{u: u}
	pu.timer = time.AfterFunc(poolIdle, func() { p.expire(dest, pu) })
	p.idle[dest] = append(p.idle[dest], pu)
	p.mu.Unlock()
}

// expire closes pu if it is still idle in the pool.
func (p *upstreamPool) expire(dest netip.AddrPort, pu *pooledUpstream) {
	p.mu.Lock()
	list := p.idle[dest]
	found := false
	for i, x := range list {
		if x == pu {
			p.idle[dest] = append(list[:i], list[i+1:]...)
			found = true
			break
		}
	}
	p.mu.Unlock()
	if found {
		pu.u.close()
	}
}

// close closes every idle connection; later puts close theirs.
func (p *upstreamPool) close() {
	p.mu.Lock()
	p.closed = true
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, list := range idle {
		for _, pu := range list {
			pu.timer.Stop()
			pu.u.close()
		}
	}
}

// count is the number of idle connections to dest (tests).
func (p *upstreamPool) count(dest netip.AddrPort) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle[dest])
}

// idleClean reports whether an idle connection has nothing to read and is
// open: one non-blocking peek, no deadline change. Bytes (a late answer,
// a 408) or an end of stream mean it cannot carry a new exchange.
func (u *upstream) idleClean() bool {
	if u.br.Buffered() > 0 {
		return false
	}
	rc, err := u.c.SyscallConn()
	if err != nil {
		return false
	}
	clean := false
	var b [1]byte
	err = rc.Read(func(fd uintptr) bool {
		_, _, perr := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		clean = errors.Is(perr, syscall.EAGAIN)
		return true
	})
	return err == nil && clean
}
