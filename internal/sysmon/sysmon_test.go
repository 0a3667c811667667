package sysmon

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

func TestEnv(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []string
		want []string // nil: nothing to do
	}{
		{"no GODEBUG", []string{"PATH=/bin"}, []string{"PATH=/bin", "GODEBUG=" + Setting}},
		{"empty GODEBUG", []string{"GODEBUG=", "A=1"}, []string{"GODEBUG=" + Setting, "A=1"}},
		{"other settings kept", []string{"GODEBUG=gctrace=1,madvdontneed=1"}, []string{"GODEBUG=gctrace=1,madvdontneed=1," + Setting}},
		{"already set", []string{"GODEBUG=" + Setting}, nil},
		{"the operator's own schedtrace", []string{"GODEBUG=gctrace=1,schedtrace=1000"}, nil},
		{"opted out", []string{"PATH=/bin", OptOut + "=default"}, nil},
		{"opt-out needs its value", []string{OptOut + "=1"}, []string{OptOut + "=1", "GODEBUG=" + Setting}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := slices.Clone(tc.in)
			got := Env(in)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("Env(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if !slices.Equal(in, tc.in) {
				t.Fatalf("Env changed its input: %q", in)
			}
		})
	}
}

// TestSettle runs this test binary as a child that calls Settle and prints its GODEBUG: the
// child must have been re-executed with the setting, exactly once.
func TestSettle(t *testing.T) {
	if os.Getenv("SYSMON_TEST_CHILD") == "1" {
		if err := Settle(); err != nil {
			os.Stdout.WriteString("error: " + err.Error() + "\n")
			os.Exit(1)
		}
		os.Stdout.WriteString("GODEBUG=" + os.Getenv("GODEBUG") + "\n")
		os.Exit(0)
	}
	for _, tc := range []struct {
		name, godebug, want string
	}{
		{"adds", "gctrace=0", "GODEBUG=gctrace=0," + Setting},
		{"keeps an existing one", "schedtrace=99999999", "GODEBUG=schedtrace=99999999"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestSettle$")
			cmd.Env = append(os.Environ(), "SYSMON_TEST_CHILD=1", "GODEBUG="+tc.godebug)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("child: %v\n%s", err, out)
			}
			if got := strings.TrimSpace(string(out)); got != tc.want {
				t.Fatalf("child printed %q, want %q", got, tc.want)
			}
		})
	}
}
