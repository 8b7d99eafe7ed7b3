package identity

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// fakeClock is a settable clock for the name caches.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestNameDBTTL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "passwd")
	must(t, os.WriteFile(path, []byte("alice:x:1000:1000::/home/alice:/bin/sh\n"), 0o644))
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	db := newNameDB(path, time.Minute, 16, clock.now)

	steps := []struct {
		name    string
		advance time.Duration
		file    string // rewritten before the lookup when not ""
		id      uint32
		want    string
	}{
		{name: "FirstLookup", id: 1000, want: "alice"},
		{name: "RenamedWithinTTL", advance: 59 * time.Second, file: "alicia:x:1000:1000::/:/bin/sh\nbob:x:1001:1001::/:/bin/sh\n", id: 1000, want: "alice"},
		{name: "RenamedAfterTTL", advance: time.Second, id: 1000, want: "alicia"},
		{name: "UnknownCachedNegative", id: 1002, want: ""},
		{name: "AddedWithinTTL", advance: 30 * time.Second, file: "alicia:x:1000:1000::/:/bin/sh\ncarol:x:1002:1002::/:/bin/sh\n", id: 1002, want: ""},
		{name: "AddedAfterTTL", advance: 30 * time.Second, id: 1002, want: "carol"},
		{name: "NewIDReadsFile", id: 1001, want: ""},
	}
	for _, s := range steps {
		clock.t = clock.t.Add(s.advance)
		if s.file != "" {
			must(t, os.WriteFile(path, []byte(s.file), 0o644))
		}
		if got := db.name(s.id); got != s.want {
			t.Errorf("%s: name(%d) = %q; want %q", s.name, s.id, got, s.want)
		}
	}
}

func TestNameDBBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "group")
	must(t, os.WriteFile(path, []byte("a:x:1:\nb:x:2:\nc:x:3:\nd:x:4:\n"), 0o644))
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	db := newNameDB(path, time.Hour, 2, clock.now)
	for id, want := range map[uint32]string{1: "a", 2: "b", 3: "c", 4: "d", 5: ""} {
		if got := db.name(id); got != want {
			t.Errorf("name(%d) = %q; want %q", id, got, want)
		}
		if n := len(db.entries); n > 2 {
			t.Fatalf("cache holds %d ids; want at most 2", n)
		}
	}
}

func TestNameDBUnreadable(t *testing.T) {
	db := newNameDB(filepath.Join(t.TempDir(), "missing"), time.Minute, 4, time.Now)
	if got := db.name(0); got != "" {
		t.Errorf("name(0) from a missing file = %q; want \"\"", got)
	}
}

func TestParseDBLine(t *testing.T) {
	tests := []struct {
		line string
		id   uint32
		name string
		ok   bool
	}{
		{"root:x:0:0:root:/root:/bin/bash", 0, "root", true},
		{"adm:x:4:syslog,alice", 4, "adm", true},
		{"adm:x:4:syslog,alice", 5, "", false},
		{"#root:x:0:0", 0, "", false},
		{"+nis:x:0:0", 0, "", false},
		{":x:0:0", 0, "", false},
		{"root:x:", 0, "", false},
		{"root:x:0x0:0", 0, "", false},
		{"big:x:99999999999999999999:0", 0, "", false},
		{"", 0, "", false},
	}
	for _, tt := range tests {
		name, ok := parseDBLine([]byte(tt.line), tt.id)
		if name != tt.name || ok != tt.ok {
			t.Errorf("parseDBLine(%q, %d) = %q, %v; want %q, %v", tt.line, tt.id, name, ok, tt.name, tt.ok)
		}
	}
}
