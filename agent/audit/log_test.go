package audit

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
)

// readLines returns the entries of a plain or gzip-compressed audit file.
func readLines(t *testing.T, path string) []Entry {
	t.Helper()
	f, err := os.Open(path)
	must(t, err)
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		zr, err := gzip.NewReader(f)
		must(t, err)
		r = zr
	}
	var out []Entry
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		var e Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("%s: line %q: %v", filepath.Base(path), sc.Bytes(), err)
		}
		out = append(out, e)
	}
	must(t, sc.Err())
	return out
}

func entryN(i int) Entry {
	e := sampleEntry()
	e.ID = strconv.Itoa(i)
	return e
}

func mode(t *testing.T, path string) fs.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	must(t, err)
	return fi.Mode().Perm()
}

func TestLogWritesLinesWithModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log")
	l, err := Open(Options{Dir: dir})
	must(t, err)
	for i := range 3 {
		l.Record(entryN(i))
	}
	must(t, l.Close())
	got := readLines(t, filepath.Join(dir, FileName))
	if len(got) != 3 || got[0].ID != "0" || got[2].ID != "2" {
		t.Fatalf("lines %+v; want ids 0,1,2", got)
	}
	if m := mode(t, dir); m != dirMode {
		t.Errorf("directory mode %o; want %o", m, dirMode)
	}
	if m := mode(t, filepath.Join(dir, FileName)); m != fileMode {
		t.Errorf("file mode %o; want %o", m, fileMode)
	}
	if s := l.Stats(); s.Written != 3 || s.Dropped != 0 || s.Lost != 0 || s.WriteErrors != 0 {
		t.Errorf("stats %+v; want 3 written and nothing else", s)
	}
}

func TestLogFixesWiderModes(t *testing.T) {
	dir := t.TempDir()
	must(t, os.Chmod(dir, 0o777))
	must(t, os.WriteFile(filepath.Join(dir, FileName), nil, 0o666))
	must(t, os.Chmod(filepath.Join(dir, FileName), 0o666))
	l, err := Open(Options{Dir: dir})
	must(t, err)
	must(t, l.Close())
	if m := mode(t, dir); m != dirMode {
		t.Errorf("directory mode %o; want %o", m, dirMode)
	}
	if m := mode(t, filepath.Join(dir, FileName)); m != fileMode {
		t.Errorf("file mode %o; want %o", m, fileMode)
	}
}

// TestOpenRefusesLinksAndSpecialFiles: whoever can plant audit.jsonl as a
// symbolic link or a FIFO does not get root to append to, or chmod, the
// file it points at; the error names the file and the fix.
func TestOpenRefusesLinksAndSpecialFiles(t *testing.T) {
	for _, tt := range []struct {
		name  string
		plant func(t *testing.T, path, victim string)
		want  string
	}{
		{"symlink", func(t *testing.T, path, victim string) { must(t, os.Symlink(victim, path)) }, "symbolic link"},
		{"fifo", func(t *testing.T, path, _ string) { must(t, syscall.Mkfifo(path, 0o600)) }, FileName},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			victim := filepath.Join(t.TempDir(), "victim")
			must(t, os.WriteFile(victim, []byte("victim\n"), 0o600))
			tt.plant(t, filepath.Join(dir, FileName), victim)
			l, err := Open(Options{Dir: dir})
			if err == nil {
				l.Close()
				t.Fatal("Open succeeded; want it to refuse")
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "remove it") {
				t.Errorf("error %q; want it to name %q and the fix", err, tt.want)
			}
			if b, _ := os.ReadFile(victim); string(b) != "victim\n" || mode(t, victim) != 0o600 {
				t.Errorf("victim now %q mode %o; want untouched", b, mode(t, victim))
			}
		})
	}
}

func TestOpenWithoutDir(t *testing.T) {
	if _, err := Open(Options{}); err == nil || !strings.Contains(err.Error(), "Options.Dir") {
		t.Errorf("Open without Dir: %v; want an error naming Options.Dir", err)
	}
}

func TestRotation(t *testing.T) {
	dir := t.TempDir()
	line := len(appendLine(nil, ptr(entryN(100))))
	const maxFiles = 3
	l, err := Open(Options{Dir: dir, MaxSize: int64(4*line + line/2), MaxFiles: maxFiles})
	must(t, err)
	const total = 30 // 4 lines per file: 8 rotations
	for i := range total {
		l.Record(entryN(100 + i))
		waitWritten(t, l, uint64(i+1)) // one entry per flush: rotation sees every line
	}
	must(t, l.Close())

	names, err := filepath.Glob(filepath.Join(dir, FileName+"*"))
	must(t, err)
	want := []string{FileName, FileName + ".1.gz", FileName + ".2.gz"}
	if len(names) != len(want) {
		t.Fatalf("files %v; want %v", names, want)
	}
	// Newest last: .2.gz, .1.gz, then the current file; ids continuous.
	var ids []string
	for _, name := range []string{want[2], want[1], want[0]} {
		path := filepath.Join(dir, name)
		if m := mode(t, path); m != fileMode {
			t.Errorf("%s mode %o; want %o", name, m, fileMode)
		}
		for _, e := range readLines(t, path) {
			ids = append(ids, e.ID)
		}
	}
	if len(ids) < 2*4+1 {
		t.Fatalf("kept ids %v; want at least 9", ids)
	}
	for i := range ids {
		if want := strconv.Itoa(total + 100 - len(ids) + i); ids[i] != want {
			t.Fatalf("kept ids %v; want the newest %d in order", ids, len(ids))
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, FileName)); err != nil || fi.Size() > int64(4*line+line/2) {
		t.Errorf("current file %v, %v; want at most the size limit", fi.Size(), err)
	}
}

