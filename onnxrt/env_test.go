package onnxrt

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestResolveLibraryPath(t *testing.T) {
	root := t.TempDir()
	mk := func(rel string) string {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("\x7fELF"), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	repoLib := mk(filepath.Join("repo", LibraryRelPath))
	exeLib := mk(filepath.Join("deploy", LibraryRelPath))
	explicit := mk("custom/libonnxruntime.so.1")
	fromEnv := mk("env/libonnxruntime.so.1")
	pkgDir := filepath.Join(root, "repo", "onnxrt")
	exeDir := filepath.Join(root, "deploy", "bin")
	empty := filepath.Join(root, "empty")
	for _, d := range []string{pkgDir, exeDir, empty} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}

	tests := []struct {
		name     string
		explicit string
		env      string
		starts   []string
		want     string // "" means ErrLibraryNotFound
	}{
		{"explicit_wins", explicit, fromEnv, []string{pkgDir}, explicit},
		{"env_next", "", fromEnv, []string{pkgDir}, fromEnv},
		{"cwd_walk_up", "", "", []string{pkgDir, exeDir}, repoLib},
		{"exe_dir_walk_up", "", "", []string{empty, exeDir}, exeLib},
		{"explicit_missing_no_fallback", filepath.Join(root, "nope.so"), fromEnv, []string{pkgDir}, ""},
		{"env_missing_no_fallback", "", filepath.Join(root, "nope.so"), []string{pkgDir}, ""},
		{"explicit_is_dir", filepath.Join(root, "custom"), "", nil, ""},
		{"nothing", "", "", []string{empty}, ""},
		{"no_starts", "", "", nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := resolveLibraryPath(tc.explicit, tc.env, tc.starts)
			if tc.want == "" {
				if !errors.Is(err, ErrLibraryNotFound) {
					t.Fatalf("got %q, %v; want ErrLibraryNotFound", got, err)
				}
				// The error must tell the operator how to fix it.
				for _, hint := range []string{"scripts/install-onnxruntime.sh", LibraryEnvVar} {
					if !strings.Contains(err.Error(), hint) {
						t.Errorf("error %q lacks %q", err, hint)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := absClean(tc.want); got != want {
				t.Fatalf("got %q, want %q", got, want)
			}
		})
	}
}

func TestNewEnvMissingLibrary(t *testing.T) {
	_, err := NewEnv(Config{LibraryPath: filepath.Join(t.TempDir(), "libonnxruntime.so.1")})
	if !errors.Is(err, ErrLibraryNotFound) {
		t.Fatalf("err = %v, want ErrLibraryNotFound", err)
	}
	if !strings.Contains(err.Error(), "scripts/install-onnxruntime.sh") || !strings.Contains(err.Error(), "ONNXRUNTIME_LIB") {
		t.Fatalf("error does not say how to install: %v", err)
	}
}

func TestNewEnvOnePerProcess(t *testing.T) {
	lib := requireLibrary(t)
	a, err := NewEnv(Config{LibraryPath: lib, IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	if a.Version() != RequiredVersion {
		t.Errorf("loaded onnxruntime %q, want %q", a.Version(), RequiredVersion)
	}
	// Same library again (found by search this time): fine, different settings allowed.
	b, err := NewEnv(Config{IntraOpThreads: 2})
	if err != nil {
		t.Fatalf("second Env with the same library: %v", err)
	}
	if a.LibraryPath() != b.LibraryPath() {
		t.Fatalf("library paths differ: %s vs %s", a.LibraryPath(), b.LibraryPath())
	}
	// Another file: refused before anything is loaded.
	other := filepath.Join(t.TempDir(), "libonnxruntime.so.1")
	if err := os.WriteFile(other, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := NewEnv(Config{LibraryPath: other}); !errors.Is(err, ErrOtherLibrary) {
		t.Fatalf("Env with another library: err = %v, want ErrOtherLibrary", err)
	}

	s, err := b.NewSession(tinyModel(t, 3, nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err == nil {
		t.Error("Close with an open session should report it")
	}
	if _, err := b.NewSession(tinyModel(t, 3, nil)); !errors.Is(err, ErrClosed) {
		t.Errorf("NewSession on a closed Env: %v, want ErrClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n := b.LiveSessions(); n != 0 {
		t.Fatalf("live sessions = %d after Close", n)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestNewEnvRejectsNegative(t *testing.T) {
	if _, err := NewEnv(Config{IntraOpThreads: -1}); err == nil {
		t.Fatal("negative thread count accepted")
	}
}

func TestParseSpin(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Spin
		ok   bool
	}{
		{"always", SpinAlways, true},
		{"never", SpinNever, true},
		{"run", SpinDuringRun, true},
		{"", 0, false},
		{"Run", 0, false},
		{"sometimes", 0, false},
	} {
		got, err := ParseSpin(tc.in)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("ParseSpin(%q) = %v, %v; want %v (ok %v)", tc.in, got, err, tc.want, tc.ok)
		}
		if tc.ok && got.String() != tc.in {
			t.Errorf("%v.String() = %q, want %q", got, got.String(), tc.in)
		}
	}
}

// TestSpinPolicies runs a model under each policy; NewEnv refuses an unknown one.
func TestSpinPolicies(t *testing.T) {
	requireLibrary(t)
	for _, spin := range []Spin{SpinAlways, SpinNever, SpinDuringRun} {
		env, err := NewEnv(Config{IntraOpThreads: 2, InterOpThreads: 1, Spin: spin})
		if err != nil {
			t.Fatal(err)
		}
		s, err := env.NewSession(tinyModel(t, 2, nil))
		if err != nil {
			t.Fatalf("%v: %v", spin, err)
		}
		for range 3 {
			if err := runTiny(t, s, model{scale: 2}); err != nil {
				t.Errorf("%v: %v", spin, err)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := env.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := NewEnv(Config{Spin: Spin(7)}); err == nil {
		t.Fatal("unknown spin policy accepted")
	}
}

// TestProfilePrefix: a session of an Env with ProfilePrefix writes onnxruntime's profile,
// a JSON list of trace events, when it closes.
func TestProfilePrefix(t *testing.T) {
	requireLibrary(t)
	prefix := filepath.Join(t.TempDir(), "prof")
	env, err := NewEnv(Config{IntraOpThreads: 1, InterOpThreads: 1, ProfilePrefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	s, err := env.NewSession(tinyModel(t, 2, nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := runTiny(t, s, model{scale: 2}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(prefix + "_*.json")
	if len(files) != 1 {
		t.Fatalf("profile files %v, want one %s_*.json", files, prefix)
	}
	var events []map[string]any
	if err := json.Unmarshal(readFile(t, files[0]), &events); err != nil || len(events) == 0 {
		t.Fatalf("profile %s: %d events, %v", files[0], len(events), err)
	}
}
