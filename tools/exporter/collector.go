package main

import (
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Collector asks vineyardd for its status on every scrape (nothing is polled in between, so an
// idle Prometheus costs vineyardd nothing) over one IPC connection kept open between scrapes
// and opened again when vineyardd restarts.
type Collector struct {
	socket       string
	node         string
	timeout      time.Duration
	objectsLimit int // 0: objects are not counted
	log          *slog.Logger

	mu   sync.Mutex // one exchange with vineyardd at a time (several Prometheus may scrape)
	conn *Conn

	errors prometheus.Counter
}

// NewCollector returns a collector for the vineyardd listening at socket, on node.
func NewCollector(socket, node string, timeout time.Duration, objectsLimit int, log *slog.Logger) *Collector {
	return &Collector{
		socket: socket, node: node, timeout: timeout, objectsLimit: objectsLimit, log: log,
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vineyard_exporter_errors_total",
			Help: "Scrapes in which the exporter could not get vineyardd's status (vineyard_up was 0).",
		}),
	}
}

var (
	upDesc = prometheus.NewDesc("vineyard_up",
		"1 if vineyardd answered the exporter's status request in this scrape, else 0.", nil, nil)
	infoDesc = prometheus.NewDesc("vineyard_instance_info",
		"Always 1: the vineyardd instance's id (as in its metadata), node, deployment and version.",
		[]string{"instance_id", "node", "deployment", "version"}, nil)
	memoryUsageDesc = prometheus.NewDesc("vineyard_memory_usage_bytes",
		"Shared memory vineyardd has handed out to objects (its bulk store's footprint).", nil, nil)
	memoryLimitDesc = prometheus.NewDesc("vineyard_memory_limit_bytes",
		"Shared memory vineyardd may hand out (--size).", nil, nil)
	deferredDesc = prometheus.NewDesc("vineyard_deferred_requests",
		"Requests vineyardd holds until they can be served (e.g. a get waiting for an object).", nil, nil)
	ipcDesc = prometheus.NewDesc("vineyard_ipc_connections",
		"Clients connected over the UNIX socket, the exporter's own connection not counted.", nil, nil)
	rpcDesc = prometheus.NewDesc("vineyard_rpc_connections",
		"Clients connected over the RPC port.", nil, nil)
	objectsDesc = prometheus.NewDesc("vineyard_objects",
		"Objects whose metadata belongs to this instance, blobs not counted (members of a "+
			"composite object are). Absent when the listing reached the exporter's --objects-limit.",
		nil, nil)
	objectsLimitDesc = prometheus.NewDesc("vineyard_objects_limit_reached",
		"1 if the metadata listing (cluster-wide) reached the exporter's --objects-limit, so "+
			"vineyard_objects is not reported.", nil, nil)
	durationDesc = prometheus.NewDesc("vineyard_exporter_scrape_duration_seconds",
		"Time the exporter spent talking to vineyardd in this scrape.", nil, nil)
)

// Describe sends every metric's description.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{upDesc, infoDesc, memoryUsageDesc, memoryLimitDesc,
		deferredDesc, ipcDesc, rpcDesc, objectsDesc, objectsLimitDesc, durationDesc} {
		ch <- d
	}
	c.errors.Describe(ch)
}

// Collect asks vineyardd and sends what it answered.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	start := time.Now()
	c.mu.Lock()
	status, objects, version, err := c.ask()
	c.mu.Unlock()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	if err != nil {
		c.log.Warn("vineyardd did not answer", "socket", c.socket, "error", err)
		c.errors.Inc()
		gauge(upDesc, 0)
	} else {
		gauge(upDesc, 1)
		gauge(infoDesc, 1, strconv.FormatUint(status.InstanceID, 10), c.node, status.Deployment, version)
		gauge(memoryUsageDesc, float64(status.MemoryUsage))
		gauge(memoryLimitDesc, float64(status.MemoryLimit))
		gauge(deferredDesc, float64(status.DeferredRequests))
		ipc := status.IPCConnections
		if ipc > 0 {
			ipc-- // the exporter's own connection, counted while it asks
		}
		gauge(ipcDesc, float64(ipc))
		gauge(rpcDesc, float64(status.RPCConnections))
		if objects != nil {
			gauge(objectsLimitDesc, boolFloat(objects.Truncated))
			if !objects.Truncated {
				gauge(objectsDesc, float64(objects.Count))
			}
		}
	}
	gauge(durationDesc, time.Since(start).Seconds())
	c.errors.Collect(ch)
}

// ask gets the status (and the objects, when counted) over the kept connection; a connection
// that fails is closed and, once per scrape, opened again (vineyardd may have restarted).
func (c *Collector) ask() (Status, *Objects, string, error) {
	var lastErr error
	for attempt := 0; attempt < 2; attempt++ {
		if c.conn == nil {
			conn, err := Dial(c.socket, c.timeout)
			if err != nil {
				return Status{}, nil, "", err
			}
			c.conn = conn
		}
		status, objects, err := c.exchange()
		if err == nil {
			return status, objects, c.conn.Version, nil
		}
		lastErr = err
		c.conn.Close()
		c.conn = nil
	}
	return Status{}, nil, "", lastErr
}

func (c *Collector) exchange() (Status, *Objects, error) {
	status, err := c.conn.Status(c.timeout)
	if err != nil || c.objectsLimit <= 0 {
		return status, nil, err
	}
	objects, err := c.conn.Objects(status.InstanceID, c.objectsLimit, c.timeout)
	if err != nil {
		return status, nil, err
	}
	return status, &objects, nil
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
