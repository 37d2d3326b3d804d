package main

// The chart's `helm test` of the data path (templates/tests/test-data-path.yaml):
//
//	vineyard-exporter selftest put --socket PATH --name NAME --size BYTES [--read-back]
//	vineyard-exporter selftest get --rpc HOST:PORT --name NAME... --size BYTES
//	vineyard-exporter selftest get --etcd URL[,URL] --etcd-prefix P --socket PATH --name NAME... --size BYTES
//
// put, in a worker pod on a vineyardd node: asks vineyardd over its UNIX socket for a blob,
// writes a pattern derived from the name into the memory vineyardd passes as a file descriptor
// (the zero-copy path workloads use), seals it, records a small object around it, persists and
// names it. A leftover of the same name (a run that failed before its reader) is deleted first.
// With --read-back (metadata local to each node: no other pod could find the object) it then
// reads the object back over a second connection and deletes it.
//
// get, in another pod: resolves each name, checks the object's metadata (type, size, holder,
// checksum) and deletes the object and its name. Through RPC (the release's Service) it also
// reads the bytes from the instance holding them and compares them with the pattern. Without
// RPC it reads the name and metadata from etcd, where vineyardd keeps them, and deletes through
// the socket of its own node's vineyardd (deletion is cluster-wide), then waits until etcd no
// longer has them.

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"
)

// probeType is the type name of the selftest's objects (not a type any vineyard client reads).
const probeType = "vineyard-helm::DataPathProbe"

// rootSession is the etcd key component of vineyardd's default session (session id 0).
const rootSession = "S0000000000000000"

type selftestOptions struct {
	socket     string
	rpc        string
	etcd       string
	etcdPrefix string
	names      []string
	size       uint64
	node       string
	pod        string
	readBack   bool
	timeout    time.Duration
}

type nameList []string

func (n *nameList) String() string     { return strings.Join(*n, ",") }
func (n *nameList) Set(v string) error { *n = append(*n, v); return nil }

func parseSelftest(args []string) (string, selftestOptions, error) {
	var o selftestOptions
	if len(args) == 0 || (args[0] != "put" && args[0] != "get") {
		return "", o, errors.New("usage: vineyard-exporter selftest put|get [flags] (-h for the flags)")
	}
	verb := args[0]
	fs := flag.NewFlagSet("vineyard-exporter selftest "+verb, flag.ContinueOnError)
	fs.StringVar(&o.socket, "socket", "", "vineyardd's IPC socket")
	fs.Var((*nameList)(&o.names), "name", "the object's name (get: repeat for several)")
	fs.Uint64Var(&o.size, "size", 0, "bytes in the object")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "limit of each exchange")
	if verb == "put" {
		fs.StringVar(&o.node, "node", os.Getenv("MY_NODE_NAME"), "this node's name, recorded in the object (default $MY_NODE_NAME)")
		fs.StringVar(&o.pod, "pod", os.Getenv("MY_POD_NAME"), "this pod's name, recorded in the object (default $MY_POD_NAME)")
		fs.BoolVar(&o.readBack, "read-back", false, "read the object back over a second connection and delete it")
	} else {
		fs.StringVar(&o.rpc, "rpc", "", "vineyardd's RPC address host:port (the release's Service)")
		fs.StringVar(&o.etcd, "etcd", "", "without RPC: etcd's client URLs, comma-separated")
		fs.StringVar(&o.etcdPrefix, "etcd-prefix", "/vineyard", "vineyardd's --etcd_prefix")
	}
	if err := fs.Parse(args[1:]); err != nil {
		return verb, o, err
	}
	switch {
	case fs.NArg() > 0:
		return verb, o, fmt.Errorf("unexpected arguments: %v", fs.Args())
	case len(o.names) == 0:
		return verb, o, errors.New("--name is required")
	case verb == "put" && len(o.names) > 1:
		return verb, o, errors.New("put takes one --name")
	case o.size == 0:
		return verb, o, errors.New("--size must be positive")
	case o.timeout <= 0:
		return verb, o, errors.New("--timeout must be positive")
	case verb == "put" && o.socket == "":
		return verb, o, errors.New("--socket is required")
	case verb == "get" && (o.rpc == "") == (o.etcd == ""):
		return verb, o, errors.New("get needs exactly one of --rpc and --etcd")
	case verb == "get" && o.etcd != "" && o.socket == "":
		return verb, o, errors.New("--etcd needs --socket: deletion goes through vineyardd")
	}
	return verb, o, nil
}

