package main

import (
	"encoding/binary"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fakeVineyardd answers the IPC protocol the way vineyardd 0.24.2 does (register, status,
// listing), from canned state; the contract tests run the exporter against the real daemon.
type fakeVineyardd struct {
	t        *testing.T
	path     string
	listener net.Listener

	mu        sync.Mutex
	status    Status
	objects   map[string]map[string]any
	failNext  string // a request type answered with an error once
	connected int    // connections accepted so far
	conns     []net.Conn
}

func startFake(t *testing.T) *fakeVineyardd {
	t.Helper()
	f := &fakeVineyardd{t: t, path: filepath.Join(t.TempDir(), "vineyard.sock"),
		status: Status{InstanceID: 7, Deployment: "local", MemoryUsage: 1024,
			MemoryLimit: 256 << 20, IPCConnections: 2, RPCConnections: 1},
		objects: map[string]map[string]any{}}
	f.listen()
	t.Cleanup(func() { f.listener.Close() })
	return f
}

func (f *fakeVineyardd) listen() {
	l, err := net.Listen("unix", f.path)
	if err != nil {
		f.t.Fatal(err)
	}
	f.listener = l
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.connected++
			f.conns = append(f.conns, c)
			f.mu.Unlock()
			go f.serve(c)
		}
	}()
}

// restart drops every connection (as a restarted vineyardd would) and listens again.
func (f *fakeVineyardd) restart() {
	f.listener.Close()
	f.mu.Lock()
	for _, c := range f.conns {
		c.Close()
	}
	f.conns = nil
	f.mu.Unlock()
	f.listen()
}

func (f *fakeVineyardd) serve(c net.Conn) {
	defer c.Close()
	registered := false
	for {
		var header [8]byte
		if _, err := io.ReadFull(c, header[:]); err != nil {
			return
		}
		body := make([]byte, binary.LittleEndian.Uint64(header[:]))
		if _, err := io.ReadFull(c, body); err != nil {
			return
		}
		var req map[string]any
		if err := json.Unmarshal(body, &req); err != nil {
			f.t.Errorf("request is not JSON: %q", body)
			return
		}
		kind, _ := req["type"].(string)
		f.mu.Lock()
		var reply map[string]any
		switch {
		case f.failNext == kind:
			f.failNext = ""
			reply = map[string]any{"code": 11, "message": "simulated failure"}
		case kind == "register_request":
			registered = true
			reply = map[string]any{"type": "register_reply", "instance_id": f.status.InstanceID,
				"version": "0.24.2", "ipc_socket": f.path, "rpc_endpoint": "node:9600"}
		case !registered:
			reply = map[string]any{"code": 2, "message": "The connection is not registered yet"}
		case kind == "instance_status_request":
			reply = map[string]any{"type": "instance_status_reply", "meta": f.status}
		case kind == "list_data_request":
			limit := int(req["limit"].(float64))
			content := map[string]any{}
			for id, meta := range f.objects {
				if len(content) == limit {
					break
				}
				content[id] = meta
			}
			reply = map[string]any{"type": "get_data_reply", "content": content}
		default:
			reply = map[string]any{"code": 2, "message": "Got unexpected command: " + kind}
		}
		f.mu.Unlock()
		out, _ := json.Marshal(reply)
		frame := binary.LittleEndian.AppendUint64(nil, uint64(len(out)))
		if _, err := c.Write(append(frame, out...)); err != nil {
			return
		}
	}
}

func (f *fakeVineyardd) put(id string, instance uint64, typeName string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.objects[id] = map[string]any{"id": id, "instance_id": instance, "typename": typeName}
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// scrape gathers the collector's metrics in the text format (duration left out: it varies).
func scrape(t *testing.T, c *Collector, names ...string) string {
	t.Helper()
	registry := prometheus.NewPedanticRegistry()
	registry.MustRegister(c)
	families, err := registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mf := range families {
		if mf.GetName() == "vineyard_exporter_scrape_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			line := mf.GetName()
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			if len(labels) > 0 {
				line += "{" + strings.Join(labels, ",") + "}"
			}
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			out = append(out, line+" "+strings.TrimSuffix(strings.TrimSuffix(
				jsonNumber(v), ".0"), ".000000"))
		}
	}
	return strings.Join(out, "\n")
}

