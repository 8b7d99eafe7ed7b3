package attack

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mspguest/msp/agent/hostproto"
	"github.com/mspguest/msp/internal/agenttest"
)

// TestPlantedDirectories: state and log directories that uid 65534 made
// before the agent first ran (a stateDir or logDir under a world-writable
// parent), with audit.jsonl planted as a link to a root file. The agent
// takes the directories over (root's, 0700/0750) and refuses to write
// through the link, naming it; the linked file is untouched. Once the link
// is gone it starts and serves, signed.
func TestPlantedDirectories(t *testing.T) {
	requireRoot(t)
	h := agenttest.New(t, agenttest.Options{Subnet: "127.0.4"})
	state, logDir := filepath.Join(h.Dir, "state"), filepath.Join(h.Dir, "log")
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("root's file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{state, filepath.Join(state, "rules"), logDir} {
		if err := os.MkdirAll(d, 0o777); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, 0o777); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(d, nobody, nobody); err != nil {
			t.Fatal(err)
		}
	}
	link := filepath.Join(logDir, "audit.jsonl")
	if err := os.Symlink(victim, link); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(link, nobody, nobody); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(h.Bin, "--config", h.ConfigPath)
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("the agent ran on with a planted audit.jsonl link: %s", out)
	}
	if err == nil || !strings.Contains(string(out), link) || !strings.Contains(string(out), "symbolic link") {
		t.Errorf("agent with a planted link: %v\n%s\nwant it to refuse, naming %s", err, out, link)
	}
	if b, _ := os.ReadFile(victim); string(b) != "root's file\n" {
		t.Errorf("the linked file now holds %q", b)
	}
	if fi, _ := os.Stat(victim); fi.Mode().Perm() != 0o600 {
		t.Errorf("the linked file's mode is now %v", fi.Mode())
	}
	for d, mode := range map[string]os.FileMode{state: 0o700, filepath.Join(state, "rules"): 0o700, logDir: 0o750} {
		fi, err := os.Lstat(d)
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != 0 || st.Gid != 0 || fi.Mode().Perm() != mode {
			t.Errorf("%s: uid %d gid %d mode %v; want root's, %v", d, st.Uid, st.Gid, fi.Mode().Perm(), mode)
		}
	}

	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	h.Start()
	if r := h.Curl(nobody, "GET", h.URL(hostproto.IMDS, instance)); r.Status != 200 {
		t.Fatalf("after the link was removed: %+v", r)
	}
	if rec := h.LastRecord(hostproto.IMDS, instance); rec == nil || !rec.Signed || !rec.Valid {
		t.Errorf("host record %+v; want signed and valid", rec)
	}
}
