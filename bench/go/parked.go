// parked: COUNT goroutines blocked receiving on one channel, on Go's scheduler; the growth of
// MemStats.StackInuse from before the first spawn to when all of them have started, divided by
// COUNT. Then the channel is closed and every goroutine finishes.
// Usage: parked [COUNT]   (COUNT = 100000 by default)
// stdout: the result (identical across the gort and Go versions)
// stderr: parked_stack_bytes_per_g (key=value)
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
)

func main() {
	n := 100000
	if len(os.Args) > 1 {
		v, err := strconv.Atoi(os.Args[1])
		if err != nil || v <= 0 {
			fmt.Fprintln(os.Stderr, "usage: parked [COUNT]")
			os.Exit(2)
		}
		n = v
	}
	ch := make(chan int)
	var started, finished sync.WaitGroup
	started.Add(n)
	finished.Add(n)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := 0; i < n; i++ {
		go func() {
			started.Done()
			<-ch
			finished.Done()
		}()
	}
	started.Wait()
	runtime.ReadMemStats(&after)
	close(ch)
	finished.Wait()

	fmt.Printf("%d goroutines parked on one channel and released\n", n)
	fmt.Fprintf(os.Stderr, "parked_stack_bytes_per_g=%.0f\n",
		float64(int64(after.StackInuse)-int64(before.StackInuse))/float64(n))
}