func jsonNumber(v float64) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestStatusBecomesMetrics(t *testing.T) {
	f := startFake(t)
	c := NewCollector(f.path, "node-1", time.Second, 0, quietLog())
	got := scrape(t, c)
	want := strings.Join([]string{
		"vineyard_deferred_requests 0",
		"vineyard_exporter_errors_total 0",
		"vineyard_instance_info{deployment=local,instance_id=7,node=node-1,version=0.24.2} 1",
		// 2 connected, one of them the exporter
		"vineyard_ipc_connections 1",
		"vineyard_memory_limit_bytes 268435456",
		"vineyard_memory_usage_bytes 1024",
		"vineyard_rpc_connections 1",
		"vineyard_up 1",
	}, "\n")
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestOneConnectionServesEveryScrape(t *testing.T) {
	f := startFake(t)
	c := NewCollector(f.path, "n", time.Second, 10, quietLog())
	for i := 0; i < 5; i++ {
		scrape(t, c)
	}
	if f.connected != 1 {
		t.Errorf("connected %d times, want once", f.connected)
	}
}

func TestMemoryUsageFollowsTheDaemon(t *testing.T) {
	f := startFake(t)
	c := NewCollector(f.path, "n", time.Second, 0, quietLog())
	before := testutil.ToFloat64(onlyMetric(c, "vineyard_memory_usage_bytes"))
	f.mu.Lock()
	f.status.MemoryUsage += 64 << 20
	f.mu.Unlock()
	after := testutil.ToFloat64(onlyMetric(c, "vineyard_memory_usage_bytes"))
	if after-before != 64<<20 {
		t.Errorf("usage went from %v to %v, want +64 MiB", before, after)
	}
}

func TestNoDaemonIsDownNotAnError(t *testing.T) {
	c := NewCollector(filepath.Join(t.TempDir(), "missing.sock"), "n", 100*time.Millisecond, 0,
		quietLog())
	got := scrape(t, c)
	want := "vineyard_exporter_errors_total 1\nvineyard_up 0"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestReconnectsAfterTheDaemonRestarts(t *testing.T) {
	f := startFake(t)
	c := NewCollector(f.path, "n", time.Second, 0, quietLog())
	scrape(t, c)
	f.restart()
	if got := testutil.ToFloat64(onlyMetric(c, "vineyard_up")); got != 1 {
		t.Errorf("vineyard_up %v after a restart, want 1 (reconnected in the same scrape)", got)
	}
	if f.connected != 2 {
		t.Errorf("connected %d times, want 2", f.connected)
	}
}

func TestErrorReplyMakesItDown(t *testing.T) {
	f := startFake(t)
	c := NewCollector(f.path, "n", time.Second, 0, quietLog())
	f.mu.Lock()
	f.failNext = "instance_status_request"
	f.mu.Unlock()
	// The failed exchange is retried once on a new connection, which succeeds.
	if got := testutil.ToFloat64(onlyMetric(c, "vineyard_up")); got != 1 {
		t.Errorf("vineyard_up %v, want 1 after the retry", got)
	}
	f.mu.Lock()
	f.failNext = "register_request"
	f.mu.Unlock()
	f.restart()
	if got := testutil.ToFloat64(onlyMetric(c, "vineyard_up")); got != 0 {
		t.Errorf("vineyard_up %v with registration refused, want 0", got)
	}
}

func TestObjectsCountThisInstancesObjectsWithoutBlobs(t *testing.T) {
	f := startFake(t)
	f.put("o1", 7, "vineyard::Tensor<int64>")
	f.put("o2", 7, "vineyard::Blob")
	f.put("o3", 7, "vineyard::DataFrame")
	f.put("o4", 8, "vineyard::Tensor<int64>") // another instance's (metadata is cluster-wide)
	c := NewCollector(f.path, "n", time.Second, 10, quietLog())
	if got := testutil.ToFloat64(onlyMetric(c, "vineyard_objects")); got != 2 {
		t.Errorf("vineyard_objects %v, want 2", got)
	}
	if got := testutil.ToFloat64(onlyMetric(c, "vineyard_objects_limit_reached")); got != 0 {
		t.Errorf("vineyard_objects_limit_reached %v, want 0", got)
	}
}

func TestObjectsAreNotReportedPastTheLimit(t *testing.T) {
	f := startFake(t)
	for _, id := range []string{"o1", "o2", "o3"} {
		f.put(id, 7, "vineyard::Tensor<int64>")
	}
	c := NewCollector(f.path, "n", time.Second, 3, quietLog())
	got := scrape(t, c)
	if strings.Contains(got, "vineyard_objects ") {
		t.Errorf("vineyard_objects reported although the listing was cut:\n%s", got)
	}
	if !strings.Contains(got, "vineyard_objects_limit_reached 1") {
		t.Errorf("vineyard_objects_limit_reached not 1:\n%s", got)
	}
}

func TestHTTPServesMetricsAndHealth(t *testing.T) {
	f := startFake(t)
	server := httptest.NewServer(handler(NewCollector(f.path, "n", time.Second, 0, quietLog())))
	defer server.Close()
	for path, want := range map[string]string{
		"/metrics": "vineyard_memory_limit_bytes 2.68435456e+08",
		"/healthz": "ok",
	} {
		resp, err := http.Get(server.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("%s: %d, %q not in:\n%s", path, resp.StatusCode, want, body)
		}
	}
}

func TestFlags(t *testing.T) {
	if _, err := parseFlags(nil); err == nil || !strings.Contains(err.Error(), "--socket") {
		t.Errorf("no --socket: %v", err)
	}
	if _, err := parseFlags([]string{"--socket=s", "--objects-limit=-1"}); err == nil {
		t.Error("a negative --objects-limit was accepted")
	}
	o, err := parseFlags([]string{"--socket=/s", "--node=n1"})
	if err != nil || o.listen != ":9610" || o.objectsLimit != 1000 || o.node != "n1" {
		t.Errorf("defaults: %+v, %v", o, err)
	}
}

// onlyMetric returns a collector that yields only the named metric of c's next scrape.
func onlyMetric(c *Collector, name string) prometheus.Collector {
	return filtered{c, name}
}

type filtered struct {
	c    *Collector
	name string
}

func (f filtered) Describe(ch chan<- *prometheus.Desc) { f.c.Describe(ch) }

func (f filtered) Collect(ch chan<- prometheus.Metric) {
	all := make(chan prometheus.Metric)
	go func() { f.c.Collect(all); close(all) }()
	for m := range all {
		if strings.Contains(m.Desc().String(), `fqName: "`+f.name+`"`) {
			ch <- m
		}
	}
}
