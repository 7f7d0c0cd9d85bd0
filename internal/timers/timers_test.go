package timers

import (
	"testing"
	"time"

	"github.com/pyro-dispatch/pyro-dispatch/internal/raceflag"
)

// A reused timer fires after its new duration, never with a value of its earlier run.
func TestReusedTimerFiresOnlyForItsNewRun(t *testing.T) {
	t1 := Start(time.Millisecond)
	<-t1.C // fired
	Stop(t1)
	t2 := Start(time.Hour)
	Stop(t2)
	t3 := Start(20 * time.Millisecond) // started after a stop that came after it fired
	start := time.Now()
	select {
	case <-t3.C:
		if d := time.Since(start); d < 15*time.Millisecond {
			t.Fatalf("fired after %v, want 20ms", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("never fired")
	}
	Stop(t3)
	t4 := Start(time.Hour) // stopped unfired, with nothing read: nothing waits on its channel
	Stop(t4)
	t5 := Start(time.Hour)
	select {
	case v := <-t5.C:
		t.Fatalf("a timer started for an hour delivered %v", v)
	case <-time.After(30 * time.Millisecond):
	}
	Stop(t5)
}

func TestStartStopAllocs(t *testing.T) {
	if raceflag.Enabled {
		t.Skip("allocation counts mean nothing under the race detector")
	}
	Stop(Start(time.Hour))
	if n := testing.AllocsPerRun(1000, func() { Stop(Start(time.Hour)) }); n != 0 {
		t.Fatalf("Start+Stop of a kept timer: %v allocations", n)
	}
}
