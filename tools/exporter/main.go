// Command vineyard-exporter serves one vineyardd's status as Prometheus metrics. It runs as a
// container beside vineyardd in the chart's DaemonSet pod (values `metrics`), connects to the
// daemon's UNIX socket like any client, and on each scrape of /metrics asks it for its
// instance status: memory in use and its limit, connections, deferred requests, the instance's
// id, and (up to --objects-limit) the number of objects. vineyardd 0.24.2 has no metrics
// endpoint of its own; its --metrics flag logs lines on every request instead (about 390 bytes
// per put), so request counts and latencies are not exported (charts/vineyard/README.md,
// "Metrics", has the measurements).
//
//	vineyard-exporter --socket /var/run/vineyard/vineyard.sock [--listen-address :9610]
//	                  [--timeout 5s] [--objects-limit 1000] [--node NAME]
//
// /metrics serves the metrics, /healthz answers 200 while the exporter runs (whether or not
// vineyardd answers: vineyard_up says that).
//
//	vineyard-exporter selftest put|get ...
//
// is the chart's `helm test` of the data path instead (selftest.go).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// version is set at build time (-ldflags "-X main.version=..."): the chart's version.
var version = "dev"

type options struct {
	socket       string
	listen       string
	timeout      time.Duration
	objectsLimit int
	node         string
}

func parseFlags(args []string) (options, error) {
	fs := flag.NewFlagSet("vineyard-exporter", flag.ContinueOnError)
	var o options
	var showVersion bool
	fs.StringVar(&o.socket, "socket", "", "vineyardd's IPC socket (required)")
	fs.StringVar(&o.listen, "listen-address", ":9610", "address to serve /metrics and /healthz on")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Second, "limit of each exchange with vineyardd")
	fs.IntVar(&o.objectsLimit, "objects-limit", 1000,
		"count objects by listing at most this many metadata entries per scrape (cluster-wide; "+
			"about 20 µs of vineyardd CPU each); 0 does not count them")
	fs.StringVar(&o.node, "node", os.Getenv("MY_NODE_NAME"),
		"the node's name for vineyard_instance_info (default $MY_NODE_NAME)")
	fs.BoolVar(&showVersion, "version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if showVersion {
		fmt.Printf("vineyard-exporter %s (%s)\n", version, runtime.Version())
		os.Exit(0)
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected arguments: %v", fs.Args())
	case o.socket == "":
		return o, errors.New("--socket is required")
	case o.timeout <= 0:
		return o, errors.New("--timeout must be positive")
	case o.objectsLimit < 0:
		return o, errors.New("--objects-limit must be 0 (off) or positive")
	}
	return o, nil
}

// handler serves /metrics from a registry of the collector, the exporter's build info and its
// own process and Go runtime metrics, and /healthz.
func handler(c *Collector) http.Handler {
	registry := prometheus.NewRegistry()
	registry.MustRegister(
		c,
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewGoCollector(),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "vineyard_exporter_build_info",
			Help:        "Always 1: the exporter's version (the chart's) and Go version.",
			ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()},
		}, func() float64 { return 1 }),
	)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(registry, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError,
	}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintln(w, "vineyard-exporter: metrics at /metrics")
	})
	return mux
}

func run(ctx context.Context, o options, log *slog.Logger) error {
	c := NewCollector(o.socket, o.node, o.timeout, o.objectsLimit, log)
	listener, err := net.Listen("tcp", o.listen)
	if err != nil {
		return err
	}
	server := &http.Server{Handler: handler(c), ReadHeaderTimeout: 10 * time.Second}
	log.Info("serving", "address", listener.Addr().String(), "socket", o.socket,
		"version", version, "objects_limit", o.objectsLimit)
	done := make(chan error, 1)
	go func() { done <- server.Serve(listener) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return server.Shutdown(shutdown)
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "selftest" {
		err := runSelftest(os.Args[2:], os.Stdout)
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "vineyard-exporter selftest:", err)
			os.Exit(1)
		}
		return
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	o, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "vineyard-exporter:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, o, log); err != nil {
		log.Error("exiting", "error", err)
		os.Exit(1)
	}
}
