package value

import (
	"context"
	"time"
)

// The writes of a T wider than 8 bytes (Store, Swap, CompareAndSwap) take
// a private writer lock for the time of a copy. A writer that is stopped
// (SIGSTOP, a debugger) while it holds that lock is alive, so nobody takes
// it over, and the next writer waits until it runs again. These forms
// bound that wait, as every blocking call of the module is bounded: Try
// never waits, Timeout waits at most d (d <= 0: as Try), Context until ctx
// is done. A call that gives up changes nothing. For T of at most 8 bytes
// the writes are single atomic instructions that never wait, and these
// forms always succeed.

// TryStore sets the value if that needs no wait, and reports whether it
// did.
func (v *Value[T]) TryStore(x T) bool { return v.c.storeBound(x, bound{timed: true}) == nil }

// StoreTimeout sets the value, waiting at most d for another writer, and
// reports whether it did.
func (v *Value[T]) StoreTimeout(x T, d time.Duration) bool {
	return v.c.storeBound(x, bound{d: d, timed: true}) == nil
}

// StoreContext sets the value, or returns ctx.Err() if ctx is done first.
func (v *Value[T]) StoreContext(ctx context.Context, x T) error {
	return v.c.storeBound(x, bound{ctx: ctx})
}

// TrySwap sets the value to x and returns the previous one, if that needs
// no wait; ok reports whether it did.
func (v *Value[T]) TrySwap(x T) (old T, ok bool) {
	old, err := v.c.swapBound(x, bound{timed: true})
	return old, err == nil
}

// SwapTimeout is Swap, waiting at most d for another writer; ok reports
// whether it swapped.
func (v *Value[T]) SwapTimeout(x T, d time.Duration) (old T, ok bool) {
	old, err := v.c.swapBound(x, bound{d: d, timed: true})
	return old, err == nil
}

// SwapContext is Swap, or returns ctx.Err() if ctx is done first.
func (v *Value[T]) SwapContext(ctx context.Context, x T) (T, error) {
	return v.c.swapBound(x, bound{ctx: ctx})
}

// TryCompareAndSwap is CompareAndSwap if that needs no wait: ok reports
// whether it compared at all, swapped whether it also swapped.
func (v *Value[T]) TryCompareAndSwap(old, new T) (swapped, ok bool) {
	swapped, err := v.c.compareAndSwapBound(old, new, bound{timed: true})
	return swapped, err == nil
}

// CompareAndSwapTimeout is CompareAndSwap, waiting at most d for another
// writer: ok reports whether it compared at all, swapped whether it also
// swapped.
func (v *Value[T]) CompareAndSwapTimeout(old, new T, d time.Duration) (swapped, ok bool) {
	swapped, err := v.c.compareAndSwapBound(old, new, bound{d: d, timed: true})
	return swapped, err == nil
}

// CompareAndSwapContext is CompareAndSwap, or returns ctx.Err() if ctx is
// done first.
func (v *Value[T]) CompareAndSwapContext(ctx context.Context, old, new T) (bool, error) {
	return v.c.compareAndSwapBound(old, new, bound{ctx: ctx})
}

// TryStore is Value.TryStore.
func (v *RawValue[T]) TryStore(x T) bool { return v.c.storeBound(x, bound{timed: true}) == nil }

// StoreTimeout is Value.StoreTimeout.
func (v *RawValue[T]) StoreTimeout(x T, d time.Duration) bool {
	return v.c.storeBound(x, bound{d: d, timed: true}) == nil
}

// StoreContext is Value.StoreContext.
func (v *RawValue[T]) StoreContext(ctx context.Context, x T) error {
	return v.c.storeBound(x, bound{ctx: ctx})
}

// TrySwap is Value.TrySwap.
func (v *RawValue[T]) TrySwap(x T) (old T, ok bool) {
	old, err := v.c.swapBound(x, bound{timed: true})
	return old, err == nil
}

// SwapTimeout is Value.SwapTimeout.
func (v *RawValue[T]) SwapTimeout(x T, d time.Duration) (old T, ok bool) {
	old, err := v.c.swapBound(x, bound{d: d, timed: true})
	return old, err == nil
}

// SwapContext is Value.SwapContext.
func (v *RawValue[T]) SwapContext(ctx context.Context, x T) (T, error) {
	return v.c.swapBound(x, bound{ctx: ctx})
}

// TryCompareAndSwap is Value.TryCompareAndSwap.
func (v *RawValue[T]) TryCompareAndSwap(old, new T) (swapped, ok bool) {
	swapped, err := v.c.compareAndSwapBound(old, new, bound{timed: true})
	return swapped, err == nil
}

// CompareAndSwapTimeout is Value.CompareAndSwapTimeout.
func (v *RawValue[T]) CompareAndSwapTimeout(old, new T, d time.Duration) (swapped, ok bool) {
	swapped, err := v.c.compareAndSwapBound(old, new, bound{d: d, timed: true})
	return swapped, err == nil
}

// CompareAndSwapContext is Value.CompareAndSwapContext.
func (v *RawValue[T]) CompareAndSwapContext(ctx context.Context, old, new T) (bool, error) {
	return v.c.compareAndSwapBound(old, new, bound{ctx: ctx})
}
