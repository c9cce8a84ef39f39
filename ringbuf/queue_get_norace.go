//go:build !race

package ringbuf

// qOptimisticGet: Get, GetInto and Typed.Get copy a message out of its
// slot before taking it with one compare-and-swap (takeGet), instead of
// claiming the slot, copying and releasing it (two). Borrow always claims.
const qOptimisticGet = true
