#include "textflag.h"

// func getg() unsafe.Pointer
//
// On arm64 the runtime keeps the current goroutine's g in R28, which the
// assembler calls g.
TEXT ·getg(SB),NOSPLIT,$0-8
	MOVD	g, R0
	MOVD	R0, ret+0(FP)
	RET
