package replaytest

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/embedgate/embedgate/internal/testsupport"
)

// RedisServer is a throw-away redis-server (or redis-sentinel) on a free
// loopback port, with no persistence, for the unit and end-to-end tests.
// Stop and Start simulate a crash and a restart on the same address.
type RedisServer struct {
	t    testing.TB
	Port int
	dir  string
	opts RedisOptions

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	logs testsupport.LogBuffer
}

// RedisOptions adjust StartRedisWith.
type RedisOptions struct {
	// Args are more redis-server arguments, e.g. "--replicaof", "127.0.0.1 6379".
	Args []string
	// TLS serves TLS only (no plain port), with client certificates
	// required and checked against TLS.CA.
	TLS *TLSFiles
	// Sentinel runs redis-sentinel on a config file holding Config.
	Sentinel bool
	Config   string
}

// StartRedis starts a plain redis-server for t and stops it when t ends.
// Without redis-server on PATH the test is skipped, except under CI=true,
// where a silently skipped cluster suite would hide a broken setup: it fails.
func StartRedis(t testing.TB) *RedisServer { return StartRedisWith(t, RedisOptions{}) }

// StartRedisWith starts a server with opts, like StartRedis.
func StartRedisWith(t testing.TB, opts RedisOptions) *RedisServer {
	t.Helper()
	bin := "redis-server"
	if opts.Sentinel {
		bin = "redis-sentinel"
	}
	Require(t, bin)
	s := &RedisServer{t: t, Port: testsupport.FreePort(t), dir: t.TempDir(), opts: opts}
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// Require skips t when the named program (redis-server, redis-sentinel,
// redis-cli) is missing, or fails it under CI=true.
func Require(t testing.TB, program string) {
	t.Helper()
	if _, err := exec.LookPath(program); err != nil {
		pkg := map[string]string{"redis-server": "redis-server", "redis-sentinel": "redis-sentinel", "redis-cli": "redis-tools"}[program]
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not found (%v): install Debian's %s package (scripts/test does so as root)", program, err, pkg)
		}
		t.Skipf("%s not found (%v); install %s to run this test", program, err, pkg)
	}
}

// Addr is host:port.
func (s *RedisServer) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.Port) }

// URL is the redis:// (rediss:// with TLS) URL of the server.
func (s *RedisServer) URL() string {
	if s.opts.TLS != nil {
		return "rediss://" + s.Addr()
	}
	return "redis://" + s.Addr()
}

// Dir is the server's working directory.
func (s *RedisServer) Dir() string { return s.dir }

// Logs is what the server printed since it last started.
func (s *RedisServer) Logs() string { return s.logs.String() }

func (s *RedisServer) command() *exec.Cmd {
	port := strconv.Itoa(s.Port)
	if s.opts.Sentinel {
		conf := s.dir + "/sentinel.conf"
		// Sentinel rewrites its config file: write it once, keep it across restarts.
		if _, err := os.Stat(conf); err != nil {
			body := "port " + port + "\nbind 127.0.0.1\ndir " + s.dir + "\n" + s.opts.Config
			if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
				s.t.Fatal(err)
			}
		}
		return exec.Command("redis-sentinel", conf)
	}
	// A replica's first sync starts at once, not after the default 5s
	// wait for more replicas.
	args := []string{"--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", s.dir, "--repl-diskless-sync-delay", "0"}
	if f := s.opts.TLS; f != nil {
		args = append(args, "--port", "0", "--tls-port", port, "--tls-cert-file", f.ServerCert,
			"--tls-key-file", f.ServerKey, "--tls-ca-cert-file", f.CA, "--tls-auth-clients", "yes")
	} else {
		args = append(args, "--port", port)
	}
	return exec.Command("redis-server", append(args, s.opts.Args...)...)
}

// Start (re)starts the server on its port and waits until it answers PING.
func (s *RedisServer) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		s.t.Fatal("redis already running")
	}
	s.logs.Reset()
	cmd := s.command()
	cmd.Stdout, cmd.Stderr = &s.logs, &s.logs
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("starting %s: %v", cmd.Path, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.cmd, s.done = cmd, done

	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			s.t.Fatalf("%s exited at start:\n%s", cmd.Path, s.logs.String())
		default:
		}
		if ping(s.Addr(), s.opts.TLS) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.t.Fatalf("%s not answering after 10s:\n%s", cmd.Path, s.logs.String())
}

// Stop kills the server (SIGKILL, as a crash) and waits for it. Its data is
// gone: there is no persistence.
func (s *RedisServer) Stop() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// Running reports whether the server process is up.
func (s *RedisServer) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd != nil
}

// ping reports whether a Redis server answers PING at addr, over TLS with
// the client certificate when files is set. An ACL-protected default user
// answers NOAUTH, which counts: the server is up.
func ping(addr string, files *TLSFiles) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	if files != nil {
		cfg, err := files.ClientConfig()
		if err != nil {
			_ = c.Close()
			return false
		}
		c = tls.Client(c, cfg)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && (strings.HasPrefix(line, "+PONG") || strings.HasPrefix(line, "-NOAUTH"))
}

// String describes the server for failure messages.
func (s *RedisServer) String() string { return fmt.Sprintf("redis on %s", s.Addr()) }
