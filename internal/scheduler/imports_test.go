package scheduler

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestNoSDKImports: the scheduler is policy. It branches on the verdicts of
// fleet, runner and store (fleet.ErrNoAnswer, fleet.Transient,
// runner.ErrNotReady, store.ErrConflict), never on AWS SDK types or error
// codes, so no non-test file of it imports a github.com/aws/... package.
func TestNoSDKImports(t *testing.T) {
	tests := []struct {
		name string
		give string // directory
		want []string
	}{
		{name: "scheduler", give: "."},
		// The check itself: it finds an SDK import and skips test files.
		{name: "fixture", give: "testdata/sdkimport", want: []string{"refuse.go imports github.com/aws/smithy-go"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, n, err := sdkImports(tt.give)
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				t.Fatalf("sdkImports(%s) read no non-test file", tt.give)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("sdkImports(%s) (-want +got):\n%s", tt.give, diff)
			}
		})
	}
}

// sdkImports lists the github.com/aws/... imports of dir's non-test Go
// files, and says how many files it read.
func sdkImports(dir string) ([]string, int, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, 0, err
	}
	var found []string
	n := 0
	fset := token.NewFileSet()
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			return nil, n, err
		}
		n++
		for _, imp := range f.Imports {
			path, err := strconv.Unquote(imp.Path.Value)
			if err != nil {
				return nil, n, err
			}
			if strings.HasPrefix(path, "github.com/aws/") {
				found = append(found, filepath.Base(name)+" imports "+path)
			}
		}
	}
	return found, n, nil
}
