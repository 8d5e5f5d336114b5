package wire

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// Checks that the written spec (spec/JSP.md, spec/jsp.cddl) stays in step
// with the registry and the code.

func readSpec(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("../spec/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestSpecErrorTable: §10 lists every registry entry, with its code, scope
// and retry flag, and nothing else.
func TestSpecErrorTable(t *testing.T) {
	var reg struct {
		Errors []struct {
			Code  uint64 `json:"code"`
			Name  string `json:"name"`
			Scope string `json:"scope"`
			Retry bool   `json:"retry"`
		} `json:"errors"`
	}
	if err := json.Unmarshal([]byte(readSpec(t, "errors.json")), &reg); err != nil {
		t.Fatal(err)
	}
	doc := readSpec(t, "JSP.md")
	i := strings.Index(doc, "\n## 10. Error codes")
	j := strings.Index(doc, "\n## 11.")
	if i < 0 || j < i {
		t.Fatal("JSP.md has no §10")
	}
	row := regexp.MustCompile(`(?m)^\| 0x([0-9a-f]+) \| ([A-Z_]+) \| (\w+) \| (yes|no) \|`)
	rows := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(doc[i:j], -1) {
		code, _ := strconv.ParseUint(m[1], 16, 64)
		rows[m[2]] = fmt.Sprintf("%d %s %s", code, m[3], m[4])
	}
	for _, e := range reg.Errors {
		retry := "no"
		if e.Retry {
			retry = "yes"
		}
		want := fmt.Sprintf("%d %s %s", e.Code, e.Scope, retry)
		if got, ok := rows[e.Name]; !ok {
			t.Errorf("§10 lacks %s", e.Name)
		} else if got != want {
			t.Errorf("§10 row %s = %q, registry says %q", e.Name, got, want)
		}
		if !strings.Contains(doc, e.Name) {
			t.Errorf("JSP.md never mentions %s", e.Name)
		}
		delete(rows, e.Name)
	}
	for name := range rows {
		t.Errorf("§10 lists %s, which is not in spec/errors.json", name)
	}
}

// TestSpecCoverage: every numbered section exists, every frame type is in
// the §3.3 table with its number, and every body has a CDDL rule.
func TestSpecCoverage(t *testing.T) {
	doc := readSpec(t, "JSP.md")
	for _, h := range []string{
		"## 1. ", "## 2. ", "## 3. ", "### 3.1 ", "### 3.2 ", "### 3.3 ", "### 3.4 ", "## 4. ",
		"## 5. ", "### 5.1 ", "### 5.2 ", "### 5.3 ", "### 5.4 ", "### 5.5 ", "### 5.6 ", "### 5.7 ",
		"### 5.8 ", "### 5.9 ", "### 5.10 ", "### 5.11 ", "### 5.12 ", "### 5.13 ", "## 6. ", "## 7. ",
		"### 7.1 ", "### 7.2 ", "### 7.3 ", "### 7.4 ", "## 8. ", "### 8.1 ", "### 8.2 ", "### 8.3 ",
		"## 9. ", "## 10. ", "## 11. ", "### 11.1 ", "### 11.2 ", "### 11.3 ", "### 11.4 ", "### 11.5 ",
		"### 11.6 ", "## 12. ", "## 13. ",
	} {
		if !strings.Contains(doc, "\n"+h) {
			t.Errorf("JSP.md lacks section %q", strings.TrimSpace(h))
		}
	}
	for ft, name := range frameNames {
		if !strings.Contains(doc, fmt.Sprintf("| 0x%02x | %s |", uint64(ft), name)) {
			t.Errorf("§3.3 lacks the row for %s (0x%02x)", name, uint64(ft))
		}
	}
	cddl := readSpec(t, "jsp.cddl")
	for _, rule := range []string{"envelope", "route", "hello", "resume", "welcome", "limits", "error",
		"ping", "goaway", "ack", "cursor", "nack", "subscribe", "unsubscribe", "stream-open", "announce"} {
		if !regexp.MustCompile(`(?m)^` + rule + ` = `).MatchString(cddl) {
			t.Errorf("jsp.cddl lacks rule %s", rule)
		}
	}
}
