// readmemstats: the latency of runtime.ReadMemStats with a large heap and many goroutines, on
// Go. A live linked list of OBJECTS 16-byte nodes (a pointer and an int64) is built, GOROUTINES
// goroutines are parked receiving on one channel, a collection is forced (so none is in progress
// during the measurement), then CALLS ReadMemStats calls are timed one by one. Afterwards the goroutines are released and the list is checked.
// Usage: readmemstats [OBJECTS [GOROUTINES [CALLS]]]   (8000000 100000 200 by default)
// stdout: the result (identical across the gort and Go versions)
// stderr: readmemstats_p50_us p99_us (key=value): the median and 99th percentile call time
// (nearest rank below: sorted[(CALLS-1)*q/100])
package main

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"time"
)

type node struct {
	next *node
	v    int64
}

func main() {
	args := []int{8000000, 100000, 200}
	for i, a := range os.Args[1:] {
		v, err := strconv.Atoi(a)
		if err != nil || v <= 0 || i >= len(args) {
			fmt.Fprintln(os.Stderr, "usage: readmemstats [OBJECTS [GOROUTINES [CALLS]]]")
			os.Exit(2)
		}
		args[i] = v
	}
	objects, goroutines, calls := args[0], args[1], args[2]

	var head *node
	for i := 0; i < objects; i++ {
		head = &node{head, int64(i)}
	}

	ch := make(chan int)
	var started, finished sync.WaitGroup
	started.Add(goroutines)
	finished.Add(goroutines)
	for i := 0; i < goroutines; i++ {
		go func() {
			started.Done()
			<-ch
			finished.Done()
		}()
	}
	started.Wait()
	runtime.GC() // no collection left running during the timed calls

	var ms runtime.MemStats
	times := make([]float64, calls)
	for i := range times {
		t0 := time.Now()
		runtime.ReadMemStats(&ms)
		times[i] = float64(time.Since(t0).Nanoseconds()) / 1e3
	}
	close(ch)
	finished.Wait()

	var count, sum int64
	for p := head; p != nil; p = p.next {
		count++
		sum += p.v
	}
	sort.Float64s(times)
	fmt.Printf("%d ReadMemStats calls with %d goroutines parked and a live list of %d nodes (sum %d)\n",
		calls, goroutines, count, sum)
	fmt.Fprintf(os.Stderr, "readmemstats_p50_us=%.1f p99_us=%.1f\n",
		times[(calls-1)*50/100], times[(calls-1)*99/100])
}
