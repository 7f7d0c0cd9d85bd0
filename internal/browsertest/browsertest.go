// Package browsertest runs Debian's chromium headless for the tests of the pages the
// binary serves (the admin dashboard, the HTTP gateway's home page), driven with chromedp,
// and collects the page's console errors and exceptions.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// RequireEnv makes a missing browser a failure instead of a skip (make test sets it).
const RequireEnv = "PYRO_DISPATCH_REQUIRE_BROWSER"

// Timeout bounds everything a Browser does.
const Timeout = 2 * time.Minute

// Browser is a headless chromium for one test, closed when the test ends.
type Browser struct {
	// Ctx runs chromedp actions in the browser's tab.
	Ctx context.Context

	mu       sync.Mutex
	problems []chromedp.ConsoleMessage
	close    func()
}

// Start finds chromium (or skips the test, failing it when RequireEnv is set), starts it
// with a window of width × height, and listens to its console from the start: every
// message is logged, errors and exceptions are kept for Problems.
func Start(t testing.TB, width, height int) *Browser {
	t.Helper()
	exe := find()
	if exe == "" {
		if os.Getenv(RequireEnv) != "" {
			t.Fatalf("no chromium binary (apt-get install chromium), and %s is set", RequireEnv)
		}
		t.Skipf("no chromium binary: apt-get install chromium to run this test (%s=1 makes this a failure)", RequireEnv)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.DisableGPU, // root in CI: no sandbox
		chromedp.WindowSize(width, height), chromedp.UserDataDir(t.TempDir()))
	ctx, cancelTime := context.WithTimeout(context.Background(), Timeout)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	b := &Browser{Ctx: bctx}
	console := chromedp.Console(bctx)
	listening := make(chan struct{})
	go func() {
		defer close(listening)
		for m, err := range console {
			if err != nil {
				return
			}
			t.Logf("console %s (%s %s:%d)", m, m.Source, m.URL, m.Line)
			if m.Type == chromedp.ConsoleError || m.IsException() {
				b.mu.Lock()
				b.problems = append(b.problems, m)
				b.mu.Unlock()
			}
		}
	}()
	var once sync.Once
	b.close = func() {
		once.Do(func() {
			cancelBrowser()
			<-listening // every console message is in
			cancelAlloc()
			cancelTime()
		})
	}
	t.Cleanup(b.close)
	return b
}

// Close ends the browser, once every console message it had was collected: Problems
// after Close is complete.
func (b *Browser) Close() { b.close() }

// Problems returns the console errors and exceptions seen since the last call.
func (b *Browser) Problems() []chromedp.ConsoleMessage {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.problems
	b.problems = nil
	return p
}

// find returns the path of a Chromium or Chrome binary, "" when there is none.
func find() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}
