package main

import (
	"os"
	"path/filepath"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestVolumeDirAcceptsOnlyDirectChildrenOfRoot(t *testing.T) {
	root := "/state/volumes"
	for path, ok := range map[string]bool{
		"/state/volumes/pvc-1":           true,
		"/state/volumes/./pvc-1/":        true, // the same directory, spelt differently
		"/state/volumes":                 false,
		"/state/volumes/":                false,
		"/state/volumes/..":              false,
		"/state/volumes/../etc":          false,
		"/state/volumes/pvc-1/../../etc": false,
		"/state/volumes/pvc-1/nested":    false,
		"/state/volumes-other/pvc-1":     false,
		"/etc":                           false,
		"/":                              false,
		"state/volumes/pvc-1":            false, // relative: depends on the working directory
		"":                               false,
	} {
		if _, err := volumeDir(root, path); (err == nil) != ok {
			t.Errorf("volumeDir(%q, %q): err = %v, want accepted = %v", root, path, err, ok)
		}
	}
}

func TestDeleteRefusesAPathOutsideRoot(t *testing.T) {
	base := t.TempDir()
	root, outside := filepath.Join(base, "volumes"), filepath.Join(base, "precious")
	for _, dir := range []string{root, outside} {
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	p := &localPath{root: root}
	for _, path := range []string{outside, root, filepath.Join(root, "..", "precious")} {
		pv := &v1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "pvc-x"},
			Spec: v1.PersistentVolumeSpec{PersistentVolumeSource: v1.PersistentVolumeSource{
				Local: &v1.LocalVolumeSource{Path: path}}}}
		if err := p.Delete(t.Context(), pv); err == nil {
			t.Errorf("Delete of a PV at %q succeeded", path)
		}
	}
	for _, dir := range []string{root, outside} {
		if _, err := os.Stat(dir); err != nil {
			t.Errorf("%s is gone: %v", dir, err)
		}
	}
}

func TestLoopbackOnly(t *testing.T) {
	for address, ok := range map[string]bool{
		"127.0.0.1:9000": true, "[::1]:9000": true, "localhost:9000": true,
		"0.0.0.0:9000": false, ":9000": false, "10.0.0.1:9000": false, "[::]:9000": false,
	} {
		if err := loopbackOnly(address); (err == nil) != ok {
			t.Errorf("loopbackOnly(%q): err = %v, want accepted = %v", address, err, ok)
		}
	}
}
