package audit

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
)

// FileName is the audit log in the log directory.
const FileName = "audit.jsonl"

// Options configure a Log. Only Dir is required.
type Options struct {
	// Dir is the log directory; it is created 0750 (and set to 0750).
	Dir string
	// MaxSize is the size at which audit.jsonl is rotated; 0 means
	// 10 MiB. MaxFiles counts audit.jsonl and its compressed
	// predecessors; 0 means 5 (audit.jsonl.1.gz … audit.jsonl.4.gz).
	MaxSize  int64
	MaxFiles int
	// QueueSize is the number of entries waiting for the writer before
	// Record drops them; 0 means 1024.
	QueueSize int
	// Now is the clock of entry times and summaries; nil means time.Now.
	Now func() time.Time
	// Logger receives write failures and recoveries (the agent log); nil
	// means they are only counted.
	Logger logrus.FieldLogger

	open openFunc // tests: a file whose writes fail
}

// Stats counts what happened to recorded entries.
type Stats struct {
	Written     uint64 // lines accepted by the file writer (a later failure counts them in Lost too)
	Dropped     uint64 // entries dropped: the queue was full or the log closed
	Lost        uint64 // lines lost to write errors (disk full, I/O errors)
	WriteErrors uint64 // failed writes, flushes, rotations and compressions
	LastError   string // the most recent of those, "" if none
	// SummaryOverflow counts requests not summarised because a bucket
	// already held its maximum number of keys.
	SummaryOverflow uint64
}

// Log is the audit log: Record queues an entry for the writer goroutine
// and updates the summaries; it never waits for the disk. Strategy: a
// buffered channel between the request path and one writer goroutine; when
// the channel is full (the disk stalls, or a burst outruns it), the entry
// is dropped and counted in Stats.Dropped. The writer formats entries
// through logrus into a 64 KiB buffer that it flushes batchWindow after
// the first entry of a batch (one wake-up and one write per batch rather
// than per request under load; lines reach the file within 2 ms). Write errors (disk full) are counted, reported once
// to Options.Logger until writes recover, and never stop the proxy. A Log
// is safe for concurrent use.
type Log struct {
	now       func() time.Time
	queue     chan Entry
	done      chan struct{}
	finished  chan struct{}
	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error

	// landedAtFailure is rot.landed when the current write failure began.
	landedAtFailure uint64

	logger   *logrus.Logger // formats into out
	out      *lineSink
	rot      *rotator
	errLog   logrus.FieldLogger
	failing  bool // the writer's view: the last write failed
	sums     *summaries
	written  atomic.Uint64
	dropped  atomic.Uint64
	lost     atomic.Uint64
	errCount atomic.Uint64
	lastErr  atomic.Pointer[string]
}

// batchWindow is how long the writer lets entries gather after the first
// one of a batch before it writes them: lines reach the file within it,
// and a queue of 1024 holds 500 000 requests a second for that long.
const batchWindow = 2 * time.Millisecond

