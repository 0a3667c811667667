// Command loadrss loads a supernet checkpoint once and prints the load time and the
// process's peak resident memory next to the file size (the target: under 1 s and under
// twice the file size).
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/natgw/natgw/supernet"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: loadrss CHECKPOINT")
		os.Exit(2)
	}
	st, err := os.Stat(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadrss:", err)
		os.Exit(1)
	}
	start := time.Now()
	sn, err := supernet.Load(os.Args[1], supernet.LoadOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadrss:", err)
		os.Exit(1)
	}
	elapsed := time.Since(start)
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	peak := ru.Maxrss * 1024
	json.NewEncoder(os.Stdout).Encode(map[string]any{
		"file_bytes": st.Size(), "load_ms": float64(elapsed.Microseconds()) / 1000, "peak_rss_bytes": peak,
		"rss_over_file": float64(peak) / float64(st.Size()), "spec": sn.Spec.Name, "values": sn.NumParams(),
	})
}