func TestLeftoverUncompressedIsCompressedAtOpen(t *testing.T) {
	dir := t.TempDir()
	e := entryN(7)
	must(t, os.WriteFile(filepath.Join(dir, FileName+".1"), appendLine(nil, &e), 0o640))
	l, err := Open(Options{Dir: dir})
	must(t, err)
	must(t, l.Close())
	if _, err := os.Stat(filepath.Join(dir, FileName+".1")); !os.IsNotExist(err) {
		t.Errorf("%s.1 still there: %v", FileName, err)
	}
	if got := readLines(t, filepath.Join(dir, FileName+".1.gz")); len(got) != 1 || got[0].ID != "7" {
		t.Errorf("%s.1.gz holds %+v; want entry 7", FileName, got)
	}
}

// failingFile is a log file whose writes fail while full is set, like a
// full disk.
type failingFile struct {
	*os.File
	full *atomic.Bool
}

func (f failingFile) Write(p []byte) (int, error) {
	if f.full.Load() {
		return 0, &fs.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
	}
	return f.File.Write(p)
}

func TestDiskFullIsCountedAndRecovers(t *testing.T) {
	dir := t.TempDir()
	var full atomic.Bool
	logger, hook := logtest.NewNullLogger()
	l, err := Open(Options{Dir: dir, Logger: logger, open: func(path string) (file, error) {
		f, err := openAppend(path)
		if err != nil {
			return nil, err
		}
		return failingFile{File: f.(*os.File), full: &full}, nil
	}})
	must(t, err)
	l.Record(entryN(1))
	waitWritten(t, l, 1)
	full.Store(true)
	// One entry at a time, so that each is its own batch: a batch that
	// fails after one that failed is not a recovery.
	for i := range 5 {
		l.Record(entryN(10 + i))
		waitFor(t, "the lost line", func() bool { return l.Stats().Lost == uint64(i+1) })
	}
	full.Store(false)
	l.Record(entryN(2))
	must(t, l.Close())

	got := readLines(t, filepath.Join(dir, FileName))
	if len(got) != 2 || got[0].ID != "1" || got[1].ID != "2" {
		t.Errorf("lines %+v; want entries 1 and 2 (the others were lost)", got)
	}
	s := l.Stats()
	if s.Lost != 5 || s.WriteErrors == 0 || !strings.Contains(s.LastError, "no space left") {
		t.Errorf("stats %+v; want 5 lost and the ENOSPC error", s)
	}
	var failed, recovered int
	for _, e := range hook.AllEntries() {
		switch {
		case e.Level == logrus.ErrorLevel && strings.Contains(e.Message, "write failed"):
			failed++
		case e.Level == logrus.WarnLevel && strings.Contains(e.Message, "recovered"):
			recovered++
		}
	}
	if failed != 1 || recovered != 1 {
		t.Errorf("agent log: %d failure and %d recovery messages; want one each", failed, recovered)
	}
}

// blockingFile holds every write until release is closed.
type blockingFile struct {
	*os.File
	release chan struct{}
}

func (f blockingFile) Write(p []byte) (int, error) {
	<-f.release
	return f.File.Write(p)
}

func TestRecordNeverBlocksOnAStalledDisk(t *testing.T) {
	dir := t.TempDir()
	release := make(chan struct{})
	l, err := Open(Options{Dir: dir, QueueSize: 4, open: func(path string) (file, error) {
		f, err := openAppend(path)
		if err != nil {
			return nil, err
		}
		return blockingFile{File: f.(*os.File), release: release}, nil
	}})
	must(t, err)
	const n = 50
	done := make(chan struct{})
	go func() {
		for i := range n {
			l.Record(entryN(i))
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Record blocked on a stalled disk")
	}
	close(release)
	must(t, l.Close())
	s := l.Stats()
	// The writer may take a few entries before its first flush blocks;
	// after that at most QueueSize wait and the rest are dropped.
	if s.Dropped < n/2 || s.Written+s.Dropped != n {
		t.Errorf("stats %+v; want at least %d dropped and written+dropped = %d", s, n/2, n)
	}
	if got := readLines(t, filepath.Join(dir, FileName)); uint64(len(got)) != s.Written {
		t.Errorf("%d lines in the file; want %d", len(got), s.Written)
	}
}

func TestConcurrentRecord(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(Options{Dir: dir, QueueSize: 8192, MaxSize: 64 << 10})
	must(t, err)
	const goroutines, each = 8, 400
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				l.Record(entryN(g*each + i))
				if i%50 == 0 {
					l.Summaries()
					l.Stats()
				}
			}
		})
	}
	wg.Wait()
	must(t, l.Close())
	s := l.Stats()
	if s.Written+s.Dropped != goroutines*each || s.Lost != 0 || s.WriteErrors != 0 {
		t.Errorf("stats %+v; want written+dropped = %d and no errors", s, goroutines*each)
	}
	var lines uint64
	names, _ := filepath.Glob(filepath.Join(dir, FileName+"*"))
	for _, name := range names {
		lines += uint64(len(readLines(t, name)))
	}
	if lines > s.Written || s.Written > 0 && lines == 0 {
		t.Errorf("%d lines on disk for %d written", lines, s.Written)
	}
	if got := l.Summaries().FailedAuthenticateSummary; len(got) != 1 || got[0].Count != goroutines*each {
		t.Errorf("failed summary %+v; want one key counted %d times", got, goroutines*each)
	}
}

