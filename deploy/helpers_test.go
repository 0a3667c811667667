package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// productModule is the module whose deployment files these are; this package is a nested
// module of its own, so the repository root is the nearest parent with that go.mod.
const productModule = "github.com/natgw/natgw"

// repoRoot returns natgw's repository root.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(b, []byte("module "+productModule+"\n")) {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("no go.mod of module %s above the working directory", productModule)
		}
		dir = parent
	}
}

// envKind is how `natgw serve` parses one environment variable: the envFlags method
// (String, Int, Int64, Duration, Bool) that registers it.
type envKind string

// ortLibEnv is read by onnxrt as well as by `natgw serve --ort-lib`.
const ortLibEnv = "ONNXRUNTIME_LIB"

// serveEnv reads cmd/natgw/serve.go and returns every environment variable that
// `natgw serve` reads, with its kind, so that deployment settings cannot name a variable the
// binary ignores or give one a value it rejects at start.
func serveEnv(t testing.TB) map[string]envKind {
	t.Helper()
	path := filepath.Join(repoRoot(t), "cmd", "natgw", "serve.go")
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
	if err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	kinds := map[string]envKind{}
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || len(call.Args) < 2 {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		switch sel.Sel.Name {
		case "String", "Int", "Int64", "Duration", "Bool":
		default:
			return true
		}
		lit, ok := call.Args[1].(*ast.BasicLit)
		if !ok || lit.Kind != token.STRING {
			return true
		}
		name, err := strconv.Unquote(lit.Value)
		if err != nil || !(strings.HasPrefix(name, "NATGW_") || name == ortLibEnv) {
			return true
		}
		kinds[name] = envKind(sel.Sel.Name)
		return true
	})
	// A parse that finds almost nothing means serve.go changed shape, not that it reads no
	// settings: fail rather than let every check below pass vacuously.
	for _, want := range []string{"NATGW_ADDR", "NATGW_MODELS", "NATGW_REDIS_URL", "NATGW_SHUTDOWN_DELAY", "NATGW_SHUTDOWN_TIMEOUT", ortLibEnv} {
		if _, ok := kinds[want]; !ok {
			t.Fatalf("%s: found no envFlags registration of %s (found %d variables)", path, want, len(kinds))
		}
	}
	return kinds
}

// checkEnv checks one setting against what `natgw serve` accepts.
func checkEnv(known map[string]envKind, name, value string) error {
	kind, ok := known[name]
	if !ok {
		if strings.HasPrefix(name, "NATGW_") || name == ortLibEnv {
			return fmt.Errorf("%s: natgw serve reads no such variable", name)
		}
		return nil // not natgw's (e.g. GOMAXPROCS)
	}
	var err error
	switch kind {
	case "Int":
		_, err = strconv.Atoi(value)
	case "Int64":
		_, err = strconv.ParseInt(value, 10, 64)
	case "Duration":
		_, err = time.ParseDuration(value)
	case "Bool":
		_, err = strconv.ParseBool(value)
	}
	if err != nil {
		want := map[envKind]string{"Int": "an integer", "Int64": "an integer", "Duration": "a duration", "Bool": "a boolean"}[kind]
		return fmt.Errorf("%s=%q: natgw serve wants %s: %w", name, value, want, err)
	}
	return nil
}

// drainBudget is how long natgw may take from SIGTERM to exit with these settings: the
// readiness-off delay plus the drain timeout. Both must be set explicitly.
func drainBudget(settings map[string]string) (time.Duration, error) {
	var total time.Duration
	var errs []error
	for _, name := range []string{"NATGW_SHUTDOWN_DELAY", "NATGW_SHUTDOWN_TIMEOUT"} {
		v, ok := settings[name]
		if !ok {
			errs = append(errs, fmt.Errorf("%s is not set", name))
			continue
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %w", name, v, err))
			continue
		}
		if name == "NATGW_SHUTDOWN_DELAY" && d <= 0 {
			errs = append(errs, fmt.Errorf("%s=%q: must be positive so that load balancers stop routing before the drain (there is no preStop hook)", name, v))
		}
		total += d
	}
	return total, errors.Join(errs...)
}

// addrPort returns the port of a NATGW_ADDR value such as ":8080" (8080 when unset).
func addrPort(settings map[string]string) (int, error) {
	addr, ok := settings["NATGW_ADDR"]
	if !ok {
		return 8080, nil
	}
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return 0, fmt.Errorf("NATGW_ADDR=%q: no port", addr)
	}
	p, err := strconv.Atoi(addr[i+1:])
	if err != nil || p <= 0 || p > 65535 {
		return 0, fmt.Errorf("NATGW_ADDR=%q: bad port", addr)
	}
	return p, nil
}

// redisMaxMemory returns the --maxmemory argument of a redis-server command line in bytes,
// and whether --maxmemory-policy is allkeys-lru (a cache must evict rather than refuse writes).
func redisMaxMemory(args []string) (int64, error) {
	var mem int64 = -1
	policy := ""
	for i := 0; i+1 < len(args); i++ {
		switch args[i] {
		case "--maxmemory":
			n, err := redisBytes(args[i+1])
			if err != nil {
				return 0, err
			}
			mem = n
		case "--maxmemory-policy":
			policy = args[i+1]
		}
	}
	if mem <= 0 {
		return 0, errors.New("redis: no positive --maxmemory (an unbounded cache grows until the OOM killer stops it)")
	}
	if policy != "allkeys-lru" {
		return 0, fmt.Errorf("redis: --maxmemory-policy %q, want allkeys-lru", policy)
	}
	return mem, nil
}

// redisBytes parses a Redis memory size: "1k" is 1000 bytes, "1kb" 1024 (redis.conf's rules).
func redisBytes(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"gb", 1 << 30}, {"mb", 1 << 20}, {"kb", 1 << 10}, {"g", 1e9}, {"m", 1e6}, {"k", 1e3}, {"", 1}}
	l := strings.ToLower(s)
	for _, u := range units {
		if strings.HasSuffix(l, u.suffix) {
			n, err := strconv.ParseInt(strings.TrimSuffix(l, u.suffix), 10, 64)
			if err != nil || n < 0 {
				return 0, fmt.Errorf("redis memory size %q: %v", s, err)
			}
			return n * u.mult, nil
		}
	}
	return 0, fmt.Errorf("redis memory size %q", s)
}

// errorsContain reports whether one of errs mentions want.
func errorsContain(errs []error, want string) bool {
	for _, err := range errs {
		if strings.Contains(err.Error(), want) {
			return true
		}
	}
	return false
}
