// Command nightshift is nightshift's command line: submit jobs to a
// deployed stack, list and follow them, read their output, cancel and
// re-run them, see the instances and what they cost — and run the whole
// pipeline locally on the simulated cloud.
//
// It talks to AWS with the user's own credentials, as the AWS CLI does,
// and finds the stack's queue, table and log group from its CloudFormation
// outputs. Everything it shows is in the AWS console too.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"
)

func main() {
	os.Exit(Main(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv, isTerminal(os.Stdout)))
}

func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

// Exit statuses, as Go command lines have them.
const (
	exitOK     = 0
	exitFailed = 1 // the command failed, or the job it waited for did
	exitUsage  = 2 // the command line is wrong: nothing was done
)

// DefaultStack is the stack name when neither --stack nor
// NIGHTSHIFT_STACK gives one: the README's sam deploy names it so.
const DefaultStack = "nightshift"

// Main runs the command line and returns its exit status.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string, tty bool) int {
	a := &app{
		stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv, now: time.Now, tty: tty,
		sleep: func(ctx context.Context, d time.Duration) error {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-t.C:
				return nil
			}
		},
	}
	a.connect = a.connectAWS
	a.lookPath, a.pluginVersion, a.runPlugin, a.portFree = exec.LookPath, pluginVersionOS, runPluginOS, portFreeOS
	return a.main(ctx, args)
}

func (a *app) main(ctx context.Context, args []string) int {
	// NO_COLOR (no-color.org): set to anything, no colour. A dumb terminal
	// gets none either, nor does anything that is not a terminal.
	a.color = a.tty && a.getenv("NO_COLOR") == "" && a.getenv("TERM") != "dumb"
	root := a.root()
	root.SetArgs(args)
	root.SetIn(a.stdin)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			fmt.Fprintln(a.stderr, "nightshift:", ee.msg)
		}
		return ee.code
	}
	fmt.Fprintln(a.stderr, "nightshift:", err)
	var ue *usageError
	if errors.As(err, &ue) || isCobraUsage(err) {
		fmt.Fprintln(a.stderr, "Run 'nightshift --help' for usage.")
		return exitUsage
	}
	return exitFailed
}

// isCobraUsage reports whether err is cobra's own complaint about the
// command line (an unknown command or flag, a wrong argument count).
func isCobraUsage(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "flag needs an argument", "invalid argument", "accepts ", "requires at least", "requires at most", "if any flags in the group"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}

func (a *app) root() *cobra.Command {
	root := &cobra.Command{
		Use:   "nightshift",
		Short: "Run GPU training jobs on EC2, and stop paying when they end",
		Long: `nightshift runs training jobs on GPU EC2 instances: it launches or starts
an instance, runs the job through SSM Run Command, records every step,
and stops the instance when the job ends and nothing else needs it.

The commands below talk to a deployed nightshift stack with your own AWS
credentials (as the AWS CLI: environment, profile, SSO; --profile and
--region, or AWS_PROFILE and AWS_REGION; AWS_ENDPOINT_URL is honoured).
'nightshift local' needs no AWS account at all.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		// The flags are read once, for every subcommand.
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if a.stackName == "" {
				a.stackName = a.getenv("NIGHTSHIFT_STACK")
			}
			if a.stackName == "" {
				a.stackName = DefaultStack
			}
			return nil
		},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	pf := root.PersistentFlags()
	pf.StringVar(&a.stackName, "stack", "", "the nightshift stack's name (default $NIGHTSHIFT_STACK, else \""+DefaultStack+"\")")
	pf.StringVar(&a.region, "region", "", "the AWS Region (default: the SDK's, from AWS_REGION or the profile)")
	pf.StringVar(&a.profile, "profile", "", "the AWS profile (default: the SDK's, from AWS_PROFILE)")
	pf.BoolVar(&a.json, "json", false, "print records as one JSON document on stdout, for scripts")
	root.AddGroup(&cobra.Group{ID: "jobs", Title: "Jobs:"}, &cobra.Group{ID: "fleet", Title: "Instances and cost:"}, &cobra.Group{ID: "local", Title: "Without AWS:"})
	for _, c := range []*cobra.Command{a.submitCmd(), a.lsCmd(), a.showCmd(), a.logsCmd(), a.cancelCmd(), a.retryCmd(), a.notebookCmd()} {
		c.GroupID = "jobs"
		root.AddCommand(c)
	}
	for _, c := range []*cobra.Command{a.instancesCmd(), a.costCmd(), a.quotaCmd()} {
		c.GroupID = "fleet"
		root.AddCommand(c)
	}
	local := a.localCmd()
	local.GroupID = "local"
	root.AddCommand(local)
	return root
}