func TestRecordAfterCloseIsDropped(t *testing.T) {
	l, err := Open(Options{Dir: t.TempDir()})
	must(t, err)
	must(t, l.Close())
	must(t, l.Close())
	l.Record(entryN(1))
	if s := l.Stats(); s.Dropped != 1 {
		t.Errorf("stats %+v; want 1 dropped", s)
	}
}

func TestFormatterRejectsForeignEntries(t *testing.T) {
	if _, err := (lineFormatter{}).Format(logrus.NewEntry(logrus.New())); err == nil {
		t.Error("Format of a logrus entry without an audit entry succeeded")
	}
	var b bytes.Buffer
	le := logrus.NewEntry(logrus.New()).WithField(entryField, ptr(entryN(3)))
	le.Buffer = &b
	out, err := (lineFormatter{}).Format(le)
	must(t, err)
	if bytes.Contains(out, []byte(`"msg"`)) || bytes.Contains(out, []byte(`"level"`)) {
		t.Errorf("line %s carries logrus keys", out)
	}
}

func ptr[T any](v T) *T { return &v }

func waitWritten(t *testing.T, l *Log, n uint64) {
	t.Helper()
	waitFor(t, strconv.FormatUint(n, 10)+" written", func() bool { return l.Stats().Written >= n })
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestLeftoverThatCannotBeCompressedIsReported(t *testing.T) {
	dir := t.TempDir()
	// A directory where the compressed file must go makes the rename fail.
	must(t, os.WriteFile(filepath.Join(dir, FileName+".1"), []byte("{}\n"), 0o640))
	must(t, os.Mkdir(filepath.Join(dir, FileName+".1.gz"), 0o750))
	must(t, os.WriteFile(filepath.Join(dir, FileName+".1.gz", "x"), nil, 0o640))
	l, err := Open(Options{Dir: dir})
	must(t, err)
	l.Record(entryN(1))
	must(t, l.Close())
	if s := l.Stats(); s.WriteErrors != 1 || !strings.Contains(s.LastError, "compress") || s.Written != 1 {
		t.Errorf("stats %+v; want the compression error counted and the entry written", s)
	}
}

// countingFile counts writes to the file.
type countingFile struct {
	*os.File
	writes *atomic.Int64
}

func (f countingFile) Write(p []byte) (int, error) {
	f.writes.Add(1)
	return f.File.Write(p)
}

// TestWriterBatchesPacedEntries: entries arriving one by one, as the
// proxy's requests do, go out in a few writes (the writer is not woken
// for each), every line in order; a lone entry reaches the file without
// Close.
func TestWriterBatchesPacedEntries(t *testing.T) {
	dir := t.TempDir()
	var writes atomic.Int64
	l, err := Open(Options{Dir: dir, open: func(path string) (file, error) {
		f, err := openAppend(path)
		if err != nil {
			return nil, err
		}
		return countingFile{File: f.(*os.File), writes: &writes}, nil
	}})
	must(t, err)
	l.Record(entryN(0))
	waitFor(t, "the lone line in the file", func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, FileName))
		return strings.Count(string(b), "\n") == 1
	})
	if n := writes.Load(); n != 1 {
		t.Errorf("%d writes for one line, want 1", n)
	}
	const n = 200
	start := time.Now()
	for i := 1; i <= n; i++ {
		l.Record(entryN(i))
		time.Sleep(50 * time.Microsecond)
	}
	elapsed := time.Since(start)
	must(t, l.Close())
	// One write per batchWindow at most, plus the first line's and slack
	// for a descheduled writer.
	if max := int64(elapsed/batchWindow) + 3; writes.Load() > max || writes.Load() > n/2 {
		t.Errorf("%d writes for %d paced lines over %v; want at most %d (one per %v)", writes.Load(), n, elapsed, max, batchWindow)
	}
	got := readLines(t, filepath.Join(dir, FileName))
	if len(got) != n+1 {
		t.Fatalf("%d lines, want %d", len(got), n+1)
	}
	for i, e := range got {
		if e.ID != strconv.Itoa(i) {
			t.Fatalf("line %d has id %s: out of order", i, e.ID)
		}
	}
}