func runSelftest(args []string, out io.Writer) error {
	verb, o, err := parseSelftest(args)
	if err != nil {
		return err
	}
	if verb == "put" {
		return selftestPut(o, out)
	}
	if o.rpc != "" {
		return selftestGetRPC(o, out)
	}
	return selftestGetEtcd(o, out)
}

// pattern is the object's content: pseudo-random bytes (xorshift64*) seeded by the name, so
// the reader knows what to expect without being told, and no two objects look alike.
func pattern(name string, size uint64) []byte {
	h := fnv.New64a()
	h.Write([]byte(name))
	x := h.Sum64() | 1
	out := make([]byte, size+7)
	for i := uint64(0); i < size; i += 8 {
		x ^= x >> 12
		x ^= x << 25
		x ^= x >> 27
		binary.LittleEndian.PutUint64(out[i:], x*0x2545F4914F6CDD1D)
	}
	return out[:size]
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func selftestPut(o selftestOptions, out io.Writer) error {
	name := o.names[0]
	conn, err := Dial(o.socket, o.timeout)
	if err != nil {
		return fmt.Errorf("connecting to vineyardd at %s: %w", o.socket, err)
	}
	defer conn.Close()
	fmt.Fprintf(out, "connected to vineyardd %s, instance %d, over %s\n", conn.Version, conn.InstanceID, o.socket)
	if err := removeLeftover(conn, name, o.timeout, out); err != nil {
		return err
	}
	id, sum, err := putProbe(conn, name, o)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "put %q: object %s (%s, %d bytes, sha256 %s) on instance %d, node %s: "+
		"written into the memory vineyardd passed over the socket, sealed, persisted, named\n",
		name, ObjectID(id), probeType, o.size, sum, conn.InstanceID, o.node)
	if !o.readBack {
		return nil
	}
	// Metadata local to this node: read it back over a fresh connection, as another pod on the
	// node would, then delete it.
	reader, err := Dial(o.socket, o.timeout)
	if err != nil {
		return fmt.Errorf("connecting again to read back: %w", err)
	}
	defer reader.Close()
	p, err := fetchProbe(reader, name, o.size, o.timeout)
	if err == nil {
		err = p.checkBytes(reader, o.size, o.timeout)
	}
	if derr := deleteProbe(reader, name, id, o.timeout); derr != nil {
		err = errors.Join(err, derr)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "read back %q over a second connection: metadata and bytes match; deleted\n", name)
	return nil
}

// putProbe creates the named object; on failure it deletes whatever it created.
func putProbe(conn *Conn, name string, o selftestOptions) (id uint64, sum string, err error) {
	buffer, err := conn.CreateBuffer(o.size, o.timeout)
	var created uint64
	if buffer != nil {
		created = buffer.ID
	}
	defer func() {
		if err != nil && created != 0 {
			if derr := conn.Delete(created, o.timeout); derr != nil && !IsNotExists(derr) {
				err = errors.Join(err, fmt.Errorf("cleaning up %s: %w", ObjectID(created), derr))
			}
		}
	}()
	if err != nil {
		return 0, "", fmt.Errorf("creating a %d-byte blob: %w", o.size, err)
	}
	content := pattern(name, o.size)
	copy(buffer.Bytes, content)
	if err := buffer.Release(); err != nil {
		return 0, "", err
	}
	if err := conn.Seal(buffer.ID, o.timeout); err != nil {
		return 0, "", fmt.Errorf("sealing %s: %w", ObjectID(buffer.ID), err)
	}
	sum = sha256Hex(content)
	meta := map[string]any{
		"typename": probeType, "nbytes": o.size, "instance_id": conn.InstanceID,
		"transient": true, "global": false,
		"buffer_": map[string]any{"id": ObjectID(buffer.ID), "typename": "vineyard::Blob",
			"instance_id": conn.InstanceID, "length": o.size, "nbytes": o.size, "transient": true},
		"sha256_": sum, "node_": o.node, "pod_": o.pod,
	}
	id, _, err = conn.CreateData(meta, o.timeout)
	if err != nil {
		return 0, "", fmt.Errorf("creating the object's metadata: %w", err)
	}
	created = id // a deep delete of the object takes its blob too
	if err := conn.Persist(id, o.timeout); err != nil {
		return 0, "", fmt.Errorf("persisting %s: %w", ObjectID(id), err)
	}
	if err := conn.PutName(id, name, o.timeout); err != nil {
		return 0, "", fmt.Errorf("naming %s %q: %w", ObjectID(id), name, err)
	}
	return id, sum, nil
}

