//go:build !linux

package affinity

import "errors"

var errUnsupported = errors.New("affinity: CPU pinning needs Linux")

// Split is Linux-only.
func Split(cpus []int) ([]int, error) { return nil, errUnsupported }

// PinThread is Linux-only.
func PinThread(cpus []int) error { return errUnsupported }

// Thread is Linux-only.
func Thread() ([]int, error) { return nil, errUnsupported }

// Background is LowerThread's niceness for background work.
const Background = 19

// LowerThread is Linux-only.
func LowerThread(nice int) error { return errUnsupported }

// ThreadNice is Linux-only.
func ThreadNice() (int, error) { return 0, errUnsupported }
