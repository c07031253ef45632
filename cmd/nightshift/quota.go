package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/nightshift-dev/nightshift/internal/awserr"
	"github.com/nightshift-dev/nightshift/internal/catalog"
	"github.com/nightshift-dev/nightshift/internal/config"
	"github.com/nightshift-dev/nightshift/internal/quota"
	"github.com/nightshift-dev/nightshift/internal/scheduler"
)

func (a *app) quotaCmd() *cobra.Command {
	var (
		request float64
		family  string
		spot    bool
	)
	c := &cobra.Command{
		Use:   "quota",
		Short: "The GPU vCPU quotas the pools launch under, and asking for more",
		Long: `Show, for each EC2 vCPU quota the stack's pools launch under (G and VT, P;
on-demand, and spot where a pool's market uses spot): its applied value, the
vCPUs in use under it (nightshift's instances and the account's others),
the largest instance type the pools use and how many more of it fit, the
latest increase request (open or decided) and where to see it.

--request N asks Service Quotas to raise a quota to N vCPUs: the default
pool's first type's on-demand quota, or the one --family and --spot name.
Nothing is sent when N is not above the applied value or a request is open
already. GPU requests go to AWS Support and can take days.`,
		Example: `  nightshift quota
  nightshift quota --request 64
  nightshift quota --family p --spot --request 192`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if family != "" && family != "g" && family != "p" {
				return usagef("--family %q: want g (G and VT) or p", family)
			}
			asking := cmd.Flags().Changed("request")
			if asking && (request <= 0 || request != math.Trunc(request)) {
				return usagef("--request %v: want a whole number of vCPUs above 0", request)
			}
			c, err := a.use(cmd.Context())
			if err != nil {
				return err
			}
			c.loadSettings(cmd.Context())
			q := quota.New(c.quotas, c.ec2, quota.Config{}, a.now)
			if asking {
				return a.requestQuota(cmd.Context(), c, q, family, spot, request)
			}
			rows, err := quotaRows(cmd.Context(), c, q, a.stderr)
			if err != nil {
				return err
			}
			if family != "" || cmd.Flags().Changed("spot") {
				rows = slices.DeleteFunc(rows, func(r quotaRow) bool {
					return family != "" && r.Family != family || cmd.Flags().Changed("spot") && r.Spot != spot
				})
			}
			if a.json {
				if rows == nil {
					rows = []quotaRow{}
				}
				return printJSON(a.stdout, rows)
			}
			a.printQuotas(rows)
			return nil
		},
	}
	c.Flags().Float64Var(&request, "request", 0, "ask for the quota to be raised to N vCPUs")
	c.Flags().StringVar(&family, "family", "", "the quota's family: g (G and VT) or p (default: the default pool's first type's)")
	c.Flags().BoolVar(&spot, "spot", false, "the spot quota rather than the on-demand one")
	return c
}

// quotaRow is one quota as quota prints it.
type quotaRow struct {
	Code    string    `json:"code"`
	Name    string    `json:"name"`
	Family  string    `json:"family"` // g or p
	Spot    bool      `json:"spot"`
	Pools   []string  `json:"pools"`
	Applied float64   `json:"applied_vcpus"`
	InUse   quota.Use `json:"in_use_vcpus"`
	// Largest is the largest instance type the pools use under the quota,
	// and Fit how many more of it the quota has room for now.
	Largest      string        `json:"largest_type"`
	LargestVCPUs int           `json:"largest_type_vcpus"`
	Fit          int           `json:"fit"`
	Request      *quotaRequest `json:"request,omitempty"`
	ConsoleURL   string        `json:"console_url"`
	quota        catalog.Quota
	types        map[string]int
}

// quotaRequest is an increase request as quota prints it.
type quotaRequest struct {
	ID      string    `json:"id"`
	Status  string    `json:"status"`
	Desired float64   `json:"desired_vcpus"`
	CaseID  string    `json:"case_id,omitempty"`
	CaseURL string    `json:"case_url,omitempty"`
	Created time.Time `json:"created"`
	Open    bool      `json:"open"`
}

func requestOf(r quota.Request) *quotaRequest {
	out := &quotaRequest{ID: r.ID, Status: r.Status, Desired: r.Desired, CaseID: r.CaseID, Created: r.Created, Open: r.Open()}
	if r.CaseID != "" {
		out.CaseURL = quota.CaseURL(r.CaseID)
	}
	return out
}

