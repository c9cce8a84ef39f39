package main

import (
	"fmt"

	"github.com/mpipc/mpipc/shm"
)

func init() {
	verbHelp["destroy"] = `
Destroys named objects in a segment, freeing their space for new objects
(shm.Segment.Destroy). An object that a live process has open (a handle
it has not dropped) is not destroyed, and the message names the pids; -f
destroys it anyway (shm.Segment.DestroyForce): only when nobody will use
it again, since the space goes to the next object created.`
}

func runDestroy(c *cli, args []string) int {
	fs := c.flags("destroy")
	force := fs.Bool("f", false, "destroy objects even while live processes have them open")
	if rc := c.parse(fs, args); rc >= 0 {
		return rc
	}
	if fs.NArg() < 2 {
		return c.usageErr(fs, "want SEGMENT and at least one OBJECT, got %d arguments", fs.NArg())
	}
	path, err := segPath(fs.Arg(0))
	if err != nil {
		return c.fail("destroy: %s: %s", name(fs.Arg(0)), text(err.Error()))
	}
	seg, err := shm.Open(path, nil)
	if err != nil {
		return c.fail("destroy: %s", text(err.Error()))
	}
	defer seg.Close()
	rc := exitOK
	for _, obj := range fs.Args()[1:] {
		destroy := seg.Destroy
		if *force {
			destroy = seg.DestroyForce
		}
		if err := destroy(obj); err != nil {
			c.fail("destroy: %s", text(err.Error()))
			rc = exitFail
			continue
		}
		fmt.Fprintf(c.stdout, "destroyed %s\n", name(obj))
	}
	return rc
}
