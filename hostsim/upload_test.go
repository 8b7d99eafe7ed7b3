package hostsim

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/mspguest/msp/agent/hostproto"
	"github.com/mspguest/msp/agent/rawhttp"
)

// pattern is a deterministic, non-repeating-per-block body source.
type pattern struct{ n int64 }

func (p *pattern) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = byte(p.n*7 + p.n>>9)
		p.n++
	}
	return len(b), nil
}

// upload sends method target with size bytes of pattern body, framed by
// Content-Length or in chunks of chunk bytes, streaming from a reader (the
// client never holds the body either), and returns the status and the
// SHA-256 of what was sent.
func upload(t *testing.T, addr, method, target string, size int64, chunk int, extra ...rawhttp.Header) (int, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	bw := bufio.NewWriterSize(c, 64<<10)
	fmt.Fprintf(bw, "%s %s HTTP/1.1\r\nHost: 168.63.129.16\r\n", method, target)
	for _, h := range extra {
		fmt.Fprintf(bw, "%s: %s\r\n", h.Name, h.Value)
	}
	if chunk == 0 {
		fmt.Fprintf(bw, "Content-Length: %d\r\n\r\n", size)
	} else {
		bw.WriteString("Transfer-Encoding: chunked\r\n\r\n")
	}
	sum := sha256.New()
	src := io.TeeReader(io.LimitReader(&pattern{}, size), sum)
	if chunk == 0 {
		if _, err := io.Copy(bw, src); err != nil {
			t.Fatal(err)
		}
	} else {
		buf := make([]byte, chunk)
		for {
			n, err := io.ReadFull(src, buf)
			if n > 0 {
				fmt.Fprintf(bw, "%x\r\n", n)
				bw.Write(buf[:n])
				bw.WriteString("\r\n")
			}
			if err != nil {
				break
			}
		}
		bw.WriteString("0\r\n\r\n")
	}
	if err := bw.Flush(); err != nil {
		t.Fatalf("send: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("answer: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode, hex.EncodeToString(sum.Sum(nil))
}

// TestExemptUploadsStreamedAndRecorded: PUT /vmAgentLog to HostGAPlugin
// and POST /machine/?comp=telemetrydata to WireServer are accepted
// unsigned in enforce mode, with bodies of several MB framed by
// Content-Length or chunked, and the record says how many bytes arrived,
// their hash and that they were not signed.
func TestExemptUploadsStreamedAndRecorded(t *testing.T) {
	e := startEmulator(t, stateWith(hostproto.ModeEnforce))
	a := e.Addrs()
	claims := rawhttp.Header{Name: hostproto.HeaderClaims, Value: hostproto.Claims(true)}
	for _, tt := range []struct {
		name         string
		addr, method string
		target       string
		size         int64
		chunk        int
	}{
		{"vmAgentLog content-length 5 MB", a.HostGA, "PUT", "/vmAgentLog", 5 << 20, 0},
		{"vmAgentLog chunked 6 MB", a.HostGA, "PUT", "/vmAgentLog", 6<<20 + 3, 100 << 10},
		{"vmAgentLog empty", a.HostGA, "PUT", "/vmAgentLog", 0, 0},
		{"telemetry content-length 5 MB", a.WireServer, "POST", "/machine/?comp=telemetrydata", 5 << 20, 0},
		{"telemetry chunked", a.WireServer, "POST", "/machine/?comp=telemetrydata", 5<<20 + 1, 7 << 10},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status, sum := upload(t, tt.addr, tt.method, tt.target, tt.size, tt.chunk, claims)
			rec := lastRecord(t, e)
			if status != 200 {
				t.Fatalf("status %d; want 200 (record %s)", status, jsonString(rec))
			}
			if rec.Class != "exempt" || !rec.Streamed || rec.Signed || int64(rec.BodyLength) != tt.size || rec.BodySHA256 != sum || rec.Status != 200 {
				t.Errorf("record %+v; want exempt, streamed, unsigned, %d bytes with sha256 %s", rec, tt.size, sum)
			}
		})
	}
}

// TestExemptUploadLimit: an upload announcing one byte more than the
// emulator's 100 MiB limit is refused with 413 without being read (the
// full 100 MiB upload is TestStressExemptUpload100MiB, make stress).
func TestExemptUploadLimit(t *testing.T) {
	e := startEmulator(t, stateWith(hostproto.ModeEnforce))
	c, err := net.Dial("tcp", e.Addrs().HostGA)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "PUT /vmAgentLog HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n", maxStreamedBody+1)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != 413 {
		t.Errorf("over the limit: %v %v; want 413", resp, err)
	}
	if rec := lastRecord(t, e); rec.Class != "unreadable" || rec.Reason != "body-too-large" {
		t.Errorf("record %+v; want an unreadable body-too-large record", rec)
	}
}

// TestExemptUploadNotBuffered: a 32 MB upload allocates far less than its
// size in the emulator's process, so the body was not held whole.
func TestExemptUploadNotBuffered(t *testing.T) {
	e := startEmulator(t, stateWith(hostproto.ModeEnforce))
	const size = 32 << 20
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	status, _ := upload(t, e.Addrs().HostGA, "PUT", "/vmAgentLog", size, 256<<10)
	runtime.ReadMemStats(&after)
	if status != 200 {
		t.Fatalf("status %d", status)
	}
	// The test client's chunk buffer and bufio writer are well under 1 MB.
	if got := after.TotalAlloc - before.TotalAlloc; got > size/4 {
		t.Errorf("allocated %d bytes for a %d-byte upload; the body must be streamed, not buffered", got, size)
	}
}

// TestSignedExemptUploadVerifiedWhileStreaming: a signed upload (what a
// client might forge; the agent never signs exempt requests) is recorded
// as signed, and its MAC is checked over the streamed body: the right MAC
// is valid, a MAC over other bytes is a bad signature. Exempt requests are
// served either way.
func TestSignedExemptUploadVerifiedWhileStreaming(t *testing.T) {
	e := startEmulator(t, stateWith(hostproto.ModeEnforce))
	g := latched(t, e)
	body := make([]byte, 2<<20)
	io.ReadFull(&pattern{}, body)
	for _, tt := range []struct {
		name       string
		send       []byte
		wantReason string
	}{
		{"signed over the body sent", body, ""},
		{"signed over other bytes", append([]byte{'x'}, body[1:]...), ReasonBadSignature},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req := g.Request("PUT", "/vmAgentLog", "168.63.129.16", body)
			req.Body = tt.send
			resp, err := g.Do(e.Addrs().HostGA, req)
			if err != nil {
				t.Fatal(err)
			}
			rec := lastRecord(t, e)
			if resp.Status != 200 || !rec.Signed || !rec.Streamed || rec.Reason != tt.wantReason || rec.BodyLength != len(body) {
				t.Errorf("status %d, record %+v; want 200, signed, streamed, reason %q", resp.Status, rec, tt.wantReason)
			}
		})
	}
}
