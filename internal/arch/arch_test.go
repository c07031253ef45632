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
var row = regexp.MustCompile("^\\| `((?:internal|cmd|functions)/[a-z0-9-]+)` \\|([^|]*)\\|([^|]*)\\|$")

// noAWS marks, in a row's "owns" column, a package that must import no AWS
// SDK package: the model and the policy branch on nightshift's own types
// and verdicts, never on the SDK's.
const noAWS = "no AWS"

// entry is one row of the table.
type entry struct {
	allowed []string // module packages it may import
	noAWS   bool     // it may import no AWS SDK package
}

// table reads docs/architecture.md's rows, by package.
func table(t *testing.T) map[string]entry {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "docs", "architecture.md"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]entry{}
	for _, line := range strings.Split(string(b), "\n") {
		m := row.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			continue
		}
		e := entry{noAWS: strings.Contains(m[2], noAWS)}
		for _, name := range strings.Split(m[3], ",") {
			if name = strings.Trim(strings.TrimSpace(name), "`"); name != "" {
				e.allowed = append(e.allowed, "internal/"+name)
			}
		}
		out[m[1]] = e
	}
	if len(out) == 0 {
		t.Fatal("docs/architecture.md: no package rows found")
	}
	return out
}

// imports returns every package that dir's non-test files import, sorted.
// It fails the test if dir holds no non-test file.
func imports(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	read := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		parsed, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		read++
		for _, imp := range parsed.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if !slices.Contains(out, path) {
				out = append(out, path)
			}
		}
	}
	if read == 0 {
		t.Fatalf("%s has no non-test Go file", dir)
	}
	slices.Sort(out)
	return out
}

// moduleImports returns the module's packages among dir's imports,
// relative to the module.
func moduleImports(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	for _, path := range imports(t, filepath.Join(root, dir)) {
		if rel, ok := strings.CutPrefix(path, module); ok {
			out = append(out, rel)
		}
	}
	return out
}

// sdkImports returns the AWS SDK packages among dir's imports.
func sdkImports(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	for _, path := range imports(t, dir) {
		if strings.HasPrefix(path, "github.com/aws/") {
			out = append(out, path)
		}
	}
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
		e, ok := allowed[p]
		if !ok {
			t.Errorf("%s is not in docs/architecture.md's table", p)
			continue
		}
		for _, imp := range moduleImports(t, p) {
			if !slices.Contains(e.allowed, imp) {
				t.Errorf("%s imports %s; docs/architecture.md allows %v", p, imp, e.allowed)
			}
		}
		if e.noAWS {
			if sdk := sdkImports(t, filepath.Join(root, p)); len(sdk) > 0 {
				t.Errorf("%s imports %v; docs/architecture.md says it knows no AWS", p, sdk)
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
	if e := got["internal/scheduler"]; !slices.Contains(e.allowed, "internal/fleet") || slices.Contains(e.allowed, "internal/sim") || !e.noAWS {
		t.Errorf("table()[internal/scheduler] = %+v; want fleet allowed, sim not, and no AWS", e)
	}
	if e, ok := got["internal/job"]; !ok || len(e.allowed) != 0 || !e.noAWS {
		t.Errorf("table()[internal/job] = %+v, %v; want a leaf that knows no AWS", e, ok)
	}
	if e := got["internal/fleet"]; e.noAWS {
		t.Errorf("table()[internal/fleet] = %+v; fleet is an AWS adapter", e)
	}
}

// TestSDKImportsFound: the scan finds an SDK import in a non-test file and
// ignores test files, which may fake AWS errors.
func TestSDKImportsFound(t *testing.T) {
	got := sdkImports(t, "testdata/sdkimport")
	if want := []string{"github.com/aws/smithy-go"}; !slices.Equal(got, want) {
		t.Errorf("sdkImports(testdata/sdkimport) = %v; want %v", got, want)
	}
}
