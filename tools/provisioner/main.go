// Command local-path-provisioner gives localcluster (localcluster/) a default StorageClass
// whose claims get bound: it answers claims of the class that names `localcluster.io/local-path`
// with a `local` PersistentVolume backed by a fresh directory under --root.
//
// Every node of a localcluster is this machine: kwok's fake nodes never mount anything, and the
// one real node's kubelet runs here too, so a directory on this host is valid storage for any
// node. The PV is still pinned to the node the scheduler chose (the class must use
// WaitForFirstConsumer), as a real local volume would be, so placement behaves as in a cluster.
//
// It runs outside the cluster, with a kubeconfig, and listens only where --http-address says
// (loopback only: /healthz and /metrics), never on other addresses.
//
//	local-path-provisioner --kubeconfig FILE --root DIR [--http-address 127.0.0.1:PORT]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	"sigs.k8s.io/sig-storage-lib-external-provisioner/v13/controller"
	"sigs.k8s.io/sig-storage-lib-external-provisioner/v13/controller/metrics"
)

// Name is the provisioner a StorageClass names to be served by this program.
const Name = "localcluster.io/local-path"

// dirMode lets any pod user write: the chart's pods run as uid 65532, and a `local` volume is
// only chowned to the pod's fsGroup when it sets one.
const dirMode = 0o777

type localPath struct {
	root string // absolute and clean, so volumeDir can compare paths textually
}

// volumeDir returns path if it is a direct child of root, the only paths Provision makes: a
// PV edited (or hand-made with our provisioned-by annotation) to point anywhere else must never
// make Delete remove it.
func volumeDir(root, path string) (string, error) {
	clean := filepath.Clean(path)
	if !filepath.IsAbs(path) || filepath.Dir(clean) != root || clean == root {
		return "", fmt.Errorf("path %q is not a directory directly under the root %q", path, root)
	}
	return clean, nil
}

func (p *localPath) Provision(_ context.Context, opts controller.ProvisionOptions) (*v1.PersistentVolume, controller.ProvisioningState, error) {
	// Without a selected node the PV would have no node to be pinned to: only late binding
	// tells us where the pod will run.
	if opts.SelectedNodeName == "" {
		return nil, controller.ProvisioningFinished, fmt.Errorf(
			"claim %s/%s has no selected node: StorageClass %q must use volumeBindingMode WaitForFirstConsumer",
			opts.PVC.Namespace, opts.PVC.Name, opts.StorageClass.Name)
	}
	dir := filepath.Join(p.root, opts.PVName)
	// Provision may be retried with the same PV name (e.g. after a failed PV create): an
	// existing directory is ours from that earlier attempt.
	if err := os.Mkdir(dir, dirMode); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, controller.ProvisioningFinished, err
	}
	if err := os.Chmod(dir, dirMode); err != nil { // Mkdir's mode is masked by the umask
		return nil, controller.ProvisioningFinished, err
	}
	reclaim := v1.PersistentVolumeReclaimDelete
	if opts.StorageClass.ReclaimPolicy != nil {
		reclaim = *opts.StorageClass.ReclaimPolicy
	}
	filesystem := v1.PersistentVolumeFilesystem
	pv := &v1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: opts.PVName},
		Spec: v1.PersistentVolumeSpec{
			PersistentVolumeReclaimPolicy: reclaim,
			AccessModes:                   opts.PVC.Spec.AccessModes,
			VolumeMode:                    &filesystem,
			// Nothing enforces the size on a plain directory; the PV reports what was asked.
			Capacity: v1.ResourceList{v1.ResourceStorage: opts.PVC.Spec.Resources.Requests[v1.ResourceStorage]},
			PersistentVolumeSource: v1.PersistentVolumeSource{
				Local: &v1.LocalVolumeSource{Path: dir},
			},
			NodeAffinity: &v1.VolumeNodeAffinity{Required: &v1.NodeSelector{
				NodeSelectorTerms: []v1.NodeSelectorTerm{{MatchExpressions: []v1.NodeSelectorRequirement{{
					Key: v1.LabelHostname, Operator: v1.NodeSelectorOpIn,
					Values: []string{opts.SelectedNodeName},
				}}}},
			}},
		},
	}
	klog.InfoS("provisioned", "pv", opts.PVName, "claim", klog.KObj(opts.PVC), "node", opts.SelectedNodeName)
	return pv, controller.ProvisioningFinished, nil
}

