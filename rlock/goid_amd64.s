#include "textflag.h"

// func getg() unsafe.Pointer
//
// The runtime keeps the current goroutine's g in thread-local storage
// (and in R14 under ABIInternal; this ABI0 function reads the TLS slot).
TEXT ·getg(SB),NOSPLIT,$0-8
	MOVQ	(TLS), AX
	MOVQ	AX, ret+0(FP)
	RET

// func goidAt(off uintptr) uint64
//
// The 64-bit word at offset off of the calling goroutine's g: getg and
// the load in one call, for goid's fast path.
TEXT ·goidAt(SB),NOSPLIT,$0-16
	MOVQ	(TLS), AX
	MOVQ	off+0(FP), BX
	MOVQ	(AX)(BX*1), AX
	MOVQ	AX, ret+8(FP)
	RET

// func storeGoidAt(p *uint64, off uintptr)
//
// release.Store64(p, goidAt(off)) in one call.
TEXT ·storeGoidAt(SB),NOSPLIT,$0-16
	MOVQ	(TLS), AX
	MOVQ	off+8(FP), BX
	MOVQ	(AX)(BX*1), AX
	MOVQ	p+0(FP), BX
	MOVQ	AX, (BX)
	RET
