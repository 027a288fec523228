// The Go side of check_exporters.sh: what client_golang's Go collector and expvar print in a Go
// program, for comparison with gort's exporters. Built with Debian's client_golang 1.14
// (golang-github-prometheus-client-golang-dev) and GOPATH=/usr/share/gocode.
//
//	go_peer metrics   the Go collector's families in text format 0.0.4
//	go_peer vars      expvar's memstats variable (JSON)
package main

import (
	"expvar"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/common/expfmt"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "vars" {
		os.Stdout.WriteString(expvar.Get("memstats").String() + "\n")
		return
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector())
	families, err := reg.Gather()
	if err != nil {
		panic(err)
	}
	for _, f := range families {
		if _, err := expfmt.MetricFamilyToText(os.Stdout, f); err != nil {
			panic(err)
		}
	}
}
