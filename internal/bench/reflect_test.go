package bench_test

import (
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nightshift-dev/nightshift/internal/bench"
)

// functions are the Lambda functions: every main package under functions/.
const functions = "github.com/nightshift-dev/nightshift/functions/..."

// TestNoReflectMethod links each Lambda function as the Makefile's build
// does (LAMBDA_ENV, LAMBDA_FLAGS; keep them in step), with the linker's
// dependency dump, and fails if anything reachable calls a method by name
// through reflection (text/template's field and method lookup does):
// that makes the linker keep every exported method of every reachable type,
// and the binary grows several times over.
func TestNoReflectMethod(t *testing.T) {
	if testing.Short() {
		t.Skip("links every function")
	}
	list, err := exec.Command("go", "list", functions).Output()
	if err != nil {
		t.Fatalf("go list %s: %v", functions, err)
	}
	pkgs := strings.Fields(string(list))
	if len(pkgs) == 0 {
		t.Fatalf("go list %s: no functions", functions)
	}
	args := append([]string{"build", "-tags", "lambda.norpc", "-trimpath", "-ldflags", "-s -w -dumpdep", "-o", t.TempDir() + string(os.PathSeparator)}, pkgs...)
	cmd := exec.Command("go", args...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm64")
	out, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	graphs, other, perr := bench.ParseDumpDep(out)
	_, _ = io.Copy(io.Discard, out)
	if err := cmd.Wait(); err != nil || perr != nil {
		t.Fatalf("go %s: %v, %v\n%s", strings.Join(args, " "), err, perr, strings.Join(other[max(0, len(other)-40):], "\n"))
	}

	linked := map[string]bool{}
	for _, g := range graphs {
		linked[g.Package] = true
		// An empty dump would pass vacuously: the graph must be a program's.
		if !g.Reached("main.main") || g.Len() < 1000 {
			t.Errorf("link graph of %s: %d symbols, main.main reached %v; want a whole program", g.Package, g.Len(), g.Reached("main.main"))
		}
		chains := g.ReflectMethods()
		if len(chains) == 0 {
			continue
		}
		// The first one reached is the cause; the others are usually
		// methods kept only because of it (reflect.Value.Method itself).
		var also []string
		for _, c := range chains[1:] {
			also = append(also, c[len(c)-1])
		}
		t.Errorf("%s calls methods by name through reflection (%d functions), which keeps every exported method in the binary; the first reached:\n\t%s\nthen: %s",
			g.Package, len(chains), strings.Join(chains[0], "\n\t→ "), strings.Join(also, ", "))
	}
	for _, p := range pkgs {
		if !linked[p] {
			t.Errorf("no link graph for %s in go build's output", p)
		}
	}
}

// TestParseDumpDep reads the linker's format: a tree of first reaches per
// binary, flags after the names, on either end of an edge.
func TestParseDumpDep(t *testing.T) {
	dump := `# example.com/a
_ -> _rt0_arm64_linux
_ -> runtime.main_main·f
runtime.main_main·f -> main.main
main.main -> text/template.(*Template).Execute <UsedInIface>
text/template.(*Template).Execute <UsedInIface> -> text/template.(*state).evalField <ReflectMethod>
text/template.(*state).evalField <ReflectMethod> -> reflect.Value.MethodByName
text/template.(*state).evalField <ReflectMethod> -> go:string."a -> b <x>"
main.main -> fmt.Println
# example.com/b
_ -> runtime.main_main·f
runtime.main_main·f -> main.main
main.main -> fmt.Println
# example.com/c
./main.go:3:2: undefined: x
`
	graphs, other, err := bench.ParseDumpDep(strings.NewReader(dump))
	if err != nil {
		t.Fatalf("ParseDumpDep = %v", err)
	}
	tests := []struct {
		give string // package
		want [][]string
		len  int
	}{
		{give: "example.com/a", want: [][]string{{"runtime.main_main·f", "main.main", "text/template.(*Template).Execute", "text/template.(*state).evalField"}}, len: 8},
		{give: "example.com/b", want: nil, len: 3},
		{give: "example.com/c", want: nil, len: 0},
	}
	if len(graphs) != len(tests) {
		t.Fatalf("ParseDumpDep = %d graphs; want %d", len(graphs), len(tests))
	}
	for i, tt := range tests {
		g := graphs[i]
		if g.Package != tt.give || g.Len() != tt.len {
			t.Errorf("graph %d = %s with %d symbols; want %s with %d", i, g.Package, g.Len(), tt.give, tt.len)
		}
		if diff := cmp.Diff(tt.want, g.ReflectMethods()); diff != "" {
			t.Errorf("%s ReflectMethods() (-want +got):\n%s", tt.give, diff)
		}
	}
	if !graphs[0].Reached(`go:string."a -> b <x>"`) || graphs[1].Reached("text/template.(*state).evalField") {
		t.Errorf("Reached: a string symbol with an arrow in it, or a symbol of another binary, read wrongly")
	}
	if want := []string{"./main.go:3:2: undefined: x"}; !cmp.Equal(want, other) {
		t.Errorf("ParseDumpDep other lines = %q; want %q", other, want)
	}
}
