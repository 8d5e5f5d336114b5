// Command benchreport runs the side-by-side benchmarks of package bench
// several times and prints a markdown table of medians and JSP/raw ratios.
//
// It builds the test binary once, then runs it -runs times, each run a fresh
// process with -test.count=1 so that JSP and raw run back to back under the
// same machine load; odd runs pass -raw-first so that neither stack always
// goes first. The raw `go test` output goes to stderr (and to -out), the
// table to stdout.
//
//	go run ./bench/cmd/benchreport -runs 5 -benchtime 2s
//	go run ./bench/cmd/benchreport -bench 'RoundTrip' -runs 7
//	go test -run '^$' -bench . -count 5 ./bench | go run ./bench/cmd/benchreport -in -
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/jetstreamproto/jsp/bench/report"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		runs      = flag.Int("runs", 5, "number of benchmark processes to run")
		bench     = flag.String("bench", ".", "benchmark regexp (go test -bench)")
		benchtime = flag.String("benchtime", "2s", "time or NNx per benchmark (go test -benchtime)")
		pkg       = flag.String("pkg", "./bench", "package holding the benchmarks")
		timeout   = flag.String("timeout", "60m", "timeout per run (go test -timeout)")
		extra     = flag.String("args", "", "extra space-separated flags for the test binary, e.g. -bulk-mib=64")
		alternate = flag.Bool("alternate", true, "pass -raw-first on odd runs")
		in        = flag.String("in", "", "parse this file of go test -bench output ('-' for stdin) instead of running")
		out       = flag.String("out", "", "also write the raw benchmark output to this file")
	)
	flag.Parse()

	var output []byte
	if *in != "" {
		var err error
		if *in == "-" {
			output, err = io.ReadAll(os.Stdin)
		} else {
			output, err = os.ReadFile(*in)
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", *in, err)
		}
	} else {
		if *runs < 1 {
			return errors.New("-runs must be at least 1")
		}
		var err error
		output, err = runBenchmarks(*pkg, *bench, *benchtime, *timeout, strings.Fields(*extra), *runs, *alternate)
		if err != nil {
			return err
		}
	}
	if *out != "" {
		if err := os.WriteFile(*out, output, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", *out, err)
		}
	}
	results, err := report.Parse(bytes.NewReader(output))
	if err != nil {
		return err
	}
	rows := report.Rows(results)
	if len(rows) == 0 {
		return errors.New("no JSP/raw pairs in the benchmark output")
	}
	if cpu := header(output, "cpu: "); cpu != "" {
		fmt.Printf("cpu: %s\n\n", cpu)
	}
	return report.Markdown(os.Stdout, rows)
}

// runBenchmarks builds the test binary of pkg and runs it n times.
func runBenchmarks(pkg, bench, benchtime, timeout string, extra []string, n int, alternate bool) ([]byte, error) {
	dir, err := os.MkdirTemp("", "benchreport")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "bench.test")
	build := exec.Command("go", "test", "-c", "-o", bin, pkg)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return nil, fmt.Errorf("build %s: %w", pkg, err)
	}
	var all bytes.Buffer
	for i := range n {
		args := []string{"-test.run=^$", "-test.bench=" + bench, "-test.benchtime=" + benchtime,
			"-test.count=1", "-test.timeout=" + timeout}
		if alternate && i%2 == 1 {
			args = append(args, "-raw-first")
		}
		args = append(args, extra...)
		fmt.Fprintf(os.Stderr, "== run %d/%d: %s %s\n", i+1, n, filepath.Base(bin), strings.Join(args, " "))
		cmd := exec.Command(bin, args...)
		var buf bytes.Buffer
		cmd.Stdout = io.MultiWriter(&buf, os.Stderr)
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("run %d: %w", i+1, err)
		}
		all.Write(buf.Bytes())
	}
	return all.Bytes(), nil
}

// header returns the value of the first "key value" header line.
func header(out []byte, key string) string {
	for line := range strings.Lines(string(out)) {
		if v, ok := strings.CutPrefix(line, key); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
