// Command natgw serves image-classification subnets specialized on demand from a
// task's adapted Once-for-All supernet, and carries the tools that build them.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/natgw/natgw/internal/sysmon"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		// A server idles between requests; see package sysmon for what that costs each run.
		if err := sysmon.Settle(); err != nil {
			fmt.Fprintln(os.Stderr, "natgw: warning:", err)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "natgw:", oneLine(err))
		os.Exit(exitCode(err))
	}
}
