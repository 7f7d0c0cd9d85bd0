package main

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

const python = "/usr/bin/python3"

// TestGenerate runs the whole capture against real Pyro4 into a temporary file.
func TestGenerate(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Python daemons")
	}
	if err := exec.Command(python, "-c", "import Pyro4").Run(); err != nil {
		if os.Getenv("PYRO_DISPATCH_REQUIRE_PYRO4") != "" {
			t.Fatalf("Pyro4 is required: %s -c 'import Pyro4': %v", python, err)
		}
		t.Skipf("no Pyro4 for %s: %v", python, err)
	}
	out := filepath.Join(t.TempDir(), "vectors.jsonl")
	if err := run(out, python, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	perScenario := map[string]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var v vector
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatal(err)
		}
		if v.Header == nil || v.Annotations == nil || (v.Dir == "c2s") != (v.Expect != nil) {
			t.Errorf("incomplete vector %s", sc.Bytes())
		}
		perScenario[v.Scenario]++
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	for _, s := range scenarios {
		if perScenario[s.name] < 8 {
			t.Errorf("scenario %s: %d messages", s.name, perScenario[s.name])
		}
	}
}
