//go:build !linux

package caddymodule_test

import "time"

// threadCPU is 0 where no per-thread CPU clock is read: the benchmark then
// reports wall time only.
func threadCPU() time.Duration { return 0 }