// removeLeftover deletes the object a failed earlier run left under name, if any.
func removeLeftover(conn *Conn, name string, timeout time.Duration, out io.Writer) error {
	id, err := conn.GetName(name, timeout)
	if IsNotExists(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("looking up %q: %w", name, err)
	}
	if err := deleteProbe(conn, name, id, timeout); err != nil {
		return fmt.Errorf("removing the leftover %s named %q: %w", ObjectID(id), name, err)
	}
	fmt.Fprintf(out, "removed %s, left under %q by an earlier run\n", ObjectID(id), name)
	return nil
}

func deleteProbe(conn *Conn, name string, id uint64, timeout time.Duration) error {
	var errs []error
	if err := conn.DropName(name, timeout); err != nil && !IsNotExists(err) {
		errs = append(errs, fmt.Errorf("dropping the name %q: %w", name, err))
	}
	if err := conn.Delete(id, timeout); err != nil && !IsNotExists(err) {
		errs = append(errs, fmt.Errorf("deleting %s: %w", ObjectID(id), err))
	}
	return errors.Join(errs...)
}

// probe is what a reader learned of one object.
type probe struct {
	name     string
	id       uint64
	blob     uint64
	instance uint64
	node     string
	sha256   string
}

// checkMeta checks an object's metadata, as vineyardd returns it (strings as they are) or as
// etcd holds it (etcd: strings carry a "v" prefix, members are "l<id>.<type>@<instance>").
func checkMeta(name string, id uint64, meta map[string]any, size uint64, etcd bool) (probe, error) {
	p := probe{name: name, id: id}
	str := func(key string) string {
		s := metaString(meta, key)
		if etcd {
			return strings.TrimPrefix(s, "v")
		}
		return s
	}
	var problems []string
	if got := str("typename"); got != probeType {
		problems = append(problems, fmt.Sprintf("type %q, not %q", got, probeType))
	}
	if n, ok := metaUint(meta, "nbytes"); !ok || n != size {
		problems = append(problems, fmt.Sprintf("nbytes %v, not %d", meta["nbytes"], size))
	}
	instance, ok := metaUint(meta, "instance_id")
	if !ok {
		problems = append(problems, "no instance_id")
	}
	p.instance, p.node, p.sha256 = instance, str("node_"), str("sha256_")
	if want := sha256Hex(pattern(name, size)); p.sha256 != want {
		problems = append(problems, fmt.Sprintf("sha256_ %q, not the pattern's %s", p.sha256, want))
	}
	var blob string
	if etcd {
		link := metaString(meta, "buffer_")
		blob = strings.SplitN(strings.TrimPrefix(link, "l"), ".", 2)[0]
	} else if member, ok := meta["buffer_"].(map[string]any); ok {
		blob = metaString(member, "id")
	}
	if b, err := ParseObjectID(blob); err != nil {
		problems = append(problems, fmt.Sprintf("no blob member (%v)", err))
	} else {
		p.blob = b
	}
	if problems != nil {
		return p, fmt.Errorf("%q is %s: %s", name, ObjectID(id), strings.Join(problems, "; "))
	}
	return p, nil
}

// fetchProbe resolves name and checks the object's metadata through conn.
func fetchProbe(conn *Conn, name string, size uint64, timeout time.Duration) (probe, error) {
	id, err := conn.GetName(name, timeout)
	if err != nil {
		return probe{name: name}, fmt.Errorf("resolving %q: %w", name, err)
	}
	meta, err := conn.GetData(id, timeout)
	if err != nil {
		return probe{name: name, id: id}, fmt.Errorf("metadata of %q (%s): %w", name, ObjectID(id), err)
	}
	return checkMeta(name, id, meta, size, false)
}

