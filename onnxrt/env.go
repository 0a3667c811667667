package onnxrt

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	ort "github.com/yalue/onnxruntime_go"
)

// LibraryEnvVar names the environment variable that points at libonnxruntime.so.1.
const LibraryEnvVar = "ONNXRUNTIME_LIB"

// LibraryRelPath is where scripts/install-onnxruntime.sh puts the library, relative
// to the repository root.
const LibraryRelPath = "third_party/onnxruntime/lib/libonnxruntime.so.1"

// RequiredVersion is the onnxruntime version that onnxruntime_go v1.27.0 is built against.
const RequiredVersion = "1.24.1"

// installHint is appended to every "library missing" error so the fix is one copy-paste away.
const installHint = "install onnxruntime " + RequiredVersion + " with scripts/install-onnxruntime.sh " +
	"(it writes <repo>/" + LibraryRelPath + "), or set " + LibraryEnvVar + " to the path of libonnxruntime.so.1"

// ErrLibraryNotFound is returned (wrapped) when the onnxruntime shared library cannot be found.
var ErrLibraryNotFound = errors.New("onnxruntime shared library not found")

// ErrOtherLibrary is returned (wrapped) by NewEnv when the process already loaded a different library file.
var ErrOtherLibrary = errors.New("onnxruntime already initialised with another library")

// ErrClosed is returned (wrapped) when an Env, Session or Cache is used after Close.
var ErrClosed = errors.New("onnxrt: closed")

// Config configures an Env. Zero values mean "let onnxruntime decide" (threads) or
// the package defaults (cache limits).
type Config struct {
	// LibraryPath is the path of libonnxruntime.so.1; empty means search (see package doc).
	LibraryPath string
	// IntraOpThreads is the size of each session's intra-op thread pool; 0 lets onnxruntime choose.
	IntraOpThreads int
	// InterOpThreads is the size of each session's inter-op thread pool; 0 lets onnxruntime choose.
	InterOpThreads int
	// Spin says when intra-op threads spin-wait for work instead of sleeping; the zero
	// value is onnxruntime's default (always).
	Spin Spin
	// ProfilePrefix, when set, makes every session write onnxruntime's per-operator
	// profile (Chrome trace JSON) to a file named PREFIX_<date>.json when it closes.
	ProfilePrefix string
	// MaxSessions is the default session cap for NewCache; 0 means DefaultMaxSessions.
	MaxSessions int
	// MaxBytes is the default cap on cached model bytes for NewCache; 0 means DefaultMaxBytes.
	MaxBytes int64
	// WarmBatches are the batch sizes each session a Cache builds runs once, in order, before
	// it serves (Session.Warm); empty: none.
	WarmBatches []int
}

// Spin is a policy for onnxruntime's intra-op threads waiting for work.
type Spin int

const (
	// SpinAlways is onnxruntime's default: threads spin between the parallel parts of a
	// run and for a while after it, taking cores from whatever else runs between runs.
	SpinAlways Spin = iota
	// SpinNever makes threads sleep whenever they wait (session.intra_op.allow_spinning=0):
	// every parallel part of a run then pays a thread wake-up.
	SpinNever
	// SpinDuringRun spins inside a run and stops when the last concurrent run returns
	// (session.force_spinning_stop=1): run latency of SpinAlways, idle cost of SpinNever.
	SpinDuringRun
)

var spinNames = [...]string{SpinAlways: "always", SpinNever: "never", SpinDuringRun: "run"}

func (s Spin) String() string {
	if s >= 0 && int(s) < len(spinNames) {
		return spinNames[s]
	}
	return fmt.Sprintf("Spin(%d)", int(s))
}

// ParseSpin reads a Spin policy by name: "always", "never" or "run".
func ParseSpin(name string) (Spin, error) {
	for i, n := range spinNames {
		if name == n {
			return Spin(i), nil
		}
	}
	return 0, fmt.Errorf("unknown spin policy %q (want always, never or run)", name)
}

// Defaults used by NewCache when neither its arguments nor the Config set a limit.
const (
	DefaultMaxSessions       = 16
	DefaultMaxBytes    int64 = 1 << 30
)

// ResolveLibraryPath returns the library path that NewEnv would load for cfg,
// following the search order in the package doc. A missing library gives an
// error wrapping ErrLibraryNotFound that says how to install it.
func ResolveLibraryPath(cfg Config) (string, error) {
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if exe, err := os.Executable(); err == nil {
		if real, err := filepath.EvalSymlinks(exe); err == nil {
			exe = real
		}
		starts = append(starts, filepath.Dir(exe))
	}
	return resolveLibraryPath(cfg.LibraryPath, os.Getenv(LibraryEnvVar), starts)
}

