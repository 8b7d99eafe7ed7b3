package audit

import (
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
)

// File modes of agent.md §7.1.
const (
	fileMode = 0o640
	dirMode  = 0o750
)

// file is what the rotating writer needs of an open log file; tests wrap
// *os.File to make writes fail.
type file interface {
	io.Writer
	Close() error
}

// openFunc opens the current log file for appending, mode 0640.
type openFunc func(path string) (file, error)

// openAppend never follows a symbolic link nor opens a special file:
// whoever could plant one in the log directory would have root append to,
// and chmod, a file of their choosing.
func openAppend(path string) (file, error) {
	if fi, err := os.Lstat(path); err == nil && !fi.Mode().IsRegular() {
		return nil, notRegular(path, fi.Mode())
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, fileMode)
	if errors.Is(err, syscall.ELOOP) { // planted after the Lstat
		return nil, notRegular(path, os.ModeSymlink)
	}
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		if err == nil {
			err = notRegular(path, fi.Mode())
		}
		return nil, err
	}
	// The umask may have narrowed the mode, an old file may be wider.
	if err := f.Chmod(fileMode); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func notRegular(path string, m os.FileMode) error {
	kind := "special file"
	switch {
	case m&os.ModeSymlink != 0:
		kind = "symbolic link"
	case m&os.ModeNamedPipe != 0:
		kind = "named pipe"
	case m.IsDir():
		kind = "directory"
	}
	return fmt.Errorf("%s is a %s, not a regular file: remove it (the audit log is never written through a link or to a special file)", path, kind)
}

// rotator writes lines to <dir>/<name>, buffered, and rotates it when the
// next line would pass maxSize: <name> becomes <name>.1.gz (compressed in
// the background), older ones shift up to <name>.<maxFiles-1>.gz and the
// oldest is removed, so at most maxFiles files exist. It is used by one
// goroutine at a time (the log's writer); only compression runs beside it.
type rotator struct {
	path     string
	maxSize  int64
	maxFiles int
	open     openFunc

	f       file // nil after a failed open; reopened on the next write
	w       *bufio.Writer
	size    int64  // bytes in the current file, buffered ones included
	pending int    // lines in w not yet flushed
	landed  uint64 // lines flushed to the file so far

	compressing sync.WaitGroup
	compressErr chan error // results of background compression
}

func newRotator(path string, maxSize int64, maxFiles int, open openFunc) (*rotator, error) {
	r := &rotator{path: path, maxSize: maxSize, maxFiles: maxFiles, open: open,
		compressErr: make(chan error, 1)}
	// A crash during compression leaves <name>.1 behind: finish it. A
	// failure is reported like a failed background compression: the log
	// still opens.
	if _, err := os.Stat(r.numbered(1)); err == nil {
		if err := compress(r.numbered(1), r.gz(1)); err != nil {
			r.compressErr <- err
		}
	}
	if err := r.reopen(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *rotator) numbered(i int) string { return r.path + "." + strconv.Itoa(i) }
func (r *rotator) gz(i int) string       { return r.numbered(i) + ".gz" }

// reopen opens the current file and learns its size.
func (r *rotator) reopen() error {
	f, err := r.open(r.path)
	if err != nil {
		return fmt.Errorf("open audit log: %w", err)
	}
	var size int64
	if fi, err := os.Stat(r.path); err == nil {
		size = fi.Size()
	}
	r.f, r.size, r.pending = f, size, 0
	if r.w == nil {
		r.w = bufio.NewWriterSize(f, 64<<10)
	} else {
		r.w.Reset(f)
	}
	return nil
}

// writeLine buffers one line, rotating first when it would not fit. The
// error says the line (or lines buffered before it) may be lost; lost
// returns how many.
func (r *rotator) writeLine(line []byte) (lost int, err error) {
	if r.f == nil {
		if err := r.reopen(); err != nil {
			return 1, err
		}
	}
	if r.size > 0 && r.size+int64(len(line)) > r.maxSize {
		if lost, err = r.rotate(); err != nil {
			return lost + 1, err
		}
	}
	if _, err := r.w.Write(line); err != nil {
		return r.fail(err, 1)
	}
	r.size += int64(len(line))
	r.pending++
	return 0, nil
}

// flush writes the buffered lines to the file.
func (r *rotator) flush() (lost int, err error) {
	if r.f == nil || r.pending == 0 {
		return 0, nil
	}
	if err := r.w.Flush(); err != nil {
		return r.fail(err, 0)
	}
	r.landed += uint64(r.pending)
	r.pending = 0
	return 0, nil
}

// fail drops the buffered lines after a write error (bufio's error is
// sticky) and closes the file so that the next write starts afresh.
func (r *rotator) fail(err error, extra int) (int, error) {
	lost := r.pending + extra
	r.w.Reset(io.Discard)
	r.f.Close()
	r.f, r.pending = nil, 0
	return lost, fmt.Errorf("write audit log: %w", err)
}

// rotate closes the current file, shifts the compressed ones and starts
// compressing the one just closed.
func (r *rotator) rotate() (lost int, err error) {
	if lost, err = r.flush(); err != nil {
		return lost, err
	}
	r.f.Close()
	r.f = nil
	r.compressing.Wait() // the previous <name>.1 must be <name>.1.gz first
	if err := os.Remove(r.gz(r.maxFiles - 1)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("rotate audit log: %w", err)
	}
	for i := r.maxFiles - 2; i >= 1; i-- {
		if err := os.Rename(r.gz(i), r.gz(i+1)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return 0, fmt.Errorf("rotate audit log: %w", err)
		}
	}
	if r.maxFiles > 1 {
		if err := os.Rename(r.path, r.numbered(1)); err != nil {
			return 0, fmt.Errorf("rotate audit log: %w", err)
		}
		r.compressing.Add(1)
		go func() {
			defer r.compressing.Done()
			if err := compress(r.numbered(1), r.gz(1)); err != nil {
				select {
				case r.compressErr <- err:
				default:
				}
			}
		}()
	} else if err := os.Truncate(r.path, 0); err != nil {
		return 0, fmt.Errorf("rotate audit log: %w", err)
	}
	return 0, r.reopen()
}

// compress writes src gzip-compressed to dst (through a temporary file,
// so dst is complete or absent) and removes src. On failure both src and
// the temporary file are removed: the disk stays bounded, and the loss is
// reported.
func compress(src, dst string) (err error) {
	defer func() {
		if err != nil {
			os.Remove(dst + ".tmp")
			os.Remove(src)
			err = fmt.Errorf("compress %s: %w", filepath.Base(src), err)
		}
	}()
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst+".tmp", os.O_WRONLY|os.O_CREATE|os.O_TRUNC|syscall.O_NOFOLLOW, fileMode)
	if err != nil {
		return err
	}
	zw := gzip.NewWriter(out)
	_, err = io.Copy(zw, in)
	if cerr := zw.Close(); err == nil {
		err = cerr
	}
	if cerr := out.Chmod(fileMode); err == nil {
		err = cerr
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(dst+".tmp", dst); err != nil {
		return err
	}
	return os.Remove(src)
}

// close flushes, waits for compression and closes the file.
func (r *rotator) close() (lost int, err error) {
	lost, err = r.flush()
	r.compressing.Wait()
	if r.f != nil {
		if cerr := r.f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("close audit log: %w", cerr)
		}
		r.f = nil
	}
	return lost, err
}
