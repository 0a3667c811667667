// Package sysmon keeps the Go runtime's monitor thread from interrupting inference on a
// server that idles between requests.
//
// When every P is idle the monitor (sysmon) sleeps deeply. The next system or cgo call wakes
// it and resets its poll interval to 20 µs, which it doubles only after 50 idle polls. A
// serial client's every request finds the server idle, so each onnxruntime run starts with a
// millisecond of 20-µs wake-ups that preempt its threads; on a 2-vCPU machine that measured
// +0.3 to +1.2 ms on a 2.2 to 2.8 ms run (BENCHMARKS.md). With GODEBUG's schedtrace set the monitor
// never sleeps deeply and stays backed off at 10 ms. The runtime reads schedtrace only at
// start, hence a re-exec. The period is the largest the runtime takes (2^31-1 ms, 24.8 days),
// so the scheduler trace it exists for is printed at most once per such period: at start
// when the machine has been up longer than that, and every 24.8 days after.
package sysmon

import (
	"fmt"
	"os"
	"strings"
	"syscall"
)

// Setting is what Settle adds to GODEBUG.
const Setting = "schedtrace=2147483647"

// OptOut names the environment variable that, set to "default", leaves the runtime as it is.
const OptOut = "NATGW_SYSMON"

// Env returns environ with Setting added to GODEBUG, or nil when there is nothing to do: the
// process already runs with a schedtrace setting, or OptOut is "default".
func Env(environ []string) []string {
	godebug, at := "", -1
	for i, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case OptOut:
			if v == "default" {
				return nil
			}
		case "GODEBUG":
			godebug, at = v, i
		}
	}
	for field := range strings.SplitSeq(godebug, ",") {
		if strings.HasPrefix(strings.TrimSpace(field), "schedtrace=") {
			return nil
		}
	}
	out := append([]string(nil), environ...)
	if at < 0 {
		return append(out, "GODEBUG="+Setting)
	}
	if godebug == "" {
		out[at] = "GODEBUG=" + Setting
	} else {
		out[at] = "GODEBUG=" + godebug + "," + Setting
	}
	return out
}

// Settle re-executes the running binary, same arguments and process id, with Setting added
// to GODEBUG. It returns nil without doing anything when Env has nothing to do, and an
// error only when the re-exec failed (the process then goes on as it is).
func Settle() error {
	env := Env(os.Environ())
	if env == nil {
		return nil
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("sysmon: find own binary: %w", err)
	}
	if err := syscall.Exec(exe, os.Args, env); err != nil {
		return fmt.Errorf("sysmon: re-exec %s with GODEBUG=%s: %w", exe, Setting, err)
	}
	return nil // not reached: Exec replaced the process
}
