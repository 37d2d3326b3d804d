package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The selftest against the real vineyardd 0.24.2 (the one vineyard's wheel ships, as the
// contract tests use): etcd and two vineyardd instances in a network namespace of their own
// holding only loopback (vineyardd's RPC binds 0.0.0.0) and a PID namespace, so that nothing
// outlives the test. The test binary runs itself again inside `unshare`; where that cannot
// be done (not root, no unshare, no vineyardd or etcd) the test is skipped, saying why.

const insideNamespaces = "VINEYARD_SELFTEST_IN_NETNS"

func realVineyardd() (string, error) {
	if path := os.Getenv("VINEYARDD"); path != "" {
		return path, nil
	}
	matches, _ := filepath.Glob("../../.cache/venv/lib/python3*/site-packages/vineyard/bdist/vineyardd")
	if len(matches) == 0 {
		return "", fmt.Errorf("no vineyardd: set VINEYARDD or `make venv` (pip install vineyard==0.24.2)")
	}
	return filepath.Abs(matches[0])
}

func TestSelftestAgainstTheRealVineyardd(t *testing.T) {
	vineyardd, err := realVineyardd()
	if err != nil {
		t.Skip(err)
	}
	etcd, err := exec.LookPath("etcd")
	if err != nil {
		t.Skip("no etcd on PATH (Debian etcd-server)")
	}
	if os.Getenv(insideNamespaces) == "" {
		if os.Geteuid() != 0 {
			t.Skip("needs root for a network namespace (vineyardd's RPC binds 0.0.0.0)")
		}
		unshare, err := exec.LookPath("unshare")
		if err != nil {
			t.Skip("no unshare (util-linux)")
		}
		cmd := exec.Command(unshare, "--net", "--fork", "--pid", "--mount-proc", os.Args[0],
			"-test.run=^TestSelftestAgainstTheRealVineyardd$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), insideNamespaces+"=1", "VINEYARDD="+vineyardd)
		out, err := cmd.CombinedOutput()
		t.Logf("in its own namespaces:\n%s", out)
		if err != nil {
			t.Fatal(err)
		}
		return
	}
	if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("ip link set lo up: %v %s", err, out)
	}
	dir := t.TempDir()
	start(t, etcd, "--data-dir", filepath.Join(dir, "etcd"), "--listen-client-urls", "http://127.0.0.1:2379",
		"--advertise-client-urls", "http://127.0.0.1:2379", "--listen-peer-urls", "http://127.0.0.1:2380")
	waitFor(t, func() bool { c, err := net.Dial("tcp", "127.0.0.1:2379"); return err == nil && c.Close() == nil })
	// One after the other: two vineyardd registering at once in an empty etcd can crash.
	sockA, sockB := filepath.Join(dir, "a.sock"), filepath.Join(dir, "b.sock")
	for i, sock := range []string{sockA, sockB} {
		start(t, vineyardd, "--socket="+sock, "--size=64Mi", "--etcd_endpoint=http://127.0.0.1:2379",
			"--etcd_prefix=/vineyard", fmt.Sprintf("--rpc_socket_port=%d", 9600+i), "--logtostderr")
		waitFor(t, func() bool { c, err := Dial(sock, time.Second); return err == nil && c.Close() == nil })
	}
	run := func(node string, args ...string) (string, error) {
		t.Setenv("MY_NODE_NAME", node)
		var out bytes.Buffer
		err := runSelftest(args, &out)
		t.Logf("selftest %s: %v\n%s", strings.Join(args, " "), err, out.String())
		return out.String(), err
	}
	const size = "1048577" // not a multiple of 8: the pattern's tail is written too
	names := []string{"vineyard-helm-test/ns/rel/0", "vineyard-helm-test/ns/rel/1"}

	t.Run("put on two instances, get through the other one's RPC", func(t *testing.T) {
		for i, sock := range []string{sockA, sockB} {
			if _, err := run(fmt.Sprintf("node-%d", i), "put", "--socket", sock, "--name", names[i], "--size", size); err != nil {
				t.Fatal(err)
			}
		}
		// A rerun replaces the leftover of a run whose reader never came.
		out, err := run("node-1", "put", "--socket", sockB, "--name", names[1], "--size", size)
		if err != nil || !strings.Contains(out, "left under") {
			t.Fatalf("leftover not removed: %v\n%s", err, out)
		}
		out, err = run("", "get", "--rpc", "127.0.0.1:9601", "--name", names[0], "--name", names[1], "--size", size)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"held by instance 0, node node-0", "bytes read from instance 0 match",
			"held by instance 1, node node-1", "data path OK: 2 objects from 2 vineyardd instances (nodes node-0, node-1)"} {
			if !strings.Contains(out, want) {
				t.Errorf("%q not in the output", want)
			}
		}
		// Deleted: a second reader finds nothing and fails.
		if _, err := run("", "get", "--rpc", "127.0.0.1:9600", "--name", names[0], "--size", size); err == nil ||
			!strings.Contains(err.Error(), "failed to find name") {
			t.Errorf("a deleted object was found again: %v", err)
		}
	})

	t.Run("get from etcd, delete through the socket", func(t *testing.T) {
		if _, err := run("node-0", "put", "--socket", sockA, "--name", names[0], "--size", "4096"); err != nil {
			t.Fatal(err)
		}
		out, err := run("", "get", "--etcd", "http://127.0.0.1:1,http://127.0.0.1:2379", "--etcd-prefix", "/vineyard",
			"--socket", sockB, "--name", names[0], "--size", "4096")
		if err != nil || !strings.Contains(out, "metadata read from etcd; deleted through instance 1, gone from etcd") {
			t.Fatalf("%v\n%s", err, out)
		}
	})

	t.Run("a size other than the writer's fails, and the reader still deletes", func(t *testing.T) {
		if _, err := run("node-0", "put", "--socket", sockA, "--name", names[0], "--size", "4096"); err != nil {
			t.Fatal(err)
		}
		_, err := run("", "get", "--rpc", "127.0.0.1:9600", "--name", names[0], "--size", "4097")
		if err == nil || !strings.Contains(err.Error(), "nbytes 4096, not 4097") {
			t.Fatalf("wrong size not caught: %v", err)
		}
		conn, err := Dial(sockA, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.GetName(names[0], time.Second); !IsNotExists(err) {
			t.Errorf("the name is still there after a failed check: %v", err)
		}
	})

	t.Run("read back over the socket", func(t *testing.T) {
		out, err := run("node-0", "put", "--socket", sockA, "--name", "local", "--size", size, "--read-back")
		if err != nil || !strings.Contains(out, "metadata and bytes match; deleted") {
			t.Fatalf("%v\n%s", err, out)
		}
	})

	// Nothing is left: no memory in use, no object, no name.
	for _, sock := range []string{sockA, sockB} {
		conn, err := Dial(sock, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		status, err := conn.Status(time.Second)
		objects, lerr := conn.Objects(conn.InstanceID, 100, time.Second)
		conn.Close()
		if err != nil || lerr != nil || status.MemoryUsage != 0 || objects.Count != 0 {
			t.Errorf("%s after the tests: %+v %+v %v %v", sock, status, objects, err, lerr)
		}
	}
}

func start(t *testing.T, argv ...string) {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("%s:\n%s", filepath.Base(argv[0]), log.String())
		}
	})
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("not ready within 20 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestSelftestFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "usage"},
		{[]string{"put", "--name=a", "--size=1"}, "--socket is required"},
		{[]string{"put", "--socket=s", "--size=1"}, "--name is required"},
		{[]string{"put", "--socket=s", "--name=a", "--name=b", "--size=1"}, "one --name"},
		{[]string{"put", "--socket=s", "--name=a"}, "--size must be positive"},
		{[]string{"get", "--name=a", "--size=1"}, "exactly one of --rpc and --etcd"},
		{[]string{"get", "--rpc=h:1", "--etcd=http://e", "--name=a", "--size=1"}, "exactly one"},
		{[]string{"get", "--etcd=http://e", "--name=a", "--size=1"}, "--etcd needs --socket"},
	} {
		if _, _, err := parseSelftest(tc.args); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}
	verb, o, err := parseSelftest([]string{"get", "--rpc=h:1", "--name=a", "--name=b", "--size=8"})
	if err != nil || verb != "get" || len(o.names) != 2 || o.size != 8 || o.etcdPrefix != "/vineyard" {
		t.Errorf("%s %+v %v", verb, o, err)
	}
}

