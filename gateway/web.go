package gateway

import (
	"github.com/gin-gonic/gin"

	"github.com/natgw/natgw/web"
)

// webRoutes serves the browser client (package web): the page at /, its files under
// /static/ and the onnxruntime-web runtime under /ort/.
func (s *Server) webRoutes(r *gin.Engine) {
	h := web.New(web.Options{RuntimeDir: s.cfg.WebRuntime})
	if h.RuntimeDir() == "" {
		s.log.Info("web page: in-browser inference unavailable (onnxruntime-web files not installed; see scripts/install-onnxruntime-web.sh)")
	} else {
		s.log.Info("web page: onnxruntime-web", "dir", h.RuntimeDir())
	}
	wh := gin.WrapH(h)
	for _, p := range []string{"/", "/index.html", web.StaticPrefix + "*file", web.RuntimePrefix + "*file"} {
		r.GET(p, wh)
		r.HEAD(p, wh)
	}
}
