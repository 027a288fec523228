// libccall: COUNT calls of a small function that formats an integer (strconv), from a loop that
// calls nothing else: first on a goroutine, then on a goroutine locked to its OS thread. gort's
// version (bench/gort/libccall.cpp) measures a call into libc (snprintf) on a goroutine against
// the same call on a thread; for Go both are goroutines, the figures are for reference.
// Usage: libccall [COUNT]   (COUNT = 5000000 by default)
// stdout: the sum of the formatted lengths, twice (identical across the gort and Go versions)
// stderr: call_ratio goroutine_ns thread_ns (key=value)
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"time"
)

//go:noinline
func formatOne(buf []byte, i int64) int {
	return len(strconv.AppendInt(buf[:0], i, 10))
}

//go:noinline
func callLoop(n int64) int64 {
	var buf [32]byte
	var sum int64
	for i := int64(0); i < n; i++ {
		sum += int64(formatOne(buf[:], i))
	}
	return sum
}

func nsPerCall(n int64, sum *int64) float64 {
	t0 := time.Now()
	*sum = callLoop(n)
	return float64(time.Since(t0).Nanoseconds()) / float64(n)
}

func main() {
	n := int64(5000000)
	if len(os.Args) > 1 {
		v, err := strconv.ParseInt(os.Args[1], 10, 64)
		if err != nil || v <= 0 {
			fmt.Fprintln(os.Stderr, "usage: libccall [COUNT]")
			os.Exit(2)
		}
		n = v
	}
	var onGoroutine, onThread int64
	var gNs, tNs float64
	done := make(chan bool)
	go func() { gNs = nsPerCall(n, &onGoroutine); done <- true }()
	<-done
	go func() {
		runtime.LockOSThread()
		tNs = nsPerCall(n, &onThread)
		done <- true
	}()
	<-done
	fmt.Printf("%d %d\n", onGoroutine, onThread)
	fmt.Fprintf(os.Stderr, "call_ratio=%.3f goroutine_ns=%.1f thread_ns=%.1f\n", gNs/tNs, gNs, tNs)
}
