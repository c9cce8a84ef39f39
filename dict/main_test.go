package dict

import (
	"testing"

	"github.com/mpipc/mpipc/internal/proctest"
)

func TestMain(m *testing.M) {
	proctest.Main(m)
}
