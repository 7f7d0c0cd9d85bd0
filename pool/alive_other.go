//go:build !unix

package pool

import "net"

func sockFD(net.Conn) int { return -1 }

// alive cannot look at a socket without blocking here: an idle connection counts as
// alive, and a dead one fails the call that uses it.
func alive(*Conn) bool { return true }
