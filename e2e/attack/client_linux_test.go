package attack

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The test binary doubles as the raw client: with clientEnv set it runs
// the exchanges (JSON) read from its standard input and prints their
// outcomes (JSON).
const clientEnv = "MSP_ATTACK_CLIENT"

// exchange is one connection: connect to Dst (after setting SO_MARK when
// Mark is not 0), write Data, half-close, read until EOF or 10 s.
type exchange struct {
	Dst  string `json:"dst"`
	Data []byte `json:"data"`
	Mark int    `json:"mark,omitempty"`
	// Comm, when set, names the connecting thread (PR_SET_NAME) first.
	Comm string `json:"comm,omitempty"`
	// ExecBash: after connect(), exec bash on the socket (fd 9) and let
	// it write Data and copy the answer to stdout, raw: the process that
	// sends is not the program that connected.
	ExecBash bool `json:"execBash,omitempty"`
}

// execScript is what bash runs for ExecBash: its printf is a builtin, so
// the process that connected is the one that writes.
const execScript = `printf '%s' "$MSP_REQ" >&9; cat <&9`

// outcome is what one exchange saw. Errnos are 0 on success.
type outcome struct {
	MarkErrno    int    `json:"markErrno"`
	ConnectErrno int    `json:"connectErrno"`
	Err          string `json:"err,omitempty"`
	Data         []byte `json:"data"`
	// Closed: the peer closed the connection (EOF); TimedOut: it did not
	// within 10 s.
	Closed   bool `json:"closed"`
	TimedOut bool `json:"timedOut"`
}

// clientBinary is the copy of the test binary that clients run, readable
// by uid 65534 (the go-build directory is 0700). Set in TestMain.
var clientBinary string

func TestMain(m *testing.M) {
	if os.Getenv(clientEnv) != "" {
		runClient()
		return
	}
	dir, err := os.MkdirTemp("", "msp-attack-client-")
	if err == nil {
		err = os.Chmod(dir, 0o755)
	}
	var src []byte
	if err == nil {
		src, err = os.ReadFile(os.Args[0])
	}
	if err == nil {
		clientBinary = filepath.Join(dir, "attackclient")
		err = os.WriteFile(clientBinary, src, 0o755)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "attack tests: prepare the client binary:", err)
		os.Exit(2)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func runClient() {
	var exs []exchange
	if err := json.NewDecoder(os.Stdin).Decode(&exs); err != nil {
		fmt.Fprintln(os.Stderr, "client spec:", err)
		os.Exit(2)
	}
	outs := make([]outcome, len(exs))
	for i, ex := range exs {
		outs[i] = ex.run()
	}
	if err := json.NewEncoder(os.Stdout).Encode(outs); err != nil {
		os.Exit(2)
	}
}

func (ex exchange) run() outcome {
	var o outcome
	if ex.Comm != "" {
		runtime.LockOSThread() // the thread that connects is the one named
		name, err := unix.BytePtrFromString(ex.Comm)
		if err == nil {
			err = unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(name)), 0, 0, 0)
		}
		if err != nil {
			o.Err = "prctl: " + err.Error()
			return o
		}
	}
	d := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		if ex.Mark == 0 {
			return nil
		}
		return rc.Control(func(fd uintptr) {
			if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, ex.Mark); err != nil {
				o.MarkErrno = int(errnoOf(err))
			}
		})
	}}
	c, err := d.Dial("tcp", ex.Dst)
	if err != nil {
		o.ConnectErrno, o.Err = int(errnoOf(err)), err.Error()
		return o
	}
	defer c.Close()
	if ex.ExecBash {
		f, err := c.(*net.TCPConn).File()
		if err == nil {
			err = unix.Dup3(int(f.Fd()), 9, 0)
		}
		if err == nil {
			err = syscall.Exec("/usr/bin/bash", []string{"bash", "-c", execScript}, []string{"MSP_REQ=" + string(ex.Data)})
		}
		o.Err = "exec bash: " + err.Error()
		return o
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(ex.Data); err != nil {
		o.Err = "write: " + err.Error()
	}
	c.(*net.TCPConn).CloseWrite()
	var buf bytes.Buffer
	_, err = io.Copy(&buf, c)
	o.Data = buf.Bytes()
	var ne net.Error
	switch {
	case err == nil:
		o.Closed = true
	case errors.As(err, &ne) && ne.Timeout():
		o.TimedOut = true
	case errors.Is(err, syscall.ECONNRESET):
		o.Closed = true
	default:
		o.Err = "read: " + err.Error()
	}
	return o
}

