// spawn: COUNT goroutines that each call WaitGroup.Done once, on Go's scheduler; the time from
// the first spawn to Wait returning.
// Usage: spawn [COUNT]   (COUNT = 1000000 by default)
// stdout: the result (identical across the gort and Go versions)
// stderr: spawn_ns (key=value): wall time / COUNT
package main

import (
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"
)

func main() {
	n := 1000000
	if len(os.Args) > 1 {
		v, err := strconv.Atoi(os.Args[1])
		if err != nil || v <= 0 {
			fmt.Fprintln(os.Stderr, "usage: spawn [COUNT]")
			os.Exit(2)
		}
		n = v
	}
	var wg sync.WaitGroup
	wg.Add(n)
	start := time.Now()
	for i := 0; i < n; i++ {
		go func() { wg.Done() }()
	}
	wg.Wait()
	wall := time.Since(start)

	fmt.Printf("%d goroutines spawned and finished\n", n)
	fmt.Fprintf(os.Stderr, "spawn_ns=%.1f\n", float64(wall.Nanoseconds())/float64(n))
}
