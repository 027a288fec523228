// alloc: allocation throughput of a 16-byte object holding two pointers on Go's GC.
// Each object is linked to the previous one; the chain is cut every 64 objects, so
// almost everything becomes short-lived garbage.
// Usage: alloc [COUNT]   (COUNT = 50000000 by default)
// stdout: the result (identical across the gort, Go and Boehm versions)
// stderr: alloc16_ns (key=value): wall time per allocation
package main

import (
	"fmt"
	"os"
	"strconv"
	"time"
)

type obj struct{ a, b *obj }

// head keeps the most recent complete chain reachable. Storing into a package-level
// variable makes every obj escape, so the compiler cannot stack-allocate or drop them.
var head *obj

func run(n int) {
	var prev *obj
	for i := 0; i < n; i++ {
		o := &obj{a: prev}
		prev = o
		if i&63 == 63 {
			head = prev
			prev = nil
		}
	}
	if prev != nil {
		head = prev
	}
}

func main() {
	n := 50000000
	if len(os.Args) > 1 {
		v, err := strconv.Atoi(os.Args[1])
		if err != nil || v <= 0 {
			fmt.Fprintln(os.Stderr, "usage: alloc [COUNT]")
			os.Exit(2)
		}
		n = v
	}
	start := time.Now()
	run(n)
	wall := time.Since(start)

	length := 0
	for p := head; p != nil; p = p.a {
		length++
	}
	fmt.Printf("allocated %d objects of 16 bytes, last chain length %d\n", n, length)
	fmt.Fprintf(os.Stderr, "alloc16_ns=%.2f\n", float64(wall.Nanoseconds())/float64(n))
}