func errnoOf(err error) syscall.Errno {
	var en syscall.Errno
	if errors.As(err, &en) {
		return en
	}
	return 0
}

// where a client runs.
type placement struct {
	uid    int      // 0 or 65534
	cgroup *os.File // the cgroup to start in (the agent's when nil)
	newNet bool     // in a new network namespace (CLONE_NEWNET)
	wrap   []string // a command that runs the client, e.g. unshare -Urn
	args   []string // arguments of the client (ignored; seen in its cmdline)
}

// raw runs the exchanges from one client process placed as p.
func (s *suite) raw(t *testing.T, p placement, exs ...exchange) []outcome {
	t.Helper()
	spec, err := json.Marshal(exs)
	if err != nil {
		t.Fatal(err)
	}
	out := s.run(t, p, append(append([]string{}, p.wrap...), clientBinary), []string{clientEnv + "=1"}, spec)
	var outs []outcome
	if err := json.Unmarshal(out, &outs); err != nil || len(outs) != len(exs) {
		t.Fatalf("client output %q: %v", out, err)
	}
	return outs
}

// run runs argv placed as p (p.args appended) with env and stdin and
// returns its standard output.
func (s *suite) run(t *testing.T, p placement, argv, env []string, stdin []byte) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	argv = append(argv, p.args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Stdin = bytes.NewReader(stdin)
	cg := p.cgroup
	if cg == nil {
		cg = s.h.CgroupFD
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cg.Fd())}
	if p.uid != 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(p.uid), Gid: uint32(p.uid)}
	}
	if p.newNet {
		cmd.SysProcAttr.Cloneflags = unix.CLONE_NEWNET
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("client %v: %v: %s", argv, err, stderr.String())
	}
	return out
}

// response is one HTTP/1.1 response as the client read it.
type response struct {
	Status  int
	Headers map[string][]string // lower-case names
	Body    string
}

func (r response) get(name string) string {
	if v := r.Headers[strings.ToLower(name)]; len(v) > 0 {
		return v[len(v)-1]
	}
	return ""
}

func (r response) reason() string { return r.get("x-ms-azure-proxy-reason") }

// parseResponses reads consecutive responses to requests that are not
// HEAD; it returns what it could read and the rest unparsed.
func parseResponses(raw []byte) ([]response, string) {
	br := bufio.NewReader(bytes.NewReader(raw))
	var out []response
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return out, line
		}
		var r response
		f := strings.Fields(line)
		if len(f) < 2 || !strings.HasPrefix(f[0], "HTTP/1.") {
			rest, _ := io.ReadAll(br)
			return out, line + string(rest)
		}
		r.Status, _ = strconv.Atoi(f[1])
		r.Headers = map[string][]string{}
		for {
			h, err := br.ReadString('\n')
			h = strings.TrimRight(h, "\r\n")
			if h == "" || err != nil {
				break
			}
			n, v, _ := strings.Cut(h, ":")
			n = strings.ToLower(n)
			r.Headers[n] = append(r.Headers[n], strings.TrimSpace(v))
		}
		switch {
		case r.Status == 204 || r.Status == 304 || r.Status < 200:
		case strings.EqualFold(r.get("transfer-encoding"), "chunked"):
			var body bytes.Buffer
			for {
				l, err := br.ReadString('\n')
				n, perr := strconv.ParseInt(strings.TrimSpace(strings.SplitN(l, ";", 2)[0]), 16, 64)
				if err != nil || perr != nil {
					break
				}
				if n == 0 {
					for t, _ := br.ReadString('\n'); t != "\r\n" && t != ""; t, _ = br.ReadString('\n') {
					}
					break
				}
				io.CopyN(&body, br, n)
				br.ReadString('\n')
			}
			r.Body = body.String()
		case r.get("content-length") != "":
			n, _ := strconv.ParseInt(r.get("content-length"), 10, 64)
			b := make([]byte, n)
			k, _ := io.ReadFull(br, b)
			r.Body = string(b[:k])
		default:
			b, _ := io.ReadAll(br)
			r.Body = string(b)
		}
		out = append(out, r)
	}
}
