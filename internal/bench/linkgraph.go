package bench

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// reflectMethodFlag marks, in the linker's -dumpdep output, a function that
// calls a method by name through reflection (reflect.Value.Method,
// MethodByName and the like). One such function reachable from main makes
// the linker keep every exported method of every reachable type, since any
// of them might be called.
const reflectMethodFlag = "<ReflectMethod>"

// LinkGraph is one binary's link graph, as the Go linker's -dumpdep flag
// prints it: a line "from -> to" the first time the linker reaches a
// symbol, "_" standing for the roots. Each symbol is thus reached once, so
// the graph is a tree and every symbol has one chain back to a root.
type LinkGraph struct {
	// Package is the import path go build named the binary by.
	Package   string
	parent    map[string]string
	flagged   []string // symbols marked ReflectMethod, in the order seen
	isFlagged map[string]bool
}

func (g *LinkGraph) flag(sym string, flagged bool) {
	if flagged && !g.isFlagged[sym] {
		g.isFlagged[sym] = true
		g.flagged = append(g.flagged, sym)
	}
}

// ParseDumpDep reads go build's output for one or more binaries linked with
// -ldflags=-dumpdep: each binary's edges follow a "# import/path" line. It
// returns the graphs in the order printed, and the lines that were neither
// (a compile error, say), for the caller to show.
func ParseDumpDep(r io.Reader) ([]*LinkGraph, []string, error) {
	var graphs []*LinkGraph
	var other []string
	var g *LinkGraph
	sc := bufio.NewScanner(r)
	// A symbol name is short, but a string symbol's holds the string.
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		if pkg, ok := strings.CutPrefix(line, "# "); ok {
			g = &LinkGraph{Package: pkg, parent: map[string]string{}, isFlagged: map[string]bool{}}
			graphs = append(graphs, g)
			continue
		}
		from, to, ok := strings.Cut(line, " -> ")
		if !ok || g == nil {
			other = append(other, line)
			continue
		}
		parent, parentFlagged := symbol(from)
		name, flagged := symbol(to)
		if _, seen := g.parent[name]; !seen {
			g.parent[name] = parent
		}
		// The linker prints the flags wherever a symbol appears: take
		// them from both ends.
		g.flag(name, flagged)
		g.flag(parent, parentFlagged)
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("read link graph: %w", err)
	}
	return graphs, other, nil
}

// symbol strips the flags the linker appends to a name ("<UsedInIface>",
// "<ReflectMethod>") and reports whether ReflectMethod was one.
func symbol(s string) (name string, reflectMethod bool) {
	for strings.HasSuffix(s, ">") {
		i := strings.LastIndex(s, " <")
		if i < 0 {
			break
		}
		reflectMethod = reflectMethod || s[i+1:] == reflectMethodFlag
		s = s[:i]
	}
	return s, reflectMethod
}

// Reached reports whether the linker kept sym.
func (g *LinkGraph) Reached(sym string) bool {
	_, ok := g.parent[sym]
	return ok
}

// Len is the number of symbols reached.
func (g *LinkGraph) Len() int { return len(g.parent) }

// Chain is how the linker came to reach sym: the symbols from a root to sym.
func (g *LinkGraph) Chain(sym string) []string {
	var chain []string
	for s := sym; s != "" && s != "_"; s = g.parent[s] {
		if len(chain) > len(g.parent) {
			break // not a tree after all: do not loop for ever
		}
		chain = append(chain, s)
	}
	for i, j := 0, len(chain)-1; i < j; i, j = i+1, j-1 {
		chain[i], chain[j] = chain[j], chain[i]
	}
	return chain
}

// ReflectMethods returns the chain to each symbol marked ReflectMethod.
func (g *LinkGraph) ReflectMethods() [][]string {
	var chains [][]string
	for _, s := range g.flagged {
		chains = append(chains, g.Chain(s))
	}
	return chains
}