// Open creates the log directory and opens <Dir>/audit.jsonl for
// appending, and starts the writer. Close stops it.
func Open(o Options) (*Log, error) {
	if o.Dir == "" {
		return nil, errors.New("audit: Options.Dir is empty: give the log directory (e.g. /var/log/azure-proxy-agent)")
	}
	if o.MaxSize <= 0 {
		o.MaxSize = 10 << 20
	}
	if o.MaxFiles <= 0 {
		o.MaxFiles = 5
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 1024
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.open == nil {
		o.open = openAppend
	}
	if err := os.MkdirAll(o.Dir, dirMode); err != nil {
		return nil, fmt.Errorf("audit: create log directory: %w", err)
	}
	if err := os.Chmod(o.Dir, dirMode); err != nil {
		return nil, fmt.Errorf("audit: log directory mode: %w", err)
	}
	rot, err := newRotator(filepath.Join(o.Dir, FileName), o.MaxSize, o.MaxFiles, o.open)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	l := &Log{
		now:      o.Now,
		queue:    make(chan Entry, o.QueueSize),
		done:     make(chan struct{}),
		finished: make(chan struct{}),
		rot:      rot,
		errLog:   o.Logger,
		sums:     newSummaries(),
	}
	l.out = &lineSink{l: l}
	l.logger = &logrus.Logger{
		Out:       l.out,
		Formatter: lineFormatter{},
		Hooks:     make(logrus.LevelHooks),
		Level:     logrus.InfoLevel,
		ExitFunc:  os.Exit,
	}
	go l.run()
	return l, nil
}

// Record logs e and counts it in the summaries. A zero e.Time is set to
// now. It does not block: see Log for what happens when the writer lags.
func (l *Log) Record(e Entry) {
	if e.Time.IsZero() {
		e.Time = l.now()
	}
	l.sums.add(&e, l.now())
	if l.closed.Load() {
		l.dropped.Add(1)
		return
	}
	select {
	case l.queue <- e:
	default:
		l.dropped.Add(1)
	}
}

// Summaries returns the summaries of the last 4 hours (agent.md §7.2,
// §9).
func (l *Log) Summaries() Summaries { return l.sums.snapshot(l.now()) }

// Stats returns the counters.
func (l *Log) Stats() Stats {
	s := Stats{
		Written:         l.written.Load(),
		Dropped:         l.dropped.Load(),
		Lost:            l.lost.Load(),
		WriteErrors:     l.errCount.Load(),
		SummaryOverflow: l.sums.overflow.Load(),
	}
	if p := l.lastErr.Load(); p != nil {
		s.LastError = *p
	}
	return s
}

// Close writes what is queued, flushes and closes the file. Entries
// recorded after Close are dropped.
func (l *Log) Close() error {
	l.closeOnce.Do(func() {
		l.closed.Store(true)
		close(l.done)
		<-l.finished
	})
	return l.closeErr
}

// run is the writer goroutine.
func (l *Log) run() {
	defer close(l.finished)
	batch := time.NewTimer(time.Hour)
	batch.Stop()
	for {
		select {
		case e := <-l.queue:
			l.write(&e)
			// Write what is queued and flush, then let the entries of
			// the next moment gather before looking again, for as long
			// as entries keep coming: the proxy's send then finds no
			// waiting receiver to wake (a thread wake-up per request)
			// and their lines go out in one write. A lone entry is
			// flushed at once.
			l.gather()
			for {
				l.report(l.rot.flush())
				batch.Reset(batchWindow)
				closing := false
				select {
				case <-batch.C:
				case <-l.done: // the next turn of the outer loop closes
					closing = true
				}
				if l.gather() == 0 || closing {
					break
				}
			}
		case <-l.done:
		drain:
			for {
				select {
				case e := <-l.queue:
					l.write(&e)
				default:
					break drain
				}
			}
			lost, err := l.rot.close()
			l.report(lost, err)
			l.report(0, l.compressionError())
			l.closeErr = err
			return
		}
	}
}

// gather writes the queued entries and returns how many.
func (l *Log) gather() int {
	n := 0
	for {
		select {
		case e := <-l.queue:
			l.write(&e)
			n++
		default:
			return n
		}
	}
}

// write formats one entry through logrus into the rotating file.
func (l *Log) write(e *Entry) {
	l.logger.WithField(entryField, e).Info()
	l.report(0, l.compressionError())
}

func (l *Log) compressionError() error {
	select {
	case err := <-l.rot.compressErr:
		return err
	default:
		return nil
	}
}

// report counts a failure, and tells the agent log about the first one
// and about the recovery.
func (l *Log) report(lost int, err error) {
	if lost > 0 {
		l.lost.Add(uint64(lost))
	}
	if err == nil {
		// A line buffered, or a flush with nothing buffered, is no news:
		// writes recovered once lines reach the file again.
		if l.failing && lost == 0 && l.rot.landed > l.landedAtFailure {
			l.failing = false
			if l.errLog != nil {
				l.errLog.WithField("lost", l.lost.Load()).Warn("audit log writes recovered")
			}
		}
		return
	}
	l.errCount.Add(1)
	msg := err.Error()
	l.lastErr.Store(&msg)
	if !l.failing {
		l.failing = true
		l.landedAtFailure = l.rot.landed
		if l.errLog != nil {
			l.errLog.WithError(err).Error("audit log write failed; lost entries are counted until writes recover")
		}
	}
}

// entryField is the logrus field that carries the *Entry to lineFormatter.
const entryField = "audit.entry"

// lineFormatter renders the Entry of a logrus entry as one audit line:
// the keys are exactly Entry's, without logrus's msg, level or time (the
// entry's own time is the request's).
type lineFormatter struct{}

func (lineFormatter) Format(le *logrus.Entry) ([]byte, error) {
	e, ok := le.Data[entryField].(*Entry)
	if !ok {
		return nil, fmt.Errorf("audit: logrus entry without %s", entryField)
	}
	b := le.Buffer
	if b == nil {
		b = new(bytes.Buffer)
	}
	b.Write(appendLine(b.AvailableBuffer(), e))
	return b.Bytes(), nil
}

// lineSink is logrus's output: each Write is one line for the rotator.
// It reports failures itself and returns nil, so that logrus does not
// print every failure to stderr.
type lineSink struct{ l *Log }

func (s *lineSink) Write(line []byte) (int, error) {
	lost, err := s.l.rot.writeLine(line)
	if lost == 0 && err == nil {
		s.l.written.Add(1)
	}
	s.l.report(lost, err)
	return len(line), nil
}
