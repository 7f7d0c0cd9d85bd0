package dispatch

import (
	"context"
	"os"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

func canceledContext() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// testLogger logs to the test's output when PYRO_DISPATCH_TEST_LOG is set.
func testLogger(tb testing.TB) *zap.Logger {
	if os.Getenv("PYRO_DISPATCH_TEST_LOG") == "" {
		return zap.NewNop()
	}
	return zaptest.NewLogger(tb)
}
