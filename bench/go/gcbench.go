// gcbench: the Ellis/Kovac/Boehm GCBench on Go's GC.
// stdout: the result (identical across the gort, Go and Boehm versions)
// stderr: wall_ms (key=value)
package main

import (
	"bufio"
	"fmt"
	"os"
	"time"
)

const (
	stretchTreeDepth   = 18     // about 16Mb
	longLivedTreeDepth = 16     // about 4Mb
	arraySize          = 500000 // about 4Mb
	minTreeDepth       = 4
	maxTreeDepth       = 16
)

type Node struct {
	left, right *Node
	i, j        int32
}

// treeSize is the number of nodes in a complete binary tree of the given depth.
func treeSize(i int) int { return (1 << uint(i+1)) - 1 }

// numIters is the number of trees of the given depth to build.
func numIters(i int) int { return 2 * treeSize(stretchTreeDepth) / treeSize(i) }

// populate builds a tree top-down.
func populate(depth int, n *Node) {
	if depth <= 0 {
		return
	}
	depth--
	n.left = &Node{}
	n.right = &Node{}
	populate(depth, n.left)
	populate(depth, n.right)
}

// makeTree builds a tree bottom-up.
func makeTree(depth int) *Node {
	if depth <= 0 {
		return &Node{}
	}
	l := makeTree(depth - 1)
	r := makeTree(depth - 1)
	return &Node{left: l, right: r}
}

func countNodes(n *Node) int {
	if n == nil {
		return 0
	}
	return 1 + countNodes(n.left) + countNodes(n.right)
}

// sink makes the temporary trees escape, as the other versions' heap allocations do.
var sink *Node

func timeConstruction(out *bufio.Writer, depth int) {
	iters := numIters(depth)
	fmt.Fprintf(out, "Creating %d trees of depth %d\n", iters, depth)
	for i := 0; i < iters; i++ {
		t := &Node{}
		populate(depth, t)
		sink = t
		sink = nil
	}
	fmt.Fprintf(out, "\tTop down construction done\n")
	for i := 0; i < iters; i++ {
		sink = makeTree(depth)
		sink = nil
	}
	fmt.Fprintf(out, "\tBottom up construction done\n")
}

func main() {
	out := bufio.NewWriter(os.Stdout)
	start := time.Now()

	fmt.Fprintf(out, "Garbage Collector Test\n")
	fmt.Fprintf(out, " Stretching memory with a binary tree of depth %d\n", stretchTreeDepth)
	sink = makeTree(stretchTreeDepth)
	sink = nil

	fmt.Fprintf(out, " Creating a long-lived binary tree of depth %d\n", longLivedTreeDepth)
	longLived := &Node{}
	populate(longLivedTreeDepth, longLived)

	fmt.Fprintf(out, " Creating a long-lived array of %d doubles\n", arraySize)
	array := make([]float64, arraySize)
	for i := 0; i < arraySize/2; i++ {
		array[i] = 1.0 / float64(i)
	}

	for d := minTreeDepth; d <= maxTreeDepth; d += 2 {
		timeConstruction(out, d)
	}

	nodes := countNodes(longLived)
	ok := array[1000] == 1.0/1000.0 && array[arraySize/2] == 0 && nodes == treeSize(longLivedTreeDepth)
	wall := time.Since(start)
	fmt.Fprintf(out, "long-lived tree nodes: %d\n", nodes)
	if ok {
		fmt.Fprintf(out, "check: ok\n")
	} else {
		fmt.Fprintf(out, "check: FAILED\n")
	}
	out.Flush()
	fmt.Fprintf(os.Stderr, "wall_ms=%.1f\n", float64(wall.Nanoseconds())/1e6)
	if !ok {
		os.Exit(1)
	}
}
