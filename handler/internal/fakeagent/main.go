// Command fakeagent stands in for msp-agent in the handler's tests until
// the daemon lands: the same command line (--config, --status [--wait N],
// --cleanup, --version), a strict read of the configuration the handler
// writes (issue 9 item 2), and files that let tests see what it did:
//
//	<stateDir>/fake-agent.pid      while running
//	<stateDir>/keys/fake.key       a "key" (0600) that upgrades must keep
//	<stateDir>/fake-config.json    the configuration last loaded (start, SIGHUP)
//	<stateDir>/fake-starts         one line per start
//	<logDir>/status.json           the aggregate status, every 200 ms
//	<bpffsDir>/fake-pin            a "pin" that --cleanup removes
//
// A file <stateDir>/fake-fail makes --status report an error (exit 2) with
// its content as the message. The version is set at build time with
// -ldflags "-X main.version=…".
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

var version = "0.0.0-fake"

type config struct {
	Listen              string          `json:"listen"`
	StateDir            string          `json:"stateDir"`
	LogDir              string          `json:"logDir"`
	LogLevel            string          `json:"logLevel"`
	Endpoints           json.RawMessage `json:"endpoints"`
	Cgroup              string          `json:"cgroup"`
	BpffsDir            string          `json:"bpffsDir"`
	PollIntervalSeconds int             `json:"pollIntervalSeconds"`
	NetnsPolicy         string          `json:"netnsPolicy"`
	Limits              json.RawMessage `json:"limits"`
	Settings            *struct {
		IMDS       json.RawMessage `json:"imds"`
		WireServer json.RawMessage `json:"wireServer"`
	} `json:"settings"`
}

func main() {
	cfgPath := flag.String("config", "/etc/msp-agent/config.json", "configuration file")
	status := flag.Bool("status", false, "report readiness")
	wait := flag.Int("wait", 0, "seconds to wait for readiness")
	cleanup := flag.Bool("cleanup", false, "remove pins")
	showVersion := flag.Bool("version", false, "print the version")
	flag.Parse()
	if *showVersion {
		fmt.Println("msp-agent", version)
		return
	}
	cfg, raw, err := load(*cfgPath)
	if err != nil {
		fmt.Println(err)
		os.Exit(2)
	}
	switch {
	case *status:
		os.Exit(checkStatus(cfg, time.Duration(*wait)*time.Second))
	case *cleanup:
		if err := os.RemoveAll(filepath.Join(cfg.BpffsDir, "fake-pin")); err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		return
	}
	if err := run(cfg, raw, *cfgPath); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func load(path string) (config, []byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return config{}, nil, err
	}
	var c config
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return config{}, nil, fmt.Errorf("config %s: %w", path, err)
	}
	if c.StateDir == "" || c.LogDir == "" || c.BpffsDir == "" {
		return config{}, nil, errors.New("fake agent needs stateDir, logDir and bpffsDir in its config")
	}
	return c, raw, nil
}

func checkStatus(c config, wait time.Duration) int {
	deadline := time.Now().Add(wait)
	for {
		if msg, err := os.ReadFile(filepath.Join(c.StateDir, "fake-fail")); err == nil {
			fmt.Println(string(msg))
			return 2
		}
		if data, err := os.ReadFile(filepath.Join(c.StateDir, "fake-agent.pid")); err == nil {
			if pid, _ := strconv.Atoi(string(data)); pid > 0 && syscall.Kill(pid, 0) == nil {
				fmt.Println("ready")
				return 0
			}
		}
		if time.Now().After(deadline) {
			fmt.Println("not ready")
			return 1
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func run(c config, raw []byte, cfgPath string) error {
	for _, d := range []string{filepath.Join(c.StateDir, "keys"), c.LogDir, c.BpffsDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	key := filepath.Join(c.StateDir, "keys", "fake.key")
	if _, err := os.Stat(key); err != nil {
		if err := os.WriteFile(key, []byte("not a real key"), 0o600); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(c.BpffsDir, "fake-pin"), nil, 0o600); err != nil {
		return err
	}
	starts, err := os.OpenFile(filepath.Join(c.StateDir, "fake-starts"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	fmt.Fprintf(starts, "%d %s\n", os.Getpid(), version)
	starts.Close()
	if err := os.WriteFile(filepath.Join(c.StateDir, "fake-config.json"), raw, 0o600); err != nil {
		return err
	}
	pidFile := filepath.Join(c.StateDir, "fake-agent.pid")
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
		return err
	}
	defer os.Remove(pidFile)
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		writeStatus(c)
		select {
		case sig := <-sigs:
			if sig != syscall.SIGHUP {
				return nil
			}
			if _, raw, err := load(cfgPath); err == nil {
				_ = os.WriteFile(filepath.Join(c.StateDir, "fake-config.json"), raw, 0o600)
			}
		case <-tick.C:
		}
	}
}

func writeStatus(c config) {
	doc := map[string]any{
		"timestamp": time.Now().UTC().Format("2006-01-02T15:04:05.000"),
		"proxyAgentStatus": map[string]any{
			"version": version, "status": "SUCCESS",
			"keyLatchStatus":        map[string]any{"status": "RUNNING", "message": "fake"},
			"proxyConnectionsCount": 1,
		},
		"proxyConnectionSummary":    []any{map[string]any{"userName": "root", "processFullPath": "/usr/bin/curl", "count": 1}},
		"failedAuthenticateSummary": []any{},
	}
	data, _ := json.Marshal(doc)
	tmp := filepath.Join(c.LogDir, ".status.json.tmp")
	if os.WriteFile(tmp, data, 0o640) == nil {
		_ = os.Rename(tmp, filepath.Join(c.LogDir, "status.json"))
	}
}
