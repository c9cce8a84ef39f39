//go:build linux

package faults_test

import (
	"sort"
	"testing"
)

// TestCrash runs the crash suite: -faults.trials=N trials per kind (a few
// in the default run).
func TestCrash(t *testing.T) {
	names := make([]string, 0, len(crashKinds))
	for n := range crashKinds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		t.Run(n, func(t *testing.T) { runCrash(t, n) })
	}
	for _, c := range crashCounts {
		t.Log(c)
	}
}