// poolQuotas returns the quotas the pools launch under, with each quota's
// pools and types: on demand for on-demand pools, spot for spot ones, both
// for spot-then-on-demand. Without the settings, every GPU quota.
func poolQuotas(pools map[string]scheduler.Pool) []*quotaRow {
	byCode := map[string]*quotaRow{}
	add := func(q catalog.Quota, pool, typ string) {
		r := byCode[q.Code]
		if r == nil {
			fam := "g"
			if q == catalog.QuotaP || q == catalog.QuotaPSpot {
				fam = "p"
			}
			r = &quotaRow{Code: q.Code, Name: q.Name, Family: fam, Spot: q.Spot(), quota: q, types: map[string]int{}}
			byCode[q.Code] = r
		}
		if pool != "" && !slices.Contains(r.Pools, pool) {
			r.Pools = append(r.Pools, pool)
		}
		if t, ok := catalog.Lookup(typ); ok {
			r.types[typ] = t.VCPUs
		}
	}
	if pools == nil {
		for _, q := range catalog.Quotas {
			add(q, "", "")
		}
	}
	for _, name := range slices.Sorted(maps.Keys(pools)) {
		p := pools[name]
		for _, typ := range p.Types {
			for _, spot := range catalog.Markets(p.Market) {
				add(catalog.QuotaFor(typ, spot), name, typ)
			}
		}
	}
	var out []*quotaRow
	for _, q := range catalog.Quotas {
		if r := byCode[q.Code]; r != nil {
			out = append(out, r)
		}
	}
	return out
}

// quotaRows reads each quota the pools launch under: one GetServiceQuota
// and one ListRequestedServiceQuotaChangeHistoryByQuota (a page per 100
// requests) each, and one DescribeInstances (a page per 1000 GPU
// instances) for the vCPUs in use.
func quotaRows(ctx context.Context, c *cloud, q *quota.Quotas, stderr io.Writer) ([]quotaRow, error) {
	var pools map[string]scheduler.Pool
	if c.settingsErr != nil {
		fmt.Fprintf(stderr, "nightshift: the deployment's pools are unknown (%v): showing every GPU quota\n", c.settingsErr)
	} else {
		pools = c.settings.Pools
	}
	use, err := q.UsageByOwner(ctx)
	if err != nil {
		return nil, err
	}
	var rows []quotaRow
	for _, r := range poolQuotas(pools) {
		v, err := q.Applied(ctx, r.Code)
		if err != nil {
			return nil, quotaError(err)
		}
		hist, err := q.History(ctx, r.Code)
		if err != nil {
			return nil, quotaError(err)
		}
		r.Applied, r.InUse, r.ConsoleURL = v, use[r.Code], r.quota.URL(c.stack.Region)
		if open, ok := quota.Open(hist); ok {
			r.Request = requestOf(open)
		} else if len(hist) > 0 {
			r.Request = requestOf(hist[0])
		}
		for typ, n := range r.types {
			if n > r.LargestVCPUs || n == r.LargestVCPUs && typ < r.Largest {
				r.Largest, r.LargestVCPUs = typ, n
			}
		}
		if r.LargestVCPUs > 0 {
			r.Fit = max(0, (int(v)-r.InUse.Total())/r.LargestVCPUs)
		}
		if r.Pools == nil {
			r.Pools = []string{}
		}
		rows = append(rows, *r)
	}
	return rows, nil
}

// quotaError says what to do about a refusal of the user's calls.
func quotaError(err error) error {
	if awserr.ServiceQuotasDenied.Has(err) && awserr.Code(err) == "NoSuchResourceException" {
		return fmt.Errorf("%w (Service Quotas does not know this quota here: is the region right?)", err)
	}
	if errors.Is(err, quota.ErrDenied) {
		return fmt.Errorf("%w (does your policy include the stack's UserPolicyArn, with its Service Quotas statements?)", err)
	}
	return err
}

