package provision

import (
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newTracker(t *testing.T, latched *atomic.Bool, notified *atomic.Int32) (*Tracker, *fakeClock, string) {
	t.Helper()
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	dir := filepath.Join(t.TempDir(), "keys")
	tr := New(Options{
		KeysDir: dir,
		Now:     clk.now,
		Latched: func() bool { return latched != nil && latched.Load() },
		Notify: func() {
			if notified != nil {
				notified.Add(1)
			}
		},
	})
	return tr, clk, dir
}

func readTag(t *testing.T, dir, name string) (string, os.FileMode) {
	t.Helper()
	p := filepath.Join(dir, name)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), fi.Mode().Perm()
}

func TestAllBitsFinishSuccessfully(t *testing.T) {
	tr, clk, dir := newTracker(t, nil, nil)
	before := clk.now().UnixNano()
	for _, b := range []Bit{Redirector, Listener} {
		if err := tr.Set(b); err != nil {
			t.Fatal(err)
		}
		if st := tr.Query(before, false); st.Finished {
			t.Fatalf("finished after bit %d only", b)
		}
	}
	clk.advance(time.Second)
	if err := tr.Set(KeyLatch); err != nil {
		t.Fatal(err)
	}
	st := tr.Query(before, false)
	if !st.Finished || st.ErrorMessage != "" {
		t.Fatalf("query = %+v; want finished without error", st)
	}
	if text, mode := readTag(t, dir, "status.tag"); text != "" || mode != 0o600 {
		t.Errorf("status.tag %q mode %o; want empty, 0600", text, mode)
	}
	if _, mode := readTag(t, dir, "provisioned.tag"); mode != 0o600 {
		t.Errorf("provisioned.tag mode %o; want 0600", mode)
	}
	// A query that started after the finish is not finished while the
	// channel is not latched ...
	later := clk.now().Add(time.Minute).UnixNano()
	if st := tr.Query(later, false); st.Finished {
		t.Error("a query newer than the finish counts as finished without a latched channel")
	}
}

func TestLatchedChannelAnswersLaterQueries(t *testing.T) {
	var latched atomic.Bool
	tr, clk, _ := newTracker(t, &latched, nil)
	for _, b := range []Bit{Redirector, Listener, KeyLatch} {
		_ = tr.Set(b)
	}
	later := clk.now().Add(time.Hour).UnixNano()
	latched.Store(true)
	if st := tr.Query(later, false); !st.Finished {
		t.Error("latched and finished: a later query must count as finished (agent.md §3.3)")
	}
}

func TestTimeoutWritesOneLinePerMissingBit(t *testing.T) {
	var notified atomic.Int32
	tr, clk, dir := newTracker(t, nil, &notified)
	_ = tr.Set(Listener)
	tr.Fail(Redirector, `cgroup/connect4 not supported: kernel lacks <BPF_CGROUP_INET4_CONNECT> & "links"`)
	clk.advance(DefaultTimeout - time.Second)
	if err := tr.Tick(); err != nil {
		t.Fatal(err)
	}
	if st := tr.Query(0, true); st.Finished {
		t.Fatal("finished before the timeout")
	}
	if notified.Load() != 1 {
		t.Errorf("notify calls %d; want 1 for a not-finished query with x-ms-azure-notify", notified.Load())
	}
	clk.advance(time.Second)
	if err := tr.Tick(); err != nil {
		t.Fatal(err)
	}
	want := "ebpfProgramStatus - cgroup/connect4 not supported: kernel lacks <BPF_CGROUP_INET4_CONNECT> & \"links\"\r\n" +
		"keyLatchStatus - not ready after 2m0s\r\n"
	st := tr.Query(0, true)
	if !st.Finished || st.ErrorMessage != want {
		t.Fatalf("query = %+v; want finished with %q", st, want)
	}
	if notified.Load() != 1 {
		t.Error("a finished query must not notify the key keeper")
	}
	text, _ := readTag(t, dir, "status.tag")
	if wantTag := "ebpfProgramStatus - cgroup/connect4 not supported: kernel lacks &lt;BPF_CGROUP_INET4_CONNECT&gt; &amp; &#34;links&#34;\r\n" +
		"keyLatchStatus - not ready after 2m0s\r\n"; text != wantTag {
		t.Errorf("status.tag %q; want the XML-escaped text %q", text, wantTag)
	}
	// Bits that arrive after the error do not rewrite the outcome ...
	_ = tr.Set(Redirector)
	_ = tr.Set(KeyLatch)
	if st := tr.Query(0, false); st.ErrorMessage == "" {
		t.Error("a finished provisioning changed its outcome without a restart")
	}
	// ... until a notification restarts it.
	tr.Restart()
	if st := tr.Query(0, false); st.Finished {
		t.Error("restart did not clear the finish")
	}
	if tr.Bits()&KeyLatch != 0 {
		t.Error("restart must clear the key-latch bit")
	}
	_ = tr.Set(KeyLatch)
	if st := tr.Query(0, false); !st.Finished || st.ErrorMessage != "" {
		t.Errorf("after restart and all bits: %+v; want finished OK", st)
	}
	if text, _ := readTag(t, dir, "status.tag"); text != "" {
		t.Errorf("status.tag %q after success; want empty", text)
	}
}

type headers map[string]string

func (h headers) Get(name string) (string, bool) { v, ok := h[name]; return v, ok }

func TestServe(t *testing.T) {
	tr, _, _ := newTracker(t, nil, nil)
	for _, b := range []Bit{Redirector, Listener, KeyLatch} {
		_ = tr.Set(b)
	}
	for _, tc := range []struct {
		name   string
		h      headers
		status int
		body   string
	}{
		{"no Metadata header", headers{}, 400, ""},
		{"finished", headers{"Metadata": "true", "x-ms-azure-time-tick": "1"}, 200, `{"finished":true,"errorMessage":""}`},
		{"bad tick counts as 0", headers{"Metadata": "true", "x-ms-azure-time-tick": "soon"}, 200, `{"finished":true,"errorMessage":""}`},
		{"query after the finish", headers{"Metadata": "true", "x-ms-azure-time-tick": "9223372036854775807"}, 200, `{"finished":false,"errorMessage":""}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := tr.Serve(tc.h)
			if status != tc.status || string(body) != tc.body {
				t.Errorf("Serve = %d %s; want %d %s", status, body, tc.status, tc.body)
			}
		})
	}
}
