package sim_test

import (
	"testing"

	"github.com/nightshift-dev/nightshift/internal/awssim"
	"github.com/nightshift-dev/nightshift/internal/catalog"
)

// TestCatalogAgreesWithTheCloud: every instance type the product claims to
// run is one the simulated region offers, with the same size, price and
// quota. The simulated cloud keeps its own copy of these AWS facts, so a
// wrong entry on either side shows up here.
func TestCatalogAgreesWithTheCloud(t *testing.T) {
	all := catalog.All()
	if len(all) == 0 {
		t.Fatal("catalog.All() is empty")
	}
	for _, c := range all {
		a, ok := awssim.LookupType(c.Name)
		if !ok {
			t.Errorf("%s: in the catalog, not offered by the simulated region", c.Name)
			continue
		}
		if a.VCPUs != c.VCPUs || a.GPUs != c.GPUs || a.Hourly != c.Hourly {
			t.Errorf("%s: catalog %d vCPUs, %d GPUs, $%v/h; the cloud says %d, %d, $%v/h", c.Name, c.VCPUs, c.GPUs, c.Hourly, a.VCPUs, a.GPUs, a.Hourly)
		}
		for _, spot := range []bool{false, true} {
			if got, want := catalog.QuotaFor(c.Name, spot).Code, awssim.QuotaFor(c.Name, spot); got != want {
				t.Errorf("%s (spot %v): catalog quota %s; the cloud counts it against %s", c.Name, spot, got, want)
			}
		}
	}
}
