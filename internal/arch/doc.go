// Package arch holds the test that keeps the code's import graph to the
// table in docs/architecture.md.
package arch
