package bench

import (
	"os"
	"strings"
	"testing"
)

func TestMain(m *testing.M) {
	WorkerMain()
	os.Exit(m.Run())
}

func TestSmoke(t *testing.T) {
	var prog strings.Builder
	sums, err := Run(Options{Scale: 0.002, Runs: 1, Progress: &prog})
	t.Log(prog.String())
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	WriteTable(&b, sums, nil)
	WritePeers(&b, sums)
	t.Log("\n" + b.String())
}
