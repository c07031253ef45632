package bench_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/nightshift-dev/nightshift/internal/bench"
)

func TestZipSize(t *testing.T) {
	dir := t.TempDir()
	zeros := filepath.Join(dir, "zeros")
	if err := os.WriteFile(zeros, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	// A MiB of zeros deflates to about a KiB; the zip adds its headers.
	if n, err := bench.ZipSize(zeros); err != nil || n <= 0 || n > 4<<10 {
		t.Errorf("ZipSize(1 MiB of zeros) = %d, %v; want between 1 and 4096 bytes", n, err)
	}
	if _, err := bench.ZipSize(filepath.Join(dir, "absent")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ZipSize(absent) = _, %v; want fs.ErrNotExist", err)
	}
}
