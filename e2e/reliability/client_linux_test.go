package reliability

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mspguest/msp/internal/agenttest"
)

// clientEnv carries a client child's spec (JSON).
const clientEnv = "MSP_RELIABILITY_CLIENT"

// imdsRequest is the legitimate request the clients send.
const imdsRequest = "GET /metadata/instance?api-version=2021-02-01 HTTP/1.1\r\nHost: 169.254.169.254\r\nMetadata: true\r\nUser-Agent: msp-reliability\r\n\r\n"

// clientSpec is a client child's work. Modes:
//   - seq: N requests one after another on one keep-alive connection
//     (reconnecting after an error), reporting every latency;
//   - loop: N workers sending requests back to back for Duration, each
//     request bounded by Timeout, reconnecting after any error;
//   - hold: N connections that each send one request, read the answer and
//     then stay open, idle, until stdin closes;
//   - silent: N connections that send nothing, open until stdin closes;
//   - slowloris: N connections that trickle a request head one byte every
//     Interval, until the server closes them or Timeout passes.
type clientSpec struct {
	Mode     string        `json:"mode"`
	Addr     string        `json:"addr"`
	Request  string        `json:"request"`
	N        int           `json:"n"`
	Duration time.Duration `json:"duration,omitempty"`
	Interval time.Duration `json:"interval,omitempty"`
	Timeout  time.Duration `json:"timeout,omitempty"`
}

// clientResult is what a child reports.
type clientResult struct {
	// Latencies of answered requests (hold: of the first answers;
	// slowloris: until the server closed the connection), sorted.
	Latencies []time.Duration `json:"latencies"`
	// Status counts answers by status code, Reason by
	// x-ms-azure-proxy-reason ("" for none).
	Status map[int]int    `json:"status"`
	Reason map[string]int `json:"reason"`
	// Errors counts failed attempts by kind: dial, timeout, closed, other.
	Errors map[string]int `json:"errors"`
	// Samples holds the first error text of each kind.
	Samples map[string]string `json:"samples"`
	// Max is the longest attempt, answered or failed.
	Max time.Duration `json:"max"`
	// Open is how many connections were still open when released (hold,
	// silent) or when Timeout passed (slowloris).
	Open int `json:"open"`
}

func (r *clientResult) answered() int {
	n := 0
	for _, c := range r.Status {
		n += c
	}
	return n
}

func (r *clientResult) failed() int {
	n := 0
	for _, c := range r.Errors {
		n += c
	}
	return n
}

// percentile of the sorted latencies.
func (r *clientResult) percentile(p float64) time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	return r.Latencies[min(len(r.Latencies)-1, int(float64(len(r.Latencies))*p/100))]
}

// tally collects a result from concurrent attempts.
type tally struct {
	mu sync.Mutex
	r  clientResult
}

func newTally() *tally {
	return &tally{r: clientResult{Status: map[int]int{}, Reason: map[string]int{}, Errors: map[string]int{}, Samples: map[string]string{}}}
}

func (t *tally) answer(status int, reason string, d time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.r.Status[status]++
	t.r.Reason[reason]++
	t.r.Latencies = append(t.r.Latencies, d)
	t.r.Max = max(t.r.Max, d)
}

func (t *tally) fail(kind string, err error, d time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.r.Errors[kind]++
	if _, ok := t.r.Samples[kind]; !ok {
		t.r.Samples[kind] = err.Error()
	}
	t.r.Max = max(t.r.Max, d)
}

func (t *tally) result() clientResult {
	t.mu.Lock()
	defer t.mu.Unlock()
	slices.Sort(t.r.Latencies)
	return t.r
}

func errKind(err error) string {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "closed"
	}
	return "other"
}

// conn is one client connection.
type conn struct {
	c  net.Conn
	br *bufio.Reader
}

func dial(addr string, timeout time.Duration) (*conn, error) {
	c, err := net.DialTimeout("tcp4", addr, timeout)
	if err != nil {
		return nil, err
	}
	return &conn{c: c, br: bufio.NewReader(c)}, nil
}

// do sends req and reads one response within timeout.
func (c *conn) do(req string, timeout time.Duration) (status int, reason string, err error) {
	c.c.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(c.c, req); err != nil {
		return 0, "", err
	}
	return c.read()
}

func (c *conn) read() (int, string, error) {
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return 0, "", err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("x-ms-azure-proxy-reason"), err
}

// clientMain runs a child's spec: it prints "ready" once its connections
// are set up, then its result as JSON.
func clientMain(specJSON string, stdin io.Reader, stdout io.Writer) error {
	var s clientSpec
	if err := json.Unmarshal([]byte(specJSON), &s); err != nil {
		return fmt.Errorf("spec: %w", err)
	}
	if s.Timeout == 0 {
		s.Timeout = 10 * time.Second
	}
	t := newTally()
	ready := func() { fmt.Fprintln(stdout, "ready") }
	switch s.Mode {
	case "seq":
		ready()
		runSeq(s, t)
	case "loop":
		ready()
		runLoop(s, t)
	case "hold", "silent":
		conns := holdConns(s, t)
		ready()
		io.Copy(io.Discard, stdin) // until the parent releases us
		t.r.Open = countOpen(conns)
		for _, c := range conns {
			c.c.Close()
		}
	case "slowloris":
		ready()
		runSlowloris(s, t)
	default:
		return fmt.Errorf("mode %q", s.Mode)
	}
	return json.NewEncoder(stdout).Encode(t.result())
}