func TestPatternIsTheNamesAndFillsEveryByte(t *testing.T) {
	a, b := pattern("x", 1001), pattern("y", 1001)
	if !bytes.Equal(a, pattern("x", 1001)) || bytes.Equal(a, b) || len(a) != 1001 {
		t.Error("the pattern is not a function of the name")
	}
	if bytes.Count(a[992:], []byte{0}) == 8 {
		t.Error("the last bytes are not written")
	}
}

func TestCheckMetaReadsEtcdsForm(t *testing.T) {
	sum := sha256Hex(pattern("n", 16))
	etcd := map[string]any{"typename": "v" + probeType, "nbytes": 16.0, "instance_id": 3.0,
		"buffer_": "loe88b7f6ecbc00000.vineyard::Blob@3", "sha256_": "v" + sum, "node_": "vnode-a"}
	p, err := checkMeta("n", 7, etcd, 16, true)
	if err != nil || p.instance != 3 || p.node != "node-a" || p.blob != 0xe88b7f6ecbc00000 {
		t.Errorf("%+v %v", p, err)
	}
	etcd["typename"] = "vvineyard::Tensor<uint8>"
	etcd["sha256_"] = "vffff"
	if _, err := checkMeta("n", 7, etcd, 16, true); err == nil ||
		!strings.Contains(err.Error(), `type "vineyard::Tensor<uint8>"`) || !strings.Contains(err.Error(), "sha256_") {
		t.Errorf("bad metadata accepted or not explained: %v", err)
	}
}
