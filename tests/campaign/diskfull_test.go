package campaign

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ethkeygen/ethkeygen/internal/testenv"
	"github.com/ethkeygen/ethkeygen/tests/clitest"
)

// smallDisk mounts a tmpfs of size bytes at a new directory (root only)
// and returns it with a function that grows it.
func smallDisk(t *testing.T, size int) (string, func(int)) {
	t.Helper()
	dir := t.TempDir()
	mnt := filepath.Join(dir, "disk")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		if testenv.Required() {
			t.Fatalf("mounting a small tmpfs (the disk-full test needs root, as make test runs): %v", err)
		}
		t.Skipf("cannot mount a tmpfs here: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(mnt, syscall.MNT_DETACH) })
	return mnt, func(n int) {
		if err := syscall.Mount("tmpfs", mnt, "tmpfs", syscall.MS_REMOUNT, fmt.Sprintf("size=%d,mode=0700", n)); err != nil {
			t.Fatalf("growing the tmpfs: %v", err)
		}
	}
}

// TestDiskFullWhileMarking puts the embedded store, its ledger and the
// output directory on a tmpfs too small for the run, so a write fails at
// some point between storing a validator and writing its file; the runs
// fail cleanly, and once the disk has room the re-run completes with no
// validator handed out twice or lost.
func TestDiskFullWhileMarking(t *testing.T) {
	t.Parallel()
	for _, size := range []int{160 << 10, 256 << 10, 320 << 10} {
		t.Run(fmt.Sprint(size>>10, "KiB"), func(t *testing.T) {
			t.Parallel()
			mnt, grow := smallDisk(t, size)
			b := embedded(t)
			ba := []string{"--db", filepath.Join(mnt, "ethkeygen.db")}
			req := "full-" + clitest.RandomHex(t, 3)
			failed := 0
			for k := range 3 {
				r := run(t, b, "", genArgs(req, filepath.Join(mnt, fmt.Sprint("out", k)), 200, ba)...)
				switch {
				case r.code == 1:
					failed++
					if strings.Count(strings.TrimSpace(r.stderr), "\n") > 2 {
						t.Errorf("disk-full failure is not a short error: %s", r.stderr)
					}
				case r.code != 0:
					t.Fatalf("exit %d: %s", r.code, r.stderr)
				}
			}
			if failed == 0 {
				t.Fatalf("the disk of %d bytes never filled: the test proves nothing", size)
			}
			grow(64 << 20)
			mustRun(t, b, genArgs(req, filepath.Join(mnt, "final"), 200, ba)...)
			c := complete(t, b, ba, filepath.Join(mnt, "complete"), mnt)
			if len(c.byKey) != 200 {
				t.Fatalf("%d validators handed out, want 200", len(c.byKey))
			}
		})
	}
}
