package bench

import (
	"archive/zip"
	"compress/flate"
	"fmt"
	"io"
	"os"
)

// ZipSize returns the size of the Lambda deployment package for the binary
// at path: a zip holding it as "bootstrap", deflated at the best compression
// (gzip -9's level). That is what is uploaded and what Lambda fetches on a
// cold start.
func ZipSize(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("zip size: %w", err)
	}
	defer f.Close()
	var n countingWriter
	zw := zip.NewWriter(&n)
	zw.RegisterCompressor(zip.Deflate, func(w io.Writer) (io.WriteCloser, error) {
		return flate.NewWriter(w, flate.BestCompression)
	})
	hdr := &zip.FileHeader{Name: "bootstrap", Method: zip.Deflate}
	hdr.SetMode(0o755)
	w, err := zw.CreateHeader(hdr)
	if err != nil {
		return 0, fmt.Errorf("zip %s: %w", path, err)
	}
	if _, err := io.Copy(w, f); err != nil {
		return 0, fmt.Errorf("zip %s: %w", path, err)
	}
	if err := zw.Close(); err != nil {
		return 0, fmt.Errorf("zip %s: %w", path, err)
	}
	return int64(n), nil
}

// countingWriter counts the bytes written to it and keeps none.
type countingWriter int64

func (c *countingWriter) Write(p []byte) (int, error) {
	*c += countingWriter(len(p))
	return len(p), nil
}