func (p *localPath) Delete(_ context.Context, pv *v1.PersistentVolume) error {
	if pv.Spec.Local == nil {
		return &controller.IgnoredError{Reason: "not a local volume"}
	}
	dir, err := volumeDir(p.root, pv.Spec.Local.Path)
	if err != nil {
		return err
	}
	// RemoveAll does not follow symlinks a pod may have left inside: it removes the links.
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	klog.InfoS("deleted", "pv", pv.Name, "path", dir)
	return nil
}

// loopbackOnly refuses listen addresses that are not on a loopback interface: everything
// localcluster runs stays on 127.0.0.1.
func loopbackOnly(address string) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("--http-address %q: only a loopback address is allowed", address)
	}
	return nil
}

func main() {
	klog.InitFlags(nil)
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the identity to run as (required)")
	root := flag.String("root", "", "host directory holding one directory per volume (required)")
	httpAddress := flag.String("http-address", "",
		"loopback host:port for /healthz and /metrics; empty: no listener")
	flag.Parse()
	if err := run(*kubeconfig, *root, *httpAddress); err != nil {
		klog.ErrorS(err, "local-path-provisioner")
		klog.FlushAndExit(klog.ExitFlushTimeout, 1)
	}
	klog.Flush()
}

func run(kubeconfig, root, httpAddress string) error {
	if kubeconfig == "" || root == "" {
		return errors.New("--kubeconfig and --root are required")
	}
	root, err := filepath.Abs(root)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	config, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	// Our own informers, so /healthz can say "synced": ready to answer claims, not just started.
	factory := informers.NewSharedInformerFactory(client, 15*time.Minute)
	claims := factory.Core().V1().PersistentVolumeClaims().Informer()
	volumes := factory.Core().V1().PersistentVolumes().Informer()
	classes := factory.Storage().V1().StorageClasses().Informer()
	m := metrics.New("controller")
	ctrl := controller.NewProvisionController(ctx, client, Name, &localPath{root: filepath.Clean(root)},
		// One process per cluster: a leader lease would only add a namespace to write to.
		controller.LeaderElection(false),
		controller.ClaimsInformer(claims), controller.VolumesInformer(volumes),
		controller.ClassesInformer(classes),
		// The library's own metrics server listens on 0.0.0.0: its port stays 0 (off) and
		// the metrics are served below, on the loopback address only.
		controller.MetricsInstance(m),
		// Tests wait for binding: retry a failed claim after seconds, not the default minutes.
		controller.RetryIntervalMax(10*time.Second))

	if httpAddress != "" {
		if err := serveHTTP(ctx, httpAddress, m, func() bool {
			return ctrl.HasRun() && claims.HasSynced() && volumes.HasSynced() && classes.HasSynced()
		}); err != nil {
			return err
		}
	}
	factory.Start(ctx.Done())
	klog.InfoS("starting", "provisioner", Name, "root", root)
	ctrl.Run(ctx) // returns when ctx is cancelled (SIGTERM)
	factory.Shutdown()
	return nil
}

func serveHTTP(ctx context.Context, address string, m metrics.Metrics, ready func() bool) error {
	if err := loopbackOnly(address); err != nil {
		return err
	}
	registry := prometheus.NewRegistry()
	registry.MustRegister(m.PersistentVolumeClaimProvisionTotal, m.PersistentVolumeClaimProvisionFailedTotal,
		m.PersistentVolumeClaimProvisionDurationSeconds, m.PersistentVolumeDeleteTotal,
		m.PersistentVolumeDeleteFailedTotal, m.PersistentVolumeDeleteDurationSeconds)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready() {
			http.Error(w, "informers not synced", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	listener, err := net.Listen("tcp", address) // bound before Run, so a taken port fails fast
	if err != nil {
		return err
	}
	server := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = server.Serve(listener) }()
	go func() { <-ctx.Done(); _ = server.Close() }()
	return nil
}
