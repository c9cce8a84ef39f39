package main

import (
	"fmt"
	"io/fs"
	"os/user"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// name returns s as it may reach a terminal: unchanged if it is valid
// UTF-8 of printable characters, else quoted with Go's escapes (as %q and
// ls -b do), so that an escape sequence or a newline in a file or object
// name can neither drive the terminal nor forge a table row.
func name(s string) string {
	if printable(s) {
		return s
	}
	return strconv.Quote(s)
}

// text escapes the unprintable characters of a message (an error that
// quotes a path, say) without quoting the whole of it.
func text(s string) string {
	if printable(s) {
		return s
	}
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	return strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) < 0
}

// ownerDesc describes a file's owner and mode, flagging a file that Open
// would refuse as unsafe (unsafe is Info.Unsafe).
func ownerDesc(uid int, mode fs.FileMode, unsafe error) string {
	s := fmt.Sprintf("%s %v", userName(uid), mode)
	if unsafe != nil {
		s += " UNSAFE"
	}
	return s
}

// userName returns the login name of uid, or the number.
func userName(uid int) string {
	id := strconv.Itoa(uid)
	if u, err := user.LookupId(id); err == nil {
		return name(u.Username)
	}
	return id
}