// checkBytes reads the blob through holder (a connection to the instance that has it).
func (p probe) checkBytes(holder *Conn, size uint64, timeout time.Duration) error {
	data, err := holder.ReadBlob(p.blob, size, timeout)
	if err != nil {
		return fmt.Errorf("reading the bytes of %q: %w", p.name, err)
	}
	if !bytes.Equal(data, pattern(p.name, size)) {
		return fmt.Errorf("the bytes of %q differ from what was written (sha256 %s, want %s)",
			p.name, sha256Hex(data), p.sha256)
	}
	return nil
}

func selftestGetRPC(o selftestOptions, out io.Writer) error {
	conn, err := DialRPC(o.rpc, o.timeout)
	if err != nil {
		return fmt.Errorf("connecting to vineyard's RPC at %s: %w", o.rpc, err)
	}
	defer conn.Close()
	fmt.Fprintf(out, "connected to vineyardd %s, instance %d, through RPC at %s\n", conn.Version, conn.InstanceID, o.rpc)
	var endpoints map[uint64]string
	holders := map[uint64]*Conn{conn.InstanceID: conn}
	defer func() {
		for instance, c := range holders {
			if instance != conn.InstanceID {
				c.Close()
			}
		}
	}()
	var errs []error
	var found []probe
	for _, name := range o.names {
		p, err := fetchProbe(conn, name, o.size, o.timeout)
		if err == nil {
			err = func() error {
				holder, ok := holders[p.instance]
				if !ok {
					if endpoints == nil {
						if endpoints, err = conn.RPCEndpoints(o.timeout); err != nil {
							return fmt.Errorf("listing the instances: %w", err)
						}
					}
					endpoint, known := endpoints[p.instance]
					if !known {
						return fmt.Errorf("%q is held by instance %d, which the cluster does not list", name, p.instance)
					}
					if holder, err = DialRPC(endpoint, o.timeout); err != nil {
						return fmt.Errorf("connecting to instance %d at %s: %w", p.instance, endpoint, err)
					}
					holders[p.instance] = holder
				}
				return p.checkBytes(holder, o.size, o.timeout)
			}()
		}
		if p.id != 0 {
			if derr := deleteProbe(conn, name, p.id, o.timeout); derr != nil {
				err = errors.Join(err, derr)
			}
		}
		if err != nil {
			errs = append(errs, err)
			fmt.Fprintf(out, "FAILED %q: %v\n", name, err)
			continue
		}
		found = append(found, p)
		fmt.Fprintf(out, "got %q: object %s (%s, %d bytes, sha256 %s) held by instance %d, node %s; "+
			"metadata through RPC, bytes read from instance %d match; deleted\n",
			name, ObjectID(p.id), probeType, o.size, p.sha256, p.instance, p.node, p.instance)
	}
	return summarize(found, errs, len(o.names), "metadata and bytes read back through RPC", out)
}

func selftestGetEtcd(o selftestOptions, out io.Writer) error {
	etcd := &etcdClient{endpoints: strings.Split(o.etcd, ","), timeout: o.timeout,
		client: &http.Client{Timeout: o.timeout}}
	base := strings.TrimSuffix(o.etcdPrefix, "/") + "/" + rootSession
	conn, err := Dial(o.socket, o.timeout)
	if err != nil {
		return fmt.Errorf("connecting to vineyardd at %s (to delete): %w", o.socket, err)
	}
	defer conn.Close()
	var errs []error
	var found []probe
	for _, name := range o.names {
		p, err := func() (probe, error) {
			// vineyardd writes to etcd in the background: a name just put may take a moment.
			value, err := etcd.waitFor(base + "/names/" + etcdKeyPart(name))
			if err != nil || value == nil {
				return probe{name: name}, fmt.Errorf("etcd has no name %q (%v)", name, err)
			}
			var id uint64
			if err := json.Unmarshal(value, &id); err != nil {
				return probe{name: name}, fmt.Errorf("etcd's name %q is %q: %w", name, value, err)
			}
			value, err = etcd.waitFor(base + "/data/" + ObjectID(id))
			if err != nil || value == nil {
				return probe{name: name, id: id}, fmt.Errorf("etcd has no metadata for %q (%s) (%v)", name, ObjectID(id), err)
			}
			var meta map[string]any
			if err := json.Unmarshal(value, &meta); err != nil {
				return probe{name: name, id: id}, fmt.Errorf("etcd's metadata of %s: %w", ObjectID(id), err)
			}
			return checkMeta(name, id, meta, o.size, true)
		}()
		if p.id != 0 {
			if derr := deleteProbe(conn, name, p.id, o.timeout); derr != nil {
				err = errors.Join(err, derr)
			} else if gerr := etcd.waitGone(base+"/names/"+etcdKeyPart(name), base+"/data/"+ObjectID(p.id)); gerr != nil {
				err = errors.Join(err, gerr)
			}
		}
		if err != nil {
			errs = append(errs, err)
			fmt.Fprintf(out, "FAILED %q: %v\n", name, err)
			continue
		}
		found = append(found, p)
		fmt.Fprintf(out, "got %q: object %s (%s, %d bytes, sha256 %s) held by instance %d, node %s; "+
			"metadata read from etcd; deleted through instance %d, gone from etcd\n",
			name, ObjectID(p.id), probeType, o.size, p.sha256, p.instance, p.node, conn.InstanceID)
	}
	return summarize(found, errs, len(o.names), "metadata read back from etcd (RPC is off: bytes not read)", out)
}

