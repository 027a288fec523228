// parked: COUNT goroutines blocked receiving on one channel, on Go's scheduler; the growth of
// MemStats.StackInuse, and of the process's resident memory, from before the first spawn to when
// all of them have started, divided by COUNT. Then the channel is closed and every goroutine
// finishes.
// Usage: parked [COUNT [MODE]]   (COUNT = 100000 by default)
//   MODE plain (default): each goroutine only parks.
//   MODE call: each first calls a function that builds a string, grows a slice to 100 elements
//     and formats with fmt.Sprintf, then parks.
//   MODE inline: the same work in the goroutine's own body (the same to Go; gort's C++ differs).
// stdout: the result (identical across the gort and Go versions)
// stderr: parked_stack_bytes_per_g rss_bytes_per_g (key=value)
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
)

func rssBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	var pages, resident int64
	fmt.Sscan(string(b), &pages, &resident)
	return resident * int64(os.Getpagesize())
}

//go:noinline
func ordinaryWork(i int) int {
	s := "goroutine " + strconv.Itoa(i)
	var v []int
	for k := 0; k < 100; k++ {
		v = append(v, k*i)
	}
	return len(fmt.Sprintf("%s: %d values", s, len(v)))
}

func main() {
	n := 100000
	mode := "plain"
	if len(os.Args) > 1 {
		v, err := strconv.Atoi(os.Args[1])
		if err != nil || v <= 0 {
			fmt.Fprintln(os.Stderr, "usage: parked [COUNT [plain|call|inline]]")
			os.Exit(2)
		}
		n = v
	}
	if len(os.Args) > 2 {
		mode = os.Args[2]
	}
	if mode != "plain" && mode != "call" && mode != "inline" {
		fmt.Fprintln(os.Stderr, "usage: parked [COUNT [plain|call|inline]]")
		os.Exit(2)
	}
	work := mode != "plain"
	ch := make(chan int)
	var started, finished sync.WaitGroup
	started.Add(n)
	finished.Add(n)
	var chars int64
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	rss0 := rssBytes()
	for i := 0; i < n; i++ {
		i := i
		go func() {
			if work {
				atomic.AddInt64(&chars, int64(ordinaryWork(i)))
			}
			started.Done()
			<-ch
			finished.Done()
		}()
	}
	started.Wait()
	runtime.ReadMemStats(&after)
	rss1 := rssBytes()
	close(ch)
	finished.Wait()

	fmt.Printf("%d goroutines parked on one channel and released\n", n)
	fmt.Fprintf(os.Stderr, "parked_stack_bytes_per_g=%.0f rss_bytes_per_g=%.0f\n",
		float64(int64(after.StackInuse)-int64(before.StackInuse))/float64(n), float64(rss1-rss0)/float64(n))
}
