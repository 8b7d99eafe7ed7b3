package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
)

// Supervisor runs one agent process at a time. Configure the fields, then
// call Run; Restart and Signal are safe to call from other goroutines
// while Run runs.
type Supervisor struct {
	Command []string // the agent's argv
	Env     []string // nil means the supervisor's environment
	PidFile string   // where the running agent's pid is kept
	Log     logrus.FieldLogger

	MinBackoff  time.Duration // first delay after a crash; zero means 1 s
	MaxBackoff  time.Duration // zero means 30 s
	StableAfter time.Duration // a run this long resets the back-off; zero means 60 s
	StopTimeout time.Duration // SIGTERM to SIGKILL; zero means 10 s

	restart chan struct{}
	signals chan os.Signal
}

// ExitRestart is msp-agent's exit code for "the configuration changed in
// a way that needs a new process: run me again" (EX_TEMPFAIL). The
// supervisor starts it again at once, without back-off, as systemd's
// Restart=always does.
const ExitRestart = 75

func (s *Supervisor) init() {
	if s.restart == nil {
		s.restart = make(chan struct{}, 1)
		s.signals = make(chan os.Signal, 4)
	}
	if s.MinBackoff == 0 {
		s.MinBackoff = time.Second
	}
	if s.MaxBackoff == 0 {
		s.MaxBackoff = 30 * time.Second
	}
	if s.StableAfter == 0 {
		s.StableAfter = time.Minute
	}
	if s.StopTimeout == 0 {
		s.StopTimeout = 10 * time.Second
	}
	if s.Log == nil {
		s.Log = logrus.StandardLogger()
	}
}

// New returns a Supervisor ready for Restart and Signal before Run.
func New(s Supervisor) *Supervisor {
	s.init()
	return &s
}

// Restart stops the running agent and starts it again without back-off.
func (s *Supervisor) Restart() {
	select {
	case s.restart <- struct{}{}:
	default:
	}
}

// Signal forwards sig to the running agent.
func (s *Supervisor) Signal(sig os.Signal) {
	select {
	case s.signals <- sig:
	default:
	}
}

// Run supervises until ctx ends, then stops the agent and returns nil; it
// returns an error only when the agent cannot be started at all (the
// binary is missing).
func (s *Supervisor) Run(ctx context.Context) error {
	s.init()
	if len(s.Command) == 0 {
		return errors.New("supervisor: no command")
	}
	s.stopOrphan()
	defer os.Remove(s.PidFile)
	backoff := s.MinBackoff
	for {
		if _, err := os.Stat(s.Command[0]); err != nil {
			return fmt.Errorf("supervisor: agent binary: %w", err)
		}
		cmd := exec.Command(s.Command[0], s.Command[1:]...)
		cmd.Env = s.Env
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		started := time.Now()
		if err := cmd.Start(); err != nil {
			s.Log.WithError(err).Error("cannot start the agent")
		} else {
			s.Log.WithField("pid", cmd.Process.Pid).Info("agent started")
			if err := os.WriteFile(s.PidFile, []byte(strconv.Itoa(cmd.Process.Pid)), 0o600); err != nil {
				s.Log.WithError(err).Warn("cannot write the agent's pidfile")
			}
		}
		exited := make(chan error, 1)
		if cmd.Process != nil {
			go func() { exited <- cmd.Wait() }()
		} else {
			exited <- errors.New("not started")
		}
		restartNow := false
	wait:
		for {
			select {
			case <-ctx.Done():
				s.stop(cmd, exited)
				s.Log.Info("supervisor stopped")
				return nil
			case <-s.restart:
				s.Log.Info("restart requested")
				s.stop(cmd, exited)
				restartNow = true
				break wait
			case sig := <-s.signals:
				if cmd.Process != nil {
					_ = cmd.Process.Signal(sig)
				}
			case err := <-exited:
				if cmd.ProcessState != nil && cmd.ProcessState.ExitCode() == ExitRestart {
					s.Log.Info("agent asked to be run again (exit 75: its configuration changed)")
					restartNow = true
					break wait
				}
				s.Log.WithError(err).WithField("ran", time.Since(started).Round(time.Millisecond).String()).Warn("agent exited")
				break wait
			}
		}
		if restartNow {
			backoff = s.MinBackoff
			continue
		}
		if time.Since(started) >= s.StableAfter {
			backoff = s.MinBackoff
		}
		s.Log.WithField("delay", backoff.String()).Info("restarting the agent after back-off")
		select {
		case <-ctx.Done():
			s.Log.Info("supervisor stopped")
			return nil
		case <-s.restart:
			backoff = s.MinBackoff
			continue
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, s.MaxBackoff)
	}
}

// stop ends the agent: SIGTERM, then SIGKILL after StopTimeout.
func (s *Supervisor) stop(cmd *exec.Cmd, exited <-chan error) {
	if cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(s.StopTimeout):
		s.Log.Warn("agent ignored SIGTERM; killing it")
		_ = cmd.Process.Kill()
		<-exited
	}
}

// stopOrphan stops an agent left by a supervisor that died, so two never
// run at once.
func (s *Supervisor) stopOrphan() {
	if pid, ok := Find(s.PidFile, s.Command[0]); ok {
		s.Log.WithField("pid", pid).Warn("stopping an agent left by a previous supervisor")
		_ = Stop(s.PidFile, s.Command[0], s.StopTimeout)
	}
}
