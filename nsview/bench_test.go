package nsview_test

import (
	"strings"
	"testing"

	"github.com/pyro-dispatch/pyro-dispatch/nsview"
)

// BenchmarkRewrite rewrites the 100-entry list() replies of the golden name server,
// with and without metadata, in each serializer: "translate" moves both members to the
// gateway (a map lookup a URI), "keep" translates nothing (the reply is only checked and
// copied); the "compressed" replies are inflated, rewritten and deflated.
func BenchmarkRewrite(b *testing.B) {
	mapping, gs := loadGolden(b)
	members := map[nsview.Addr]nsview.Addr{}
	for from, to := range mapping {
		f, err1 := nsview.ParseAddr(from)
		t, err2 := nsview.ParseAddr(to)
		if err1 == nil && err2 == nil {
			members[f] = t
		}
	}
	translate := func(u nsview.URI) (nsview.Addr, bool) {
		to, ok := members[u.Addr]
		return to, ok
	}
	for _, g := range gs {
		if !strings.Contains(g.Name, "bench.list(") {
			continue
		}
		for _, mode := range []string{"translate", "keep"} {
			b.Run(g.Name+"/"+mode, func(b *testing.B) {
				tr := translate
				if mode == "keep" {
					tr = nil
				}
				var rw nsview.Rewriter
				dst := make([]byte, 0, 2*len(g.payload)+1024)
				b.SetBytes(int64(len(g.payload)))
				b.ReportAllocs()
				for b.Loop() {
					if _, changed, err := rewrite(&rw, dst, g, tr); err != nil || changed != (tr != nil) {
						b.Fatal(changed, err)
					}
				}
			})
		}
	}
}
