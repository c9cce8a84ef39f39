#include "textflag.h"

// func getg() unsafe.Pointer
//
// The runtime keeps the current goroutine's g in thread-local storage
// (and in R14 under ABIInternal; this ABI0 function reads the TLS slot).
TEXT ·getg(SB),NOSPLIT,$0-8
	MOVQ	(TLS), AX
	MOVQ	AX, ret+0(FP)
	RET
