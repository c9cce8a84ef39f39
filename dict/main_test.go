//go:build linux

package dict

import (
	"flag"
	"testing"

	"github.com/mpipc/mpipc/internal/proctest"
)

var (
	longForm = flag.Bool("dict.long", false, "run the long forms: 1,000,000 Update increments, 1,000 kill trials")
	trials   = flag.Int("dict.trials", 0, "kill trials in TestKillWriter (0: 1,000 with -dict.long, else 20, 8 with -short)")
)

func TestMain(m *testing.M) {
	proctest.Register("updater", roleUpdater)
	proctest.Register("getter", roleGetter)
	proctest.Register("churner", roleChurner)
	proctest.Register("mixer", roleMixer)
	proctest.Main(m)
}
