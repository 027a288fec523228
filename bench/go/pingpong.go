// pingpong: two goroutines pass an int back and forth over two unbuffered channels on Go's
// scheduler. main sends v on ping, the other goroutine receives it and sends v+1 back on pong,
// main receives it: one round trip. After COUNT round trips v == COUNT.
// Usage: pingpong [COUNT]   (COUNT = 2000000 by default)
// stdout: the result (identical across the gort and Go versions)
// stderr: ns_per_roundtrip (key=value): wall time / COUNT
package main

import (
	"fmt"
	"os"
	"strconv"
	"time"
)

func main() {
	n := 2000000
	if len(os.Args) > 1 {
		v, err := strconv.Atoi(os.Args[1])
		if err != nil || v <= 0 {
			fmt.Fprintln(os.Stderr, "usage: pingpong [COUNT]")
			os.Exit(2)
		}
		n = v
	}
	ping := make(chan int)
	pong := make(chan int)
	done := make(chan struct{})
	go func() {
		for v := range ping {
			pong <- v + 1
		}
		close(done)
	}()

	start := time.Now()
	v := 0
	for i := 0; i < n; i++ {
		ping <- v
		v = <-pong
	}
	wall := time.Since(start)
	close(ping)
	<-done

	fmt.Printf("%d round trips, final value %d\n", n, v)
	fmt.Fprintf(os.Stderr, "ns_per_roundtrip=%.1f\n", float64(wall.Nanoseconds())/float64(n))
}
