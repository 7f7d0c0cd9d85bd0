// Package rawsock reads and writes non-blocking sockets with raw system calls, which the
// Go scheduler does not count as system calls: none hands its P off to another thread
// (sysmon's retake) or wakes one to take the P over. Waiting stays the netpoller's.
//
// The sockets are in non-blocking mode (every socket of the net package is), so each
// call returns as soon as the kernel has copied what fits: it is as short as other work
// of the calling goroutine, and telling the scheduler about it (entersyscall and
// exitsyscall) costs more than it saves. Under load that bookkeeping had sysmon hand Ps
// off thousands of times a second. Elsewhere than Linux the functions are the syscall
// package's.
package rawsock