// resolveLibraryPath is ResolveLibraryPath with its inputs passed in, for tests.
func resolveLibraryPath(explicit, fromEnv string, starts []string) (string, error) {
	for _, c := range []struct{ path, source string }{
		{explicit, "Config.LibraryPath"},
		{fromEnv, LibraryEnvVar},
	} {
		if c.path == "" {
			continue
		}
		if err := checkLibraryFile(c.path); err != nil {
			return "", fmt.Errorf("%w: %s=%q: %v; %s", ErrLibraryNotFound, c.source, c.path, err, installHint)
		}
		return absClean(c.path), nil
	}
	var looked []string
	seen := map[string]bool{}
	for _, start := range starts {
		dir := absClean(start)
		for {
			cand := filepath.Join(dir, filepath.FromSlash(LibraryRelPath))
			if !seen[cand] {
				seen[cand] = true
				looked = append(looked, cand)
				if checkLibraryFile(cand) == nil {
					return cand, nil
				}
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	where := "nowhere (no working or executable directory)"
	if len(looked) > 0 {
		where = strings.Join(looked, ", ")
	}
	return "", fmt.Errorf("%w (looked in %s); %s", ErrLibraryNotFound, where, installHint)
}

func checkLibraryFile(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return errors.New("no such file")
		}
		return err
	}
	if !st.Mode().IsRegular() {
		return errors.New("not a regular file")
	}
	return nil
}

func absClean(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		p = a
	}
	if r, err := filepath.EvalSymlinks(p); err == nil {
		p = r
	}
	return filepath.Clean(p)
}

// processRuntime records the one onnxruntime environment of this process.
// It is package state on purpose: onnxruntime_go keeps its environment in
// package globals and can initialise it only once per process.
var processRuntime struct {
	mu      sync.Mutex
	libPath string // set once initialisation succeeded
	version string
}

// initRuntime loads libPath into the process, or checks that it is the one already loaded.
// A failed attempt is not remembered, so a later call (after installing the library) can succeed.
func initRuntime(libPath string) (string, error) {
	pr := &processRuntime
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if pr.libPath != "" {
		if pr.libPath != libPath {
			return "", fmt.Errorf("%w: loaded %s, asked for %s", ErrOtherLibrary, pr.libPath, libPath)
		}
		return pr.version, nil
	}
	if ort.IsInitialized() {
		// Someone called onnxruntime_go directly; we cannot know which library it loaded.
		return "", fmt.Errorf("%w: onnxruntime_go was initialised outside package onnxrt", ErrOtherLibrary)
	}
	ort.SetSharedLibraryPath(libPath)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		return "", fmt.Errorf("load onnxruntime from %s (%s): %w", libPath, installHint, err)
	}
	pr.libPath = libPath
	pr.version = ort.GetVersion()
	return pr.version, nil
}

// Env is a handle on the process's onnxruntime environment plus the session
// settings from its Config. Create it with NewEnv.
type Env struct {
	cfg     Config
	libPath string
	version string

	live   atomic.Int64 // sessions created by this Env and not yet destroyed
	closed atomic.Bool
}

// NewEnv resolves the library, initialises onnxruntime once per process and returns an Env.
// A second NewEnv must resolve to the same library file.
func NewEnv(cfg Config) (*Env, error) {
	if cfg.IntraOpThreads < 0 || cfg.InterOpThreads < 0 || cfg.MaxSessions < 0 || cfg.MaxBytes < 0 {
		return nil, fmt.Errorf("onnxrt: negative value in config %+v", cfg)
	}
	if cfg.Spin < 0 || int(cfg.Spin) >= len(spinNames) {
		return nil, fmt.Errorf("onnxrt: unknown spin policy %v", cfg.Spin)
	}
	libPath, err := ResolveLibraryPath(cfg)
	if err != nil {
		return nil, fmt.Errorf("onnxrt: %w", err)
	}
	version, err := initRuntime(libPath)
	if err != nil {
		return nil, fmt.Errorf("onnxrt: %w", err)
	}
	cfg.LibraryPath = libPath
	return &Env{cfg: cfg, libPath: libPath, version: version}, nil
}

// LibraryPath is the absolute path of the loaded onnxruntime library.
func (e *Env) LibraryPath() string { return e.libPath }

// Version is the loaded library's version string (e.g. "1.24.1").
func (e *Env) Version() string { return e.version }

// Config returns the Env's configuration, with LibraryPath resolved.
func (e *Env) Config() Config { return e.cfg }

// LiveSessions counts sessions created through this Env that are not yet destroyed.
func (e *Env) LiveSessions() int64 { return e.live.Load() }

// Close stops the Env from creating sessions. The process-wide onnxruntime
// environment stays loaded (it cannot be safely re-initialised). Sessions still
// open keep working; Close reports them as an error so leaks are visible.
func (e *Env) Close() error {
	e.closed.Store(true)
	if n := e.live.Load(); n > 0 {
		return fmt.Errorf("onnxrt: env closed with %d sessions still open", n)
	}
	return nil
}
