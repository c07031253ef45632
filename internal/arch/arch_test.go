package arch

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/nightshift-dev/nightshift/"

// root is the repository, two levels up from this package.
const root = "../.."

// row matches a package row of the table: | `internal/x` | owns | `a`, `b` |
var row = regexp.MustCompile("^\\| `((?:internal|cmd|functions)/[a-z0-9-]+)` \\|[^|]*\\|([^|]*)\\|$")

// table reads docs/architecture.md: each package and the internal packages
// it may import, by short name.
func table(t *testing.T) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "docs", "architecture.md"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, line := range strings.Split(string(b), "\n") {
		m := row.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			continue
		}
		var allowed []string
		for _, name := range strings.Split(m[2], ",") {
			if name = strings.Trim(strings.TrimSpace(name), "`"); name != "" {
				allowed = append(allowed, "internal/"+name)
			}
		}
		out[m[1]] = allowed
	}
	if len(out) == 0 {
		t.Fatal("docs/architecture.md: no package rows found")
	}
	return out
}

// imports returns the module packages that dir's non-test files import.
func imports(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root, dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		parsed, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range parsed.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if rel, ok := strings.CutPrefix(path, module); ok && !slices.Contains(out, rel) {
				out = append(out, rel)
			}
		}
	}
	slices.Sort(out)
	return out
}

// packages lists the directories under internal/, cmd/ and functions/ that hold Go files.
func packages(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, top := range []string{"internal", "cmd", "functions"} {
		dirs, err := os.ReadDir(filepath.Join(root, top))
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range dirs {
			if !d.IsDir() {
				continue
			}
			if gos, _ := filepath.Glob(filepath.Join(root, top, d.Name(), "*.go")); len(gos) > 0 {
				out = append(out, top+"/"+d.Name())
			}
		}
	}
	return out
}

// TestImportsFollowTheTable: every package is in the table, imports only
// what its row allows, and every row is a package.
func TestImportsFollowTheTable(t *testing.T) {
	allowed := table(t)
	pkgs := packages(t)
	for _, p := range pkgs {
		may, ok := allowed[p]
		if !ok {
			t.Errorf("%s is not in docs/architecture.md's table", p)
			continue
		}
		for _, imp := range imports(t, p) {
			if !slices.Contains(may, imp) {
				t.Errorf("%s imports %s; docs/architecture.md allows %v", p, imp, may)
			}
		}
	}
	for p := range allowed {
		if !slices.Contains(pkgs, p) {
			t.Errorf("docs/architecture.md lists %s, which is not a package", p)
		}
	}
}

// TestTableIsRead: the parser sees the rows it must, so the test above
// cannot pass by reading nothing.
func TestTableIsRead(t *testing.T) {
	got := table(t)
	if may := got["internal/scheduler"]; !slices.Contains(may, "internal/fleet") || slices.Contains(may, "internal/sim") {
		t.Errorf("table()[internal/scheduler] = %v; want fleet allowed and sim not", may)
	}
	if may, ok := got["internal/job"]; !ok || len(may) != 0 {
		t.Errorf("table()[internal/job] = %v, %v; want a leaf", may, ok)
	}
}
