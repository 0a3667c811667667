package deploy

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// loadCompose loads a compose file the way `docker compose config` does (compose-go, which
// validates against the Compose Specification's JSON schema, interpolates, and checks
// consistency such as depends_on targets), with an empty environment so that the defaults
// in the file are what is checked.
func loadCompose(t *testing.T, path string) (*types.Project, error) {
	t.Helper()
	return loadComposeIn(t, path, filepath.Dir(path))
}

func composePath(t testing.TB) string { return filepath.Join(repoRoot(t), "deploy", "compose.yaml") }

// TestCompose loads deploy/compose.yaml and checks it with checkCompose.
func TestCompose(t *testing.T) {
	p, err := loadCompose(t, composePath(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range checkCompose(p, serveEnv(t)) {
		t.Error(err)
	}
}

// TestComposeRejects shows that the loader and checkCompose fail on broken files.
func TestComposeRejects(t *testing.T) {
	env := serveEnv(t)
	orig, err := os.ReadFile(composePath(t))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		old, new string // one textual edit of compose.yaml
		want     string
	}{
		{"unknown key", "    healthcheck:\n      test: [\"CMD\", \"busybox\"", "    healthchek:\n      test: [\"CMD\", \"busybox\"", "healthchek"},
		{"wrong type", "replicas: 2", "replicas: two", "replicas"},
		{"undefined dependency", "      redis:\n        condition: service_healthy", "      cache:\n        condition: service_healthy", "cache"},
		{"one replica", "replicas: 2", "replicas: 1", "runs 1 replicas"},
		{"unknown setting", "NATGW_LOG_LEVEL: info", "NATGW_LOGLEVEL: info", "NATGW_LOGLEVEL: natgw serve reads no such variable"},
		{"bad setting", "NATGW_ORT_THREADS: \"2\"", "NATGW_ORT_THREADS: two", `NATGW_ORT_THREADS="two"`},
		{"short grace", "stop_grace_period: 30s", "stop_grace_period: 10s", "stop_grace_period 10s"},
		{"redis host", "redis://redis:6379/0", "redis://cache:6379/0", `NATGW_REDIS_URL host "cache"`},
		{"health path", "/v2/health/live\"]", "/healthz\"]", "/v2/health/live"},
		{"writable root", "read_only: true", "read_only: false", "read_only"},
		{"redis unbounded", "      - --maxmemory\n      - 512mb\n", "", "no positive --maxmemory"},
		{"missing nginx.conf", "./nginx.conf:", "./haproxy.cfg:", "haproxy.cfg"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(string(orig), tt.old) {
				t.Fatalf("compose.yaml no longer contains %q: update this case", tt.old)
			}
			// Same folder as the original so that relative paths (build context, nginx.conf) resolve.
			path := filepath.Join(t.TempDir(), "compose.yaml")
			if err := os.WriteFile(path, []byte(strings.Replace(string(orig), tt.old, tt.new, 1)), 0o644); err != nil {
				t.Fatal(err)
			}
			p, err := loadComposeIn(t, path, filepath.Dir(composePath(t)))
			if err != nil {
				if !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("load error %q, want one containing %q", err, tt.want)
				}
				t.Logf("rejected: %v", err)
				return
			}
			errs := checkCompose(p, env)
			if !errorsContain(errs, tt.want) {
				t.Fatalf("checkCompose errors %v, want one containing %q", errs, tt.want)
			}
			t.Logf("rejected: %v", errs)
		})
	}
}

// loadComposeIn loads path with relative paths resolved against dir.
func loadComposeIn(t *testing.T, path, dir string) (*types.Project, error) {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{path},
		cli.WithWorkingDirectory(dir),
		cli.WithEnv(nil),
		cli.WithResolvedPaths(true))
	if err != nil {
		return nil, err
	}
	return opts.LoadProject(context.Background())
}

// nginxUpstream finds "server HOST:PORT" lines in an nginx configuration.
var nginxUpstream = regexp.MustCompile(`(?m)^\s*server\s+([A-Za-z0-9._-]+):(\d+)\b`)