func summarize(found []probe, errs []error, want int, how string, out io.Writer) error {
	if len(errs) > 0 {
		return fmt.Errorf("%d of %d objects failed: %w", len(errs), want, errors.Join(errs...))
	}
	instances := map[uint64]bool{}
	var nodes []string
	for _, p := range found {
		if !instances[p.instance] {
			instances[p.instance] = true
			nodes = append(nodes, p.node)
		}
	}
	sort.Strings(nodes)
	fmt.Fprintf(out, "data path OK: %d objects from %d vineyardd instances (nodes %s), %s, all deleted\n",
		len(found), len(instances), strings.Join(nodes, ", "), how)
	return nil
}

// etcdKeyPart escapes a name as vineyardd does in its etcd keys (a JSON pointer's reference
// token: "~" becomes "~0", "/" becomes "~1").
func etcdKeyPart(name string) string {
	return strings.ReplaceAll(strings.ReplaceAll(name, "~", "~0"), "/", "~1")
}

// etcdClient reads keys through etcd's JSON gateway (/v3/kv/range), which every etcd 3.4+
// serves on its client port; no etcd client library needed.
type etcdClient struct {
	endpoints []string
	timeout   time.Duration
	client    *http.Client
}

// get returns the key's value, nil when absent; tries each endpoint until one answers.
func (e *etcdClient) get(key string) ([]byte, error) {
	body, _ := json.Marshal(map[string]string{"key": base64.StdEncoding.EncodeToString([]byte(key))})
	var errs []error
	for _, endpoint := range e.endpoints {
		resp, err := e.client.Post(strings.TrimSuffix(endpoint, "/")+"/v3/kv/range", "application/json", bytes.NewReader(body))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var reply struct {
			Kvs []struct {
				Value string `json:"value"`
			} `json:"kvs"`
		}
		err = json.NewDecoder(io.LimitReader(resp.Body, maxReply)).Decode(&reply)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			errs = append(errs, fmt.Errorf("%s: HTTP %d (%v)", endpoint, resp.StatusCode, err))
			continue
		}
		if len(reply.Kvs) == 0 {
			return nil, nil
		}
		return base64.StdEncoding.DecodeString(reply.Kvs[0].Value)
	}
	return nil, fmt.Errorf("no etcd endpoint answered: %w", errors.Join(errs...))
}

// waitFor waits until etcd has key, and returns its value (nil if it never came).
func (e *etcdClient) waitFor(key string) ([]byte, error) {
	deadline := time.Now().Add(e.timeout)
	for {
		value, err := e.get(key)
		if value != nil || time.Now().After(deadline) {
			return value, err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitGone waits until etcd has none of keys (vineyardd writes deletions asynchronously).
func (e *etcdClient) waitGone(keys ...string) error {
	deadline := time.Now().Add(e.timeout)
	for {
		var left []string
		for _, key := range keys {
			if value, err := e.get(key); err != nil || value != nil {
				left = append(left, key)
			}
		}
		if left == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("etcd still has %s %s after deletion", strings.Join(left, ", "), e.timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
