package loadtest

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

func fmtDur(d time.Duration) string {
	return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
}

func fmtBytes(b int64) string {
	if b < 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}

// WriteTable prints the report for people.
func (r *Report) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "Commons ID load test against %s (issuer %s)\n", r.URL, r.Issuer)
	fmt.Fprintf(w, "%gs measured per scenario and level after %gs of warm-up; latencies of successful operations.\n\n",
		r.DurationSeconds, r.WarmupSeconds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\tclients\top\tops/s\tp50\tp99\terrors\tops\tserver RSS after warm-up")
	for _, res := range r.Results {
		if res.SetupError != "" {
			fmt.Fprintf(tw, "%s\t%d\t%s\tsetup failed: %s\n", res.Scenario, res.Concurrency, res.Unit, res.SetupError)
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%.1f\t%s\t%s\t%d\t%d\t%s\n", res.Scenario, res.Concurrency, res.Unit, res.Rate,
			fmtDur(res.P50), fmtDur(res.P99), res.Errors, res.Ops, fmtBytes(res.RSSBytes))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nserver RSS: %s before the first run, %s after the last.\n", fmtBytes(r.RSSStartBytes), fmtBytes(r.RSSEndBytes))
	first := true
	for _, res := range r.Results {
		if res.Errors == 0 {
			continue
		}
		if first {
			fmt.Fprintln(w, "\nerrors (a few distinct messages per run):")
			first = false
		}
		fmt.Fprintf(w, "  %s × %d: %d errors\n", res.Scenario, res.Concurrency, res.Errors)
		for _, m := range res.ErrorSamples {
			fmt.Fprintf(w, "    %s\n", m)
		}
	}
	if r.Interrupted {
		fmt.Fprintln(w, "\ninterrupted: the runs above are all that were done.")
	}
	return nil
}

// WriteJSON prints the report as indented JSON; durations are in seconds or
// milliseconds as their names say, memory in bytes.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
