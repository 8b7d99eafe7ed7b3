package benchproxy

import (
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
	"time"

	"golang.org/x/sys/unix"

	"github.com/mspguest/msp/agent/provision"
	"github.com/mspguest/msp/hostsim"
)

// agentProc is the real msp-agent with a configuration pointing at the
// emulator, attached to the bench's child cgroup, its directories and a
// private bpffs under dir.
type agentProc struct {
	bin, dir, cfg string
	cmd           *exec.Cmd
	log           *bytes.Buffer
	done          chan error
}

func startAgent(bin string, procs int, dir, cg string, a hostsim.Addrs) (*agentProc, error) {
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("msp-agent binary: %w (build it with `make build` or pass -agent)", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	listen, err := freeLoopbackPort()
	if err != nil {
		return nil, err
	}
	cfg := map[string]any{
		"listen":   listen,
		"stateDir": filepath.Join(dir, "state"),
		"logDir":   filepath.Join(dir, "log"),
		"logLevel": "warn",
		"endpoints": map[string]string{
			"imds": a.IMDS, "wireServer": a.WireServer, "hostGAPlugin": a.HostGA,
		},
		"cgroup":   cg,
		"bpffsDir": filepath.Join(dir, "bpffs", "msp-agent"),
	}
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, err
	}
	p := &agentProc{bin: bin, dir: dir, cfg: filepath.Join(dir, "config.json"), log: &bytes.Buffer{}, done: make(chan error, 1)}
	if err := os.WriteFile(p.cfg, data, 0o600); err != nil {
		return nil, err
	}
	p.cmd = exec.Command(bin, "--config", p.cfg)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if procs > 0 {
		p.cmd.Env = append(os.Environ(), "GOMAXPROCS="+strconv.Itoa(procs))
	}
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { p.done <- p.cmd.Wait() }()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	if res := provision.Wait(ctx, listen, 30*time.Second); res.Code != provision.ExitFinished {
		p.stop()
		return nil, fmt.Errorf("msp-agent did not provision: %s\nagent log:\n%s", res.Message, p.log)
	}
	return p, nil
}

func (p *agentProc) pids() []int { return []int{p.cmd.Process.Pid} }

// stop ends the agent, detaches and unpins what it left (it keeps its
// pins on purpose: fail closed) and unmounts its private bpffs.
func (p *agentProc) stop() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	p.cmd = nil
	_ = exec.Command(p.bin, "--config", p.cfg, "--cleanup").Run()
	_ = unix.Unmount(filepath.Join(p.dir, "bpffs"), unix.MNT_DETACH)
}

// nginxProc is nginx as a plain reverse proxy: it adds one header and
// keeps a pool of upstream keep-alive connections. Its configuration is
// generated under dir; it listens on loopback only.
type nginxProc struct {
	addr string
	cmd  *exec.Cmd
	done chan error
	log  *bytes.Buffer
}

// nginxConf: as many workers as CPUs (the agent's Go runtime uses as
// many threads), no access log (the lightest nginx a user would run; the
// agent writes its audit log), HTTP/1.1 with a keep-alive pool upstream,
// and no cap on requests per connection either side (nginx closes a
// connection after 1000 by default; the agent does not).
const nginxConf = `worker_processes auto;
daemon off;
master_process on;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    client_body_temp_path %[1]s/tmp/body;
    proxy_temp_path %[1]s/tmp/proxy;
    fastcgi_temp_path %[1]s/tmp/fastcgi;
    uwsgi_temp_path %[1]s/tmp/uwsgi;
    scgi_temp_path %[1]s/tmp/scgi;
    upstream metadata {
        server %[2]s;
        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        listen %[3]s;
        location / {
            proxy_pass http://metadata;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Bench-Proxy nginx;
        }
    }
}
`

func startNginx(bin, dir, upstream string) (*nginxProc, error) {
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		return nil, err
	}
	listen, err := freeLoopbackPort()
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, nginxConf, dir, upstream, listen), 0o644); err != nil {
		return nil, err
	}
	p := &nginxProc{addr: listen, log: &bytes.Buffer{}, done: make(chan error, 1)}
	p.cmd = exec.Command(bin, "-e", filepath.Join(dir, "error.log"), "-p", dir+"/", "-c", conf)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start nginx: %w", err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp4", listen, time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case err := <-p.done:
			errLog, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			return nil, fmt.Errorf("nginx exited at start: %v: %s%s", err, p.log, errLog)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("nginx did not listen on %s within 10 s", listen)
		}
	}
	return p, nil
}

// pids are the master and its workers.
func (p *nginxProc) pids() []int {
	if p.cmd == nil {
		return nil
	}
	return append([]int{p.cmd.Process.Pid}, childrenOf(p.cmd.Process.Pid)...)
}

func (p *nginxProc) stop() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM) // fast shutdown: workers too
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	p.cmd = nil
}

// childrenOf lists the direct children of pid from /proc/PID/stat.
func childrenOf(pid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, n)
		}
	}
	return out
}

func freeLoopbackPort() (string, error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// findNginx returns the nginx binary, installing nginx-light from apt
// when asked and missing.
func findNginx(install bool, log io.Writer) (string, error) {
	look := func() (string, error) {
		if p, err := exec.LookPath("nginx"); err == nil {
			return p, nil
		}
		if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
			return "/usr/sbin/nginx", nil
		}
		return "", errors.New("nginx not found")
	}
	if p, err := look(); err == nil {
		return p, nil
	}
	if !install {
		return "", errors.New("nginx not found: install nginx-light (apt-get install nginx-light, or scripts/ci.d/30-bench-tools.sh)")
	}
	fmt.Fprintln(log, "msp-bench compare: installing nginx-light from apt")
	for _, args := range [][]string{{"update", "-qq"}, {"install", "-y", "-qq", "--no-install-recommends", "nginx-light"}} {
		cmd := exec.Command("apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("apt-get %s: %w\n%s", args[0], err, out)
		}
	}
	return look()
}

// Machine describes where the run happened.
type Machine struct {
	Kernel string `json:"kernel"`
	CPU    string `json:"cpu"`
	CPUs   int    `json:"cpus"`
	Go     string `json:"go"`
	Nginx  string `json:"nginx"`
}

func machineOf(nginxBin string) Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version()}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if out, err := exec.Command(nginxBin, "-v").CombinedOutput(); err == nil {
		m.Nginx = strings.TrimPrefix(strings.TrimSpace(string(out)), "nginx version: ")
	}
	return m
}
