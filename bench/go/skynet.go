// skynet: 1,000,000 leaf goroutines in a 10-ary tree on Go's scheduler. Each leaf sends its
// ordinal; each inner goroutine starts its 10 children, sums what they send on its own channel
// (capacity 10) and sends the sum up. The root sends on an unbuffered channel to main.
// Usage: skynet [LEAVES [new]]   (LEAVES = 1000000 by default; a power of 10)
//   new: gort's C++ version then makes each inner channel with new/delete; the same to Go.
// stdout: the result (identical across the gort and Go versions)
// stderr: wall_ms stack_sys_mb (key=value); stack_sys_mb is MemStats.StackSys once the tree
// has finished, in MiB
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"time"
)

const div = 10

func skynet(c chan<- int64, num, size int64) {
	if size == 1 {
		c <- num
		return
	}
	rc := make(chan int64, div)
	for i := int64(0); i < div; i++ {
		go skynet(rc, num+i*(size/div), size/div)
	}
	var sum int64
	for i := 0; i < div; i++ {
		sum += <-rc
	}
	c <- sum
}

func main() {
	leaves := int64(1000000)
	if len(os.Args) > 1 {
		v, err := strconv.ParseInt(os.Args[1], 10, 64)
		if err != nil || !powerOf10(v) || (len(os.Args) > 2 && os.Args[2] != "new") {
			fmt.Fprintln(os.Stderr, "usage: skynet [LEAVES [new]]   (LEAVES a power of 10)")
			os.Exit(2)
		}
		leaves = v
	}
	start := time.Now()
	c := make(chan int64)
	go skynet(c, 0, leaves)
	result := <-c
	wall := time.Since(start)

	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("Result: %d\n", result)
	fmt.Fprintf(os.Stderr, "wall_ms=%.1f stack_sys_mb=%.1f\n",
		float64(wall.Nanoseconds())/1e6, float64(ms.StackSys)/(1<<20))
}

func powerOf10(n int64) bool {
	if n < 1 {
		return false
	}
	for n%div == 0 {
		n /= div
	}
	return n == 1
}