func vcpuText(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

func (a *app) printQuotas(rows []quotaRow) {
	now := a.now()
	for k, r := range rows {
		if k > 0 {
			fmt.Fprintln(a.stdout)
		}
		pools := "no pool"
		if len(r.Pools) > 0 {
			pools = "pool " + strings.Join(r.Pools, ", ")
			if len(r.Pools) > 1 {
				pools = "pools " + strings.Join(r.Pools, ", ")
			}
		}
		fmt.Fprintf(a.stdout, "%s  %s (%s)\n", r.Code, r.Name, pools)
		fmt.Fprintf(a.stdout, "  applied   %s vCPUs\n", vcpuText(r.Applied))
		fmt.Fprintf(a.stdout, "  in use    %d vCPUs: %d nightshift's, %d others'\n", r.InUse.Total(), r.InUse.Nightshift, r.InUse.Others)
		if r.Largest != "" {
			fmt.Fprintf(a.stdout, "  largest   %s (%d vCPUs): %d more fit\n", r.Largest, r.LargestVCPUs, r.Fit)
		}
		if rq := r.Request; rq != nil {
			fmt.Fprintf(a.stdout, "  request   %s for %s vCPUs, %s ago (%s), id %s\n", rq.Status, vcpuText(rq.Desired), short(now.Sub(rq.Created)), stamp(rq.Created), rq.ID)
			if rq.CaseURL != "" {
				fmt.Fprintf(a.stdout, "  case      %s\n", rq.CaseURL)
			}
		}
		fmt.Fprintf(a.stdout, "  console   %s\n", r.ConsoleURL)
	}
}

// requestQuota files an increase request for the chosen quota, unless
// Service Quotas would refuse it: not above the applied value, or one open
// already.
func (a *app) requestQuota(ctx context.Context, c *cloud, q *quota.Quotas, family string, spot bool, desired float64) error {
	target, err := chosenQuota(c, family, spot)
	if err != nil {
		return err
	}
	applied, err := q.Applied(ctx, target.Code)
	if err != nil {
		return quotaError(err)
	}
	if desired <= applied {
		return fmt.Errorf("%s (%s) is %s vCPUs already: ask for more than that; nothing sent", target.Code, target.Name, vcpuText(applied))
	}
	hist, err := q.History(ctx, target.Code)
	if err != nil {
		return quotaError(err)
	}
	if open, ok := quota.Open(hist); ok {
		return fmt.Errorf("%s (%s) has an open request already: %s", target.Code, target.Name, describeRequest(a.now(), open))
	}
	r, err := q.Request(ctx, target.Code, desired)
	if errors.Is(err, quota.ErrOpen) {
		return fmt.Errorf("%s (%s) has an open request already (nightshift quota shows it); nothing sent", target.Code, target.Name)
	}
	if err != nil {
		return quotaError(err)
	}
	if a.json {
		return printJSON(a.stdout, requestOf(r))
	}
	fmt.Fprintf(a.stdout, "requested %s vCPUs of %s (%s), now %s: %s, id %s\n", vcpuText(desired), target.Code, target.Name, vcpuText(applied), r.Status, r.ID)
	fmt.Fprintf(a.stdout, "  follow   nightshift quota\n")
	fmt.Fprintf(a.stdout, "  console  %s\n", target.URL(c.stack.Region))
	return nil
}

func describeRequest(now time.Time, r quota.Request) string {
	s := fmt.Sprintf("%s for %s vCPUs, id %s, created %s ago", r.Status, vcpuText(r.Desired), r.ID, short(now.Sub(r.Created)))
	if r.CaseID != "" {
		s += ", case " + quota.CaseURL(r.CaseID)
	}
	return s
}

// chosenQuota is the quota --request asks for: --family's and --spot's, or
// the default pool's first type's.
func chosenQuota(c *cloud, family string, spot bool) (catalog.Quota, error) {
	switch family {
	case "g":
		return catalog.QuotaFor("g", spot), nil
	case "p":
		return catalog.QuotaFor("p", spot), nil
	}
	if c.settingsErr != nil {
		return catalog.Quota{}, fmt.Errorf("the deployment's pools are unknown (%v): name the quota with --family g|p (and --spot)", c.settingsErr)
	}
	p, ok := c.settings.Pools[config.DefaultPool]
	if !ok || len(p.Types) == 0 {
		return catalog.Quota{}, errors.New("the deployment has no default pool: name the quota with --family g|p (and --spot)")
	}
	return catalog.QuotaFor(p.Types[0], spot), nil
}
