// Package testredis runs a private redis-server for integration tests: a real server on a
// free loopback port, stoppable and restartable to test failures.
package testredis

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Server is a redis-server child process owned by one test.
type Server struct {
	t    testing.TB
	path string
	dir  string
	port int
	cmd  *exec.Cmd
	done chan struct{}
}

// Start starts a private redis-server on a free port, skipping the test
// when the binary is missing unless NATGW_REQUIRE_REDIS=1.
func Start(t testing.TB) *Server {
	t.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("NATGW_REQUIRE_REDIS") == "1" {
			t.Fatalf("redis-server not on PATH and NATGW_REQUIRE_REDIS=1: %v", err)
		}
		t.Skip("redis-server not on PATH; install it (apt-get install redis-server) or set NATGW_REQUIRE_REDIS=1 to make this a failure")
	}
	s := &Server{t: t, path: path, dir: t.TempDir()}
	// Another process may take the port between our probe and the server's
	// bind, so try a few ports.
	var lastErr error
	for range 5 {
		s.port, err = freePort()
		if err != nil {
			t.Fatal(err)
		}
		if lastErr = s.start(); lastErr == nil {
			t.Cleanup(s.Stop)
			return s
		}
	}
	t.Fatalf("start redis-server: %v", lastErr)
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("probe free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *Server) URL() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", s.port) }

// start (re)starts the server on s.port and waits for PING.
func (s *Server) start() error {
	s.cmd = exec.Command(s.path,
		"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.dir, "--logfile", "")
	s.cmd.Stdout, s.cmd.Stderr = nil, nil
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("exec redis-server: %w", err)
	}
	done := make(chan struct{})
	s.done = done
	cmd := s.cmd
	go func() { _ = cmd.Wait(); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return fmt.Errorf("redis-server on port %d exited early", s.port)
		default:
		}
		if ping(s.port) == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.kill()
	return fmt.Errorf("redis-server on port %d did not answer PING", s.port)
}

// Restart starts the server again on the same port after stop.
func (s *Server) Restart() {
	s.t.Helper()
	var err error
	for range 50 { // the old socket may linger briefly
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.t.Fatalf("restart redis-server: %v", err)
}

// Stop terminates the server and waits for it; safe to call twice.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		s.kill()
	}
}

func (s *Server) kill() {
	_ = s.cmd.Process.Kill()
	<-s.done
}

func ping(port int) error {
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("unexpected PING reply %q", line)
	}
	return nil
}

// FreePort returns a loopback port that was free a moment ago (nothing listens there).
func FreePort() (int, error) { return freePort() }
