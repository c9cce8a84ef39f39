#include "textflag.h"

// func getg() unsafe.Pointer
//
// On arm64 the runtime keeps the current goroutine's g in R28, which the
// assembler calls g.
TEXT ·getg(SB),NOSPLIT,$0-8
	MOVD	g, R0
	MOVD	R0, ret+0(FP)
	RET

// func goidAt(off uintptr) uint64
//
// The 64-bit word at offset off of the calling goroutine's g.
TEXT ·goidAt(SB),NOSPLIT,$0-16
	MOVD	off+0(FP), R1
	ADD	g, R1, R1
	MOVD	(R1), R0
	MOVD	R0, ret+8(FP)
	RET

// func storeGoidAt(p *uint64, off uintptr)
//
// release.Store64(p, goidAt(off)) in one call.
TEXT ·storeGoidAt(SB),NOSPLIT,$0-16
	MOVD	off+8(FP), R1
	ADD	g, R1, R1
	MOVD	(R1), R1
	MOVD	p+0(FP), R0
	STLR	R1, (R0)
	RET
