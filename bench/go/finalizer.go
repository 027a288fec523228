// finalizer: 1,000,000 objects of 16 bytes, each given a trivial finalizer that counts, dropped;
// collections forced 1 ms apart until every finalizer ran (BenchmarkFinalizer's shape). Same work
// as bench/gort/finalizer.cpp.
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"
)

type obj struct{ a, b int64 }

var count int64

//go:noinline
func makeAll(n int64) {
	for i := int64(0); i < n; i++ {
		o := &obj{}
		runtime.SetFinalizer(o, func(*obj) { atomic.AddInt64(&count, 1) })
	}
}

func main() {
	n := int64(1000000)
	if len(os.Args) > 1 {
		n, _ = strconv.ParseInt(os.Args[1], 10, 64)
	}
	start := time.Now()
	makeAll(n)
	for atomic.LoadInt64(&count) < n {
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
	el := time.Since(start)
	fmt.Printf("finalized %d objects\n", n)
	fmt.Fprintf(os.Stderr, "finalizer_ns=%.1f\n", float64(el.Nanoseconds())/float64(n))
}
