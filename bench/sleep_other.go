//go:build !unix

package bench

import "time"

func nanosleep(d time.Duration) { time.Sleep(d) }
