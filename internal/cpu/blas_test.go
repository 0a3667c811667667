package cpu

import (
	"strings"
	"testing"
)

func TestBLASNamesKernel(t *testing.T) {
	got := BLAS()
	if !strings.HasPrefix(got, "OpenBLAS ") || !strings.Contains(got, ", core ") || strings.HasSuffix(got, ", core ") {
		t.Fatalf("BLAS() = %q, want the OpenBLAS build and its core", got)
	}
	t.Log(got)
}
