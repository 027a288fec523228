// readmemstats: the latency of runtime.ReadMemStats with a large heap and many goroutines, on
// Go. A live linked list of OBJECTS 16-byte nodes (a pointer and an int64) is built, GOROUTINES
// goroutines are parked receiving on one channel, a collection is forced (so none is in progress
// during the measurement), then CALLS ReadMemStats calls are timed one by one. With BUSY > 0,
// BUSY goroutines allocate 16-byte nodes in chains cut every 1000 meanwhile, and the calls are
// 20 us apart, so collections run during them (gcs_during counts the cycles that ended). Afterwards the goroutines are released and the list is checked.
// Usage: readmemstats [OBJECTS [GOROUTINES [CALLS [BUSY]]]]   (8000000 100000 200 0 by default)
// stdout: the result (identical across the gort and Go versions)
// stderr: readmemstats_p50_us p99_us gcs_during (key=value): the median and 99th percentile call time
// (nearest rank below: sorted[(CALLS-1)*q/100])
package main

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

type node struct {
	next *node
	v    int64
}

var sink *node // what the allocating goroutines built last: their nodes escape to the heap

func main() {
	args := []int{8000000, 100000, 200, 0}
	for i, a := range os.Args[1:] {
		v, err := strconv.Atoi(a)
		if err != nil || v < 0 || (v == 0 && i < 3) || i >= len(args) {
			fmt.Fprintln(os.Stderr, "usage: readmemstats [OBJECTS [GOROUTINES [CALLS [BUSY]]]]")
			os.Exit(2)
		}
		args[i] = v
	}
	objects, goroutines, calls, busy := args[0], args[1], args[2], args[3]

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

	var stop atomic.Bool
	var allocating, allocated sync.WaitGroup
	allocating.Add(busy)
	allocated.Add(busy)
	for i := 0; i < busy; i++ {
		go func() {
			var chain *node
			allocating.Done()
			for k := int64(0); !stop.Load(); k++ {
				chain = &node{chain, k}
				if k%1000 == 0 {
					chain = nil
				}
			}
			sink = chain
			allocated.Done()
		}()
	}
	allocating.Wait()

	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	gcsBefore := ms.NumGC
	times := make([]float64, calls)
	for i := range times {
		t0 := time.Now()
		runtime.ReadMemStats(&ms)
		t1 := time.Now()
		times[i] = float64(t1.Sub(t0).Nanoseconds()) / 1e3
		if busy > 0 {
			for time.Since(t1) < 20*time.Microsecond {
			}
		}
	}
	gcsDuring := ms.NumGC - gcsBefore
	stop.Store(true)
	allocated.Wait()
	close(ch)
	finished.Wait()

	var count, sum int64
	for p := head; p != nil; p = p.next {
		count++
		sum += p.v
	}
	sort.Float64s(times)
	fmt.Printf("%d ReadMemStats calls with %d goroutines parked, %d allocating and a live list of %d nodes (sum %d)\n",
		calls, goroutines, busy, count, sum)
	fmt.Fprintf(os.Stderr, "readmemstats_p50_us=%.1f p99_us=%.1f gcs_during=%d\n",
		times[(calls-1)*50/100], times[(calls-1)*99/100], gcsDuring)
}
