package loadgen

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Conn is one keep-alive client connection.
type Conn struct {
	c  net.Conn
	br *bufio.Reader
}

// Dial opens a client connection.
func Dial(addr string) (*Conn, error) {
	c, err := net.DialTimeout("tcp4", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	return &Conn{c: c, br: bufio.NewReaderSize(c, 16<<10)}, nil
}

// Close closes the connection.
func (c *Conn) Close() error { return c.c.Close() }

// Do sends req and reads one response; it returns the status.
func (c *Conn) Do(req []byte) (int, error) {
	c.c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.c.Write(req); err != nil {
		return 0, err
	}
	return ReadResponse(c.br)
}

// ReadResponse reads one response and discards its body (Content-Length
// or chunked; none for 1xx, 204 and 304). It returns the status.
func ReadResponse(br *bufio.Reader) (int, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, err
	}
	if len(line) < 12 || string(line[:7]) != "HTTP/1." {
		return 0, fmt.Errorf("status line %q", line)
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, fmt.Errorf("status line %q", line)
	}
	length, chunked := int64(-1), false
	for {
		l, err := br.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		s := strings.TrimRight(string(l), "\r\n")
		if s == "" {
			break
		}
		name, value, _ := strings.Cut(s, ":")
		switch {
		case strings.EqualFold(name, "Content-Length"):
			length, err = strconv.ParseInt(strings.TrimSpace(value), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("content-length %q", value)
			}
		case strings.EqualFold(name, "Transfer-Encoding"):
			chunked = strings.EqualFold(strings.TrimSpace(value), "chunked")
		}
	}
	switch {
	case status < 200 || status == 204 || status == 304:
	case chunked:
		for {
			l, err := br.ReadSlice('\n')
			if err != nil {
				return 0, err
			}
			size, err := strconv.ParseInt(strings.TrimSpace(strings.SplitN(string(l), ";", 2)[0]), 16, 64)
			if err != nil {
				return 0, fmt.Errorf("chunk size %q", l)
			}
			if size == 0 {
				for {
					t, err := br.ReadSlice('\n')
					if err != nil {
						return 0, err
					}
					if len(t) <= 2 {
						return status, nil
					}
				}
			}
			if _, err := br.Discard(int(size) + 2); err != nil {
				return 0, err
			}
		}
	case length >= 0:
		if _, err := br.Discard(int(length)); err != nil {
			return 0, err
		}
	default:
		return 0, errors.New("close-delimited responses are not supported by the load generator")
	}
	return status, nil
}

// Result is the outcome of one workload.
type Result struct {
	Latencies []time.Duration // per request, sorted
	Requests  int64           // completed requests
	Errors    int64           // failed requests or non-2xx answers
	Elapsed   time.Duration
}

// Percentile returns the p-th percentile (0..100) of the sorted
// latencies.
func (r *Result) Percentile(p float64) time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	i := int(p / 100 * float64(len(r.Latencies)-1))
	return r.Latencies[i]
}

// PerSecond returns completed requests per second.
func (r *Result) PerSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Requests) / r.Elapsed.Seconds()
}

// Sequential sends n requests one after another on one keep-alive
// connection.
func Sequential(addr string, req []byte, n int) (Result, error) {
	c, err := Dial(addr)
	if err != nil {
		return Result{}, err
	}
	defer c.Close()
	var r Result
	r.Latencies = make([]time.Duration, 0, n)
	start := time.Now()
	for range n {
		t := time.Now()
		status, err := c.Do(req)
		if err != nil {
			return r, err
		}
		r.Latencies = append(r.Latencies, time.Since(t))
		r.count(status)
	}
	r.Elapsed = time.Since(start)
	slices.Sort(r.Latencies)
	return r, nil
}

// NewConnEach sends n requests one after another, each on a new
// connection (dial, request, response, close).
func NewConnEach(addr string, req []byte, n int) (Result, error) {
	var r Result
	r.Latencies = make([]time.Duration, 0, n)
	start := time.Now()
	for range n {
		t := time.Now()
		c, err := Dial(addr)
		if err != nil {
			return r, err
		}
		status, err := c.Do(req)
		c.Close()
		if err != nil {
			return r, err
		}
		r.Latencies = append(r.Latencies, time.Since(t))
		r.count(status)
	}
	r.Elapsed = time.Since(start)
	slices.Sort(r.Latencies)
	return r, nil
}

// Concurrent runs clients keep-alive connections, each sending requests
// back to back, for d. Each client keeps its own latencies; they are
// merged and sorted at the end.
func Concurrent(addr string, req []byte, clients int, d time.Duration) (Result, error) {
	var (
		reqs, errs atomic.Int64
		wg         sync.WaitGroup
		firstErr   error
		once       sync.Once
	)
	lat := make([][]time.Duration, clients)
	stop := time.Now().Add(d)
	start := time.Now()
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := Dial(addr)
			if err != nil {
				once.Do(func() { firstErr = err })
				return
			}
			defer c.Close()
			for t := time.Now(); t.Before(stop); t = time.Now() {
				status, err := c.Do(req)
				if err != nil {
					errs.Add(1)
					once.Do(func() { firstErr = err })
					return
				}
				lat[i] = append(lat[i], time.Since(t))
				if status >= 300 {
					errs.Add(1)
				}
				reqs.Add(1)
			}
		}()
	}
	wg.Wait()
	r := Result{Requests: reqs.Load(), Errors: errs.Load(), Elapsed: time.Since(start)}
	r.Latencies = slices.Concat(lat...)
	slices.Sort(r.Latencies)
	return r, firstErr
}

// Hold opens n connections, sends req once on each, closes ready and
// keeps them open (idle) until release is closed.
func Hold(addr string, req []byte, n int, release <-chan struct{}, ready chan<- struct{}) error {
	conns := make([]*Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range n {
		c, err := Dial(addr)
		if err != nil {
			return err
		}
		conns = append(conns, c)
		if _, err := c.Do(req); err != nil {
			return err
		}
	}
	close(ready)
	<-release
	return nil
}

func (r *Result) count(status int) {
	r.Requests++
	if status >= 300 {
		r.Errors++
	}
}
