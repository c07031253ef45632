package main

import (
	"strings"

	"github.com/spf13/cobra"
)

// completeJobs completes a job id from the live jobs (the live index: three
// Queries), for shells with nightshift's completion script loaded.
func (a *app) completeJobs(cmd *cobra.Command, args []string, prefix string) ([]string, cobra.ShellCompDirective) {
	c, err := a.use(cmd.Context())
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	jobs, err := liveJobs(cmd.Context(), c)
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	var out []string
	for _, j := range jobs {
		if strings.HasPrefix(j.ID, prefix) && !containsString(args, j.ID) {
			out = append(out, j.ID+"\t"+string(j.State))
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}
