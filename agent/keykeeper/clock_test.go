package keykeeper

import (
	"sync"
	"testing"
	"time"
)

// fakeClock is a manual Clock: time moves only when the test fires the
// pending timer, so hours of polling run in seconds.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
	added  chan struct{} // signalled whenever a timer is created
}

type fakeTimer struct {
	clk *fakeClock
	at  time.Time
	c   chan time.Time
}

func newFakeClock(start time.Time) *fakeClock {
	return &fakeClock{now: start, added: make(chan struct{}, 1)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer(d time.Duration) Timer {
	c.mu.Lock()
	t := &fakeTimer{clk: c, at: c.now.Add(d), c: make(chan time.Time, 1)}
	if d <= 0 {
		t.c <- c.now
	} else {
		c.timers = append(c.timers, t)
	}
	c.mu.Unlock()
	select {
	case c.added <- struct{}{}:
	default:
	}
	return t
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }

func (t *fakeTimer) Stop() bool {
	c := t.clk
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, x := range c.timers {
		if x == t {
			c.timers = append(c.timers[:i], c.timers[i+1:]...)
			return true
		}
	}
	return false
}

// pending returns the number of armed timers.
func (c *fakeClock) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// waitTimer waits (real time) until a timer is armed: the keeper finished
// its iteration and sleeps.
func (c *fakeClock) waitTimer(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for c.pending() == 0 {
		select {
		case <-c.added:
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("the keeper never went to sleep")
		}
	}
}

// fire advances the clock to the earliest armed timer and fires it; it
// returns the time advanced.
func (c *fakeClock) fire(t testing.TB) time.Duration {
	t.Helper()
	c.waitTimer(t)
	c.mu.Lock()
	defer c.mu.Unlock()
	first := 0
	for i, x := range c.timers {
		if x.at.Before(c.timers[first].at) {
			first = i
		}
	}
	tm := c.timers[first]
	c.timers = append(c.timers[:first], c.timers[first+1:]...)
	d := tm.at.Sub(c.now)
	if d > 0 {
		c.now = tm.at
	}
	tm.c <- c.now
	return d
}
