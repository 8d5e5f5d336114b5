package bwe

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"testing"
)

var update = flag.Bool("update", false, "rewrite spec/vectors/media-probe.json from the Go codec")

const vectorFile = "../../spec/vectors/media-probe.json"

// probeVector is one entry of spec/vectors/media-probe.json.
type probeVector struct {
	Name    string       `json:"name"`
	Type    string       `json:"type"` // probe, probe_report
	Hex     string       `json:"hex"`
	Probe   *Probe       `json:"probe,omitempty"`
	Report  *ProbeReport `json:"report,omitempty"`
	Error   string       `json:"error,omitempty"` // "malformed" or "not_probe"
	Comment string       `json:"note,omitempty"`
}

type probeVectors struct {
	Description string        `json:"description"`
	Vectors     []probeVector `json:"vectors"`
}

func mustProbe(p Probe) string {
	b, err := AppendProbe(nil, p)
	if err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

func generateProbeVectors() probeVectors {
	p1 := Probe{Train: 1, Index: 0, Count: 60, Sent: 0, Down: TrainShape{Count: 60, Size: 1000, Rate: 20 * Mbps}, Size: ProbeHeaderLen}
	p2 := Probe{Train: 0x8001, Index: 59, Count: 60, Sent: 1_234_567, Size: 32}
	r := ProbeReport{Train: 1, Received: 58, Bytes: 58000, Spread: 240000, Echo: 0, Hold: 251000}
	short := mustProbe(p1)[:2*(ProbeHeaderLen-1)]
	badIndex := Probe{Train: 1, Index: 0, Count: 1, Size: ProbeHeaderLen}
	bi, _ := AppendProbe(nil, badIndex)
	bi[7] = 0 // count 0: index 0 is out of range
	return probeVectors{
		Description: "JSP/1 bandwidth probe control packets (JSP §13.12); hex is the whole datagram payload of a media flow.",
		Vectors: []probeVector{
			{Name: "probe_up_first", Type: "probe", Hex: mustProbe(p1), Probe: &p1, Comment: "first packet of an up train asking for a 60-packet down train at 20 Mbit/s; no padding"},
			{Name: "probe_down_last", Type: "probe", Hex: mustProbe(p2), Probe: &p2, Comment: "last packet of a down train (top bit of the train id), 8 bytes of zero padding"},
			{Name: "probe_report", Type: "probe_report", Hex: hex.EncodeToString(r.Append(nil)), Report: &r, Comment: "58 of 60 packets over 240 ms; first packet's send time 0, held 251 ms"},
			{Name: "probe_truncated", Type: "probe", Hex: short, Error: "malformed"},
			{Name: "probe_index_past_count", Type: "probe", Hex: hex.EncodeToString(bi), Error: "malformed"},
			{Name: "probe_report_trailing", Type: "probe_report", Hex: hex.EncodeToString(append(r.Append(nil), 0)), Error: "malformed"},
			{Name: "receiver_report_not_probe", Type: "probe", Hex: "ff01a0", Error: "not_probe", Comment: "control type 0x01 is the receiver report (JSP §13.7)"},
		},
	}
}

// TestProbeVectors checks spec/vectors/media-probe.json against the codec;
// -update rewrites it.
func TestProbeVectors(t *testing.T) {
	want, err := json.MarshalIndent(generateProbeVectors(), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, '\n')
	if *update {
		if err := os.WriteFile(vectorFile, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile(vectorFile)
	if err != nil {
		t.Fatalf("%v (run go test ./media/bwe -run TestProbeVectors -update)", err)
	}
	if !bytes.Equal(raw, want) {
		t.Errorf("%s is out of date; run with -update and review the diff", vectorFile)
	}
	var file probeVectors
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	for _, v := range file.Vectors {
		b, err := hex.DecodeString(v.Hex)
		if err != nil {
			t.Fatalf("%s: %v", v.Name, err)
		}
		var perr error
		switch v.Type {
		case "probe":
			var p Probe
			p, perr = ParseProbe(b)
			if perr == nil {
				if v.Probe == nil || p != *v.Probe {
					t.Errorf("%s: decoded %+v", v.Name, p)
				}
				if again, _ := AppendProbe(nil, p); !bytes.Equal(again, b) {
					t.Errorf("%s: re-encoding differs", v.Name)
				}
			}
		case "probe_report":
			var r ProbeReport
			r, perr = ParseProbeReport(b)
			if perr == nil && (v.Report == nil || r != *v.Report || !bytes.Equal(r.Append(nil), b)) {
				t.Errorf("%s: decoded %+v", v.Name, r)
			}
		default:
			t.Fatalf("%s: unknown type %q", v.Name, v.Type)
		}
		switch v.Error {
		case "":
			if perr != nil {
				t.Errorf("%s: %v", v.Name, perr)
			}
		case "malformed":
			if !errors.Is(perr, ErrProbeMalformed) {
				t.Errorf("%s: %v, want malformed", v.Name, perr)
			}
		case "not_probe":
			if !errors.Is(perr, ErrNotProbe) {
				t.Errorf("%s: %v, want not a probe", v.Name, perr)
			}
		}
	}
}