// checkCompose checks what the schema cannot: the gateway runs two replicas with settings
// natgw reads and accepts, reaches Redis by a service name, is hardened, has time to drain,
// and every service has a health check that the services depending on it wait for.
func checkCompose(p *types.Project, env map[string]envKind) []error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	gw, ok := p.Services["natgw"]
	if !ok {
		return []error{fmt.Errorf("no natgw service (have %v)", sortedKeys(p.Services))}
	}
	for _, name := range sortedKeys(p.Services) {
		s := p.Services[name]
		if s.HealthCheck == nil || s.HealthCheck.Disable || len(s.HealthCheck.Test) == 0 {
			fail("service %s: no health check", name)
		}
		for dep, d := range s.DependsOn {
			if d.Condition != types.ServiceConditionHealthy {
				fail("service %s: depends_on %s with condition %q, want service_healthy", name, dep, d.Condition)
			}
		}
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeBind {
				if _, err := os.Stat(v.Source); err != nil {
					fail("service %s: bind mount source: %v", name, err)
				}
			}
		}
	}
	if gw.Deploy == nil || gw.Deploy.Replicas == nil || *gw.Deploy.Replicas < 2 {
		n := 1
		if gw.Deploy != nil && gw.Deploy.Replicas != nil {
			n = *gw.Deploy.Replicas
		}
		fail("service natgw runs %d replicas, want 2 or more", n)
	}
	if gw.Build == nil {
		fail("service natgw: no build section")
	} else {
		dockerfile := gw.Build.Dockerfile
		if !filepath.IsAbs(dockerfile) {
			dockerfile = filepath.Join(gw.Build.Context, dockerfile)
		}
		if _, err := os.Stat(dockerfile); err != nil {
			fail("service natgw: build: %v", err)
		}
	}
	settings := map[string]string{}
	for k, v := range gw.Environment {
		if v != nil {
			settings[k] = *v
		}
	}
	for _, k := range sortedKeys(settings) {
		if err := checkEnv(env, k, settings[k]); err != nil {
			fail("service natgw: %v", err)
		}
	}
	if !gw.ReadOnly || !slices.ContainsFunc(gw.Tmpfs, func(s string) bool { return strings.HasPrefix(s, "/tmp") }) {
		fail("service natgw: want read_only: true with a tmpfs on /tmp")
	}
	if !slices.Contains(gw.CapDrop, "ALL") {
		fail("service natgw: cap_drop does not include ALL")
	}
	budget, err := drainBudget(settings)
	switch {
	case err != nil:
		fail("service natgw: %v", err)
	case gw.StopGracePeriod == nil:
		fail("service natgw: no stop_grace_period (the default 10s cuts draining short)")
	case float64(*gw.StopGracePeriod) <= float64(budget):
		fail("service natgw: stop_grace_period %s is not above NATGW_SHUTDOWN_DELAY + NATGW_SHUTDOWN_TIMEOUT (%s)", gw.StopGracePeriod, budget)
	}
	port, err := addrPort(settings)
	if err != nil {
		fail("service natgw: %v", err)
	}
	if gw.HealthCheck != nil {
		test := strings.Join(gw.HealthCheck.Test, " ")
		if !strings.Contains(test, fmt.Sprintf(":%d/v2/health/live", port)) {
			fail("service natgw: health check %q does not ask :%d/v2/health/live", test, port)
		}
	}
	if raw := settings["NATGW_REDIS_URL"]; raw != "" {
		u, err := url.Parse(raw)
		if err != nil {
			fail("service natgw: NATGW_REDIS_URL: %v", err)
		} else if r, ok := p.Services[u.Hostname()]; !ok {
			fail("service natgw: NATGW_REDIS_URL host %q is no service (have %v)", u.Hostname(), sortedKeys(p.Services))
		} else {
			if _, ok := gw.DependsOn[u.Hostname()]; !ok {
				fail("service natgw: does not depend on %s", u.Hostname())
			}
			if !strings.HasPrefix(r.Image, "redis:7") {
				fail("service %s: image %q, want redis:7", u.Hostname(), r.Image)
			}
			if _, err := redisMaxMemory(r.Command); err != nil {
				fail("service %s: %v", u.Hostname(), err)
			}
		}
	}
	// The balancer: its nginx.conf must send to the natgw service on natgw's port.
	for _, name := range sortedKeys(p.Services) {
		for _, v := range p.Services[name].Volumes {
			if v.Type != types.VolumeTypeBind || filepath.Base(v.Source) != "nginx.conf" {
				continue
			}
			conf, err := os.ReadFile(v.Source)
			if err != nil {
				continue // reported above
			}
			m := nginxUpstream.FindAllStringSubmatch(string(conf), -1)
			if len(m) == 0 {
				fail("service %s: %s has no upstream server", name, v.Source)
			}
			for _, s := range m {
				if s[1] != "natgw" || s[2] != strconv.Itoa(port) {
					fail("service %s: nginx upstream %s:%s, want natgw:%d", name, s[1], s[2], port)
				}
			}
		}
	}
	published := map[string]string{}
	for _, name := range sortedKeys(p.Services) {
		for _, pc := range p.Services[name].Ports {
			key := pc.HostIP + ":" + pc.Published
			if other, ok := published[key]; ok && pc.Published != "" {
				fail("services %s and %s both publish %s", other, name, key)
			}
			published[key] = name
		}
	}
	return errs
}
