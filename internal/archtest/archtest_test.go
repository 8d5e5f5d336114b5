// Package archtest enforces the project's import rules and documentation
// rules as tests (ARCHITECTURE.md §6, STYLE.md rules 2 and 4).
package archtest

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/jetstreamproto/jsp"

type pkg struct {
	ImportPath string
	Name       string
	Doc        string
	Imports    []string
	Deps       []string
	GoFiles    []string
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	out, err := exec.Command("go", "list", "-json", module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

func isStd(path string) bool {
	first := strings.SplitN(path, "/", 2)[0]
	return !strings.Contains(first, ".")
}

// leafAllowed are the project packages the pure layers may import: each is
// pure itself (standard library plus these leaves).
var leafAllowed = map[string]bool{
	module + "/internal/protocol": true,
	module + "/jsperr":            true,
	module + "/wire":              true,
}

func rel(p string) string { return strings.TrimPrefix(strings.TrimPrefix(p, module), "/") }

func under(p, prefix string) bool {
	r := rel(p)
	return r == prefix || strings.HasPrefix(r, prefix+"/")
}

// TestImportRules checks the dependency direction: wire, qos and
// reliability/* use only the standard library (plus the leaf packages and,
// for reliability/fec, a Reed-Solomon library); transport never imports
// session, server, client or services; security/* imports none of those nor
// transport; only the bus package imports NATS;
// only storage backends import database drivers.
func TestImportRules(t *testing.T) {
	for _, p := range listPackages(t) {
		for _, dep := range p.Deps {
			if isStd(dep) || strings.HasPrefix(dep, "vendor/") {
				continue
			}
			var problem string
			switch {
			case (under(p.ImportPath, "wire") || under(p.ImportPath, "qos") || under(p.ImportPath, "reliability") ||
				under(p.ImportPath, "internal/protocol") || under(p.ImportPath, "jsperr")) &&
				!leafAllowed[dep] && !(under(p.ImportPath, "reliability") && under(dep, "reliability")) &&
				!(under(p.ImportPath, "reliability/fec") && strings.HasPrefix(dep, "github.com/klauspost/")):
				problem = "pure package imports a non-standard package"
			case under(p.ImportPath, "transport") && (under(dep, "session") || under(dep, "server") ||
				under(dep, "client") || under(dep, "services")):
				problem = "transport imports a higher layer"
			case under(p.ImportPath, "security") && (under(dep, "session") || under(dep, "server") ||
				under(dep, "client") || under(dep, "services") || under(dep, "transport")):
				problem = "security imports a higher layer"
			case strings.HasPrefix(dep, "github.com/nats-io/") && !under(p.ImportPath, "server/bus") &&
				!strings.HasPrefix(rel(p.ImportPath), "cmd/") && !under(p.ImportPath, "integrationtests"):
				problem = "only server/bus may import NATS"
			case (strings.Contains(dep, "sqlite") || strings.HasPrefix(dep, "github.com/jackc/")) &&
				!under(p.ImportPath, "server/storage") && !strings.HasPrefix(rel(p.ImportPath), "cmd/") &&
				!under(p.ImportPath, "integrationtests"):
				problem = "only storage backends may import database drivers"
			}
			if problem != "" && !strings.HasSuffix(p.ImportPath, "_test") {
				// Direct imports name the culprit; transitive ones are reported
				// once per package via the first offending dependency.
				t.Errorf("%s: %s: %s", rel(p.ImportPath), problem, dep)
			}
		}
	}
}

// TestPackageDocs checks that every package has a package doc comment.
func TestPackageDocs(t *testing.T) {
	for _, p := range listPackages(t) {
		if len(p.GoFiles) == 0 {
			continue
		}
		if strings.TrimSpace(p.Doc) == "" {
			t.Errorf("%s: package %s has no doc comment", rel(p.ImportPath), p.Name)
		}
	}
}

// TestErrorCodesGenerated checks that jsperr/codes_gen.go matches the
// registry in spec/errors.json.
func TestErrorCodesGenerated(t *testing.T) {
	cmd := exec.Command("go", "run", "./internal/errgen", "-in", "spec/errors.json", "-out", "/dev/stdout")
	cmd.Dir = "../.."
	want, err := cmd.Output()
	if err != nil {
		t.Fatalf("run errgen: %v", err)
	}
	got, err := exec.Command("cat", "../../jsperr/codes_gen.go").Output()
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Fatal(fmt.Errorf("jsperr/codes_gen.go is stale: run `go generate ./jsperr`"))
	}
}