// attempt sends one request on *c, dialling first when it is nil, and
// tallies the outcome; after an error *c is closed and nil, and attempt
// pauses a moment before the caller retries.
func attempt(c **conn, s clientSpec, t *tally) {
	start := time.Now()
	if *c == nil {
		var err error
		if *c, err = dial(s.Addr, s.Timeout); err != nil {
			t.fail("dial", err, time.Since(start))
			time.Sleep(20 * time.Millisecond)
			return
		}
	}
	status, reason, err := (*c).do(s.Request, s.Timeout)
	if err != nil {
		t.fail(errKind(err), err, time.Since(start))
		(*c).c.Close()
		*c = nil
		time.Sleep(20 * time.Millisecond)
		return
	}
	t.answer(status, reason, time.Since(start))
}

func runSeq(s clientSpec, t *tally) {
	var c *conn
	for range s.N {
		attempt(&c, s, t)
	}
	if c != nil {
		c.c.Close()
	}
}

func runLoop(s clientSpec, t *tally) {
	stop := time.Now().Add(s.Duration)
	var wg sync.WaitGroup
	for range s.N {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var c *conn
			for time.Now().Before(stop) {
				attempt(&c, s, t)
			}
			if c != nil {
				c.c.Close()
			}
		}()
	}
	wg.Wait()
}

// holdConns opens s.N connections, 200 at a time; in hold mode each sends
// one request and reads its answer.
func holdConns(s clientSpec, t *tally) []*conn {
	conns := make([]*conn, s.N)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 200)
	for i := range s.N {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			start := time.Now()
			c, err := dial(s.Addr, s.Timeout)
			if err != nil {
				t.fail("dial", err, time.Since(start))
				return
			}
			conns[i] = c
			if s.Mode != "hold" {
				return
			}
			status, reason, err := c.do(s.Request, s.Timeout)
			if err != nil {
				t.fail(errKind(err), err, time.Since(start))
				return
			}
			t.answer(status, reason, time.Since(start))
			c.c.SetDeadline(time.Time{})
		}()
	}
	wg.Wait()
	return slices.DeleteFunc(conns, func(c *conn) bool { return c == nil })
}

// countOpen reports the connections the server has not closed: a read
// that times out (rather than seeing EOF or a reset) means open.
func countOpen(conns []*conn) int {
	n := 0
	for _, c := range conns {
		c.c.SetReadDeadline(time.Now().Add(time.Millisecond))
		_, err := c.br.ReadByte()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			n++
		}
	}
	return n
}

func runSlowloris(s clientSpec, t *tally) {
	var wg sync.WaitGroup
	for range s.N {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			c, err := dial(s.Addr, s.Timeout)
			if err != nil {
				t.fail("dial", err, time.Since(start))
				return
			}
			defer c.c.Close()
			closed := make(chan error, 1)
			go func() { // the server's answer or close
				c.c.SetReadDeadline(start.Add(s.Timeout))
				_, _, err := c.read()
				closed <- err
			}()
			// The head never ends: one more byte of a header value every
			// Interval.
			if _, err := io.WriteString(c.c, s.Request+"X-Slow: "); err != nil {
				t.fail(errKind(err), err, time.Since(start))
				return
			}
			for {
				select {
				case err := <-closed:
					if err == nil || errKind(err) == "closed" {
						t.answer(0, "", time.Since(start)) // the server ended it
					} else {
						t.fail(errKind(err), err, time.Since(start))
					}
					return
				case <-time.After(s.Interval):
				}
				c.c.Write([]byte{'a'})
			}
		}()
	}
	wg.Wait()
}

// client is a running client child.
type client struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
	err   strings.Builder
}

var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

// clientBinary is a copy of this test binary that other users may run.
func clientBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "msp-reliability-"); binErr != nil {
			return
		}
		if binErr = os.Chmod(binDir, 0o755); binErr != nil {
			return
		}
		self, err := os.Executable()
		if err != nil {
			binErr = err
			return
		}
		data, err := os.ReadFile(self)
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(binDir, "client")
		binErr = os.WriteFile(binPath, data, 0o755)
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

func removeClientBinary() {
	if binDir != "" {
		os.RemoveAll(binDir)
	}
}

// startClient runs spec in a child placed in the agent's cgroup as uid
// and waits until it is ready.
func startClient(t *testing.T, h *agenttest.Harness, uid int, s clientSpec) *client {
	t.Helper()
	spec, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	cl := &client{cmd: exec.Command(clientBinary(t), "-test.run=^$")}
	cl.cmd.Env = append(os.Environ(), clientEnv+"="+string(spec))
	cl.cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(h.CgroupFD.Fd())}
	if uid != 0 {
		cl.cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}
	}
	cl.cmd.Stderr = &cl.err
	if cl.stdin, err = cl.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := cl.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cl.out = bufio.NewReader(out)
	if err := cl.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.cmd.Process.Kill(); cl.cmd.Wait() })
	if l, err := cl.out.ReadString('\n'); err != nil || l != "ready\n" {
		cl.cmd.Wait()
		t.Fatalf("client %s as uid %d: %q %v\n%s", s.Mode, uid, l, err, cl.err.String())
	}
	return cl
}

// wait releases the child (hold, silent) and returns its result.
func (cl *client) wait(t *testing.T) clientResult {
	t.Helper()
	cl.stdin.Close()
	var r clientResult
	if err := json.NewDecoder(cl.out).Decode(&r); err != nil {
		cl.cmd.Wait()
		t.Fatalf("client result: %v\n%s", err, cl.err.String())
	}
	if err := cl.cmd.Wait(); err != nil {
		t.Fatalf("client: %v\n%s", err, cl.err.String())
	}
	return r
}
