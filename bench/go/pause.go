// pause: stop-the-world pauses with a large live pointer graph under churn (gort's peer).
// Usage: pause [LIVE_MB]   (512 by default)
// stdout: the result (identical across the gort and Go versions)
// stderr: wall_ms gcs pause_max_us pause_p50_us gccpu rss_mb (key=value)
package main

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"syscall"
	"time"
)

type Node struct {
	next    *Node
	payload [6]uint64
}

func main() {
	liveMB := 512
	if len(os.Args) > 1 {
		v, err := strconv.Atoi(os.Args[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, "usage: pause [LIVE_MB]")
			os.Exit(2)
		}
		liveMB = v
	}
	start := time.Now()
	n := liveMB * 16384

	arr := make([]*Node, n)
	for i := 0; i < n; i++ {
		x := &Node{}
		x.payload[0] = uint64(i)
		arr[i] = x
		if i > 0 {
			arr[i-1].next = x
		}
	}
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	var garbageSum uint64
	for round := 0; round < 40; round++ {
		for i := round % 8; i < n; i += 8 {
			fresh := &Node{}
			fresh.payload[0] = uint64(i)
			if i+1 < n {
				fresh.next = arr[i+1]
			}
			if i > 0 {
				arr[i-1].next = fresh
			}
			arr[i] = fresh
		}
		var chain *Node
		for k := 0; k < 200000; k++ {
			if k%1000 == 0 {
				chain = nil
			}
			g := &Node{next: chain}
			g.payload[0] = uint64(k)
			chain = g
			garbageSum += g.payload[0]
		}
	}

	var count, sum uint64
	for x := arr[0]; x != nil; x = x.next {
		count++
		sum += x.payload[0]
	}
	wall := time.Since(start)
	fmt.Printf("live nodes: %d, payload sum: %d, garbage sum: %d\n", count, sum, garbageSum)

	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	var pauses []uint64
	for c := before.NumGC; c < ms.NumGC && ms.NumGC-c <= 256; c++ {
		pauses = append(pauses, ms.PauseNs[c%256])
	}
	sort.Slice(pauses, func(a, b int) bool { return pauses[a] < pauses[b] })
	var maxUs, p50Us float64
	if len(pauses) > 0 {
		maxUs = float64(pauses[len(pauses)-1]) / 1e3
		p50Us = float64(pauses[len(pauses)/2]) / 1e3
	}
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	fmt.Fprintf(os.Stderr, "wall_ms=%.1f gcs=%d pause_max_us=%.1f pause_p50_us=%.1f gccpu=%.3f rss_mb=%.1f\n",
		float64(wall.Nanoseconds())/1e6, ms.NumGC-before.NumGC, maxUs, p50Us, ms.GCCPUFraction, float64(ru.Maxrss)/1024)
	if count != uint64(n) {
		os.Exit(1)
	}
}
