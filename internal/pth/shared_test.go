package pth

import (
	"os"
	"path/filepath"
	"testing"
)

// sharedDir returns the read-only shared material directory, skipping the test when it is missing unless
// NATGW_REQUIRE_SHARED=1.
func sharedDir(tb testing.TB) string {
	tb.Helper()
	dir := os.Getenv("NATGW_SHARED")
	if dir == "" {
		root, err := repoRoot()
		if err != nil {
			tb.Fatalf("find repo root: %v", err)
		}
		dir = filepath.Join(root, "..", "shared")
	}
	if _, err := os.Stat(dir); err != nil {
		if os.Getenv("NATGW_REQUIRE_SHARED") == "1" {
			tb.Fatalf("shared dir %s missing (NATGW_REQUIRE_SHARED=1): %v", dir, err)
		}
		tb.Skipf("shared dir %s missing; set NATGW_SHARED to run this test", dir)
	}
	return dir
}

// sharedFile is sharedDir plus a file that must exist under it.
func sharedFile(tb testing.TB, rel string) string {
	tb.Helper()
	p := filepath.Join(sharedDir(tb), rel)
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("NATGW_REQUIRE_SHARED") == "1" {
			tb.Fatalf("shared file missing: %v", err)
		}
		tb.Skipf("shared file missing: %v", err)
	}
	return p
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", os.ErrNotExist
		}
		dir = parent
	}
}
