// binarytrees: the Benchmarks Game binary-trees workload, sequential, on Go's GC.
// Usage: binarytrees [N]   (N = 21 by default)
// stdout: the result (identical across the gort, Go and Boehm versions)
// stderr: wall_ms numgc pause_total_us pause_max_us sys_mb (key=value)
package main

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"time"
)

type Node struct{ left, right *Node }

func bottomUpTree(depth int) *Node {
	if depth <= 0 {
		return &Node{}
	}
	l := bottomUpTree(depth - 1)
	r := bottomUpTree(depth - 1)
	return &Node{l, r}
}

func (n *Node) check() int {
	if n.left == nil {
		return 1
	}
	return 1 + n.left.check() + n.right.check()
}

func main() {
	n := 21
	if len(os.Args) > 1 {
		v, err := strconv.Atoi(os.Args[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, "usage: binarytrees [N]")
			os.Exit(2)
		}
		n = v
	}
	out := bufio.NewWriter(os.Stdout)
	start := time.Now()

	const minDepth = 4
	maxDepth := n
	if minDepth+2 > n {
		maxDepth = minDepth + 2
	}
	stretch := maxDepth + 1
	fmt.Fprintf(out, "stretch tree of depth %d\t check: %d\n", stretch, bottomUpTree(stretch).check())

	longLived := bottomUpTree(maxDepth)
	for d := minDepth; d <= maxDepth; d += 2 {
		iters := 1 << uint(maxDepth-d+minDepth)
		check := 0
		for i := 0; i < iters; i++ {
			check += bottomUpTree(d).check()
		}
		fmt.Fprintf(out, "%d\t trees of depth %d\t check: %d\n", iters, d, check)
	}
	fmt.Fprintf(out, "long lived tree of depth %d\t check: %d\n", maxDepth, longLived.check())
	wall := time.Since(start)
	out.Flush()

	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	var pauseMax uint64
	k := int(ms.NumGC)
	if k > len(ms.PauseNs) {
		k = len(ms.PauseNs)
	}
	for i := 0; i < k; i++ {
		if ms.PauseNs[i] > pauseMax {
			pauseMax = ms.PauseNs[i]
		}
	}
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	fmt.Fprintf(os.Stderr, "wall_ms=%.1f numgc=%d pause_total_us=%.1f pause_max_us=%.1f sys_mb=%.1f gccpu=%.3f rss_mb=%.1f\n",
		float64(wall.Nanoseconds())/1e6, ms.NumGC, float64(ms.PauseTotalNs)/1e3,
		float64(pauseMax)/1e3, float64(ms.Sys)/(1<<20), ms.GCCPUFraction, float64(ru.Maxrss)/1024)
}
