// Package process starts, supervises and stops worker processes: Python's
// multiprocessing.Process for Go, where there is no fork without exec.
//
// A child is the current binary, re-executed in a named role. The program
// registers its roles and calls [Main] first thing in main (and in
// TestMain, so that tests start children the same way):
//
//	func init() {
//		process.Register("adder", func(args []string) error {
//			seg, err := process.Segment(0) // handed over by the parent
//			...
//		})
//	}
//
//	func main() {
//		process.Main() // runs the role and exits, in a child; returns at once otherwise
//		...
//		p, err := process.Start(ctx, "adder", &process.Options{
//			Args:     []string{"1000"},
//			Segments: []*shm.Segment{seg},
//		})
//		...
//		err = p.Wait() // nil on exit status 0; an *ExitError with the stderr tail otherwise
//	}
//
// A role's function runs in the child; returning nil exits with status 0,
// an error prints "role: error" on stderr and exits with status 1. The
// role may also call os.Exit itself.
//
// # Segments
//
// Options.Segments hands segments to the child. An anonymous segment
// ([shm.CreateAnonymous]) is passed by descriptor, as an inherited file; a
// named one by its path. Either way the child attaches with one call,
// [Segment](i), which maps it through shm ([shm.OpenFile] for a
// descriptor, [shm.Open] for a path). Options.Files passes other open
// files; the child gets them with [File](i), and they come first, as
// descriptors 3, 4, ... in the child.
//
// # Lifetime
//
//   - Cancelling the context given to [Start] terminates the child: SIGTERM
//     at once, then SIGKILL after Options.Grace (default [DefaultGrace],
//     2 s) if it has not exited by then.
//   - A child dies with its parent. Every child is started with
//     Pdeathsig = SIGKILL from one OS thread that lives as long as the
//     process (the kernel sends Pdeathsig when the thread that forked the
//     child exits, and Go retires threads it no longer needs, so forking
//     from an arbitrary goroutine's thread would kill children early). The
//     parent may die before the kernel arms Pdeathsig in the child; [Main]
//     closes that race: a child whose parent is no longer the process that
//     started it exits at once with status 2 before running its role.
//   - [Process.Wait] returns nil for exit status 0, else an [*ExitError]
//     naming the role, pid, exit code or signal and the last
//     [StderrTail] bytes the child wrote on stderr (errors.Is(err,
//     [ErrExit])). Stderr is copied to Options.Stderr (default the
//     parent's stderr) as it comes.
//
// [Group] starts several processes under one context, as errgroup does for
// goroutines: the first one that fails cancels the others, and Wait
// returns that first failure.
//
// # Caveats
//
//   - The child re-runs the program's package initialisation before [Main]
//     takes over; keep init functions cheap and free of side effects.
//   - Roles are looked up by name in the child's binary, which is the
//     parent's: a role registered only under some condition in the parent
//     may be missing in the child (the child then exits with status 2).
//   - Linux only.
package process
